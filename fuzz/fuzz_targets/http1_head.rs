//! HTTP/1 request heads, as the proxy serves them: hyper parses the bytes, then the
//! proxy's target, `Host` check, origin-form URI and hop-by-hop removal run on each
//! request. Never panics; what would go upstream is normal and hop-by-hop free.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_proxy::fuzzing::http1_requests;
use paddock_proxy::{normalise_host, parse_authority};

const HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fuzz_target!(|data: &[u8]| {
    for v in http1_requests(data) {
        let Ok(t) = &v.target else { continue };
        assert_ne!(t.port, 0);
        assert_eq!(normalise_host(&t.host.to_string()).as_ref(), Ok(&t.host));
        if let Some(up) = &v.upstream {
            assert!(up.uri.starts_with('/'), "{up:?}");
            for (name, _) in &up.headers {
                assert!(!HOP.contains(&name.as_str()), "hop-by-hop header {name} forwarded");
            }
            assert_eq!(parse_authority(&up.host_header, Some(80)).as_ref(), Ok(t), "{up:?}");
        }
    }
});
