//! Property tests of what the proxy parses from a client: request targets (authority,
//! CONNECT and absolute-form), the HTTP/1 request head (through hyper, as the proxy
//! serves it) and the SOCKS5 handshake. Generated inputs, well-formed and mutated, and
//! raw bytes: nothing panics, what is accepted is normalised, and what is formatted
//! parses back to itself. `fuzz/` has cargo-fuzz targets for the same entry points.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hyper::header::HOST;
use hyper::{Method, Request};
use paddock_proxy::fuzzing::{http1_requests, socks5_handshake};
use paddock_proxy::{connect_target, forward_target, normalise_host, parse_authority, Host, Target};
use proptest::prelude::*;

const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    // PROPTEST_CASES scales every property (for a longer hunt); CI runs the default.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A label of a plain ASCII name (never `xn--`: that would have to be valid punycode).
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9_-]{0,12}[a-z0-9])?".prop_filter("not an A-label", |l| !l.starts_with("xn--"))
}

/// A DNS name that normalises: 1–4 labels, a letter TLD, any case, maybe a trailing dot.
fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 0..4), "[a-z]{1,8}", any::<u64>(), any::<bool>()).prop_map(
        |(labels, tld, case, dot)| {
            let mut s = labels.into_iter().chain([tld]).collect::<Vec<_>>().join(".");
            s = s
                .chars()
                .enumerate()
                .map(|(i, c)| if case >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                s.push('.');
            }
            s
        },
    )
}

/// Hosts as a client could write them: names, IDNs, IPv4 and bracketed IPv6 literals.
fn host_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => name(),
        1 => prop::sample::select(vec!["bücher.example", "пример.испытание", "ＥＸＡＭＰＬＥ.com", "例え.テスト"])
            .prop_map(String::from),
        2 => any::<[u8; 4]>().prop_map(|a| Ipv4Addr::from(a).to_string()),
        2 => any::<[u16; 8]>().prop_map(|a| format!("[{}]", Ipv6Addr::from(a))),
    ]
}

/// A valid target: a host text that normalises, and a port.
fn target() -> impl Strategy<Value = (String, Target)> {
    (host_text(), 1u16..).prop_map(|(h, port)| {
        let host = normalise_host(&h).expect("generated hosts normalise");
        (h, Target { host, port })
    })
}

/// Bytes with a few edits: flips, inserts, deletions, truncation.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (base, prop::collection::vec((0u8..4, any::<prop::sample::Index>(), any::<u8>()), 1..4)).prop_map(
        |(mut b, edits)| {
            for (op, at, byte) in edits {
                let i = at.index(b.len() + 1);
                match op {
                    0 if i < b.len() => b[i] = byte,
                    1 => b.insert(i, byte),
                    2 if i < b.len() => {
                        b.remove(i);
                    }
                    _ => b.truncate(i),
                }
            }
            b
        },
    )
}

/// Characters that matter in authorities and URIs, plus anything.
fn authority_junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.:\\[\\]@%_*/?#\\\\-]{0,40}",
        "\\PC{0,40}",
        target()
            .prop_flat_map(|(_, t)| mutated(Just(t.authority().into_bytes())))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn request(method: &Method, uri: &str, host: Option<&str>) -> Option<Request<()>> {
    let mut b = Request::builder().method(method.clone()).uri(uri);
    if let Some(h) = host {
        b = b.header(HOST, h);
    }
    b.body(()).ok()
}

