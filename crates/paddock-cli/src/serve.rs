//! `paddock serve`: the supervisor's HTTP API on loopback or a unix socket, over a `serve`
//! session. The listen address is checked before anything else (exit 64 for anything but
//! loopback, with a hint to use an SSH tunnel); the token file is created if absent and
//! refused if group or others may read it; SIGTERM or SIGINT stops it gracefully: running
//! calls finish (within `--shutdown-grace`; those still running then are killed and
//! answered with their outcome), `session.end` is recorded, exit 0.

use std::path::PathBuf;

use paddock::api::{self, ApiConfig, ApiError, Listen};
use paddock::{Session, SessionConfig, SessionError};

use crate::args::ServeArgs;
use crate::exit;
use crate::setup::{fail, session_inputs};

/// Runs `paddock serve`; returns the exit code.
pub fn serve(a: ServeArgs) -> i32 {
    // The address first: a refused address never gets as far as a socket.
    let listen = match &a.socket {
        Some(p) => match api::check_socket_path(p) {
            Ok(()) => Listen::Unix(p.clone()),
            Err(e) => return fail(exit::USAGE, e),
        },
        None => match api::parse_listen(&a.listen) {
            Ok(addr) => Listen::Tcp(addr),
            Err(e) => return fail(exit::USAGE, e),
        },
    };
    let max_body = match paddock_policy::parse_size(&a.max_body) {
        Ok(0) => {
            return fail(
                exit::USAGE,
                format_args!("--max-body {}: must be at least 1 byte (0 refuses every call)", a.max_body),
            )
        }
        Ok(n) => n as usize,
        Err(m) => return fail(exit::USAGE, format_args!("--max-body {}: {m}", a.max_body)),
    };
    let grace = match paddock_policy::parse_duration(&a.shutdown_grace) {
        Ok(d) => d,
        Err(m) => return fail(exit::USAGE, format_args!("--shutdown-grace {}: {m}", a.shutdown_grace)),
    };
    // `$STATE` while the server starts; its calls resolve it themselves (`state_dir: None`).
    let state = crate::state::State::new();
    let (mut policy, audit_log, revocations) = match session_inputs(&a.policy, a.audit.as_deref(), &state) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let token_file = match &a.token_file {
        Some(f) => f.clone(),
        None => match state.result() {
            Ok(d) => d.join("token"),
            Err(e) => return fail(exit::INTERNAL, format_args!("cannot create the state directory: {e}")),
        },
    };
    match api::ensure_token_file(&token_file) {
        Ok(true) => eprintln!("paddock: created the token file {} (0600, 256 random bits)", token_file.display()),
        Ok(false) => {}
        Err(e) => return fail(exit::USAGE, e),
    }
    // The token and the socket are paddock's own: never in a call's view.
    let own = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    policy.hide_paths([own(&token_file)].into_iter().chain(a.socket.as_deref().map(own)));
    crate::run::warn_if_state_writable(&policy, &audit_log);
    let mut cfg = ApiConfig::new(&token_file);
    cfg.max_body = max_body;
    cfg.max_queue = a.max_queue;
    cfg.shutdown_grace = grace;
    // A view masks the token file there at its start, not a file renamed into its place.
    let token_dir = own(&token_file).parent().map(|d| paddock_policy::normalize(d, std::path::Path::new("/")));
    cfg.token_in_reach = token_dir.is_some_and(|d| policy.decide_read(&d).is_allow());
    if let Some(n) = a.max_concurrent {
        cfg.max_concurrent = n;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("paddock-serve")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(exit::INTERNAL, format_args!("runtime: {e}")),
    };
    let code = rt.block_on(run(listen, cfg, policy, audit_log, revocations, token_file, &state));
    // Calls still running past the grace period die with this process (their helpers see
    // the control socket hang up and kill the whole tree).
    rt.shutdown_background();
    code
}

async fn run(
    listen: Listen,
    cfg: ApiConfig,
    policy: paddock_policy::Policy,
    audit_log: PathBuf,
    revocations: Option<PathBuf>,
    token_file: PathBuf,
    state: &crate::state::State,
) -> i32 {
    let shutdown = match api::shutdown_signal() {
        Ok(s) => s,
        Err(e) => return fail(exit::INTERNAL, format_args!("signal handlers: {e}")),
    };
    let server = match api::Server::bind(&listen, cfg).await {
        Ok(s) => s,
        Err(e @ (ApiError::Token(_) | ApiError::Listen(_) | ApiError::Setting(_))) => return fail(exit::USAGE, e),
        // Another server has the address: the user's to choose another.
        Err(e @ ApiError::Io { .. }) if matches!(&e, ApiError::Io { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse) => {
            return fail(
                exit::USAGE,
                format_args!("{e}: another server listens there; choose another --listen port or --socket path"),
            )
        }
        Err(e) => return fail(exit::INTERNAL, e),
    };
    // `[audit] export`: shipped from a thread of its own; the last attempt after the
    // session's end (declared before it, dropped after it).
    let _shipping = match crate::export_cmd::live_shipper(
        policy.audit.export.as_deref(),
        &audit_log,
        &policy.vars.workspace,
        state,
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let session_cfg = SessionConfig {
        policy,
        audit_log: audit_log.clone(),
        revocations,
        mode: "serve".into(),
        on_connection: None,
        placeholder_seed: state.placeholder_seed(),
        state_dir: None,
    };
    let session = match Session::new(session_cfg) {
        Ok(s) => s,
        Err(e @ SessionError::Policy(_)) => return fail(exit::CONFIG, e),
        Err(e) => {
            return fail(exit::INTERNAL, format_args!("{e} ({}); nothing is served unaudited", audit_log.display()))
        }
    };
    if let Err(code) = state.enable_approvals(&session) {
        return code;
    }
    crate::run::say_at_start(&session);
    if let Some(reason) = session.policy().denies_all() {
        eprintln!("paddock: warning: {reason}");
    }
    let shown = match &listen {
        Listen::Tcp(_) => server.local_addr(),
        Listen::Unix(_) => format!("unix:{}", server.local_addr()),
    };
    eprintln!("paddock: listening on {shown}");
    eprintln!(
        "paddock: session {}, token file {}, audit log {}",
        session.id(),
        token_file.display(),
        audit_log.display()
    );
    let served = server.serve(session.clone(), shutdown).await;
    let closed = session.close();
    match (served, closed) {
        (Ok(summary), Ok(())) => {
            let note = match (summary.calls_killed, summary.calls_abandoned) {
                (_, true) => "; calls still running were killed unanswered".to_string(),
                (0, false) => String::new(),
                (n, false) => {
                    format!("; {n} call(s) still running at the end of the grace period were killed and answered")
                }
            };
            eprintln!("paddock: stopped after {} request(s){note}; session {} closed", summary.requests, session.id());
            exit::OK
        }
        (Err(e), _) => fail(exit::INTERNAL, e),
        (_, Err(e)) => fail(exit::INTERNAL, format_args!("closing the session: {e}")),
    }
}
