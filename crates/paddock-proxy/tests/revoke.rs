//! Revocations reach what is already open: a tunnel, a forwarded request still
//! streaming, a tunnel a person let through. Policies switched by the test stand in for a
//! session's policy re-reading its revocation list. Loopback only.

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use paddock_proxy::{HostDecision, HostPolicy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn a_revocation_cuts_the_tunnels_already_open() {
    let echo = echo_upstream().await;
    let revoked = Arc::new(AtomicBool::new(false));
    let proxy = Proxy::start_with(Arc::new(Revocable { revoked: Arc::clone(&revoked) }), ProxyConfig::default()).await;
    let mut relay = TcpStream::connect(proxy.addr).await.unwrap();
    relay.write_all(format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut relay).await), 200);
    relay.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    relay.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping", "control: the tunnel relays");
    revoked.store(true, Ordering::SeqCst);
    // The tunnel is closed without the client doing anything: its read ends.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), relay.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the open tunnel was cut after the revocation");
    let resp = exchange(proxy.addr, format!("CONNECT allowed.test:{} HTTP/1.1\r\n\r\n", echo.port()).as_bytes()).await;
    assert_eq!(status(&resp), 403, "a new tunnel is refused: {resp}");
    let events = proxy.stop().await;
    let cut = events.iter().find(|e| e.status == 200).expect("the first tunnel's event");
    assert!(cut.error.as_deref().unwrap_or("").contains("cut while open: revocations[0]"), "{cut:?}");
}

/// `allowed.test` by a switch: 0 asked about (and a person allows), 1 allowed by a rule,
/// 2 refused (revoked), 3 asked about with the answer's own rule revoked.
struct Switched {
    mode: Arc<AtomicU8>,
}

impl HostPolicy for Switched {
    fn decide(&self, host: &str, port: u16) -> HostDecision {
        match (host, self.mode.load(Ordering::SeqCst)) {
            ("allowed.test", 0 | 3) => HostDecision { ask: true, ..HostDecision::deny("network.ask[0]", "asked") },
            ("allowed.test", 2) => HostDecision::deny("network.ask[0]", "revoked by `network:allowed.test`"),
            _ => TestPolicy { allow_private: true }.decide(host, port),
        }
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        TestPolicy { allow_private: true }.pinned(host)
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        TestPolicy { allow_private: true }.private_allowed(addr)
    }
    fn ask(
        &self,
        _host: &str,
        _port: u16,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostDecision> + Send>> {
        Box::pin(std::future::ready(HostDecision::allow("approved[0]", "a person allowed it always")))
    }
    fn recheck_answer(&self, _host: &str, _port: u16, rule: &str) -> Option<HostDecision> {
        (self.mode.load(Ordering::SeqCst) == 3 && rule == "approved[0]")
            .then(|| HostDecision::deny("approved[0]", "revoked by `rule:approved[0]`"))
    }
}

/// Opens a tunnel to the echo server and checks that it relays.
async fn open_tunnel(proxy: &Proxy, port: u16) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert_eq!(status(&read_head(&mut s).await), 200);
    s.write_all(b"\x00ping").await.unwrap();
    let mut b = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b)).await.unwrap().unwrap();
    s
}

/// Whether the proxy ends the tunnel (EOF) within `wait`.
async fn ended_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(wait, s.read_to_end(&mut rest)).await.is_ok()
}

#[tokio::test]
async fn a_tunnel_a_person_let_through_is_cut_when_refused_not_when_asked_about() {
    let echo = echo_upstream().await;
    let mode = Arc::new(AtomicU8::new(0));
    let proxy = Proxy::start_with(Arc::new(Switched { mode: Arc::clone(&mode) }), ProxyConfig::default()).await;
    // Let through by a person's answer: its host still asked about, it stays open...
    let mut asked = open_tunnel(&proxy, echo.port()).await;
    assert!(!ended_within(&mut asked, Duration::from_millis(700)).await, "an answered tunnel stays open");
    // ...until the host is refused.
    mode.store(2, Ordering::SeqCst);
    assert!(ended_within(&mut asked, Duration::from_secs(10)).await, "cut once refused");
    // Or until the answer itself is revoked (`revoke rule:approved[N]`), its host still
    // only asked about (found by an attack: such a tunnel kept streaming).
    mode.store(0, Ordering::SeqCst);
    let mut answered = open_tunnel(&proxy, echo.port()).await;
    mode.store(3, Ordering::SeqCst);
    assert!(ended_within(&mut answered, Duration::from_secs(10)).await, "cut once its answer is revoked");
    // Let through by a rule: once the host is only asked about again (the rule that
    // allowed it revoked), it is cut.
    mode.store(1, Ordering::SeqCst);
    let mut ruled = open_tunnel(&proxy, echo.port()).await;
    mode.store(0, Ordering::SeqCst);
    assert!(ended_within(&mut ruled, Duration::from_secs(10)).await, "cut once its rule no longer allows it");
    proxy.stop().await;
}

#[tokio::test]
async fn a_revocation_cuts_a_forwarded_request_still_streaming() {
    // An upstream that reads a request's body until its connection ends, and says when.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut ended) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let (flowing, mut first_bytes) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        while let Ok(k @ 1..) = s.read(&mut buf).await {
            if n == 0 {
                let _ = flowing.send(());
            }
            n += k;
        }
        let _ = tx.send(n);
    });
    let revoked = Arc::new(AtomicBool::new(false));
    let proxy = Proxy::start_with(Arc::new(Revocable { revoked: Arc::clone(&revoked) }), ProxyConfig::default()).await;
    let mut c = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST http://allowed.test:{port}/up HTTP/1.1\r\nHost: allowed.test:{port}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // A body that never ends: one chunk every 20 ms, until the proxy stops taking them.
    let feeder = tokio::spawn(async move {
        while c.write_all(b"1\r\na\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // Revoked once the request flows upstream, not after a guess at how long that takes.
    tokio::time::timeout(Duration::from_secs(10), first_bytes.recv()).await.expect("the request reached upstream");
    assert!(ended.try_recv().is_err(), "control: the upload is still going");
    revoked.store(true, Ordering::SeqCst);
    let n = tokio::time::timeout(Duration::from_secs(10), ended.recv()).await.expect("the upload was cut").unwrap();
    assert!(n > 0, "some of it had gone through before");
    feeder.abort();
    let events = proxy.stop().await;
    let e = events.iter().find(|e| e.host == "allowed.test").expect("the request's event");
    assert!(e.reason.contains("cut while open: revocations[0]"), "{e:?}");
}
