//! Plan, then act: a tool call decided against the policy, and, when allowed, the spec of
//! the confined child that performs it. Pure but for the policy's lookups: no process, no
//! audit record (`execute` does those).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use paddock_audit::Target;
use paddock_policy::{normalize, Decision, Policy, Verdict};
use paddock_sandbox::{NetworkMode, SandboxSpec, StdioMode};

use crate::call::{Timeout, ToolCall};
use crate::spec::{self, FsView};

/// What a decided call runs.
pub(super) enum Child {
    /// The decision is a denial: nothing runs.
    Denied,
    /// The confined child that performs the call.
    Run(Box<SandboxSpec>),
    /// Allowed, but the program does not resolve on the policy's paths: nothing runs, and
    /// the call ends with [`Child::NOT_FOUND`], as a shell's would.
    NotFound,
}

impl Child {
    /// The exit code of a program that does not resolve (a shell's).
    pub(super) const NOT_FOUND: i32 = 127;

    /// `Run` of `spec` when `program` resolved, else `NotFound`.
    pub(super) fn of(program: Option<PathBuf>, spec: impl FnOnce(PathBuf) -> SandboxSpec) -> Child {
        program.map_or(Child::NotFound, |p| Child::Run(Box::new(spec(p))))
    }
}

/// A tool call decided: the decision, what the audit log names, where it runs, and what.
pub(super) struct Plan {
    pub decision: Decision,
    pub target: Target,
    pub cwd: PathBuf,
    pub child: Child,
}

/// Whether a helper program (the `cat` of a `read_file`, the `dd` of a `write_file`, the
/// `curl` of an `http_request`) may use the session's network: only an `http_request`'s
/// goes through the proxy; the file helpers get no network at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HelperNet {
    /// The policy's network (the proxy), for `http_request`.
    Proxy,
    /// No network.
    None,
}

/// The filesystem fields of a child's spec, asked for only when the call is allowed (a
/// session's zygote is started on first use).
pub(super) type ViewSource<'a> = &'a mut dyn FnMut() -> Arc<FsView>;

/// A denial by the `default` rule, for a call that cannot be decided on a rule.
pub(super) fn deny(reason: String) -> Decision {
    Decision { verdict: Verdict::Deny, rule: Arc::from("default"), reason }
}

/// A call's working directory: `cwd` against the workspace, or the workspace.
pub(super) fn resolve_cwd(ws: &Path, cwd: Option<&str>) -> PathBuf {
    match cwd {
        Some(c) => normalize(Path::new(c), ws),
        None => ws.to_path_buf(),
    }
}

/// The host and port an `http_request` of `url` asks for: the proxy's own URL parser
/// ([`paddock_proxy::url_target`]), so the call is decided on the host the proxy sees.
fn url_target(url: &str) -> Result<paddock_proxy::Target, String> {
    use paddock_proxy::TargetError;
    paddock_proxy::url_target(url).map_err(|e| match e {
        TargetError::NotAbsolute(_) => format!("`{url}` is not an absolute http(s) URL"),
        TargetError::UrlScheme(other) => format!("scheme `{other}` is not http or https"),
        TargetError::UserInfo(_) => format!("`{url}` has userinfo (`user@host`): refused"),
        other => format!("`{url}`: {other}"),
    })
}

/// The origin-form target of an absolute URL (`/` when it names none), for the request
/// rules of `[[network.http]]`.
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let target = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    let target = target.split('#').next().unwrap_or("");
    if target.starts_with('/') {
        target.to_string()
    } else {
        format!("/{target}")
    }
}

