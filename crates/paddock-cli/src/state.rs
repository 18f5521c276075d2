//! `$STATE`: the audit log and the revocation list, and how they reach the policy.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use paddock_audit::{AuditError, Escaped, Revocations};
use paddock_policy::Policy;

use crate::exit::{self, fail};

/// `$STATE` (`$PADDOCK_STATE_DIR`, `$XDG_STATE_HOME/paddock`, `~/.local/state/paddock`) for
/// one command: resolved, created 0700 and checked ([`paddock_audit::state_dir`]) when it is
/// first needed, then that answer for the rest of the command. A command makes one and
/// passes it down, so that `run` does not resolve and check `$STATE` a dozen times; a
/// long-lived command (`serve`, `mcp`) uses it only while it starts (its session's calls
/// resolve `$STATE` themselves).
#[derive(Default)]
pub struct State {
    resolved: OnceCell<Result<PathBuf, AuditError>>,
}

impl State {
    /// A `$STATE` not resolved yet: nothing is touched until it is first asked for.
    pub fn new() -> State {
        State::default()
    }

    /// What [`paddock_audit::state_dir`] said, asked once.
    fn resolved(&self) -> &Result<PathBuf, AuditError> {
        self.resolved.get_or_init(paddock_audit::state_dir)
    }

    /// `$STATE`, or the failure code (said on stderr): 64 without any, 78 when it is
    /// relative or not this user's alone, else 125.
    pub fn dir(&self) -> Result<&Path, i32> {
        match self.resolved() {
            Ok(d) => Ok(d),
            Err(AuditError::NoStateDir) => {
                Err(fail(exit::USAGE, "no state directory: set PADDOCK_STATE_DIR, XDG_STATE_HOME or HOME"))
            }
            Err(e @ (AuditError::RelativeStateDir { .. } | AuditError::UntrustedStateDir { .. })) => {
                Err(fail(exit::CONFIG, e))
            }
            Err(e) => {
                let named = match std::env::var_os("PADDOCK_STATE_DIR") {
                    Some(_) => " (PADDOCK_STATE_DIR names it: point it at a directory this user can create or own)",
                    None => " (set PADDOCK_STATE_DIR to a directory this user can create or own)",
                };
                Err(fail(exit::INTERNAL, format_args!("cannot create the state directory: {e}{named}")))
            }
        }
    }

    /// `$STATE`, or `None` when there is no state directory at all; one that cannot be
    /// used is the error [`State::dir`] gives (the same code and words for every command).
    pub fn dir_if_any(&self) -> Result<Option<&Path>, i32> {
        match self.resolved() {
            Err(AuditError::NoStateDir) => Ok(None),
            _ => self.dir().map(Some),
        }
    }

    /// `$STATE` when there is a usable one, else `None`, nothing said.
    pub fn usable(&self) -> Option<&Path> {
        self.resolved().as_ref().ok().map(PathBuf::as_path)
    }

    /// `$STATE`, or why there is no usable one (for a command's own message).
    pub fn result(&self) -> Result<&Path, &AuditError> {
        self.resolved().as_ref().map(PathBuf::as_path)
    }

    /// `$STATE/revocations.toml` (the directory is created 0700).
    pub fn revocations_file(&self) -> Result<PathBuf, i32> {
        self.dir().map(paddock_audit::revocations_path)
    }

    /// `$STATE/revocations.toml`, or `None` when there is no state directory at all (then
    /// nothing can have been revoked: `paddock revoke` needs one too). A state directory
    /// that exists but cannot be used is an error: revocations are never silently ignored.
    pub fn revocations_file_if_any(&self) -> Result<Option<PathBuf>, i32> {
        Ok(self.dir_if_any()?.map(paddock_audit::revocations_path))
    }

    /// `$STATE/placeholder-seed`, which keeps each secret's placeholder the same from one
    /// session to the next; `None` without a state directory (new placeholders each time).
    pub fn placeholder_seed(&self) -> Option<PathBuf> {
        self.dir_if_any().ok().flatten().map(|d| d.join("placeholder-seed"))
    }

