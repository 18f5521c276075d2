//! paddock's policy engine: parse, validate, compile and decide.
//!
//! A policy is a TOML file of allowlists (policy v1, see `DESIGN.md`). Loading compiles it
//! once: globs into sets, paths normalised, host patterns indexed, command patterns
//! resolved to canonical programs. Deciding is then pure and fast, and every [`Decision`]
//! names the rule that made it (`commands.allow[2]`, `network.deny[0]`, `default`).
//!
//! This crate knows no processes, sockets or clocks; it reads the filesystem only to load
//! files, normalise paths and resolve programs.
//!
//! ```
//! use paddock_policy::{Policy, Vars, Verdict};
//!
//! let vars = Vars { workspace: "/work/project".into(), home: Some("/home/dev".into()),
//!                   tmpdir: "/tmp".into(), caller_path: None };
//! let policy = Policy::from_toml_str("example.toml", r#"
//!     version = 1
//!     [filesystem]
//!     read = ["/usr"]
//!     write = ["${WORKSPACE}"]
//!     deny = ["${WORKSPACE}/**/*.pem"]
//!     [network]
//!     allow = ["*.crates.io"]
//! "#, &vars).unwrap();
//!
//! let d = policy.decide_write("/work/project/src/main.rs".as_ref());
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Allow, "filesystem.write[0]"));
//! let d = policy.decide_read("/work/project/keys/server.pem".as_ref());
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Deny, "filesystem.deny[0]"));
//! let d = policy.decide_connect("static.crates.io", 443);
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Allow, "network.allow[0]"));
//! let d = policy.decide_connect("crates.io", 443);   // `*.` never covers the apex
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Deny, "default"));
//! ```
#![deny(missing_docs)]

mod commands;
mod error;
mod limits;
mod load;
mod network;
mod paths;
mod raw;
mod revoke;
mod show;
mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use commands::{resolve_program, CommandRule, CommandRules};
pub use error::{Origin, PolicyError, Problem};
pub use limits::{format_size, is_credential_name, parse_duration, parse_size, EnvRules, Limits, DEFAULT_PATH};
pub use network::{
    normalize_host, parse_proxy_url, split_host_port, Host, HostError, HostRule, NetworkRules, ProxyUrl,
    UpstreamSetting, DEFAULT_ALLOW_PORTS,
};
pub use paths::{normalize, DenyRule, FsRules, PathRule};
pub use revoke::Revocation;
pub use vars::Vars;

use error::Problems;
use load::Merged;

/// The embedded default policy: workspace writable, system read-only, home secrets denied,
/// no network. The same text as `policies/default.toml`.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");

/// The name the embedded default goes by in messages.
pub const DEFAULT_POLICY_NAME: &str = "<embedded default>";

/// The presets embedded in the binary, by name: `--policy NAME` loads one wherever the
/// command runs. Each is the same text as `policies/NAME.toml`; an `extends` entry of an
/// embedded preset names another embedded preset (`"default.toml"` is `default`).
pub const PRESETS: &[(&str, &str)] = &[
    ("default", DEFAULT_POLICY),
    ("coding-agent", include_str!("../../../policies/coding-agent.toml")),
    ("ci", include_str!("../../../policies/ci.toml")),
    ("read-only", include_str!("../../../policies/read-only.toml")),
];

/// The text of the embedded preset `name` (see [`PRESETS`]).
pub fn preset_text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The names of the embedded presets, in order.
pub fn preset_names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(n, _)| *n)
}

/// The name an embedded preset goes by in messages and in `Policy::files`:
/// `<embedded NAME>` (`<embedded default>` for the default).
pub fn preset_display_name(name: &str) -> String {
    format!("<embedded {name}>")
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The call may go ahead.
    Allow,
    /// The call is refused.
    Deny,
}

impl Verdict {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// The outcome of one check: the verdict, the rule that decided and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The rule id: `filesystem.read[0]`, `commands.deny[1]`, `network.allow[3]`, or
    /// `default` when no rule matched.
    pub rule: Arc<str>,
    /// A sentence for a person.
    pub reason: String,
}

