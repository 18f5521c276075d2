//! paddock: a local-first sandbox for the tool calls of AI agents, as a library.
//!
//! A [`Session`] holds a policy (with the revocations in force), an audit log and the
//! egress proxy engine. [`Session::call`] runs one [`ToolCall`]: it decides the call
//! against the policy, writes `call.start` to the audit log (durably, before the child
//! runs), runs it in a child process the kernel confines (`paddock-sandbox`), with its
//! network through paddock's proxy (`paddock-proxy`), and writes `call.end`. `read_file`
//! and `write_file` are performed by a confined child too, never with the supervisor's
//! own rights. The `paddock` binary (`run`, `serve`, `mcp`) is a thin adapter over this.
//!
//! Binaries that use it must call [`paddock_sandbox::helper_main_if_requested`] first
//! thing in `main`, before any thread starts (the sandbox re-executes the binary as its
//! single-threaded helper; under `#[tokio::main]` the runtime's threads would already be
//! there, so build the runtime after it, as below).
//!
//! # Features
//!
//! Both are on by default, for the `paddock` binary:
//!
//! - `serve`: [`api`], the HTTP API of `paddock serve` (hyper);
//! - `mcp`: [`mcp`], the MCP server of `paddock mcp` (rmcp).
//!
//! An embedder that only needs [`Session`] turns them off and compiles neither server:
//! `paddock = { version = "...", default-features = false }`.
//!
//! ```
//! use paddock::{Session, SessionConfig, ToolCall};
//! use paddock_policy::{Policy, Vars};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // First thing in main, before any thread (so not under `#[tokio::main]`, whose
//!     // runtime starts before the body): the sandbox re-executes this binary as its helper.
//!     paddock_sandbox::helper_main_if_requested();
//!     tokio::runtime::Runtime::new()?.block_on(agent())
//! }
//!
//! async fn agent() -> Result<(), Box<dyn std::error::Error>> {
//!     let state = std::env::temp_dir().join(format!("paddock-doc-{}", std::process::id()));
//!     let vars = Vars::from_env(std::env::current_dir()?);
//!     let policy = Policy::embedded_default(&vars)?;
//!     let session = Session::new(SessionConfig::new(policy, state.join("audit.jsonl")))?;
//!
//!     let out = session.call(ToolCall::Command {
//!         argv: vec!["echo".into(), "hello".into()], cwd: None, stdin: None, timeout: None,
//!     }).await?;
//!     assert_eq!((out.decision.as_str(), out.exit_code, out.stdout.as_str()), ("allow", Some(0), "hello\n"), "{}", out.stderr);
//!
//!     // Home secrets are denied by the embedded default: a denial is an outcome.
//!     let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
//!     let out = session.call(ToolCall::ReadFile { path: format!("{home}/.ssh/id_ed25519") }).await?;
//!     assert_eq!(out.decision, "deny");
//!     session.close()?;
//!     # std::fs::remove_dir_all(&state).ok();
//!     Ok(())
//! }
//! ```
#![deny(missing_docs)]

/// Held by the tests that mount in the host's mount namespace and by those that assert
/// that a watch saw nothing change: a watch counts any change of the mount table.
#[cfg(test)]
pub(crate) static HOST_MOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

mod absent;
#[cfg(feature = "serve")]
pub mod api;
pub mod approvals;
mod aside;
mod call;
mod chain;
mod exec_audit;
pub mod exec_rights;
mod file_stamp;
mod http;
mod identity;
#[cfg(feature = "mcp")]
pub mod mcp;
mod net;
mod planted;
mod running;
pub mod secrets;
mod session;
pub mod spec;

pub use absent::any_failed as moved_aside_failed;
pub use absent::describe as moved_aside_line;
pub use call::{CallOutcome, Timeout, ToolCall};
pub use exec_audit::SCOPE_CALL_RULE;
pub use net::{decide_connection, lint_network, upstream_for, upstream_from_process, ConnectionCheck, PolicyHosts};
pub use planted::describe_unchecked as unchecked_line;
pub use session::{
    apply_revocations, revocation_of, ConnectionObserver, ExecObserver, RunResult, Session, SessionConfig,
    StartObserver,
};

pub use paddock_audit as audit;
pub use paddock_policy as policy;
pub use paddock_proxy as proxy;
pub use paddock_sandbox as sandbox;

/// Why a session or a call failed (a denial is not an error: it is an outcome).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The audit log could not be opened or written: no call runs unaudited.
    #[error("audit log: {0}")]
    Audit(#[from] paddock_audit::AuditError),
    /// The revocation list does not compile against the policy.
    #[error("{0}")]
    Policy(#[from] paddock_policy::PolicyError),
    /// The sandbox could not start or finish the child.
    #[error("{0}")]
    Sandbox(#[from] paddock_sandbox::SandboxError),
    /// The call was allowed but its program is not found in the sandbox PATH.
    #[error("the program is not found in the sandbox PATH")]
    NotFound {
        /// `seq` of the call's `call.start`.
        seq: u64,
        /// The exit code reported (127).
        code: i32,
    },
    /// I/O outside the sandbox (the proxy's listener).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// paddock's own failure.
    #[error("{0}")]
    Internal(String),
    /// A symlink or `.git` file a `deny` or `protect` rule resolves through is not the
    /// user's now (another call running removed or replaced it, and makes it again when it
    /// ends), or resolves otherwise than when the policy was loaded: nothing ran (71).
    #[error("the call did not start: {0}")]
    Unsettled(String),
    /// TLS interception could not be set up (the session CA, the bundle, `upstream_ca`).
    #[error("interception: {0}")]
    Intercept(#[from] paddock_proxy::InterceptError),
}

impl SessionError {
    /// The exit code the CLI uses: 71 a required layer is missing, 127 not found, 125
    /// paddock's own failure, else the sandbox's.
    pub fn exit_code(&self) -> i32 {
        match self {
            SessionError::Sandbox(e @ paddock_sandbox::SandboxError::LayerUnavailable { .. }) => {
                let _ = e;
                71
            }
            SessionError::Sandbox(e) => e.exit_code(),
            SessionError::NotFound { code, .. } => *code,
            SessionError::Unsettled(_) => 71,
            _ => 125,
        }
    }
}