    /// The audit log: `--audit`, else `$STATE/audit.jsonl` (the directory is created 0700).
    pub fn audit_file(&self, arg: Option<&Path>) -> Result<PathBuf, i32> {
        match arg {
            Some(p) => Ok(p.to_path_buf()),
            None => self.dir().map(paddock_audit::audit_log_path),
        }
    }

    /// Loads `$STATE/revocations.toml` (absent: none) into `policy`. A list that cannot be
    /// read or compiled stops the command: revocations are never silently ignored.
    pub fn apply_revocations(&self, policy: &mut Policy) -> Result<(), i32> {
        let Some(path) = self.revocations_file_if_any()? else { return Ok(()) };
        let list = Revocations::load(&path).map_err(|e| fail(exit::CONFIG, format_args!("revocation list: {e}")))?;
        paddock::apply_revocations(policy, &list).map_err(|e| {
            exit::eprint_lines(e);
            exit::CONFIG
        })
    }

    /// Loads `$STATE/approved.toml` (absent: none), the answers given "always", into
    /// `policy` as its approved layer. A list that cannot be read or compiled stops the
    /// command with 78, located: it is a policy layer.
    pub fn apply_approved(&self, policy: &mut Policy) -> Result<(), i32> {
        // Without a usable state directory there is no list: nothing is allowed by it, and
        // what it denied "always" is asked again; the command says what is wrong with
        // `$STATE` where it needs it (the audit log, the revocation list).
        let Some(dir) = self.usable() else { return Ok(()) };
        policy.load_approved(&dir.join(paddock::approvals::APPROVED_FILE)).map_err(|e| {
            crate::setup::eprint_lines(e);
            eprintln!("  hint: this is the list of answers given \"always\" (`paddock policy show` lists it); fix it, or move it aside to drop them all");
            exit::CONFIG
        })
    }

    /// Lets `session` ask a person (questions in `$STATE/approvals/`); without a state
    /// directory an ask is a denial.
    pub fn enable_approvals(
        &self,
        session: &paddock::Session,
    ) -> Result<Option<std::sync::Arc<paddock::approvals::Broker>>, i32> {
        let Some(dir) = self.dir_if_any()? else { return Ok(None) };
        session.enable_approvals(dir).map(Some).map_err(|e| {
            fail(exit::INTERNAL, format_args!("{}: {e}", dir.join(paddock::approvals::APPROVALS_DIR).display()))
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets `PADDOCK_STATE_DIR` for the closure (no other test of this binary reads it).
    fn with_state_dir<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("PADDOCK_STATE_DIR", dir);
        let r = f();
        std::env::remove_var("PADDOCK_STATE_DIR");
        r
    }

    #[test]
    fn resolved_and_checked_once_then_the_same_answer() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        with_state_dir(&dir, || {
            let state = State::new();
            // Nothing is touched until it is asked for.
            assert!(!dir.exists());
            assert_eq!(state.dir().unwrap(), dir);
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
            // Made group-writable afterwards: this command keeps the answer it checked...
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
            assert_eq!(state.audit_file(None).unwrap(), dir.join("audit.jsonl"));
            // ...while the next command checks again and refuses it (78).
            let next = State::new();
            assert_eq!(next.dir().unwrap_err(), exit::CONFIG);
            assert_eq!(next.dir_if_any().unwrap_err(), exit::CONFIG);
            assert!(next.usable().is_none());
            let e = next.result().unwrap_err().to_string();
            assert!(e.contains("may write"), "{e}");
        });
    }

    #[test]
    fn a_symlink_is_refused_on_first_use() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        with_state_dir(&link, || {
            let state = State::new();
            assert_eq!(state.dir().unwrap_err(), exit::CONFIG);
            assert_eq!(state.revocations_file_if_any().unwrap_err(), exit::CONFIG);
            assert!(state.placeholder_seed().is_none());
            let e = state.result().unwrap_err().to_string();
            assert!(e.contains("symlink"), "{e}");
        });
    }
}
