//! The supervisor's HTTP API (`paddock serve`), over a [`Session`].
//!
//! It listens on loopback or a unix socket only ([`Listen`], [`parse_listen`]). Each request
//! passes, in this order:
//! 1. an `Origin` header (any value) → 403: browsers send one, agents do not;
//! 2. a `Host` header that is not loopback (`127.x.x.x`, `localhost`, `[::1]`, with an
//!    optional port) → 403: a page that rebound a DNS name to 127.0.0.1 is refused;
//! 3. `Authorization: Bearer TOKEN` missing or wrong → 401 ([`Token`]: 0600 file, constant
//!    time, re-read when it changes);
//! 4. routing: `POST /v1/calls`, `POST /v1/check`, `GET /v1/health`; another path → 404,
//!    another method → 405;
//! 5. the body: over [`ApiConfig::max_body`] → 413, not a tool call → 400 saying why.
//!
//! `POST /v1/calls` answers 200 with the [`CallOutcome`](crate::CallOutcome) — a denial is an
//! outcome — after waiting for one of [`ApiConfig::max_concurrent`] slots; when
//! [`ApiConfig::max_queue`] requests already wait, it answers 503. On shutdown the server
//! stops accepting, lets running calls finish for [`ApiConfig::shutdown_grace`] (then
//! kills those still running and answers each with its outcome), and
//! returns; the caller then closes the session (`session.end`) and exits, which kills any
//! call still running with its whole process tree.
//!
//! ```no_run
//! use paddock::api::{ApiConfig, Listen, Server};
//! use paddock::{Session, SessionConfig};
//! # async fn f(session: Session) -> Result<(), Box<dyn std::error::Error>> {
//! let listen = Listen::Tcp(paddock::api::parse_listen("127.0.0.1:0")?);
//! let server = Server::bind(&listen, ApiConfig::new("/home/me/.local/state/paddock/token")).await?;
//! eprintln!("listening on {}", server.local_addr());
//! server.serve(session.clone(), paddock::api::shutdown_signal()?).await?;
//! session.close()?;
//! # Ok(()) }
//! ```

mod approvals;
mod listen;
mod token;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;

pub use listen::{bind_unix, is_loopback_host, parse_listen, Listen, ListenError, DEFAULT_LISTEN};
pub use token::{ensure_token_file, Token, TokenError};

use crate::{Session, ToolCall};

/// The knobs of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The bearer token file (`$STATE/token` for `paddock serve`).
    pub token_file: PathBuf,
    /// Largest request body in bytes (default 1 MiB); larger → 413.
    pub max_body: usize,
    /// Calls that run at once (default 2 × cores, at least 2); more wait.
    pub max_concurrent: usize,
    /// Calls that may wait for a slot (default 256); more → 503.
    pub max_queue: usize,
    /// How long running calls may take to finish on shutdown (default 10 s).
    pub shutdown_grace: Duration,
}

