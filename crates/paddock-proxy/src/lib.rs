//! paddock's egress gate: an HTTP proxy that decides every connection.
//!
//! A sandboxed child has no network but a loopback interface on which this
//! proxy listens (`HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` point at it). For each
//! `CONNECT host:port` tunnel, each plain `GET http://host/path` request and
//! each SOCKS5 `CONNECT` (optional, for clients that only speak SOCKS) it:
//!
//! 1. reads the target from the request line (origin-form, userinfo, odd
//!    ports and a disagreeing `Host` header are refused with 400; see
//!    [`forward_target`], [`connect_target`]);
//! 2. normalises the host ([`normalise_host`]: lowercase, no trailing dot,
//!    punycode);
//! 3. asks the [`HostPolicy`] (403 with the rule and a hint when denied; when it
//!    answers [`HostDecision::ask`], the connection is held for [`HostPolicy::ask`]);
//! 4. resolves the name — the policy's pin first, else DNS — and
//!    [`classify`]s every address: anything but [`AddrClass::Public`] is
//!    refused unless [`HostPolicy::private_allowed`] covers it (the SSRF
//!    guard: loopback, RFC 1918, CGNAT, link-local/metadata, and IPv6 forms
//!    embedding them);
//! 5. dials exactly the vetted address (no second lookup, so no DNS
//!    rebinding window) and relays, counting bytes;
//! 6. reports the connection once through the event callback
//!    ([`ConnectionEvent`]).
//!
//! With an upstream HTTP proxy ([`ProxyConfig::upstream`]), steps 4 and 5 change for the
//! targets it routes (see [`Upstream`]): a name is not resolved here but handed to the
//! upstream (`CONNECT host:port`, or an absolute-URI request for plain HTTP), so its
//! address checks are the upstream's; pinned names, loopback and `NO_PROXY` go direct.
//!
//! # TLS interception
//!
//! With [`ProxyConfig::intercept`] set (an [`Intercept`]: a [`SessionCa`], an
//! [`Interceptor`] and extra upstream CA files), the supervisor sees requests in plain
//! text where it needs to; with `None` (the default) nothing of this happens.
//!
//! - **What is terminated, and when**: a `CONNECT` (or SOCKS5) tunnel whose target the
//!   [`HostPolicy`] allowed and for which [`Interceptor::intercepts`] says yes. The
//!   upstream is dialled through the same gate as any tunnel (pins, SSRF guard, upstream
//!   proxy), the client gets `200`, then the proxy answers the client's TLS handshake with
//!   a leaf certificate for the CONNECT host (an IP SAN for an IP literal) signed by the
//!   in-memory session CA, offering ALPN `h2` and `http/1.1`, and serves its requests
//!   (keep-alive, HTTP/2 streams) with hyper. A request whose `Host`/`:authority` is not
//!   the CONNECT target gets 421. Protocol upgrades (WebSocket) are not relayed on an
//!   intercepted host: `Upgrade` is a hop-by-hop header and is removed.
//! - **What the interceptor sees**: every such request, and every plain-HTTP forward
//!   request, before anything is sent upstream ([`Interceptor::request`]): method, host,
//!   port, path, and the headers without hop-by-hop ones, which it may rewrite. A
//!   [`Deny`] is a 403 with `paddock-rule: RULE` and `paddock: REASON`; nothing goes
//!   upstream. Each request is reported once, after its response ended or failed
//!   ([`Interceptor::record`], an [`HttpEvent`]: path without query values, status,
//!   body bytes each way, secret name, refusal, error). Bodies stream through; they are
//!   never held whole.
//! - **What is verified upstream**: a TLS connection to the vetted address with SNI = the
//!   CONNECT host, whose certificate must chain to the system's roots
//!   (`rustls-native-certs`) or an [`Intercept::upstream_ca`] file and name that host.
//!   A failure is a 502 naming the host; an untrusted certificate says
//!   `certificate not trusted; add its CA to [network] upstream_ca`. Requests of one
//!   client connection share its upstream connection (HTTP/2), or use one of its own
//!   HTTP/1.1 connections at a time.
//! - **Tunnels that stay opaque** are still checked by name: [`Interceptor::tunnel`] gets
//!   the CONNECT target (a refusal is a 403, nothing dialled) and then the SNI of the
//!   client's ClientHello. With or without interception, every tunnel's first bytes are
//!   read (at most 16 KiB, `header_timeout` once they started) before any reaches the
//!   upstream: a ClientHello whose SNI is not the target closes the tunnel (rule
//!   `proxy.sni`), plain HTTP/1 is served request by request with each `Host` checked
//!   against the target (421 and the end of the tunnel otherwise, rule
//!   `proxy.tunnel_host`). Bytes the server sends first flow meanwhile.
//! - **Crypto**: rustls with the `ring` provider on both sides; the CA key and the leaf
//!   key are generated in memory per session and never written. [`ca_bundle_pem`] gives
//!   the system roots plus the session CA, for the child to trust.
//!
//! The proxy never parses policy: the policy engine implements [`HostPolicy`].
//! The listener is handed in, so it can be a socket inside a child's network
//! namespace.
//!
//! ```
//! use std::net::IpAddr;
//! use std::sync::{Arc, Mutex};
//! use paddock_proxy::{serve, HostDecision, HostPolicy, ProxyConfig, Verdict};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! struct OnlyExample;
//! impl HostPolicy for OnlyExample {
//!     fn decide(&self, host: &str, port: u16) -> HostDecision {
//!         if host == "example.com" && (port == 80 || port == 443) {
//!             HostDecision::allow("network.allow[0]", "example.com is allowed")
//!         } else {
//!             HostDecision::deny("network.default", "no [network] allow entry matches")
//!         }
//!     }
//!     fn pinned(&self, _host: &str) -> Option<IpAddr> { None }
//!     fn private_allowed(&self, _addr: IpAddr) -> bool { false }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let events = Arc::new(Mutex::new(Vec::new()));
//! let seen = Arc::clone(&events);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let proxy = tokio::spawn(serve(
//!     listener,
//!     Arc::new(OnlyExample),
//!     Arc::new(move |event| seen.lock().unwrap().push(event)), // audit it
//!     ProxyConfig::default(),
//!     async { stopped.await.ok(); },
//! ));
//!
//! // A client asks for a host the policy does not allow: 403, naming the rule.
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! client.write_all(b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n").await?;
//! let mut answer = String::new();
//! client.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
//!
//! stop.send(()).ok();
//! proxy.await.expect("proxy task")?;
//! let events = events.lock().unwrap();
//! assert_eq!((events[0].host.as_str(), events[0].verdict), ("evil.test", Verdict::Denied));
//! assert_eq!(events[0].rule, "network.default");
//! # Ok(()) })
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod addr;
mod body;
mod config;
mod connect;
mod counted;
mod event;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod hop;
mod host;
mod intercept;
mod preview;
mod respond;
mod server;
mod shared;
mod socks;
#[cfg(target_os = "linux")]
mod splice;
mod target;
mod tunnel;
mod upstream;
mod watch;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

pub use addr::{classify, classify_v4, classify_v6, embedded_ipv4, AddrClass};
pub use config::ProxyConfig;
pub use event::{ConnectionEvent, EventSink, Kind, Verdict};
pub use gate::{deny_hint, vet, AddressRefusal};
pub use host::{normalise_host, Host, HostError};
/// The `http` crate's types ([`RequestParts`] carries its `Method` and `HeaderMap`).
pub use hyper::http;
pub use intercept::{
    ca_bundle_pem, redact_path, Deny, HttpEvent, Intercept, InterceptError, Interceptor, RequestParts, RequestVerdict,
    SessionCa,
};
pub use preview::{preview, preview_with, Preview};
pub use server::serve;
pub use target::{connect_target, forward_target, parse_authority, url_target, Target, TargetError};
pub use upstream::{NoProxy, Slot, Upstream, UpstreamProxy};

/// Decides `host:port` by name. The policy engine implements it; the proxy
/// never parses policy itself.
pub trait HostPolicy: Send + Sync + 'static {
    /// Decides whether `host:port` may be reached.
    ///
    /// `host` is the proxy's normalised form of what the client asked
    /// ([`normalise_host`]): lowercase ASCII, punycode for IDNs, no trailing
    /// dot; an IP literal in canonical text without brackets (`10.0.0.1`,
    /// `::1`) — the policy should allow literals only by an explicit entry.
    /// Normalising it again is harmless (the form is a fixed point), so an
    /// implementation that normalises its input works unchanged.
    fn decide(&self, host: &str, port: u16) -> HostDecision;

    /// A `[network.hosts]` pin for the (normalised) name, consulted before
    /// DNS. A pinned address is classified like any other.
    fn pinned(&self, host: &str) -> Option<IpAddr>;

    /// True when an `allow_private` CIDR covers `addr`, a non-public address
    /// (IPv4-mapped IPv6 addresses arrive as plain IPv4).
    fn private_allowed(&self, addr: IpAddr) -> bool;

    /// Asks a person about `host:port`, which [`HostPolicy::decide`] answered with
    /// [`HostDecision::ask`]: the proxy holds the connection until the future gives the
    /// final decision (allow or deny, never ask again). The default denies at once:
    /// nobody to ask.
    fn ask(&self, host: &str, port: u16) -> Pin<Box<dyn Future<Output = HostDecision> + Send>> {
        let d =
            HostDecision::deny("default", format!("{host}:{port} needs a person's answer, and nobody can be asked"));
        Box::pin(std::future::ready(d))
    }

    /// Decides again an open connection to `host:port` that a person's answer let through
    /// (`rule`: the rule that answer gave, `approved[N]` for a standing one) while its host
    /// is still only asked about: a refusal now (that rule revoked) cuts it. The default:
    /// the answer stands.
    fn recheck_answer(&self, host: &str, port: u16, rule: &str) -> Option<HostDecision> {
        let _ = (host, port, rule);
        None
    }
}

/// A policy's answer for one host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDecision {
    /// Whether the connection may proceed (to resolution and address vetting).
    pub allow: bool,
    /// The id of the rule that decided, e.g. `network.allow[2]`, `network.deny[0]`.
    pub rule: String,
    /// Why, in words, for the refusal message and the audit log.
    pub reason: String,
    /// Not decided by a rule: a person is to be asked ([`HostPolicy::ask`]); `allow` is false.
    pub ask: bool,
}

impl HostDecision {
    /// An allowing decision.
    pub fn allow(rule: impl Into<String>, reason: impl Into<String>) -> HostDecision {
        HostDecision { allow: true, rule: rule.into(), reason: reason.into(), ask: false }
    }

    /// A denying decision.
    pub fn deny(rule: impl Into<String>, reason: impl Into<String>) -> HostDecision {
        HostDecision { allow: false, rule: rule.into(), reason: reason.into(), ask: false }
    }

    /// A decision to ask a person ([`HostPolicy::ask`]); until answered, a denial.
    pub fn ask(rule: impl Into<String>, reason: impl Into<String>) -> HostDecision {
        HostDecision { allow: false, rule: rule.into(), reason: reason.into(), ask: true }
    }
}
