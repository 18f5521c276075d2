//! The collector's URL: [`Endpoint`].

use std::fmt;

use super::error::ExportError;

/// The OTLP/HTTP logs path a collector listens on.
pub const LOGS_PATH: &str = "/v1/logs";

/// An OTLP/HTTP collector: `http://HOST[:PORT][/PATH]`. A URL without a path (or `/`)
/// gets the standard `/v1/logs`; the port defaults to 4318 (OTLP/HTTP's).
///
/// Only `http://` is accepted: run an OpenTelemetry Collector on the host (or as a
/// sidecar) and let it forward over TLS. An `https://` URL is refused with that advice
/// rather than sent in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Request path, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses a collector URL.
    pub fn parse(url: &str) -> Result<Endpoint, ExportError> {
        // The URL as an error repeats it: credentials in it are not (the error is shown
        // and may be logged).
        let shown = redact_userinfo(url);
        let bad = |reason: &str| ExportError::BadEndpoint { url: shown.clone(), reason: reason.to_owned() };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad("https is not supported: point paddock at an OpenTelemetry Collector on this host (http://127.0.0.1:4318) and let it forward over TLS"))
            }
            _ => return Err(bad("expected http://HOST[:PORT][/PATH], such as http://127.0.0.1:4318")),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported (they would be stored in the export state)"));
        }
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("the path may not hold a query, a fragment, spaces or control characters"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[` in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace() || "/\\".contains(c)) {
            return Err(bad("no usable host"));
        }
        let port = match port {
            None => 4318,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("the port must be 1-65535"))?,
        };
        let path = if path.is_empty() || path == "/" { LOGS_PATH.to_owned() } else { path.to_owned() };
        Ok(Endpoint { host: host.to_ascii_lowercase(), port, path })
    }

    /// `host:port` as dialled (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `url` with what stands before an `@` in its authority replaced by `REDACTED`.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://REDACTED@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:4318").unwrap();
        assert_eq!(e.to_string(), "http://127.0.0.1:4318/v1/logs");
        assert_eq!(Endpoint::parse("HTTP://Collector/").unwrap().to_string(), "http://collector:4318/v1/logs");
        assert_eq!(Endpoint::parse("http://[::1]:9/otlp/v1/logs").unwrap().to_string(), "http://[::1]:9/otlp/v1/logs");
        for bad in [
            "https://x",
            "ftp://x",
            "x:4318",
            "http://",
            "http://a:0",
            "http://a:99999",
            "http://u:p@a",
            "http://a/p?q",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(Endpoint::parse("https://x").unwrap_err().to_string().contains("Collector"));
        // An error never repeats the credentials it refuses.
        for url in ["http://user:hunter2@a:4318/v1/logs", "https://user:hunter2@a", "http://hunter2@a/x@y"] {
            let e = Endpoint::parse(url).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && e.contains("REDACTED"), "{e}");
        }
    }
}
