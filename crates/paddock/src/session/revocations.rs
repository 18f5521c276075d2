//! The session's revocation list: read at start, re-read when it changes on disk, applied
//! to the base policy; a list that cannot be used denies every call until it is fixed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use paddock_audit::Revocations;
use paddock_policy::{Policy, Revocation};

use crate::SessionError;

/// The policy engine's form of a stored selector.
pub fn revocation_of(s: &paddock_audit::Selector) -> Revocation {
    use paddock_audit::Selector;
    match s {
        Selector::Command(p) => Revocation::Command(p.clone()),
        Selector::Path(p) => Revocation::Path(p.clone()),
        Selector::Network { host, port: None } => Revocation::Network(host.clone()),
        Selector::Network { host, port: Some(p) } if host.contains(':') => Revocation::Network(format!("[{host}]:{p}")),
        Selector::Network { host, port: Some(p) } => Revocation::Network(format!("{host}:{p}")),
        Selector::Rule(r) => Revocation::Rule(r.clone()),
        Selector::Secret(n) => Revocation::Secret(n.clone()),
    }
}

/// Applies `list`'s revocations to `policy` (replacing any it had).
pub fn apply_revocations(policy: &mut Policy, list: &Revocations) -> Result<(), paddock_policy::PolicyError> {
    let entries: Vec<(Revocation, Option<String>)> =
        list.entries().iter().map(|r| (revocation_of(&r.selector), r.reason.clone())).collect();
    policy.set_revocations(&entries, list.path())
}

/// `base` with `list`'s revocations: `base` itself (no copy) when the list is empty and
/// `base` has none of its own to replace, which is the same policy.
fn with_revocations(base: &Arc<Policy>, list: &Revocations) -> Result<Arc<Policy>, SessionError> {
    if list.entries().is_empty() && !base.has_revocations() {
        return Ok(Arc::clone(base));
    }
    let mut p = Policy::clone(base);
    apply_revocations(&mut p, list)?;
    Ok(Arc::new(p))
}

/// A session's revocation list: the last one read, and whether it is broken (it cannot be
/// read, parsed or compiled: then every call is denied until it is fixed).
pub(super) struct RevocationState {
    path: PathBuf,
    /// `None` until the list was read once.
    list: Option<Revocations>,
    /// Why the list cannot be used, while it cannot.
    broken: Option<String>,
}

impl RevocationState {
    /// The policy the list now calls for, when it changed (or is broken, or was never read):
    /// `Err` says why the list cannot be used. A broken list is read afresh on every call,
    /// so a fixed one is picked up at once.
    pub(super) fn refresh(&mut self, base: &Arc<Policy>) -> Option<Result<Arc<Policy>, String>> {
        if self.broken.is_some() || self.list.is_none() {
            return Some(match Revocations::load(&self.path) {
                Ok(list) => {
                    let p = with_revocations(base, &list).map_err(|e| e.to_string());
                    self.list = Some(list);
                    p
                }
                Err(e) => Err(e.to_string()),
            });
        }
        let list = self.list.as_mut()?;
        match list.reload_if_changed() {
            Ok(false) => None,
            Ok(true) => Some(with_revocations(base, list).map_err(|e| e.to_string())),
            Err(e) => Some(Err(e.to_string())),
        }
    }

    /// Applies a refresh: the new policy, or the broken state (logged once per error when
    /// `announce`; a new session leaves that to its caller, who sees it in
    /// [`Policy::denies_all`]).
    pub(super) fn settle(
        &mut self,
        base: &Policy,
        refreshed: Result<Arc<Policy>, String>,
        current: &mut Arc<Policy>,
        announce: bool,
    ) {
        match refreshed {
            Ok(p) => {
                if self.broken.take().is_some() {
                    tracing::warn!(
                        "revocation list {}: readable again; calls are decided by the policy again",
                        self.path.display()
                    );
                }
                *current = p;
            }
            Err(e) if self.broken.as_deref() == Some(e.as_str()) => {}
            Err(e) => {
                let reason = format!(
                    "the revocation list {} cannot be used, so every call is denied until it is fixed: {e}",
                    self.path.display()
                );
                if announce {
                    tracing::error!("{reason}");
                }
                *current = Arc::new(base.deny_all(reason));
                self.broken = Some(e);
            }
        }
    }
}

impl RevocationState {
    /// The list at `path`, not read yet.
    pub(super) fn new(path: PathBuf) -> RevocationState {
        RevocationState { path, list: None, broken: None }
    }

    /// The list and its lock file, absolute: paddock's own, to hide from every view
    /// ([`Policy::hide_paths`]) before the list is read.
    pub(super) fn own_paths(&self) -> [PathBuf; 2] {
        let own = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut lock = own(&self.path).into_os_string();
        lock.push(".lock");
        [own(&self.path), PathBuf::from(lock)]
    }

    /// Reads the list once and sets `current` to what it calls for over `base` (a broken
    /// list: a policy that denies all, left for the caller to announce).
    pub(super) fn load(&mut self, base: &Arc<Policy>, current: &mut Arc<Policy>) {
        if let Some(refreshed) = self.refresh(base) {
            self.settle(base, refreshed, current, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;

    fn policy(ws: &Path) -> Policy {
        let vars = Vars { workspace: ws.to_path_buf(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let text = "version = 1\n[commands]\nallow = [\"ls\"]\n[filesystem]\nread = [\"/usr\"]\n";
        Policy::from_toml_str("p.toml", text, &vars).unwrap()
    }

    #[test]
    fn no_copy_without_revocations_and_the_same_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let base = Arc::new(policy(dir.path()));
        let mut list = Revocations::load(dir.path().join("revocations.toml")).unwrap();
        // An empty (absent) list: the base itself, not a copy.
        let p = with_revocations(&base, &list).unwrap();
        assert!(Arc::ptr_eq(&p, &base));
        assert!(p.check_command(&["ls".to_string()], dir.path()).is_allow());
        // A list that names something: a policy of its own that enforces it.
        list.add("command:ls".parse().unwrap(), None);
        let revoked = with_revocations(&base, &list).unwrap();
        assert!(!Arc::ptr_eq(&revoked, &base));
        let d = revoked.check_command(&["ls".to_string()], dir.path());
        assert!(!d.is_allow() && d.reason.contains("revoked"), "{}", d.reason);
        assert!(base.check_command(&["ls".to_string()], dir.path()).is_allow());
        // A base with revocations of its own and an empty list: replaced, so copied.
        let empty = Revocations::load(dir.path().join("none.toml")).unwrap();
        let cleared = with_revocations(&revoked, &empty).unwrap();
        assert!(!Arc::ptr_eq(&cleared, &revoked));
        assert!(cleared.check_command(&["ls".to_string()], dir.path()).is_allow());
    }
}