impl Decision {
    pub(crate) fn allow(rule: &Arc<str>, reason: String) -> Decision {
        Decision { verdict: Verdict::Allow, rule: Arc::clone(rule), reason }
    }
    pub(crate) fn deny(rule: &Arc<str>, reason: String) -> Decision {
        Decision { verdict: Verdict::Deny, rule: Arc::clone(rule), reason }
    }
    pub(crate) fn deny_default(reason: String) -> Decision {
        Decision { verdict: Verdict::Deny, rule: Arc::from("default"), reason }
    }
    pub(crate) fn allow_default(reason: String) -> Decision {
        Decision { verdict: Verdict::Allow, rule: Arc::from("default"), reason }
    }
    /// Whether the verdict is allow.
    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// `[sandbox] enforcement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// Refuse to run if a layer the policy needs is missing (the default).
    #[default]
    Strict,
    /// Run, and record what was missing.
    BestEffort,
}

impl Enforcement {
    /// `"strict"` or `"best-effort"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Strict => "strict",
            Enforcement::BestEffort => "best-effort",
        }
    }
}

/// A loaded, validated, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The files it was built from, bases first (or [`DEFAULT_POLICY_NAME`]).
    pub files: Vec<PathBuf>,
    /// `[sandbox] enforcement`.
    pub enforcement: Enforcement,
    /// `[filesystem]`.
    pub filesystem: FsRules,
    /// `[commands]`; `None` when no file has the table (any program may start).
    pub commands: Option<CommandRules>,
    /// `[network]`.
    pub network: NetworkRules,
    /// `[env]`.
    pub env: EnvRules,
    /// `[limits]`.
    pub limits: Limits,
    /// The variables it was compiled with.
    pub vars: Vars,
    sandbox_path: String,
    effective: String,
    hash: String,
    revocations: revoke::Revocations,
    /// Set when every decision must deny (a revocation list that cannot be read or
    /// compiled): the reason, naming the file and the error.
    deny_all: Option<Arc<str>>,
    /// paddock's own state (normalised): never in a view, never read or written by a call.
    hidden: Vec<PathBuf>,
}

/// The rule id of every decision of a policy that denies all ([`Policy::deny_all`]).
pub const DENY_ALL_RULE: &str = "revocations";

/// The rule id of a decision on a path that holds paddock's own state
/// ([`Policy::hide_paths`]).
pub const HIDDEN_RULE: &str = "paddock.state";

impl Policy {
    /// Loads the policy file at `path` and what it extends.
    pub fn load(path: &Path, vars: &Vars) -> Result<Policy, PolicyError> {
        Policy::compile(load::load_file(path)?, vars)
    }

    /// Loads a policy from text; `name` is used in messages, `extends` resolves from the
    /// current directory.
    pub fn from_toml_str(name: &str, text: &str, vars: &Vars) -> Result<Policy, PolicyError> {
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Policy::compile(load::load_text(Path::new(name), text, &base)?, vars)
    }

    /// The embedded default policy ([`DEFAULT_POLICY`]).
    pub fn embedded_default(vars: &Vars) -> Result<Policy, PolicyError> {
        Policy::compile(load::load_preset("default")?, vars)
    }

    /// The embedded preset `name` ([`PRESETS`]); `None` when there is no such preset.
    pub fn preset(name: &str, vars: &Vars) -> Option<Result<Policy, PolicyError>> {
        preset_text(name)?;
        Some(load::load_preset(name).and_then(|m| Policy::compile(m, vars)))
    }

