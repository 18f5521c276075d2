//! Upstream HTTP proxies: the route of an allowed connection, and the CONNECT handshake
//! with the upstream.
//!
//! The policy still decides by name first; only an allowed target is routed. Routes:
//! - direct, as without an upstream: a name pinned by `[network.hosts]` (the pin says
//!   where the name is), a loopback IP literal (an upstream elsewhere cannot reach this
//!   machine's loopback), a target that `NO_PROXY` excludes, or no upstream at all (the
//!   name `localhost` is a name like any other: exempt it with `NO_PROXY`, as for curl);
//! - through the upstream: every other name, unresolved (the upstream resolves it, so the
//!   address checks are the upstream's), and every other IP literal, after vetting it
//!   against `allow_private` here (its address is known). Tunnels (CONNECT, SOCKS5) go
//!   through an upstream `CONNECT host:port`; plain HTTP goes as an absolute-URI request
//!   (what corporate proxies accept for port 80, where many refuse CONNECT).
//!
//! Credentials of the upstream (`http://user:password@host:port`) become one
//! `Proxy-Authorization: Basic` value, sent to the upstream only; no event, message or
//! log line carries it ([`Upstream`]'s `Debug` masks it).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::header::HeaderValue;
use ipnet::IpNet;
use paddock_policy::{parse_proxy_url, Host, ProxyUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::target::Target;

/// Longest CONNECT response head read from an upstream.
const MAX_HEAD: usize = 16 * 1024;

/// One upstream HTTP proxy.
#[derive(Clone)]
pub struct UpstreamProxy {
    url: ProxyUrl,
    /// `Basic base64(user:password)`, sensitive.
    auth: Option<HeaderValue>,
    /// Where it came from, for messages: `[network] upstream_proxy`, `HTTPS_PROXY`, ...
    source: Arc<str>,
}

impl fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.shown(), self.source)
    }
}

impl UpstreamProxy {
    /// An upstream from a parsed URL; `source` names where it was configured.
    pub fn new(url: ProxyUrl, source: impl Into<Arc<str>>) -> UpstreamProxy {
        let auth = url.credentials.as_ref().and_then(|(user, pass)| {
            let mut v =
                HeaderValue::from_str(&format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        UpstreamProxy { url, auth, source: source.into() }
    }

    /// `http://host:port`, without any credentials (not even the user name), for messages
    /// and records.
    pub fn shown(&self) -> String {
        format!("http://{}", self.url.address())
    }

    /// `upstream proxy http://host:port (from HTTPS_PROXY)`, for failure messages.
    pub(crate) fn label(&self) -> String {
        format!("upstream proxy {} (from {})", self.shown(), self.source)
    }

    /// The `Proxy-Authorization` value, if the URL carries credentials.
    pub(crate) fn auth(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }

    /// Dials the upstream itself (its name by one DNS lookup: the upstream is the
    /// caller's own choice, so its address is not vetted).
    pub(crate) async fn dial(&self, deadline: Instant) -> Result<(TcpStream, SocketAddr), Failure> {
        let addrs: Vec<SocketAddr> = match &self.url.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, self.url.port)],
            Host::Name(n) => match timeout_at(deadline, tokio::net::lookup_host((n.as_str(), self.url.port))).await {
                Err(_) => return Err(Failure::Timeout(format!("{}: name lookup timed out", self.label()))),
                Ok(Err(e)) => return Err(Failure::Failed(format!("{}: cannot resolve: {e}", self.label()))),
                Ok(Ok(it)) => it.collect(),
            },
        };
        let mut last = None;
        for sa in addrs {
            match timeout_at(deadline, TcpStream::connect(sa)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, sa));
                }
                Ok(Err(e)) => last = Some(format!("{}: cannot connect to {sa}: {e}", self.label())),
                Err(_) => return Err(Failure::Timeout(format!("{}: connecting to {sa} timed out", self.label()))),
            }
        }
        Err(Failure::Failed(last.unwrap_or_else(|| format!("{}: no address", self.label()))))
    }

    /// Opens a tunnel to `target` through the upstream: `CONNECT host:port`, a 2xx answer.
    pub(crate) async fn tunnel(&self, target: &Target, deadline: Instant) -> Result<(TcpStream, SocketAddr), Failure> {
        let (mut s, sa) = self.dial(deadline).await?;
        let authority = target.authority();
        let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
        if let Some(a) = &self.auth {
            head.extend_from_slice(b"Proxy-Authorization: ");
            head.extend_from_slice(a.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let what = self.label();
        let exchange = async {
            s.write_all(&head).await?;
            read_head(&mut s).await
        };
        let status_line = match timeout_at(deadline, exchange).await {
            Err(_) => return Err(Failure::Timeout(format!("{what}: no answer to CONNECT {authority} in time"))),
            Ok(Err(e)) => return Err(Failure::Failed(format!("{what}: CONNECT {authority} failed: {e}"))),
            Ok(Ok(line)) => line,
        };
        match status_of(&status_line) {
            Some(code) if (200..300).contains(&code) => Ok((s, sa)),
            Some(407) => Err(Failure::Failed(format!(
                "{what} answered `{}` to CONNECT {authority}: {}",
                printable(&status_line),
                if self.auth.is_some() {
                    "the credentials of the upstream proxy URL were refused"
                } else {
                    "it wants credentials; give them in the URL (http://user:password@host:port)"
                }
            ))),
            Some(_) => {
                Err(Failure::Failed(format!("{what} answered `{}` to CONNECT {authority}", printable(&status_line))))
            }
            None => Err(Failure::Failed(format!(
                "{what} sent no HTTP answer to CONNECT {authority} (`{}`)",
                printable(&status_line)
            ))),
        }
    }
}

/// Why an upstream could not be used.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Past the connect deadline (504).
    Timeout(String),
    /// Refused, unreachable, or a non-2xx answer (502).
    Failed(String),
}

