//! The policy file as written: serde structures with spans, before any validation.
//! Unknown keys are errors (`deny_unknown_fields`): a typo must never silently widen or
//! narrow a policy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::{did_you_mean, Origin, PolicyError};
use crate::written::{IntOrString, S};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub version: Option<S<i64>>,
    #[serde(default)]
    pub extends: Vec<S<String>>,
    pub sandbox: Option<RawSandbox>,
    pub filesystem: Option<RawFilesystem>,
    pub commands: Option<S<RawCommands>>,
    pub network: Option<RawNetwork>,
    pub env: Option<RawEnv>,
    pub limits: Option<RawLimits>,
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub secrets: BTreeMap<S<String>, S<crate::secrets::table::RawSecret>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    pub enforcement: Option<S<String>>,
    pub ask_timeout: Option<S<IntOrString>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilesystem {
    #[serde(default)]
    pub read: Vec<S<String>>,
    #[serde(default)]
    pub write: Vec<S<String>>,
    #[serde(default)]
    pub deny: Vec<S<String>>,
    #[serde(default)]
    pub protect: Vec<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommands {
    pub allow: Option<Vec<S<String>>>,
    pub deny: Option<Vec<S<String>>>,
    #[serde(default)]
    pub ask: Vec<S<String>>,
    /// `"call"` or `"tree"`; a table with only `scope` sets no command rules.
    pub scope: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetwork {
    #[serde(default)]
    pub allow: Vec<S<String>>,
    #[serde(default)]
    pub deny: Vec<S<String>>,
    #[serde(default)]
    pub ask: Vec<S<String>>,
    #[serde(default)]
    pub allow_private: Vec<S<String>>,
    #[serde(default)]
    pub hosts: BTreeMap<S<String>, S<String>>,
    pub upstream_proxy: Option<S<String>>,
    #[serde(default)]
    pub upstream_ca: Vec<S<String>>,
    #[serde(default)]
    pub http: Vec<S<crate::http_rules::RawHttp>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnv {
    #[serde(default)]
    pub pass: Vec<S<String>>,
    #[serde(default)]
    pub set: BTreeMap<S<String>, S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub export: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub timeout: Option<S<IntOrString>>,
    pub max_output: Option<S<IntOrString>>,
    pub max_processes: Option<S<i64>>,
    pub max_memory: Option<S<IntOrString>>,
    pub max_open_files: Option<S<i64>>,
    pub max_file_size: Option<S<IntOrString>>,
}

/// Every key a section accepts, for "did you mean" hints.
fn keys_of(section: &str) -> &'static [&'static str] {
    match section {
        "" => {
            &["version", "extends", "sandbox", "filesystem", "commands", "network", "env", "limits", "audit", "secrets"]
        }
        "sandbox" => &["enforcement", "ask_timeout"],
        "filesystem" => &["read", "write", "deny", "protect"],
        "commands" => &["allow", "deny", "ask", "scope"],
        "network" => &["allow", "deny", "ask", "allow_private", "hosts", "upstream_proxy", "upstream_ca", "http"],
        "network.http" => crate::http_rules::KEYS,
        s if s.starts_with("secrets.") => crate::secrets::table::KEYS,
        "env" => &["pass", "set"],
        "limits" => &["timeout", "max_output", "max_processes", "max_memory", "max_open_files", "max_file_size"],
        "audit" => &["export"],
        _ => &[],
    }
}

/// Parses one file's text. `file` is the name used in error locations.
pub(crate) fn parse(file: &Arc<PathBuf>, text: &str) -> Result<RawPolicy, PolicyError> {
    toml::from_str::<RawPolicy>(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let origin = Origin::at(file, text, offset);
        let (message, hint) = explain_toml_error(e.message(), text, e.span());
        PolicyError::one(origin, message, hint)
    })
}

/// Turns serde/toml's message into ours, with a hint where we can give one.
fn explain_toml_error(msg: &str, text: &str, span: Option<std::ops::Range<usize>>) -> (String, Option<String>) {
    let msg = msg.trim().trim_end_matches('\n').to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or("");
        let section = span.map(|s| section_of(text, s.start)).unwrap_or_default();
        let keys = keys_of(&section);
        let where_ = if section.is_empty() { "at the top level".to_string() } else { format!("in [{section}]") };
        let hint = match did_you_mean(key, keys) {
            Some(k) => format!("did you mean `{k}`? {where_} the keys are: {}", keys.join(", ")),
            None => format!("{where_} the keys are: {}", keys.join(", ")),
        };
        return (format!("unknown key `{key}` {where_}"), Some(hint));
    }
    if msg == "duplicate key" {
        // toml's message names no key; its span is the second one, as written.
        let key = span.and_then(|s| text.get(s)).map(str::trim).unwrap_or_default();
        if !key.is_empty() {
            return (
                format!("duplicate key `{key}`"),
                Some(format!(
                    "a key may appear once in a table: keep one `{key}` (a list is written once, with every entry)"
                )),
            );
        }
    }
    if msg.starts_with("invalid type") {
        return (msg, Some("see policy v1 in DESIGN.md: lists are `[\"...\"]`, tables are `[section]`".into()));
    }
    if msg.contains("data did not match any variant of untagged enum IntOrString") {
        return (
            "expected an integer or a string".into(),
            Some("write a duration like \"120s\" or a size like \"8MiB\"".into()),
        );
    }
    (msg, None)
}

