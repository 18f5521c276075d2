//! The upstream side of an intercepted connection: TLS to the upstream (verified against
//! the system roots plus `[network] upstream_ca`, SNI = the CONNECT host, ALPN `h2` then
//! `http/1.1`), and the HTTP client that sends the child's requests over it.
//!
//! Reuse: per child connection, the upstream connection dialled for the CONNECT is the
//! first one. An `h2` upstream carries every request of the child connection (streams
//! multiplexed on it); an `http/1.1` upstream carries one request at a time, and a
//! request that finds every upstream connection busy gets a new one, dialled through the
//! gate again (policy decision of the CONNECT, pins, SSRF guard, upstream proxy); idle
//! ones are kept for the next request until the child connection ends. Upstream
//! connections are never shared between child connections.

use std::io;
use std::sync::{Arc, Mutex, Weak};

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderMap, HeaderValue, HOST, TE};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Engine;
use crate::body::ProxyBody;
use crate::gate::Mode;
use crate::host::Host;
use crate::shared::Shared;
use crate::target::Target;
use crate::HostDecision;

/// Removes hop-by-hop headers (and those `Connection` names); keeps `TE: trailers`, the
/// one form HTTP/2 allows (gRPC needs it).
pub(crate) fn clean_headers(headers: &mut HeaderMap) {
    let trailers = headers.get_all(TE).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    crate::hop::strip_hop_by_hop(headers);
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Why a request could not be sent upstream: the status and text for the child, the
/// reason for the records.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub reason: String,
}

impl Failure {
    fn new(status: StatusCode, target: &Target, why: String) -> Failure {
        Failure { status, message: format!("paddock: {}: {why}\n", target.authority()), reason: why }
    }
}

/// One upstream connection, ready for requests.
enum Conn {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

#[derive(Default)]
struct Pool {
    /// The first connection's handshake failed: every request gets this.
    broken: Option<Failure>,
    h2: Option<http2::SendRequest<ProxyBody>>,
    idle: Vec<http1::SendRequest<ProxyBody>>,
}

/// The upstream connections of one intercepted child connection.
pub(crate) struct Upstream {
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    target: Target,
    decision: HostDecision,
    /// The SNI and the name the certificate must carry; `None` for a name rustls cannot
    /// hold (every request then fails with 502).
    name: Option<ServerName<'static>>,
    pool: Arc<Mutex<Pool>>,
}

impl Upstream {
    pub(crate) fn new(shared: Arc<Shared>, engine: Arc<Engine>, target: Target, decision: HostDecision) -> Upstream {
        let name = match &target.host {
            Host::Ip(ip) => Some(ServerName::IpAddress((*ip).into())),
            Host::Name(n) => ServerName::try_from(n.clone()).ok(),
        };
        Upstream { shared, engine, target, decision, name, pool: Arc::default() }
    }

