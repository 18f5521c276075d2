//! `paddock revoke` and `paddock unrevoke`: the revocation list and its audit records.

use paddock_audit::{AuditLog, Escaped, Event, Revocations, Selector};
use paddock_policy::{Policy, Vars};

use crate::args::{RevokeArgs, UnrevokeArgs};
use crate::exit;
use crate::output;
use crate::setup::{current_dir, fail};
use crate::state::State;

const SELECTOR_HINT: &str = "selectors are command:PATTERN, path:PATH, network:HOST[:PORT], rule:RULE_ID or secret:NAME, e.g. `rule:commands.allow[2]`, `network:gist.github.com` or `secret:github`";

/// Parses a selector and checks that the policy engine can apply it (a pattern that does
/// not compile would be a revocation that never matches).
fn parse(s: &str) -> Result<Selector, i32> {
    let sel: Selector = s.parse().map_err(|e: paddock_audit::SelectorError| {
        eprintln!("paddock: {}", Escaped(&e.to_string()));
        eprintln!("  hint: {SELECTOR_HINT}");
        exit::USAGE
    })?;
    if let Selector::Rule(id) = &sel {
        if let Err(why) = paddock_policy::check_rule_id(id) {
            eprintln!("paddock: bad selector `{}`: {}", Escaped(s), Escaped(&why));
            eprintln!(
                "  hint: rule ids are {}; `paddock check` and the audit log name the rule of each decision",
                paddock_policy::REVOCABLE_RULES
            );
            return Err(exit::USAGE);
        }
    }
    let ws = current_dir()?;
    let mut probe = Policy::embedded_default(&Vars::from_env(ws)).map_err(|e| fail(exit::INTERNAL, e))?;
    probe.set_revocations(&[(paddock::revocation_of(&sel), None)], std::path::Path::new("<selector>")).map_err(
        |e| {
            let problem = e.problems.first();
            let msg = problem.map(|p| p.message.clone()).unwrap_or_default();
            eprintln!("paddock: bad selector `{}`: {}", Escaped(s), Escaped(&msg));
            eprintln!("  hint: {}", problem.and_then(|p| p.hint.as_deref()).unwrap_or(SELECTOR_HINT));
            exit::USAGE
        },
    )?;
    Ok(sel)
}

fn load(state: &State) -> Result<Revocations, i32> {
    let path = state.revocations_file()?;
    Revocations::load(&path).map_err(|e| fail(exit::CONFIG, format_args!("revocation list: {e}")))
}

fn log(state: &State, audit: Option<&std::path::Path>, event: &Event) -> Result<(), i32> {
    let path = state.audit_file(audit)?;
    let log =
        AuditLog::open(&path).map_err(|e| fail(exit::INTERNAL, format_args!("audit log {}: {e}", path.display())))?;
    log.append_durable(event)
        .map(drop)
        .map_err(|e| fail(exit::INTERNAL, format_args!("audit log {}: {e}", path.display())))
}

/// `paddock revoke SELECTOR [--reason TEXT]` and `paddock revoke --list`.
pub fn revoke(a: RevokeArgs) -> i32 {
    let state = State::new();
    let mut list = match load(&state) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if a.list {
        let mut text = String::new();
        if list.entries().is_empty() {
            text = format!("no revocations in force ({})\n", Escaped(&list.path().to_string_lossy()));
        }
        for r in list.entries() {
            let (sel, ts) = (r.selector.to_string(), Escaped(&r.ts));
            match &r.reason {
                Some(why) => text += &format!("{}\t{ts}\t{}\n", Escaped(&sel), Escaped(why)),
                None => text += &format!("{}\t{ts}\n", Escaped(&sel)),
            }
        }
        return output::print(text).err().unwrap_or(exit::OK);
    }
    let Some(raw) = a.selector.as_deref() else { return fail(exit::USAGE, "revoke needs a SELECTOR or --list") };
    let sel = match parse(raw) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let shown = sel.to_string();
    if !list.add(sel.clone(), a.reason.clone()) {
        return output::println(format_args!("{} is already revoked", Escaped(&shown))).err().unwrap_or(exit::OK);
    }
    if let Err(e) = list.save() {
        return fail(exit::INTERNAL, format_args!("cannot write {}: {e}", list.path().display()));
    }
    if let Err(code) = log(&state, a.audit.as_deref(), &Event::revoke(sel.clone(), a.reason)) {
        return code;
    }
    if let Selector::Command(p) = &sel {
        // A pattern is a program and one glob per argument: a bare program matches the
        // program run with no argument only, which is rarely what is meant.
        if shell_words::split(p).is_ok_and(|w| w.len() == 1) {
            eprintln!(
                "paddock: note: `command:{}` covers `{}` run with no arguments only; `paddock revoke 'command:{} **'` covers every call of it",
                Escaped(p),
                Escaped(p),
                Escaped(p)
            );
        }
    }
    let shown = Escaped(&shown);
    output::println(format_args!(
        "revoked {shown}: every later decision denies what it covers (`paddock unrevoke {shown}` withdraws it)"
    ))
    .err()
    .unwrap_or(exit::OK)
}

/// `paddock unrevoke SELECTOR`.
pub fn unrevoke(a: UnrevokeArgs) -> i32 {
    let sel: Selector = match a.selector.parse() {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, Escaped(&e.to_string())),
    };
    let state = State::new();
    let mut list = match load(&state) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if !list.remove(&sel) {
        return fail(
            exit::USAGE,
            format_args!("{sel} is not revoked; `paddock revoke --list` shows the revocations in force"),
        );
    }
    if let Err(e) = list.save() {
        return fail(exit::INTERNAL, format_args!("cannot write {}: {e}", list.path().display()));
    }
    if let Err(code) = log(&state, a.audit.as_deref(), &Event::unrevoke(sel.clone(), None)) {
        return code;
    }
    output::println(format_args!("unrevoked {}", Escaped(&sel.to_string()))).err().unwrap_or(exit::OK)
}
