//! What a session is built from, and the callbacks it takes.

use std::path::PathBuf;
use std::sync::Arc;

use paddock_audit::Exec;
use paddock_policy::Policy;
use paddock_proxy::ConnectionEvent;

/// A callback that sees every `exec` record as it is written (for `paddock run`'s line on
/// a refused exec).
pub type ExecObserver = Arc<dyn Fn(&Exec) + Send + Sync>;

/// A callback that sees the enforcement report of each call once its `call.start` is
/// written, before the program runs (for `paddock run`'s lines on what a best-effort
/// policy ran without).
pub type StartObserver = Arc<dyn Fn(&paddock_sandbox::EnforcementReport) + Send + Sync>;

/// A callback that sees every proxied connection (for `paddock run -v`).
pub type ConnectionObserver = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

/// What a session is built from.
pub struct SessionConfig {
    /// The policy, without revocations (the session loads and follows those itself).
    pub policy: Policy,
    /// The audit log file (`$STATE/audit.jsonl` by default).
    pub audit_log: PathBuf,
    /// The revocation list (`$STATE/revocations.toml`), re-read when it changes so a
    /// revocation applies from the next call; `None` for none. A list that cannot be read,
    /// parsed or compiled (at start or later) denies every call, with rule `revocations`,
    /// until it is fixed. The list and the audit log are hidden from every call's view
    /// (see [`Policy::hide_paths`] to hide more, e.g. their directory).
    pub revocations: Option<PathBuf>,
    /// `run`, `serve`, `mcp` or `library`: recorded on `session.start`. A `run` session
    /// holds one call and writes no session records.
    pub mode: String,
    /// Sees every proxied connection.
    pub on_connection: Option<ConnectionObserver>,
    /// A file of random bytes (made, 0600, when missing) that `[secrets]` placeholders
    /// derive from, so each secret's placeholder is the same from session to session: an
    /// agent that remembers the key it was given (Claude Code asks once per new key) is
    /// not asked again. `None`: new random placeholders every session. The CLI uses
    /// `$STATE/placeholder-seed`; keep it out of every view (`$STATE` is).
    pub placeholder_seed: Option<PathBuf>,
    /// `$STATE` as the caller resolved it with [`paddock_audit::state_dir`], which created
    /// and checked it (ours, not a symlink, no one else may write it): the session's calls
    /// use it as it is (their view cache, the registry of running calls) instead of
    /// resolving it again. For a session that holds one call and starts it at once
    /// (`run`). `None`: each call resolves and checks `$STATE` itself, as a long-lived
    /// session should (a state directory made unsafe since it started is then not used).
    pub state_dir: Option<PathBuf>,
}

impl SessionConfig {
    /// A config with the audit log at `audit_log` and no revocation list.
    pub fn new(policy: Policy, audit_log: impl Into<PathBuf>) -> SessionConfig {
        SessionConfig {
            policy,
            audit_log: audit_log.into(),
            revocations: None,
            mode: "library".into(),
            on_connection: None,
            placeholder_seed: None,
            state_dir: None,
        }
    }
}
