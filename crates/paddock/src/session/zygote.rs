//! The session's zygote: started once per policy (and again when its view is out of date
//! or it died), a fork per call; each call that proxies leases a port of its own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use paddock_policy::Policy;
use paddock_sandbox::{EnforcementReport, NetworkMode, SandboxError, SandboxSpec, StdioMode, ViewStamp, Zygote};

use crate::spec::{self, FsView};

/// The zygote of [`Session::call`]s under one policy: the calls reuse its namespaces and
/// mount view (paddock_sandbox's `Zygote` docs say what they share and what each has of
/// its own). Held by the session and by each call that runs in it; the last holder of a
/// retired one ends it.
pub(super) struct SessionZygote {
    policy: Arc<Policy>,
    view: Arc<FsView>,
    zygote: Zygote,
    /// The directories of its view as they were just before it started: a call runs in it
    /// only while they are unchanged.
    stamp: ViewStamp,
    /// The last scan for glob matches at a call's start made while `stamp` held (and
    /// covered its roots): it stands for a later call's scan, and the scan after a call is
    /// skipped, while the stamp still holds ([`SessionZygote::scanned`]).
    scanned: Mutex<Option<Arc<crate::planted::Scanned>>>,
    /// The last start's notes of its rules' ways, kept while nothing on them changed.
    notes: super::notes::KeptNotes,
    /// Proxy ports free for the next call, and the next new one: each concurrent call
    /// listens on a port of its own in the shared network namespace, so its connections
    /// are its own on the audit log and Landlock lets it reach no other call's listener.
    ports: Mutex<(Vec<u16>, u16)>,
}

/// A call's proxy port, back to the pool when dropped (after the call's proxy stopped).
pub(super) struct PortLease {
    zygote: Arc<SessionZygote>,
    port: u16,
}

/// A started child and the port lease of its call (proxy mode in a zygote).
pub(super) type Started = (paddock_sandbox::Running, Option<PortLease>);

impl Drop for PortLease {
    fn drop(&mut self) {
        self.zygote.ports.lock().unwrap_or_else(|e| e.into_inner()).0.push(self.port);
    }
}

impl SessionZygote {
    /// Whether nothing of `roots` changed since this zygote's stamp was taken: each is a
    /// directory the stamp holds, and the stamp's watch (set up from a session's second call
    /// on) says none of its directories changed. `false` when not known.
    pub(super) fn unchanged(&self, roots: &[PathBuf]) -> bool {
        roots.iter().all(|r| self.stamp.covers(r)) && self.stamp.unchanged_if_watched() == Some(true)
    }

    /// The kept scan for glob matches, while it still stands for one now
    /// ([`SessionZygote::unchanged`] for its roots, checked when it was kept and now).
    pub(super) fn scanned(&self) -> Option<Arc<crate::planted::Scanned>> {
        let s = self.scanned.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        self.stamp.unchanged_if_watched().is_some_and(|u| u).then_some(s)
    }

    /// Keeps the scan at the start of `planted`'s call when nothing of its roots changed
    /// since the stamp was taken (so, while it ran): it then saw what the stamp did.
    pub(super) fn keep_scanned(&self, planted: &crate::planted::Planted) {
        if self.unchanged(planted.roots()) {
            *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(planted.scanned()));
        }
    }

    /// The kept notes of a start's rules' ways ([`super::notes`]), when `policy` is the
    /// one this zygote was started under.
    pub(super) fn notes(&self, policy: &Arc<Policy>) -> Option<&super::notes::KeptNotes> {
        Arc::ptr_eq(&self.policy, policy).then_some(&self.notes)
    }

    fn lease_port(self: &Arc<Self>) -> Option<PortLease> {
        let mut p = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let port = match p.0.pop() {
            Some(port) => port,
            None => {
                let port = p.1;
                p.1 = port.checked_add(1)?;
                port
            }
        };
        Some(PortLease { zygote: Arc::clone(self), port })
    }
}

/// The session's zygote, if any: the one calls run in now.
pub(super) struct Zygotes {
    slot: Mutex<ZygoteSlot>,
}

enum ZygoteSlot {
    Empty,
    Ready(Arc<SessionZygote>),
    /// Starting one failed under this policy (e.g. strict and a layer is missing): its
    /// calls take the one-shot path, which reports why.
    Failed(Arc<Policy>),
}

/// Zygotes share one network namespace among calls; they are used only where Landlock has
/// what a call in a shared namespace requires (ABI ≥ [`paddock_sandbox::shared_netns_abi`]:
/// TCP confined to the call's own proxy port, abstract unix sockets scoped to the call), so
/// no call can reach another's listeners. Elsewhere every call gets a sandbox of its own.
fn zygotes_supported() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("PADDOCK_NO_ZYGOTE").is_none()
            && paddock_sandbox::landlock_abi() >= paddock_sandbox::shared_netns_abi()
    })
}

impl SessionZygote {
    /// The filesystem view the zygote was started with (its calls' specs are built on it).
    pub(super) fn view(&self) -> Arc<FsView> {
        Arc::clone(&self.view)
    }
}

impl Zygotes {
    /// None yet: the first call starts one.
    pub(super) fn new() -> Zygotes {
        Zygotes { slot: Mutex::new(ZygoteSlot::Empty) }
    }

