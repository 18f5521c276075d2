//! Request targets: where a request asks to go, read from what hyper parsed.
//!
//! Applied after hyper has parsed the request head and before the gate:
//! `CONNECT host:port` (authority-form, port required) and `METHOD
//! http://host[:port]/path` (absolute-form, `http` only, port 80 by default).
//! Everything else is refused with 400: origin-form requests (this is a proxy,
//! not a server), userinfo (`http://allowed.com@evil.com/`), other schemes,
//! missing hosts, bad or zero ports, and a `Host` header that names another
//! host than the request line (the request line decides; a disagreement is
//! treated as an attempt to confuse the upstream).

use hyper::header::HOST;
use hyper::{Method, Request};
use thiserror::Error;

use crate::host::{normalise_host, Host, HostError};

/// A vetted request target: a normalised host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The normalised host.
    pub host: Host,
    /// The destination port (never 0).
    pub port: u16,
}

impl Target {
    /// `host:port`, IPv6 literals in brackets.
    pub fn authority(&self) -> String {
        self.host.authority(self.port)
    }
}

/// Why a request target was refused (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// A request without an absolute URI (`GET /path`).
    #[error(
        "origin-form request {0:?}: this is a proxy, send an absolute URI (http://host/path) or CONNECT host:port"
    )]
    OriginForm(String),
    /// CONNECT without `host:port`.
    #[error("CONNECT needs host:port, got {0:?}")]
    ConnectForm(String),
    /// A scheme other than `http` in an absolute URI.
    #[error("scheme {0:?} cannot be forwarded: only http:// URIs are forwarded; use CONNECT for TLS")]
    Scheme(String),
    /// No host in the URI.
    #[error("missing host in {0:?}")]
    MissingHost(String),
    /// Userinfo (`user@`, `user:pw@`) in the authority.
    #[error("userinfo in {0:?} is refused (it can disguise the real host)")]
    UserInfo(String),
    /// A port that is empty, not a number, out of range or 0.
    #[error("bad port in {0:?}")]
    BadPort(String),
    /// The host failed normalisation.
    #[error(transparent)]
    Host(#[from] HostError),
    /// More than one `Host` header.
    #[error("more than one Host header")]
    MultipleHost,
    /// The `Host` header names another host or port than the request line.
    #[error("Host header {header:?} disagrees with the request target {target:?}")]
    HostMismatch {
        /// The Host header.
        header: String,
        /// The request line's authority.
        target: String,
    },
    /// A URL to fetch that is not absolute (`http://host/...`).
    #[error("{0:?} is not an absolute http(s) URL")]
    NotAbsolute(String),
    /// A URL to fetch whose scheme is neither `http` nor `https`.
    #[error("scheme {0:?} is not http or https")]
    UrlScheme(String),
}

/// Splits an authority into the host and the port text (if any), refusing userinfo.
fn split_authority(auth: &str) -> Result<(&str, Option<&str>), TargetError> {
    if auth.contains('@') {
        return Err(TargetError::UserInfo(auth.into()));
    }
    if auth.is_empty() {
        return Err(TargetError::MissingHost(auth.into()));
    }
    if auth.starts_with('[') {
        let end = auth.find(']').ok_or_else(|| TargetError::Host(HostError::BadIpv6(auth.into())))?;
        let (host, rest) = auth.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err(TargetError::BadPort(auth.into())),
            },
        };
    }
    match auth.split_once(':') {
        None => Ok((auth, None)),
        Some((h, p)) if !p.contains(':') => Ok((h, Some(p))),
        Some(_) => Err(TargetError::Host(HostError::BadChar { host: auth.into(), ch: ':' })),
    }
}

fn parse_port(auth: &str, port: &str) -> Result<u16, TargetError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::BadPort(auth.into()));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(TargetError::BadPort(auth.into())),
        Ok(p) => Ok(p),
    }
}

/// Parses `host[:port]` (port defaulting to `default_port` when absent).
pub fn parse_authority(auth: &str, default_port: Option<u16>) -> Result<Target, TargetError> {
    let (host, port) = split_authority(auth)?;
    if host.is_empty() {
        return Err(TargetError::MissingHost(auth.into()));
    }
    let port = match (port, default_port) {
        (Some(p), _) => parse_port(auth, p)?,
        (None, Some(d)) => d,
        (None, None) => return Err(TargetError::ConnectForm(auth.into())),
    };
    Ok(Target { host: normalise_host(host)?, port })
}

