//! Host names as the policy compares them: [`normalize_host`] (lowercase, punycode, no
//! trailing dot, IP literals canonical) and [`split_host_port`].

use std::net::IpAddr;

/// Longest name accepted.
const MAX_NAME: usize = 253;
/// Longest label accepted.
const MAX_LABEL: usize = 63;

/// A normalised host: a lowercase ASCII (punycode) name without a trailing dot, or an IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl Host {
    /// The name, or the IP literal in canonical text without brackets (`::1`).
    pub fn as_policy_str(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// The form used in an authority (`host:port`): IPv6 literals in brackets.
    pub fn authority(&self, port: u16) -> String {
        format!("{self}:{port}")
    }
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

/// Why a host was refused by normalisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The host is empty.
    #[error("empty host")]
    Empty,
    /// The host contains a character that has no place in a host name.
    #[error("host {host:?} contains {ch:?}, which a host name cannot have")]
    BadChar {
        /// The host as given.
        host: String,
        /// The offending character.
        ch: char,
    },
    /// A label is empty (`a..b`, `.a`, `a..`).
    #[error("host {0:?} has an empty label")]
    EmptyLabel(String),
    /// The IDNA conversion failed.
    #[error("host {0:?} is not a valid internationalised domain name")]
    Idna(String),
    /// The name or a label is too long.
    #[error("host {0:?} is too long")]
    TooLong(String),
    /// A bracketed literal is not an IPv6 address.
    #[error("host {0:?} is not a valid IPv6 literal")]
    BadIpv6(String),
    /// The name looks like a number a resolver could read as an IPv4 address.
    #[error("host {0:?} looks like an IP address in a non-standard form; write it as a dotted quad")]
    NumericName(String),
    /// Four decimal numbers, one of them over 255 (`999.1.1.1`): no IPv4 address.
    #[error("host {0:?} is not an IPv4 address: each of its four numbers must be from 0 to 255")]
    OctetOutOfRange(String),
}

/// Normalises a host as a client or a policy wrote it (no port): case, one trailing dot,
/// IDN to punycode, `[v6]` brackets or a bare IPv6 literal. Refuses empty labels, bad
/// characters (also after IDNA mapping) and all-numeric names that are not a proper
/// dotted quad (`127.1`, `0x7f.1`, `2130706433`: resolvers read those as addresses).
/// The one normaliser of paddock: the policy and the proxy both use it, so the name a
/// rule matches is the name the proxy resolves.
///
/// ```
/// use paddock_policy::{normalize_host, Host};
/// assert_eq!(normalize_host("Example.COM.").unwrap(), Host::Name("example.com".into()));
/// assert_eq!(normalize_host("bücher.example").unwrap(), Host::Name("xn--bcher-kva.example".into()));
/// assert_eq!(normalize_host("[::1]").unwrap(), Host::Ip("::1".parse().unwrap()));
/// assert!(normalize_host("allowed.com@evil.com").is_err());
/// ```
pub fn normalize_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(ch) = raw.chars().find(|&c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '%' | '@' | '\\' | '/' | '?' | '#' | '*' | '[' | ']')
                && !(c == '[' && raw.starts_with('['))
                && !(c == ']' && raw.ends_with(']'))
    }) {
        return Err(HostError::BadChar { host: raw.into(), ch });
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| HostError::BadIpv6(raw.into()))?;
        let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| HostError::BadIpv6(raw.into()))?;
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = raw.strip_suffix('.').unwrap_or(raw);
    check_labels(raw, name)?;
    // Plain ASCII names (the common case) skip IDNA; `xn--` labels are validated by it.
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.split('.').any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"));
    let ascii = if plain {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(name).map_err(|_| HostError::Idna(raw.into()))?
    };
    // UTS 46 maps some characters (full-width dots, `％`, ...) to ASCII ones: check the
    // result again, strictly.
    if let Some(ch) =
        ascii.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(HostError::BadChar { host: raw.into(), ch });
    }
    check_labels(raw, &ascii)?;
    if ascii.len() > MAX_NAME {
        return Err(HostError::TooLong(raw.into()));
    }
    if let Ok(ip) = ascii.parse::<std::net::Ipv4Addr>() {
        // e.g. a full-width spelling of a dotted quad: it is that literal.
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    // A TLD is never numeric: such a name is an address in a form inet_aton accepts.
    let last = ascii.rsplit('.').next().unwrap_or_default();
    let hex = last.strip_prefix("0x").is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    if hex || last.chars().all(|c| c.is_ascii_digit()) {
        if out_of_range_quad(&ascii) {
            return Err(HostError::OctetOutOfRange(raw.into()));
        }
        return Err(HostError::NumericName(raw.into()));
    }
    Ok(Host::Name(ascii))
}

/// A dotted quad of decimal numbers without leading zeros, one of them over 255.
fn out_of_range_quad(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    let decimal =
        |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0'));
    parts.len() == 4
        && parts.iter().all(decimal)
        && parts.iter().any(|p| p.len() > 3 || p.parse::<u16>().is_ok_and(|n| n > 255))
}

fn check_labels(raw: &str, name: &str) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel(raw.into()));
        }
        if label.len() > MAX_LABEL {
            return Err(HostError::TooLong(raw.into()));
        }
    }
    Ok(())
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
    fn an_octet_out_of_range_is_said_so() {
        assert_eq!(normalize_host("999.1.1.1"), Err(HostError::OctetOutOfRange("999.1.1.1".into())));
        assert_eq!(normalize_host("1.2.3.1000"), Err(HostError::OctetOutOfRange("1.2.3.1000".into())));
        // A leading zero is octal to inet_aton: a non-standard form, not a range error.
        assert_eq!(normalize_host("010.1.1.999"), Err(HostError::NumericName("010.1.1.999".into())));
        assert_eq!(normalize_host("127.1"), Err(HostError::NumericName("127.1".into())));
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
