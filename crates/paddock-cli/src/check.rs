//! `paddock check`: decide one call and say why, without running anything.

use paddock_policy::{split_host_port, Decision, Verdict};

use crate::args::CheckArgs;
use crate::exit;
use crate::setup::{current_dir, fail, load_policy};

/// Runs `paddock check`; returns the exit code (0 allow, 77 deny).
pub fn run(a: CheckArgs) -> i32 {
    let policy = match load_policy(&a.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cwd = match current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let decision = if let Some(p) = &a.read {
        policy.check_read(p, &cwd)
    } else if let Some(p) = &a.write {
        policy.check_write(p, &cwd)
    } else if let Some(target) = &a.connect {
        match split_host_port(target) {
            Ok((host, port)) => policy.decide_connect(host, port.unwrap_or(443)),
            Err(m) => return fail(exit::USAGE, format_args!("--connect {target}: {m}")),
        }
    } else {
        policy.check_command(&a.argv, &cwd)
    };
    print(&decision, a.json);
    match decision.verdict {
        Verdict::Allow => exit::OK,
        Verdict::Deny => exit::DENIED,
    }
}

fn print(d: &Decision, json: bool) {
    if json {
        let v = serde_json::json!({ "decision": d.verdict.as_str(), "rule": &*d.rule, "reason": d.reason });
        println!("{v}");
    } else {
        println!("{}: {} ({})", d.verdict.as_str(), d.reason, d.rule);
    }
}