/// Reads a response head byte by byte (so nothing of the tunnel is consumed); returns its
/// first line.
async fn read_head(s: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && !buf.ends_with(b"\n\n") {
        if buf.len() >= MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too long"));
        }
        if s.read(&mut byte).await? == 0 {
            if buf.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed without an answer"));
            }
            break;
        }
        buf.push(byte[0]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

/// `HTTP/1.1 407 Proxy Authentication Required` → 407.
fn status_of(line: &str) -> Option<u16> {
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Text another party sent, made safe for a message: printable ASCII, at most 120 chars.
fn printable(s: &str) -> String {
    s.chars().take(120).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(T[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exempt {
    /// A name and its subdomains (`example.com`, `.example.com`, `*.example.com`).
    Suffix(String, Option<u16>),
    /// An address or a network, matched against IP literal targets.
    Net(IpNet, Option<u16>),
}

/// `NO_PROXY`: the targets that go direct although an upstream is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<Exempt>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` value (curl's reading): comma- or space-separated; `*` alone
    /// exempts everything; a name (with or without a leading `.` or `*.`) exempts itself
    /// and its subdomains; an address or CIDR exempts IP literals it covers; an entry may
    /// end in `:PORT`. Names are never resolved for a CIDR. Unreadable entries are skipped
    /// (and logged): they could only have exempted something, never routed it elsewhere.
    pub fn parse(value: &str) -> NoProxy {
        let mut n = NoProxy::default();
        for raw in value.split([',', ' ', '\t']).map(str::trim).filter(|s| !s.is_empty()) {
            if raw == "*" {
                n.all = true;
                continue;
            }
            if let Ok(net) = raw.parse::<IpNet>() {
                n.entries.push(Exempt::Net(net.trunc(), None));
                continue;
            }
            let Ok((host, port)) = paddock_policy::split_host_port(raw) else {
                tracing::debug!(entry = raw, "NO_PROXY entry skipped");
                continue;
            };
            let host = host.trim_start_matches("*.").trim_start_matches('.');
            match paddock_policy::normalize_host(host) {
                Ok(Host::Ip(ip)) => n.entries.push(Exempt::Net(IpNet::from(ip), port)),
                Ok(Host::Name(name)) => n.entries.push(Exempt::Suffix(name, port)),
                Err(e) => tracing::debug!(entry = raw, error = %e, "NO_PROXY entry skipped"),
            }
        }
        n
    }

    /// Whether `target` goes direct.
    pub fn exempts(&self, target: &Target) -> bool {
        if self.all {
            return true;
        }
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == target.port);
        self.entries.iter().any(|e| match (e, &target.host) {
            (Exempt::Suffix(s, p), Host::Name(n)) => {
                port_ok(p) && (n == s || n.strip_suffix(s.as_str()).is_some_and(|rest| rest.ends_with('.')))
            }
            (Exempt::Net(net, p), Host::Ip(ip)) => port_ok(p) && net.contains(&ip.to_canonical()),
            _ => false,
        })
    }
}

/// An upstream slot: none, a proxy, or a configuration that cannot be used (every
/// connection that would take it is refused with the reason: fail closed, never direct).
#[derive(Debug, Clone, Default)]
pub enum Slot {
    /// No upstream: direct.
    #[default]
    None,
    /// Through this proxy.
    Proxy(Arc<UpstreamProxy>),
    /// Configured but unusable, with why (e.g. `HTTPS_PROXY=socks5://...`).
    Broken(Arc<str>),
}

/// The upstream proxies of one paddock proxy: one for tunnels, one for plain HTTP, and the
/// exemptions.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// For CONNECT and SOCKS5 tunnels.
    pub tunnel: Slot,
    /// For plain-HTTP (absolute-URI) requests.
    pub http: Slot,
    /// Targets that go direct.
    pub no_proxy: NoProxy,
}

impl Upstream {
    /// No upstream: every connection direct.
    pub fn none() -> Upstream {
        Upstream::default()
    }

    /// One explicit proxy for everything (`[network] upstream_proxy = "http://..."`);
    /// `NO_PROXY` does not apply.
    pub fn explicit(url: ProxyUrl) -> Upstream {
        let p = Arc::new(UpstreamProxy::new(url, "[network] upstream_proxy"));
        Upstream { tunnel: Slot::Proxy(p.clone()), http: Slot::Proxy(p), no_proxy: NoProxy::default() }
    }

    /// From the caller's environment, through `var` (the supervisor's `std::env::var`):
    /// tunnels use `https_proxy`, `HTTPS_PROXY`, else `http_proxy`, `HTTP_PROXY`; plain
    /// HTTP the reverse order; exemptions from `no_proxy`/`NO_PROXY`. Lowercase first,
    /// as curl reads them. Empty values count as unset.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Upstream {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty()).map(|v| (name.to_owned(), v));
        let first = |names: &[&str]| names.iter().find_map(|n| get(n));
        let slot = |found: Option<(String, String)>| {
            match found {
            None => Slot::None,
            Some((name, value)) => match parse_proxy_url(&value, true) {
                Ok(url) => Slot::Proxy(Arc::new(UpstreamProxy::new(url, name))),
                Err(e) => Slot::Broken(
                    format!(
                        "the caller's {name} cannot be used ({e}); set [network] upstream_proxy to \"none\" or to an http:// URL"
                    )
                    .into(),
                ),
            },
        }
        };
        Upstream {
            tunnel: slot(first(&["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"])),
            http: slot(first(&["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"])),
            no_proxy: first(&["no_proxy", "NO_PROXY"]).map(|(_, v)| NoProxy::parse(&v)).unwrap_or_default(),
        }
    }

    /// Whether any connection could go through an upstream.
    pub fn is_set(&self) -> bool {
        !matches!((&self.tunnel, &self.http), (Slot::None, Slot::None))
    }

    /// The slot for `target` (`tunnel` or plain HTTP), or `None` when it goes direct.
    /// `pinned` is the policy's pin for the name.
    pub(crate) fn route(&self, target: &Target, tunnel: bool, pinned: Option<IpAddr>) -> Option<&Slot> {
        let slot = if tunnel { &self.tunnel } else { &self.http };
        if matches!(slot, Slot::None) || pinned.is_some() || self.no_proxy.exempts(target) {
            return None;
        }
        match &target.host {
            Host::Ip(ip) if ip.to_canonical().is_loopback() => None,
            _ => Some(slot),
        }
    }
}

#[cfg(test)]
mod tests;