impl ApiConfig {
    /// The defaults, with the token in `token_file`.
    pub fn new(token_file: impl Into<PathBuf>) -> ApiConfig {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        ApiConfig {
            token_file: token_file.into(),
            max_body: 1 << 20,
            max_concurrent: (2 * cores).max(2),
            max_queue: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The listen address is refused.
    #[error("{0}")]
    Listen(#[from] ListenError),
    /// The token file cannot be used.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// Binding or accepting failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// What a server did, returned when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeSummary {
    /// Requests answered.
    pub requests: u64,
    /// Whether calls were still running when the grace period ran out (they die with the
    /// process).
    pub calls_abandoned: bool,
    /// Calls killed when the grace period ran out; each was answered with its outcome
    /// (exit 137) unless `calls_abandoned`.
    pub calls_killed: usize,
}

/// How long calls killed at the end of the grace period may take to be answered.
const KILLED_ANSWER_GRACE: Duration = Duration::from_secs(5);

enum Bound {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// A bound API server, not yet serving.
pub struct Server {
    bound: Bound,
    cfg: ApiConfig,
    token: Token,
}

struct State {
    session: Session,
    token: Token,
    max_body: usize,
    slots: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
    running: AtomicUsize,
    requests: std::sync::atomic::AtomicU64,
    unix: bool,
}

impl Server {
    /// Loads the token file (refusing one that group or others may read) and binds.
    /// `Listen::Tcp` must hold a loopback address (from [`parse_listen`]); it is checked
    /// again here.
    pub async fn bind(listen: &Listen, cfg: ApiConfig) -> Result<Server, ApiError> {
        let token = Token::load(&cfg.token_file)?;
        let bound = match listen {
            Listen::Tcp(addr) => {
                let addr = parse_listen(&addr.to_string())?;
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ApiError::Io { what: format!("bind {addr}"), source })?;
                Bound::Tcp(l)
            }
            Listen::Unix(path) => Bound::Unix(
                bind_unix(path).map_err(|source| ApiError::Io { what: format!("bind {}", path.display()), source })?,
                path.clone(),
            ),
        };
        Ok(Server { bound, cfg, token })
    }

    /// The address it listens on (`127.0.0.1:PORT` with the port chosen, or the socket
    /// path).
    pub fn local_addr(&self) -> String {
        match &self.bound {
            Bound::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Bound::Unix(_, p) => p.display().to_string(),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the running calls
    /// finish (within the grace period), removes the unix socket, and returns. The
    /// session is left open: the caller closes it.
    pub async fn serve(self, session: Session, shutdown: impl Future<Output = ()>) -> Result<ServeSummary, ApiError> {
        let Server { bound, cfg, token } = self;
        let state = Arc::new(State {
            session,
            token,
            max_body: cfg.max_body,
            slots: Semaphore::new(cfg.max_concurrent.max(1)),
            waiting: AtomicUsize::new(0),
            max_queue: cfg.max_queue,
            running: AtomicUsize::new(0),
            requests: Default::default(),
            unix: matches!(bound, Bound::Unix(..)),
        });
        let graceful = GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        // A client that does not finish sending its headers within 30 s is dropped.
        http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = accept(&bound) => match accepted {
                    Ok(Conn::Tcp(s)) => {
                        let _ = s.set_nodelay(true);
                        let conn = http.serve_connection(TokioIo::new(s), hyper::service::service_fn({
                            let state = Arc::clone(&state);
                            move |req| serve_request(Arc::clone(&state), req)
                        }));
                        tokio::spawn(graceful.watch(conn));
                    }
                    Ok(Conn::Unix(s)) => {
                        let conn = http.serve_connection(TokioIo::new(s), hyper::service::service_fn({
                            let state = Arc::clone(&state);
                            move |req| serve_request(Arc::clone(&state), req)
                        }));
                        tokio::spawn(graceful.watch(conn));
                    }
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        let path = match bound {
            Bound::Tcp(l) => {
                drop(l);
                None
            }
            Bound::Unix(l, p) => {
                drop(l);
                Some(p)
            }
        };
        if let Some(p) = &path {
            let _ = std::fs::remove_file(p);
        }
        tracing::info!("shutting down: {} call(s) running", state.running.load(Ordering::Relaxed));
        let mut summary = ServeSummary::default();
        let done = graceful.shutdown();
        tokio::pin!(done);
        if tokio::time::timeout(cfg.shutdown_grace, &mut done).await.is_err() {
            // Kill what still runs, and answer each call with its outcome before exiting.
            summary.calls_killed = state.session.kill_running();
            tracing::warn!("{} call(s) still running after {:?}: killed", summary.calls_killed, cfg.shutdown_grace);
            if tokio::time::timeout(KILLED_ANSWER_GRACE, &mut done).await.is_err() {
                summary.calls_abandoned = state.running.load(Ordering::Relaxed) > 0;
                tracing::warn!("calls still unanswered after {KILLED_ANSWER_GRACE:?}: they die with paddock");
            }
        }
        summary.requests = state.requests.load(Ordering::Relaxed);
        Ok(summary)
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(bound: &Bound) -> std::io::Result<Conn> {
    match bound {
        Bound::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
        Bound::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
    }
}

type Resp = Response<Full<Bytes>>;

async fn serve_request(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    Ok(handle(&state, req).await)
}

fn json(status: StatusCode, body: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Resp {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

/// The request's host: the `Host` header, or the authority of an absolute-form target.
fn host_ok(req: &Request<Incoming>, unix: bool) -> Result<(), String> {
    if let Some(a) = req.uri().authority() {
        if !is_loopback_host(a.as_str()) {
            return Err(format!("request target authority `{a}` is not loopback"));
        }
    }
    match req.headers().get(HOST) {
        Some(h) => match h.to_str() {
            Ok(v) if is_loopback_host(v.trim()) => Ok(()),
            _ => Err(format!(
                "Host `{}` is not loopback (127.0.0.1, localhost or [::1]): refused (DNS rebinding)",
                String::from_utf8_lossy(h.as_bytes())
            )),
        },
        None if unix => Ok(()),
        None => Err("no Host header: refused".into()),
    }
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// The gate (no browser origin, a loopback or socket host, the bearer token) and then the
/// route table. Longer than most functions here for a reason: every route is visibly
/// behind the same checks, in one place, with nothing between them.
async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    if req.headers().contains_key(ORIGIN) {
        return error(StatusCode::FORBIDDEN, "requests with an Origin header are refused: the API is not for browsers");
    }
    if let Err(m) = host_ok(&req, state.unix) {
        return error(StatusCode::FORBIDDEN, m);
    }
    match bearer(&req).map(|t| state.token.verify(t)) {
        Some(Ok(true)) => {}
        Some(Err(e)) => {
            tracing::error!("{e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the server's token file is unusable: {e}"));
        }
        Some(Ok(false)) | None => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send `Authorization: Bearer TOKEN` with the token from the token file",
            );
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let (allowed, route) = match req.uri().path() {
        "/v1/calls" => ("POST", Route::Calls),
        "/v1/check" => ("POST", Route::Check),
        "/v1/health" => ("GET", Route::Health),
        "/v1/approvals" => ("GET", Route::Approvals),
        other => match other.strip_prefix("/v1/approvals/") {
            Some(id) if !id.is_empty() && !id.contains('/') => ("POST", Route::Answer(id.to_string())),
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no route {other}: the API has POST /v1/calls, POST /v1/check, GET /v1/health, GET /v1/approvals, POST /v1/approvals/ID"),
                )
            }
        },
    };
    let method_ok = req.method().as_str() == allowed || (allowed == "GET" && req.method() == Method::HEAD);
    if !method_ok {
        let mut r =
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{} {}: use {allowed}", req.method(), req.uri().path()));
        r.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
        return r;
    }
    match route {
        Route::Approvals => {
            let (status, body) = approvals::list(&state.session);
            json(status, &body)
        }
        Route::Answer(id) => {
            let body = match Limited::new(req.into_body(), state.max_body).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
            };
            let (status, body) = approvals::answer(&state.session, &id, &body);
            json(status, &body)
        }
        Route::Health => json(
            StatusCode::OK,
            &serde_json::json!({ "status": "ok", "session": state.session.id(), "running": state.running.load(Ordering::Relaxed), "waiting": state.waiting.load(Ordering::Relaxed) }),
        ),
        Route::Check => match read_call(state, req).await {
            Ok(call) => {
                // A check of an http_request may look the name up, as the proxy would.
                let session = state.session.clone();
                let d = match tokio::task::spawn_blocking(move || session.check(&call)).await {
                    Ok(d) => d,
                    Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format_args!("check task: {e}")),
                };
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "decision": d.verdict.as_str(), "rule": &*d.rule, "reason": d.reason }),
                )
            }
            Err(r) => r,
        },
        Route::Calls => {
            let call = match read_call(state, req).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            let Some(_slot) = acquire(state).await else {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("too many calls waiting (queue of {}): retry later", state.max_queue),
                );
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            };
            state.running.fetch_add(1, Ordering::Relaxed);
            let result = state.session.call(call).await;
            state.running.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(outcome) => json(StatusCode::OK, &serde_json::to_value(&outcome).unwrap_or_default()),
                Err(e) => {
                    tracing::error!("call failed: {e}");
                    error(StatusCode::INTERNAL_SERVER_ERROR, e)
                }
            }
        }
    }
}

