//! Proxy request targets: `parse_authority` and the CONNECT / absolute-form readers
//! (with a `Host` header) never panic; what they accept is normal and formats back.
#![no_main]

use hyper::{Method, Request};
use libfuzzer_sys::fuzz_target;
use paddock_proxy::{connect_target, forward_target, normalise_host, parse_authority, Target};

fn normal(t: &Target) {
    assert_ne!(t.port, 0);
    assert_eq!(normalise_host(&t.host.to_string()).as_ref(), Ok(&t.host), "{t:?}");
    assert_eq!(parse_authority(&t.authority(), None).as_ref(), Ok(t), "{t:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    let (uri, host) = s.split_once('\n').map_or((s, None), |(u, h)| (u, Some(h)));
    if let Ok(t) = parse_authority(uri, (mode & 1 == 1).then_some(80)) {
        assert!(!uri.contains('@'), "userinfo accepted: {uri:?}");
        normal(&t);
    }
    let method = if mode & 2 == 2 { Method::CONNECT } else { Method::GET };
    let mut b = Request::builder().method(method.clone()).uri(uri);
    if let Some(h) = host {
        b = b.header(hyper::header::HOST, h);
    }
    let Ok(req) = b.body(()) else { return };
    let t = if method == Method::CONNECT { connect_target(&req) } else { forward_target(&req) };
    if let Ok(t) = t {
        normal(&t);
    }
});