/// What every accepted target must be: a port, and a host in its one normal form.
fn assert_normal(t: &Target) {
    assert_ne!(t.port, 0, "{t:?}");
    assert_eq!(normalise_host(&t.host.to_string()).as_ref(), Ok(&t.host), "{t:?} is not normal");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn formatted_authorities_parse_back((written, t) in target()) {
        prop_assert_eq!(parse_authority(&t.authority(), None), Ok(t.clone()));
        // As the client wrote it (any case, trailing dot, IDN), too.
        prop_assert_eq!(parse_authority(&format!("{written}:{}", t.port), None), Ok(t.clone()));
        let default = parse_authority(&written, Some(t.port));
        prop_assert_eq!(default, Ok(t));
    }

    #[test]
    fn formatted_requests_parse_back((_, t) in target(), path in "(/[a-zA-Z0-9._~%-]{0,10}){0,3}(\\?[a-z=&]{0,10})?") {
        let auth = t.authority();
        let connect = request(&Method::CONNECT, &auth, None).expect("a CONNECT request");
        prop_assert_eq!(connect_target(&connect), Ok(t.clone()));
        let uri = format!("http://{auth}{path}");
        let get = request(&Method::GET, &uri, Some(&auth)).expect("a GET request");
        prop_assert_eq!(forward_target(&get), Ok(t.clone()));
        let bare = request(&Method::GET, &uri, None).expect("a GET request");
        prop_assert_eq!(forward_target(&bare), Ok(t));
    }

    #[test]
    fn authorities_never_panic_and_accepted_ones_are_normal(auth in authority_junk(), default in prop::option::of(1u16..)) {
        if let Ok(t) = parse_authority(&auth, default) {
            assert_normal(&t);
            prop_assert!(!auth.contains('@'), "userinfo accepted in {:?}", auth);
            // What was accepted is decided as its normal form: formatting it parses back.
            prop_assert_eq!(parse_authority(&t.authority(), None), Ok(t));
        }
    }

    #[test]
    fn request_targets_never_panic(method in prop::sample::select(vec![Method::GET, Method::CONNECT, Method::POST]),
                                   uri in authority_junk(), host in prop::option::of(authority_junk()),
                                   scheme in prop::sample::select(vec!["", "http://", "HTTP://", "https://", "ftp://"])) {
        let Some(req) = request(&method, &format!("{scheme}{uri}"), host.as_deref()) else { return Ok(()) };
        let t = if method == Method::CONNECT { connect_target(&req) } else { forward_target(&req) };
        if let Ok(t) = t {
            assert_normal(&t);
        }
    }
}

// ---- SOCKS5 ----

/// How a generated SOCKS5 request names its target.
#[derive(Debug, Clone)]
enum SocksAddr {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Name(String),
}

/// Encodes a no-auth greeting (offering `methods`) and a CONNECT request.
fn socks_frame(methods: &[u8], addr: &SocksAddr, port: u16) -> Vec<u8> {
    let mut b = vec![5, methods.len() as u8];
    b.extend_from_slice(methods);
    b.extend_from_slice(&[5, 1, 0]);
    match addr {
        SocksAddr::V4(a) => {
            b.push(1);
            b.extend_from_slice(&a.octets());
        }
        SocksAddr::V6(a) => {
            b.push(4);
            b.extend_from_slice(&a.octets());
        }
        SocksAddr::Name(n) => {
            b.push(3);
            b.push(n.len() as u8);
            b.extend_from_slice(n.as_bytes());
        }
    }
    b.extend_from_slice(&port.to_be_bytes());
    b
}

fn socks_addr() -> impl Strategy<Value = SocksAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| SocksAddr::V4(a.into())),
        any::<[u8; 16]>().prop_map(|a| SocksAddr::V6(a.into())),
        host_text().prop_filter("fits a SOCKS name", |h| h.len() < 256).prop_map(SocksAddr::Name),
    ]
}