/// The decision on `call` without running it (`POST /v1/check`): what the call would be
/// decided, except that an ask is said without waiting for a person.
pub(super) fn check(policy: &Arc<Policy>, call: &ToolCall) -> Decision {
    let ws = policy.vars.workspace.clone();
    match call {
        ToolCall::Command { argv, cwd, .. } => match spec::call_dir(policy, cwd.as_deref()) {
            Ok(dir) => policy.check_runnable(argv, &dir),
            Err(d) => d,
        },
        ToolCall::ReadFile { path } => policy.check_read(Path::new(path), &ws),
        ToolCall::WriteFile { path, .. } => policy.check_write(Path::new(path), &ws),
        ToolCall::HttpRequest { url, method, .. } => match url_target(url) {
            Ok(target) => {
                let (host, port) = (target.host.as_policy_str(), target.port);
                match policy.decide_connect(&host, port) {
                    // A person would be asked: said without waiting.
                    d if d.verdict == Verdict::Ask => d,
                    // The proxy's own verdict: the name, then the address it resolves
                    // to, then the host's request rules.
                    _ => match crate::net::decide_connection(policy, &target) {
                        c if c.decision.is_allow() => {
                            policy.decide_http(method.as_deref().unwrap_or("GET"), &host, port, &url_path(url))
                        }
                        c => c.decision,
                    },
                }
            }
            Err(m) => deny(m),
        },
    }
}

/// Decides a tool call and, when allowed, builds the spec of the confined child that
/// performs it. `view` gives the filesystem fields (asked for only when the call is
/// allowed). `answered` is a person's decision on a command call that asked.
pub(super) fn plan(policy: &Policy, call: ToolCall, answered: Option<Decision>, view: ViewSource) -> Plan {
    match call {
        ToolCall::Command { argv, cwd, stdin, timeout } => {
            plan_command(policy, argv, cwd.as_deref(), stdin, timeout, answered, view)
        }
        ToolCall::ReadFile { path } => {
            let ws = &policy.vars.workspace;
            let p = normalize(Path::new(&path), ws);
            let d = policy.decide_read(&p);
            let argv = vec!["cat".into(), "--".into(), p.to_string_lossy().into_owned()];
            let child = allowed(&d, || helper(policy, view, "cat", argv, None, HelperNet::None));
            Plan { decision: d, target: Target::read_file(&p), cwd: ws.clone(), child }
        }
        ToolCall::WriteFile { path, content } => {
            let ws = &policy.vars.workspace;
            let p = normalize(Path::new(&path), ws);
            let d = policy.decide_write(&p);
            let argv = vec!["dd".into(), format!("of={}", p.to_string_lossy()), "status=none".into()];
            let child = allowed(&d, || helper(policy, view, "dd", argv, Some(content.into_bytes()), HelperNet::None));
            Plan { decision: d, target: Target::write_file(&p), cwd: ws.clone(), child }
        }
        ToolCall::HttpRequest { url, method, headers, body } => plan_http(policy, url, method, headers, body, view),
    }
}

/// `child()` when `d` allows, else [`Child::Denied`].
fn allowed(d: &Decision, child: impl FnOnce() -> Child) -> Child {
    if d.is_allow() {
        child()
    } else {
        Child::Denied
    }
}

/// The child of a helper program (`cat`, `dd`, `curl`), run from the workspace.
fn helper(
    policy: &Policy,
    view: ViewSource,
    name: &str,
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    net: HelperNet,
) -> Child {
    let ws = &policy.vars.workspace;
    Child::of(policy.resolve_program(name, ws), |program| {
        let mut s = spec::build_with(policy, &view(), program, argv, ws, StdioMode::Capture { stdin });
        if net == HelperNet::None {
            s.network = NetworkMode::None;
        }
        s
    })
}

