//! `paddock mcp`: the supervisor's tools over MCP on stdin/stdout, in an `mcp` session.
//! Standard output carries only MCP frames; everything paddock says goes to stderr. It
//! stops when the client closes stdin, or on SIGTERM/SIGINT, records `session.end`, and
//! exits 0.

use paddock::{Session, SessionConfig, SessionError};

use crate::args::McpArgs;
use crate::exit;
use crate::setup::{fail, session_inputs};

/// Runs `paddock mcp`; returns the exit code.
pub fn mcp(a: McpArgs) -> i32 {
    // `$STATE` while the server starts; its calls resolve it themselves (`state_dir: None`).
    let state = crate::state::State::new();
    let (policy, audit_log, revocations) = match session_inputs(&a.policy, a.audit.as_deref(), &state) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("paddock-mcp")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(exit::INTERNAL, format_args!("runtime: {e}")),
    };
    let code = rt.block_on(async move {
        let shutdown = match paddock::api::shutdown_signal() {
            Ok(s) => s,
            Err(e) => return fail(exit::INTERNAL, format_args!("signal handlers: {e}")),
        };
        // `[audit] export`: shipped from a thread of its own; the last attempt after the
        // session's end (declared before it, dropped after it).
        let _shipping = match crate::export_cmd::live_shipper(
            policy.audit.export.as_deref(),
            &audit_log,
            &policy.vars.workspace,
            &state,
        ) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let cfg = SessionConfig {
            policy,
            audit_log: audit_log.clone(),
            revocations,
            mode: "mcp".into(),
            on_connection: None,
            placeholder_seed: state.placeholder_seed(),
            state_dir: None,
        };
        let session = match Session::new(cfg) {
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
        tracing::info!("MCP session {} on stdio, audit log {}", session.id(), audit_log.display());
        let served = paddock::mcp::serve_stdio(session.clone(), shutdown).await;
        if let Err(e) = session.close() {
            return fail(exit::INTERNAL, format_args!("closing the session: {e}"));
        }
        match served {
            Ok(()) | Err(paddock::mcp::McpServeError::Initialize(_)) => exit::OK,
            Err(e) => fail(exit::INTERNAL, e),
        }
    });
    // A blocking read of stdin (a terminal) cannot be cancelled: do not wait for it.
    rt.shutdown_background();
    code
}
