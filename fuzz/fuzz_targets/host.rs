//! The host normaliser: never panics; a normalised host is a fixed point (as a name, as
//! an authority); `split_host_port` never panics and splits a formatted authority back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_policy::{normalize_host, split_host_port, Host};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let _ = split_host_port(raw);
    if let Ok(h) = normalize_host(raw) {
        assert_eq!(normalize_host(&h.to_string()).as_ref(), Ok(&h), "{raw:?}");
        assert_eq!(normalize_host(&h.as_policy_str()).as_ref(), Ok(&h), "{raw:?}");
        if let Host::Name(n) = &h {
            assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)), "{n:?}");
            assert!(!n.is_empty() && !n.ends_with('.') && n.len() <= 253, "{n:?}");
        }
        let auth = h.authority(443);
        let (host, port) = split_host_port(&auth).expect("an authority splits");
        assert_eq!(port, Some(443));
        assert_eq!(normalize_host(host), Ok(h));
    }
});
