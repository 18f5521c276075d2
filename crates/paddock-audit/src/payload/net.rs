//! `net.connect`: [`NetConnect`].

use serde::{Deserialize, Serialize};

use super::target::Decision;

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
