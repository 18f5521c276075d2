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

/// A timeout: a duration string (`"30s"`) or a number of seconds, longer than zero and at
/// most ten years ([`paddock_policy::parse_duration`]); one that is not is refused as the
/// call is read (`serve` answers 400).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Timeout {
    /// Seconds.
    Seconds(u64),
    /// `"30s"`, `"2m"`, `"500ms"`.
    Text(String),
}

impl Timeout {
    /// As a duration; `Err` says why it is not one paddock takes.
    pub fn duration(&self) -> Result<std::time::Duration, String> {
        match self {
            Timeout::Seconds(0) => Err("a timeout must be longer than zero".into()),
            Timeout::Seconds(s) => paddock_policy::check_duration(std::time::Duration::from_secs(*s))
                .map_err(|m| format!("bad timeout of {s} seconds: {m}")),
            Timeout::Text(t) => paddock_policy::parse_duration(t),
        }
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timeout, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        let t = match Raw::deserialize(d)? {
            Raw::Seconds(s) => Timeout::Seconds(s),
            Raw::Text(t) => Timeout::Text(t),
        };
        t.duration().map_err(serde::de::Error::custom)?;
        Ok(t)
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
    /// The file's content, for `read_file`: the text when the file is UTF-8, else its
    /// bytes in standard base64 (then `encoding` is `"base64"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `"base64"` when `content` holds a file that is not UTF-8, base64-encoded; absent for
    /// text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
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

/// `bytes` as a `read_file` outcome's `content` and `encoding`: the text itself when it is
/// UTF-8, else standard base64 (with padding) and `Some("base64")`, never replacement
/// characters that would lose the file's bytes.
pub fn file_content(bytes: Vec<u8>) -> (String, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => (base64(e.as_bytes()), Some("base64".into())),
    }
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn file_content_is_text_or_base64() {
        assert_eq!(file_content(b"caf\xc3\xa9\n".to_vec()), ("caf\u{e9}\n".to_string(), None));
        assert_eq!(file_content(vec![0x89, b'P', b'N', b'G']), ("iVBORw==".to_string(), Some("base64".to_string())));
    }
}
