//! The helper: the single-threaded process that runs the whole order of application, so
//! forking and allocating are safe. [`crate::spawn`] starts it one of two ways, and both
//! run [`run`] (through [`crate::entry`]):
//!
//! * forked straight from the caller when the caller is single-threaded (nothing can hold
//!   a lock across the fork): no `execve`, no dynamic loading, the spec passed in memory;
//! * otherwise re-executed: `/proc/self/exe <MARKER> <spec fd> <control fd>`, which reads
//!   the spec as JSON from the inherited pipe ([`crate::entry::main`]).
//!
//! A third way, [`crate::prestart`], forks it before the caller knows its spec: it runs
//! step 1's `setsid` and step 2's namespaces at once, forks the reaper ahead too where it
//! can (which mounts its `/proc` and most of its `/dev` while it waits), and the spec and
//! the cgroup the caller made come after ([`run_ahead`], [`mod@ahead`]). Unless the caller
//! is root with supplementary groups (which a helper drops before it enters a user
//! namespace, and a clone into one cannot), `prestart` clones the reaper itself instead, pid 1 of
//! its new pid namespace from the start, with no helper ([`run_pid1_ahead`]): it plays the
//! helper's part as a zygote's spare does, and the caller moves it into the cgroup where
//! that move is slow, reaps it and removes the cgroup.
//!
//! The session layer's detail says which. Then:
//!
//! 1. helper: the sandbox's cgroup ([`crate::cgroup`], while the host's cgroup tree is still
//!    in view); `setsid` (layer `session`);
//! 2. helper: namespaces ([`crate::namespaces`]); fork the reaper; in proxy mode create the
//!    listener and pass it, with the reaper's pidfd, to the parent; where the reaper's own
//!    move is not quick (not cgroup v1), move it into the cgroup (such a move waits for an
//!    RCU grace period: done here while the reaper builds its view, and the reaper told
//!    how it went); then wait for the reaper, kill it if the
//!    parent goes away, and remove the cgroup once it is reaped ([`start_reaper`]);
//!    one-shot, after 100 ms of waiting, hand back the code that set up
//!    (`sys::release_code`);
//! 3. reaper (pid 1 of the new pid namespace, [`reaper`]): the mount view
//!    ([`crate::mounts`]); into the cgroup (by itself, or by the helper's word), a cgroup
//!    namespace rooted there; `chdir`;
//!    install the signal forwarding ([`crate::signals`]); start the target (born in the
//!    cgroup; `clone(CLONE_VM | CLONE_VFORK)`: in the reaper's memory, the reaper
//!    suspended, until its `execve`, [`crate::sys::spawn_vfork`]), reap every orphan
//!    (one-shot, after 100 ms, on an alarm, hand back the code that set up), report the
//!    target's wait status, exit (which kills whatever the target left behind);
//! 4. target ([`target`]): default signal dispositions, a process group of its own (with a
//!    pty, `setsid` and the pty as controlling terminal), Landlock, rlimits, capabilities,
//!    no_new_privs, seccomp, descriptors; send the report; wait for the parent's release;
//!    `execve` with the spec's environment only.
//!
//! A strict run stops at the first step that finds a layer unavailable and reports it.
//!
//! A zygote's call helper ([`crate::zygote`]) enters its own namespaces and then runs
//! [`start_reaper`] and the reaper and target steps here unchanged (the reaper adds the
//! per-call mounts, [`crate::mounts::per_call`], to the zygote's view). A spare, forked
//! before its call straight into the call's namespaces, is the call's reaper and its
//! helper at once ([`spare_reaper`]: it makes the per-call mounts, then takes the call,
//! tells the caller its pidfd ([`announce`], [`tell_reaper`]), moves itself into the
//! cgroup and goes on as the reaper).

mod ahead;
mod reaper;
mod state;
mod target;

pub(crate) use ahead::{run_ahead, run_pid1_ahead};
pub(crate) use reaper::spare as spare_reaper;
pub(crate) use state::{stop, strict_check, State, ZygoteView};

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::cgroup::{self, SandboxCgroup};
use crate::error::{OsError, SetupError};
use crate::layer::{Layer, LayerState};
use crate::namespaces::{self, Namespaces};
use crate::proto::{self, Failure, Msg, Request};
use crate::report::EnforcementReport;
use crate::spec::{Enforcement, NetworkMode, PathPlan};
use crate::sys::{self, exit_now};
use crate::timing;

/// Step 1's `setsid`: a new session without a controlling terminal (layer `session`);
/// `launch` says how the helper was started.
pub(crate) fn new_session(report: &mut EnforcementReport, launch: &str) {
    match sys::setsid() {
        Ok(()) => report.set(
            Layer::Session,
            LayerState::Enforced,
            format!("setsid: new session, no controlling terminal; {launch}"),
        ),
        Err(e) => report.set(Layer::Session, LayerState::Unavailable, format!("setsid failed: {e}")),
    }
}