/// The `[section]` in force at byte `offset` (the last table header before it).
fn section_of(text: &str, offset: usize) -> String {
    let mut section = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos + line.len() > offset {
            break; // the line of the error itself (a `[header]` names its parent's key)
        }
        let t = line.trim();
        if let Some(inner) = t.strip_prefix("[[") {
            // An array of tables (`[[network.http]]`) has keys of its own.
            if let Some(end) = inner.find("]]") {
                section = inner[..end].trim().to_string();
            }
        } else if t.starts_with('[') {
            if let Some(end) = t.find(']') {
                section = t[1..end].trim().to_string();
            }
        }
        pos += line.len();
    }
    // `network.hosts` and the like report their parent's keys (`[secrets.NAME]`: a secret's).
    if section == "network.http" || section.starts_with("secrets.") {
        return section;
    }
    section.split('.').next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(&Arc::new(PathBuf::from("p.toml")), text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_located_with_hint() {
        let e = err("version = 1\n[filesystem]\nreed = [\"/usr\"]\n");
        assert!(e.starts_with("p.toml:3:1: error: unknown key `reed` in [filesystem]"), "{e}");
        assert!(e.contains("did you mean `read`?"), "{e}");
    }

    #[test]
    fn unknown_top_level_key() {
        let e = err("version = 1\nfilesystems = 3\n");
        assert!(e.starts_with("p.toml:2:1: error: unknown key `filesystems` at the top level"), "{e}");
        assert!(e.contains("did you mean `filesystem`?"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err("version = 1\n[filesystem]\nread = \"/usr\"\n");
        assert!(e.starts_with("p.toml:3:8: error: invalid type"), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_named() {
        let e = err("version = 1\nversion = 1\n");
        assert!(e.starts_with("p.toml:2:1: error: duplicate key `version`\n  hint: "), "{e}");
        let e = err("version = 1\n[commands]\nallow = []\nallow = [\"ls\"]\n");
        assert!(e.starts_with("p.toml:4:1: error: duplicate key `allow`"), "{e}");
        let e = err("version = 1\n[network.hosts]\n\"a.test\" = \"127.0.0.1\"\n\"a.test\" = \"127.0.0.2\"\n");
        assert!(e.starts_with("p.toml:4:1: error: duplicate key `\"a.test\"`"), "{e}");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = err("version = 1\n[filesystem\n");
        assert!(e.starts_with("p.toml:2:"), "{e}");
    }
}
