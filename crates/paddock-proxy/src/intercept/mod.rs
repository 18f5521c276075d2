//! TLS interception: the proxy terminates TLS for the hosts an [`Interceptor`] names, so
//! that it can see (and rewrite) each request in plain text.
//!
//! The proxy knows nothing about secrets or request rules: the supervisor implements
//! [`Interceptor`] and hands it in through [`ProxyConfig::intercept`](crate::ProxyConfig).
//! Per connection, in order:
//! 1. `CONNECT host:port` is decided by the [`HostPolicy`](crate::HostPolicy) as always;
//! 2. [`Interceptor::intercepts`] says whether this target is terminated;
//! 3. terminated: the gate vets and dials the upstream exactly as for a tunnel (pins,
//!    SSRF guard, upstream proxy), the client gets `200`, then a TLS handshake with a leaf
//!    certificate for `host` signed by the [`SessionCa`] ([`serve`]); every request is
//!    shown to [`Interceptor::request`] and sent over a second TLS connection to the
//!    upstream, verified against the system roots plus [`Intercept::upstream_ca`]
//!    ([`tls`], [`forward`]);
//! 4. not terminated: the tunnel stays opaque, but its CONNECT target and the SNI of the
//!    client's ClientHello go through [`Interceptor::tunnel`] before any byte is relayed
//!    (read by the check every tunnel gets, `crate::tunnel`).
//!
//! Plain-HTTP forward requests go through [`Interceptor::request`] too. Every request
//! seen in plain text is reported once through [`Interceptor::record`] ([`event`]).

mod body;
mod ca;
mod error;
mod event;
pub(crate) mod form;
pub(crate) mod forward;
pub(crate) mod plain;
pub(crate) mod refuse;
pub(crate) mod serve;
mod tls;

use std::fmt;

use hyper::http;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use body::Metered;
pub use ca::{ca_bundle_pem, SessionCa};
pub use error::InterceptError;
pub use event::redact_path;
pub(crate) use event::HttpRecord;
pub(crate) use tls::Engine;

/// The supervisor's side of interception (implemented in the `paddock` crate).
pub trait Interceptor: Send + Sync + 'static {
    /// True when the proxy terminates TLS for a CONNECT to `host:port` (normalised host,
    /// as `HostPolicy::decide` gets it). Asked only after `HostPolicy::decide` allowed it.
    fn intercepts(&self, host: &str, port: u16) -> bool;

    /// Every request the proxy sees in plain text — inside an intercepted TLS connection,
    /// or a plain-HTTP forward request (`GET http://...`) — before anything is sent
    /// upstream. May rewrite `req.headers` (placeholder → value). `Deny` → the client gets
    /// 403 with header `paddock-rule: RULE` and a text body `paddock: REASON`; nothing is
    /// sent upstream.
    fn request(&self, req: &mut RequestParts<'_>) -> RequestVerdict;

    /// A tunnel that stays opaque (not intercepted), before any byte is relayed: the
    /// CONNECT target and, when the client's first bytes are a TLS ClientHello with an
    /// SNI, that name (the proxy peeks it, bounded: 16 KiB / the header timeout).
    /// `Some(deny)` → 403 (or, once the tunnel is established, the connection is closed)
    /// and an event.
    ///
    /// Called twice for a TLS tunnel: at CONNECT time with `sni: None` (a deny is a 403
    /// and nothing is dialled), then once the ClientHello is read, with its SNI (a deny
    /// closes the tunnel before any client byte reaches the upstream). A ClientHello that
    /// cannot be read within the bounds, or whose SNI is not the CONNECT target, closes
    /// the tunnel without a second call.
    fn tunnel(&self, host: &str, port: u16, sni: Option<&str>) -> Option<Deny>;

    /// One record per intercepted or forwarded request, after the response ended (or failed).
    fn record(&self, event: HttpEvent);

    /// A request let through earlier, still streaming (`event` as it stands: method, host,
    /// port, path, the secret put in it), decided again every 200 ms: `Some(deny)` when
    /// it would be refused now (a revoked rule or secret), which cuts its connection. The
    /// default: it stands.
    fn still(&self, event: &HttpEvent) -> Option<Deny> {
        let _ = event;
        None
    }

    /// Whether a form body (`application/x-www-form-urlencoded`, `multipart/form-data`)
    /// of a request to `host:port` is to be read whole and shown to [`Interceptor::form`]
    /// before it is sent. The default: no, bodies stream.
    fn reads_forms(&self, host: &str, port: u16) -> bool {
        let _ = (host, port);
        false
    }

    /// A request's form body, read whole (at most 1 MiB; a larger one is refused), after
    /// [`Interceptor::request`] let the request through: `Some(deny)` refuses it (403),
    /// nothing goes upstream. The default: it goes.
    fn form(&self, req: &RequestParts<'_>, body: &[u8]) -> Option<Deny> {
        let _ = (req, body);
        None
    }
}

