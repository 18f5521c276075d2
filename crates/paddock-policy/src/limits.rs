//! `[limits]` and `[env]`: human durations and sizes, and the child's environment.

use std::path::Path;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Origin, Problems};
use crate::vars::Vars;
use crate::written::IntOrString;

/// The compiled `[limits]` section; `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Wall clock for the whole process tree.
    pub timeout: Option<Duration>,
    /// Bytes per output stream.
    pub max_output: Option<u64>,
    /// Processes (and threads) of the sandbox.
    pub max_processes: Option<u64>,
    /// Memory, bytes.
    pub max_memory: Option<u64>,
    /// Open descriptors per process.
    pub max_open_files: Option<u64>,
    /// Bytes of one file the sandbox writes (a write past it fails with `EFBIG`).
    pub max_file_size: Option<u64>,
}

/// Parses a size: an integer of bytes, or a number with `B`, `KB`/`MB`/`GB`/`TB` (powers
/// of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(format!("unknown size unit `{unit}` in `{s}`")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

/// The longest duration paddock takes (ten years): a clock plus any longer one could
/// overflow, and no timeout, grace or wait needs more.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses a duration such as `"120s"`, `"5m"` or `"1h 30m"` (humantime syntax), longer
/// than zero and at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err("a duration must be longer than zero".into()),
        Ok(d) => check_duration(d).map_err(|m| format!("bad duration `{s}`: {m}")),
        Err(e) => Err(format!("bad duration `{s}`: {e}")),
    }
}

/// `d` if it is at most [`MAX_DURATION`]; else why not.
pub fn check_duration(d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        return Err("longer than the longest duration paddock takes (10 years)".into());
    }
    Ok(d)
}

/// Formats a size the way `policy show` writes it.
pub fn format_size(n: u64) -> String {
    for (unit, m) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    format!("{n}B")
}

const SIZE_HINT: &str = "write a size such as \"8MiB\", \"2GiB\", \"500KB\" or a number of bytes";
const DURATION_HINT: &str = "write a duration such as \"120s\", \"5m\" or \"1h 30m\"";

pub(crate) fn size(v: &IntOrString, origin: &Origin, key: &str, problems: &mut Problems) -> Option<u64> {
    let r = match v {
        IntOrString::Int(n) if *n > 0 => Ok(*n as u64),
        IntOrString::Int(n) => Err(format!("{key} must be positive, not {n}")),
        IntOrString::Str(s) => {
            parse_size(s).and_then(|n| if n == 0 { Err(format!("{key} must be positive")) } else { Ok(n) })
        }
    };
    r.map_err(|m| problems.push(origin, format!("bad size for `{key}`: {m}"), Some(SIZE_HINT.into()))).ok()
}

/// The smallest `max_memory`: below it no ordinary program starts (measured: `sh -c 'echo
/// hi'` needs 3 MiB of address space, `git --version` 5 MiB, and the sandbox's own helper
/// is killed under 512 KiB), and the failure would not name the limit.
pub(crate) const MIN_MEMORY: u64 = 8 << 20;

/// `max_memory`: a size, at least [`MIN_MEMORY`].
pub(crate) fn memory(v: &IntOrString, origin: &Origin, problems: &mut Problems) -> Option<u64> {
    let n = size(v, origin, "max_memory", problems)?;
    if n < MIN_MEMORY {
        problems.push(
            origin,
            format!("max_memory = {} is too small to start a process", format_size(n)),
            Some(format!(
                "max_memory is at least {} (it bounds each process's address space, libraries included)",
                format_size(MIN_MEMORY)
            )),
        );
        return None;
    }
    Some(n)
}

pub(crate) fn duration(v: &IntOrString, origin: &Origin, key: &str, problems: &mut Problems) -> Option<Duration> {
    match v {
        IntOrString::Int(n) => {
            problems.push(
                origin,
                format!("bad duration for `{key}`: `{n}` has no unit"),
                Some(format!("{DURATION_HINT}; for seconds write \"{n}s\"")),
            );
            None
        }
        IntOrString::Str(s) => match parse_duration(s) {
            Ok(d) => Some(d),
            Err(m) => {
                problems.push(origin, format!("{m} (for `{key}`)"), Some(DURATION_HINT.into()));
                None
            }
        },
    }
}

pub(crate) fn count(v: i64, origin: &Origin, key: &str, problems: &mut Problems) -> Option<u64> {
    if v > 0 {
        Some(v as u64)
    } else {
        problems.push(origin, format!("`{key}` must be a positive integer, not {v}"), None);
        None
    }
}

/// The compiled `[env]` section.
#[derive(Debug, Clone, Default)]
pub struct EnvRules {
    /// `pass` patterns as written.
    pub pass: Vec<String>,
    /// `set`, in key order, values expanded.
    pub set: Vec<(String, String)>,
    /// Where each `pass` entry was written (parallel to `pass`).
    pass_origins: Vec<Origin>,
    /// `pass` entries without glob syntax: the only way a credential-looking name passes.
    pass_exact: Vec<String>,
    pass_set: GlobSet,
}

