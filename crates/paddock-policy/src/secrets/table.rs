//! A `[secrets.NAME]` table: as written ([`RawSecret`]), merged across the policy's files
//! ([`MergedSecret`]), and compiled into a [`SecretRule`] with every mistake located.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::valid_secret_name;
use super::{SecretFormat, SecretRule, SecretRules, SecretSource, CA_BUNDLE_VARS, DEFAULT_SECRET_TTL};
use crate::error::{Origin, Problems};
use crate::limits::EnvRules;
use crate::network::{compile_host, Host, HostRule, NetworkRules, RawEntry};
use crate::vars::Vars;
use crate::written::{At, S};

/// The keys of a `[secrets.NAME]` table, for "did you mean" hints.
pub(crate) const KEYS: &[&str] = &["from", "hosts", "env", "header", "format", "user", "ttl"];

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
                // Masked in every view; but a mask holds the object there at the start: a
                // new file renamed over it (a rotation, which paddock follows), one made
                // later, or a symlink on its way re-pointed (a kubelet's `..data`) is
                // readable where a read grant covers the directory it happens in (found by
                // attacks). Each such directory (the one of each symlink on the way, and the
                // file's own) must be denied whole; the hint names the topmost.
                let named = m.from.as_ref().and_then(|(raw, _)| {
                    let rest = raw.split_once(':')?.1.trim();
                    vars.expand_path(rest).ok()
                });
                let mut lookups = crate::paths::Lookups::default();
                let resolved = lookups.normalize(named.as_deref().unwrap_or(p), std::path::Path::new("/"));
                let mut dirs: Vec<std::path::PathBuf> = lookups
                    .links()
                    .chain([resolved.as_path(), p.as_path()])
                    .filter_map(|f| f.parent())
                    .map(std::path::Path::to_path_buf)
                    .collect();
                dirs.sort_by_key(|d| d.as_os_str().len());
                let readable = dirs.into_iter().map(|d| (fs.decide_read(&d), d)).find(|(r, _)| r.is_allow());
                if let Some((r, dir)) = readable {
                    let o = m.from.as_ref().map_or(&m.name.1, |f| &f.1);
                    problems.push(
                        o,
                        format!(
                            "the file of secret `{}` is in {}, which the child may read ({}): a new file renamed over it (a rotation) or made later would be readable in a running sandbox",
                            s.name,
                            dir.display(),
                            r.rule
                        ),
                        Some(format!(
                            "keep a secret's file in a directory no read grant covers (e.g. ~/.config/paddock/), or deny that directory whole: deny = [{:?}]",
                            dir.display().to_string()
                        )),
                    );
                    continue;
                }
            }
            // Nor may it write what a `command:` source runs: the supervisor runs it
            // unconfined, with the user's rights.
            if let SecretSource::Command(cmd) = &s.source {
                let o = m.from.as_ref().map_or(&m.name.1, |f| &f.1);
                let path_var = vars.caller_path.as_deref().unwrap_or(crate::DEFAULT_PATH);
                match super::command::writable_use(cmd, path_var, vars.home.as_deref(), fs) {
                    Ok(None) => {}
                    Ok(Some((path, rule))) => {
                        let on_path = path_var.split(':').any(|d| std::path::Path::new(d) == path);
                        let (what, hint) = if on_path {
                            ("finds its program on PATH through", "start paddock with a PATH whose directories no call can write (a virtualenv's or direnv's bin in the workspace is one)")
                        } else {
                            ("runs or reads", "keep what a secret's command runs outside [filesystem] write (e.g. in ~/.config/paddock/ or a system directory)")
                        };
                        problems.push(
                            o,
                            format!(
                                "the command of secret `{}` {what} {}, under a writable path ({rule}): the child could replace what runs, and paddock runs the command outside the sandbox",
                                s.name,
                                path.display()
                            ),
                            Some(hint.to_string()),
                        );
                        continue;
                    }
                    Err(e) => {
                        problems.push(
                            o,
                            format!(
                                "the command of secret `{}` cannot be read as shell words ({e}), to check what it runs",
                                s.name
                            ),
                            Some("quote it as a shell would: command:gh auth token".to_string()),
                        );
                        continue;
                    }
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

/// One secret, compiled; `None` when it has a mistake (each one is on `problems`).
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
    let ttl = ttl(m, source.as_ref(), problems);
    let hosts = hosts(m, &id, network, problems);
    let env_var = env_var(m, env, problems);
    let header = header(m, problems);
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

/// `ttl`: for `command:` secrets only (the default otherwise, or on a mistake).
fn ttl(m: &MergedSecret, source: Option<&SecretSource>, problems: &mut Problems) -> Duration {
    match (&m.ttl, source) {
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
    }
}

/// `hosts`: each a host pattern, each also allowed by `[network]`.
fn hosts(m: &MergedSecret, id: &str, network: &NetworkRules, problems: &mut Problems) -> Vec<HostRule> {
    let (name, name_at) = (&m.name.0, &m.name.1);
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
    hosts
}

/// `env`: the child's variable that holds the placeholder; not one paddock sets itself,
/// nor one `[env] set` sets.
fn env_var(m: &MergedSecret, env: &EnvRules, problems: &mut Problems) -> Option<String> {
    let (name, name_at) = (&m.name.0, &m.name.1);
    match &m.env {
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
    }
}

/// `header`: an HTTP header name (`Authorization` by default).
fn header(m: &MergedSecret, problems: &mut Problems) -> String {
    match &m.header {
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
    }
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
            // A file not there yet is read when it comes; one that is there must be a
            // file (a directory or a device such as /dev/zero holds no value).
            Ok(p) if std::fs::metadata(&p).is_ok_and(|m| !m.is_file()) => {
                problems.push(
                    o,
                    format!("bad `from` `{raw}`: {} is not a regular file", p.display()),
                    Some("a `file:` secret names a regular file that holds the value".into()),
                );
                None
            }
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
