//! The supervisor's HTTP API (`paddock serve`), over a [`Session`].
//!
//! It listens on loopback or a unix socket only ([`Listen`], [`parse_listen`]). Each request
//! passes, in this order:
//! 1. more than one `Host` or `Authorization` header → 400 (RFC 9112 §3.2: judging only
//!    the first would let a second through unchecked);
//! 2. an `Origin` header (any value) → 403: browsers send one, agents do not;
//! 3. a `Host` header that is not loopback (`127.x.x.x`, `localhost`, `[::1]`, with an
//!    optional port) → 403: a page that rebound a DNS name to 127.0.0.1 is refused;
//! 4. `Authorization: Bearer TOKEN` missing or wrong → 401 ([`Token`]: 0600 file, at least
//!    32 characters, constant time, re-read when it changes);
//! 5. routing: `POST /v1/calls`, `POST /v1/check`, `GET /v1/health`; another path → 404,
//!    another method → 405;
//! 6. the body: over [`ApiConfig::max_body`] → 413, not a tool call → 400 saying why.
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
mod handle;
mod listen;
mod token;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;

pub use listen::{
    bind_unix, check_socket_path, is_loopback_host, parse_listen, Listen, ListenError, DEFAULT_LISTEN, SOCKET_PATH_MAX,
};
pub use token::{ensure_token_file, Token, TokenError};

use crate::Session;
use handle::{serve_request, State};

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
    /// The token file lies in a directory a call may read (default false): a new file
    /// renamed into its place is refused, never taken as the token ([`TokenError::ReplacedInReach`]).
    pub token_in_reach: bool,
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
            token_in_reach: false,
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
    /// A setting of [`ApiConfig`] that no server can work with.
    #[error("{0}")]
    Setting(String),
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

impl Server {
    /// Loads the token file (refusing one that group or others may read) and binds.
    /// `Listen::Tcp` must hold a loopback address (from [`parse_listen`]); it is checked
    /// again here.
    pub async fn bind(listen: &Listen, cfg: ApiConfig) -> Result<Server, ApiError> {
        if cfg.max_concurrent == 0 {
            return Err(ApiError::Setting("max_concurrent is 0: no call could ever run".into()));
        }
        if cfg.max_body == 0 {
            return Err(ApiError::Setting("max_body is 0: every call would be refused as too large".into()));
        }
        let token = Token::load_in(&cfg.token_file, cfg.token_in_reach)?;
        let bound = match listen {
            Listen::Tcp(addr) => {
                let addr = parse_listen(&addr.to_string())?;
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ApiError::Io { what: format!("bind {addr}"), source })?;
                Bound::Tcp(l)
            }
            Listen::Unix(path) => Bound::Unix(
                check_socket_path(path).map_err(ApiError::Listen).and_then(|()| {
                    bind_unix(path).map_err(|source| ApiError::Io { what: format!("bind {}", path.display()), source })
                })?,
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
            slots: Semaphore::new(cfg.max_concurrent),
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
        let open = Arc::new(AtomicUsize::new(0));
        let cap = connection_cap(rustix::process::getrlimit(rustix::process::Resource::Nofile).current);
        let mut full = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = accept(&bound) => match accepted {
                    // Past the cap a connection is closed at once: the descriptors the
                    // calls need are never all held by idle clients (found by an attack:
                    // 20,000 idle connections from another local user left a client with
                    // the token unanswered, "Too many open files").
                    Ok(_) if open.load(Ordering::Acquire) >= cap => {
                        if !std::mem::replace(&mut full, true) {
                            tracing::warn!("{cap} connections open: new ones are closed until some end");
                        }
                    }
                    Ok(Conn::Tcp(s)) => {
                        full = false;
                        let _ = s.set_nodelay(true);
                        let conn = http.serve_connection(TokioIo::new(s), hyper::service::service_fn({
                            let state = Arc::clone(&state);
                            move |req| serve_request(Arc::clone(&state), req)
                        }));
                        tokio::spawn(counted(&open, graceful.watch(conn)));
                    }
                    Ok(Conn::Unix(s)) => {
                        full = false;
                        let conn = http.serve_connection(TokioIo::new(s), hyper::service::service_fn({
                            let state = Arc::clone(&state);
                            move |req| serve_request(Arc::clone(&state), req)
                        }));
                        tokio::spawn(counted(&open, graceful.watch(conn)));
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

/// The most connections served at once: a quarter of the descriptors this process may
/// open (the rest are the calls'), between 16 and 512; more are closed as they come.
fn connection_cap(nofile: Option<u64>) -> usize {
    nofile.map_or(512, |n| (n / 4) as usize).clamp(16, 512)
}

/// `conn`, counted in `open` while it lives.
fn counted<F: Future>(open: &Arc<AtomicUsize>, conn: F) -> impl Future<Output = F::Output> {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::AcqRel);
        }
    }
    open.fetch_add(1, Ordering::AcqRel);
    let held = Counted(Arc::clone(open));
    async move {
        let _held = held;
        conn.await
    }
}

async fn accept(bound: &Bound) -> std::io::Result<Conn> {
    match bound {
        Bound::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
        Bound::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_by_the_descriptors_there_are() {
        assert_eq!(connection_cap(Some(1024)), 256);
        assert_eq!(connection_cap(Some(1 << 20)), 512);
        assert_eq!(connection_cap(Some(20)), 16);
        assert_eq!(connection_cap(None), 512);
    }

    /// Settings no server can work with are refused when it binds, before the token is
    /// read or anything listens: 0 slots used to become 1 silently.
    #[tokio::test]
    async fn zero_slots_or_a_zero_body_limit_are_refused() {
        let listen = Listen::Tcp(parse_listen("127.0.0.1:0").unwrap());
        for (slots, body) in [(0, 1024), (1, 0)] {
            let cfg = ApiConfig { max_concurrent: slots, max_body: body, ..ApiConfig::new("/nonexistent/token") };
            match Server::bind(&listen, cfg).await {
                Err(ApiError::Setting(why)) => assert!(why.contains(" is 0"), "{why}"),
                Err(e) => panic!("{slots} {body}: {e}"),
                Ok(_) => panic!("{slots} {body}: bound"),
            }
        }
    }
}
