//! `paddock audit verify` and `paddock audit review`.

use std::path::Path;

use paddock_audit::{Escaped, Revocations, Since};

use crate::args::ReviewArgs;
use crate::exit;
use crate::output;
use crate::setup::{fail, load_policy_only};
use crate::state::State;

/// Recomputes the chain: exit 0 intact (a torn last line is a warning), 1 broken.
pub fn verify(audit: Option<&Path>) -> i32 {
    let path = match State::new().audit_file(audit) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match paddock_audit::verify(&path) {
        Ok(report) => {
            // A broken line's description may quote what is on it: each line escaped.
            let text: Vec<String> = report.to_string().lines().map(|l| paddock_audit::escape(l).into_owned()).collect();
            if let Err(code) = output::println(text.join("\n")) {
                return code;
            }
            if report.is_intact() {
                exit::OK
            } else {
                exit::BROKEN
            }
        }
        Err(e) => fail(exit::INTERNAL, format_args!("cannot verify {}: {e}", path.display())),
    }
}

/// Says on stderr when the hash chain of the log at `path` is broken (or cannot be
/// checked): what a command reads from it may not be what was recorded. `audit review`
/// and `policy suggest` say it before anything else.
pub fn warn_if_chain_broken(path: &Path) {
    match paddock_audit::verify(path) {
        Ok(report) if !report.is_intact() => {
            let first = report.broken.as_ref().map(|b| b.to_string()).unwrap_or_default();
            eprintln!(
                "paddock: warning: this log's hash chain is broken, so what follows may not be what was recorded (broken at {})\n  hint: `paddock audit verify` says where",
                Escaped(&first)
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("paddock: warning: the log's chain could not be checked: {}", Escaped(&e.to_string())),
    }
}

/// Per grant: uses, first and last, the calls; grants never used; denied attempts;
/// connections by host.
pub fn review(a: ReviewArgs) -> i32 {
    let state = State::new();
    let policy = match load_policy_only(&a.policy, &state) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let since = match a.since.as_deref().map(Since::parse).transpose() {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, format_args!("--since: {e}")),
    };
    let (path, revs) = match (state.audit_file(a.audit.as_deref()), state.revocations_file()) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let revocations = match Revocations::load(&revs) {
        Ok(r) => r,
        Err(e) => return fail(exit::CONFIG, format_args!("revocation list: {e}")),
    };
    // A review reads what the log says; whether the log is what was written is the
    // chain's to tell, so a broken one is said first.
    warn_if_chain_broken(&path);
    match paddock_audit::review(&path, since, &policy.grant_ids()) {
        Ok(r) => {
            let r = r.with_revocations(revocations.entries());
            if let Some(file) = &a.html {
                if let Err(code) = write_html(&r, &path, since, file) {
                    return code;
                }
            }
            let printed = if a.json {
                match serde_json::to_string_pretty(&r) {
                    Ok(s) => output::println(s),
                    Err(e) => return fail(exit::INTERNAL, e),
                }
            } else {
                output::print(&r)
            };
            let denied = r.denied_calls + r.denied_connections;
            match printed {
                Err(code) => code,
                Ok(()) if a.fail_on_deny && denied > 0 => fail(
                    exit::DENIED,
                    format_args!(
                        "{} call(s) and {} connection(s) were denied (--fail-on-deny)",
                        r.denied_calls, r.denied_connections
                    ),
                ),
                Ok(()) => exit::OK,
            }
        }
        Err(e) => fail(exit::INTERNAL, format_args!("cannot review {}: {e}", path.display())),
    }
}

/// `--html FILE`: the review and its timeline as one self-contained page.
fn write_html(r: &paddock_audit::Review, log: &Path, since: Option<Since>, file: &Path) -> Result<(), i32> {
    let timeline = paddock_audit::review::timeline(log, since)
        .map_err(|e| fail(exit::INTERNAL, format_args!("cannot review {}: {e}", log.display())))?;
    let page = paddock_audit::review_html(r, &timeline);
    std::fs::write(file, page)
        .map_err(|e| fail(exit::INTERNAL, format_args!("cannot write {}: {e}", Escaped(&file.to_string_lossy()))))
}