    /// Sets up the connection the CONNECT dialled; a failure answers every request.
    pub(crate) async fn start(&self, stream: TcpStream) {
        match self.handshake(stream).await {
            Ok(conn) => self.put(conn),
            Err(f) => self.lock().broken = Some(f),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, conn: Conn) {
        let mut pool = self.lock();
        match conn {
            Conn::H1(s) => pool.idle.push(s),
            Conn::H2(s) => pool.h2 = Some(s),
        }
    }

    /// TLS and the HTTP handshake over a dialled stream.
    async fn handshake(&self, stream: TcpStream) -> Result<Conn, Failure> {
        let Some(name) = self.name.clone() else {
            return Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                &self.target,
                "the host name cannot be used as a TLS server name".into(),
            ));
        };
        let connect = TlsConnector::from(Arc::clone(&self.engine.client)).connect(name, stream);
        let timeout = self.shared.cfg.connect_timeout;
        let tls = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(tls_failure(&self.target, &e)),
            Err(_) => {
                return Err(Failure::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    &self.target,
                    format!("no TLS handshake with the upstream within {timeout:?}"),
                ))
            }
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let failed = |e: hyper::Error| {
            Failure::new(StatusCode::BAD_GATEWAY, &self.target, format!("upstream HTTP handshake failed: {e}"))
        };
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .adaptive_window(true)
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended with an error");
                }
            });
            Ok(Conn::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new().handshake(io).await.map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
            Ok(Conn::H1(sender))
        }
    }

    /// A connection for the next request: the h2 one, an idle http/1.1 one, or a new one.
    async fn conn(&self) -> Result<Conn, Failure> {
        {
            let mut pool = self.lock();
            if let Some(f) = &pool.broken {
                return Err(f.clone());
            }
            if let Some(s) = pool.h2.as_ref().filter(|s| !s.is_closed()) {
                return Ok(Conn::H2(s.clone()));
            }
            while let Some(s) = pool.idle.pop() {
                if s.is_ready() {
                    return Ok(Conn::H1(s));
                }
            }
        }
        let admitted = self
            .shared
            .gate
            .dial("CONNECT", &self.target, &self.decision, Mode::Tunnel)
            .await
            .map_err(|r| Failure { status: r.status, message: r.message.into(), reason: r.reason })?;
        let conn = self.handshake(admitted.stream).await?;
        if let Conn::H2(s) = &conn {
            self.lock().h2 = Some(s.clone());
        }
        Ok(conn)
    }

    /// Sends one request (headers already cleaned and shown to the interceptor) and waits
    /// up to `idle_timeout` for the response head.
    pub(crate) async fn send(&self, mut req: Request<ProxyBody>) -> Result<Response<Incoming>, Failure> {
        let authority = match self.target.port {
            443 => self.target.host.to_string(),
            p => self.target.host.authority(p),
        };
        let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
        let idle = self.shared.cfg.idle_timeout;
        let bad_uri =
            |_| Failure::new(StatusCode::BAD_REQUEST, &self.target, format!("unusable request target {pq:?}"));
        let sent = match self.conn().await? {
            Conn::H2(mut s) => {
                *req.uri_mut() = format!("https://{authority}{pq}").parse::<Uri>().map_err(bad_uri)?;
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(HOST);
                tokio::time::timeout(idle, s.send_request(req)).await
            }
            Conn::H1(mut s) => {
                *req.uri_mut() = pq.parse::<Uri>().map_err(bad_uri)?;
                *req.version_mut() = Version::HTTP_11;
                if !req.headers().contains_key(HOST) {
                    if let Ok(v) = HeaderValue::from_str(&authority) {
                        req.headers_mut().insert(HOST, v);
                    }
                }
                let sent = tokio::time::timeout(idle, s.send_request(req)).await;
                give_back(s, Arc::downgrade(&self.pool));
                sent
            }
        };
        match sent {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(Failure::new(StatusCode::BAD_GATEWAY, &self.target, format!("upstream failed: {e}"))),
            Err(_) => Err(Failure::new(
                StatusCode::GATEWAY_TIMEOUT,
                &self.target,
                format!("upstream sent no response within {idle:?}"),
            )),
        }
    }
}

/// Puts an http/1.1 connection back in the pool once its response has been read.
fn give_back(mut s: http1::SendRequest<ProxyBody>, pool: Weak<Mutex<Pool>>) {
    tokio::spawn(async move {
        if s.ready().await.is_ok() {
            if let Some(pool) = pool.upgrade() {
                pool.lock().unwrap_or_else(|p| p.into_inner()).idle.push(s);
            }
        }
    });
}

/// The failure of the upstream TLS handshake: an untrusted certificate says how to trust it.
fn tls_failure(target: &Target, e: &io::Error) -> Failure {
    let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let why = match rustls_error {
        Some(rustls::Error::InvalidCertificate(detail)) => {
            format!("certificate not trusted; add its CA to [network] upstream_ca ({detail:?})")
        }
        _ => format!("TLS handshake with the upstream failed: {e}"),
    };
    tracing::debug!(host = %target.authority(), %why, "upstream TLS failed");
    Failure::new(StatusCode::BAD_GATEWAY, target, why)
}
