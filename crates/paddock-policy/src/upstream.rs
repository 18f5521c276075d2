//! `[network] upstream_proxy`: how the supervisor's proxy reaches allowed hosts (the
//! caller's proxy variables, none, or an explicit `http://` proxy whose password is never
//! shown).

use crate::error::{Origin, Problems};
use crate::host::{normalize_host, split_host_port, Host};

/// `[network] upstream_proxy`: how the supervisor's proxy reaches allowed hosts.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum UpstreamSetting {
    /// `"env"` (the default): the caller's `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (either
    /// case), read by the supervisor, never by the child.
    #[default]
    Env,
    /// `"none"`: always go direct, whatever the caller's environment says.
    None,
    /// An explicit upstream proxy (`NO_PROXY` does not apply).
    Url(ProxyUrl),
}

impl UpstreamSetting {
    /// The setting as `policy show` writes it: credentials masked.
    pub fn shown(&self) -> String {
        match self {
            UpstreamSetting::Env => "env".into(),
            UpstreamSetting::None => "none".into(),
            UpstreamSetting::Url(u) => u.shown(),
        }
    }
}

impl std::fmt::Debug for UpstreamSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// An upstream HTTP proxy: `http://[user[:password]@]host[:port][/]`. The password is
/// never shown: not by `Debug`, not by [`ProxyUrl::shown`].
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The proxy's host name or address, normalised.
    pub host: Host,
    /// Its port (80 when the URL names none).
    pub port: u16,
    /// `user:password`, percent-decoded, for `Proxy-Authorization: Basic`.
    pub credentials: Option<(String, String)>,
}

impl ProxyUrl {
    /// `http://host:port`, with `user:***@` when there are credentials.
    pub fn shown(&self) -> String {
        match &self.credentials {
            Some((user, _)) => format!("http://{}:***@{}", escape_userinfo(user), self.host.authority(self.port)),
            None => format!("http://{}", self.host.authority(self.port)),
        }
    }

    /// `host:port` of the proxy, credentials left out (for messages and records).
    pub fn address(&self) -> String {
        self.host.authority(self.port)
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// The user name as shown: printable ASCII kept, anything else as `?`.
fn escape_userinfo(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => out.push(v),
                None => return Err("a `%` in the user or password is not followed by two hex digits".into()),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8 once percent-decoded".into())
}

/// Parses an upstream proxy URL. With `scheme_optional` (a value from the environment,
/// where `proxy.corp:3128` is common) a URL without `http://` is read as one; a policy
/// must write the scheme. Only `http://` proxies are supported (the tunnel to the proxy
/// is plain TCP; what runs inside it is the child's own TLS).
pub fn parse_proxy_url(raw: &str, scheme_optional: bool) -> Result<ProxyUrl, String> {
    let raw = raw.trim();
    let rest = match raw.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(format!("upstream proxy scheme `{scheme}://` is not supported; only `http://` proxies are"))
        }
        None if scheme_optional => raw,
        None => return Err("an upstream proxy URL starts with `http://`".into()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err("an upstream proxy URL has no path, query or fragment: write `http://host:port`".into());
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let credentials = match userinfo {
        None => None,
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            Some((percent_decode(user)?, percent_decode(pass)?))
        }
    };
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err("the upstream proxy URL names no host".into());
    }
    let host = normalize_host(host).map_err(|e| e.to_string())?;
    Ok(ProxyUrl { host, port: port.unwrap_or(80), credentials })
}

/// Compiles `[network] upstream_proxy`.
pub(crate) fn compile_upstream(e: Option<(&str, &Origin)>, problems: &mut Problems) -> UpstreamSetting {
    let Some((raw, origin)) = e else { return UpstreamSetting::Env };
    match raw.trim() {
        "env" => UpstreamSetting::Env,
        "none" => UpstreamSetting::None,
        url => match parse_proxy_url(url, false) {
            Ok(u) => UpstreamSetting::Url(u),
            Err(m) => {
                problems.push(
                    origin,
                    format!("bad upstream_proxy: {m}"),
                    Some("write \"env\" (the caller's HTTPS_PROXY/HTTP_PROXY/NO_PROXY), \"none\" (always direct) or a URL such as \"http://proxy.corp:3128\" or \"http://user:password@proxy.corp:3128\"".into()),
                );
                UpstreamSetting::Env
            }
        },
    }
}

#[cfg(test)]
mod upstream_tests {
    use super::*;
    use crate::{Policy, Vars};

    fn vars() -> Vars {
        Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None }
    }

    fn load(net: &str) -> Result<Policy, String> {
        let text = format!("version = 1\n[network]\n{net}\n");
        Policy::from_toml_str("p.toml", &text, &vars()).map_err(|e| e.to_string())
    }

    #[test]
    fn upstream_proxy_values() {
        assert_eq!(load("").unwrap().network.upstream_proxy, UpstreamSetting::Env);
        assert_eq!(load("upstream_proxy = \"env\"").unwrap().network.upstream_proxy, UpstreamSetting::Env);
        assert_eq!(load("upstream_proxy = \"none\"").unwrap().network.upstream_proxy, UpstreamSetting::None);
        let p = load("upstream_proxy = \"http://alice:p%40ss@Proxy.Corp:3128/\"").unwrap();
        let UpstreamSetting::Url(u) = &p.network.upstream_proxy else { panic!("{:?}", p.network.upstream_proxy) };
        assert_eq!((u.host.clone(), u.port), (Host::Name("proxy.corp".into()), 3128));
        assert_eq!(u.credentials, Some(("alice".into(), "p@ss".into())));
        assert_eq!(u.shown(), "http://alice:***@proxy.corp:3128");
        assert!(!format!("{:?}", p.network).contains("p@ss"));
        assert!(!p.effective_toml().contains("p@ss"), "policy show masks the password");
        assert!(p.effective_toml().contains("upstream_proxy = \"http://alice:***@proxy.corp:3128\""));
        let u = parse_proxy_url("http://[::1]", false).unwrap();
        assert_eq!((u.host, u.port, u.credentials), (Host::Ip("::1".parse().unwrap()), 80, None));
    }

    #[test]
    fn bad_upstream_proxy_is_located() {
        for (bad, needle) in [
            ("socks5://p.corp:1080", "only `http://`"),
            ("https://p.corp:3128", "only `http://`"),
            ("p.corp:3128", "starts with `http://`"),
            ("http://p.corp:3128/path", "no path"),
            ("http://p.corp:99999", "bad port"),
            ("http://:3128", "no host"),
            ("http://u:%zz@p.corp:1", "two hex digits"),
        ] {
            let e = load(&format!("upstream_proxy = {bad:?}")).unwrap_err();
            assert!(e.starts_with("p.toml:3:18: error: bad upstream_proxy"), "{bad}: {e}");
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(e.contains("\"none\""), "{bad}: the hint names the choices: {e}");
        }
        let e = load("upstream-proxy = \"none\"").unwrap_err();
        assert!(e.contains("did you mean `upstream_proxy`"), "{e}");
    }
}
