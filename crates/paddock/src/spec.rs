//! From a compiled policy to a sandbox spec: the one place that maps `[filesystem]`,
//! `[env]`, `[limits]` and `[sandbox]` onto what `paddock-sandbox` enforces.

use std::path::{Path, PathBuf};

use paddock_policy::{Decision, Enforcement, PathRule, Policy, Verdict};
use paddock_sandbox::{NetworkMode, SandboxSpec, StdioMode};

/// The port paddock's proxy listens on inside each sandbox's own network namespace (only
/// `lo` exists there, so any fixed port is free).
pub const PROXY_PORT: u16 = 3128;

/// Points a spec at the proxy port `port` (its network and its proxy variables): each
/// concurrent call of a zygote has a port of its own in the shared network namespace.
pub fn set_proxy_port(spec: &mut SandboxSpec, port: u16) {
    spec.network = NetworkMode::Proxy { port };
    spec.env.retain(|(k, _)| !is_proxy_var(k));
    spec.env.extend(proxy_env(port));
}

/// Whether `name` is a proxy variable (`*_proxy` or `*-proxy`, any case): the
/// sandbox's own are paddock's proxy, whatever the caller had.
fn is_proxy_var(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with("_proxy") || lower.ends_with("-proxy")
}

/// The proxy variables a sandboxed program sees, so curl, git, cargo, npm and pip use the
/// proxy unchanged.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let mut v = Vec::new();
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        v.push((k.to_string(), url.clone()));
        v.push((k.to_ascii_lowercase(), url.clone()));
    }
    v.push(("NO_PROXY".into(), String::new()));
    v.push(("no_proxy".into(), String::new()));
    v
}

fn paths(rules: &[&PathRule]) -> Vec<PathBuf> {
    // Symlinked entries (`/bin` -> `/usr/bin`) go in as written too, so the link exists
    // inside the sandbox; the sandbox binds the target.
    let mut v: Vec<PathBuf> = Vec::new();
    for r in rules {
        for p in [&r.expanded, &r.path] {
            if !v.contains(p) {
                v.push(p.clone());
            }
        }
    }
    v
}

/// The filesystem fields of a policy's specs: read and write paths, literal deny paths
/// (deny entries without glob syntax, revoked paths), deny and protect globs. The sandbox
/// expands the globs, and finds the sockets to hide, on its own view when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsView {
    /// `SandboxSpec::read_paths`.
    pub read_paths: Vec<PathBuf>,
    /// `SandboxSpec::write_paths`.
    pub write_paths: Vec<PathBuf>,
    /// `SandboxSpec::deny_paths`.
    pub deny_paths: Vec<PathBuf>,
    /// `SandboxSpec::deny_globs`.
    pub deny_globs: Vec<String>,
    /// `SandboxSpec::protect_globs`.
    pub protect_globs: Vec<String>,
}

/// The sandbox spec for running `argv` (program already resolved) under `policy`, from the
/// working directory `cwd` (used when the policy lets the sandbox see it, else the
/// workspace, else `/`). The network is the proxy's when the policy allows any host. The
/// view cache is in `$STATE`, resolved from the environment now ([`view_cache`]).
pub fn build(policy: &Policy, program: PathBuf, argv: Vec<String>, cwd: &Path, stdio: StdioMode) -> SandboxSpec {
    let mut spec = build_with(policy, &fs_view(policy), program, argv, cwd, stdio);
    spec.view_cache = view_cache(paddock_audit::state::state_dir().ok().as_deref(), &spec.write_paths);
    spec
}

/// [`build`] with the filesystem fields given, and without a view cache: a session sets
/// that on each of its specs from the state directory it was given (`Inner::adorn`), so
/// that a `run` does not resolve `$STATE` again.
pub fn build_with(
    policy: &Policy,
    view: &FsView,
    program: PathBuf,
    argv: Vec<String>,
    cwd: &Path,
    stdio: StdioMode,
) -> SandboxSpec {
    let mut spec = SandboxSpec::new(program, argv);
    spec.read_paths = view.read_paths.clone();
    spec.write_paths = view.write_paths.clone();
    spec.deny_paths = view.deny_paths.clone();
    spec.deny_globs = view.deny_globs.clone();
    spec.protect_globs = view.protect_globs.clone();
    finish(policy, spec, cwd, stdio)
}

/// The policy's filesystem rules as a spec's fields (no filesystem access: the sandbox
/// walks its own view).
pub fn fs_view(policy: &Policy) -> FsView {
    let fs = &policy.filesystem;
    let mut deny_paths: Vec<PathBuf> = Vec::new();
    let mut deny_globs: Vec<String> = Vec::new();
    for d in &fs.deny {
        if d.is_glob {
            deny_globs.push(d.pattern.clone());
        } else {
            deny_paths.push(PathBuf::from(&d.pattern));
        }
    }
    // No socket list: every socket under a granted path is unreachable in the view (the
    // walk masks those it finds; the system trees are overlays, whose inodes no host
    // socket is bound on).
    for p in policy.revoked_paths() {
        if !deny_paths.contains(&p) {
            deny_paths.push(p);
        }
    }
    let protect_globs = fs
        .protect
        .iter()
        .map(|p| if p.is_glob { p.pattern.clone() } else { paddock_globs::escape(&p.pattern) })
        .collect();
    let write_paths = paths(&policy.view_write_rules());
    // What a call's end moved aside stays out of every later view: a denied file moved
    // aside under a name its rule does not match is still the secret it was.
    for w in &write_paths {
        let w = paddock_globs::escape(&w.to_string_lossy());
        deny_globs.push(format!("{w}/**/*{}*", crate::aside::MOVED_MARK));
    }
    FsView { read_paths: paths(&policy.view_read_rules()), write_paths, deny_paths, deny_globs, protect_globs }
}

