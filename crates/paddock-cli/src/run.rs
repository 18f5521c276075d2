//! `paddock run`: one call of a `run` session (decide, audit, confine, run), and what it
//! says on stderr.

use std::io::IsTerminal;
use std::sync::Arc;

use paddock::proxy::ConnectionEvent;
use paddock::{ConnectionObserver, Session, SessionConfig, SessionError};
use paddock_policy::{Enforcement, Policy};
use paddock_sandbox::{EnforcementReport, ExitKind, LayerState, SandboxError, StdioMode};

use crate::args::RunArgs;
use crate::exit;
use crate::setup::{current_dir, fail, load_policy_only};
use crate::state::{audit_file, revocations_file_if_any};

/// Runs `paddock run`; returns the exit code.
pub fn run(a: RunArgs, verbose: u8) -> i32 {
    let policy = match load_policy_only(&a.policy) {
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
    let (audit_log, revocations) =
        match audit_file(a.audit.as_deref()).and_then(|l| Ok((l, revocations_file_if_any()?))) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let max_output = policy.limits.max_output;
    let timeout = policy.limits.timeout;
    let on_connection: Option<ConnectionObserver> = (verbose > 0).then(|| {
        Arc::new(|e: &ConnectionEvent| {
            let addr = e.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
            eprintln!(
                "paddock: {} {}:{} -> {addr} {} by {} ({} up, {} down)",
                e.kind, e.host, e.port, e.verdict, e.rule, e.bytes_up, e.bytes_down
            );
        }) as ConnectionObserver
    });
    let cfg = SessionConfig { policy, audit_log: audit_log.clone(), revocations, mode: "run".into(), on_connection };
    // The log is opened before anything is decided or run: a call never runs unaudited.
    let session = match Session::new(cfg) {
        Ok(s) => s,
        Err(e @ SessionError::Policy(_)) => return fail(exit::CONFIG, e),
        Err(e) => {
            return fail(exit::INTERNAL, format_args!("{e} ({}); the call does not run unaudited", audit_log.display()))
        }
    };
    let stdio = if std::io::stdin().is_terminal() { StdioMode::Pty } else { StdioMode::Inherit };
    let result = match session.run(&a.argv, &here, stdio) {
        Ok(r) => r,
        Err(SessionError::NotFound { .. }) => {
            return fail(
                exit::NOT_FOUND,
                format_args!("{}: not found in the sandbox PATH ({})", a.argv[0], session.policy().sandbox_path()),
            );
        }
        Err(e @ SessionError::Sandbox(SandboxError::LayerUnavailable { .. })) => {
            eprintln!("paddock: {e}");
            eprintln!(
                "  hint: the policy's enforcement is strict, so paddock refuses to run without it; `paddock run --explain` lists this machine's layers, and [sandbox] enforcement = \"best-effort\" runs anyway and records what was missing"
            );
            return exit::UNAVAILABLE;
        }
        Err(e) => return fail(e.exit_code(), e),
    };
    let Some(outcome) = result.outcome else {
        let d = &result.decision;
        eprintln!("paddock: denied: {} ({})", d.reason, d.rule);
        eprintln!(
            "  hint: `paddock check -- {}` explains the decision; `paddock policy show` prints the policy",
            shell_words::join(&a.argv)
        );
        return exit::DENIED;
    };
    if verbose > 0 {
        print_report(&outcome.report);
    }
    for (name, truncated, bytes) in [
        ("stdout", outcome.stdout_truncated, outcome.stdout_bytes),
        ("stderr", outcome.stderr_truncated, outcome.stderr_bytes),
    ] {
        if truncated {
            eprintln!(
                "paddock: {name} truncated at max_output = {} ({bytes} bytes produced)",
                max_output.map(paddock_policy::format_size).unwrap_or_default()
            );
        }
    }
    if outcome.status == ExitKind::TimedOut {
        eprintln!(
            "paddock: timed out after {}: the whole process tree was killed",
            timeout.map(|t| format!("{t:?}")).unwrap_or_default()
        );
    }
    outcome.exit_code()
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
    let missing: Vec<&str> =
        r.layers.iter().filter(|l| l.state == LayerState::Unavailable).map(|l| l.name.as_str()).collect();
    let lacks = print_landlock(policy.enforcement);
    let verdict = match (r.first_missing(), policy.enforcement) {
        (None, Enforcement::Strict) if !lacks.is_empty() => {
            format!("a run would stop with exit 71: `landlock` lacks {}", lacks.join(", "))
        }
        (None, _) if missing.is_empty() => "every layer is available".to_string(),
        (None, _) => format!("a run goes ahead; optional layers missing: {}", missing.join(", ")),
        (Some(l), Enforcement::Strict) => format!("a run would stop with exit 71: `{}` is unavailable", l.name),
        (Some(_), Enforcement::BestEffort) => format!("a run would go ahead without: {}", missing.join(", ")),
    };
    println!("Policy enforcement: {} ({verdict})", policy.enforcement.as_str());
}

/// Prints what Landlock requires under `enforcement` on this kernel, for a run (its own
/// network namespace) and for a session's calls (a shared one); returns the rights a run
/// requires that this kernel lacks.
fn print_landlock(enforcement: Enforcement) -> Vec<&'static str> {
    let e = match enforcement {
        Enforcement::Strict => paddock_sandbox::Enforcement::Strict,
        Enforcement::BestEffort => paddock_sandbox::Enforcement::BestEffort,
    };
    let abi = paddock_sandbox::landlock_abi();
    println!("Landlock rights under {} (this kernel: ABI {abi}):", enforcement.as_str());
    let run = paddock_sandbox::landlock_needs(e, false);
    let call = paddock_sandbox::landlock_needs(e, true);
    for (r, c) in run.iter().zip(&call) {
        let level = match (r.required, c.required) {
            (true, _) => "required",
            (false, true) => "best effort for a run, required for a session's calls",
            (false, false) => "best effort",
        };
        let status = match (r.available, r.cover) {
            (true, _) => "available".to_string(),
            (false, Some(cover)) => format!("missing, covered in a run: {cover}"),
            (false, None) => "missing, not covered".to_string(),
        };
        println!("  {}: {level}; {status}", r.right);
    }
    if abi < paddock_sandbox::shared_netns_abi() {
        println!(
            "  a session's calls share a network namespace only from ABI {} on; here each gets a sandbox of its own",
            paddock_sandbox::shared_netns_abi()
        );
    }
    run.iter().filter(|n| n.required && !n.available).map(|n| n.right).collect()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
