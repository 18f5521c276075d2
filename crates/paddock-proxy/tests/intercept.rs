//! TLS interception end to end, over loopback only: a TLS upstream on 127.0.0.1 with its
//! own test CA (given through `upstream_ca`), reached under the name `allowed.test` that
//! the test policy pins to 127.0.0.1; clients trust the session CA and talk through the
//! proxy with HTTP/1.1 and HTTP/2.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use paddock_proxy::{
    ca_bundle_pem, ConnectionEvent, Deny, HttpEvent, Intercept, Interceptor, Kind, ProxyConfig, RequestParts,
    RequestVerdict, SessionCa, Verdict,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const PLACEHOLDER: &str = "paddock-secret-github-0123456789";
const REAL: &str = "ghp_the_real_value";
const MIB: u64 = 1 << 20;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------
// The interceptor under test: a stand-in for the supervisor's secrets and rules.

#[derive(Default)]
struct TestInterceptor {
    records: Mutex<Vec<HttpEvent>>,
    /// Set: `/big` is refused from now on (as a revoked rule would refuse it).
    big_revoked: std::sync::atomic::AtomicBool,
}

impl Interceptor for TestInterceptor {
    fn intercepts(&self, host: &str, _port: u16) -> bool {
        host == "allowed.test" || host == "127.0.0.1"
    }

    fn request(&self, req: &mut RequestParts<'_>) -> RequestVerdict {
        if req.path_and_query.starts_with("/denied") {
            return RequestVerdict::Deny(Deny {
                rule: "network.http[0].deny[0]".into(),
                reason: format!("{} {} is denied", req.method, req.path_and_query),
                exfiltration: false,
            });
        }
        let bearer = format!("Bearer {PLACEHOLDER}");
        if req.headers.get("authorization").is_some_and(|v| v.as_bytes() == bearer.as_bytes()) {
            req.headers.insert("authorization", format!("Bearer {REAL}").parse().unwrap());
            return RequestVerdict::Allow { secret: Some("github".into()) };
        }
        RequestVerdict::Allow { secret: None }
    }

    fn tunnel(&self, host: &str, _port: u16, sni: Option<&str>) -> Option<Deny> {
        let deny = |what: &str| Deny {
            rule: "secrets.github".into(),
            reason: format!("the placeholder of secrets.github in the {what}"),
            exfiltration: true,
        };
        // unreach.test stands for a CONNECT target that carries a placeholder (the test
        // policy allows no such name).
        if host.contains("paddock-secret") || host == "unreach.test" {
            return Some(deny("CONNECT target"));
        }
        sni.filter(|s| s.contains("paddock-secret")).map(|_| deny("server name"))
    }

    fn record(&self, event: HttpEvent) {
        self.records.lock().unwrap().push(event);
    }

    fn reads_forms(&self, host: &str, _port: u16) -> bool {
        host == "allowed.test"
    }

    fn form(&self, _req: &RequestParts<'_>, body: &[u8]) -> Option<Deny> {
        body.windows(14).any(|w| w == b"_method=DELETE").then(|| Deny {
            rule: "network.http[0].deny[0]".into(),
            reason: "the form body's `_method` asks for DELETE".into(),
            exfiltration: false,
        })
    }

    fn still(&self, event: &HttpEvent) -> Option<Deny> {
        (self.big_revoked.load(Ordering::SeqCst) && event.path.starts_with("/big")).then(|| Deny {
            rule: "network.http[0].allow[0]".into(),
            reason: "revoked by `rule:network.http[0].allow[0]`".into(),
            exfiltration: false,
        })
    }
}

impl TestInterceptor {
    async fn records(&self, n: usize) -> Vec<HttpEvent> {
        for _ in 0..1000 {
            {
                let r = self.records.lock().unwrap();
                if r.len() >= n {
                    return r.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} records, got {:?}", self.records.lock().unwrap());
    }
}

// ---------------------------------------------------------------------------------------
// The TLS upstream with its own CA.

/// A CA of the test's own, written to a PEM file for `upstream_ca`.
struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem_file: PathBuf,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "paddock test upstream CA");
        let cert = params.self_signed(&key).unwrap();
        static N: AtomicUsize = AtomicUsize::new(0);
        let pem_file = std::env::temp_dir().join(format!(
            "paddock-intercept-test-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&pem_file, cert.pem()).unwrap();
        TestCa { cert, key, pem_file }
    }

    /// A server config for `names`, ALPN h2 and http/1.1.
    fn server(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let leaf_key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let leaf = params.signed_by(&leaf_key, &self.cert, &self.key).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem_file);
    }
}

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    authorization: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