/// A greeting's method list that offers "no authentication" somewhere.
fn methods() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any::<u8>(), 0..6), any::<prop::sample::Index>()).prop_map(|(mut m, at)| {
        let i = at.index(m.len() + 1);
        m.insert(i, 0);
        m
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn socks5_requests_parse_back(m in methods(), addr in socks_addr(), port in 1u16..) {
        let (result, wrote) = socks5_handshake(&socks_frame(&m, &addr, port));
        let host = match &addr {
            SocksAddr::V4(a) => Host::Ip(IpAddr::V4(*a)),
            SocksAddr::V6(a) => Host::Ip(IpAddr::V6(*a)),
            SocksAddr::Name(n) => normalise_host(n).expect("generated hosts normalise"),
        };
        prop_assert_eq!(result.map_err(|e| e.1), Ok(Target { host, port }));
        prop_assert_eq!(wrote, vec![5, 0]);
    }

    #[test]
    fn socks5_refusals_name_a_reason(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        mutated((methods(), socks_addr(), any::<u16>()).prop_map(|(m, a, p)| socks_frame(&m, &a, p))),
    ]) {
        let (result, wrote) = socks5_handshake(&bytes);
        match result {
            Ok(t) => assert_normal(&t),
            Err((_, reason)) => prop_assert!(!reason.is_empty()),
        }
        // The server answers at most the method selection during the handshake.
        prop_assert!(wrote.is_empty() || wrote == [5, 0] || wrote == [5, 0xff], "{:?}", wrote);
    }
}

// ---- HTTP/1 request heads ----

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

fn header() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (
            "(X-[A-Za-z]{1,8}|Accept|User-Agent|Keep-Alive|TE|Upgrade|Proxy-Authorization|Proxy-Connection)",
            "[ -~]{0,20}"
        )
            .prop_map(|(n, v)| (n, v)),
        prop::collection::vec("(x-[a-z]{1,3}|keep-alive|te|accept|close)", 1..4)
            .prop_map(|names| ("Connection".to_string(), names.join(", "))),
        Just(("Transfer-Encoding".to_string(), "chunked".to_string())),
    ]
}

/// A request head the way a client writes one, with the target the proxy should read.
fn head() -> impl Strategy<Value = (Vec<u8>, Option<Target>)> {
    (
        target(),
        prop::sample::select(vec!["GET", "POST", "CONNECT", "DELETE"]),
        "(/[a-z0-9._~-]{0,8}){0,3}",
        any::<bool>(),
        prop::collection::vec(header(), 0..5),
    )
        .prop_map(|((_, t), method, path, with_host, headers)| {
            let auth = t.authority();
            let uri = if method == "CONNECT" { auth.clone() } else { format!("http://{auth}{path}") };
            let mut text = format!("{method} {uri} HTTP/1.1\r\n");
            if with_host {
                text.push_str(&format!("Host: {auth}\r\n"));
            }
            let chunked = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
            for (n, v) in headers {
                text.push_str(&format!("{n}: {v}\r\n"));
            }
            text.push_str("\r\n");
            if chunked {
                text.push_str("0\r\n\r\n");
            }
            (text.into_bytes(), Some(t))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_heads_parse_back((bytes, expected) in head()) {
        let seen = http1_requests(&bytes);
        prop_assert_eq!(seen.len(), 1, "{}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(seen[0].target.clone().ok(), expected);
        check_vetted(&seen[0]);
    }

    #[test]
    fn request_heads_never_panic(bytes in prop_oneof![
        mutated(head().prop_map(|(b, _)| b)),
        prop::collection::vec(any::<u8>(), 0..200),
    ]) {
        for v in http1_requests(&bytes) {
            check_vetted(&v);
        }
    }
}

/// What the proxy forwards: a normal target, an origin-form URI, no hop-by-hop header.
fn check_vetted(v: &paddock_proxy::fuzzing::Vetted) {
    let Ok(t) = &v.target else { return };
    assert_normal(t);
    let Some(up) = &v.upstream else {
        assert_eq!(v.method, Method::CONNECT);
        return;
    };
    assert!(up.uri.starts_with('/'), "upstream URI {:?}", up.uri);
    for (name, _) in &up.headers {
        assert!(!HOP.contains(&name.as_str()), "hop-by-hop header {name} forwarded");
    }
    assert_eq!(parse_authority(&up.host_header, Some(80)).as_ref(), Ok(t), "{up:?}");
}
