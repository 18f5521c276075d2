//! `$STATE`: the audit log and the revocation list, and how they reach the policy.

use std::path::{Path, PathBuf};

use paddock_audit::{AuditError, Escaped, Revocations};
use paddock_policy::Policy;

use crate::exit::{self, fail};

/// `$STATE` (`$PADDOCK_STATE_DIR`, `$XDG_STATE_HOME/paddock`, `~/.local/state/paddock`),
/// created 0700.
fn state_dir() -> Result<PathBuf, i32> {
    paddock_audit::state_dir().map_err(|e| match e {
        paddock_audit::AuditError::NoStateDir => {
            fail(exit::USAGE, "no state directory: set PADDOCK_STATE_DIR, XDG_STATE_HOME or HOME")
        }
        e @ (paddock_audit::AuditError::RelativeStateDir { .. }
        | paddock_audit::AuditError::UntrustedStateDir { .. }) => fail(exit::CONFIG, e),
        e => fail(exit::INTERNAL, format_args!("cannot create the state directory: {e}")),
    })
}

/// `$STATE/revocations.toml` (the directory is created 0700).
pub fn revocations_file() -> Result<PathBuf, i32> {
    state_dir().map(|d| paddock_audit::revocations_path(&d))
}

/// `$STATE/revocations.toml`, or `None` when there is no state directory at all (then
/// nothing can have been revoked: `paddock revoke` needs one too). A state directory that
/// exists but cannot be used is an error: revocations are never silently ignored.
pub fn revocations_file_if_any() -> Result<Option<PathBuf>, i32> {
    Ok(state_dir_if_any()?.map(|d| paddock_audit::revocations_path(&d)))
}

/// `$STATE`, or `None` when there is no state directory at all; a state directory that
/// exists but cannot be used is an error (as for [`revocations_file_if_any`]).
pub fn state_dir_if_any() -> Result<Option<PathBuf>, i32> {
    match paddock_audit::state_dir() {
        Ok(d) => Ok(Some(d)),
        Err(paddock_audit::AuditError::NoStateDir) => Ok(None),
        Err(e) => Err(fail(exit::CONFIG, format_args!("state directory: {e}; set PADDOCK_STATE_DIR"))),
    }
}

/// `$STATE/placeholder-seed`, which keeps each secret's placeholder the same from one
/// session to the next; `None` without a state directory (new placeholders each time).
pub fn placeholder_seed() -> Option<PathBuf> {
    state_dir_if_any().ok().flatten().map(|d| d.join("placeholder-seed"))
}

/// The audit log: `--audit`, else `$STATE/audit.jsonl` (the directory is created 0700).
pub fn audit_file(arg: Option<&Path>) -> Result<PathBuf, i32> {
    match arg {
        Some(p) => Ok(p.to_path_buf()),
        None => state_dir().map(|d| paddock_audit::audit_log_path(&d)),
    }
}

/// Loads `$STATE/revocations.toml` (absent: none) into `policy`. A list that cannot be read
/// or compiled stops the command: revocations are never silently ignored.
pub fn apply_revocations(policy: &mut Policy) -> Result<(), i32> {
    let Some(path) = revocations_file_if_any()? else { return Ok(()) };
    let list = Revocations::load(&path).map_err(|e| fail(exit::CONFIG, format_args!("revocation list: {e}")))?;
    paddock::apply_revocations(policy, &list).map_err(|e| {
        exit::eprint_lines(e);
        exit::CONFIG
    })
}

/// Reads the revocation list (if any) once before a session starts: a list that cannot be
/// read or parsed stops the command with 78, named as the revocation list it is.
pub fn check_revocation_list(path: Option<&Path>) -> Result<(), i32> {
    match path.map(Revocations::load) {
        Some(Err(e)) => Err(revocation_list_error(path.unwrap_or(Path::new("")), &e)),
        _ => Ok(()),
    }
}

/// A revocation list that cannot be read or parsed: 78, with what to do about it.
pub fn revocation_list_error(path: &Path, e: &AuditError) -> i32 {
    eprintln!("paddock: revocation list: {}", Escaped(&e.to_string()));
    eprintln!(
        "  hint: nothing runs while {} cannot be read: fix it, or move it aside to drop every revocation (`paddock revoke --list` reads it)",
        Escaped(&path.to_string_lossy())
    );
    exit::CONFIG
}

/// Loads `$STATE/approved.toml` (absent: none), the answers given "always", into
/// `policy` as its approved layer. A list that cannot be read or compiled stops the
/// command with 78, located: it is a policy layer.
pub fn apply_approved(policy: &mut Policy) -> Result<(), i32> {
    // Without a usable state directory there is no list: nothing is allowed by it, and
    // what it denied "always" is asked again; the command says what is wrong with
    // `$STATE` where it needs it (the audit log, the revocation list).
    let Ok(dir) = paddock_audit::state_dir() else { return Ok(()) };
    policy.load_approved(&dir.join(paddock::approvals::APPROVED_FILE)).map_err(|e| {
        crate::setup::eprint_lines(e);
        eprintln!("  hint: this is the list of answers given \"always\" (`paddock policy show` lists it); fix it, or move it aside to drop them all");
        exit::CONFIG
    })
}

/// Lets `session` ask a person (questions in `$STATE/approvals/`); without a state
/// directory an ask is a denial.
pub fn enable_approvals(session: &paddock::Session) -> Result<Option<std::sync::Arc<paddock::approvals::Broker>>, i32> {
    let Some(dir) = state_dir_if_any()? else { return Ok(None) };
    session.enable_approvals(&dir).map(Some).map_err(|e| {
        fail(exit::INTERNAL, format_args!("{}: {e}", dir.join(paddock::approvals::APPROVALS_DIR).display()))
    })
}
