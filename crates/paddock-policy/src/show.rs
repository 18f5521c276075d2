//! `policy show`: the effective merged policy written back as TOML, and its hash.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::limits::format_size;
use crate::policy::Policy;

#[derive(Serialize)]
struct Effective {
    version: i64,
    sandbox: Sandbox,
    filesystem: Filesystem,
    #[serde(skip_serializing_if = "Option::is_none")]
    commands: Option<Commands>,
    network: Network,
    env: Env,
    limits: BTreeMap<&'static str, toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit: Option<Audit>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, Secret>,
}

#[derive(Serialize)]
struct Audit {
    export: String,
}

/// A secret as `policy show` writes it: `from` as given, never a value.
#[derive(Serialize)]
struct Secret {
    from: String,
    hosts: Vec<String>,
    env: String,
    header: String,
    format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

#[derive(Serialize)]
struct Http {
    host: String,
    allow: Vec<String>,
    deny: Vec<String>,
}

#[derive(Serialize)]
struct Sandbox {
    enforcement: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ask_timeout: Option<String>,
}

#[derive(Serialize)]
struct Filesystem {
    read: Vec<String>,
    write: Vec<String>,
    deny: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    protect: Vec<String>,
}

#[derive(Serialize)]
struct Commands {
    #[serde(skip_serializing_if = "Option::is_none")]
    allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deny: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ask: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
}

#[derive(Serialize)]
struct Network {
    allow: Vec<String>,
    deny: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ask: Vec<String>,
    allow_private: Vec<String>,
    upstream_proxy: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    upstream_ca: Vec<String>,
    hosts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http: Vec<Http>,
}

#[derive(Serialize)]
struct Env {
    pass: Vec<String>,
    set: BTreeMap<String, String>,
}

/// The TOML body (the comment header is [`header`]'s).
fn effective_body(p: &Policy) -> String {
    let fs = &p.filesystem;
    let limits = limits_shown(p);
    let e = Effective {
        version: 1,
        sandbox: Sandbox {
            enforcement: p.enforcement.as_str(),
            ask_timeout: p.ask_timeout.map(|t| humantime::format_duration(t).to_string()),
        },
        filesystem: Filesystem {
            read: fs.read.iter().map(|r| r.path.to_string_lossy().into_owned()).collect(),
            write: fs.write.iter().map(|r| r.path.to_string_lossy().into_owned()).collect(),
            deny: fs.deny.iter().map(|r| r.pattern.clone()).collect(),
            protect: fs.protect.iter().map(|r| r.pattern.clone()).collect(),
        },
        commands: commands_shown(p),
        network: network_shown(p),
        env: Env { pass: p.env.pass.clone(), set: p.env.set.iter().cloned().collect() },
        limits,
        audit: p.audit.export.clone().map(|export| Audit { export }),
        secrets: p.secrets.list.iter().map(|s| (s.name.clone(), secret_shown(s))).collect(),
    };
    toml::to_string(&e).expect("the effective policy is plain strings, integers and tables")
}

/// `[limits]` as written: only the limits the policy sets.
fn limits_shown(p: &Policy) -> BTreeMap<&'static str, toml::Value> {
    let mut limits = BTreeMap::new();
    if let Some(t) = p.limits.timeout {
        limits.insert("timeout", toml::Value::String(humantime::format_duration(t).to_string()));
    }
    if let Some(n) = p.limits.max_output {
        limits.insert("max_output", toml::Value::String(format_size(n)));
    }
    if let Some(n) = p.limits.max_processes {
        limits.insert("max_processes", toml::Value::Integer(n as i64));
    }
    if let Some(n) = p.limits.max_memory {
        limits.insert("max_memory", toml::Value::String(format_size(n)));
    }
    if let Some(n) = p.limits.max_open_files {
        limits.insert("max_open_files", toml::Value::Integer(n as i64));
    }
    if let Some(n) = p.limits.max_file_size {
        limits.insert("max_file_size", toml::Value::String(format_size(n)));
    }
    limits
}

/// `[commands]`: the lists when the policy has them, `scope` when it is not the default.
fn commands_shown(p: &Policy) -> Option<Commands> {
    let scope = (p.command_scope != crate::commands::CommandScope::Call).then(|| p.command_scope.as_str());
    let ask = p.ask.commands_raw.clone();
    match &p.commands {
        Some(c) => Some(Commands {
            allow: Some(c.allow.iter().map(|r| r.raw.clone()).collect()),
            deny: Some(c.deny.iter().map(|r| r.raw.clone()).collect()),
            ask,
            scope,
        }),
        None => scope.map(|s| Commands { allow: None, deny: None, ask, scope: Some(s) }),
    }
}

/// `[network]`, with `upstream_proxy`'s credentials masked.
fn network_shown(p: &Policy) -> Network {
    Network {
        allow: p.network.allow.iter().map(|r| r.raw.clone()).collect(),
        deny: p.network.deny.iter().map(|r| r.raw.clone()).collect(),
        ask: p.ask.network_raw.clone(),
        allow_private: p.network.allow_private.iter().map(|n| n.to_string()).collect(),
        upstream_proxy: p.network.upstream_proxy.shown(),
        upstream_ca: p.upstream_ca.iter().map(|c| c.display().to_string()).collect(),
        hosts: p.network.hosts.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
        http: p
            .http
            .list
            .iter()
            .map(|r| Http {
                host: r.host.raw.clone(),
                allow: r.allow.iter().map(|a| a.raw.clone()).collect(),
                deny: r.deny.iter().map(|a| a.raw.clone()).collect(),
            })
            .collect(),
    }
}

/// The comment header: the files merged, the variables, the sandbox PATH, paddock's own
/// hidden state.
fn header(p: &Policy) -> String {
    let files: Vec<String> = p.files.iter().map(|f| f.display().to_string()).collect();
    let header = format!(
        "# effective policy, merged from: {}\n# variables: WORKSPACE={} HOME={} TMPDIR={}\n# sandbox PATH: {}\n",
        files.join(", "),
        p.vars.workspace.display(),
        p.vars.home.as_ref().map(|h| h.display().to_string()).unwrap_or_else(|| "(unset)".into()),
        p.vars.tmpdir.display(),
        p.sandbox_path(),
    );
    if p.hidden_paths().is_empty() {
        header
    } else {
        let hidden: Vec<String> = p.hidden_paths().iter().map(|h| h.display().to_string()).collect();
        format!("{header}# paddock's own state, masked in every view whatever the rules grant: {}\n", hidden.join(", "))
    }
}

fn secret_shown(s: &crate::secrets::SecretRule) -> Secret {
    Secret {
        from: s.from.clone(),
        hosts: s.hosts.iter().map(|h| h.raw.clone()).collect(),
        env: s.env.clone(),
        header: s.header.clone(),
        format: s.format_shown(),
        user: match &s.format {
            crate::secrets::SecretFormat::Basic { user } => Some(user.clone()),
            crate::secrets::SecretFormat::Template(_) => None,
        },
        ttl: matches!(s.source, crate::secrets::SecretSource::Command(_))
            .then(|| humantime::format_duration(s.ttl).to_string()),
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl Policy {
    /// Renders the effective policy text: after compiling (`rehash`: the body, and the
    /// hash, which covers the body only), and its header again when the hidden paths
    /// change (they are not in the body).
    pub(crate) fn render_effective(&mut self, rehash: bool) {
        if rehash {
            self.body = effective_body(self);
            self.hash = sha256_hex(self.body.as_bytes());
        }
        self.effective = header(self) + &self.body;
    }
}
