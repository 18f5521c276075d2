//! Typed builders for the event payloads: what each kind of record says
//! besides `seq`, `ts`, `event` and `prev`.
//!
//! # Secrets
//!
//! The API takes no environment: no payload has a field for environment
//! variables, request headers, request bodies or file contents. URLs are
//! stored with any `user:password@` part replaced by `REDACTED@`. Arguments
//! and paths are stored as given: a caller that puts a secret on a command
//! line puts it in the log.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::selector::Selector;

/// A policy decision (`decision` on calls, `verdict` on connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The policy allowed it.
    Allow,
    /// The policy (or a revocation) denied it.
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        })
    }
}

/// The kind of tool a call used (`tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// Start a program.
    Command,
    /// Read a file.
    ReadFile,
    /// Write a file.
    WriteFile,
    /// Make an HTTP request.
    HttpRequest,
    /// A connection through the egress proxy (in reviews of refused
    /// connections; no call record has this tool).
    Connect,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Command => "command",
            Tool::ReadFile => "read_file",
            Tool::WriteFile => "write_file",
            Tool::HttpRequest => "http_request",
            Tool::Connect => "connect",
        })
    }
}

/// What a call asked for: `tool` plus `argv`, `path` or `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum Target {
    /// `tool = "command"`: the program and its arguments.
    Command {
        /// Program and arguments, as asked.
        argv: Vec<String>,
    },
    /// `tool = "read_file"`.
    ReadFile {
        /// The path asked for.
        path: String,
    },
    /// `tool = "write_file"` (the content is never logged).
    WriteFile {
        /// The path asked for.
        path: String,
    },
    /// `tool = "http_request"` (headers and body are never logged).
    HttpRequest {
        /// The URL; any `user:password@` is replaced by `REDACTED@` when
        /// written.
        #[serde(serialize_with = "serialize_redacted_url")]
        url: String,
        /// The HTTP method, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
    },
}

impl Target {
    /// A command call.
    pub fn command<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Target::Command { argv: argv.into_iter().map(Into::into).collect() }
    }

    /// A file read (a non-UTF-8 path is stored lossily).
    pub fn read_file(path: impl AsRef<Path>) -> Self {
        Target::ReadFile { path: path.as_ref().to_string_lossy().into_owned() }
    }

    /// A file write (a non-UTF-8 path is stored lossily).
    pub fn write_file(path: impl AsRef<Path>) -> Self {
        Target::WriteFile { path: path.as_ref().to_string_lossy().into_owned() }
    }

    /// An HTTP request. Credentials in the URL are redacted.
    pub fn http_request(url: &str, method: Option<&str>) -> Self {
        Target::HttpRequest { url: redact_url(url), method: method.map(str::to_owned) }
    }

    /// The tool this target belongs to.
    pub fn tool(&self) -> Tool {
        match self {
            Target::Command { .. } => Tool::Command,
            Target::ReadFile { .. } => Tool::ReadFile,
            Target::WriteFile { .. } => Tool::WriteFile,
            Target::HttpRequest { .. } => Tool::HttpRequest,
        }
    }

    /// A one-line description: the argv shell-quoted, the path, or
    /// `METHOD url`.
    pub fn describe(&self) -> String {
        match self {
            Target::Command { argv } => argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "),
            Target::ReadFile { path } | Target::WriteFile { path } => path.clone(),
            Target::HttpRequest { url, method } => match method {
                Some(m) => format!("{m} {}", redact_url(url)),
                None => redact_url(url),
            },
        }
    }
}

/// Replaces the `user[:password]@` part of a URL's authority by `REDACTED@`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_len].rfind('@') {
        Some(at) => format!("{}REDACTED@{}", &url[..auth_start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn serialize_redacted_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-*".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

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
}

impl CallOutcome {
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

/// Payload of `net.connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConnect {
    /// The session whose call connected, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The call that connected, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Host name asked for.
    pub host: String,
    /// Port asked for.
    pub port: u16,
    /// The address dialled (or that was refused), if resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The proxy's decision.
    pub verdict: Decision,
    /// The network rule that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes sent upstream.
    #[serde(default)]
    pub bytes_up: u64,
    /// Bytes received from upstream.
    #[serde(default)]
    pub bytes_down: u64,
    /// How long the connection lasted.
    #[serde(default)]
    pub duration_ms: u64,
}

impl NetConnect {
    /// A connection to `host:port` with the proxy's verdict.
    pub fn new(host: impl Into<String>, port: u16, verdict: Decision) -> Self {
        NetConnect {
            session: None,
            call_id: None,
            host: host.into(),
            port,
            address: None,
            verdict,
            rule: None,
            reason: None,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        }
    }

    /// Sets `session`.
    pub fn with_session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Sets `call_id`.
    pub fn with_call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }

    /// Sets `address`.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
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

    /// Sets `bytes_up` and `bytes_down`.
    pub fn with_bytes(mut self, up: u64, down: u64) -> Self {
        self.bytes_up = up;
        self.bytes_down = down;
        self
    }

    /// Sets `duration_ms`.
    pub fn with_duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = ms;
        self
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_line, GENESIS_PREV};

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(redact_url("https://u:p@h.test/a@b"), "https://REDACTED@h.test/a@b");
        assert_eq!(redact_url("https://h.test/?x=a@b"), "https://h.test/?x=a@b");
        assert_eq!(redact_url("not a url"), "not a url");
        // Even a Target built by hand is redacted on the way out.
        let t = Target::HttpRequest { url: "http://tok@h.test/".into(), method: None };
        let call = Call::new("c", "s", t, Decision::Allow);
        let line = encode_line(1, "t", GENESIS_PREV, &call.start()).unwrap();
        assert!(line.contains(r#""url":"http://REDACTED@h.test/""#), "{line}");
        assert!(!line.contains("tok"));
    }

    #[test]
    fn describe_quotes_arguments() {
        assert_eq!(Target::command(["git", "commit", "-m", "it's done"]).describe(), r"git commit -m 'it'\''s done'");
        assert_eq!(Target::http_request("https://h.test/", Some("POST")).describe(), "POST https://h.test/");
    }
}
