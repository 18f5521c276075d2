//! Tool calls as agents send them, and their outcomes (the JSON of `POST /v1/calls` and of
//! the MCP tools).

use serde::{Deserialize, Serialize};

/// One tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolCall {
    /// Start a program: `{"tool":"command","argv":["git","status"],"cwd":"...","stdin":"...","timeout":"30s"}`.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Working directory (absolute, or relative to the workspace); default the workspace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        /// Bytes for the program's standard input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdin: Option<String>,
        /// A timeout shorter than the policy's (`"30s"`, or seconds as a number).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<Timeout>,
    },
    /// Read a file, in a confined child: `{"tool":"read_file","path":"src/main.rs"}`.
    ReadFile {
        /// Absolute, or relative to the workspace.
        path: String,
    },
    /// Write a file, in a confined child: `{"tool":"write_file","path":"...","content":"..."}`.
    WriteFile {
        /// Absolute, or relative to the workspace.
        path: String,
        /// The new content.
        content: String,
    },
    /// An HTTP request through the egress proxy:
    /// `{"tool":"http_request","url":"https://...","method":"GET","headers":{...},"body":"..."}`.
    HttpRequest {
        /// `http://` or `https://` URL.
        url: String,
        /// Default `GET`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Request headers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        headers: Option<std::collections::BTreeMap<String, String>>,
        /// Request body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
}

/// A timeout: a duration string (`"30s"`) or a number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timeout {
    /// Seconds.
    Seconds(u64),
    /// `"30s"`, `"2m"`, `"500ms"`.
    Text(String),
}

impl Timeout {
    /// As a duration; `None` when the text is not a duration.
    pub fn duration(&self) -> Option<std::time::Duration> {
        match self {
            Timeout::Seconds(s) => Some(std::time::Duration::from_secs(*s)),
            Timeout::Text(t) => paddock_policy::parse_duration(t).ok(),
        }
    }
}

impl ToolCall {
    /// `command`, `read_file`, `write_file` or `http_request`.
    pub fn tool(&self) -> &'static str {
        match self {
            ToolCall::Command { .. } => "command",
            ToolCall::ReadFile { .. } => "read_file",
            ToolCall::WriteFile { .. } => "write_file",
            ToolCall::HttpRequest { .. } => "http_request",
        }
    }
}

/// What became of a call. A denial is an outcome, not an error: by the policy, or, for
/// `http_request`, by the egress proxy (a host refused for its address is `deny` with
/// the proxy's rule, `network.allow_private`, never an allow carrying the proxy's 403).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOutcome {
    /// `allow` or `deny`.
    pub decision: String,
    /// The rule that decided.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// The child's exit code (code, 128+N for signal N, 124 timeout); `None` when denied.
    pub exit_code: Option<i32>,
    /// Standard output (lossy UTF-8), capped by `max_output`.
    pub stdout: String,
    /// Standard error (lossy UTF-8), capped by `max_output`.
    pub stderr: String,
    /// The file's content, for `read_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The response's status, for `http_request` (none when no response came: denied, or
    /// the upstream unreachable, then `stderr` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The response's headers, for `http_request`: names lowercased, repeated headers
    /// joined with `, `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// The response's body (lossy UTF-8), for `http_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Whether an output stream was cut at `max_output`.
    pub truncated: bool,
    /// Whether the timeout killed the call.
    pub timed_out: bool,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// `seq` of the call's `call.start` record in the audit log.
    pub audit_seq: u64,
}

impl CallOutcome {
    /// Whether the call was allowed.
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}