/// One request as the proxy sees it in plain text, before it goes upstream.
pub struct RequestParts<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The normalised host (the CONNECT target, or the absolute URI's host).
    pub host: &'a str,
    /// The destination port.
    pub port: u16,
    /// Origin-form path and query, as sent by the client.
    pub path_and_query: &'a str,
    /// The headers that go upstream (hop-by-hop headers already removed); may be rewritten.
    pub headers: &'a mut http::HeaderMap,
    /// True inside an intercepted TLS connection; false for a plain-HTTP forward request,
    /// whose headers cross the network in clear text.
    pub tls: bool,
}

/// The interceptor's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVerdict {
    /// Send it; `secret` names the secret injected, if any (for the record).
    Allow {
        /// The name of the secret injected, if any.
        secret: Option<String>,
    },
    /// Refuse it: 403, nothing sent upstream.
    Deny(Deny),
}

/// A refusal by the interceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// The rule that refused, e.g. `network.http[0].deny[1]` or `secrets.github`.
    pub rule: String,
    /// One line, no secret values.
    pub reason: String,
    /// True: a placeholder went to a host it does not belong to.
    pub exfiltration: bool,
}

/// The record of one request seen in plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEvent {
    /// The request method.
    pub method: String,
    /// The normalised host.
    pub host: String,
    /// The destination port.
    pub port: u16,
    /// The path with query values dropped: `/search?q=&page=` ([`redact_path`]).
    pub path: String,
    /// The upstream's status; `None` when refused by paddock before upstream, or failed.
    pub status: Option<u16>,
    /// Request body bytes.
    pub bytes_up: u64,
    /// Response body bytes.
    pub bytes_down: u64,
    /// The secret injected, by name.
    pub secret: Option<String>,
    /// Some when paddock refused it.
    pub denied: Option<Deny>,
    /// Upstream failure (TLS verification, connect, reset, timeout).
    pub error: Option<String>,
}

/// Everything interception needs; [`ProxyConfig::intercept`](crate::ProxyConfig) holds it
/// (`None` = no interception: no tunnel is terminated and none goes to an interceptor).
#[derive(Clone)]
pub struct Intercept {
    /// The session CA that signs the leaf certificates the child sees.
    pub ca: Arc<SessionCa>,
    /// The supervisor's side.
    pub interceptor: Arc<dyn Interceptor>,
    /// Extra PEM files trusted for upstreams, besides the system roots (`[network] upstream_ca`).
    pub upstream_ca: Vec<PathBuf>,
}

impl fmt::Debug for Intercept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intercept")
            .field("ca", &self.ca)
            .field("upstream_ca", &self.upstream_ca)
            .finish_non_exhaustive()
    }
}

impl Intercept {
    /// Loads the upstream trust (system roots plus every `upstream_ca` file) as the proxy
    /// will: an unreadable file, or one without a certificate, is an error naming it.
    /// [`serve`](crate::serve) does the same at start and fails on it; call this to report
    /// the error earlier.
    pub fn check(&self) -> Result<(), InterceptError> {
        tls::upstream_roots(&self.upstream_ca).map(|_| ())
    }
}
