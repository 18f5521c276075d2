//! What every opaque tunnel is checked for, without interception: a ClientHello whose
//! server name is not the tunnel's target closes it before any byte reaches the upstream;
//! plain HTTP in a tunnel is served request by request, and a request for another host
//! ends it. CONNECT and SOCKS5 alike; loopback only.

mod common;

use std::time::Duration;

use common::*;
use paddock_proxy::Verdict;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_client_hello_naming_another_host_closes_the_tunnel_before_any_byte() {
    let (up, mut received) = counting_upstream().await;
    let proxy = Proxy::default().await;
    // evil.test is denied by name; other.example is in no allow entry; allowed.test is the target.
    for (sni, denied) in [("evil.test", true), ("other.example", true), ("allowed.test", false)] {
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", up.port()).as_bytes()).await.unwrap();
        assert_eq!(status(&read_head(&mut tcp).await), 200);
        let hello = client_hello(sni);
        let n = send_hello(tcp, &hello, &mut received).await;
        assert_eq!(n, if denied { 0 } else { hello.len() }, "SNI {sni}: bytes the upstream received");
    }
    let events = proxy.stop().await;
    let denied: Vec<_> = events.iter().filter(|e| e.verdict == Verdict::Denied).collect();
    assert_eq!(denied.len(), 2, "{events:?}");
    for e in denied {
        assert_eq!((e.rule.as_str(), e.bytes_up, e.host.as_str()), ("proxy.sni", 0, "allowed.test"), "{e:?}");
        assert!(e.reason.contains("names ") && e.reason.contains("but this tunnel is for allowed.test"), "{e:?}");
    }
}

#[tokio::test]
async fn a_socks5_tunnel_checks_the_client_hello_too() {
    let (up, mut received) = counting_upstream().await;
    let proxy = Proxy::default().await;
    let (s, code) = socks_connect(proxy.addr, &domain("allowed.test"), up.port()).await;
    assert_eq!(code, 0);
    assert_eq!(send_hello(s, &client_hello("evil.test"), &mut received).await, 0);
    let events = proxy.stop().await;
    assert!(events.iter().any(|e| e.verdict == Verdict::Denied && e.rule == "proxy.sni"), "{events:?}");
}

/// Reads one response (head and `Content-Length` body) from `s`.
async fn response(s: &mut TcpStream) -> (u16, String) {
    let head = read_head(s).await;
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut body)).await.unwrap().unwrap();
    (status(&head), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn plain_http_in_a_tunnel_is_checked_request_by_request() {
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let port = up.port();
    // Each case: the requests after the first one for the target, sent in one write
    // (pipelined); the first passes, the next names another host.
    let cases = [
        format!("GET /two HTTP/1.1\r\nHost: evil.test:{port}\r\n\r\n"),
        format!("GET http://other.example:{port}/two HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n"),
        format!("GET /two HTTP/1.1\r\nHost: allowed.test:{port}\r\nHost: other.example\r\n\r\n"),
        format!("GET /two HTTP/1.1\r\nHost: allowed.test:{}\r\n\r\n", port.wrapping_add(1)),
    ];
    for next in &cases {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(status(&read_head(&mut s).await), 200);
        // The first request names the target (a Host without a port means the tunnel's).
        let first = "POST /one HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 2\r\n\r\nhi";
        s.write_all(format!("{first}{next}").as_bytes()).await.unwrap();
        let (code, body) = response(&mut s).await;
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with("POST /one") && body.ends_with("hi"), "{body}");
        let (code, body) = response(&mut s).await;
        assert_eq!(code, 421, "{next}: {body}");
        assert!(body.contains("needs its own CONNECT"), "{body}");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert!(rest.is_empty(), "the tunnel ended after the 421: {}", String::from_utf8_lossy(&rest));
    }
    let events = proxy.stop().await;
    let ended: Vec<_> = events.iter().filter(|e| e.rule == "proxy.tunnel_host").collect();
    assert_eq!(ended.len(), cases.len(), "{events:?}");
    assert!(ended.iter().all(|e| e.verdict == Verdict::Denied && e.status == 421), "{ended:?}");
}