/// A body of `left` bytes of a fixed pattern, produced in 64 KiB chunks.
struct Pattern {
    sent: u64,
    total: u64,
}

const CHUNK: usize = 64 * 1024;

/// The pattern from byte `at` on, `n <= CHUNK` bytes: byte i is `i % 251`.
fn pattern(at: u64, n: usize) -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let p = PATTERN.get_or_init(|| (0..CHUNK + 251).map(|i| (i % 251) as u8).collect());
    let start = (at % 251) as usize;
    &p[start..start + n]
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.total {
            return Poll::Ready(None);
        }
        let n = (self.total - self.sent).min(CHUNK as u64);
        let chunk = Bytes::from_static(pattern(self.sent, n as usize));
        self.sent += n;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

/// A TLS server on 127.0.0.1 (HTTP/1.1 and HTTP/2). `/big?mib=N` streams N MiB of the
/// pattern; any other path answers with the method, path and `authorization` it got.
async fn tls_upstream(cfg: Arc<rustls::ServerConfig>) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else { return };
            s.set_nodelay(true).unwrap();
            state.connections.fetch_add(1, Ordering::Relaxed);
            let acceptor = TlsAcceptor::from(cfg.clone());
            let state = state.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else { return };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        state.requests.fetch_add(1, Ordering::Relaxed);
                        let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned());
                        state.authorization.lock().unwrap().push(auth.clone().unwrap_or_default());
                        let path = req.uri().path().to_owned();
                        if path == "/big" {
                            let mib: u64 = req.uri().query().unwrap().trim_start_matches("mib=").parse().unwrap();
                            let body = Pattern { sent: 0, total: mib * MIB }.boxed();
                            return Ok::<_, Infallible>(Response::new(body));
                        }
                        let version = format!("{:?}", req.version());
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let text = format!(
                            "{version} {path} authorization={} body={}",
                            auth.unwrap_or_default(),
                            String::from_utf8_lossy(&body)
                        );
                        let resp =
                            Response::builder().header("x-upstream", "yes").body(Full::new(Bytes::from(text)).boxed());
                        Ok(resp.unwrap())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

// ---------------------------------------------------------------------------------------
// The proxy with interception, and clients that trust the session CA.

struct Setup {
    proxy: Proxy,
    interceptor: Arc<TestInterceptor>,
    ca: Arc<SessionCa>,
    upstream: SocketAddr,
    seen: Arc<Seen>,
    _test_ca: TestCa,
}

/// An upstream with a certificate for `allowed.test`, a proxy that intercepts it; the
/// proxy trusts the upstream's CA when `trust_upstream`.
async fn setup(trust_upstream: bool) -> Setup {
    setup_with(trust_upstream, Arc::new(TestPolicy { allow_private: true })).await
}

async fn setup_with(trust_upstream: bool, policy: Arc<dyn paddock_proxy::HostPolicy>) -> Setup {
    let test_ca = TestCa::new();
    let (upstream, seen) = tls_upstream(test_ca.server(&["allowed.test", "127.0.0.1", "slow.test"])).await;
    let interceptor = Arc::new(TestInterceptor::default());
    let ca = Arc::new(SessionCa::generate().unwrap());
    let intercept = Intercept {
        ca: ca.clone(),
        interceptor: interceptor.clone(),
        upstream_ca: if trust_upstream { vec![test_ca.pem_file.clone()] } else { vec![] },
    };
    intercept.check().unwrap();
    let proxy = Proxy::start_with(policy, ProxyConfig { intercept: Some(intercept), ..ProxyConfig::default() }).await;
    Setup { proxy, interceptor, ca, upstream, seen, _test_ca: test_ca }
}

/// CONNECT `host:port` through the proxy; the answer's head and the socket.
async fn connect(proxy: SocketAddr, host: &str, port: u16) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    (head, s)
}

/// A TLS client config that trusts `ca_pem` only.
fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        let cert: CertificateDer<'static> = cert.unwrap();
        roots.add(cert).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// CONNECT, then TLS with `sni`, trusting `ca_pem`.
