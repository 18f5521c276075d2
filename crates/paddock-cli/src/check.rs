//! `paddock check`: decide one call and say why, without running anything.
//!
//! `--connect` gives the proxy's own verdict (`paddock::decide_connection`): the policy by
//! name, then the address the name resolves to (the `[network.hosts]` pin, else DNS) and
//! its class against `allow_private`; so a host that the policy names but that resolves to
//! a private address is a denial here as it is in a run, and a name that does not resolve
//! is said to.

use std::sync::Arc;

use paddock_audit::Escaped;
use paddock_policy::{Decision, Verdict};

use crate::args::CheckArgs;
use crate::exit;
use crate::output;
use crate::setup::{current_dir, load_policy};

/// Runs `paddock check`; returns the exit code (0 allow, 77 deny).
pub fn run(a: CheckArgs) -> i32 {
    // A target that can never be a host is a usage error, before any policy is read.
    let target = match a.connect.as_deref().map(|t| (t, parse_target(t))) {
        None => None,
        Some((_, Ok(t))) => Some(t),
        Some((raw, Err(e))) => {
            eprintln!("paddock: --connect {}: {}", Escaped(raw), Escaped(&e.to_string()));
            eprintln!("  hint: --connect takes HOST[:PORT]: a DNS name or an IP literal (`[::1]:8080` for IPv6), port 443 when omitted");
            return exit::USAGE;
        }
    };
    let request = match a.http.as_deref().map(|r| (r, crate::check_http::parse(r))) {
        None => None,
        Some((_, Ok(r))) => Some(r),
        Some((raw, Err(e))) => {
            eprintln!("paddock: --http {}: {}", Escaped(raw), Escaped(&e));
            eprintln!("  hint: --http takes 'METHOD URL', e.g. 'GET https://api.github.com/repos/acme/x' (GET when only a URL)");
            return exit::USAGE;
        }
    };
    let policy = match load_policy(&a.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cwd = match current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (decision, extra) = if let Some(p) = &a.read {
        (policy.check_read(p, &cwd), Extra::default())
    } else if let Some(p) = &a.write {
        (policy.check_write(p, &cwd), Extra::default())
    } else if let Some(target) = target.as_ref().filter(|t| asks(&policy, t)) {
        // A person would be asked: said without waiting.
        (policy.decide_connect(&target.host.as_policy_str(), target.port), Extra::default())
    } else if let Some(r) = &request {
        let c = crate::check_http::decide(Arc::new(policy), r);
        if a.json {
            if let Err(code) = output::println(c.json()) {
                return code;
            }
        } else if let Err(code) = output::println(c.human()) {
            return code;
        }
        return match c.decision.verdict {
            Verdict::Allow => exit::OK,
            Verdict::Deny | Verdict::Ask => exit::DENIED,
        };
    } else if let Some(target) = &target {
        let c = paddock::decide_connection(&Arc::new(policy), target);
        (c.decision, Extra { address: c.address.map(|a| a.to_string()), hint: c.hint })
    } else {
        (policy.check_runnable(&a.argv, &cwd), Extra::default())
    };
    if let Err(code) = print(&decision, &extra, a.json) {
        return code;
    }
    match decision.verdict {
        Verdict::Allow => exit::OK,
        // Not allowed unless a person says so when it runs.
        Verdict::Deny | Verdict::Ask => exit::DENIED,
    }
}

fn asks(policy: &paddock_policy::Policy, t: &paddock::proxy::Target) -> bool {
    policy.decide_connect(&t.host.as_policy_str(), t.port).verdict == Verdict::Ask
}

/// `HOST[:PORT]` as the proxy reads a CONNECT target (port 443 when omitted); a bare IPv6
/// literal (`::1`) is taken as `[::1]`.
fn parse_target(t: &str) -> Result<paddock::proxy::Target, paddock::proxy::TargetError> {
    if t.parse::<std::net::Ipv6Addr>().is_ok() {
        return paddock::proxy::parse_authority(&format!("[{t}]"), Some(443));
    }
    paddock::proxy::parse_authority(t, Some(443))
}

/// What `--connect` adds for a person: the address, and the policy line that would allow
/// a denial by name (a refusal by address class has it in its reason already).
#[derive(Default)]
struct Extra {
    address: Option<String>,
    hint: Option<String>,
}

/// `--json` is exactly `{"decision","rule","reason"}`; the human form adds the address
/// and the hint.
fn print(d: &Decision, x: &Extra, json: bool) -> Result<(), i32> {
    if json {
        let v = serde_json::json!({ "decision": d.verdict.as_str(), "rule": &*d.rule, "reason": d.reason });
        return output::println(v);
    }
    let mut line = format!("{}: {} ({})", d.verdict.as_str(), Escaped(&d.reason), Escaped(&d.rule));
    if let Some(a) = &x.address {
        line += &format!("; address {a}");
    }
    // The policy's reason for a default denial, and a refusal by address, already say
    // which line would allow it.
    if let Some(h) = x.hint.as_ref().filter(|_| !d.reason.contains("to [network] allow")) {
        line += &format!("\n  hint: {}", Escaped(h));
    }
    output::println(line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_hosts_do_not_parse() {
        for bad in ["bad host!", "a b:443", "", ":443", "x:0", "x:99999", "a.com:x"] {
            assert!(super::parse_target(bad).is_err(), "{bad}");
        }
        for good in ["pypi.org", "[::1]:8080", "::1", "10.0.0.1:22"] {
            assert!(super::parse_target(good).is_ok(), "{good}");
        }
        assert_eq!(super::parse_target("::1").unwrap().port, 443);
    }
}
