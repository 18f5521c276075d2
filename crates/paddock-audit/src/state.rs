//! Where paddock keeps its state: `$STATE`.
//!
//! `$STATE` is `$PADDOCK_STATE_DIR`, else `$XDG_STATE_HOME/paddock`, else
//! `~/.local/state/paddock`. Empty variables count as unset, and so does a
//! relative `XDG_STATE_HOME` (the XDG spec says to ignore it). Directories
//! this crate creates are mode 0700; existing ones are left as they are.
//!
//! One fallback: when `$STATE` comes from `HOME` (neither variable is set) and that
//! home is not ours to write (a process whose uid was changed without its
//! environment, such as `setpriv --reuid=65534` under root's `HOME=/root`),
//! `$STATE` is `$TMPDIR/paddock-UID/state` instead, a directory that must be ours,
//! mode 0700 and not a symlink; a warning names it, once per state directory (a marker
//! file, `fallback-warned`, records that it was given). A `$STATE` named explicitly is
//! never replaced: failing to create it is an error.
//!
//! `$STATE` must be a directory of this user's that no one else may write, and not a
//! symlink ([`check_private_dir`]); `PADDOCK_STATE_DIR` must be absolute. The files in it
//! are opened without following a symlink: a state directory a sandboxed call could once
//! write (it lay under a write grant) holds no link paddock then writes through.

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// File name of the audit log inside `$STATE`.
pub const AUDIT_LOG_FILE: &str = "audit.jsonl";
/// File name of the revocation list inside `$STATE`.
pub const REVOCATIONS_FILE: &str = "revocations.toml";

/// Resolves `$STATE` from the process environment and creates it (0700), with the
/// fallback the module doc describes.
pub fn state_dir() -> Result<PathBuf, AuditError> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = env("PADDOCK_STATE_DIR").filter(|v| !Path::new(v).is_absolute()) {
        return Err(AuditError::RelativeStateDir { value: v.to_string_lossy().into_owned() });
    }
    let dir = resolve_state_dir(|k| std::env::var_os(k)).ok_or(AuditError::NoStateDir)?;
    match create_private_dir(&dir) {
        // One that exists but is not this user's alone is refused, not replaced.
        Ok(()) => check_private_dir(&dir).map(|()| dir),
        Err(e) if env("PADDOCK_STATE_DIR").is_none() && env("XDG_STATE_HOME").is_none() => {
            let fallback = fallback_state_dir().map_err(|_| e)?;
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                if first_use_of_fallback(&fallback) {
                    tracing::warn!(
                        home_state = %dir.display(),
                        state = %fallback.display(),
                        "the home directory is not writable by this user: paddock's state (audit log, revocations) is in the fallback directory; set PADDOCK_STATE_DIR to choose (said once per state directory)"
                    )
                }
            });
            Ok(fallback)
        }
        Err(e) => Err(e),
    }
}

/// `$TMPDIR/paddock-UID/state`, created 0700; the parent must be a real directory of
/// this user's with no access for others.
fn fallback_state_dir() -> Result<PathBuf, AuditError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = effective_uid();
    let base = std::env::temp_dir().join(format!("paddock-{uid}"));
    match DirBuilder::new().mode(0o700).create(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(AuditError::io(&base, "create directory", e)),
    }
    let meta = std::fs::symlink_metadata(&base).map_err(|e| AuditError::io(&base, "inspect", e))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        let e = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not a private directory of this user");
        return Err(AuditError::io(&base, "use", e));
    }
    let dir = base.join("state");
    create_private_dir(&dir)?;
    check_private_dir(&dir)?;
    Ok(dir)
}

/// Name of the marker file in a fallback `$STATE` that says its warning was given.
pub const FALLBACK_WARNED_FILE: &str = "fallback-warned";

/// Whether this is the first use of the fallback `$STATE` `dir` (the warning is given
/// once per state directory, not on every command): creates the marker file, and says
/// yes unless it already existed. A marker that cannot be made keeps the warning coming.
fn first_use_of_fallback(dir: &Path) -> bool {
    let marker = dir.join(FALLBACK_WARNED_FILE);
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&marker) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            tracing::debug!(marker = %marker.display(), "cannot record that the fallback warning was given: {e}");
            true
        }
    }
}

