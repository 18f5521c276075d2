//! `paddock run`: decide the call, build the sandbox spec from the policy, run, report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use paddock_policy::{Enforcement, Policy};
use paddock_audit::{AuditLog, Call, CallOutcome, Decision, Event, Target};
use paddock_sandbox::{EnforcementReport, ExitKind, LayerState, NetworkMode, SandboxError, SandboxSpec, StdioMode};

use crate::args::RunArgs;
use crate::exit;
use crate::setup::{current_dir, fail, load_policy};
use crate::state::audit_file;

/// How many directory entries one deny glob may visit when it is expanded at start.
const DENY_WALK_LIMIT: usize = 200_000;

/// Runs `paddock run`; returns the exit code.
pub fn run(a: RunArgs, verbose: u8) -> i32 {
    let policy = match load_policy(&a.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.explain {
        print_explain(&policy, &paddock_sandbox::probe());
        return exit::OK;
    }
    let here = match current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    // The log is opened before anything is decided or run: a call never runs unaudited.
    let log = match audit_file(a.audit.as_deref()).and_then(|p| {
        AuditLog::open(&p).map_err(|e| fail(exit::INTERNAL, format_args!("cannot open the audit log {}: {e}; the call does not run unaudited", p.display())))
    }) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let decision = policy.check_command(&a.argv, &here);
    let call = Call::new(new_id("c"), new_id("run"), Target::command(&a.argv), if decision.is_allow() { Decision::Allow } else { Decision::Deny })
        .with_cwd(&here)
        .with_rule(&*decision.rule)
        .with_reason(&decision.reason)
        .with_policy_hash(policy.hash());
    let audited = |event: &Event, durable: bool| {
        let r = if durable { log.append_durable(event) } else { log.append(event) };
        r.map(drop).map_err(|e| fail(exit::INTERNAL, format_args!("audit log {}: {e}", log.path().display())))
    };
    if !decision.is_allow() {
        if let Err(code) = audited(&call.start(), true) {
            return code;
        }
        eprintln!("paddock: denied: {} ({})", decision.reason, decision.rule);
        eprintln!("  hint: `paddock check -- {}` explains the decision; `paddock policy show` prints the policy", shell_words::join(&a.argv));
        return exit::DENIED;
    }
    let not_run = |code: i32| audited(&call.start(), true).and_then(|()| audited(&call.end(CallOutcome::exited(code)), false));
    let Some(program) = policy.resolve_program(&a.argv[0], &here) else {
        let _ = not_run(exit::NOT_FOUND);
        return fail(exit::NOT_FOUND, format_args!("{}: not found in the sandbox PATH ({})", a.argv[0], policy.sandbox_path()));
    };
    let spec = build_spec(&policy, program, a.argv.clone(), &here);
    let running = match paddock_sandbox::spawn(&spec) {
        Ok(r) => r,
        Err(e) => {
            let code = if matches!(e, SandboxError::LayerUnavailable { .. }) { exit::UNAVAILABLE } else { e.exit_code() };
            let _ = not_run(code);
            eprintln!("paddock: {e}");
            if code == exit::UNAVAILABLE {
                eprintln!(
                    "  hint: the policy's enforcement is strict, so paddock refuses to run without it; `paddock run --explain` lists this machine's layers, and [sandbox] enforcement = \"best-effort\" runs anyway and records what was missing"
                );
            }
            return code;
        }
    };
    // Every layer is in place and the child is parked before exec: record the call, with
    // what was enforced, durably, then let it run.
    // (`call.end` repeats the call's fields; the report, large, stays on `call.start`.)
    let started = call.clone().with_enforcement(serde_json::to_value(running.report()).unwrap_or_default());
    if let Err(code) = audited(&started.start(), true) {
        return code; // dropping `running` kills the parked child
    }
    let outcome = match running.wait() {
        Ok(o) => o,
        Err(e) => {
            let _ = audited(&call.end(CallOutcome::exited(exit::INTERNAL)), false);
            return fail(e.exit_code(), e);
        }
    };
    let ended = match outcome.status {
        ExitKind::Exited(c) => CallOutcome::exited(c),
        ExitKind::Signaled(n) => CallOutcome::signaled(n),
        ExitKind::TimedOut => CallOutcome::exited(outcome.exit_code()).with_timed_out(true),
    };
    let truncated = outcome.stdout_truncated || outcome.stderr_truncated;
    let ended = ended.with_duration_ms(outcome.duration.as_millis() as u64).with_output(outcome.stdout_bytes, outcome.stderr_bytes, truncated);
    if let Err(code) = audited(&call.end(ended), false) {
        return code;
    }
    if verbose > 0 {
        print_report(&outcome.report);
    }
    for (name, truncated, bytes) in [("stdout", outcome.stdout_truncated, outcome.stdout_bytes), ("stderr", outcome.stderr_truncated, outcome.stderr_bytes)] {
        if truncated {
            eprintln!(
                "paddock: {name} truncated at max_output = {} ({bytes} bytes produced)",
                policy.limits.max_output.map(paddock_policy::format_size).unwrap_or_default()
            );
        }
    }
    if outcome.status == ExitKind::TimedOut {
        let t = policy.limits.timeout.map(|t| format!("{t:?}")).unwrap_or_default();
        eprintln!("paddock: timed out after {t}: the whole process tree was killed");
    }
    outcome.exit_code()
}

/// A unique id for a call or a session: time and pid.
fn new_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{:x}-{:x}", nanos, std::process::id())
}

