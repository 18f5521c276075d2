//! `[secrets.NAME]`: credentials the child can use but never read.
//!
//! ```toml
//! [secrets.github]
//! from  = "env:GITHUB_TOKEN"        # or "file:PATH" or "command:gh auth token" (+ ttl, default 5m)
//! hosts = ["api.github.com"]        # host patterns, as in [network] allow; each must be allowed there
//! env   = "GITHUB_TOKEN"            # the child's variable: a placeholder, never the value
//! header = "Authorization"          # optional (default)
//! format = "Bearer {}"              # optional (default); "token {}", or "basic" with `user`
//! ```
//!
//! This module only describes a secret: where its value comes from and where it may go.
//! The value itself is read, held and injected by the supervisor (`paddock::secrets`);
//! nothing here ever sees it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Origin, Problems};
use crate::limits::EnvRules;
use crate::load::At;
use crate::network::{compile_host, Host, HostRule, NetworkRules, RawEntry};
use crate::raw::S;
use crate::vars::Vars;

/// The keys of a `[secrets.NAME]` table, for "did you mean" hints.
pub(crate) const KEYS: &[&str] = &["from", "hosts", "env", "header", "format", "user", "ttl"];

/// How long a `command:` secret's value is kept before the command runs again.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);

/// The variables paddock sets in every child that trusts the session CA: a secret's `env`
/// may not name one of them.
pub const CA_BUNDLE_VARS: [&str; 7] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
    "PIP_CERT",
];

/// `[secrets.NAME]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    pub from: Option<S<String>>,
    #[serde(default)]
    pub hosts: Vec<S<String>>,
    pub env: Option<S<String>>,
    pub header: Option<S<String>>,
    pub format: Option<S<String>>,
    pub user: Option<S<String>>,
    pub ttl: Option<S<String>>,
}

/// One `[secrets.NAME]` table after loading: every value with where it was written.
pub(crate) struct MergedSecret {
    name: At<String>,
    from: Option<At<String>>,
    hosts: Vec<At<String>>,
    env: Option<At<String>>,
    header: Option<At<String>>,
    format: Option<At<String>>,
    user: Option<At<String>>,
    ttl: Option<At<String>>,
}