/// Whether a variable name looks like a credential, in any case: it contains `TOKEN`,
/// `SECRET`, `PASSWORD`, `PASSWD`, `CREDENTIAL`, `AUTH`, `APIKEY` or `ACCESSKEY`, or ends
/// in `KEY`, or one of its `_`-separated words is `KEY`, `KEYS`, `PASS`, `PASSPHRASE`,
/// `PWD`, `PAT`, `DSN`, `COOKIE`, `PRIVATE` or `OTP` (`AWS_ACCESS_KEY_ID`, `DB_PASS`,
/// `MYSQL_PWD`, `GH_PAT`, `SENTRY_DSN`). `[env] pass` globs never match such a name; only
/// the exact name in `pass` passes it. `AUTH` as the start of `AUTHOR` is a person's name,
/// not a credential (`GIT_AUTHOR_EMAIL`); `AUTHORIZATION` and `AUTHORISATION` still
/// count. `PWD` and `OLDPWD` themselves are directories.
pub fn is_credential_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if upper == "PWD" || upper == "OLDPWD" {
        return false;
    }
    has_credential_word(&upper) || upper.ends_with("KEY") || upper.split('_').any(|w| CREDENTIAL_WORDS.contains(&w))
}

/// `_`-separated words that name a credential on their own (see [`is_credential_name`]).
const CREDENTIAL_WORDS: &[&str] =
    &["KEY", "KEYS", "PASS", "PASSPHRASE", "PWD", "PAT", "DSN", "COOKIE", "COOKIES", "PRIVATE", "OTP"];

/// Whether `upper` (uppercase) contains a credential word (see [`is_credential_name`]).
fn has_credential_word(upper: &str) -> bool {
    ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY", "ACCESSKEY"].iter().any(|w| upper.contains(w))
        || upper.match_indices("AUTH").any(|(i, _)| {
            let rest = &upper[i + 4..];
            !rest.starts_with("OR") || rest.starts_with("ORIZ") || rest.starts_with("ORIS")
        })
}

/// Whether a value carries a password of its own: a URL with one in its userinfo
/// (`postgres://app:hunter2@db/x`, `https://user:tok@host`). `[env] pass` globs never pass
/// such a value, whatever the variable's name (`DATABASE_URL`, `REDIS_URL`, ...).
pub fn is_credential_value(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else { return false };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    scheme_ok
        && authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.split_once(':').is_some_and(|(_, password)| !password.is_empty()))
}

/// Whether every name the `pass` glob `p` matches is credential-looking: a literal run of
/// it (outside `[...]`) contains a credential word, or it ends in a literal `KEY`.
fn glob_matches_only_credentials(p: &str) -> bool {
    let mut runs: Vec<String> = vec![String::new()];
    let mut in_class = false;
    for c in p.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            _ if in_class => {}
            '*' | '?' => runs.push(String::new()),
            c => runs.last_mut().expect("never empty").push(c),
        }
        if c == '[' || c == ']' {
            runs.push(String::new());
        }
    }
    let word = |r: &String| has_credential_word(&r.to_ascii_uppercase());
    runs.iter().any(word) || (!p.ends_with(['*', '?', ']']) && p.to_ascii_uppercase().ends_with("KEY"))
}

/// The `${...}` variables an `[env] set` value may use (the path variables).
const SET_VARS_HINT: &str = "`set` values may use ${WORKSPACE}, ${HOME} and ${TMPDIR}; write anything else out in full";

/// The default sandbox PATH, when `[env]` neither sets nor passes one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn valid_name(s: &str, glob: bool) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || (glob && "*?[]".contains(c)))
}

impl EnvRules {
    pub(crate) fn compile(
        pass: Vec<(String, Origin)>,
        set: Vec<(String, Origin, String, Origin)>,
        vars: &Vars,
        problems: &mut Problems,
    ) -> EnvRules {
        let mut b = GlobSetBuilder::new();
        let mut rules = EnvRules::default();
        for (p, origin) in pass {
            if !valid_name(&p, true) {
                problems.push(
                    &origin,
                    format!("bad variable pattern `{p}` in [env] pass"),
                    Some("names are letters, digits and `_`; `*` matches any run, e.g. \"CARGO_*\"".into()),
                );
                continue;
            }
            // An exact name is matched as one ([`EnvRules::passes`] asks `pass_exact`
            // first): only the globs make the set, which is then often empty or small.
            let exact = !p.contains(['*', '?', '[', ']']);
            if exact {
                rules.pass_exact.push(p.clone());
            }
            match Glob::new(&p) {
                Ok(g) => {
                    if !exact {
                        b.add(g);
                    }
                    rules.pass.push(p);
                    rules.pass_origins.push(origin);
                }
                Err(e) => problems.push(&origin, format!("bad glob `{p}` in [env] pass: {}", e.kind()), None),
            }
        }
        for (k, origin, v, v_origin) in set {
            if !valid_name(&k, false) {
                problems.push(
                    &origin,
                    format!("bad variable name `{k}` in [env] set"),
                    Some("names are letters, digits and `_`, not starting with a digit".into()),
                );
                continue;
            }
            if v.contains('\0') {
                problems.push(&v_origin, format!("the value of `{k}` contains a NUL byte"), None);
                continue;
            }
            match expand_value(&v, vars) {
                Ok(v) => rules.set.push((k, v)),
                Err(msg) => problems.push(
                    &v_origin,
                    format!("{msg} in the value of `{k}` in [env] set"),
                    Some(SET_VARS_HINT.into()),
                ),
            }
        }
        rules.pass_set = b.build().unwrap_or_else(|_| GlobSet::empty());
        rules
    }