    fn compile(m: Merged, vars: &Vars) -> Result<Policy, PolicyError> {
        let mut problems = Problems::default();
        let enforcement = match &m.enforcement {
            None => Enforcement::Strict,
            Some((s, o)) => match s.as_str() {
                "strict" => Enforcement::Strict,
                "best-effort" => Enforcement::BestEffort,
                other => {
                    problems.push(o, format!("unknown enforcement `{other}`"), Some("write \"strict\" (refuse when a layer is missing) or \"best-effort\" (run and record what is missing)".to_string()));
                    Enforcement::Strict
                }
            },
        };
        let paths = |list: &[load::At<String>], problems: &mut Problems| -> Vec<paths::RawPathEntry> {
            list.iter()
                .filter_map(|(raw, origin)| match vars.expand_path(raw) {
                    Ok(expanded) => Some(paths::RawPathEntry { raw: raw.clone(), expanded, origin: origin.clone() }),
                    Err((msg, hint)) => {
                        problems.push(origin, msg, Some(hint));
                        None
                    }
                })
                .collect()
        };
        let (read, write, deny) =
            (paths(&m.fs_read, &mut problems), paths(&m.fs_write, &mut problems), paths(&m.fs_deny, &mut problems));
        let protect = paths(&m.fs_protect, &mut problems);
        let filesystem = FsRules::compile(read, write, deny, protect, &mut problems);

        let env = EnvRules::compile(
            m.env_pass.iter().map(|(p, o)| (p.clone(), o.clone())).collect(),
            m.env_set.values().map(|((k, ko), (v, vo))| (k.clone(), ko.clone(), v.clone(), vo.clone())).collect(),
            vars,
            &mut problems,
        );
        let sandbox_path = env.sandbox_path(vars.caller_path.as_deref());

        let cmd = |list: &[load::At<String>]| {
            list.iter().map(|(raw, origin)| commands::RawCommand { raw: raw.clone(), origin: origin.clone() }).collect()
        };
        let commands = m
            .commands
            .as_ref()
            .map(|(allow, deny)| CommandRules::compile(cmd(allow), cmd(deny), &sandbox_path, &mut problems));

        let net = |list: &[load::At<String>]| {
            list.iter().map(|(raw, origin)| network::RawEntry { raw: raw.clone(), origin: origin.clone() }).collect()
        };
        let hosts = m
            .net_hosts
            .values()
            .map(|((k, ko), (v, vo))| {
                (
                    network::RawEntry { raw: k.clone(), origin: ko.clone() },
                    network::RawEntry { raw: v.clone(), origin: vo.clone() },
                )
            })
            .collect();
        let upstream =
            m.net_upstream.as_ref().map(|(raw, origin)| network::RawEntry { raw: raw.clone(), origin: origin.clone() });
        let network = NetworkRules::compile(
            net(&m.net_allow),
            net(&m.net_deny),
            net(&m.net_private),
            hosts,
            upstream,
            &mut problems,
        );

        let mut limits = Limits::default();
        if let Some((v, o)) = &m.timeout {
            limits.timeout = limits::duration(v, o, "timeout", &mut problems);
        }
        if let Some((v, o)) = &m.max_output {
            limits.max_output = limits::size(v, o, "max_output", &mut problems);
        }
        if let Some((v, o)) = &m.max_memory {
            limits.max_memory = limits::size(v, o, "max_memory", &mut problems);
        }
        if let Some((v, o)) = &m.max_file_size {
            limits.max_file_size = limits::size(v, o, "max_file_size", &mut problems);
        }
        if let Some((v, o)) = &m.max_processes {
            limits.max_processes = limits::count(*v, o, "max_processes", &mut problems);
        }
        if let Some((v, o)) = &m.max_open_files {
            limits.max_open_files = limits::count(*v, o, "max_open_files", &mut problems);
        }
        problems.into_result()?;

        let mut policy = Policy {
            files: m.files,
            enforcement,
            filesystem,
            commands,
            network,
            env,
            limits,
            vars: vars.clone(),
            sandbox_path,
            effective: String::new(),
            hash: String::new(),
            revocations: revoke::Revocations::default(),
            deny_all: None,
            hidden: Vec::new(),
        };
        let (header, body) = show::effective_toml(&policy);
        policy.hash = show::sha256_hex(body.as_bytes());
        policy.effective = header + &body;
        Ok(policy)
    }

    /// Applies revocations (`paddock revoke`) to every later decision of this policy.
    /// `source` names the list in errors (e.g. `$STATE/revocations.toml`). An entry that
    /// cannot be compiled is an error: a revocation must never be silently ignored.
    pub fn set_revocations(&mut self, list: &[(Revocation, Option<String>)], source: &Path) -> Result<(), PolicyError> {
        self.revocations = revoke::Revocations::compile(list, source, &self.vars, &self.sandbox_path)?;
        Ok(())
    }

    /// This policy, denying every call from now on with rule [`DENY_ALL_RULE`] and
    /// `reason` (which should name the revocation list and its error): what a session
    /// falls back to when the revocation list cannot be read or compiled. It cannot fail,
    /// and its views grant nothing.
    pub fn deny_all(&self, reason: impl Into<String>) -> Policy {
        let mut p = self.clone();
        p.deny_all = Some(Arc::from(reason.into()));
        p
    }

    /// The reason every decision is denied, when [`Policy::deny_all`] made this policy.
    pub fn denies_all(&self) -> Option<&str> {
        self.deny_all.as_deref()
    }

    fn denied_all(&self) -> Option<Decision> {
        self.deny_all.as_ref().map(|r| Decision {
            verdict: Verdict::Deny,
            rule: Arc::from(DENY_ALL_RULE),
            reason: r.to_string(),
        })
    }

