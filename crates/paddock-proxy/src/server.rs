//! Accept loop and limits: one task per client connection, a cap on
//! concurrent connections, HTTP/1 parsing by hyper, dispatch to
//! [`crate::connect`] or [`crate::forward`], and shutdown.
//!
//! Per client connection: a first byte `0x05` hands it to [`crate::socks`];
//! otherwise hyper reads request heads (with a header read
//! timeout); each request goes through the gate. A CONNECT that was admitted
//! leaves a tunnel future in the connection's slot, which the same task runs
//! once hyper hands over the upgraded socket; so aborting the task on shutdown
//! ends the tunnel too (and its event is still emitted). A request hyper
//! cannot parse is answered 400 by hyper and reported as a denied event.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::body::ProxyBody;
use crate::event::{Draft, EventGuard, EventSink, Kind, Verdict};
use crate::gate::{Gate, Refusal};
use crate::HostPolicy;

/// Limits and timeouts of one proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Budget for name resolution plus TCP connect to the upstream (all
    /// candidate addresses together). Past it the client gets 504.
    pub connect_timeout: Duration,
    /// A tunnel with no bytes in either direction for this long is closed; a
    /// forwarded request whose upstream sends no response head for this long
    /// gets 504.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request head (also the idle
    /// limit between keep-alive requests).
    pub header_timeout: Duration,
    /// Concurrent CONNECT tunnels; past it a CONNECT gets 503.
    pub max_tunnels: usize,
    /// Concurrent client connections; past it a new connection gets 503 and
    /// is closed.
    pub max_connections: usize,
    /// Relay buffer per direction of a tunnel, in bytes (the pipe size when
    /// splicing).
    pub buffer_size: usize,
    /// Linux: relay tunnels with `splice(2)` through a pipe, so tunnel bytes
    /// never enter user space. `false` forces the user-space copy
    /// (`copy_bidirectional_with_sizes`). Ignored elsewhere.
    pub zero_copy: bool,
    /// Upstream HTTP proxies that allowed connections go through ([`crate::Upstream`]);
    /// none by default.
    pub upstream: crate::Upstream,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(30),
            max_tunnels: 256,
            max_connections: 1024,
            buffer_size: 256 * 1024,
            zero_copy: true,
            upstream: crate::Upstream::none(),
        }
    }
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub gate: Gate,
    pub sink: EventSink,
    pub cfg: ProxyConfig,
    pub tunnels: Arc<Semaphore>,
}

impl Shared {
    /// A fresh event guard for a request that started at `start`.
    pub(crate) fn guard(&self, start: Instant, kind: Kind) -> EventGuard {
        EventGuard::new(self.sink.clone(), start, Draft::new(kind))
    }
}

/// A tunnel to run after hyper hands over the upgraded connection.
pub(crate) type TunnelFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Where the CONNECT handler leaves its tunnel for the connection task.
pub(crate) type TunnelSlot = Arc<Mutex<Option<TunnelFuture>>>;

