//! [`Policy`]: a loaded, compiled policy, and the decisions it makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::approved::Approved;
use crate::ask::AskRules;
use crate::audit::AuditSettings;
use crate::commands::{self, resolve_program, CommandRules, CommandScope};
use crate::decision::{Decision, Enforcement, Verdict, DENY_ALL_RULE, HIDDEN_RULE};
use crate::error::PolicyError;
use crate::http_rules::HttpRules;
use crate::limits::{EnvRules, Limits};
use crate::load;
use crate::network::{normalize_host, NetworkRules};
use crate::paths::{normalize, FsRules, PathRule};
use crate::presets::preset_text;
use crate::revoke::{self, Revocation};
use crate::secrets::SecretRules;
use crate::vars::Vars;

mod layers;

/// A loaded, validated, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The files it was built from, bases first (or [`DEFAULT_POLICY_NAME`](crate::DEFAULT_POLICY_NAME)).
    pub files: Vec<PathBuf>,
    /// `[sandbox] enforcement`.
    pub enforcement: Enforcement,
    /// `[filesystem]`.
    pub filesystem: FsRules,
    /// `[commands]`; `None` when no file has the table (any program may start).
    pub commands: Option<CommandRules>,
    /// `[commands] scope`: the call only (default), or every exec of its tree.
    pub command_scope: CommandScope,
    /// `[network]`.
    pub network: NetworkRules,
    /// `[env]`.
    pub env: EnvRules,
    /// `[limits]`.
    pub limits: Limits,
    /// `ask` of `[commands]` and `[network]`.
    pub ask: AskRules,
    pub(crate) ask_timeout: Option<std::time::Duration>,
    pub(crate) approved: Approved,
    /// `[audit]`.
    pub audit: AuditSettings,
    /// `[secrets.*]`.
    pub secrets: SecretRules,
    /// `[[network.http]]`.
    pub http: HttpRules,
    /// `[network] upstream_ca`: extra CA files the proxy trusts for intercepted upstreams.
    pub upstream_ca: Vec<PathBuf>,
    /// The variables it was compiled with.
    pub vars: Vars,
    pub(crate) sandbox_path: String,
    pub(crate) effective: String,
    /// [`Policy::effective`] less its comment header.
    pub(crate) body: String,
    pub(crate) hash: String,
    pub(crate) revocations: revoke::Revocations,
    /// Set when every decision must deny (a revocation list that cannot be read or
    /// compiled): the reason, naming the file and the error.
    pub(crate) deny_all: Option<Arc<str>>,
    /// paddock's own state (normalised): never in a view, never read or written by a call.
    pub(crate) hidden: Vec<PathBuf>,
}

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

    /// The embedded default policy ([`DEFAULT_POLICY`](crate::DEFAULT_POLICY)).
    pub fn embedded_default(vars: &Vars) -> Result<Policy, PolicyError> {
        Policy::compile(load::load_preset("default")?, vars)
    }

    /// The embedded preset `name` ([`PRESETS`](crate::PRESETS)); `None` when there is no such preset.
    pub fn preset(name: &str, vars: &Vars) -> Option<Result<Policy, PolicyError>> {
        preset_text(name)?;
        Some(load::load_preset(name).and_then(|m| Policy::compile(m, vars)))
    }

    /// Applies revocations (`paddock revoke`) to every later decision of this policy.
    /// `source` names the list in errors (e.g. `$STATE/revocations.toml`). An entry that
    /// cannot be compiled is an error: a revocation must never be silently ignored.
    pub fn set_revocations(&mut self, list: &[(Revocation, Option<String>)], source: &Path) -> Result<(), PolicyError> {
        self.revocations = revoke::Revocations::compile(list, source, &self.vars, &self.sandbox_path)?;
        Ok(())
    }

    /// Whether revocations were set ([`Policy::set_revocations`]) that withdraw anything.
    pub fn has_revocations(&self) -> bool {
        !self.revocations.is_empty()
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

    pub(crate) fn denied_all(&self) -> Option<Decision> {
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
        // One batch: paths that share directories (`$STATE/x`, `$STATE/y`) look each up once.
        let mut lookups = crate::paths::Lookups::default();
        for p in paths {
            // A relative path is taken from the current directory, as the caller meant it.
            let p = lookups.normalize(&std::path::absolute(&p).unwrap_or(p), Path::new("/"));
            if !self.hidden.contains(&p) {
                self.hidden.push(p);
            }
        }
        self.render_effective(false);
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
    /// [`DEFAULT_PATH`](crate::DEFAULT_PATH).
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
        // No program can be given a NUL byte (execve ends each argument there): such a call
        // cannot run as asked, so it is refused before anything decides or asks about it.
        if argv.iter().any(|a| a.contains('\0')) {
            return Decision::deny_default(
                "an argument holds a NUL byte, which no program can be given: refused".into(),
            );
        }
        let resolved = argv.first().and_then(|p| self.resolve_program(p, cwd));
        let d = self.decide_command(resolved.as_deref(), argv);
        // An asked call whose program the sandbox could not run is refused, not asked.
        match (d.is_allow() || d.verdict == Verdict::Ask, resolved) {
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
            format!("add \"{entry}\" to [filesystem] read to run it{}", manager_hint(program))
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
        let d = self.layer_command(d, program, &shown, args);
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
        let d = self.layer_connect(d, &h, port);
        if self.revocations.is_empty() {
            return d;
        }
        self.revocations.connect(d, &h, port)
    }

    /// Decides an HTTP request (`METHOD https://host:port/path`) as the proxy would: the
    /// connection to the host first, then the host's `[[network.http]]` rules (pure).
    /// `path` is the origin-form target (its query is never matched).
    pub fn decide_http(&self, method: &str, host: &str, port: u16, path: &str) -> Decision {
        let d = self.decide_connect(host, port);
        if !d.is_allow() {
            return d;
        }
        let Ok(h) = normalize_host(host) else { return d };
        match self.http.decide(method, &h, port, path) {
            None => d,
            Some(hd) if hd.is_allow() && !self.revocations.is_empty() => self.revocations.http(hd),
            Some(hd) => hd,
        }
    }

    /// The refusal of `method path` to `host:port` by the host's `[[network.http]]` deny
    /// patterns alone (a `HEAD` meets the `GET` ones too); `None` when none meets it. For a
    /// method a server may take from a field that only mentions `method`
    /// (`StatusCallbackMethod=GET`): refused where it is denied, but never required to be
    /// on the allow list.
    pub fn denied_http(&self, method: &str, host: &str, port: u16, path: &str) -> Option<Decision> {
        let h = normalize_host(host).ok()?;
        self.http.denied(method, &h, port, path)
    }

    /// Whether the proxy terminates TLS for `host:port`: a secret may be sent there, or it
    /// has `[[network.http]]` rules. Other hosts stay end-to-end tunnels.
    pub fn intercepts(&self, host: &str, port: u16) -> bool {
        let Ok(h) = normalize_host(host) else { return false };
        self.secrets.for_host(&h, port).next().is_some() || self.http.for_host(&h, port).next().is_some()
    }

    /// Whether any host is intercepted (the policy has secrets or request rules): without,
    /// a session builds no CA and the proxy tunnels everything.
    pub fn intercepts_any(&self) -> bool {
        !self.secrets.is_empty() || !self.http.list.is_empty()
    }

    /// Why the secret `name` may not be injected now: revoked (`secret:NAME` or
    /// `rule:secrets.NAME`), or every decision is denied. `None`: it may.
    pub fn secret_refusal(&self, name: &str) -> Option<Decision> {
        if let Some(d) = self.denied_all() {
            return Some(d);
        }
        let s = self.secrets.get(name)?;
        self.revocations.secret(name, &s.id)
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
        ids.extend(self.http.grant_ids());
        ids.extend(self.secrets.list.iter().map(|s| s.id.to_string()));
        ids
    }
}

/// More for a program that is a version manager's front (a rustup proxy, a pyenv or
/// asdf shim): it runs the real tool from the manager's own directory, which the sandbox
/// must show too (found by a test: following the bare hint, rustup found no
/// `~/.rustup` and failed to make one on the read-only view).
fn manager_hint(program: &Path) -> &'static str {
    let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let within = |dir: &str| program.components().any(|c| c.as_os_str() == dir);
    if name == "rustup" || name == "rustup-init" {
        "; it is rustup, which runs the toolchains in ~/.rustup: add \"~/.rustup\" too, or use --policy coding-agent, which reads both"
    } else if within(".pyenv") {
        "; it is a pyenv shim, which runs pyenv and the Pythons in ~/.pyenv: add \"~/.pyenv\" to `read` instead"
    } else if within(".asdf") {
        "; it is an asdf shim, which runs the tools in ~/.asdf: add \"~/.asdf\" to `read` instead"
    } else {
        ""
    }
}