/// Opens a state file for writing, creating it with mode 0600 and never through a symlink
/// (`O_NOFOLLOW`): with `truncate` a temporary copy to be renamed into place, without it a
/// lock file (also readable).
pub fn open_private(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(!truncate)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The effective uid (`geteuid`, which cannot fail). It was read from `/proc/self/status`,
/// which the kernel formats anew each time: a `run` asked four times before its sandbox
/// started.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Resolves `$STATE` with `env` as the environment, without touching the
/// filesystem. `None` if neither variable nor `HOME` is usable.
pub fn resolve_state_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = get("PADDOCK_STATE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = get("XDG_STATE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("paddock"));
    }
    get("HOME").map(|home| home.join(".local").join("state").join("paddock"))
}

/// `$STATE/audit.jsonl`.
pub fn audit_log_path(state: &Path) -> PathBuf {
    state.join(AUDIT_LOG_FILE)
}

/// `$STATE/revocations.toml`.
pub fn revocations_path(state: &Path) -> PathBuf {
    state.join(REVOCATIONS_FILE)
}

/// Checks that `dir` is a directory (not a symlink to one) owned by this user that neither
/// its group nor others may write: only then are the revocations, the audit log and the
/// approvals in it this user's own. (Read access for others is left as it is: an existing
/// directory's mode is the user's choice; those files are created 0600.)
pub fn check_private_dir(dir: &Path) -> Result<(), AuditError> {
    use std::os::unix::fs::MetadataExt;
    let untrusted = |why: String| AuditError::UntrustedStateDir { path: dir.to_path_buf(), why };
    let meta = std::fs::symlink_metadata(dir).map_err(|e| AuditError::io(dir, "inspect", e))?;
    if meta.file_type().is_symlink() {
        return Err(untrusted("it is a symlink: name the directory itself".into()));
    }
    if !meta.is_dir() {
        return Err(untrusted("not a directory".into()));
    }
    let uid = effective_uid();
    if meta.uid() != uid {
        return Err(untrusted(format!("owned by uid {}, not by this user (uid {uid})", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(format!(
            "mode {:o}: its group or others may write it (chmod 700 it)",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The error of opening a state file with `O_NOFOLLOW`: `ELOOP` says it is a symlink.
pub(crate) fn nofollow_error(path: &Path, op: &'static str, e: std::io::Error) -> AuditError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is a symlink, which paddock does not follow in its state: remove it",
        );
        return AuditError::io(path, op, e);
    }
    AuditError::io(path, op, e)
}

/// Creates `dir` and missing parents with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AuditError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| AuditError::io(dir, "create directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Option<PathBuf> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        resolve_state_dir(|k| map.get(k).cloned())
    }

    #[test]
    fn precedence() {
        let all = [("PADDOCK_STATE_DIR", "/p"), ("XDG_STATE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(resolve(&all), Some("/p".into()));
        assert_eq!(resolve(&all[1..]), Some("/x/paddock".into()));
        assert_eq!(resolve(&all[2..]), Some("/h/.local/state/paddock".into()));
        assert_eq!(
            resolve(&[("PADDOCK_STATE_DIR", ""), ("XDG_STATE_HOME", "rel"), ("HOME", "/h")]),
            Some("/h/.local/state/paddock".into())
        );
        assert_eq!(resolve(&[]), None);
    }

    #[test]
    fn fallback_warning_once_per_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(first_use_of_fallback(tmp.path()));
        assert!(!first_use_of_fallback(tmp.path()));
        assert!(tmp.path().join(FALLBACK_WARNED_FILE).exists());
        // A directory where no marker can be made: the warning keeps coming.
        assert!(first_use_of_fallback(&tmp.path().join("missing")));
    }

    #[test]
    fn only_a_private_directory_of_this_user_is_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("st");
        create_private_dir(&dir).unwrap();
        check_private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = check_private_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("mode 775") && e.contains("may write"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = check_private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check_private_dir(&file).unwrap_err().to_string().contains("not a directory"));
    }

    #[test]
    fn created_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(tmp.path().join("a")).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
