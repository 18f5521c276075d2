//! Shared fixtures: a test policy, a proxy on 127.0.0.1, loopback upstreams
//! and raw-socket helpers. Nothing here dials anything but loopback.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paddock_proxy::{serve, ConnectionEvent, HostDecision, HostPolicy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// allowed.test, unreach.test, slow.test → 127.0.0.1 (pinned); evil.test denied;
/// the literal 127.0.0.1 allowed by an explicit entry; everything else denied.
pub struct TestPolicy {
    pub allow_private: bool,
}

impl HostPolicy for TestPolicy {
    fn decide(&self, host: &str, _port: u16) -> HostDecision {
        match host {
            "allowed.test" | "unreach.test" | "slow.test" => {
                HostDecision::allow("network.allow[0]", format!("{host} matches \"*.test\""))
            }
            "127.0.0.1" => HostDecision::allow("network.allow[1]", "127.0.0.1 is listed"),
            "evil.test" => HostDecision::deny("network.deny[0]", "evil.test is denied"),
            _ => HostDecision::deny("network.default", format!("no [network] allow entry matches {host}")),
        }
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        matches!(host, "allowed.test" | "unreach.test" | "slow.test").then_some(LOOPBACK)
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        self.allow_private && addr == LOOPBACK
    }
}

pub type Events = Arc<Mutex<Vec<ConnectionEvent>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    pub events: Events,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    pub async fn start(allow_private: bool, cfg: ProxyConfig) -> Proxy {
        Proxy::start_with(Arc::new(TestPolicy { allow_private }), cfg).await
    }

    pub async fn start_with(policy: Arc<dyn HostPolicy>, cfg: ProxyConfig) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let events: Events = Arc::default();
        let sink = events.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task =
            tokio::spawn(serve(listener, policy, Arc::new(move |e| sink.lock().unwrap().push(e)), cfg, async move {
                let _ = stopped.await;
            }));
        Proxy { addr, events, stop: Some(stop), task }
    }

    pub async fn default() -> Proxy {
        Proxy::start(true, ProxyConfig::default()).await
    }

    /// Waits until `n` events have arrived, and returns them.
    pub async fn events(&self, n: usize) -> Vec<ConnectionEvent> {
        for _ in 0..500 {
            {
                let e = self.events.lock().unwrap();
                if e.len() >= n {
                    return e.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} events, got {:?}", self.events.lock().unwrap());
    }

    pub async fn stop(mut self) -> Vec<ConnectionEvent> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.unwrap().unwrap().unwrap();
        self.events.lock().unwrap().clone()
    }
}

/// An HTTP server on 127.0.0.1 that answers with what it received.
pub async fn http_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
                    let mut names: Vec<_> =
                        req.headers().iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap())).collect();
                    names.sort();
                    for n in names {
                        text.push_str(&n);
                        text.push('\n');
                    }
                    text.push('\n');
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    text.push_str(&String::from_utf8_lossy(&body));
                    let resp = Response::builder()
                        .header("x-upstream", "yes")
                        .header("connection", "x-hop")
                        .header("x-hop", "must not pass")
                        .body(Full::new(Bytes::from(text)))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    });
    addr
}

/// A TCP echo server on 127.0.0.1 that closes its side after the client's EOF.
pub async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A loopback port with nothing listening, and the socket that holds it: bound, never
/// listened on, so a connection to it is refused and no other socket takes the port while
/// the socket is kept.
pub fn closed_port() -> (u16, tokio::net::TcpSocket) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (s.local_addr().unwrap().port(), s)
}

/// Sends raw bytes, half-closes, and reads the whole answer.
pub async fn exchange(proxy: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("proxy answered in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a response head (up to the blank line) from a stream.
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await.expect("head in time").unwrap();
        assert!(n > 0, "connection closed mid-head: {:?}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

pub fn status(resp: &str) -> u16 {
    resp.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {resp:?}"))
}

/// Greets, asks for `addr` (already encoded: ATYP + address) and `port`;
/// returns the stream and the reply code.
pub async fn socks_connect(proxy: std::net::SocketAddr, addr: &[u8], port: u16) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0]);
    let mut req = vec![5, 1, 0];
    req.extend_from_slice(addr);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[0], 5);
    (s, reply[1])
}

pub fn domain(name: &str) -> Vec<u8> {
    let mut v = vec![3, name.len() as u8];
    v.extend_from_slice(name.as_bytes());
    v
}

/// A TCP upstream that reports how many bytes it received before the other side closed.
pub async fn counting_upstream() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0;
                loop {
                    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                        Ok(Ok(k)) => n += k,
                    }
                }
                let _ = tx.send(n);
            });
        }
    });
    (addr, rx)
}

/// A real TLS ClientHello (rustls) with server name `sni`, as a client's first bytes.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Sends `hello` as the tunnel's first bytes and half-closes; how many bytes the
/// upstream received.
pub async fn send_hello(
    mut tcp: TcpStream,
    hello: &[u8],
    received: &mut tokio::sync::mpsc::UnboundedReceiver<usize>,
) -> usize {
    tcp.write_all(&hello[..40]).await.unwrap();
    tcp.write_all(&hello[40..]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await.unwrap();
    assert!(closed.is_err() || rest.is_empty(), "the upstream sent nothing");
    n
}

/// The test policy, until `revoked` is set: then `allowed.test` is refused, as
/// `paddock revoke network:allowed.test` makes a session's policy refuse it.
pub struct Revocable {
    pub revoked: Arc<std::sync::atomic::AtomicBool>,
}

impl HostPolicy for Revocable {
    fn decide(&self, host: &str, port: u16) -> HostDecision {
        if host == "allowed.test" && self.revoked.load(std::sync::atomic::Ordering::SeqCst) {
            return HostDecision::deny("revocations[0]", "revoked by `network:allowed.test`");
        }
        TestPolicy { allow_private: true }.decide(host, port)
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        TestPolicy { allow_private: true }.pinned(host)
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        TestPolicy { allow_private: true }.private_allowed(addr)
    }
}