enum Route {
    Calls,
    Check,
    Health,
    Approvals,
    Answer(String),
}

/// Waits for a call slot; `None` when the queue is full.
async fn acquire(state: &State) -> Option<tokio::sync::SemaphorePermit<'_>> {
    if let Ok(p) = state.slots.try_acquire() {
        return Some(p);
    }
    struct Waiting<'a>(&'a AtomicUsize);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if state.waiting.fetch_add(1, Ordering::Relaxed) >= state.max_queue {
        state.waiting.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let _w = Waiting(&state.waiting);
    state.slots.acquire().await.ok()
}

/// Reads the body (within the limit) and parses a tool call.
async fn read_call(state: &State, req: Request<Incoming>) -> Result<ToolCall, Resp> {
    let too_large = || {
        let mut r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {} bytes", state.max_body),
        );
        r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(req.into_body(), state.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    };
    serde_json::from_slice::<ToolCall>(&body).map_err(|e| {
        let hint = "expected a tool call such as {\"tool\":\"command\",\"argv\":[\"ls\"]}, {\"tool\":\"read_file\",\"path\":\"...\"}, {\"tool\":\"write_file\",\"path\":\"...\",\"content\":\"...\"} or {\"tool\":\"http_request\",\"url\":\"https://...\"}";
        let what = if e.is_syntax() || e.is_eof() { "malformed JSON" } else { "not a tool call" };
        error(StatusCode::BAD_REQUEST, format!("{what}: {e}; {hint}"))
    })
}

/// Installs SIGTERM and SIGINT handlers now (so a signal that comes before the future is
/// first polled is not lost) and returns a future that completes on either. Needs a tokio
/// runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}