async fn tls_through(proxy: SocketAddr, host: &str, port: u16, ca_pem: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let (head, s) = connect(proxy, host, port).await;
    assert_eq!(status(&head), 200, "{head}");
    let name = ServerName::try_from(host.to_owned()).unwrap();
    TlsConnector::from(client_config(ca_pem, alpn)).connect(name, s).await.expect("TLS with the proxy")
}

type Sender1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type Sender2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn h1(tls: TlsStream<TcpStream>) -> Sender1 {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2(tls: TlsStream<TcpStream>) -> Sender2 {
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .adaptive_window(true)
        .handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(authority: &str, path: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(path).header("host", authority);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Full::default()).unwrap()
}

async fn text(resp: Response<Incoming>) -> (StatusCode, hyper::HeaderMap, String) {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn header_rewrite_reaches_the_upstream_and_is_recorded() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let authority = format!("allowed.test:{port}");
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let resp = c
        .send_request(get(&authority, "/repos/acme/x?token=abc&page=2", Some(&format!("Bearer {PLACEHOLDER}"))))
        .await
        .unwrap();
    let (status, headers, body) = text(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-upstream").unwrap(), "yes");
    assert!(body.contains(&format!("authorization=Bearer {REAL}")), "{body}");
    assert!(!body.contains(PLACEHOLDER), "{body}");
    assert_eq!(*s.seen.authorization.lock().unwrap(), vec![format!("Bearer {REAL}")]);
    drop(c);

    let records = s.interceptor.records(1).await;
    let r = &records[0];
    assert_eq!((r.method.as_str(), r.host.as_str(), r.port), ("GET", "allowed.test", port));
    assert_eq!(r.path, "/repos/acme/x?token=&page=");
    assert_eq!((r.status, r.secret.as_deref(), &r.denied, &r.error), (Some(200), Some("github"), &None, &None));
    assert_eq!(r.bytes_down, body.len() as u64);
    let events = s.proxy.stop().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!((e.kind, e.verdict, e.status, e.host.as_str()), (Kind::Connect, Verdict::Allowed, 200, "allowed.test"));
    assert_eq!(e.bytes_down, body.len() as u64);
    assert!(e.reason.contains("TLS intercepted"), "{}", e.reason);
}

#[tokio::test]
async fn a_denied_request_gets_403_and_nothing_reaches_the_upstream() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let authority = format!("allowed.test:{port}");
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let (status, headers, body) = text(c.send_request(get(&authority, "/denied/x", None)).await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(headers.get("paddock-rule").unwrap(), "network.http[0].deny[0]");
    assert_eq!(body, "paddock: GET /denied/x is denied\n");
    // The connection stays usable; the control request does reach the upstream.
    let (status, _, _) = text(c.send_request(get(&authority, "/ok", None)).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(s.seen.requests.load(Ordering::Relaxed), 1, "only the allowed request went upstream");
    let records = s.interceptor.records(2).await;
    assert_eq!(records[0].denied.as_ref().unwrap().rule, "network.http[0].deny[0]");
    assert_eq!(records[0].status, None);
    assert_eq!(records[1].status, Some(200));
}

#[tokio::test]
async fn http1_keep_alive_serves_two_requests_on_one_connection() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let authority = format!("allowed.test:{port}");
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut c = h1(tls).await;
    for path in ["/one", "/two"] {
        c.ready().await.unwrap();
        let (status, _, body) = text(c.send_request(get(&authority, path, None)).await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(body.contains(path), "{body}");
    }
    assert_eq!(s.seen.requests.load(Ordering::Relaxed), 2);
    // One child connection, one upstream connection, one connection event.
    assert_eq!(s.seen.connections.load(Ordering::Relaxed), 1);
    drop(c);
    let events = s.proxy.stop().await;
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test]
async fn http2_multiplexes_requests_and_rewrites_headers() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"h2", b"http/1.1"]).await;
    let c = h2(tls).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut c = c.clone();
        let uri = format!("https://allowed.test:{port}/h2/{i}");
        tasks.push(tokio::spawn(async move {
            let req = Request::get(uri)
                .header("authorization", format!("Bearer {PLACEHOLDER}"))
                .body(Full::default())
                .unwrap();
            text(c.send_request(req).await.unwrap()).await
        }));
    }
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("authorization=Bearer {REAL}")), "{body}");
    }
    // The upstream spoke h2 too, on a single connection.
    assert_eq!(s.seen.connections.load(Ordering::Relaxed), 1);
    let seen = s.seen.authorization.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|a| a == &format!("Bearer {REAL}")), "{seen:?}");
    let records = s.interceptor.records(4).await;
    assert!(records.iter().all(|r| r.secret.as_deref() == Some("github") && r.status == Some(200)));
}

