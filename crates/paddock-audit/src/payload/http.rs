//! `http.request` and `exfiltration`: [`HttpRequest`], [`Exfiltration`].
//!
//! Requests the proxy saw in plain text (an intercepted TLS connection, or a plain-HTTP
//! forward). A secret appears by name only; the path has its query values dropped
//! ([`strip_query_values`]), so a token in a query string never reaches the log.

use serde::{Deserialize, Serialize};

use super::target::Decision;

/// Payload of `http.request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// The session whose call sent it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The call that sent it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The request method.
    pub method: String,
    /// The host (normalised).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path, query values dropped (`/search?q=&page=`).
    pub path: String,
    /// paddock's decision: `deny` when paddock refused it before anything went upstream.
    pub verdict: Decision,
    /// The rule that decided (`network.http[0].allow[1]`, `secrets.github`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The upstream's status; absent when refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Request body bytes.
    #[serde(default)]
    pub bytes_up: u64,
    /// Response body bytes.
    #[serde(default)]
    pub bytes_down: u64,
    /// The secret injected, by name (never its value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// An upstream failure (TLS verification, connect, reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HttpRequest {
    /// A request `method host:port path` with paddock's verdict; the path's query values
    /// are dropped here.
    pub fn new(method: impl Into<String>, host: impl Into<String>, port: u16, path: &str, verdict: Decision) -> Self {
        HttpRequest {
            session: None,
            call_id: None,
            method: method.into(),
            host: host.into(),
            port,
            path: strip_query_values(path),
            verdict,
            rule: None,
            reason: None,
            status: None,
            bytes_up: 0,
            bytes_down: 0,
            secret: None,
            error: None,
        }
    }

    /// Sets `session` and `call_id`.
    pub fn with_call(mut self, session: impl Into<String>, call_id: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self.call_id = Some(call_id.into());
        self
    }

    /// Sets `rule` and `reason`.
    pub fn with_rule(mut self, rule: impl Into<String>, reason: Option<String>) -> Self {
        self.rule = Some(rule.into());
        self.reason = reason;
        self
    }

    /// Sets `status`, `bytes_up` and `bytes_down`.
    pub fn with_response(mut self, status: Option<u16>, up: u64, down: u64) -> Self {
        self.status = status;
        self.bytes_up = up;
        self.bytes_down = down;
        self
    }

    /// Sets `secret` (a name).
    pub fn with_secret(mut self, secret: Option<String>) -> Self {
        self.secret = secret;
        self
    }

    /// Sets `error`.
    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

/// Payload of `exfiltration`: a secret's placeholder on its way to a host the secret does
/// not belong to (refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exfiltration {
    /// The session whose call tried it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The call that tried it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The secret whose placeholder was seen, by name.
    pub secret: String,
    /// The host it was sent to.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The request method, when it was a request (not a tunnel's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request's path, query values dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The rule that refused it (`secrets.NAME`).
    pub rule: String,
    /// Why (names where the placeholder was found).
    pub reason: String,
}

impl Exfiltration {
    /// An attempt to send `secret`'s placeholder to `host:port`, refused by `rule`.
    pub fn new(
        secret: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        rule: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Exfiltration {
            session: None,
            call_id: None,
            secret: secret.into(),
            host: host.into(),
            port,
            method: None,
            path: None,
            rule: rule.into(),
            reason: reason.into(),
        }
    }

    /// Sets `session` and `call_id`.
    pub fn with_call(mut self, session: impl Into<String>, call_id: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self.call_id = Some(call_id.into());
        self
    }

    /// Sets `method` and `path` (query values dropped).
    pub fn with_request(mut self, method: impl Into<String>, path: &str) -> Self {
        self.method = Some(method.into());
        self.path = Some(strip_query_values(path));
        self
    }
}

/// `path?a=1&b=x` → `path?a=&b=`: the names of query parameters kept, their values dropped
/// (a value may be a token); a fragment is dropped.
pub fn strip_query_values(path: &str) -> String {
    let path = path.split('#').next().unwrap_or("");
    let Some((p, q)) = path.split_once('?') else { return path.to_string() };
    let names: Vec<&str> = q.split('&').map(|kv| kv.split('=').next().unwrap_or("")).collect();
    format!("{p}?{}", names.iter().map(|n| format!("{n}=")).collect::<Vec<_>>().join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_dropped() {
        assert_eq!(strip_query_values("/search?q=token123&page=2"), "/search?q=&page=");
        assert_eq!(strip_query_values("/a/b"), "/a/b");
        assert_eq!(strip_query_values("/a?x#frag"), "/a?x=");
        let r = HttpRequest::new("GET", "h.test", 443, "/x?access_token=abc", Decision::Allow);
        assert_eq!(r.path, "/x?access_token=");
    }
}
