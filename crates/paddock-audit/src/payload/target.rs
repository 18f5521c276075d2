//! What a call is about: its [`Tool`], its [`Target`] (URLs redacted) and the [`Decision`].

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};

/// A policy decision (`decision` on calls, `verdict` on connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The policy allowed it.
    Allow,
    /// The policy (or a revocation) denied it.
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        })
    }
}

/// The kind of tool a call used (`tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// Start a program.
    Command,
    /// Read a file.
    ReadFile,
    /// Write a file.
    WriteFile,
    /// Make an HTTP request.
    HttpRequest,
    /// A connection through the egress proxy (in reviews of refused
    /// connections; no call record has this tool).
    Connect,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Command => "command",
            Tool::ReadFile => "read_file",
            Tool::WriteFile => "write_file",
            Tool::HttpRequest => "http_request",
            Tool::Connect => "connect",
        })
    }
}

/// What a call asked for: `tool` plus `argv`, `path` or `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum Target {
    /// `tool = "command"`: the program and its arguments.
    Command {
        /// Program and arguments, as asked.
        argv: Vec<String>,
    },
    /// `tool = "read_file"`.
    ReadFile {
        /// The path asked for.
        path: String,
    },
    /// `tool = "write_file"` (the content is never logged).
    WriteFile {
        /// The path asked for.
        path: String,
    },
    /// `tool = "http_request"` (headers and body are never logged).
    HttpRequest {
        /// The URL; any `user:password@` is replaced by `REDACTED@` when
        /// written.
        #[serde(serialize_with = "serialize_redacted_url")]
        url: String,
        /// The HTTP method, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
    },
}

impl Target {
    /// A command call.
    pub fn command<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Target::Command { argv: argv.into_iter().map(Into::into).collect() }
    }

    /// A file read (a non-UTF-8 path is stored lossily).
    pub fn read_file(path: impl AsRef<Path>) -> Self {
        Target::ReadFile { path: path.as_ref().to_string_lossy().into_owned() }
    }

    /// A file write (a non-UTF-8 path is stored lossily).
    pub fn write_file(path: impl AsRef<Path>) -> Self {
        Target::WriteFile { path: path.as_ref().to_string_lossy().into_owned() }
    }

    /// An HTTP request. Credentials in the URL are redacted.
    pub fn http_request(url: &str, method: Option<&str>) -> Self {
        Target::HttpRequest { url: redact_url(url), method: method.map(str::to_owned) }
    }

    /// The tool this target belongs to.
    pub fn tool(&self) -> Tool {
        match self {
            Target::Command { .. } => Tool::Command,
            Target::ReadFile { .. } => Tool::ReadFile,
            Target::WriteFile { .. } => Tool::WriteFile,
            Target::HttpRequest { .. } => Tool::HttpRequest,
        }
    }

    /// A one-line description: the argv shell-quoted, the path, or
    /// `METHOD url`.
    pub fn describe(&self) -> String {
        match self {
            Target::Command { argv } => argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "),
            Target::ReadFile { path } | Target::WriteFile { path } => path.clone(),
            Target::HttpRequest { url, method } => match method {
                Some(m) => format!("{m} {}", redact_url(url)),
                None => redact_url(url),
            },
        }
    }
}

/// Replaces the `user[:password]@` part of a URL's authority by `REDACTED@`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_len].rfind('@') {
        Some(at) => format!("{}REDACTED@{}", &url[..auth_start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn serialize_redacted_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-*".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
