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
//! nothing here ever sees it. How a `[secrets.NAME]` table is read and compiled into a
//! [`SecretRule`]: `secrets/table.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Origin;
use crate::network::{Host, HostRule};

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

    /// The secrets whose `env:` source variable is unset or empty in this process, each
    /// with the variable: a session started here has no value for them.
    pub fn unset_here(&self) -> impl Iterator<Item = (&SecretRule, &str)> {
        self.list.iter().filter_map(|s| match &s.source {
            SecretSource::Env(var) if std::env::var_os(var).is_none_or(|v| v.is_empty()) => Some((s, var.as_str())),
            _ => None,
        })
    }
}

/// Whether `name` is a valid secret name: letters, digits, `_` and `-` (it becomes part of
/// the placeholder and of rule ids).
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

mod command;
pub(crate) mod table;

#[cfg(test)]
mod tests;