/// Reads a whole body frame by frame, checking the pattern; returns its length.
async fn drain_pattern(mut body: Incoming) -> u64 {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            for (k, piece) in data.chunks(CHUNK).enumerate() {
                let at = n + (k * CHUNK) as u64;
                assert!(piece == pattern(at, piece.len()), "bytes from {at} differ");
            }
            n += data.len() as u64;
        }
    }
    n
}

#[tokio::test]
async fn a_50_mib_response_streams_intact_and_is_counted() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let (one, two): (&[u8], &[u8]) = (b"http/1.1", b"h2");
    for alpn in [[one], [two]] {
        let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &alpn).await;
        let resp = if alpn[0] == b"h2" {
            h2(tls).await.send_request(get(&format!("allowed.test:{port}"), "/big?mib=50", None)).await.unwrap()
        } else {
            h1(tls).await.send_request(get(&format!("allowed.test:{port}"), "/big?mib=50", None)).await.unwrap()
        };
        assert_eq!(resp.status(), 200);
        assert_eq!(drain_pattern(resp.into_body()).await, 50 * MIB);
    }
    let records = s.interceptor.records(2).await;
    for r in &records {
        assert_eq!((r.status, r.bytes_down, r.bytes_up, &r.error), (Some(200), 50 * MIB, 0, &None), "{r:?}");
        assert_eq!(r.path, "/big?mib=");
    }
    let events = s.proxy.stop().await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.bytes_down == 50 * MIB), "{events:?}");
}

#[tokio::test]
async fn a_request_body_is_relayed_and_counted() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let req = Request::post("/upload")
        .header("host", format!("allowed.test:{port}"))
        .body(Full::new(Bytes::from_static(b"hello upstream")))
        .unwrap();
    let (status, _, body) = text(c.send_request(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("body=hello upstream"), "{body}");
    let records = s.interceptor.records(1).await;
    assert_eq!((records[0].method.as_str(), records[0].bytes_up), ("POST", 14));
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_gets_502_naming_host_and_fix() {
    let s = setup(false).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let (status, _, body) = text(c.send_request(get(&format!("allowed.test:{port}"), "/x", None)).await.unwrap()).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(&format!("allowed.test:{port}")), "{body}");
    assert!(body.contains("certificate not trusted; add its CA to [network] upstream_ca"), "{body}");
    assert_eq!(s.seen.requests.load(Ordering::Relaxed), 0);
    let records = s.interceptor.records(1).await;
    assert_eq!(records[0].status, None);
    assert!(records[0].error.as_deref().unwrap().contains("certificate not trusted"), "{:?}", records[0]);
}

#[tokio::test]
async fn a_request_for_another_host_on_the_connection_is_misdirected() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let (status, _, body) = text(c.send_request(get("other.test", "/x", None)).await.unwrap()).await;
    assert_eq!(status, 421, "{body}");
    assert_eq!(s.seen.requests.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_ip_literal_gets_a_leaf_with_an_ip_san() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "127.0.0.1", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let (status, _, _) = text(c.send_request(get(&format!("127.0.0.1:{port}"), "/ip", None)).await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_sni_carrying_a_placeholder_closes_an_opaque_tunnel_before_any_byte() {
    let s = setup(true).await;
    let (up, mut received) = counting_upstream().await;
    // slow.test is allowed and pinned to loopback, but not intercepted: an opaque tunnel.
    for (sni, denied) in [(format!("{PLACEHOLDER}.evil.test"), true), ("slow.test".to_owned(), false)] {
        let (head, tcp) = connect(s.proxy.addr, "slow.test", up.port()).await;
        assert_eq!(status(&head), 200, "{head}");
        // A real ClientHello, sent in two pieces, then a half-close.
        let hello = client_hello(&sni);
        let sent = hello.len();
        let n = send_hello(tcp, &hello, &mut received).await;
        if denied {
            assert_eq!(n, 0, "no byte of the ClientHello reached the upstream");
        } else {
            assert_eq!(n, sent, "control: the whole ClientHello reached the upstream");
        }
    }
    let events = s.proxy.stop().await;
    let e: Vec<&ConnectionEvent> = events.iter().filter(|e| e.host == "slow.test").collect();
    assert_eq!(e.len(), 2, "{events:?}");
    let refused = e.iter().find(|e| e.verdict == Verdict::Denied).expect("a refused event");
    assert_eq!((refused.rule.as_str(), refused.bytes_up), ("secrets.github", 0));
    assert!(refused.reason.contains("server name"), "{}", refused.reason);
    assert!(e.iter().any(|e| e.verdict == Verdict::Allowed && e.bytes_up > 100));
}

#[tokio::test]
async fn a_connect_target_carrying_a_placeholder_is_refused_with_403() {
    let s = setup(true).await;
    let (up, mut received) = counting_upstream().await;
    let (head, _) = connect(s.proxy.addr, "unreach.test", up.port()).await;
    assert_eq!(status(&head), 403, "{head}");
    let events = s.proxy.stop().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.verdict, e.status, e.rule.as_str()), (Verdict::Denied, 403, "secrets.github"));
    assert_eq!(e.address, None, "nothing was dialled");
    assert!(received.try_recv().is_err(), "the upstream saw no connection");
}

