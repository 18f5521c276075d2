//! End-to-end tests of SOCKS5 CONNECT over loopback only (names are pinned to
//! 127.0.0.1 by the test policy).

mod common;

use common::*;
use paddock_proxy::{Kind, ProxyConfig, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn socks5_domain_tunnel_echoes() {
    let echo = echo_upstream().await;
    let proxy = Proxy::default().await;
    let (mut s, code) = socks_connect(proxy.addr, &domain("Allowed.Test."), echo.port()).await;
    assert_eq!(code, 0);
    s.write_all(b"hello socks").await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hello socks");
    let ev = proxy.events(1).await;
    let e = &ev[0];
    assert_eq!((e.kind, e.verdict, e.host.as_str()), (Kind::Socks5, Verdict::Allowed, "allowed.test"));
    assert_eq!((e.bytes_up, e.bytes_down, e.address), (11, 11, Some(echo)));
    proxy.stop().await;
}

#[tokio::test]
async fn socks5_refusals_answer_at_once() {
    let echo = echo_upstream().await;
    let proxy = Proxy::start(false, ProxyConfig::default()).await;
    // Each connection's event is recorded when its handler ends, which may be after the
    // client read its reply: each refusal's event is awaited before the next connection, so
    // each is paired with its own.
    let mut seen = 0;
    let mut rule_of_the_last = || {
        seen += 1;
        let n = seen;
        let proxy = &proxy;
        async move {
            let ev = proxy.events(n).await;
            assert_eq!(ev.len(), n, "one event per connection: {ev:?}");
            let last = &ev[n - 1];
            assert!(last.verdict == Verdict::Denied && last.kind == Kind::Socks5, "{last:?}");
            last.rule.clone()
        }
    };
    // Denied by policy.
    let (_, code) = socks_connect(proxy.addr, &domain("evil.test"), 443).await;
    assert_eq!(code, 2);
    assert_eq!(rule_of_the_last().await, "network.deny[0]");
    // Allowed name, loopback address, no allow_private.
    let (_, code) = socks_connect(proxy.addr, &domain("allowed.test"), echo.port()).await;
    assert_eq!(code, 2);
    assert_eq!(rule_of_the_last().await, "network.allow_private");
    // IPv4 literal without an entry.
    let (_, code) = socks_connect(proxy.addr, &[1, 127, 0, 0, 2], echo.port()).await;
    assert_eq!(code, 2);
    assert_eq!(rule_of_the_last().await, "network.default");
    // Bad host name.
    let (_, code) = socks_connect(proxy.addr, &domain("a..test"), 80).await;
    assert_eq!(code, 1);
    assert_eq!(rule_of_the_last().await, "proxy.request");
    // BIND is not supported.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(&got[..3], &[5, 0, 5]);
    assert_eq!(got[3], 7);
    assert_eq!(rule_of_the_last().await, "proxy.request");
    // Only username/password offered.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, [5, 0xff]);
    assert_eq!(rule_of_the_last().await, "proxy.request");
    proxy.stop().await;
}

#[tokio::test]
async fn curl_socks5_hostname() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed; skipped");
        return;
    }
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--noproxy", "", "--socks5-hostname"])
        .arg(proxy.addr.to_string())
        .arg(format!("http://allowed.test:{}/via-socks", up.port()))
        .output()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{body} {}", String::from_utf8_lossy(&out.stderr));
    assert!(body.starts_with("GET /via-socks HTTP/1.1"), "{body}");
    let ev = proxy.events(1).await;
    assert_eq!((ev[0].kind, ev[0].verdict), (Kind::Socks5, Verdict::Allowed));
    proxy.stop().await;
}
