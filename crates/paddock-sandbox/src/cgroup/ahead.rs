//! A zygote's call cgroups, made one call ahead.
//!
//! Not a confinement step: what a call gets is the cgroup [`super::create_named`] makes,
//! with the same limits and status; only the moment it is made changes. Making a cgroup
//! directory now and then waits for an RCU grace period: in a session measured here the
//! caller's "call cgroup" phase took 0.17 ms at the median and 15.7 ms at the 99th
//! percentile, the only phase of a call with such a tail. So once a session's calls are
//! served by several threads anyway, a thread of the zygote's makes the next call's
//! cgroup after each call has started; a call whose limits match takes it, any other
//! call (limits of its own, or calls coming faster than the thread) makes its own as
//! before. In a single-threaded caller no thread is started (it forks its helpers and
//! zygotes without re-executing itself, which one more thread would forbid) and every
//! call makes its own.
//!
//! The thread is woken once a call has started ([`CallCgroups::started`]), not when the
//! call takes its cgroup: a `mkdir` in the cgroup file system holds its locks, and one made
//! while a call checks and enters its own cgroup made that call wait for it (a quarter of
//! a session's calls took 0.14–0.19 ms to take a cgroup made ahead instead of 0.02 ms).
//!
//! A cgroup made ahead that is gone when a call comes (removed by someone else) is not
//! handed out; one made for other limits, or left when the zygote goes, is removed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use super::{create_named, Setup};
use crate::spec::Limits;

/// What a call cgroup is made for: `max_processes` and `max_memory`.
type Key = (Option<u64>, Option<u64>);

fn key(limits: &Limits) -> Key {
    (limits.max_processes, limits.max_memory)
}