#[tokio::test]
async fn opaque_tunnels_to_other_protocols_still_relay() {
    // Not TLS, and the server speaks first: both flow under interception.
    let s = setup(true).await;
    let echo = echo_upstream().await;
    let (head, mut tcp) = connect(s.proxy.addr, "slow.test", echo.port()).await;
    assert_eq!(status(&head), 200, "{head}");
    tcp.write_all(b"SSH-2.0-test\r\n").await.unwrap();
    let mut back = [0u8; 14];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"SSH-2.0-test\r\n");
}

#[tokio::test]
async fn a_server_that_speaks_first_is_not_held_up_by_the_check() {
    let s = setup(true).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut up, _) = listener.accept().await.unwrap();
        up.write_all(b"220 ready\r\n").await.unwrap();
        let mut line = [0u8; 6];
        up.read_exact(&mut line).await.unwrap();
        up.write_all(&line).await.unwrap();
    });
    let (head, mut tcp) = connect(s.proxy.addr, "slow.test", port).await;
    assert_eq!(status(&head), 200, "{head}");
    // The banner comes although the client has sent nothing yet.
    let mut banner = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut banner)).await.unwrap().unwrap();
    assert_eq!(&banner, b"220 ready\r\n");
    tcp.write_all(b"QUIT\r\n").await.unwrap();
    let mut echo = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut echo)).await.unwrap().unwrap();
    assert_eq!(&echo, b"QUIT\r\n");
}

/// SOCKS5 CONNECT to `host:port` (as a domain name); the stream after a success reply.
async fn socks_connect(proxy: SocketAddr, host: &str, port: u16) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    (s, reply[1])
}

#[tokio::test]
async fn socks5_tunnels_are_intercepted_and_checked_too() {
    let s = setup(true).await;
    let port = s.upstream.port();
    // An intercepted host over SOCKS5: the rewrite applies.
    let (tcp, code) = socks_connect(s.proxy.addr, "allowed.test", port).await;
    assert_eq!(code, 0);
    let name = ServerName::try_from("allowed.test").unwrap();
    let tls = TlsConnector::from(client_config(s.ca.cert_pem(), &[b"http/1.1"])).connect(name, tcp).await.unwrap();
    let mut c = h1(tls).await;
    let req = get(&format!("allowed.test:{port}"), "/socks", Some(&format!("Bearer {PLACEHOLDER}")));
    let (status, _, body) = text(c.send_request(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("authorization=Bearer {REAL}")), "{body}");
    // A refused target answers "not allowed" at once.
    let (_, code) = socks_connect(s.proxy.addr, "unreach.test", port).await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn plain_http_requests_go_through_the_interceptor() {
    let s = setup(true).await;
    let up = http_upstream().await;
    let p = up.port();
    let allowed = format!(
        "GET http://allowed.test:{p}/x?k=v HTTP/1.1\r\nHost: allowed.test:{p}\r\nAuthorization: Bearer {PLACEHOLDER}\r\nConnection: close\r\n\r\n"
    );
    let resp = exchange(s.proxy.addr, allowed.as_bytes()).await;
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(resp.contains(&format!("authorization: Bearer {REAL}")), "{resp}");
    assert!(!resp.contains(PLACEHOLDER), "{resp}");
    let denied = format!(
        "DELETE http://allowed.test:{p}/denied HTTP/1.1\r\nHost: allowed.test:{p}\r\nConnection: close\r\n\r\n"
    );
    let resp = exchange(s.proxy.addr, denied.as_bytes()).await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(resp.to_ascii_lowercase().contains("paddock-rule: network.http[0].deny[0]"), "{resp}");
    assert!(resp.ends_with("paddock: DELETE /denied is denied\n"), "{resp}");
    let records = s.interceptor.records(2).await;
    assert_eq!(
        (records[0].path.as_str(), records[0].secret.as_deref(), records[0].status),
        ("/x?k=", Some("github"), Some(200))
    );
    assert_eq!(records[1].denied.as_ref().unwrap().rule, "network.http[0].deny[0]");
    let events = s.proxy.stop().await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[1].verdict, events[1].status, events[1].rule.as_str()),
        (Verdict::Denied, 403, "network.http[0].deny[0]")
    );
    assert!(events[1].address.is_none(), "nothing was dialled for the denied request");
}

