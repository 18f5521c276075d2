//! What a revocation covers: [`Selector`], parsed from `command:PATTERN`, `path:PATH`,
//! `network:HOST[:PORT]`, `rule:RULE_ID` or `secret:NAME`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a revocation covers.
///
/// Parsed from `command:PATTERN`, `path:PATH`, `network:HOST[:PORT]` or
/// `rule:RULE_ID`; [`Display`](fmt::Display) gives the same form back.
/// Network hosts are lower-cased and lose a trailing dot (hosts compare
/// case-insensitively); the other kinds are stored as given, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `command:PATTERN`: a command pattern as written in a policy.
    Command(String),
    /// `path:PATH`: a filesystem path.
    Path(String),
    /// `network:HOST[:PORT]`.
    Network {
        /// Host name, `*.suffix` or IP literal (IPv6 without brackets).
        host: String,
        /// The port, if the selector names one.
        port: Option<u16>,
    },
    /// `rule:RULE_ID`: a policy rule id such as `commands.allow[2]`.
    Rule(String),
    /// `secret:NAME`: a `[secrets.NAME]` of the policy, never injected again.
    Secret(String),
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid selector `{input}`: {problem}; expected command:PATTERN, path:PATH, network:HOST[:PORT], rule:RULE_ID or secret:NAME"
)]
pub struct SelectorError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, SelectorError> {
        let err = |problem: String| SelectorError { input: input.to_owned(), problem };
        let Some((kind, value)) = input.split_once(':') else {
            return Err(err("it has no `KIND:` prefix".into()));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(err(format!("nothing follows `{kind}:`")));
        }
        match kind.trim() {
            "command" => Ok(Selector::Command(value.to_owned())),
            "path" => Ok(Selector::Path(value.to_owned())),
            "rule" => {
                if value.chars().any(char::is_whitespace) {
                    return Err(err("a rule id has no spaces".into()));
                }
                Ok(Selector::Rule(value.to_owned()))
            }
            "network" => parse_network(value).map_err(err),
            "secret" => {
                let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
                if let Some(bad) = value.chars().find(|&c| !ok(c)) {
                    return Err(err(format!("`{bad}` cannot appear in a secret's name (letters, digits, `_`, `-`)")));
                }
                Ok(Selector::Secret(value.to_owned()))
            }
            other => Err(err(format!("unknown kind `{other}`"))),
        }
    }
}

fn parse_network(value: &str) -> Result<Selector, String> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        // [IPv6]:port or [IPv6]
        let (h, after) = rest.split_once(']').ok_or("an IPv6 address opened with `[` is not closed with `]`")?;
        if h.matches(':').count() == 1 {
            // No address has one colon; `[a:b]` would show as `a:b` and read back as a port.
            return Err(format!("`[{h}]` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(format!("unexpected `{p}` after `]`"))?),
        };
        (h.to_owned(), port)
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 literal without a port.
        (value.to_owned(), None)
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (value.to_owned(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    let mut host = host.trim().to_ascii_lowercase();
    if host.ends_with('.') && host.len() > 1 {
        host.pop();
    }
    if host.ends_with('.') && host.len() > 1 {
        // `a..` would show as `a.` and read back as `a`: refuse it, as the policy does.
        return Err(format!("`{host}.` ends in an empty label"));
    }
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | ':');
    if let Some(bad) = host.chars().find(|&c| !ok(c)) {
        return Err(format!("`{bad}` cannot appear in a host name"));
    }
    Ok(Selector::Network { host, port })
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Command(p) => write!(f, "command:{p}"),
            Selector::Path(p) => write!(f, "path:{p}"),
            Selector::Rule(r) => write!(f, "rule:{r}"),
            Selector::Secret(n) => write!(f, "secret:{n}"),
            Selector::Network { host, port: None } => write!(f, "network:{host}"),
            Selector::Network { host, port: Some(p) } if host.contains(':') => write!(f, "network:[{host}]:{p}"),
            Selector::Network { host, port: Some(p) } => write!(f, "network:{host}:{p}"),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
