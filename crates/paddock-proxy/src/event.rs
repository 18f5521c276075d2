//! Connection reports: one [`ConnectionEvent`] per proxied connection.
//!
//! An event is emitted exactly once for every CONNECT tunnel, every forwarded
//! plain-HTTP request, and every client connection refused before a target
//! could be read (malformed request, over the connection cap). Emission
//! happens when the connection ends — also when it ends by error, timeout,
//! client disconnect or proxy shutdown — because it is tied to the drop of an
//! [`EventGuard`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The callback that receives events. It is called from proxy tasks and
/// should return quickly (queue the event, do not block on I/O).
pub type EventSink = Arc<dyn Fn(ConnectionEvent) + Send + Sync>;

/// Whether the connection was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The policy allowed the host and the address was vetted. The upstream
    /// may still have been unreachable: see [`ConnectionEvent::error`].
    Allowed,
    /// Refused: by the policy, the address classifier, a malformed request or
    /// a limit. Nothing was dialled.
    Denied,
}

impl Verdict {
    /// `"allowed"` or `"denied"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `CONNECT host:port` tunnel.
    Connect,
    /// Plain HTTP request with an absolute URI (and refusals of unreadable requests).
    Http,
    /// SOCKS5 `CONNECT` tunnel.
    Socks5,
}

impl Kind {
    /// `"connect"`, `"http"` or `"socks5"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Http => "http",
            Kind::Socks5 => "socks5",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The report of one connection, allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// The normalised host (what the policy decided on); the raw text when it
    /// could not be normalised; empty when no target could be read.
    pub host: String,
    /// The destination port; 0 when no target could be read.
    pub port: u16,
    /// The address dialled; for a refusal by address class, the refused
    /// address; `None` when no address was reached or looked at.
    pub address: Option<SocketAddr>,
    /// Allowed or denied.
    pub verdict: Verdict,
    /// The rule that decided: the policy's rule id (`network.allow[0]`,
    /// `network.deny[1]`, ...) or one of the proxy's own:
    /// `network.allow_private` (address class), `proxy.request` (malformed),
    /// `proxy.max_tunnels`, `proxy.max_connections`, `proxy.client_hello` (an opaque
    /// tunnel under interception whose ClientHello could not be read); or the
    /// [`Interceptor`](crate::Interceptor)'s rule when it refused a tunnel or a plain-HTTP
    /// request.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// Bytes from the client to the upstream (tunnel bytes, or HTTP request body bytes).
    pub bytes_up: u64,
    /// Bytes from the upstream to the client (tunnel bytes, or HTTP response body bytes).
    pub bytes_down: u64,
    /// From the request head to the end of the connection.
    pub duration: Duration,
    /// CONNECT, plain HTTP or SOCKS5.
    pub kind: Kind,
    /// The HTTP status the client got: 200 for an established tunnel, the
    /// upstream's status for forwarded requests, the proxy's refusal status
    /// (400, 403, 502, 503, 504) otherwise. SOCKS5 connections record the
    /// HTTP status of the same outcome (their reply codes carry no text).
    pub status: u16,
    /// What went wrong after the verdict, if anything (upstream unreachable,
    /// timeout, reset, idle timeout).
    pub error: Option<String>,
    /// For a refusal by the policy or the address class: the policy line that would
    /// allow it (`to allow it add "127.0.0.1/32" to [network] allow_private`).
    pub hint: Option<String>,
    /// The upstream HTTP proxy the connection went through (`http://host:port`, never
    /// its credentials), or was to go through when it failed; `None` when direct.
    pub via: Option<String>,
}

/// Emits one event when dropped; shared counters track bytes.
pub(crate) struct EventGuard {
    sink: EventSink,
    start: Instant,
    pub(crate) up: Arc<AtomicU64>,
    pub(crate) down: Arc<AtomicU64>,
    draft: Mutex<Draft>,
}

/// The fields of an event that are known before it ends.
pub(crate) struct Draft {
    pub host: String,
    pub port: u16,
    pub address: Option<SocketAddr>,
    pub verdict: Verdict,
    pub rule: String,
    pub reason: String,
    pub kind: Kind,
    pub status: u16,
    pub error: Option<String>,
    pub hint: Option<String>,
    pub via: Option<String>,
}

impl Draft {
    /// A denial with no target yet.
    pub(crate) fn new(kind: Kind) -> Draft {
        Draft {
            host: String::new(),
            port: 0,
            address: None,
            verdict: Verdict::Denied,
            rule: String::new(),
            reason: String::new(),
            kind,
            status: 0,
            error: None,
            hint: None,
            via: None,
        }
    }
}

impl EventGuard {
    pub(crate) fn new(sink: EventSink, start: Instant, draft: Draft) -> EventGuard {
        EventGuard {
            sink,
            start,
            up: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicU64::new(0)),
            draft: Mutex::new(draft),
        }
    }

    /// Changes the draft.
    pub(crate) fn update(&self, f: impl FnOnce(&mut Draft)) {
        let mut d = self.draft.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut d);
    }

    /// The rule the connection was decided by, so far.
    pub(crate) fn rule(&self) -> String {
        self.draft.lock().unwrap_or_else(|p| p.into_inner()).rule.clone()
    }
}

impl Drop for EventGuard {
    fn drop(&mut self) {
        let d = self.draft.get_mut().unwrap_or_else(|p| p.into_inner());
        let event = ConnectionEvent {
            host: std::mem::take(&mut d.host),
            port: d.port,
            address: d.address,
            verdict: d.verdict,
            rule: std::mem::take(&mut d.rule),
            reason: std::mem::take(&mut d.reason),
            bytes_up: self.up.load(Ordering::Relaxed),
            bytes_down: self.down.load(Ordering::Relaxed),
            duration: self.start.elapsed(),
            kind: d.kind,
            status: d.status,
            error: d.error.take(),
            hint: d.hint.take(),
            via: d.via.take(),
        };
        tracing::debug!(
            host = %event.host, port = event.port, address = ?event.address,
            verdict = %event.verdict, rule = %event.rule, status = event.status,
            up = event.bytes_up, down = event.bytes_down, error = ?event.error, via = ?event.via,
            "connection"
        );
        (self.sink)(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_emits_exactly_once_with_counts() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink: EventSink = Arc::new(move |e| s.lock().unwrap().push(e));
        let g = Arc::new(EventGuard::new(sink, Instant::now(), Draft::new(Kind::Connect)));
        g.update(|d| {
            d.host = "a.test".into();
            d.verdict = Verdict::Allowed;
        });
        g.up.fetch_add(3, Ordering::Relaxed);
        let g2 = g.clone();
        drop(g);
        assert!(seen.lock().unwrap().is_empty());
        g2.down.fetch_add(5, Ordering::Relaxed);
        drop(g2);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].bytes_up, seen[0].bytes_down), (3, 5));
        assert_eq!(seen[0].host, "a.test");
        assert_eq!(seen[0].verdict, Verdict::Allowed);
    }
}