#[tokio::test]
async fn request_lines_a_lenient_server_takes_are_served_request_by_request_too() {
    let (up, mut received) = counting_upstream().await;
    let proxy = Proxy::default().await;
    let port = up.port();
    // Empty lines first, a lower-case method, no version (HTTP/0.9 to some servers, which
    // still read the headers after it): still HTTP, still checked, none of it upstream.
    for first in [
        "\r\n\r\nGET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n",
        "get /x HTTP/1.1\r\nHost: evil.test\r\n\r\n",
        "GET\t/x\tHTTP/1.1\r\nHost: evil.test\r\n\r\n",
        "GET /x\r\nHost: evil.test\r\n\r\n",
        // What CPython's http.server also takes: white space first, other white space
        // between, `GET` and any one word.
        " GET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n",
        "GET\x0b/x\x0bHTTP/1.1\r\nHost: evil.test\r\n\r\n",
        "GET abc\r\nHost: evil.test\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(status(&read_head(&mut s).await), 200);
        s.write_all(first.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all)).await.unwrap().unwrap();
        let all = String::from_utf8_lossy(&all);
        assert!(all.starts_with("HTTP/1.1 421") || all.starts_with("HTTP/1.1 400"), "{first:?}: {all:?}");
        let n = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
        assert_eq!(n, 0, "{first:?}: no byte reached the upstream");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn an_upgrade_other_than_websocket_in_a_plain_tunnel_is_refused() {
    let (up, mut received) = counting_upstream().await;
    let proxy = Proxy::default().await;
    let port = up.port();
    // Past a 101 the bytes go unread: h2c streams and a TLS ClientHello name hosts of their own.
    for upgrade in ["h2c", "TLS/1.2", "websocket, h2c"] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(status(&read_head(&mut s).await), 200);
        let req =
            format!("GET / HTTP/1.1\r\nHost: allowed.test:{port}\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let (code, body) = response(&mut s).await;
        assert_eq!(code, 421, "{upgrade}: {body}");
        assert!(body.contains("only WebSocket is relayed"), "{body}");
        let n = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
        assert_eq!(n, 0, "{upgrade}: no byte reached the upstream");
    }
    let events = proxy.stop().await;
    assert_eq!(events.iter().filter(|e| e.rule == "proxy.tunnel_host").count(), 3, "{events:?}");
}

#[tokio::test]
async fn a_request_line_sent_in_pieces_ends_the_tunnel() {
    let echo = echo_upstream().await;
    let proxy = Proxy::default().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 200);
    // One word is sent on at once (a client waiting for its answer is not held up)...
    s.write_all(b"GET").await.unwrap();
    let mut b = [0u8; 3];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b)).await.unwrap().unwrap();
    assert_eq!(&b, b"GET");
    // ...but once the rest makes it a request line, the tunnel ends: none of it went on.
    s.write_all(b" /x HTTP/1.1\r\nHost: evil.test\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "nothing more was echoed: {:?}", String::from_utf8_lossy(&rest));
    let events = proxy.stop().await;
    let e = events.iter().find(|e| e.verdict == Verdict::Denied).expect("a refusal");
    assert_eq!((e.rule.as_str(), e.bytes_up), ("proxy.client_hello", 3), "{e:?}");
    assert!(e.reason.contains("came in pieces"), "{e:?}");
}

#[tokio::test]
async fn plain_http_for_the_target_keeps_its_tunnel_alive() {
    let up = http_upstream().await;
    let proxy = Proxy::default().await;
    let port = up.port();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 200);
    for i in 0..3 {
        s.write_all(format!("GET /{i} HTTP/1.1\r\nHost: Allowed.Test.:{port}\r\nX-Case: kept\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (code, body) = response(&mut s).await;
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with(&format!("GET /{i} ")), "{body}");
    }
    drop(s);
    let events = proxy.stop().await;
    assert!(events.iter().all(|e| e.verdict == Verdict::Allowed), "{events:?}");
}

