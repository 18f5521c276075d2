//! `revoke`, `unrevoke`, `session.start`, `session.end`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::selector::Selector;

/// Payload of `revoke` and `unrevoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeEvent {
    /// What was revoked, e.g. `rule:commands.allow[2]`.
    pub selector: Selector,
    /// Why, as given by the person revoking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Payload of `session.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStart {
    /// The session id.
    pub session: String,
    /// How the session came in (`run`, `serve`, `mcp`, `embedded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Hash of the compiled policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// The workspace directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Process id of the supervisor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl SessionStart {
    /// A session start with this process's pid.
    pub fn new(session: impl Into<String>) -> Self {
        SessionStart {
            session: session.into(),
            mode: None,
            policy_hash: None,
            workspace: None,
            pid: Some(std::process::id()),
        }
    }

    /// Sets `mode`.
    pub fn with_mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }

    /// Sets `policy_hash`.
    pub fn with_policy_hash(mut self, hash: impl Into<String>) -> Self {
        self.policy_hash = Some(hash.into());
        self
    }

    /// Sets `workspace`.
    pub fn with_workspace(mut self, workspace: impl AsRef<Path>) -> Self {
        self.workspace = Some(workspace.as_ref().to_string_lossy().into_owned());
        self
    }
}

/// Payload of `session.end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// The session id.
    pub session: String,
    /// Calls made in the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// How long the session lasted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl SessionEnd {
    /// A session end with no totals.
    pub fn new(session: impl Into<String>) -> Self {
        SessionEnd { session: session.into(), calls: None, duration_ms: None }
    }

    /// Sets `calls` and `duration_ms`.
    pub fn with_totals(mut self, calls: u64, duration_ms: u64) -> Self {
        self.calls = Some(calls);
        self.duration_ms = Some(duration_ms);
        self
    }
}