    /// The zygote for calls under `policy`: the current one when it was started under this
    /// very policy and is alive, else a new one (the old one ends once its calls have).
    /// `None`: calls take the one-shot path.
    pub(super) fn for_policy(
        &self,
        session: &str,
        policy: &Arc<Policy>,
        adorn: &dyn Fn(&mut SandboxSpec),
    ) -> Option<Arc<SessionZygote>> {
        if !zygotes_supported() {
            return None;
        }
        let lock = || self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let mut slot = lock();
        // The view check (its watch's queue read, else an `lstat` of every directory the view
        // walk visits) runs without
        // the slot's lock, so that calls at once do not queue behind each other's checks;
        // a zygote found out of date is replaced only if it is still the slot's.
        while let ZygoteSlot::Ready(z) = &*slot {
            if !(Arc::ptr_eq(&z.policy, policy) && z.zygote.is_alive()) {
                break;
            }
            let z = Arc::clone(z);
            drop(slot);
            if z.stamp.unchanged() {
                return Some(z);
            }
            tracing::debug!(session = %session, "the zygote's view is out of date: a new one");
            slot = lock();
            if matches!(&*slot, ZygoteSlot::Ready(now) if Arc::ptr_eq(now, &z)) {
                break;
            }
            // Another call replaced it meanwhile: check the one there now.
        }
        if let ZygoteSlot::Failed(p) = &*slot {
            if Arc::ptr_eq(p, policy) {
                return None;
            }
        }
        // Retire the old one first: its process ends once the session and its calls let go.
        *slot = ZygoteSlot::Empty;
        let view = spec::fs_view(policy);
        let ws = policy.vars.workspace.clone();
        let mut template = spec::build_with(
            policy,
            &view,
            PathBuf::from("/bin/true"),
            vec!["true".into()],
            &ws,
            StdioMode::Capture { stdin: None },
        );
        adorn(&mut template);
        // Before the start: a change while the zygote walks its view is a change.
        let t = std::time::Instant::now();
        let stamp = paddock_sandbox::view_stamp(&template);
        paddock_sandbox::phase("zygote: view stamp taken", t);
        if let Some(why) = stamp.stale_reason() {
            tracing::debug!(session = %session, "the next call gets a new zygote ({why})");
        }
        let t = std::time::Instant::now();
        let started = Zygote::start(&template);
        paddock_sandbox::phase("zygote: started (its namespaces and view)", t);
        match started {
            Ok(zygote) => {
                tracing::debug!(session = %session, dirs = stamp.len(), "zygote started");
                let z = Arc::new(SessionZygote {
                    policy: Arc::clone(policy),
                    view: Arc::new(view),
                    zygote,
                    stamp,
                    scanned: Mutex::new(None),
                    notes: Default::default(),
                    ports: Mutex::new((Vec::new(), spec::PROXY_PORT)),
                });
                *slot = ZygoteSlot::Ready(Arc::clone(&z));
                Some(z)
            }
            Err(e) => {
                tracing::debug!(session = %session, "no zygote ({e}): one sandbox per call");
                *slot = ZygoteSlot::Failed(Arc::clone(policy));
                None
            }
        }
    }

    /// Drops `z` from the session (it died): the next call starts a new one.
    fn retire(&self, z: &Arc<SessionZygote>) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(&*slot, ZygoteSlot::Ready(cur) if Arc::ptr_eq(cur, z)) {
            *slot = ZygoteSlot::Empty;
        }
    }

    /// Confines `spec`'s child: in `zygote` when given (and it takes the spec), else in a
    /// sandbox of its own. The port lease (proxy mode in a zygote) lives as long as the call.
    /// `meanwhile` runs while the sandbox is set up, before the child can run
    /// ([`paddock_sandbox::spawn_meanwhile`]); its result is `None` when no sandbox started.
    /// It is given the report the child is expected to start with, when the zygote has one
    /// ([`paddock_sandbox::Zygote::spawn_meanwhile`]); a sandbox of its own expects none.
    /// A sandbox of its own is started by `ahead`, a helper forked ahead, when given.
    pub(super) fn start_child<T>(
        &self,
        session: &str,
        spec: &mut SandboxSpec,
        zygote: Option<&Arc<SessionZygote>>,
        mut ahead: Option<paddock_sandbox::Prestarted>,
        meanwhile: &mut dyn FnMut(Option<&EnforcementReport>) -> T,
    ) -> (Result<Started, SandboxError>, Option<T>) {
        let mut own = |spec: &SandboxSpec, lease, meanwhile: &mut dyn FnMut(Option<&EnforcementReport>) -> T| {
            let meanwhile = &mut || meanwhile(None);
            let (r, done) = match ahead.take() {
                Some(helper) => helper.spawn_meanwhile(spec, meanwhile),
                None => paddock_sandbox::spawn_meanwhile(spec, meanwhile),
            };
            (r.map(|r| (r, lease)), done)
        };
        let Some(z) = zygote.filter(|z| z.zygote.accepts(spec).is_ok()) else {
            return own(spec, None, meanwhile);
        };
        let lease = match spec.network {
            NetworkMode::Proxy { .. } => match z.lease_port() {
                Some(l) => {
                    spec::set_proxy_port(spec, l.port);
                    Some(l)
                }
                None => return own(spec, None, meanwhile),
            },
            NetworkMode::None => None,
        };
        match z.zygote.spawn_meanwhile(spec, meanwhile) {
            (Ok(r), done) => (Ok((r, lease)), done),
            (Err(SandboxError::Spawn(m)), done) if !z.zygote.is_alive() => {
                tracing::warn!(session = %session, "the session's zygote is gone ({m}); this call gets a sandbox of its own");
                self.retire(z);
                // What `meanwhile` did for the call that did not start is undone (dropped)
                // before it runs again for this one.
                drop(done);
                own(spec, lease, meanwhile)
            }
            (Err(e), done) => (Err(e), done),
        }
    }
}