/// A zygote call's first word on the call's socket, from its helper (or a spare's reaper,
/// which is its own helper): this process's pidfd, so the caller can kill it although it
/// is not the caller's child. `pid1`: this process is the call's pid 1.
pub(crate) fn announce(ctl: RawFd, pid1: bool) {
    match sys::pidfd_open(std::process::id() as libc::pid_t) {
        Ok(me) => {
            if proto::send(ctl, &Msg::CallHelper { pid1 }, &[me.as_raw_fd()]).is_err() {
                exit_now(125);
            }
        }
        Err(err) => stop(ctl, Failure::Setup(SetupError::CallPidfd(err.into()))),
    }
}

/// Runs the helper: steps 1 and 2, and forks the reaper. `ctl` is the control socket.
pub(crate) fn run(req: Request, ctl: RawFd) -> ! {
    let plan = timing::time("path plan", || PathPlan::new(&req.spec));
    let cg = timing::time("cgroup", || cgroup::create(&req.spec.limits));
    // Where the reaper's move into it waits for an RCU grace period (not cgroup v1, where
    // the reaper moves itself at no such cost): one started now (once the directory is
    // made: a move holds the cgroup mutex while it waits, and the mkdir needs it) is
    // shared by that move, a few steps later.
    let warm = cg.warm_up();
    let mut st = State {
        cgroup: cg.applied,
        spec: req.spec,
        pty: req.pty,
        plan,
        report: EnforcementReport::default(),
        ctl,
        pty_slave: None,
        zygote_view: None,
        landlock_ahead: None,
        scratch_ahead: None,
        mounts_ahead: None,
        dev_null: None,
    };
    let cg = cg.cgroup;
    new_session(&mut st.report, &req.launch);
    let ns = timing::time("namespaces", || namespaces::enter(&mut st.report));
    strict_check_before_reaper(&st, cg.as_ref());
    start_reaper(st, ns, cg, warm)
}

/// Step 2's strict check, once the namespaces are entered: a strict run missing a layer
/// stops here, its cgroup removed first.
fn strict_check_before_reaper(st: &State, cg: Option<&SandboxCgroup>) {
    if st.spec.enforcement == Enforcement::Strict && st.report.first_missing().is_some() {
        if let Some(c) = cg {
            c.remove();
        }
        st.strict_check();
    }
}

/// The end of step 2, for a one-shot helper and a zygote's call helper alike: forks the
/// reaper, then [`reaper_started`].
pub(crate) fn start_reaper(st: State, ns: Namespaces, cg: Option<SandboxCgroup>, warm: Option<cgroup::Warmup>) -> ! {
    // Moving another process into a cgroup waits for an RCU grace period (milliseconds):
    // this process moves the reaper while the reaper builds its mount view, and tells it
    // how that went through `handoff`. Without the pipe, or in cgroup v1, where a
    // single-threaded process moving itself takes no such wait, the reaper moves itself.
    let handoff = match &cg {
        Some(c) if !c.quick_self_move() => crate::stdio::pipe().ok(),
        _ => None,
    };
    let start = timing::now_ns();
    // SAFETY: the helper (and a zygote's call helper) is single-threaded.
    let reaper = match unsafe { sys::fork() } {
        Ok(0) => {
            timing::record("fork reaper", start);
            let entry = match handoff {
                Some((r, _)) => cg.map(|_| reaper::CgroupEntry::Helper(r)),
                None => cg.map(reaper::CgroupEntry::Itself),
            };
            reaper::main(st, ns, entry)
        }
        Ok(pid) => pid,
        Err(e) => {
            if let Some(c) = &cg {
                c.remove();
            }
            st.fail(SetupError::ForkReaper(e.into()))
        }
    };
    // The reaper has the phases so far and passes them on; this process's next ones go
    // with the `Reaper` message.
    timing::clear();
    let side = HelperSide {
        ctl: st.ctl,
        network: st.spec.network,
        dev_null: st.dev_null(),
        one_shot: st.zygote_view.is_none(),
    };
    reaper_started(&side, reaper, cg.as_ref(), handoff.map(|(_, w)| w), warm)
}

/// What the helper needs of its state once the reaper is forked.
pub(crate) struct HelperSide {
    /// The control socket.
    pub ctl: RawFd,
    /// The child's network (in proxy mode the caller gets the listener).
    pub network: NetworkMode,
    /// `/dev/null`, for this process's standard descriptors.
    pub dev_null: Option<RawFd>,
    /// A one-shot run's helper (which ran the caller's start-up too, and hands that code
    /// back once it only waits), not a zygote's call helper.
    pub one_shot: bool,
}

