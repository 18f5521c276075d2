//! An intercepted CONNECT: after the gate admitted it and the client got `200`, the
//! proxy is the TLS server the client talks to (a leaf for the CONNECT host, signed by
//! the session CA; ALPN `h2` and `http/1.1`) and serves its requests with hyper. Each
//! request: its target checked against the CONNECT target (421 otherwise), hop-by-hop
//! headers removed, shown to [`Interceptor::request`](super::Interceptor::request)
//! (deny → 403, nothing upstream), sent upstream ([`super::forward`]) with its body
//! streamed and counted, recorded once ([`super::HttpRecord`]).
//!
//! The client handshake and the upstream one run at the same time. The connection ends
//! when the client closes it, or after `idle_timeout` without a request or a body byte;
//! its [`ConnectionEvent`](crate::ConnectionEvent) carries the body bytes of every request.

use std::any::Any;
use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;
use tokio_rustls::TlsAcceptor;

use super::forward::{clean_headers, Upstream};
use super::refuse::{denied, one_line, text};
use super::{Engine, HttpRecord, Metered, RequestParts, RequestVerdict};
use crate::body::ProxyBody;
use crate::event::EventGuard;
use crate::shared::Shared;
use crate::target::{same_target, Target};
use crate::watch::Watch;
use crate::HostDecision;

/// What an intercepted connection needs besides its sockets.
pub(crate) struct Intercepted {
    pub shared: Arc<Shared>,
    pub engine: Arc<Engine>,
    pub target: Target,
    pub decision: HostDecision,
}

/// One child connection's state, shared by its requests.
struct Conn {
    engine: Arc<Engine>,
    target: Target,
    host: String,
    upstream: Upstream,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    /// Bumped by every request, for the idle check.
    requests: AtomicU64,
    /// Decides the connection, and each request while it streams, again.
    watch: Arc<Watch>,
}

/// Serves the intercepted connection until it ends.
pub(crate) async fn run<C>(client: C, stream: TcpStream, guard: &EventGuard, ctx: Intercepted) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Intercepted { shared, engine, target, decision } = ctx;
    let watch = Arc::new(Watch::new(Arc::clone(&shared.gate.policy), target.clone(), guard.rule()));
    let host = target.host.as_policy_str();
    let server = engine.intercept.ca.server_config(&host).map_err(io::Error::other)?;
    let header_timeout = shared.cfg.header_timeout;
    let idle = shared.cfg.idle_timeout;
    let upstream = Upstream::new(Arc::clone(&shared), Arc::clone(&engine), target.clone(), decision);
    let accept = async {
        match tokio::time::timeout(header_timeout, TlsAcceptor::from(server).accept(client)).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(io::Error::new(
                e.kind(),
                format!("TLS handshake with the client failed (does it trust the session CA?): {e}"),
            )),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake from the client in time")),
        }
    };
    let (tls, ()) = tokio::join!(accept, upstream.start(stream));
    let tls = tls?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let conn = Arc::new(Conn {
        engine,
        target,
        host,
        upstream,
        up: Arc::clone(&guard.up),
        down: Arc::clone(&guard.down),
        requests: AtomicU64::new(0),
        watch: Arc::clone(&watch),
    });
    let svc = {
        let conn = Arc::clone(&conn);
        service_fn(move |req| {
            let conn = Arc::clone(&conn);
            async move { Ok::<_, Infallible>(handle(req, &conn).await) }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).adaptive_window(true);
    let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
    let served = builder.serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(served);
    let period = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let activity =
        || conn.up.load(Ordering::Relaxed) + conn.down.load(Ordering::Relaxed) + conn.requests.load(Ordering::Relaxed);
    let mut seen = activity();
    let mut quiet_since = Instant::now();
    // A revocation cuts the connection, and with it every request still streaming.
    let cut = watch.until_cut();
    tokio::pin!(cut);
    loop {
        tokio::select! {
            r = &mut served => return r.map_err(|e| io::Error::other(format!("intercepted connection: {e}"))),
            why = &mut cut => return Err(watch.record(guard, why)),
            _ = ticker.tick() => {
                let now = activity();
                if now != seen {
                    seen = now;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= idle {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, format!("intercepted connection idle for {idle:?}")));
                }
            }
        }
    }
}

/// One request of an intercepted connection.
async fn handle(req: Request<Incoming>, conn: &Conn) -> Response<ProxyBody> {
    conn.requests.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    let record = Arc::new(HttpRecord::new(
        Arc::clone(&conn.engine.intercept.interceptor),
        parts.method.as_str(),
        &conn.host,
        conn.target.port,
        &pq,
    ));
    if let Err(why) = same_target(&parts.uri, &parts.headers, &conn.target, 443) {
        record.error(why.clone());
        return text(StatusCode::MISDIRECTED_REQUEST, format!("paddock: {}\n", one_line(&why)));
    }
    clean_headers(&mut parts.headers);
    let mut shown = RequestParts {
        method: &parts.method,
        host: &conn.host,
        port: conn.target.port,
        path_and_query: &pq,
        headers: &mut parts.headers,
        tls: true,
    };
    let verdict = conn.engine.interceptor().request(&mut shown);
    match verdict {
        RequestVerdict::Deny(deny) => {
            let resp = denied(&deny);
            record.denied(deny);
            return resp;
        }
        RequestVerdict::Allow { secret } => {
            record.secret(secret);
            conn.watch.request(&record);
        }
    }
    let hold: Vec<Arc<dyn Any + Send + Sync>> = vec![record.clone()];
    let body = match super::form::check(&conn.engine, &mut shown, body).await {
        Err(deny) => {
            let resp = denied(&deny);
            record.denied(deny);
            return resp;
        }
        Ok(Ok(read)) => {
            for counter in [&conn.up, &record.up] {
                counter.fetch_add(read.len() as u64, Ordering::Relaxed);
            }
            ProxyBody::Full(Some(read))
        }
        Ok(Err(body)) => ProxyBody::Metered(Metered::new(
            body,
            vec![Arc::clone(&conn.up), Arc::clone(&record.up)],
            hold.clone(),
            Some(record.clone()),
        )),
    };
    let upstream_req = Request::from_parts(parts, body);
    match conn.upstream.send(upstream_req).await {
        Ok(resp) => {
            let (mut rparts, rbody) = resp.into_parts();
            clean_headers(&mut rparts.headers);
            rparts.version = hyper::Version::default();
            record.status(rparts.status.as_u16());
            let counters = vec![Arc::clone(&conn.down), Arc::clone(&record.down)];
            let body = Metered::new(rbody, counters, hold, Some(record));
            Response::from_parts(rparts, ProxyBody::Metered(body))
        }
        Err(f) => {
            record.error(f.reason);
            text(f.status, f.message)
        }
    }
}
