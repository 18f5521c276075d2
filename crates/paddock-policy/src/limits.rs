//! `[limits]` and `[env]`: human durations and sizes, and the child's environment.

use std::path::Path;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Origin, Problems};
use crate::raw::IntOrString;

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

/// Parses a duration such as `"120s"`, `"5m"` or `"1h 30m"` (humantime syntax), longer
/// than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a duration must be longer than zero".into()),
        Err(e) => Err(format!("bad duration `{s}`: {e}")),
    }
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
    /// `set`, in key order.
    pub set: Vec<(String, String)>,
    pass_set: GlobSet,
}

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
        set: Vec<(String, Origin, String)>,
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
            match Glob::new(&p) {
                Ok(g) => {
                    b.add(g);
                    rules.pass.push(p);
                }
                Err(e) => problems.push(&origin, format!("bad glob `{p}` in [env] pass: {}", e.kind()), None),
            }
        }
        for (k, origin, v) in set {
            if !valid_name(&k, false) {
                problems.push(
                    &origin,
                    format!("bad variable name `{k}` in [env] set"),
                    Some("names are letters, digits and `_`, not starting with a digit".into()),
                );
                continue;
            }
            if v.contains('\0') {
                problems.push(&origin, format!("the value of `{k}` contains a NUL byte"), None);
                continue;
            }
            rules.set.push((k, v));
        }
        rules.pass_set = b.build().unwrap_or_else(|_| GlobSet::empty());
        rules
    }

    /// Whether the caller's variable `name` is passed through.
    pub fn passes(&self, name: &str) -> bool {
        self.pass_set.is_match(Path::new(name))
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
            .filter(|(k, _)| self.passes(k) && !self.set.iter().any(|(s, _)| s == k))
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

#[cfg(test)]
mod tests {
    use super::*;

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