#[tokio::test]
async fn an_upgrade_in_a_plain_tunnel_becomes_a_byte_relay() {
    // An upstream that answers the first request with 101, then echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("GET /ws HTTP/1.1"), "{head}");
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await
            .unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let proxy = Proxy::default().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 200);
    let upgrade =
        format!("GET /ws HTTP/1.1\r\nHost: allowed.test:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    s.write_all(upgrade.as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 101);
    // Past the upgrade the bytes are not HTTP, and are relayed as they are.
    let frame = b"\x81\x04ping GET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n";
    s.write_all(frame).await.unwrap();
    let mut back = vec![0u8; frame.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(back, frame, "echoed through the relay");
    drop(s);
    let events = proxy.stop().await;
    assert!(events.iter().all(|e| e.verdict == Verdict::Allowed), "{events:?}");
}

/// An upstream that tells when its first bytes came, then how its connection ended:
/// `true` for a clean end (FIN), `false` for a reset.
async fn ending_upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let mut told = false;
        let end = loop {
            match s.read(&mut buf).await {
                Ok(0) => break "clean end",
                Ok(_) if !told => {
                    told = true;
                    let _ = tx.send("bytes");
                }
                Ok(_) => {}
                Err(_) => break "reset",
            }
        };
        let _ = tx.send(end);
    });
    (port, rx)
}

#[tokio::test]
async fn an_unfinished_request_line_is_never_ended_cleanly_upstream() {
    let proxy = Proxy::default().await;
    // The client ends its side after an unfinished request line, or finishes it later:
    // either way the upstream, which has the start of the line, sees a reset, never the
    // clean end after which some servers take a line as it is.
    for finish in [None, Some("\r\n")] {
        let (port, mut ended) = ending_upstream().await;
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(status(&read_head(&mut s).await), 200);
        s.write_all(b"GET http://evil.test/x HTTP/1.1").await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), ended.recv()).await.unwrap();
        assert_eq!(first, Some("bytes"), "the unfinished line went on");
        match finish {
            None => s.shutdown().await.unwrap(),
            Some(rest) => s.write_all(rest.as_bytes()).await.unwrap(),
        }
        let how = tokio::time::timeout(Duration::from_secs(10), ended.recv()).await.unwrap();
        assert_eq!(how, Some("reset"), "{finish:?}");
    }
    let events = proxy.stop().await;
    assert_eq!(events.iter().filter(|e| e.rule == "proxy.client_hello").count(), 2, "{events:?}");
}

/// A PROXY protocol header (HAProxy's, text or binary) as a tunnel's first bytes closes
/// it before any byte reaches the upstream: a front end that takes it would route the
/// request after it by its `Host`, unchecked (found by an attack: the header is no
/// request line, and the tunnel was relayed as another protocol). Also when it comes in
/// pieces.
#[tokio::test]
async fn a_proxy_protocol_header_closes_the_tunnel_before_any_byte() {
    let (up, mut received) = counting_upstream().await;
    let proxy = Proxy::default().await;
    let port = up.port();
    let request = "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n";
    let v1 = format!("PROXY TCP4 10.9.8.7 10.9.8.6 1111 80\r\n{request}");
    let v2 =
        [&b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"[..], &[10, 9, 8, 7, 10, 9, 8, 6, 4, 87, 0, 80], request.as_bytes()]
            .concat();
    for pieces in [vec![v1.as_bytes().to_vec()], vec![v2.clone()], vec![b"PRO".to_vec(), v1.as_bytes()[3..].to_vec()]] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(status(&read_head(&mut s).await), 200);
        for p in &pieces {
            let _ = s.write_all(p).await;
        }
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all)).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
        assert_eq!(n, 0, "{pieces:?}: no byte reached the upstream");
    }
    let events = proxy.stop().await;
    let denied: Vec<_> = events.iter().filter(|e| e.verdict == Verdict::Denied).collect();
    assert_eq!(denied.len(), 3, "{events:?}");
    assert!(denied.iter().all(|e| e.reason.contains("PROXY protocol")), "{denied:?}");
}