#[tokio::test]
async fn the_ca_bundle_holds_the_session_ca() {
    let ca = SessionCa::generate().unwrap();
    let bundle = ca_bundle_pem(&ca).unwrap();
    assert!(bundle.ends_with(ca.cert_pem()), "the session CA is in the bundle");
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    // Two CAs are two different certificates.
    assert_ne!(SessionCa::generate().unwrap().cert_pem(), ca.cert_pem());
}

#[tokio::test]
async fn a_bad_upstream_ca_file_is_an_error_naming_it() {
    let ca = Arc::new(SessionCa::generate().unwrap());
    let path = std::env::temp_dir().join(format!("paddock-intercept-bad-{}.pem", std::process::id()));
    std::fs::write(&path, "not a certificate\n").unwrap();
    let i = Intercept { ca, interceptor: Arc::new(TestInterceptor::default()), upstream_ca: vec![path.clone()] };
    let e = i.check().unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(e.contains(&path.display().to_string()) && e.contains("upstream_ca"), "{e}");
    let missing = Intercept { upstream_ca: vec![path.clone()], ..i };
    assert!(missing.check().unwrap_err().to_string().contains("cannot read"));
}

// ---------------------------------------------------------------------------------------
// Benchmark: cargo test -p paddock-proxy --release --test intercept -- --ignored --nocapture bench

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --ignored --nocapture"]
async fn bench_intercepted_vs_tunnelled() {
    let s = setup(true).await;
    let port = s.upstream.port();
    // Tunnelled: CONNECT to slow.test (opaque), TLS end to end with the upstream's own CA.
    let upstream_ca = s._test_ca.cert.pem();
    let rounds = 5;
    let per_round = 200;
    let (mut lat_i, mut lat_t, mut setup_i, mut setup_t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        for intercepted in [true, false] {
            let t0 = Instant::now();
            let (host, ca) =
                if intercepted { ("allowed.test", s.ca.cert_pem()) } else { ("slow.test", upstream_ca.as_str()) };
            let tls = tls_through(s.proxy.addr, host, port, ca, &[b"http/1.1"]).await;
            let mut c = h1(tls).await;
            let auth = if intercepted { format!("allowed.test:{port}") } else { format!("slow.test:{port}") };
            let _ = text(c.send_request(get(&auth, "/first", None)).await.unwrap()).await;
            (if intercepted { &mut setup_i } else { &mut setup_t }).push(t0.elapsed());
            for _ in 0..per_round {
                c.ready().await.unwrap();
                let t = Instant::now();
                let (st, _, _) = text(c.send_request(get(&auth, "/ping", None)).await.unwrap()).await;
                assert_eq!(st, 200);
                (if intercepted { &mut lat_i } else { &mut lat_t }).push(t.elapsed());
            }
        }
    }
    let (li, lt) = (median(lat_i), median(lat_t));
    let (si, st) = (median(setup_i), median(setup_t));
    println!(
        "per request (keep-alive, median of {}): intercepted {li:?}, tunnelled {lt:?}, added {:?}",
        rounds * per_round,
        li.saturating_sub(lt)
    );
    println!(
        "new connection + first request (median of {rounds}): intercepted {si:?}, tunnelled {st:?}, added {:?}",
        si.saturating_sub(st)
    );
    let mib = 100;
    let (mut thr_i, mut thr_t) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for intercepted in [true, false] {
            let (host, ca) =
                if intercepted { ("allowed.test", s.ca.cert_pem()) } else { ("slow.test", upstream_ca.as_str()) };
            let tls = tls_through(s.proxy.addr, host, port, ca, &[b"http/1.1"]).await;
            let mut c = h1(tls).await;
            let t = Instant::now();
            let resp = c.send_request(get(&format!("{host}:{port}"), &format!("/big?mib={mib}"), None)).await.unwrap();
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(f) = body.frame().await {
                n += f.unwrap().data_ref().map_or(0, |d| d.len() as u64);
            }
            assert_eq!(n, mib * MIB);
            let rate = (mib as f64) / t.elapsed().as_secs_f64();
            (if intercepted { &mut thr_i } else { &mut thr_t }).push(rate);
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "{mib} MiB download (best of 3, interleaved): intercepted {:.0} MiB/s, tunnelled {:.0} MiB/s",
        best(&thr_i),
        best(&thr_t)
    );
}