/// A `command` call: `answered` when a person answered its ask, else the policy's.
fn plan_command(
    policy: &Policy,
    argv: Vec<String>,
    cwd: Option<&str>,
    stdin: Option<String>,
    timeout: Option<Timeout>,
    answered: Option<Decision>,
    view: ViewSource,
) -> Plan {
    // Where the child will run, decided and recorded as that; a directory the sandbox
    // cannot see is refused, and recorded as asked for.
    let (cwd, unseen) = match spec::call_dir(policy, cwd) {
        Ok(dir) => (dir, None),
        Err(d) => (resolve_cwd(&policy.vars.workspace, cwd), Some(d)),
    };
    let timeout = timeout.as_ref().map(Timeout::duration).transpose();
    let d = match (unseen, answered, &timeout) {
        _ if argv.is_empty() => deny("empty argv".into()),
        (Some(d), _, _) => d,
        // Read calls are checked as they are read; a library caller's is checked here.
        (None, _, Err(e)) => deny(format!("{e}: refused")),
        (None, Some(d), _) => d,
        (None, None, _) => policy.check_runnable(&argv, &cwd),
    };
    let child = allowed(&d, || {
        Child::of(policy.resolve_program(&argv[0], &cwd), |program| {
            let stdio = StdioMode::Capture { stdin: stdin.map(String::into_bytes) };
            let mut s = spec::build_with(policy, &view(), program, argv.clone(), &cwd, stdio);
            if let Ok(Some(t)) = timeout {
                s.limits.timeout = Some(s.limits.timeout.map_or(t, |p| p.min(t)));
            }
            s
        })
    });
    Plan { decision: d, target: Target::command(&argv), cwd, child }
}

/// The argv of the `curl` that performs an `http_request` (its body, if any, on stdin).
/// A `HEAD` is `--head`: with `-X HEAD` curl waits for a body that never comes (until
/// its timeout, exit 18).
fn curl_argv<'a>(
    method: &str,
    headers: impl Iterator<Item = (&'a String, &'a String)>,
    body: bool,
    url: &str,
) -> Vec<String> {
    let mut argv: Vec<String> = ["curl", "-sS", "-i", "--suppress-connect-headers"].map(String::from).to_vec();
    if method == "HEAD" {
        argv.push("--head".into());
    } else {
        argv.extend(["-X".into(), method.to_string()]);
    }
    for (k, v) in headers {
        argv.push("-H".into());
        argv.push(format!("{k}: {v}"));
    }
    if body {
        argv.push("--data-binary".into());
        argv.push("@-".into());
    }
    argv.push("--".into());
    argv.push(url.to_string());
    argv
}

/// An `http_request` call: decided on the host and port the proxy will see (an ask is left
/// to the proxy, which holds the connection), performed by `curl` through the proxy.
fn plan_http(
    policy: &Policy,
    url: String,
    method: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    body: Option<String>,
    view: ViewSource,
) -> Plan {
    let method = method.unwrap_or_else(|| "GET".into());
    let mut d = match url_target(&url) {
        // curl sends a `HEAD` only without a body (`--head`).
        Ok(_) if method == "HEAD" && body.is_some() => deny("an `http_request` with method HEAD has no body".into()),
        Ok(t) => policy.decide_http(&method, &t.host.as_policy_str(), t.port, &url_path(&url)),
        Err(m) => deny(m),
    };
    if d.verdict == Verdict::Ask {
        // The proxy holds the connection and asks; its answer is the outcome.
        d = Decision {
            verdict: Verdict::Allow,
            reason: format!("{}: the proxy holds the connection for the answer", d.reason),
            rule: d.rule,
        };
    }
    let argv = curl_argv(&method, headers.iter().flatten(), body.is_some(), &url);
    let body = body.map(String::into_bytes);
    let child = allowed(&d, || helper(policy, view, "curl", argv, body, HelperNet::Proxy));
    Plan { decision: d, target: Target::http_request(&url, Some(&method)), cwd: policy.vars.workspace.clone(), child }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_request_is_curls_head() {
        let headers = BTreeMap::from([("Accept".to_string(), "*/*".to_string())]);
        let argv = curl_argv("HEAD", headers.iter(), false, "https://a.test/x");
        assert_eq!(
            argv,
            [
                "curl",
                "-sS",
                "-i",
                "--suppress-connect-headers",
                "--head",
                "-H",
                "Accept: */*",
                "--",
                "https://a.test/x"
            ]
        );
        let argv = curl_argv("DELETE", std::iter::empty(), true, "https://a.test/x");
        assert_eq!(
            argv,
            [
                "curl",
                "-sS",
                "-i",
                "--suppress-connect-headers",
                "-X",
                "DELETE",
                "--data-binary",
                "@-",
                "--",
                "https://a.test/x"
            ]
        );
    }
}
