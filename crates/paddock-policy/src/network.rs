//! `[network]`: host patterns, ports, `allow_private` and `[network.hosts]` pins.
//!
//! A pattern is `host`, `*.suffix` (subdomains only, never the apex) or an IP literal,
//! with an optional `:port`. Without a port an `allow` entry covers 80 and 443 and a
//! `deny` entry covers every port. Case and a trailing dot are ignored; IDNs compare as
//! punycode. An IP literal is only matched by an entry that names that very address.
//! `deny` beats `allow`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::{Origin, Problems};
use crate::Decision;

/// Ports a portless `allow` entry covers.
pub const DEFAULT_ALLOW_PORTS: [u16; 2] = [80, 443];

/// A normalised host: a lowercase ASCII (punycode) name without a trailing dot, or an IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(a) => write!(f, "{a}"),
        }
    }
}

/// Normalises a host as a client or a policy wrote it: case, one trailing dot, IDN to
/// punycode, `[v6]` brackets. Refuses empty labels, bad characters and all-numeric names
/// that are not a proper dotted-quad (`127.1`, `0x7f.1`: resolvers read those as addresses).
pub fn normalize_host(input: &str) -> Result<Host, String> {
    let s = input.strip_suffix('.').unwrap_or(input);
    if s.is_empty() {
        return Err("empty host".into());
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().map(|a| Host::Ip(IpAddr::V6(a))).map_err(|_| format!("bad IPv6 literal `{input}`"));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if s.contains(|c: char| c.is_whitespace() || "/\\@%:?#[]*".contains(c)) {
        return Err(format!("`{input}` has characters a host name cannot have"));
    }
    // Plain ASCII names (the common case) skip IDNA; `xn--` labels are validated by it.
    let plain = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.split('.').any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"));
    let ascii = if plain {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|_| format!("`{input}` is not a valid host name (IDNA)"))?
    };
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(format!("`{input}` is not a valid host name"));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(format!("`{input}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("`{input}` has a label longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("`{input}` has characters a host name cannot have"));
        }
    }
    let last = ascii.rsplit('.').next().unwrap_or("");
    if last.bytes().all(|b| b.is_ascii_digit()) || (last.starts_with("0x") && ascii.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'x')) {
        return Err(format!("`{input}` looks like an IP address in a non-standard form; write it as a dotted quad"));
    }
    Ok(Host::Name(ascii))
}