/// Adds one file's `[secrets.*]` tables to `into`: a later file's table of the same name
/// replaces the earlier one whole (a secret is one credential, never a mix of two).
pub(crate) fn merge(
    raw: BTreeMap<S<String>, S<RawSecret>>,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
    into: &mut BTreeMap<String, MergedSecret>,
) {
    let one = |v: Option<S<String>>| {
        v.map(|s| {
            let o = at(s.span());
            (s.into_inner(), o)
        })
    };
    for (k, v) in raw {
        let name = (k.get_ref().clone(), at(k.span()));
        let v = v.into_inner();
        let hosts = v
            .hosts
            .into_iter()
            .map(|s| {
                let o = at(s.span());
                (s.into_inner(), o)
            })
            .collect();
        let m = MergedSecret {
            name,
            from: one(v.from),
            hosts,
            env: one(v.env),
            header: one(v.header),
            format: one(v.format),
            user: one(v.user),
            ttl: one(v.ttl),
        };
        into.insert(m.name.0.clone(), m);
    }
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:VAR`: the caller's variable, read when the session starts.
    Env(String),
    /// `file:PATH`: the file's contents (trimmed), read again whenever it changes.
    File(PathBuf),
    /// `command:CMD`: the standard output (trimmed) of `sh -c CMD`, run by the supervisor
    /// outside the sandbox, again after `ttl`.
    Command(String),
}

/// How the value is written into its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFormat {
    /// A template with one `{}` (`Bearer {}`, `token {}`).
    Template(String),
    /// `basic`: `Basic base64(user:value)`.
    Basic {
        /// The user name.
        user: String,
    },
}

/// One compiled `[secrets.NAME]`.
#[derive(Debug, Clone)]
pub struct SecretRule {
    /// `NAME`.
    pub name: String,
    /// `secrets.NAME`: the rule id of decisions and revocations (`rule:secrets.NAME`).
    pub id: Arc<str>,
    /// `from` as written (what `policy show` prints; never a value).
    pub from: String,
    /// `from`, parsed.
    pub source: SecretSource,
    /// How long a `command:` value is kept.
    pub ttl: Duration,
    /// The hosts it is ever sent to (any port `[network] allow` grants, unless the entry
    /// names one).
    pub hosts: Vec<HostRule>,
    /// The child's variable that holds the placeholder.
    pub env: String,
    /// The header the value goes into.
    pub header: String,
    /// How it is written there.
    pub format: SecretFormat,
    /// Where the table was written.
    pub origin: Origin,
}

impl SecretRule {
    /// Whether the secret may be sent to `host:port`.
    pub fn covers(&self, host: &Host, port: u16) -> bool {
        self.hosts.iter().any(|r| host_covers(r, host, port))
    }

    /// `format` as `policy show` writes it.
    pub fn format_shown(&self) -> String {
        match &self.format {
            SecretFormat::Template(t) => t.clone(),
            SecretFormat::Basic { .. } => "basic".into(),
        }
    }
}

/// Whether the host pattern `r` names `host` (and `port`, when it names a port).
pub(crate) fn host_covers(r: &HostRule, host: &Host, port: u16) -> bool {
    if r.port.is_some_and(|p| p != port) {
        return false;
    }
    match (&r.host, host, r.wildcard) {
        (Host::Name(suffix), Host::Name(n), true) => {
            n.len() > suffix.len() + 1 && n.ends_with(suffix.as_str()) && n[..n.len() - suffix.len()].ends_with('.')
        }
        (a, b, false) => a == b,
        _ => false,
    }
}

/// The compiled `[secrets]` tables, in name order.
#[derive(Debug, Clone, Default)]
pub struct SecretRules {
    /// Every secret.
    pub list: Vec<SecretRule>,
}

impl SecretRules {
    /// The secret named `name`.
    pub fn get(&self, name: &str) -> Option<&SecretRule> {
        self.list.iter().find(|s| s.name == name)
    }

    /// The secrets that may be sent to `host:port`.
    pub fn for_host<'a>(&'a self, host: &'a Host, port: u16) -> impl Iterator<Item = &'a SecretRule> + 'a {
        self.list.iter().filter(move |s| s.covers(host, port))
    }

    /// Whether there is no secret.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Whether `name` is a valid secret name: letters, digits, `_` and `-` (it becomes part of
/// the placeholder and of rule ids).
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_env_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Compiles the merged `[secrets]` tables; `network` decides whether each host is allowed,
/// `env` whether a placeholder variable collides with `[env] set`.
pub(crate) fn compile(
    merged: &BTreeMap<String, MergedSecret>,
    vars: &Vars,
    network: &NetworkRules,
    env: &EnvRules,
    fs: &crate::paths::FsRules,
    problems: &mut Problems,
) -> SecretRules {
    let mut out = SecretRules::default();
    let mut env_names: BTreeMap<String, String> = BTreeMap::new();
    for m in merged.values() {
        if let Some(s) = compile_one(m, vars, network, env, problems) {
            // A child that can write the file (or rename its directory and put a symlink
            // in its place) chooses what the supervisor reads and sends: refuse.
            if let SecretSource::File(p) = &s.source {
                let w = fs.decide_write(p);
                if w.is_allow() {
                    let o = m.from.as_ref().map_or(&m.name.1, |f| &f.1);
                    problems.push(
                        o,
                        format!(
                            "the file of secret `{}` is under a writable path ({}): the child could replace it",
                            s.name, w.rule
                        ),
                        Some("keep a secret's file outside [filesystem] write, e.g. in ~/.config/paddock/".to_string()),
                    );
                    continue;
                }
            }
            if let Some(other) = env_names.insert(s.env.clone(), s.name.clone()) {
                let o = m.env.as_ref().map_or(&m.name.1, |e| &e.1);
                problems.push(
                    o,
                    format!("secrets `{other}` and `{}` both use the variable `{}`", s.name, s.env),
                    Some("give each secret a variable of its own".to_string()),
                );
                continue;
            }
            out.list.push(s);
        }
    }
    out
}

fn compile_one(
    m: &MergedSecret,
    vars: &Vars,
    network: &NetworkRules,
    env: &EnvRules,
    problems: &mut Problems,
) -> Option<SecretRule> {
    let (name, name_at) = (&m.name.0, &m.name.1);
    let before = problems.0.len();
    if !valid_secret_name(name) {
        problems.push(
            name_at,
            format!("bad secret name `{name}`"),
            Some("a secret's name is letters, digits, `_` and `-` (at most 64), e.g. [secrets.github]".to_string()),
        );
    }
    let id: Arc<str> = Arc::from(format!("secrets.{name}"));
    let source = match &m.from {
        None => {
            problems.push(
                name_at,
                format!("[secrets.{name}] has no `from`"),
                Some(r#"say where the value comes from: from = "env:VAR", "file:PATH" or "command:CMD""#.to_string()),
            );
            None
        }
        Some((raw, o)) => source(raw, o, vars, problems),
    };
    let ttl = match (&m.ttl, &source) {
        (None, _) => DEFAULT_SECRET_TTL,
        (Some((raw, o)), Some(SecretSource::Command(_)) | None) => match crate::limits::parse_duration(raw) {
            Ok(d) => d,
            Err(e) => {
                problems.push(
                    o,
                    format!("bad ttl: {e}"),
                    Some("write a duration such as \"5m\" or \"1h\"".to_string()),
                );
                DEFAULT_SECRET_TTL
            }
        },
        (Some((_, o)), Some(_)) => {
            problems.push(
                o,
                "`ttl` applies to `command:` secrets only".to_string(),
                Some(
                    "an `env:` value is read once at the start, a `file:` one whenever the file changes: remove `ttl`"
                        .to_string(),
                ),
            );
            DEFAULT_SECRET_TTL
        }
    };
    if m.hosts.is_empty() {
        problems.push(
            name_at,
            format!("[secrets.{name}] has no `hosts`"),
            Some("name the only hosts the value may be sent to: hosts = [\"api.example.com\"]".to_string()),
        );
    }
    let mut hosts = Vec::new();
    for (i, (raw, o)) in m.hosts.iter().enumerate() {
        let Some(mut r) = compile_host("allow", i, &RawEntry { raw: raw.clone(), origin: o.clone() }, problems) else {
            continue;
        };
        r.id = Arc::from(format!("{id}.hosts[{i}]"));
        require_allowed(&r, network, &format!("[secrets.{name}]"), problems);
        hosts.push(r);
    }
    let env_var = match &m.env {
        None => {
            problems.push(
                name_at,
                format!("[secrets.{name}] has no `env`"),
                Some("name the child's variable that holds its placeholder: env = \"GITHUB_TOKEN\"".to_string()),
            );
            None
        }
        Some((v, o)) => {
            let lower = v.to_ascii_lowercase();
            if !valid_env_name(v) {
                problems.push(
                    o,
                    format!("bad variable name `{v}`"),
                    Some("letters, digits and `_`, not starting with a digit".to_string()),
                );
            } else if v == "PATH" || lower.ends_with("_proxy") || CA_BUNDLE_VARS.contains(&v.as_str()) {
                problems.push(
                    o,
                    format!("`{v}` is a variable paddock sets itself"),
                    Some("use the variable your tool reads its token from, e.g. GITHUB_TOKEN".to_string()),
                );
            } else if env.set.iter().any(|(k, _)| k == v) {
                problems.push(
                    o,
                    format!("`{v}` is also set by [env] set"),
                    Some("the child's variable holds the secret's placeholder: remove it from [env] set".to_string()),
                );
            }
            Some(v.clone())
        }
    };
    let header = match &m.header {
        None => "Authorization".to_string(),
        Some((h, o)) => {
            if !valid_header_name(h) {
                problems.push(
                    o,
                    format!("bad header name `{h}`"),
                    Some("an HTTP header name such as \"Authorization\" or \"X-Api-Key\"".to_string()),
                );
            }
            h.clone()
        }
    };
    let format = format(m, name, problems);
    if problems.0.len() > before {
        return None;
    }
    Some(SecretRule {
        name: name.clone(),
        id,
        from: m.from.as_ref().map(|f| f.0.clone()).unwrap_or_default(),
        source: source?,
        ttl,
        hosts,
        env: env_var?,
        header,
        format: format?,
        origin: name_at.clone(),
    })
}

fn format(m: &MergedSecret, name: &str, problems: &mut Problems) -> Option<SecretFormat> {
    let f = match &m.format {
        None => SecretFormat::Template("Bearer {}".into()),
        Some((raw, _)) if raw.eq_ignore_ascii_case("basic") => match &m.user {
            Some((u, o)) if u.contains(':') || u.chars().any(char::is_control) => {
                problems.push(
                    o,
                    format!("bad user `{u}`"),
                    Some("a user name has no `:` and no control characters".to_string()),
                );
                return None;
            }
            Some((u, _)) => SecretFormat::Basic { user: u.clone() },
            None => {
                problems.push(
                    &m.format.as_ref()?.1,
                    format!("[secrets.{name}] format \"basic\" needs a `user`"),
                    Some(
                        "add user = \"x-access-token\" (or whatever user the host expects with the token)".to_string(),
                    ),
                );
                return None;
            }
        },
        Some((raw, o)) => {
            if raw.matches("{}").count() != 1 || raw.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
                problems.push(
                    o,
                    format!("bad format `{raw}`"),
                    Some("write \"Bearer {}\", \"token {}\" (printable ASCII with one `{}` for the value) or \"basic\" with a `user`".to_string()),
                );
                return None;
            }
            SecretFormat::Template(raw.clone())
        }
    };
    if let (Some((_, o)), SecretFormat::Template(_)) = (&m.user, &f) {
        problems.push(
            o,
            "`user` goes with format = \"basic\" only".to_string(),
            Some("remove `user`, or set format = \"basic\"".to_string()),
        );
        return None;
    }
    Some(f)
}

fn source(raw: &str, o: &Origin, vars: &Vars, problems: &mut Problems) -> Option<SecretSource> {
    let hint = || Some(r#"write "env:VAR" (the caller's variable), "file:PATH" or "command:CMD""#.to_string());
    let Some((kind, rest)) = raw.split_once(':') else {
        problems.push(o, format!("bad `from` `{raw}`: no `env:`, `file:` or `command:` prefix"), hint());
        return None;
    };
    let rest = rest.trim();
    match kind.trim() {
        "env" if valid_env_name(rest) => Some(SecretSource::Env(rest.to_string())),
        "env" => {
            problems.push(o, format!("bad `from` `{raw}`: `{rest}` is not a variable name"), hint());
            None
        }
        "file" => match vars.expand_path(rest) {
            Ok(p) => Some(SecretSource::File(crate::paths::normalize(&p, std::path::Path::new("/")))),
            Err((msg, h)) => {
                problems.push(o, format!("bad `from` `{raw}`: {msg}"), Some(h));
                None
            }
        },
        "command" if !rest.is_empty() => Some(SecretSource::Command(rest.to_string())),
        "command" => {
            problems.push(o, "bad `from`: `command:` names no command".to_string(), hint());
            None
        }
        other => {
            problems.push(o, format!("bad `from` `{raw}`: unknown source `{other}:`"), hint());
            None
        }
    }
}

/// A secret's host or an http rule's host must also be allowed by `[network] allow`: the
/// proxy never reaches a host the policy does not allow, and a rule that could never apply
/// is a mistake worth a located error.
pub(crate) fn require_allowed(r: &HostRule, network: &NetworkRules, what: &str, problems: &mut Problems) {
    // A wildcard stands for any of its subdomains: one of them decides.
    let host = match &r.host {
        Host::Name(n) if r.wildcard => Host::Name(format!("paddock-check.{n}")),
        h => h.clone(),
    };
    let ports: Vec<u16> = match r.port {
        Some(p) => vec![p],
        None => {
            let mut v = crate::network::DEFAULT_ALLOW_PORTS.to_vec();
            v.extend(network.allow.iter().filter_map(|a| a.port));
            v
        }
    };
    let decisions: Vec<_> = ports.iter().map(|&p| network.decide_host(&host, p)).collect();
    if decisions.iter().any(|d| d.is_allow()) {
        return;
    }
    let why = decisions.iter().find(|d| &*d.rule != "default").map(|d| d.reason.clone());
    let msg = match why {
        Some(reason) => format!("`{}` in {what} is not allowed by [network]: {reason}", r.raw),
        None => format!("`{}` in {what} is not allowed by [network] allow", r.raw),
    };
    problems.push(&r.origin, msg, Some(format!("add \"{}\" to [network] allow too", r.raw)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    fn vars() -> Vars {
        Vars {
            workspace: "/nonexistent-ws".into(),
            home: Some("/home/dev".into()),
            tmpdir: "/tmp".into(),
            caller_path: None,
        }
    }

    fn load(text: &str) -> Result<Policy, String> {
        let text =
            format!("version = 1\n[network]\nallow = [\"api.github.com\", \"*.example.com\", \"other.test\"]\n{text}");
        Policy::from_toml_str("p.toml", &text, &vars()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_secret_compiles_with_defaults() {
        let p = load("[secrets.github]\nfrom = \"env:GH\"\nhosts = [\"api.github.com\"]\nenv = \"GITHUB_TOKEN\"\n")
            .unwrap();
        let s = p.secrets.get("github").unwrap();
        assert_eq!((&*s.id, s.env.as_str(), s.header.as_str()), ("secrets.github", "GITHUB_TOKEN", "Authorization"));
        assert_eq!(s.source, SecretSource::Env("GH".into()));
        assert_eq!(s.format, SecretFormat::Template("Bearer {}".into()));
        assert!(s.covers(&Host::Name("api.github.com".into()), 443));
        assert!(s.covers(&Host::Name("api.github.com".into()), 8443), "any port [network] grants");
        assert!(!s.covers(&Host::Name("github.com".into()), 443));
        assert!(p.effective_toml().contains("from = \"env:GH\""), "{}", p.effective_toml());
    }

    #[test]
    fn sources_formats_and_wildcards() {
        let p = load(concat!(
            "[secrets.a]\nfrom = \"file:~/tok\"\nhosts = [\"*.example.com\"]\nenv = \"A\"\nformat = \"token {}\"\n",
            "[secrets.b]\nfrom = \"command:pass show b\"\nttl = \"1m\"\nhosts = [\"other.test\"]\nenv = \"B\"\nformat = \"basic\"\nuser = \"x\"\nheader = \"X-Auth\"\n",
        ))
        .unwrap();
        let a = p.secrets.get("a").unwrap();
        assert_eq!(a.source, SecretSource::File("/home/dev/tok".into()));
        assert!(a.covers(&Host::Name("x.example.com".into()), 443));
        assert!(!a.covers(&Host::Name("example.com".into()), 443), "never the apex");
        assert!(!a.covers(&Host::Name("xexample.com".into()), 443));
        let b = p.secrets.get("b").unwrap();
        assert_eq!((b.ttl, &b.format), (Duration::from_secs(60), &SecretFormat::Basic { user: "x".into() }));
        assert_eq!(b.source, SecretSource::Command("pass show b".into()));
        assert!(p.hidden_paths().contains(&PathBuf::from("/home/dev/tok")), "a file: secret is never in a view");
        assert!(!p.decide_read(std::path::Path::new("/home/dev/tok")).is_allow());
    }

    #[test]
    fn mistakes_are_located() {
        for (text, at, needle) in [
            (
                "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"evil.test\"]\nenv = \"T\"\n",
                "p.toml:6:10",
                "not allowed by [network]",
            ),
            (
                "[secrets.g]\nfrom = \"vault:x\"\nhosts = [\"other.test\"]\nenv = \"T\"\n",
                "p.toml:5:8",
                "unknown source `vault:`",
            ),
            (
                "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nformt = \"x\"\n",
                "p.toml:8:1",
                "unknown key `formt` in [secrets.g]",
            ),
            ("[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\n", "p.toml:4:10", "has no `env`"),
            (
                "[secrets.\"a b\"]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\n",
                "p.toml:4:10",
                "bad secret name",
            ),
            (
                "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nformat = \"basic\"\n",
                "p.toml:8:10",
                "needs a `user`",
            ),
            (
                "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nformat = \"Bearer\"\n",
                "p.toml:8:10",
                "bad format",
            ),
            (
                "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nttl = \"5m\"\n",
                "p.toml:8:7",
                "`command:` secrets only",
            ),
            (
                "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"HTTPS_PROXY\"\n",
                "p.toml:7:7",
                "paddock sets itself",
            ),
            (
                "[secrets.g]\nfrom = \"file:rel\"\nhosts = [\"other.test\"]\nenv = \"T\"\n",
                "p.toml:5:8",
                "relative path",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.starts_with(&format!("{at}: error:")), "{text}: {e}");
            assert!(e.contains(needle), "{text}: {e}");
            assert!(e.contains("hint:"), "{text}: {e}");
        }
        let e = load("[secrets.a]\nfrom = \"env:X\"\nhosts = [\"other.test\"]\nenv = \"T\"\n[secrets.b]\nfrom = \"env:Y\"\nhosts = [\"other.test\"]\nenv = \"T\"\n").unwrap_err();
        assert!(e.contains("both use the variable `T`"), "{e}");
    }
}