    /// Warnings for `policy lint`: a `pass` entry that hands the child a credential by
    /// name, and a glob that could only ever match credential-looking names (so it
    /// passes nothing).
    pub fn warnings(&self) -> Vec<(Origin, String)> {
        let mut out = Vec::new();
        for (p, origin) in self.pass.iter().zip(&self.pass_origins) {
            if self.pass_exact.contains(p) {
                if is_credential_name(p) {
                    out.push((
                        origin.clone(),
                        format!("`{p}` looks like a credential: passing it by name lets every sandboxed program read it, and send it wherever the network allows"),
                    ));
                }
            } else if glob_matches_only_credentials(p) {
                out.push((
                    origin.clone(),
                    format!("`{p}` matches only credential-looking names, which `pass` globs never pass: name each variable exactly if the child must see it"),
                ));
            }
        }
        out
    }

    /// Whether the caller's variable `name` is passed through.
    /// A credential-looking name ([`is_credential_name`]) passes only when `pass` names it
    /// exactly, never through a glob.
    pub fn passes(&self, name: &str) -> bool {
        if self.pass_exact.iter().any(|p| p == name) {
            return true;
        }
        // The glob first: most names match none, and the credential check costs more.
        self.pass_set.is_match(Path::new(name)) && !is_credential_name(name)
    }

    /// Whether the caller's `name=value` is passed through: [`passes`](Self::passes), and a
    /// value with a password in it ([`is_credential_value`]) only under its exact name.
    pub fn passes_value(&self, name: &str, value: &str) -> bool {
        self.pass_exact.iter().any(|p| p == name) || (self.passes(name) && !is_credential_value(value))
    }

    /// The child's whole environment: the passed variables of `caller`, then `set`.
    pub fn child_env<I, K, V>(&self, caller: I) -> Vec<(String, String)>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut out: Vec<(String, String)> = caller
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, v)| self.passes_value(k, v) && !self.set.iter().any(|(s, _)| s == k))
            .collect();
        out.extend(self.set.iter().cloned());
        out.sort();
        out
    }

    /// The sandbox PATH: `set`, else the caller's if passed, else [`DEFAULT_PATH`].
    pub fn sandbox_path(&self, caller_path: Option<&str>) -> String {
        if let Some((_, v)) = self.set.iter().find(|(k, _)| k == "PATH") {
            return v.clone();
        }
        match caller_path {
            Some(p) if self.passes("PATH") => p.to_string(),
            _ => DEFAULT_PATH.to_string(),
        }
    }
}

/// Expands the path variables of an `[env] set` value: `${WORKSPACE}`, `${HOME}`,
/// `${TMPDIR}`. Any other `${...}`, or an unterminated one, is an error; a `$` not followed
/// by `{` stays as written.
fn expand_value(v: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let body = &rest[i + 2..];
        let Some(end) = body.find('}') else { return Err("an unterminated `${`".into()) };
        let value = match &body[..end] {
            "WORKSPACE" => vars.workspace.to_string_lossy().into_owned(),
            "TMPDIR" => vars.tmpdir.to_string_lossy().into_owned(),
            "HOME" => match &vars.home {
                Some(h) => h.to_string_lossy().into_owned(),
                None => return Err("`${HOME}` used but HOME is not set to an absolute path".into()),
            },
            other => return Err(format!("unknown variable `${{{other}}}`")),
        };
        out.push_str(&value);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_that_match_only_credentials() {
        for p in ["*_TOKEN", "*_TOKEN_*", "*AUTH*", "*_KEY", "AWS_*_KEY", "*secret*"] {
            assert!(glob_matches_only_credentials(p), "{p}");
        }
        for p in ["CARGO_*", "*KEY*", "*_KE?", "TOK*EN", "[T]OKEN", "*_[K]EY", "K*"] {
            assert!(!glob_matches_only_credentials(p), "{p}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("500KB").unwrap(), 500_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("8 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert_eq!(format_size(8 << 20), "8MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
