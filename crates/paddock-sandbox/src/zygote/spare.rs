//! A spare call helper: forked by the zygote ahead of the next call, it enters the call's
//! own namespaces (step 5) and forks the reaper, which makes the per-call mounts (step 6,
//! at the template's tmpfs size); both then wait. The spare takes the next `Spawn` from
//! the zygote's socket itself, tells the zygote so (the zygote forks the next spare while
//! this call goes on), hands the call to its reaper and goes on as any call helper
//! ([`crate::helper::reaper_started`]). A call then starts at the cgroup move and the
//! target's fork: the forks of the helper and the reaper, the `unshare` and the per-call
//! mounts are off its path.
//!
//! Nothing of a call reaches the spare before the call: what it does ahead is what
//! [`super::call`] does for every call (the template's namespaces and mounts, which
//! the call's checked spec shares, [`crate::Zygote::accepts`]). A step that fails ahead
//! is reported to the call that comes; a call whose tmpfs size differs from the
//! template's has its per-call mounts resized. Until it takes a call a spare dies with
//! the zygote (and its reaper with it); once it has one it outlives the zygote, as call
//! helpers do.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use super::call::{self, ZygoteState};
use crate::cgroup::SandboxCgroup;
use crate::helper::{self, State};
use crate::layer::{Applied, LayerState};
use crate::proto::{self, Msg};
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
    // SAFETY: the zygote is single-threaded.
    match unsafe { sys::fork() } {
        Ok(0) => {
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

/// The spare: its namespaces, its reaper, then the call its reaper took.
fn main(z: &ZygoteState, took: OwnedFd) -> ! {
    timing::clear();
    // Until it has a call, a spare ends with the zygote.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
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
        dev_null: None,
    };
    let ns = timing::time("spare: call namespaces, entered ahead", || call::call_namespaces(&mut st.report));
    let Ok((calls, calls_reaper)) = proto::socketpair() else { exit_now(125) };
    let start = timing::now_ns();
    // SAFETY: the spare is single-threaded (forked from the single-threaded zygote).
    let reaper = match unsafe { sys::fork() } {
        Ok(0) => {
            timing::record("spare: fork reaper", start);
            drop((took, calls));
            helper::spare_reaper(st, ns, z.view, z.ctl, calls_reaper)
        }
        Ok(pid) => pid,
        Err(_) => exit_now(125),
    };
    // The reaper reads the zygote's socket; this process never does.
    sys::close(z.ctl);
    drop(calls_reaper);
    timing::clear();
    // The reaper passes on the call it took: its socket and cgroup.
    let (spec, mut cgroup, cgroup_dirs, fds) = match proto::recv(calls.as_raw_fd()) {
        Ok(Some((Msg::Spawn { spec, cgroup, cgroup_dirs }, fds))) if !fds.is_empty() => {
            (spec, cgroup, cgroup_dirs, fds)
        }
        // The zygote's socket hung up (the zygote reads that too, and ends), or the reaper
        // is gone: no call.
        _ => {
            sys::kill_and_reap(reaper);
            exit_now(0)
        }
    };
    drop(calls);
    // This is the call's helper now, and outlives the zygote as call helpers do.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0, 0);
    let mut fds = fds.into_iter();
    let Some(ctl) = fds.next() else { exit_now(125) };
    let cg = SandboxCgroup::received(&cgroup_dirs, fds.collect(), &mut cgroup);
    st.ctl = ctl.into_raw_fd(); // kept for the life of the process (close-on-exec)
    call::announce(st.ctl);
    st.spec = *spec;
    // The reaper moved itself into the cgroup; the zygote forks the next spare once the
    // caller has the reaper (so its set-up does not compete with this call's).
    helper::reaper_started(&st, reaper, cg.as_ref(), None, None, Some((took, TOOK)))
}