/// The name of a zygote's next call cgroup: `paddock-<pid>-z<n>`.
fn next_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("paddock-{}-z{}", crate::sys::getpid(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// What the making thread and the calls share.
#[derive(Default)]
struct Slot {
    /// The limits of the last call that wanted a cgroup: what to make next.
    want: Option<Key>,
    /// A cgroup made for `Key`, not handed out yet.
    ready: Option<(Key, Setup)>,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A zygote's call cgroups ([`CallCgroups::take`]), made ahead where the caller is
/// multi-threaded (see the module docs).
#[derive(Default)]
pub(crate) struct CallCgroups {
    shared: Arc<Shared>,
    /// The making thread, started with the first call that wants a cgroup (`None`: the
    /// caller was single-threaded then, or the thread could not be started).
    maker: OnceLock<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for CallCgroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCgroups").finish_non_exhaustive()
    }
}

impl CallCgroups {
    /// The cgroup of a call with `limits`: the one made ahead when it was made for the same
    /// limits and is still there, else one made now; the thread makes the next once the
    /// call has [`started`](Self::started).
    pub(crate) fn take(&self, limits: &Limits) -> Setup {
        let k = key(limits);
        // No cgroup wanted, or no thread to make one ahead: made now.
        if k != (None, None) && self.maker_runs() {
            if let Some(setup) = self.made_ahead(k) {
                return setup;
            }
        }
        create_named(limits, &next_name())
    }

    /// Whether the making thread runs (started here with the first call that wants a
    /// cgroup, when this process is multi-threaded).
    fn maker_runs(&self) -> bool {
        let maker = self.maker.get_or_init(|| {
            let shared = Arc::clone(&self.shared);
            let maker = (crate::sys::thread_count() != Some(1))
                .then(|| std::thread::Builder::new().name("paddock-cgroups".into()).spawn(move || make(&shared)).ok())
                .flatten();
            if maker.is_some() {
                // Multi-threaded for good: the calls' short jobs may keep their threads.
                crate::workers::keep_workers();
            }
            maker
        });
        maker.is_some()
    }

    /// A call has started (its sandbox is set up, or failed to be): the thread makes the
    /// next call's cgroup, if one was wanted and none is ready.
    pub(crate) fn started(&self) {
        if self.maker.get().is_some_and(|m| m.is_some()) {
            self.shared.wake.notify_one();
        }
    }

    /// The cgroup made ahead for `k`, if there is one and it is still there; the next is
    /// wanted for the same limits. One made for other limits, or gone, is removed.
    fn made_ahead(&self, k: Key) -> Option<Setup> {
        let ready = {
            let mut slot = self.shared.lock();
            slot.want = Some(k);
            slot.ready.take()
        };
        let (made_for, setup) = ready?;
        let cg = setup.cgroup.as_ref()?;
        if made_for == k && cg.is_there() {
            return Some(setup);
        }
        cg.remove();
        None
    }
}

/// The making thread: whenever a cgroup is wanted and none is ready, makes one. It ends
/// when told to, or when it could make none (no rights to: every call then says so
/// itself).
fn make(shared: &Shared) {
    let mut swept = false;
    let mut slot = shared.lock();
    loop {
        if slot.stop {
            return;
        }
        let Some(k) = slot.want.filter(|_| slot.ready.is_none()) else {
            slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        drop(slot);
        let limits = Limits { max_processes: k.0, max_memory: k.1, ..Limits::default() };
        let setup = create_named(&limits, &next_name());
        // Once, where this zygote's cgroups go: what killed callers left there.
        if let (false, Some(c)) = (swept, &setup.cgroup) {
            super::sweep::beside(c, super::sweep::MIN_AGE_SECS);
            swept = true;
        }
        slot = shared.lock();
        if slot.stop || setup.cgroup.is_none() {
            if let Some(c) = &setup.cgroup {
                c.remove();
            }
            return;
        }
        slot.ready = Some((k, setup));
    }
}

impl Drop for CallCgroups {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(Some(t)) = self.maker.take() {
            let _ = t.join();
        }
        if let Some((_, Setup { cgroup: Some(c), .. })) = self.shared.lock().ready.take() {
            c.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A call with no limits gets no cgroup and starts no thread.
    #[test]
    fn no_limits_no_cgroup_no_thread() {
        let c = CallCgroups::default();
        assert!(c.take(&Limits::default()).cgroup.is_none());
        assert!(c.maker.get().is_none());
    }

    fn name(s: &Setup) -> String {
        s.cgroup.as_ref().map(|c| c.handover().0.join(",")).unwrap_or_default()
    }

    /// Waits until the thread has made a cgroup (its name), or ended (`None`).
    fn ready_name(c: &CallCgroups) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((_, s)) = c.shared.lock().ready.as_ref() {
                return Some(name(s));
            }
            if c.maker.get().is_some_and(|t| t.as_ref().is_none_or(|t| t.is_finished())) {
                return None;
            }
            assert!(Instant::now() < deadline, "no cgroup made ahead in 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Where a cgroup can be made (root): the next call's is made ahead and handed to the
    /// next call with the same limits; one made for other limits, or removed meanwhile, is
    /// not handed out. Where none can be (unprivileged), every call says so and the thread
    /// stops making them.
    #[test]
    fn the_next_calls_cgroup_is_made_ahead() {
        // The test harness runs tests on threads of their own: this process is multi-threaded.
        assert_ne!(crate::sys::thread_count(), Some(1));
        let c = CallCgroups::default();
        let limits = Limits { max_processes: Some(64), ..Limits::default() };
        let first = c.take(&limits);
        // The thread makes the next once a call has started.
        c.started();
        if first.cgroup.is_none() {
            assert_ne!(first.applied.state, crate::layer::LayerState::Enforced, "{first:?}");
            assert_eq!(ready_name(&c), None, "the thread stops when no cgroup can be made");
            assert!(c.take(&limits).cgroup.is_none());
            return;
        }
        assert!(c.maker.get().is_some_and(|t| t.is_some()), "the thread runs");
        let mut made = vec![first];
        // The same limits: the one made ahead.
        let ahead = ready_name(&c).expect("made ahead");
        let second = c.take(&limits);
        c.started();
        assert_eq!(name(&second), ahead);
        assert_eq!(second.applied.state, made[0].applied.state);
        made.push(second);
        // Other limits: made now; the one made ahead goes.
        let ahead = ready_name(&c).expect("made ahead");
        let other_limits = Limits { max_processes: Some(32), ..Limits::default() };
        let other = c.take(&other_limits);
        c.started();
        assert_ne!(name(&other), ahead);
        made.push(other);
        // Removed by someone else meanwhile: not handed out.
        let gone = ready_name(&c).expect("made ahead");
        if let Some((_, Setup { cgroup: Some(cg), .. })) = c.shared.lock().ready.as_ref() {
            cg.remove();
            assert!(!cg.is_there());
        }
        let fresh = c.take(&other_limits);
        assert_ne!(name(&fresh), gone);
        assert!(fresh.cgroup.as_ref().is_some_and(|cg| cg.is_there()));
        made.push(fresh);
        for s in &made {
            let cg = s.cgroup.as_ref().unwrap();
            assert!(cg.is_there());
            cg.remove();
            assert!(!cg.is_there());
        }
    }
}