    /// Marks `paths` as paddock's own state (the audit log, the revocation list, the API
    /// token, a serve socket, `$STATE`): whatever the rules grant, a read or write of them
    /// or below them is denied with rule [`HIDDEN_RULE`], and every sandbox view masks
    /// them ([`Policy::hidden_paths`]).
    pub fn hide_paths<I: IntoIterator<Item = PathBuf>>(&mut self, paths: I) {
        for p in paths {
            // A relative path is taken from the current directory, as the caller meant it.
            let p = normalize(&std::path::absolute(&p).unwrap_or(p), Path::new("/"));
            if !self.hidden.contains(&p) {
                self.hidden.push(p);
            }
        }
        let (header, body) = show::effective_toml(self);
        self.effective = header + &body;
    }

    /// The paths [`Policy::hide_paths`] marked, normalised: a sandbox masks them whatever
    /// read and write grant.
    pub fn hidden_paths(&self) -> &[PathBuf] {
        &self.hidden
    }

    fn hidden_decision(&self, path: &Path) -> Option<Decision> {
        let h = self.hidden.iter().find(|h| path.starts_with(h))?;
        Some(Decision {
            verdict: Verdict::Deny,
            rule: Arc::from(HIDDEN_RULE),
            reason: format!(
                "{} is paddock's own state (under {}): no call may read or write it, whatever the policy grants",
                path.display(),
                h.display()
            ),
        })
    }

    /// The paths that `path:` revocations withdrew (normalised): the sandbox masks them
    /// like `deny` entries, so a revoked path is gone for commands too, not only for
    /// `read_file`/`write_file` decisions.
    pub fn revoked_paths(&self) -> Vec<PathBuf> {
        self.revocations.paths().map(Path::to_path_buf).collect()
    }

    /// The `read` grants a sandbox view holds: every `[filesystem] read` entry that no
    /// `rule:` revocation withdrew.
    pub fn view_read_rules(&self) -> Vec<&PathRule> {
        self.view_rules(&self.filesystem.read)
    }

