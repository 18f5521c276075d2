//! The SOCKS5 handshake on raw client bytes: never panics; an accepted target is
//! normal; refusals say why; the server writes at most the method selection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_proxy::fuzzing::socks5_handshake;
use paddock_proxy::normalise_host;

fuzz_target!(|data: &[u8]| {
    let (result, wrote) = socks5_handshake(data);
    match result {
        Ok(t) => {
            assert_ne!(t.port, 0);
            assert_eq!(normalise_host(&t.host.to_string()).as_ref(), Ok(&t.host));
        }
        Err((_, reason)) => assert!(!reason.is_empty()),
    }
    assert!(wrote.is_empty() || wrote == [5, 0] || wrote == [5, 0xff], "{wrote:?}");
});