#[tokio::test]
async fn a_revocation_cuts_an_intercepted_connection_and_its_requests() {
    let revoked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = setup_with(true, Arc::new(Revocable { revoked: Arc::clone(&revoked) })).await;
    let port = s.upstream.port();
    let mut tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    tls.write_all(format!("GET /ip HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n").as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    tls.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200", "control: the connection serves");
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    // The proxy ends the connection without another request from the client.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut b = [0u8; 4096];
            match tls.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => rest.extend_from_slice(&b[..n]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "cut after the revocation");
    let events = s.proxy.stop().await;
    let e = events.iter().find(|e| e.host == "allowed.test").expect("the connection's event");
    assert!(e.reason.contains("cut while open: revocations[0]"), "{e:?}");
}

#[tokio::test]
async fn a_revoked_request_rule_cuts_a_request_still_streaming() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let resp = h1(tls).await.send_request(get(&format!("allowed.test:{port}"), "/big?mib=1000", None)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // Read a little, then the rule that let the request through is revoked.
    let first = body.frame().await.expect("a first frame").expect("not cut yet");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    s.interceptor.big_revoked.store(true, Ordering::SeqCst);
    let mut got = 0u64;
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match body.frame().await {
                Some(Ok(f)) => got += f.data_ref().map_or(0, |d| d.len() as u64),
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the download ended");
    assert!(got < 1000 * MIB, "cut before its end: {got} bytes");
    let events = s.proxy.stop().await;
    let e = events.iter().find(|e| e.host == "allowed.test").expect("the connection's event");
    assert!(e.reason.contains("now refuses a request still streaming"), "{e:?}");
}

#[tokio::test]
async fn a_form_body_is_read_and_decided_before_it_goes_upstream() {
    let s = setup(true).await;
    let port = s.upstream.port();
    let tls = tls_through(s.proxy.addr, "allowed.test", port, s.ca.cert_pem(), &[b"http/1.1"]).await;
    let mut c = h1(tls).await;
    let form = |body: &str| {
        Request::post("/f")
            .header("host", format!("allowed.test:{port}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let (status, _, body) = text(c.send_request(form("a=1&_method=DELETE")).await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("the form body's `_method`"), "{body}");
    // Read as a form too: a POST without a type, any multipart type.
    for content_type in [None, Some("multipart/mixed; boundary=x")] {
        let mut req = form("a=1&_method=DELETE");
        req.headers_mut().remove("content-type");
        if let Some(t) = content_type {
            req.headers_mut().insert("content-type", t.parse().unwrap());
        }
        let (status, _, body) = text(c.send_request(req).await.unwrap()).await;
        assert_eq!(status, 403, "{content_type:?}: {body}");
    }
    let (status, _, body) = text(c.send_request(form("a=1&b=2")).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("body=a=1&b=2"), "the form went upstream whole: {body}");
    // Too large to read whole: refused, not streamed unread.
    let big = "a=".to_owned() + &"x".repeat(2 * 1024 * 1024);
    let (status, _, body) = text(c.send_request(form(&big)).await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read whole"), "{body}");
    assert_eq!(s.seen.requests.load(Ordering::Relaxed), 1, "only the allowed form reached the upstream");
}
