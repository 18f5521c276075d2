//! End-to-end tests of HTTP CONNECT tunnels and absolute-URI forwarding,
//! over loopback only: the test policy pins names such as `allowed.test` to
//! 127.0.0.1, upstreams listen on 127.0.0.1, and clients are raw TcpStreams
//! (and curl, when installed).

mod common;

use std::time::Duration;

use common::*;
use paddock_proxy::{Kind, ProxyConfig, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn plain_http_is_forwarded_in_origin_form_without_hop_headers() {
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let req = format!(
        "POST http://Allowed.Test.:{p}/hello?x=1 HTTP/1.1\r\nHost: allowed.test:{p}\r\nProxy-Authorization: Basic c2VjcmV0\r\n\
         Proxy-Connection: keep-alive\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nX-Keep: 2\r\nContent-Length: 5\r\n\r\nhello",
        p = up.port()
    );
    let resp = exchange(proxy.addr, req.as_bytes()).await;
    assert_eq!(status(&resp), 200, "{resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(resp.contains("POST /hello?x=1 HTTP/1.1\n"), "{resp}");
    assert!(lower.contains(&format!("host: allowed.test:{}\n", up.port())), "{resp}");
    assert!(lower.contains("x-keep: 2\n"), "{resp}");
    assert!(lower.contains("x-upstream: yes"), "{resp}");
    for gone in ["proxy-authorization", "proxy-connection", "x-drop", "\nte:", "x-hop"] {
        assert!(!lower.contains(gone), "{gone} leaked: {resp}");
    }
    assert!(resp.ends_with("\n\nhello"), "{resp}");
    let body_len = resp.split_once("\r\n\r\n").unwrap().1.len() as u64;

    let ev = proxy.events(1).await;
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!((e.host.as_str(), e.port, e.kind, e.verdict), ("allowed.test", up.port(), Kind::Http, Verdict::Allowed));
    assert_eq!(e.rule, "network.allow[0]");
    assert_eq!(e.address, Some(up));
    assert_eq!(e.status, 200);
    assert_eq!(e.bytes_up, 5);
    assert_eq!(e.bytes_down, body_len);
    assert_eq!(e.error, None);
    proxy.stop().await;
}

#[tokio::test]
async fn connect_tunnel_echoes_and_counts_bytes() {
    tunnel_echo(ProxyConfig::default()).await;
}

#[tokio::test]
async fn connect_tunnel_without_splice_echoes_and_counts_bytes() {
    tunnel_echo(ProxyConfig { zero_copy: false, ..ProxyConfig::default() }).await;
}

/// A tunnel to the echo server: early bytes sent with the CONNECT head, a bulk
/// payload, then a half-close; everything must come back, counted both ways.
async fn tunnel_echo(cfg: ProxyConfig) {
    let echo = echo_upstream().await;
    let proxy = Proxy::start(true, cfg).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // The first payload bytes ride in the same segment as the CONNECT head.
    let first = b"early bytes|";
    let mut req =
        format!("CONNECT allowed.test:{p} HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n", p = echo.port()).into_bytes();
    req.extend_from_slice(first);
    s.write_all(&req).await.unwrap();
    let head = read_head(&mut s).await;
    assert_eq!(status(&head), 200, "{head}");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn({
        let payload = payload.clone();
        async move {
            w.write_all(&payload).await.unwrap();
            w.shutdown().await.unwrap(); // half-close: the echo server sees EOF, answers the rest, closes
        }
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await.unwrap().unwrap();
    writer.await.unwrap();
    let mut want = first.to_vec();
    want.extend_from_slice(&payload);
    assert_eq!(got.len(), want.len());
    assert!(got == want);

    let ev = proxy.events(1).await;
    let e = &ev[0];
    assert_eq!((e.kind, e.verdict, e.status), (Kind::Connect, Verdict::Allowed, 200));
    assert_eq!(e.address, Some(echo));
    assert_eq!(e.bytes_up, want.len() as u64);
    assert_eq!(e.bytes_down, want.len() as u64);
    assert_eq!(e.error, None);
    proxy.stop().await;
}

#[tokio::test]
async fn denied_host_gets_403_naming_the_rule() {
    let proxy = Proxy::default().await;
    let resp = exchange(proxy.addr, b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n").await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(
        resp.contains("paddock: CONNECT evil.test:443 refused by network.deny[0] (\"evil.test is denied\")"),
        "{resp}"
    );
    // A connection's event is recorded as its handler ends, which may come after the
    // client read the answer: the first one is awaited before the second connection.
    proxy.events(1).await;
    let resp = exchange(proxy.addr, b"GET http://elsewhere.test/ HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n").await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(resp.contains("refused by network.default"), "{resp}");
    assert!(resp.contains("to allow it add \"elsewhere.test\" to [network] allow"), "{resp}");
    let ev = proxy.events(2).await;
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.verdict == Verdict::Denied && e.status == 403 && e.address.is_none()));
    assert_eq!((ev[0].rule.as_str(), ev[0].kind), ("network.deny[0]", Kind::Connect));
    assert_eq!((ev[1].rule.as_str(), ev[1].kind), ("network.default", Kind::Http));
    proxy.stop().await;
}

#[tokio::test]
async fn pinned_to_loopback_without_allow_private_is_refused() {
    let echo = echo_upstream().await;
    let proxy = Proxy::start(false, ProxyConfig::default()).await;
    let resp = exchange(proxy.addr, format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(resp.contains("refused by network.allow_private"), "{resp}");
    assert!(resp.contains("loopback"), "{resp}");
    assert!(resp.contains("\"127.0.0.1/32\" to [network] allow_private"), "{resp}");
    // The literal has an explicit allow entry, but is still loopback.
    let resp = exchange(proxy.addr, format!("GET http://127.0.0.1:{}/ HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await;
    assert_eq!(status(&resp), 403, "{resp}");
    let ev = proxy.events(2).await;
    for e in &ev {
        assert_eq!((e.verdict, e.rule.as_str()), (Verdict::Denied, "network.allow_private"));
        assert_eq!(e.address, Some(echo), "the refused address is reported");
        assert_eq!((e.bytes_up, e.bytes_down), (0, 0));
    }
    proxy.stop().await;
}

#[tokio::test]
async fn ip_literals_need_an_explicit_entry() {
    let echo = echo_upstream().await;
    let proxy = Proxy::default().await;
    for req in [
        format!("CONNECT 127.0.0.2:{} HTTP/1.1\r\n\r\n", echo.port()),
        format!("CONNECT [::1]:{} HTTP/1.1\r\n\r\n", echo.port()),
        format!("GET http://127.0.0.2:{}/ HTTP/1.1\r\n\r\n", echo.port()),
    ] {
        let resp = exchange(proxy.addr, req.as_bytes()).await;
        assert_eq!(status(&resp), 403, "{req}: {resp}");
        assert!(resp.contains("refused by network.default"), "{resp}");
    }
    // 127.0.0.1 is listed, and allow_private covers it: the tunnel opens.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 200);
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    drop(s);
    let ev = proxy.events(4).await;
    assert_eq!(ev.iter().filter(|e| e.verdict == Verdict::Denied).count(), 3);
    assert_eq!(ev.iter().filter(|e| e.host == "::1").count(), 1, "{ev:?}");
    let ok = ev.iter().find(|e| e.verdict == Verdict::Allowed).unwrap();
    assert_eq!(
        (ok.host.as_str(), ok.rule.as_str(), ok.bytes_up, ok.bytes_down),
        ("127.0.0.1", "network.allow[1]", 4, 4)
    );
    proxy.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let p = up.port();
    let cases = [
        format!("GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: evil.test\r\n\r\n"),
        format!("GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nHost: evil.test\r\n\r\n"),
        format!("GET http://evil.test@allowed.test:{p}/ HTTP/1.1\r\n\r\n"),
        format!("GET http://user:pw@allowed.test:{p}/ HTTP/1.1\r\n\r\n"),
        "GET /index.html HTTP/1.1\r\nHost: allowed.test\r\n\r\n".to_string(),
        "GET https://allowed.test/ HTTP/1.1\r\n\r\n".to_string(),
        "GET http://allowed.test:0/ HTTP/1.1\r\n\r\n".to_string(),
        "GET http://allowed.test:70000/ HTTP/1.1\r\n\r\n".to_string(),
        "GET http://:80/ HTTP/1.1\r\n\r\n".to_string(),
        "GET http://127.1/ HTTP/1.1\r\n\r\n".to_string(),
        "CONNECT allowed.test HTTP/1.1\r\n\r\n".to_string(),
        "CONNECT allowed.test:0 HTTP/1.1\r\n\r\n".to_string(),
        "CONNECT a..test:443 HTTP/1.1\r\n\r\n".to_string(),
        "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03garbage\r\n\r\n".to_string(),
        "NOT HTTP AT ALL\r\n\r\n".to_string(),
    ];
    for (i, req) in cases.iter().enumerate() {
        let resp = exchange(proxy.addr, req.as_bytes()).await;
        assert_eq!(status(&resp), 400, "{req:?} -> {resp}");
        // Each connection's event before the next connection (it is recorded as its
        // handler ends, which may come after the client read the answer): in order.
        proxy.events(i + 1).await;
    }
    let ev = proxy.events(cases.len()).await;
    assert_eq!(ev.len(), cases.len());
    for e in &ev {
        assert_eq!((e.verdict, e.rule.as_str(), e.status), (Verdict::Denied, "proxy.request", 400), "{e:?}");
        assert!(e.address.is_none());
    }
    assert!(ev[0].reason.contains("disagrees"), "{:?}", ev[0]);
    proxy.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_gets_502() {
    let (port, _held) = closed_port();
    let proxy = Proxy::default().await;
    let resp = exchange(proxy.addr, format!("CONNECT unreach.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await;
    assert_eq!(status(&resp), 502, "{resp}");
    assert!(resp.contains("cannot connect to 127.0.0.1"), "{resp}");
    let ev = proxy.events(1).await;
    assert_eq!((ev[0].verdict, ev[0].status), (Verdict::Allowed, 502));
    assert!(ev[0].error.is_some());
    proxy.stop().await;
}

#[tokio::test]
async fn connect_timeout_gets_504() {
    // A loopback listener with a full accept queue drops SYNs, so a connect hangs.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(("127.0.0.1", port))).await
        {
            fillers.push(s);
        }
    }
    let cfg = ProxyConfig { connect_timeout: Duration::from_millis(300), ..ProxyConfig::default() };
    let proxy = Proxy::start(true, cfg).await;
    let t = std::time::Instant::now();
    let resp = exchange(proxy.addr, format!("CONNECT slow.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await;
    assert_eq!(status(&resp), 504, "{resp}");
    assert!(t.elapsed() < Duration::from_secs(3));
    let ev = proxy.events(1).await;
    assert_eq!(ev[0].status, 504);
    proxy.stop().await;
    drop(listener);
}

#[tokio::test]
async fn tunnel_cap_answers_503_and_idle_tunnels_close() {
    let echo = echo_upstream().await;
    // Idle long enough that the first tunnel is still open when the second asks, however
    // slowly this test's one thread runs.
    let cfg = ProxyConfig { max_tunnels: 1, idle_timeout: Duration::from_secs(2), ..ProxyConfig::default() };
    let proxy = Proxy::start(true, cfg).await;
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    first.write_all(format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut first).await), 200);
    let resp = exchange(proxy.addr, format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await;
    assert_eq!(status(&resp), 503, "{resp}");
    assert!(resp.contains("max_tunnels"), "{resp}");
    // The first tunnel idles out; its client sees EOF.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), first.read_to_end(&mut rest)).await.expect("idle close").ok();
    let ev = proxy.events(2).await;
    let busy = ev.iter().find(|e| e.status == 503).unwrap();
    assert_eq!((busy.verdict, busy.rule.as_str()), (Verdict::Denied, "proxy.max_tunnels"));
    let idle = ev.iter().find(|e| e.status == 200).unwrap();
    assert!(idle.error.as_deref().unwrap_or("").contains("idle"), "{idle:?}");
    // The slot is free again.
    let mut again = TcpStream::connect(proxy.addr).await.unwrap();
    again.write_all(format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut again).await), 200);
    drop(again);
    proxy.stop().await;
}

#[tokio::test]
async fn connection_cap_answers_503() {
    let cfg = ProxyConfig { max_connections: 1, ..ProxyConfig::default() };
    let proxy = Proxy::start(true, cfg).await;
    let _hold = TcpStream::connect(proxy.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = exchange(proxy.addr, b"GET http://allowed.test/ HTTP/1.1\r\n\r\n").await;
    assert_eq!(status(&resp), 503, "{resp}");
    let ev = proxy.events(1).await;
    assert_eq!((ev[0].rule.as_str(), ev[0].status), ("proxy.max_connections", 503));
    proxy.stop().await;
}

#[tokio::test]
async fn keep_alive_requests_are_decided_one_by_one() {
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("GET http://allowed.test:{}/one HTTP/1.1\r\n\r\n", up.port()).as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert_eq!(status(&head), 200, "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.unwrap();
    assert!(String::from_utf8_lossy(&body).starts_with("GET /one"));
    s.write_all(b"GET http://evil.test/two HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).await.unwrap();
    assert_eq!(status(&rest), 403, "{rest}");
    let ev = proxy.events(2).await;
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].verdict, Verdict::Allowed);
    assert_eq!(ev[1].verdict, Verdict::Denied);
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_tunnels_and_reports_them() {
    let echo = echo_upstream().await;
    let proxy = Proxy::default().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 200);
    s.write_all(b"abc").await.unwrap();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).await.unwrap();
    let addr = proxy.addr;
    let ev = proxy.stop().await;
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].bytes_up, ev[0].bytes_down), (3, 3));
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await.unwrap().ok();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn curl_through_the_proxy() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed; skipped");
        return;
    }
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let url = format!("http://allowed.test:{}/via-curl", up.port());
    let proxy_url = format!("http://{}", proxy.addr);
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl").args(args).output().await.unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), out.status)
    };
    // Absolute-URI forwarding.
    let (out, st) =
        run(vec!["-sS".into(), "--noproxy".into(), "".into(), "-x".into(), proxy_url.clone(), url.clone()]).await;
    assert!(st.success(), "{out}");
    assert!(out.starts_with("GET /via-curl HTTP/1.1"), "{out}");
    // Each connection's event is recorded as its handler ends, which may come after curl
    // read the answer: awaited before the next connection, so the events come in order.
    proxy.events(1).await;
    // CONNECT tunnel (-p).
    let (out, st) =
        run(vec!["-sS".into(), "-p".into(), "--noproxy".into(), "".into(), "-x".into(), proxy_url.clone(), url]).await;
    assert!(st.success(), "{out}");
    assert!(out.starts_with("GET /via-curl HTTP/1.1"), "{out}");
    proxy.events(2).await;
    // Denied.
    let (out, _) =
        run(vec!["-s".into(), "--noproxy".into(), "".into(), "-x".into(), proxy_url, "http://evil.test/".into()]).await;
    assert!(out.contains("refused by network.deny[0]"), "{out}");
    let ev = proxy.events(3).await;
    assert_eq!(ev.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![Kind::Http, Kind::Connect, Kind::Http]);
    proxy.stop().await;
}

#[tokio::test]
async fn silent_upstream_gets_504_and_is_reported() {
    // Accepts, reads, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let cfg = ProxyConfig { idle_timeout: Duration::from_millis(300), ..ProxyConfig::default() };
    let proxy = Proxy::start(true, cfg).await;
    let t = std::time::Instant::now();
    let resp = exchange(proxy.addr, format!("GET http://slow.test:{port}/ HTTP/1.1\r\n\r\n").as_bytes()).await;
    assert_eq!(status(&resp), 504, "{resp}");
    assert!(resp.contains("upstream sent no response"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(3));
    let ev = proxy.events(1).await;
    assert_eq!((ev[0].verdict, ev[0].status, ev[0].kind), (Verdict::Allowed, 504, Kind::Http));
    assert!(ev[0].error.is_some());
    proxy.stop().await;
    holder.abort();
}