    fn view_rules<'a>(&self, rules: &'a [PathRule]) -> Vec<&'a PathRule> {
        if self.deny_all.is_some() {
            return Vec::new();
        }
        rules.iter().filter(|r| !self.revocations.revokes_rule(&r.id)).collect()
    }

    /// The `write` grants a sandbox view holds: every `[filesystem] write` entry that no
    /// `rule:` revocation withdrew.
    pub fn view_write_rules(&self) -> Vec<&PathRule> {
        self.view_rules(&self.filesystem.write)
    }

    /// The effective merged policy as TOML, variables expanded (what `policy show` prints).
    pub fn effective_toml(&self) -> &str {
        &self.effective
    }

    /// SHA-256 (hex) of [`Policy::effective_toml`] less its comment header: identifies the
    /// policy in audit records.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The sandbox PATH: `[env]`'s PATH if set, else the caller's if passed, else
    /// [`DEFAULT_PATH`].
    pub fn sandbox_path(&self) -> &str {
        &self.sandbox_path
    }

    /// Resolves a call's program as the sandbox will (see [`resolve_program`]).
    pub fn resolve_program(&self, program: &str, cwd: &Path) -> Option<PathBuf> {
        resolve_program(program, &self.sandbox_path, cwd)
    }

    /// Decides whether a call may start `argv`, resolving its program from `cwd`.
    pub fn check_command(&self, argv: &[String], cwd: &Path) -> Decision {
        let resolved = argv.first().and_then(|p| self.resolve_program(p, cwd));
        self.decide_command(resolved.as_deref(), argv)
    }

    /// [`Policy::check_command`], then [`Policy::program_outside_view`]: the decision on a
    /// command call that is to run (`paddock run`, `check`, a session's calls).
    pub fn check_runnable(&self, argv: &[String], cwd: &Path) -> Decision {
        let resolved = argv.first().and_then(|p| self.resolve_program(p, cwd));
        let d = self.decide_command(resolved.as_deref(), argv);
        match (d.is_allow(), resolved) {
            (true, Some(program)) => self.program_outside_view(&argv[0], &program).unwrap_or(d),
            _ => d,
        }
    }

    /// A denial when `program` (canonical: what the call's program `name` resolved to,
    /// symlinks followed) is not readable under this policy, so the sandbox could not
    /// execute it: the reason names the path and the `[filesystem] read` entry that would
    /// grant it (or the rule that hides it). `None` when the view holds it. A session asks
    /// this of every call its command rules allow, so the call fails with that reason
    /// rather than with a bare "No such file or directory" from inside the sandbox.
    pub fn program_outside_view(&self, name: &str, program: &Path) -> Option<Decision> {
        let read = self.decide_read(program);
        if read.is_allow() {
            return None;
        }
        let dir = program.parent().unwrap_or(Path::new("/"));
        let entry = match self.vars.home.as_deref().and_then(|h| dir.strip_prefix(h).ok()) {
            Some(rest) if rest.as_os_str().is_empty() => "~".to_string(),
            Some(rest) => format!("~/{}", rest.display()),
            None => dir.display().to_string(),
        };
        let hint = if read.rule.as_ref() == "default" {
            format!("add \"{entry}\" to [filesystem] read to run it")
        } else {
            format!("{} hides it: {}", read.rule, read.reason)
        };
        let shown = if Path::new(name) == program {
            format!("`{}`", program.display())
        } else {
            format!("`{name}` resolves to {}, which", program.display())
        };
        Some(Decision {
            verdict: Verdict::Deny,
            rule: read.rule,
            reason: format!("{shown} is outside the sandbox view (the policy grants no read of it): {hint}"),
        })
    }

    /// Decides a call of `argv` whose program resolved to `program` (pure).
    pub fn decide_command(&self, program: Option<&Path>, argv: &[String]) -> Decision {
        if let Some(d) = self.denied_all() {
            return d;
        }
        let shown = commands::shown(argv);
        let args = argv.get(1..).unwrap_or(&[]);
        let d = match &self.commands {
            None => Decision::allow_default(format!(
                "no [commands] table: any program may start (`{shown}` is still confined by the other rules)"
            )),
            Some(rules) => rules.decide(program, &shown, args),
        };
        if self.revocations.is_empty() {
            return d;
        }
        self.revocations.command(d, program, args)
    }

    /// Decides a read of `path` (relative paths are taken from `cwd`), normalising it first.
    pub fn check_read(&self, path: &Path, cwd: &Path) -> Decision {
        self.decide_read(&normalize(path, cwd))
    }

    /// Decides a write of `path` (relative paths are taken from `cwd`), normalising it first.
    pub fn check_write(&self, path: &Path, cwd: &Path) -> Decision {
        self.decide_write(&normalize(path, cwd))
    }

    /// Decides a read of an already normalised path (pure).
    pub fn decide_read(&self, path: &Path) -> Decision {
        if let Some(d) = self.denied_all().or_else(|| self.hidden_decision(path)) {
            return d;
        }
        let d = self.filesystem.decide_read(path);
        if self.revocations.is_empty() {
            return d;
        }
        self.revocations.path(d, path)
    }

    /// Decides a write of an already normalised path (pure).
    pub fn decide_write(&self, path: &Path) -> Decision {
        if let Some(d) = self.denied_all().or_else(|| self.hidden_decision(path)) {
            return d;
        }
        let d = self.filesystem.decide_write(path);
        if self.revocations.is_empty() {
            return d;
        }
        self.revocations.path(d, path)
    }

    /// Decides a connection to `host:port` by name (pure). Address checks (private ranges,
    /// pins) are the proxy's, with [`NetworkRules::pinned`] and
    /// [`NetworkRules::private_allowed`].
    pub fn decide_connect(&self, host: &str, port: u16) -> Decision {
        if let Some(d) = self.denied_all() {
            return d;
        }
        let h = match normalize_host(host) {
            Ok(h) => h,
            Err(m) => return Decision::deny_default(format!("refused: {m}")),
        };
        let d = self.network.decide_host(&h, port);
        if self.revocations.is_empty() {
            return d;
        }
        self.revocations.connect(d, &h, port)
    }

    /// The rule ids that grant something (`commands.allow`, `network.allow`,
    /// `filesystem.read`, `filesystem.write`), in order: the candidates for "grants never
    /// used" in a review.
    pub fn grant_ids(&self) -> Vec<String> {
        let fs = &self.filesystem;
        let mut ids: Vec<String> = Vec::new();
        if let Some(c) = &self.commands {
            ids.extend(c.allow.iter().map(|r| r.id.to_string()));
        }
        ids.extend(self.network.allow.iter().map(|r| r.id.to_string()));
        ids.extend(fs.read.iter().chain(&fs.write).map(|r| r.id.to_string()));
        ids
    }
}

#[cfg(test)]
mod tests;
