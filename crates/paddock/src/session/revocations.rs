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

fn with_revocations(base: &Policy, list: &Revocations) -> Result<Policy, SessionError> {
    let mut p = base.clone();
    apply_revocations(&mut p, list)?;
    Ok(p)
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
    pub(super) fn refresh(&mut self, base: &Policy) -> Option<Result<Policy, String>> {
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
        refreshed: Result<Policy, String>,
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
                *current = Arc::new(p);
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
    /// The list at `path` for a session whose policy is `base`: hides the list and its lock
    /// file from every view (in `base`), reads it once and sets `current` to what it calls
    /// for (a broken list: a policy that denies all, left for the caller to announce).
    pub(super) fn open(path: PathBuf, base: &mut Policy, current: &mut Arc<Policy>) -> RevocationState {
        let own = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut lock = own(&path).into_os_string();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        base.hide_paths([own(&path), lock]);
        let mut state = RevocationState { path, list: None, broken: None };
        if let Some(refreshed) = state.refresh(base) {
            state.settle(base, refreshed, current, false);
        }
        state
    }
}