/// Splits `host[:port]` / `[v6][:port]` / bare IPv6 into its parts.
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let rest = &s[end + 1..];
                match rest.strip_prefix(':') {
                    Some(p) => (&s[..=end], Some(p)),
                    None if rest.is_empty() => (&s[..=end], None),
                    None => return Err(format!("unexpected `{rest}` after `]` in `{s}`")),
                }
            }
            None => return Err(format!("missing `]` in `{s}`")),
        }
    } else if s.matches(':').count() > 1 {
        (s, None) // a bare IPv6 literal
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => return Err(format!("bad port `{p}`: a port is a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// One compiled host pattern.
#[derive(Debug, Clone)]
pub struct HostRule {
    /// `network.allow[0]` and so on.
    pub id: Arc<str>,
    /// As written.
    pub raw: String,
    /// `true` for `*.suffix`.
    pub wildcard: bool,
    /// The host, or the suffix after `*.`.
    pub host: Host,
    /// The port, if the entry names one.
    pub port: Option<u16>,
    /// Where it was written.
    pub origin: Origin,
}

/// The compiled `[network]` section.
#[derive(Debug, Clone, Default)]
pub struct NetworkRules {
    /// `allow` in order.
    pub allow: Vec<HostRule>,
    /// `deny` in order.
    pub deny: Vec<HostRule>,
    /// `allow_private`.
    pub allow_private: Vec<IpNet>,
    /// `[network.hosts]` pins.
    pub hosts: BTreeMap<String, IpAddr>,
    allow_exact: HashMap<Host, Vec<usize>>,
    allow_suffix: HashMap<String, Vec<usize>>,
    deny_exact: HashMap<Host, Vec<usize>>,
    deny_suffix: HashMap<String, Vec<usize>>,
}

pub(crate) struct RawEntry {
    pub raw: String,
    pub origin: Origin,
}

const HOST_HINT: &str = "write `example.com`, `*.example.com` (subdomains only) or an IP literal, optionally with `:PORT`";

fn compile_host(kind: &str, i: usize, e: &RawEntry, problems: &mut Problems) -> Option<HostRule> {
    let (host, port) = match split_host_port(e.raw.trim()) {
        Ok(x) => x,
        Err(m) => {
            problems.push(&e.origin, format!("bad host pattern `{}`: {m}", e.raw), Some(HOST_HINT.into()));
            return None;
        }
    };
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    if name.contains('*') {
        problems.push(
            &e.origin,
            format!("bad host pattern `{}`: a wildcard may only be the whole first label, as in `*.example.com`", e.raw),
            Some(HOST_HINT.into()),
        );
        return None;
    }
    let host = match normalize_host(name) {
        Ok(h) => h,
        Err(m) => {
            problems.push(&e.origin, format!("bad host pattern `{}`: {m}", e.raw), Some(HOST_HINT.into()));
            return None;
        }
    };
    if wildcard && matches!(host, Host::Ip(_)) {
        problems.push(&e.origin, format!("bad host pattern `{}`: a wildcard cannot precede an IP address", e.raw), Some(HOST_HINT.into()));
        return None;
    }
    if wildcard && matches!(&host, Host::Name(n) if !n.contains('.')) {
        tracing::debug!(pattern = %e.raw, "wildcard over a top-level domain");
    }
    Some(HostRule { id: format!("network.{kind}[{i}]").into(), raw: e.raw.clone(), wildcard, host, port, origin: e.origin.clone() })
}

impl NetworkRules {
    pub(crate) fn compile(
        allow: Vec<RawEntry>,
        deny: Vec<RawEntry>,
        private: Vec<RawEntry>,
        hosts: Vec<(RawEntry, RawEntry)>,
        problems: &mut Problems,
    ) -> NetworkRules {
        let mut n = NetworkRules::default();
        for (kind, list) in [("allow", &allow), ("deny", &deny)] {
            for (i, e) in list.iter().enumerate() {
                let Some(r) = compile_host(kind, i, e, problems) else { continue };
                let (vec, exact, suffix) = if kind == "allow" {
                    (&mut n.allow, &mut n.allow_exact, &mut n.allow_suffix)
                } else {
                    (&mut n.deny, &mut n.deny_exact, &mut n.deny_suffix)
                };
                match (&r.host, r.wildcard) {
                    (Host::Name(s), true) => suffix.entry(s.clone()).or_default().push(vec.len()),
                    (h, _) => exact.entry(h.clone()).or_default().push(vec.len()),
                }
                vec.push(r);
            }
        }
        for e in &private {
            let raw = e.raw.trim();
            let parsed = raw.parse::<IpNet>().or_else(|_| raw.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => n.allow_private.push(net.trunc()),
                Err(_) => problems.push(
                    &e.origin,
                    format!("bad CIDR `{}` in allow_private", e.raw),
                    Some("write an address or a network such as `127.0.0.1`, `127.0.0.0/8`, `10.0.0.0/8` or `fd00::/8`".into()),
                ),
            }
        }
        for (k, v) in &hosts {
            let name = match normalize_host(&k.raw) {
                Ok(Host::Name(n)) => n,
                Ok(Host::Ip(_)) => {
                    problems.push(&k.origin, format!("`{}` in [network.hosts] is an address, not a name", k.raw), Some("pin a host name: `\"api.internal.test\" = \"127.0.0.1\"`".into()));
                    continue;
                }
                Err(m) => {
                    problems.push(&k.origin, format!("bad host name `{}` in [network.hosts]: {m}", k.raw), None);
                    continue;
                }
            };
            match v.raw.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    n.hosts.insert(name, ip);
                }
                Err(_) => problems.push(
                    &v.origin,
                    format!("bad address `{}` for `{}` in [network.hosts]", v.raw, k.raw),
                    Some("a pin is one IP address, e.g. \"127.0.0.1\" or \"::1\"".into()),
                ),
            }
        }
        n
    }

    fn first<'a>(&'a self, rules: &'a [HostRule], exact: &HashMap<Host, Vec<usize>>, suffix: &HashMap<String, Vec<usize>>, host: &Host, port: u16, default_ports: Option<&[u16]>) -> Option<&'a HostRule> {
        let port_ok = |r: &HostRule| match (r.port, default_ports) {
            (Some(p), _) => p == port,
            (None, Some(ports)) => ports.contains(&port),
            (None, None) => true,
        };
        let mut best: Option<usize> = None;
        let mut consider = |idxs: Option<&Vec<usize>>| {
            for &i in idxs.into_iter().flatten() {
                if port_ok(&rules[i]) {
                    best = Some(best.map_or(i, |b| b.min(i)));
                    break;
                }
            }
        };
        consider(exact.get(host));
        if let Host::Name(name) = host {
            let mut rest = name.as_str();
            while let Some((_, suf)) = rest.split_once('.') {
                consider(suffix.get(suf));
                rest = suf;
            }
        }
        best.map(|i| &rules[i])
    }

    /// Decides a connection to `host:port`. `host` is normalised here.
    pub fn decide(&self, host: &str, port: u16) -> Decision {
        let h = match normalize_host(host) {
            Ok(h) => h,
            Err(m) => return Decision::deny_default(format!("refused: {m}")),
        };
        self.decide_host(&h, port)
    }

    /// Decides a connection to an already normalised host.
    pub fn decide_host(&self, h: &Host, port: u16) -> Decision {
        if let Some(r) = self.first(&self.deny, &self.deny_exact, &self.deny_suffix, h, port, None) {
            return Decision::deny(&r.id, format!("{h}:{port} is denied by `{}`", r.raw));
        }
        if let Some(r) = self.first(&self.allow, &self.allow_exact, &self.allow_suffix, h, port, Some(&DEFAULT_ALLOW_PORTS)) {
            return Decision::allow(&r.id, format!("{h}:{port} is allowed by `{}`", r.raw));
        }
        let hint = match h {
            Host::Ip(_) => format!("IP literals need an explicit entry: add \"{h}:{port}\" to [network] allow"),
            Host::Name(_) if self.allow_exact.contains_key(h) => {
                format!("the host is allowed on other ports: add \"{h}:{port}\" to [network] allow")
            }
            Host::Name(_) => format!("add \"{h}\" (ports 80 and 443) or \"{h}:{port}\" to [network] allow"),
        };
        Decision::deny_default(format!("{h}:{port} is not in [network] allow; {hint}"))
    }

    /// The `[network.hosts]` pin of a host name, if any.
    pub fn pinned(&self, host: &str) -> Option<IpAddr> {
        match normalize_host(host) {
            Ok(Host::Name(n)) => self.hosts.get(&n).copied(),
            _ => None,
        }
    }

    /// Whether `allow_private` covers `addr` (IPv4-mapped IPv6 addresses count as their IPv4).
    pub fn private_allowed(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            a => a,
        };
        self.allow_private.iter().any(|n| n.contains(&addr))
    }

    /// Whether the policy allows any network at all.
    pub fn any_allowed(&self) -> bool {
        !self.allow.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("GitHub.COM.").unwrap(), Host::Name("github.com".into()));
        assert_eq!(normalize_host("bücher.example").unwrap(), Host::Name("xn--bcher-kva.example".into()));
        assert_eq!(normalize_host("[::1]").unwrap(), Host::Ip("::1".parse().unwrap()));
        assert_eq!(normalize_host("127.0.0.1").unwrap(), Host::Ip("127.0.0.1".parse().unwrap()));
        for bad in ["", ".", "a..b", "a b", "evil.com@x", "127.1", "0x7f.1", "2130706433", "a/b", "x%2e.com"] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.com:8080").unwrap(), ("a.com", Some(8080)));
        assert_eq!(split_host_port("[::1]:443").unwrap(), ("[::1]", Some(443)));
        assert_eq!(split_host_port("::1").unwrap(), ("::1", None));
        assert!(split_host_port("a.com:0").is_err());
        assert!(split_host_port("a.com:65536").is_err());
        assert!(split_host_port("a.com:http").is_err());
    }
}