/// After the reaper's fork: moves it into the cgroup and tells it how that went through
/// `handoff` (a word: 0, or the errno); passes its pidfd (and in proxy mode the
/// listener) to the caller, then waits for it ([`helper_wait`]). On failure the cgroup is
/// removed and the step reported.
pub(crate) fn reaper_started(
    side: &HelperSide,
    reaper: libc::pid_t,
    cg: Option<&SandboxCgroup>,
    handoff: Option<OwnedFd>,
    warm: Option<cgroup::Warmup>,
) -> ! {
    let ctl = side.ctl;
    let fail = |e: SetupError| -> ! {
        sys::kill_and_reap(reaper);
        if let Some(c) = cg {
            c.remove();
        }
        stop(ctl, Failure::Setup(e))
    };
    if let (Some(c), Some(w)) = (cg, handoff) {
        let placed = timing::time("cgroup: reaper moved in", || c.place(reaper));
        let word = match placed {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        };
        // A reaper that is gone ends the run anyway; the helper hears of it below.
        let _ = sys::write_all(w.as_raw_fd(), &word.to_ne_bytes());
    }
    // The warm-up's own move is done by now (it held the cgroup mutex first, or came
    // after the reaper's at no cost): reaped here, on every path.
    drop(warm);
    let pidfd = match tell_reaper(ctl, reaper, side.network, timing::take()) {
        Ok(fd) => fd,
        Err(Some(e)) => fail(e),
        Err(None) => {
            sys::kill_and_reap(reaper);
            if let Some(c) = cg {
                c.remove();
            }
            exit_now(125)
        }
    };
    if let Some(null) = side.dev_null {
        sys::redirect_stdio(null);
        sys::close(null);
    }
    // A zygote's call helper is forked from the zygote, whose pages it shares; a one-shot
    // helper ran the caller's start-up too.
    helper_wait(ctl, reaper, &pidfd, cg, side.one_shot)
}

/// Passes the caller the reaper's pidfd (`reaper`: this process itself for a spare's
/// reaper, pid 1 of its namespace) and, in proxy mode, the call's listener, bound now in
/// the shared network namespace, with `phases`. The pidfd is returned. `Err(Some)`: the
/// step that failed; `Err(None)`: the caller could not be told (it is gone).
pub(crate) fn tell_reaper(
    ctl: RawFd,
    reaper: libc::pid_t,
    network: NetworkMode,
    phases: Vec<timing::Phase>,
) -> Result<OwnedFd, Option<SetupError>> {
    let pidfd = sys::pidfd_open(reaper).map_err(|e| Some(SetupError::ReaperPidfd(e.into())))?;
    let listener = match network {
        NetworkMode::Proxy { port } => Some(
            timing::time("proxy listener", || namespaces::proxy_listener(port))
                .map_err(|e| Some(SetupError::ProxyListener { port, source: OsError::from(e) }))?,
        ),
        NetworkMode::None => None,
    };
    let mut pass = vec![pidfd.as_raw_fd()];
    pass.extend(listener.as_ref().map(|l| l.as_raw_fd()));
    let msg = Msg::Reaper { listener: listener.is_some(), phases };
    proto::send(ctl, &msg, &pass).map_err(|_| None)?;
    Ok(pidfd)
}

/// Waits for the reaper; kills it if the parent hangs up the control socket. Then the
/// cgroup, empty with the pid namespace gone, is removed.
fn helper_wait(ctl: RawFd, reaper: libc::pid_t, pidfd: &OwnedFd, cg: Option<&SandboxCgroup>, release: bool) -> ! {
    // From here on this process only waits: once it has waited a while, the code it ran
    // to get here is handed back (when `release`).
    let mut release = release.then(|| i32::try_from(sys::RELEASE_CODE_AFTER.as_millis()).unwrap_or(i32::MAX));
    let remove = || {
        if let Some(c) = cg {
            c.remove();
        }
    };
    loop {
        let mut fds = [
            libc::pollfd { fd: ctl, events: 0, revents: 0 },
            libc::pollfd { fd: pidfd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        match sys::poll_raw(&mut fds, release.unwrap_or(-1)) {
            Err(_) => continue,
            Ok(0) => {
                release = None;
                sys::release_code();
                continue;
            }
            Ok(_) => {}
        }
        if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            sys::kill_and_reap(reaper);
            remove();
            exit_now(125);
        }
        if fds[1].revents != 0 {
            let ws = sys::reap(reaper).unwrap_or(0);
            if !(libc::WIFEXITED(ws) && libc::WEXITSTATUS(ws) == 0) {
                // The caller may be gone; nothing more to tell it then.
                let _ = proto::send(ctl, &Msg::ReaperLost { wstatus: ws }, &[]);
            }
            remove();
            // As above.
            let _ = proto::send(ctl, &Msg::Done, &[]);
            exit_now(0);
        }
    }
}
