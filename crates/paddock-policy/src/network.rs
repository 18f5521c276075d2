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

use crate::decision::Decision;
use crate::error::{Origin, Problems};
pub use crate::host::{normalize_host, split_host_port, Host, HostError};
use crate::upstream::{compile_upstream, UpstreamSetting};

/// Ports a portless `allow` entry covers.
pub const DEFAULT_ALLOW_PORTS: [u16; 2] = [80, 443];

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
    /// Where each pin of `hosts` was written (for `policy lint`).
    pub host_origins: BTreeMap<String, Origin>,
    /// `upstream_proxy`.
    pub upstream_proxy: UpstreamSetting,
    allow_exact: HashMap<Host, Vec<usize>>,
    allow_suffix: HashMap<String, Vec<usize>>,
    deny_exact: HashMap<Host, Vec<usize>>,
    deny_suffix: HashMap<String, Vec<usize>>,
}

pub(crate) struct RawEntry {
    pub raw: String,
    pub origin: Origin,
}

const HOST_HINT: &str =
    "write `example.com`, `*.example.com` (subdomains only) or an IP literal, optionally with `:PORT`";

pub(crate) fn compile_host(kind: &str, i: usize, e: &RawEntry, problems: &mut Problems) -> Option<HostRule> {
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
            format!(
                "bad host pattern `{}`: a wildcard may only be the whole first label, as in `*.example.com`",
                e.raw
            ),
            Some(HOST_HINT.into()),
        );
        return None;
    }
    let host = match normalize_host(name).map_err(|e| e.to_string()) {
        Ok(h) => h,
        Err(m) => {
            problems.push(&e.origin, format!("bad host pattern `{}`: {m}", e.raw), Some(HOST_HINT.into()));
            return None;
        }
    };
    if wildcard && matches!(host, Host::Ip(_)) {
        problems.push(
            &e.origin,
            format!("bad host pattern `{}`: a wildcard cannot precede an IP address", e.raw),
            Some(HOST_HINT.into()),
        );
        return None;
    }
    if wildcard && matches!(&host, Host::Name(n) if !n.contains('.')) {
        tracing::debug!(pattern = %e.raw, "wildcard over a top-level domain");
    }
    Some(HostRule {
        id: format!("network.{kind}[{i}]").into(),
        raw: e.raw.clone(),
        wildcard,
        host,
        port,
        origin: e.origin.clone(),
    })
}