/// A plain-text response that closes the client connection.
pub(crate) fn text_response(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Records a refusal in the event and builds the client's answer.
pub(crate) fn refuse(guard: &EventGuard, r: Refusal) -> Response<ProxyBody> {
    let (status, message) = record_refusal(guard, r);
    text_response(status, message)
}

/// Answers a request that cannot be parsed into a target: 400, recorded with `shown` as
/// the host.
pub(crate) fn bad_request(guard: &EventGuard, shown: String, e: impl std::fmt::Display) -> Response<ProxyBody> {
    guard.update(|d| {
        d.host = shown;
        d.rule = "proxy.request".into();
        d.reason = e.to_string();
        d.status = 400;
    });
    text_response(StatusCode::BAD_REQUEST, format!("paddock: bad request: {e}\n"))
}

/// Records a refusal in the event; returns the status and the client's message.
pub(crate) fn record_refusal(guard: &EventGuard, r: Refusal) -> (StatusCode, String) {
    tracing::debug!(status = %r.status, rule = %r.rule, reason = %r.reason, "refused");
    guard.update(|d| {
        d.verdict = if r.allowed { Verdict::Allowed } else { Verdict::Denied };
        d.rule = r.rule.into();
        d.status = r.status.as_u16();
        d.address = r.address.or(d.address);
        d.hint = r.hint.map(String::from);
        d.via = r.via.map(|p| p.shown()).or(d.via.take());
        if r.allowed {
            d.error = Some(r.reason.clone());
        }
        d.reason = r.reason;
    });
    (r.status, r.message.into())
}

/// Serves the proxy on `listener` until `shutdown` completes.
///
/// Every connection is decided by `policy` and reported once through
/// `on_event`. On shutdown the listener is dropped, open connections and
/// tunnels are ended (each still reports its event) and `serve` returns
/// `Ok(())`. It returns an error only when the listener fails in a way that
/// retrying cannot fix.
pub async fn serve(
    listener: TcpListener,
    policy: Arc<dyn HostPolicy>,
    on_event: Arc<dyn Fn(crate::ConnectionEvent) + Send + Sync>,
    cfg: ProxyConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        gate: Gate { policy, connect_timeout: cfg.connect_timeout, upstream: cfg.upstream.clone() },
        sink: on_event,
        tunnels: Arc::new(Semaphore::new(cfg.max_tunnels)),
        cfg,
    });
    let connections = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "accepted");
                    match connections.clone().try_acquire_owned() {
                        Ok(permit) => tasks.spawn(serve_client(stream, shared.clone(), permit)),
                        Err(_) => tasks.spawn(refuse_busy(stream, shared.clone())),
                    };
                }
                Err(e) if transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => break Err(e),
            },
        }
    };
    drop(listener);
    tasks.shutdown().await;
    result
}

/// Accept errors that concern one connection or a momentary shortage.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::OutOfMemory
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105)) // ENFILE EMFILE ENOMEM ENOBUFS
}

async fn serve_client(stream: TcpStream, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    // SOCKS5 or HTTP: the first byte tells.
    let mut first = [0u8; 1];
    match tokio::time::timeout(shared.cfg.header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == crate::socks::VERSION => return crate::socks::handle(stream, shared).await,
        Ok(Ok(1)) => {}
        _ => return, // closed, failed or silent: nothing was asked
    }
    let slot: TunnelSlot = Arc::default();
    let svc = {
        let shared = shared.clone();
        let slot = slot.clone();
        service_fn(move |req| dispatch(req, shared.clone(), slot.clone()))
    };
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(shared.cfg.header_timeout).max_buf_size(64 * 1024);
    let started = Instant::now();
    if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades().await {
        if e.is_parse() || e.is_parse_too_large() || e.is_parse_status() || e.is_parse_version_h2() {
            let guard = shared.guard(started, Kind::Http);
            guard.update(|d| {
                d.rule = "proxy.request".into();
                d.reason = format!("unreadable request: {e}");
                d.status = if e.is_parse_too_large() { 431 } else { 400 };
            });
        } else {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    }
    let tunnel = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(tunnel) = tunnel {
        tunnel.await;
    }
}

async fn dispatch(
    req: Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
    slot: TunnelSlot,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    Ok(if req.method() == Method::CONNECT {
        crate::connect::handle(req, &shared, &slot, start).await
    } else {
        crate::forward::handle(req, &shared, start).await
    })
}

/// Over the connection cap: answer 503 without reading a request.
async fn refuse_busy(mut stream: TcpStream, shared: Arc<Shared>) {
    let guard = shared.guard(Instant::now(), Kind::Http);
    let max = shared.cfg.max_connections;
    guard.update(|d| {
        d.rule = "proxy.max_connections".into();
        d.reason = format!("more than {max} concurrent client connections");
        d.status = 503;
    });
    let body = format!("paddock: too many connections (max_connections = {max}); retry later\n");
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(resp.as_bytes()).await.is_ok() {
        close_gently(stream).await;
    }
}

/// Closes after an answer: shuts down the write side, then reads what the
/// client still sends (for up to a second), so that unread input does not
/// turn the close into a reset that could destroy the answer in flight.
pub(crate) async fn close_gently(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}