/// The directory a session's command call runs in: the workspace (or `/`, when the
/// sandbox cannot see it) when the call names none; else the one it names (relative to the
/// workspace), or a denial when the sandbox cannot see that one: a call is never moved to
/// another directory than it asked for (until 2026-12-05 it ran in the workspace,
/// silently: an `rm -rf build` meant for another checkout hit the workspace's).
pub(crate) fn call_dir(policy: &Policy, cwd: Option<&str>) -> Result<PathBuf, Decision> {
    let ws = &policy.vars.workspace;
    let Some(c) = cwd else { return Ok(run_dir(policy, ws)) };
    if c.is_empty() || c.contains('\0') {
        let reason = match c.is_empty() {
            true => "the call's cwd is empty: name a directory, or leave cwd out for the workspace",
            false => "the call's cwd holds a NUL byte, which no path can: refused",
        };
        return Err(Decision { verdict: Verdict::Deny, rule: "default".into(), reason: reason.into() });
    }
    let dir = paddock_policy::normalize(Path::new(c), ws);
    let d = policy.decide_read(&dir);
    if d.is_allow() {
        return Ok(dir);
    }
    // The sandbox's own /tmp and /dev/shm: no grant of them shows the host's.
    let why = if dir == Path::new("/tmp") || dir == Path::new("/dev/shm") {
        format!(
            "the sandbox's {} is its own, empty when a call starts, not the host's: name a directory in the workspace, or grant the one beneath it by name",
            dir.display()
        )
    } else {
        d.reason.clone()
    };
    let reason =
        format!("the call's cwd {} is not visible in the sandbox, so the call cannot run there: {why}", dir.display());
    Err(Decision { reason, ..d })
}

/// The directory a child asked to run in `cwd` runs in: `cwd` when the policy lets the
/// sandbox see it, else the workspace, else `/` (`paddock run`, whose `cwd` is where it
/// was started, not a directory the agent named).
pub(crate) fn run_dir(policy: &Policy, cwd: &Path) -> PathBuf {
    let ws = &policy.vars.workspace;
    [cwd, ws.as_path()]
        .into_iter()
        .find(|d| policy.check_read(d, d).is_allow())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn finish(policy: &Policy, mut spec: SandboxSpec, cwd: &Path, stdio: StdioMode) -> SandboxSpec {
    spec.cwd = run_dir(policy, cwd);
    spec.hidden_paths = policy.hidden_paths().to_vec();
    spec.env = policy.env.child_env(std::env::vars());
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        spec.env.push(("PATH".into(), policy.sandbox_path().to_string()));
    }
    spec.enforcement = match policy.enforcement {
        Enforcement::Strict => paddock_sandbox::Enforcement::Strict,
        Enforcement::BestEffort => paddock_sandbox::Enforcement::BestEffort,
    };
    // The caller's proxy variables (`HTTPS_PROXY`, a tool's own: `CARGO_HTTP_PROXY`,
    // `npm_config_https-proxy`, `PIP_PROXY`) name the upstream, often with its password,
    // and lead nowhere from the sandbox: never passed, network or not.
    spec.env.retain(|(k, _)| !is_proxy_var(k));
    if policy.network_wanted() {
        spec.network = NetworkMode::Proxy { port: PROXY_PORT };
        spec.env.extend(proxy_env(PROXY_PORT));
    } else {
        spec.network = NetworkMode::None;
    }
    let l = &policy.limits;
    spec.limits = paddock_sandbox::Limits {
        timeout: l.timeout,
        max_output: l.max_output,
        max_processes: l.max_processes,
        max_memory: l.max_memory,
        max_open_files: l.max_open_files,
        max_file_size: l.max_file_size,
    };
    spec.stdio = stdio;
    // exec supervision (issue 16): every exec of the tree on the record, and under
    // `[commands] scope = "tree"` only the allowed programs executable.
    spec.exec = Some(crate::exec_rights::control(policy, &spec.program));
    spec
}

/// The sandbox's listings of the view's directories, in `$STATE` `state` (which no view
/// holds), so a start reads only the directories that changed. Without a state dir, no
/// cache. A state directory a write grant (of `write_paths`) covers is not trusted with
/// it: a call could have written a cache there that leaves a match out (the walk is then
/// a fresh one).
pub fn view_cache(state: Option<&Path>, write_paths: &[PathBuf]) -> Option<PathBuf> {
    state.filter(|d| !write_paths.iter().any(|w| d.starts_with(w))).map(|d| d.join(VIEW_CACHE_FILE))
}

/// The view cache's file name in `$STATE`.
pub const VIEW_CACHE_FILE: &str = "view-cache";