/// The target of a `CONNECT` request.
pub fn connect_target<B>(req: &Request<B>) -> Result<Target, TargetError> {
    debug_assert_eq!(req.method(), Method::CONNECT);
    let uri = req.uri();
    let shown = uri.to_string();
    if uri.scheme().is_some() || uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
        return Err(TargetError::ConnectForm(shown));
    }
    let auth = uri.authority().ok_or_else(|| TargetError::ConnectForm(shown.clone()))?;
    parse_authority(auth.as_str(), None)
}

/// The target of an absolute-form request (`GET http://host/path`), checked
/// against its `Host` header.
pub fn forward_target<B>(req: &Request<B>) -> Result<Target, TargetError> {
    let uri = req.uri();
    let shown = uri.to_string();
    let Some(scheme) = uri.scheme_str() else {
        return Err(TargetError::OriginForm(shown));
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(TargetError::Scheme(scheme.into()));
    }
    let auth = uri.authority().ok_or_else(|| TargetError::MissingHost(shown.clone()))?;
    let target = parse_authority(auth.as_str(), Some(80))?;
    let mut hosts = req.headers().get_all(HOST).iter();
    if let Some(h) = hosts.next() {
        if hosts.next().is_some() {
            return Err(TargetError::MultipleHost);
        }
        let text = h.to_str().map_err(|_| TargetError::HostMismatch {
            header: String::from_utf8_lossy(h.as_bytes()).into_owned(),
            target: auth.as_str().into(),
        })?;
        let mismatch = || TargetError::HostMismatch { header: text.into(), target: auth.as_str().into() };
        let from_header = parse_authority(text, Some(80)).map_err(|_| mismatch())?;
        if from_header != target {
            return Err(mismatch());
        }
    }
    Ok(target)
}

/// The target of a URL to fetch (an agent's `http_request`): `http` or `https`, the
/// scheme's port by default, parsed by the same `http::Uri` and authority rules as a
/// request the proxy forwards (so the host a call is decided on is the one the proxy
/// sees), userinfo refused.
pub fn url_target(url: &str) -> Result<Target, TargetError> {
    let uri: hyper::Uri = url.parse().map_err(|_| TargetError::NotAbsolute(url.into()))?;
    let default = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => 80,
        Some("https") => 443,
        Some(other) => return Err(TargetError::UrlScheme(other.into())),
        None => return Err(TargetError::NotAbsolute(url.into())),
    };
    let auth = uri.authority().ok_or_else(|| TargetError::MissingHost(url.into()))?;
    parse_authority(auth.as_str(), Some(default))
}

