//! Where paddock keeps its state: `$STATE`.
//!
//! `$STATE` is `$PADDOCK_STATE_DIR`, else `$XDG_STATE_HOME/paddock`, else
//! `~/.local/state/paddock`. Empty variables count as unset, and so does a
//! relative `XDG_STATE_HOME` (the XDG spec says to ignore it). Directories
//! this crate creates are mode 0700; existing ones are left as they are.

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// File name of the audit log inside `$STATE`.
pub const AUDIT_LOG_FILE: &str = "audit.jsonl";
/// File name of the revocation list inside `$STATE`.
pub const REVOCATIONS_FILE: &str = "revocations.toml";

/// Resolves `$STATE` from the process environment and creates it (0700).
pub fn state_dir() -> Result<PathBuf, AuditError> {
    let dir = resolve_state_dir(|k| std::env::var_os(k)).ok_or(AuditError::NoStateDir)?;
    create_private_dir(&dir)?;
    Ok(dir)
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

/// Creates `dir` and missing parents with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AuditError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AuditError::io(dir, "create directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Option<PathBuf> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        resolve_state_dir(|k| map.get(k).cloned())
    }

    #[test]
    fn precedence() {
        let all = [
            ("PADDOCK_STATE_DIR", "/p"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(resolve(&all), Some("/p".into()));
        assert_eq!(resolve(&all[1..]), Some("/x/paddock".into()));
        assert_eq!(resolve(&all[2..]), Some("/h/.local/state/paddock".into()));
        assert_eq!(
            resolve(&[
                ("PADDOCK_STATE_DIR", ""),
                ("XDG_STATE_HOME", "rel"),
                ("HOME", "/h")
            ]),
            Some("/h/.local/state/paddock".into())
        );
        assert_eq!(resolve(&[]), None);
    }

    #[test]
    fn created_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(tmp.path().join("a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
