//! A spare call: forked by the zygote ahead of the next call straight into the call's own
//! namespaces (step 5: `clone` with the pid, mount, ipc and cgroup flags, so it is pid 1
//! of its pid namespace), it is the call's reaper and its helper at once. Ahead, it makes
//! the per-call mounts (step 6, at the template's tmpfs size) and the Landlock ruleset;
//! then it takes the next `Spawn` from the zygote's socket itself, tells the caller and
//! the zygote (which forks the next spare while this call goes on), and goes on as any
//! reaper ([`crate::helper::spare_reaper`]). A call then starts at the cgroup move and the
//! target's fork: the fork, the namespaces and the per-call mounts are off its path, and
//! no helper process sits between the caller and the call's pid 1.
//!
//! What a call helper does for a call, a spare does itself: its first word is its own
//! pidfd (the caller kills the call through it), the caller's end of the call's socket
//! hanging up ends it (and so the pid namespace: `SIGIO`,
//! [`crate::signals::reaper_watch_caller`]); the caller removes the call's cgroup once
//! it has ended, and takes an end without an exit status for a kill (a pid namespace's
//! init dies of no other signal it has no handler for).
//!
//! Nothing of a call reaches the spare before the call: what it does ahead is what
//! [`super::call`] does for every call (the template's namespaces and mounts, which
//! the call's checked spec shares, [`crate::Zygote::accepts`]). A step that fails ahead
//! is reported to the call that comes; a call whose tmpfs size differs from the
//! template's has its per-call mounts resized. Until it takes a call a spare dies with
//! the zygote; once it has one it outlives the zygote, as call helpers do. Where the
//! kernel refuses the `clone` (no spare), the zygote forks each call's helper once its
//! `Spawn` came ([`super::call::start_call`]).

use std::os::fd::{AsRawFd, OwnedFd};

use super::call::{self, ZygoteState};
use crate::helper::{self, State};
use crate::layer::{Applied, LayerState};
use crate::namespaces;
use crate::spec::PathPlan;
use crate::sys::{self, exit_now};
use crate::timing;

/// The byte a spare writes to the zygote once it took a call.
const TOOK: u8 = b't';

/// How many spares a zygote keeps ready at once: calls that come together (several
/// clients of one session) each find one, instead of waiting in turn for the next spare's
/// set-up.
pub(super) const SPARES: usize = 2;

/// Forks a spare; returns the pipe on which it says it took a call (its end: it ended
/// without one). `None`: no spare could be forked.
pub(super) fn fork(z: &ZygoteState) -> Option<OwnedFd> {
    let (took_r, took_w) = crate::stdio::pipe().ok()?;
    let start = timing::now_ns();
    // SAFETY: the zygote is single-threaded; the spare uses nothing that reads glibc's
    // cached thread id ([`sys::fork_into`]).
    match unsafe { sys::fork_into(namespaces::flags_of(namespaces::PER_CALL)) } {
        Ok(0) => {
            timing::clear();
            timing::record("spare: forked into the call's namespaces", start);
            drop(took_r);
            main(z, took_w)
        }
        Ok(_) => Some(took_r),
        Err(_) => None,
    }
}

/// Waits until one of `spares` took a call (`true`) or ended without one (`false`: the
/// zygote then reads the next message itself), and drops it from the list.
pub(super) fn wait_any(spares: &mut Vec<OwnedFd>) -> bool {
    loop {
        let mut fds: Vec<libc::pollfd> =
            spares.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        match sys::poll_raw(&mut fds, -1) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The zygote reads the socket itself then (and blocks there, never spins).
            Err(_) => return false,
        }
        let Some(i) = fds.iter().position(|f| f.revents != 0) else { continue };
        let took_r = spares.swap_remove(i);
        let mut b = [0u8; 1];
        return matches!(sys::read(took_r.as_raw_fd(), &mut b), Ok(1) if b[0] == TOOK);
    }
}

/// The spare: pid 1 of the call's pid namespace, its state made from the zygote's; then
/// the reaper's part ([`helper::spare_reaper`]).
fn main(z: &ZygoteState, took: OwnedFd) -> ! {
    // Until it has a call, a spare ends with the zygote. A zygote that ended before this
    // asked sends no signal: its pidfd says so.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
    if z.me.as_ref().is_some_and(|me| sys::poll_in(me, Some(std::time::Duration::ZERO)).unwrap_or(true)) {
        exit_now(0);
    }
    sys::set_name(c"paddock-reaper");
    // The reaper's waitpid needs SIGCHLD not ignored.
    sys::ignore_sigchld(false);
    let mut st = State {
        plan: PathPlan::again(z.plan.clone(), &z.template, &z.template),
        spec: z.template.clone(),
        pty: false,
        report: z.report.clone(),
        // Replaced by the call's.
        cgroup: Applied::new(LayerState::Unavailable, "no call yet"),
        ctl: -1,
        pty_slave: None,
        zygote_view: Some(z.view),
        landlock_ahead: None,
        scratch_ahead: None,
        mounts_ahead: None,
        dev_null: None,
    };
    let ns = namespaces::forked_into(&mut st.report, namespaces::PER_CALL);
    call::call_mount_ns(&mut st.report);
    helper::spare_reaper(st, ns, z.view, z.ctl, (took, TOOK))
}
