//! Host normalisation: the one spelling of a host that the gate decides on,
//! resolves and reports.
//!
//! Applied first, to the host of every request target, before the policy is
//! asked. A name is lowercased, loses one trailing dot and is converted to
//! punycode (IDNA/UTS 46 via the `idna` crate); the result must be plain
//! ASCII letters, digits, `-` and `_` in non-empty labels. IP literals
//! (`1.2.3.4`, `[::1]`) become [`Host::Ip`]. Anything odd is refused rather
//! than guessed at: spaces, `%` (zone ids, escapes), `@` (userinfo), `\`,
//! empty labels, and numeric-looking names such as `127.1` or `0x7f000001`
//! that a resolver might read as an IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use thiserror::Error;

/// Longest host name accepted (RFC 1035, without the trailing dot).
const MAX_NAME: usize = 253;
/// Longest label accepted.
const MAX_LABEL: usize = 63;

/// A normalised host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lowercase ASCII (punycode), no trailing dot.
    Name(String),
    /// An IP literal. IPv4-mapped IPv6 literals are kept as written; the gate
    /// canonicalises them before classifying and dialling.
    Ip(IpAddr),
}

impl Host {
    /// The form passed to [`crate::HostPolicy::decide`] and reported in events:
    /// the name, or the IP literal in canonical text without brackets (`::1`).
    pub fn as_policy_str(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// The form used in an authority (`host:port`): IPv6 literals in brackets.
    pub fn authority(&self, port: u16) -> String {
        match self {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            other => format!("{}:{port}", other.as_policy_str()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Why a host was refused by normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    /// The host is empty.
    #[error("empty host")]
    Empty,
    /// The host contains a character that has no place in a host name.
    #[error("host {host:?} contains {ch:?}, which is not allowed in a host name")]
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
    #[error("host {0:?} looks like a non-canonical IPv4 address; write the address as a.b.c.d")]
    NumericName(String),
}

/// Normalises a host as a client sent it (no port; IPv6 in brackets).
///
/// ```
/// use paddock_proxy::{normalise_host, Host};
/// assert_eq!(normalise_host("Example.COM.").unwrap(), Host::Name("example.com".into()));
/// assert_eq!(normalise_host("bücher.example").unwrap(), Host::Name("xn--bcher-kva.example".into()));
/// assert_eq!(normalise_host("[::1]").unwrap(), Host::Ip("::1".parse().unwrap()));
/// assert!(normalise_host("allowed.com@evil.com").is_err());
/// ```
pub fn normalise_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(ch) = raw.chars().find(|&c| {
        c.is_whitespace() || c.is_control() || matches!(c, '%' | '@' | '\\' | '/' | '?' | '#')
    }) {
        return Err(HostError::BadChar {
            host: raw.into(),
            ch,
        });
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| HostError::BadIpv6(raw.into()))?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| HostError::BadIpv6(raw.into()))?;
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }
    if let Ok(ip) = raw.parse::<std::net::Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = raw.strip_suffix('.').unwrap_or(raw);
    check_labels(raw, name)?;
    let ascii = idna::domain_to_ascii(name).map_err(|_| HostError::Idna(raw.into()))?;
    // UTS 46 maps some characters (full-width dots, `％`, ...) to ASCII ones:
    // check the result again, strictly.
    if let Some(ch) = ascii
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(HostError::BadChar {
            host: raw.into(),
            ch,
        });
    }
    check_labels(raw, &ascii)?;
    if ascii.len() > MAX_NAME {
        return Err(HostError::TooLong(raw.into()));
    }
    // A name whose last label is numeric is either an IPv4 address in a form
    // inet_aton accepts (`127.1`, `2130706433`, `0x7f.1`) or invalid: a TLD is
    // never numeric.
    if ascii.parse::<std::net::Ipv4Addr>().is_ok() {
        // e.g. a full-width spelling of a dotted quad: accept it as the literal.
        return Ok(Host::Ip(
            ascii.parse().map(IpAddr::V4).expect("parsed above"),
        ));
    }
    let last = ascii.rsplit('.').next().unwrap_or_default();
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    if hex || last.chars().all(|c| c.is_ascii_digit()) {
        return Err(HostError::NumericName(raw.into()));
    }
    Ok(Host::Name(ascii))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(normalise_host("Example.COM").unwrap(), name("example.com"));
        assert_eq!(normalise_host("example.com.").unwrap(), name("example.com"));
        assert_eq!(
            normalise_host("a-b_c.example").unwrap(),
            name("a-b_c.example")
        );
        assert_eq!(normalise_host("localhost").unwrap(), name("localhost"));
    }

    #[test]
    fn idn_becomes_punycode() {
        assert_eq!(
            normalise_host("bücher.example").unwrap(),
            name("xn--bcher-kva.example")
        );
        assert_eq!(
            normalise_host("BÜCHER.example.").unwrap(),
            name("xn--bcher-kva.example")
        );
        assert_eq!(
            normalise_host("xn--bcher-kva.example").unwrap(),
            name("xn--bcher-kva.example")
        );
        // Full-width dot maps to '.'.
        assert_eq!(
            normalise_host("bücher。example").unwrap(),
            name("xn--bcher-kva.example")
        );
    }

    #[test]
    fn ip_literals() {
        assert_eq!(
            normalise_host("127.0.0.1").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            normalise_host("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            normalise_host("[::FFFF:127.0.0.1]").unwrap(),
            Host::Ip("::ffff:127.0.0.1".parse().unwrap())
        );
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
            "::1",
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
            assert!(
                normalise_host(b).is_err(),
                "{b:?} should be refused, got {:?}",
                normalise_host(b)
            );
        }
        let long_label = "a".repeat(64);
        assert!(matches!(
            normalise_host(&long_label),
            Err(HostError::TooLong(_))
        ));
        let long_name = vec!["a".repeat(60); 5].join(".");
        assert!(matches!(
            normalise_host(&long_name),
            Err(HostError::TooLong(_))
        ));
    }
}