/// The sandbox spec for one call, from the policy.
pub fn build_spec(policy: &Policy, program: PathBuf, argv: Vec<String>, here: &Path) -> SandboxSpec {
    let fs = &policy.filesystem;
    let mut spec = SandboxSpec::new(program, argv);
    // Symlinked entries (`/bin` -> `/usr/bin`) go in as written too, so the link exists
    // inside the sandbox; the sandbox binds the target.
    let paths = |rules: &[paddock_policy::PathRule]| {
        let mut v: Vec<PathBuf> = Vec::new();
        for r in rules {
            for p in [&r.expanded, &r.path] {
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
        }
        v
    };
    spec.read_paths = paths(&fs.read);
    spec.write_paths = paths(&fs.write);
    let (deny, cut) = fs.expand_deny(DENY_WALK_LIMIT);
    if cut {
        tracing::warn!("a deny glob's expansion stopped after {DENY_WALK_LIMIT} entries: files past that are not masked by the mount view");
    }
    spec.deny_paths = deny;
    // The working directory: the caller's if the policy lets the sandbox see it, else the
    // workspace, else `/`.
    let ws = &policy.vars.workspace;
    spec.cwd = [here, ws.as_path()]
        .into_iter()
        .find(|d| policy.check_read(d, d).is_allow())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    spec.env = policy.env.child_env(std::env::vars());
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        spec.env.push(("PATH".into(), policy.sandbox_path().to_string()));
    }
    spec.enforcement = match policy.enforcement {
        Enforcement::Strict => paddock_sandbox::Enforcement::Strict,
        Enforcement::BestEffort => paddock_sandbox::Enforcement::BestEffort,
    };
    spec.network = NetworkMode::None;
    if policy.network.any_allowed() {
        tracing::warn!("[network] allow entries need the egress proxy, which this build does not have yet: the sandbox gets no network");
    }
    let l = &policy.limits;
    spec.limits = paddock_sandbox::Limits {
        timeout: l.timeout,
        max_output: l.max_output,
        max_processes: l.max_processes,
        max_memory: l.max_memory,
        max_open_files: l.max_open_files,
    };
    spec.stdio = if std::io::stdin().is_terminal() { StdioMode::Pty } else { StdioMode::Inherit };
    spec
}

fn state_str(s: LayerState) -> &'static str {
    match s {
        LayerState::Enforced => "enforced",
        LayerState::Partial => "partial",
        LayerState::Unavailable => "unavailable",
    }
}

fn print_report(r: &EnforcementReport) {
    eprintln!("paddock: enforcement report");
    for l in &r.layers {
        eprintln!("  {:<13} {:<11} {}", l.name, state_str(l.state), l.detail);
    }
}

fn print_explain(policy: &Policy, r: &EnforcementReport) {
    println!("Confinement layers on this machine (kernel {}):", kernel_release());
    for l in &r.layers {
        println!("  {:<13} {:<11} {}", l.name, state_str(l.state), l.detail);
    }
    let missing: Vec<&str> = r.layers.iter().filter(|l| l.state == LayerState::Unavailable).map(|l| l.name.as_str()).collect();
    let verdict = match (r.first_missing(), policy.enforcement) {
        (None, _) if missing.is_empty() => "every layer is available".to_string(),
        (None, _) => format!("a run goes ahead; optional layers missing: {}", missing.join(", ")),
        (Some(l), Enforcement::Strict) => format!("a run would stop with exit 71: `{}` is unavailable", l.name),
        (Some(_), Enforcement::BestEffort) => format!("a run would go ahead without: {}", missing.join(", ")),
    };
    println!("Policy enforcement: {} ({verdict})", policy.enforcement.as_str());
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}
