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
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::body::ProxyBody;
use crate::config::ProxyConfig;
use crate::event::Kind;
use crate::gate::Gate;
use crate::respond::close_gently;
use crate::shared::{Shared, TunnelSlot};
use crate::HostPolicy;

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
    let intercept = match &cfg.intercept {
        Some(i) => Some(Arc::new(crate::intercept::Engine::new(i.clone()).map_err(io::Error::other)?)),
        None => None,
    };
    let shared = Arc::new(Shared {
        gate: Gate { policy, connect_timeout: cfg.connect_timeout, upstream: cfg.upstream.clone() },
        sink: on_event,
        tunnels: Arc::new(Semaphore::new(cfg.max_tunnels)),
        intercept,
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
