//! From a compiled policy to a sandbox spec: the one place that maps `[filesystem]`,
//! `[env]`, `[limits]` and `[sandbox]` onto what `paddock-sandbox` enforces.

use std::path::{Path, PathBuf};

use paddock_policy::{Enforcement, PathRule, Policy};
use paddock_sandbox::{NetworkMode, SandboxSpec, StdioMode};

/// How many directory entries one deny glob may visit when it is expanded at start.
pub const DENY_WALK_LIMIT: usize = 200_000;

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

/// The filesystem fields of a policy's specs: read, write and deny paths, the deny globs
/// expanded and the live host sockets masked as of now (the costly part of [`build`]; a
/// session computes it once per zygote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsView {
    /// `SandboxSpec::read_paths`.
    pub read_paths: Vec<PathBuf>,
    /// `SandboxSpec::write_paths`.
    pub write_paths: Vec<PathBuf>,
    /// `SandboxSpec::deny_paths`.
    pub deny_paths: Vec<PathBuf>,
}

/// The sandbox spec for running `argv` (program already resolved) under `policy`, from the
/// working directory `cwd` (used when the policy lets the sandbox see it, else the
/// workspace, else `/`). The network is the proxy's when the policy allows any host.
pub fn build(policy: &Policy, program: PathBuf, argv: Vec<String>, cwd: &Path, stdio: StdioMode) -> SandboxSpec {
    build_with(policy, &fs_view(policy), program, argv, cwd, stdio)
}

/// [`build`] with the filesystem fields given.
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
    finish(policy, spec, cwd, stdio)
}

/// Expands the policy's filesystem rules into a spec's paths (deny globs walked, revoked
/// paths and live host sockets under granted paths masked).
pub fn fs_view(policy: &Policy) -> FsView {
    let fs = &policy.filesystem;
    let mut spec = SandboxSpec::new("/", vec![String::new()]);
    spec.read_paths = paths(&policy.view_read_rules());
    spec.write_paths = paths(&policy.view_write_rules());
    let (deny, cut) = fs.expand_deny(DENY_WALK_LIMIT);
    if cut {
        tracing::warn!("a deny glob's expansion stopped after {DENY_WALK_LIMIT} entries: files past that are not masked by the mount view");
    }
    spec.deny_paths = deny;
    for p in policy.revoked_paths() {
        if std::fs::symlink_metadata(&p).is_ok() && !spec.deny_paths.contains(&p) {
            spec.deny_paths.push(p);
        }
    }
    // A read-only bind does not stop connect(2) on a socket file, and Landlock does not
    // cover it either: mask every live host socket the granted paths would expose.
    for sock in live_unix_sockets() {
        if policy.decide_read(&sock).is_allow() && !spec.deny_paths.contains(&sock) {
            tracing::debug!(socket = %sock.display(), "masking a host unix socket under a granted path");
            spec.deny_paths.push(sock);
        }
    }
    FsView { read_paths: spec.read_paths, write_paths: spec.write_paths, deny_paths: spec.deny_paths }
}

fn finish(policy: &Policy, mut spec: SandboxSpec, cwd: &Path, stdio: StdioMode) -> SandboxSpec {
    let ws = &policy.vars.workspace;
    spec.cwd = [cwd, ws.as_path()]
        .into_iter()
        .find(|d| policy.check_read(d, d).is_allow())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
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
    if policy.network.any_allowed() {
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
    spec
}

/// Pathname unix sockets bound on the host (in this network namespace), from
/// `/proc/net/unix`.
pub fn live_unix_sockets() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else { return Vec::new() };
    let mut v: Vec<PathBuf> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    v.sort();
    v.dedup();
    v
}
