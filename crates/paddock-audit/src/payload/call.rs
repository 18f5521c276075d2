//! `call.start` and `call.end`: [`Call`], [`CallOutcome`], [`CallEnd`].

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::target::{Decision, Target};

/// The fields every call record (`call.start` and `call.end`) carries.
///
/// Build with [`Call::new`] and the `with_*` methods, then turn into events
/// with [`Call::start`] and [`Call::end`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Identifies the call; `call.start` and `call.end` share it.
    pub call_id: String,
    /// The session the call belongs to.
    pub session: String,
    /// `tool` and `argv` / `path` / `url`.
    #[serde(flatten)]
    pub target: Target,
    /// Working directory of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The policy's decision.
    pub decision: Decision,
    /// The rule that made the decision (the grant, for an allowed call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why (for denials: what the policy or revocation said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Hash of the compiled policy that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// The sandbox's enforcement report (which layers were enforced),
    /// arbitrary JSON; omitted when `null`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub enforcement: Value,
    /// The grants (rule ids) the call's sandbox view held: the filesystem
    /// grants bound into the child's mount view, used by whatever the child
    /// reads or writes there. Empty for a call that did not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub view: Vec<String>,
}

impl Call {
    /// A call with its identity, target and decision; everything else empty.
    pub fn new(call_id: impl Into<String>, session: impl Into<String>, target: Target, decision: Decision) -> Self {
        Call {
            call_id: call_id.into(),
            session: session.into(),
            target,
            cwd: None,
            decision,
            rule: None,
            reason: None,
            policy_hash: None,
            enforcement: Value::Null,
            view: Vec::new(),
        }
    }

    /// Sets `cwd` (a non-UTF-8 path is stored lossily).
    pub fn with_cwd(mut self, cwd: impl AsRef<Path>) -> Self {
        self.cwd = Some(cwd.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Sets `rule`.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Sets `reason`.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets `policy_hash`.
    pub fn with_policy_hash(mut self, hash: impl Into<String>) -> Self {
        self.policy_hash = Some(hash.into());
        self
    }

    /// Sets `enforcement`.
    pub fn with_enforcement(mut self, report: Value) -> Self {
        self.enforcement = report;
        self
    }

    /// Sets `view`: the grants the call's sandbox view holds.
    pub fn with_view(mut self, grants: Vec<String>) -> Self {
        self.view = grants;
        self
    }
}

/// How a call ended (the extra fields of `call.end`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOutcome {
    /// Exit code, if the process exited (always written, `null` if not).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that killed it, if any (always written, `null` if not).
    #[serde(default)]
    pub signal: Option<i32>,
    /// Whether the wall-clock limit killed it.
    #[serde(default)]
    pub timed_out: bool,
    /// Wall-clock duration.
    #[serde(default)]
    pub duration_ms: u64,
    /// Bytes the call wrote to stdout (before truncation).
    #[serde(default)]
    pub stdout_bytes: u64,
    /// Bytes the call wrote to stderr (before truncation).
    #[serde(default)]
    pub stderr_bytes: u64,
    /// Whether an output stream was truncated at the limit.
    #[serde(default)]
    pub truncated: bool,
    /// Paths a `deny` or `protect` rule names that did not exist when the call started
    /// and that the call created: each moved aside to the name given (`from` → `to`; `to`
    /// empty when the move failed); and the user's symlinks such a rule matched at the
    /// start that the call replaced or removed, made again (`restored`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved_aside: Vec<MovedAside>,
    /// Directories under a write grant where a `deny` or `protect` glob can match that
    /// could not be read before or after the call: what the call left there is unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<Unchecked>,
}

/// A directory the check for what a call left under a glob could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unchecked {
    /// The directory.
    pub path: String,
    /// Why it could not be read.
    pub error: String,
}

/// A path the call created where a `deny` or `protect` rule forbids it, moved aside; or a
/// symlink such a rule matched at the start that the call replaced or removed, put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedAside {
    /// The rule (`filesystem.protect[3]`).
    pub rule: String,
    /// The path the call created.
    pub from: String,
    /// Where it is now; empty when it could not be moved (then `error` says why), or when
    /// nothing was there to move (a symlink the call removed: `restored` says so).
    pub to: String,
    /// Why the move failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The symlink that was at `from` when the call started (the user's, a match of the
    /// rule), which the call replaced or removed: made again at `from` with its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
}

/// A symlink made again where the call replaced or removed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// Its target, as it was (lossy where not UTF-8).
    pub target: String,
    /// Why it could not be made again; empty when it was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The symlink's own path where it is not `from`: `from` is then a directory on the way
    /// to it (a real one, the user's) that the call replaced. Empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

impl CallOutcome {
    /// With the paths moved aside after the call.
    pub fn with_moved_aside(mut self, moved: Vec<MovedAside>) -> Self {
        self.moved_aside = moved;
        self
    }

    /// With the directories the check after the call could not read.
    pub fn with_unchecked(mut self, unchecked: Vec<Unchecked>) -> Self {
        self.unchecked = unchecked;
        self
    }

    /// A process that exited with `code`.
    pub fn exited(code: i32) -> Self {
        CallOutcome { exit_code: Some(code), ..Default::default() }
    }

    /// A process killed by `signal`.
    pub fn signaled(signal: i32) -> Self {
        CallOutcome { signal: Some(signal), ..Default::default() }
    }

    /// Sets `duration_ms`.
    pub fn with_duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = ms;
        self
    }

    /// Sets `stdout_bytes`, `stderr_bytes` and `truncated`.
    pub fn with_output(mut self, stdout_bytes: u64, stderr_bytes: u64, truncated: bool) -> Self {
        self.stdout_bytes = stdout_bytes;
        self.stderr_bytes = stderr_bytes;
        self.truncated = truncated;
        self
    }

    /// Sets `timed_out`.
    pub fn with_timed_out(mut self, timed_out: bool) -> Self {
        self.timed_out = timed_out;
        self
    }
}

/// Payload of `call.end`: the call's fields followed by its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEnd {
    /// The call (same fields as its `call.start`).
    #[serde(flatten)]
    pub call: Call,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: CallOutcome,
}