/// A request's own target (its absolute URI's or HTTP/2 `:authority`, and every `Host`,
/// each when present) must be `target`, the host its connection was decided and dialled
/// for (a `Host` without a port means `default_port`). Both are checked: a `Host` beside
/// an absolute URI would otherwise go upstream and pick another site on a shared front end.
pub(crate) fn same_target(
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
    target: &Target,
    default_port: u16,
) -> Result<(), String> {
    let mut named = Vec::new();
    if let Some(a) = uri.authority() {
        named.push(a.as_str().to_owned());
    }
    for h in headers.get_all(hyper::header::HOST) {
        named.push(h.to_str().map_err(|_| "a Host header that is not text".to_owned())?.to_owned());
    }
    for named in named {
        match parse_authority(&named, Some(default_port)) {
            Ok(t) if t == *target => {}
            _ => {
                return Err(format!(
                    "this connection is for {}; a request for {named} needs its own CONNECT",
                    target.authority()
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap()
    }

    fn t(host: &str, port: u16) -> Target {
        Target { host: normalise_host(host).unwrap(), port }
    }

    #[test]
    fn connect_forms() {
        assert_eq!(connect_target(&req("CONNECT", "Example.com:443", &[])).unwrap(), t("example.com", 443));
        assert_eq!(connect_target(&req("CONNECT", "[::1]:8443", &[])).unwrap(), t("[::1]", 8443));
        assert_eq!(connect_target(&req("CONNECT", "10.0.0.1:22", &[])).unwrap(), t("10.0.0.1", 22));
        assert!(matches!(connect_target(&req("CONNECT", "example.com:0", &[])), Err(TargetError::BadPort(_))));
        assert!(matches!(connect_target(&req("CONNECT", "example.com:65536", &[])), Err(TargetError::BadPort(_))));
        assert!(matches!(connect_target(&req("CONNECT", "user@example.com:443", &[])), Err(TargetError::UserInfo(_))));
        assert!(connect_target(&req("CONNECT", "http://example.com:443/", &[])).is_err());
    }

    #[test]
    fn connect_without_port_is_refused() {
        // hyper accepts `CONNECT example.com`; the proxy does not guess a port.
        let r = Request::builder().method("CONNECT").uri("example.com").body(()).unwrap();
        assert!(connect_target(&r).is_err());
    }

    #[test]
    fn absolute_forms() {
        assert_eq!(forward_target(&req("GET", "http://a.test/x", &[])).unwrap(), t("a.test", 80));
        assert_eq!(forward_target(&req("GET", "http://a.test:8080/x", &["a.test:8080"])).unwrap(), t("a.test", 8080));
        assert_eq!(forward_target(&req("GET", "HTTP://A.TEST./x", &["a.test"])).unwrap(), t("a.test", 80));
        assert_eq!(forward_target(&req("GET", "http://a.test:80/", &["A.Test"])).unwrap(), t("a.test", 80));
        assert_eq!(forward_target(&req("GET", "http://[::1]:81/", &["[::1]:81"])).unwrap(), t("[::1]", 81));
    }

    #[test]
    fn bad_absolute_forms() {
        use TargetError as E;
        assert!(matches!(forward_target(&req("GET", "/path", &["a.test"])), Err(E::OriginForm(_))));
        assert!(matches!(forward_target(&req("GET", "https://a.test/", &[])), Err(E::Scheme(_))));
        assert!(matches!(forward_target(&req("GET", "ftp://a.test/", &[])), Err(E::Scheme(_))));
        assert!(matches!(forward_target(&req("GET", "http://allowed.com@evil.com/", &[])), Err(E::UserInfo(_))));
        assert!(matches!(forward_target(&req("GET", "http://user:pw@a.test/", &[])), Err(E::UserInfo(_))));
        assert!(matches!(forward_target(&req("GET", "http://a.test:0/", &[])), Err(E::BadPort(_))));
        assert!(matches!(forward_target(&req("GET", "http://a.test:99999/", &[])), Err(E::BadPort(_))));
        assert!(matches!(forward_target(&req("GET", "http://a.test:/", &[])), Err(E::BadPort(_))));
        assert!(matches!(forward_target(&req("GET", "http://a..test/", &[])), Err(E::Host(_))));
        assert!(matches!(forward_target(&req("GET", "http://127.1/", &[])), Err(E::Host(_))));
    }

    #[test]
    fn host_header_must_agree() {
        use TargetError as E;
        let mismatch =
            |h: &str| matches!(forward_target(&req("GET", "http://a.test/", &[h])), Err(E::HostMismatch { .. }));
        assert!(mismatch("evil.test"));
        assert!(mismatch("a.test:8080"));
        assert!(mismatch("a.test.evil"));
        assert!(mismatch("127.0.0.1"));
        assert!(mismatch("user@a.test"));
        assert!(mismatch(""));
        assert!(matches!(forward_target(&req("GET", "http://a.test/", &["a.test", "a.test"])), Err(E::MultipleHost)));
    }

    #[test]
    fn uri_parser_rejects_garbage_before_us() {
        // These never reach the target parser: hyper/http refuse them first.
        for bad in ["http://a b/", "http://a\\b/", "http://[::1/"] {
            assert!(bad.parse::<hyper::Uri>().is_err(), "{bad}");
        }
    }

    #[test]
    fn url_targets() {
        let t = url_target("https://Example.COM/path?q").unwrap();
        assert_eq!((t.host.as_policy_str(), t.port), ("example.com".to_string(), 443));
        let t = url_target("http://[::1]:8080/").unwrap();
        assert_eq!((t.host.as_policy_str(), t.port), ("::1".to_string(), 8080));
        assert!(matches!(url_target("ftp://example.com/"), Err(TargetError::UrlScheme(_))));
        assert!(matches!(url_target("example.com/x"), Err(TargetError::NotAbsolute(_))));
        assert!(matches!(url_target("http://allowed.com@evil.com/"), Err(TargetError::UserInfo(_))));
        assert!(matches!(url_target("http://example.com:0/"), Err(TargetError::BadPort(_))));
    }
}