impl NetworkRules {
    pub(crate) fn compile(
        allow: Vec<RawEntry>,
        deny: Vec<RawEntry>,
        private: Vec<RawEntry>,
        hosts: Vec<(RawEntry, RawEntry)>,
        upstream: Option<RawEntry>,
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
                    Some(
                        "write an address or a network such as `127.0.0.1`, `127.0.0.0/8`, `10.0.0.0/8` or `fd00::/8`"
                            .into(),
                    ),
                ),
            }
        }
        for (k, v) in &hosts {
            let name = match normalize_host(&k.raw).map_err(|e| e.to_string()) {
                Ok(Host::Name(n)) => n,
                Ok(Host::Ip(_)) => {
                    problems.push(
                        &k.origin,
                        format!("`{}` in [network.hosts] is an address, not a name", k.raw),
                        Some("pin a host name: `\"api.internal.test\" = \"127.0.0.1\"`".into()),
                    );
                    continue;
                }
                Err(m) => {
                    problems.push(&k.origin, format!("bad host name `{}` in [network.hosts]: {m}", k.raw), None);
                    continue;
                }
            };
            match v.raw.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    n.host_origins.insert(name.clone(), k.origin.clone());
                    n.hosts.insert(name, ip);
                }
                Err(_) => problems.push(
                    &v.origin,
                    format!("bad address `{}` for `{}` in [network.hosts]", v.raw, k.raw),
                    Some("a pin is one IP address, e.g. \"127.0.0.1\" or \"::1\"".into()),
                ),
            }
        }
        n.upstream_proxy = compile_upstream(upstream.as_ref().map(|e| (e.raw.as_str(), &e.origin)), problems);
        n
    }

    fn first<'a>(
        &'a self,
        rules: &'a [HostRule],
        exact: &HashMap<Host, Vec<usize>>,
        suffix: &HashMap<String, Vec<usize>>,
        host: &Host,
        port: u16,
        default_ports: Option<&[u16]>,
    ) -> Option<&'a HostRule> {
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
        match normalize_host(host) {
            Ok(h) => self.decide_host(&h, port),
            Err(e) => Decision::deny_default(format!("refused: {e}")),
        }
    }

    /// Decides a connection to an already normalised host.
    pub fn decide_host(&self, h: &Host, port: u16) -> Decision {
        if let Some(r) = self.first(&self.deny, &self.deny_exact, &self.deny_suffix, h, port, None) {
            return Decision::deny(&r.id, format!("{h}:{port} is denied by `{}`", r.raw));
        }
        if let Some(r) =
            self.first(&self.allow, &self.allow_exact, &self.allow_suffix, h, port, Some(&DEFAULT_ALLOW_PORTS))
        {
            return Decision::allow(&r.id, format!("{h}:{port} is allowed by `{}`", r.raw));
        }
        let hint = match h {
            Host::Ip(_) => format!("IP literals need an explicit entry: add \"{h}:{port}\" to [network] allow"),
            Host::Name(_) if self.allow_exact.contains_key(h) => {
                format!("the host is allowed on other ports: add \"{h}:{port}\" to [network] allow")
            }
            Host::Name(_) if DEFAULT_ALLOW_PORTS.contains(&port) => {
                format!("add \"{h}\" (ports 80 and 443) or \"{h}:{port}\" to [network] allow")
            }
            Host::Name(_) => format!("add \"{h}:{port}\" to [network] allow"),
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
mod host_tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(normalize_host("Example.COM").unwrap(), name("example.com"));
        assert_eq!(normalize_host("example.com.").unwrap(), name("example.com"));
        assert_eq!(normalize_host("a-b_c.example").unwrap(), name("a-b_c.example"));
        assert_eq!(normalize_host("localhost").unwrap(), name("localhost"));
    }

    #[test]
    fn idn_becomes_punycode() {
        assert_eq!(normalize_host("bücher.example").unwrap(), name("xn--bcher-kva.example"));
        assert_eq!(normalize_host("BÜCHER.example.").unwrap(), name("xn--bcher-kva.example"));
        assert_eq!(normalize_host("xn--bcher-kva.example").unwrap(), name("xn--bcher-kva.example"));
        // Full-width dot maps to '.'.
        assert_eq!(normalize_host("bücher。example").unwrap(), name("xn--bcher-kva.example"));
    }

    #[test]
    fn ip_literals() {
        assert_eq!(normalize_host("127.0.0.1").unwrap(), Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(normalize_host("[::1]").unwrap(), Host::Ip("::1".parse().unwrap()));
        assert_eq!(normalize_host("[::FFFF:127.0.0.1]").unwrap(), Host::Ip("::ffff:127.0.0.1".parse().unwrap()));
        assert_eq!(Host::Ip("::1".parse().unwrap()).as_policy_str(), "::1");
        assert_eq!(Host::Ip("::1".parse().unwrap()).authority(443), "[::1]:443");
        assert_eq!(name("a.test").authority(80), "a.test:80");
    }

    #[test]
    fn refusals() {
        let bad = [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a..",
            "a b",
            " a",
            "a\t",
            "a%2e",
            "fe80::1%eth0",
            "[fe80::1%25eth0]",
            "user@host",
            "allowed.com@evil.com",
            "a\\b",
            "a/b",
            "[::1",
            "[nothost]",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0x7f.0.0.1",
            "1.2.3.4.5",
            "a.b.123",
            "a\u{0}b",
            "ex＠mple.com",
            "ex％41mple.com",
            "xn--",
        ];
        for b in bad {
            assert!(normalize_host(b).is_err(), "{b:?} should be refused, got {:?}", normalize_host(b));
        }
        let long_label = "a".repeat(64);
        assert!(matches!(normalize_host(&long_label), Err(HostError::TooLong(_))));
        let long_name = vec!["a".repeat(60); 5].join(".");
        assert!(matches!(normalize_host(&long_name), Err(HostError::TooLong(_))));
    }
}
