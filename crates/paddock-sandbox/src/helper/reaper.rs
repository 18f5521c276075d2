//! Step 3, in the reaper (pid 1 of the sandbox's pid namespace): into the cgroup (and a
//! cgroup namespace rooted there), the mount view, the pty, `chdir`, signal forwarding;
//! then it starts the target (in its memory until the target's `execve`, the reaper
//! suspended meanwhile) and reaps every process until the target ends.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use super::state::{State, View, ZygoteView};
use super::target;
use crate::cgroup::SandboxCgroup;
use crate::error::SetupError;
use crate::layer::{Applied, Layer, LayerState};
use crate::mounts;
use crate::namespaces::Namespaces;
use crate::proto::{self, Msg};
use crate::pty;
use crate::signals;
use crate::spec::{Enforcement, PathPlan, TmpfsSize};
use crate::sys::{self, exit_now};
use crate::timing;

/// How the reaper gets into the sandbox's cgroup.
pub(crate) enum CgroupEntry {
    /// The helper moves it, and writes on this pipe how that went: a word, 0 or the errno.
    Helper(OwnedFd),
    /// It moves itself.
    Itself(SandboxCgroup),
}

/// The reaper: pid 1 of the new pid namespace. `cg`: how it enters the cgroup, if there
/// is one.
pub(super) fn main(mut st: State, ns: Namespaces, cg: Option<CgroupEntry>) -> ! {
    begin();
    let null = st.dev_null();
    let start = timing::now_ns();
    let view = match st.zygote_view {
        Some(z) => {
            let mounts = call_mounts(&ns, z, &st.plan, st.spec.limits.tmpfs_size());
            call_view(&mut st, z, mounts)
        }
        None => own_view(&mut st, &ns),
    };
    timing::record("mount view", start);
    confine_tree(st, ns, view, cg, null)
}

/// A zygote's spare ([`crate::zygote`]), pid 1 of the call's namespaces and its own call
/// helper: the per-call mounts are made before the call comes, at the template's size,
/// and the Landlock ruleset with them. Then it takes the next `Spawn` from the zygote's
/// socket `zygote` itself (its spec, the cgroup status, and its control socket, stdio
/// and cgroup attached), tells the caller its pidfd (as a call helper would, and as the
/// reaper) and the zygote that it took a call (`took`: a pipe and the byte to write),
/// moves itself into the cgroup and goes on as [`main`] does. The caller's end of the
/// call's socket closing ends it.
pub(crate) fn spare(mut st: State, ns: Namespaces, z: ZygoteView, zygote: RawFd, took: (OwnedFd, u8)) -> ! {
    let null = st.dev_null();
    let start = timing::now_ns();
    let made = st.spec.limits.tmpfs_size();
    let mounts = call_mounts(&ns, z, &st.plan, made);
    timing::record("spare: per-call mounts, made ahead", start);
    if mounts.is_ok() {
        // In this mount namespace, once its per-call mounts are there: the rules name them.
        let start = timing::now_ns();
        let facts = crate::landlock::Facts::of(&st.spec, &st.report, z.built, true);
        st.landlock_ahead = crate::landlock::prepare(&st.spec, &st.plan, &facts, z.private_tmp);
        timing::record("spare: landlock ruleset, made ahead", start);
    }
    // Only what an `execve` may grant: the spare keeps its effective capabilities. The
    // target empties what is left of it and reports the layer.
    let _ = timing::time("spare: capability bounding set emptied, ahead", crate::caps::empty_bounding_set);
    let (body, fds) = loop {
        match proto::recv_raw_shared(zygote) {
            Ok(Some((body, fds))) if fds.len() >= 4 => break (body, fds),
            // A `Spawn` without its descriptors.
            Ok(Some((_, fds))) => proto::refuse_malformed(&fds),
            // The socket hung up: the zygote reads that too, and ends.
            Ok(None) => exit_now(0),
            Err(e) if e.raw_os_error().is_some() => exit_now(0),
            Err(_) => {} // an unreadable message: ignored
        }
    };
    // This is the call's now, and outlives the zygote as calls do.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0, 0);
    let start = timing::now_ns();
    // No call may speak to the zygote.
    sys::close(zygote);
    let Ok(Msg::Spawn { spec, cgroup, cgroup_dirs }) = proto::parse(&body) else { exit_now(125) };
    let Some((ctl, cg_fds)) = crate::stdio::received_call(fds) else { exit_now(125) };
    st.ctl = ctl.into_raw_fd(); // kept for the life of the process (close-on-exec)
    super::announce(st.ctl, true);
    if let Err(e) = signals::reaper_watch_caller(st.ctl) {
        st.fail(SetupError::WatchCaller(e.into()));
    }
    st.plan = PathPlan::again(std::mem::take(&mut st.plan), &st.spec, &spec);
    st.spec = *spec;
    st.cgroup = cgroup;
    let cg = SandboxCgroup::received(&cgroup_dirs, cg_fds, &mut st.cgroup);
    // The caller's copy of this process's pidfd, as the reaper's; then the zygote forks
    // the next spare (so its set-up does not compete with this call's first steps).
    match super::tell_reaper(st.ctl, std::process::id() as libc::pid_t, st.spec.network, Vec::new()) {
        Ok(_) => {}
        Err(Some(e)) => st.fail(e),
        Err(None) => exit_now(125),
    }
    let _ = sys::write_all(took.0.as_raw_fd(), &[took.1]);
    drop(took);
    let size = st.spec.limits.tmpfs_size();
    let mounts = match mounts {
        Ok(Some(m)) if size != made => {
            mounts::resize_per_call(z.private_tmp, size).map(|()| Some(m)).map_err(SetupError::CallMounts)
        }
        other => other,
    };
    let view = call_view(&mut st, z, mounts);
    timing::record("call taken, mount view", start);
    confine_tree(st, ns, view, cg.map(CgroupEntry::Itself), null)
}

/// What every reaper does first: it dies with the helper, and is named.
pub(super) fn begin() {
    // Best effort: the helper also kills the reaper when the caller goes away.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
    sys::set_name(c"paddock-reaper");
}

/// The rest of step 3 once the mount view is there: into the cgroup, the pty, `chdir`,
/// signal forwarding, the target's start; then it reaps until the target ends.
fn confine_tree(mut st: State, ns: Namespaces, view: View, cg: Option<CgroupEntry>, null: Option<RawFd>) -> ! {
    // Into the cgroup before anything forks (the target, and so the whole tree, is born
    // there); the cgroup namespace is rooted there.
    if let Some(cg) = cg {
        timing::time("enter cgroup", || enter_cgroup(&mut st, &ns, cg));
    }
    st.strict_check();
    if st.pty {
        open_pty(&mut st);
    }
    if let Err(e) = std::env::set_current_dir(&st.spec.cwd) {
        st.fail(SetupError::Cwd { path: st.spec.cwd.clone(), source: e.into() });
    }
    if let Some(want) = st.spec.cwd_identity {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(".") {
            Ok(m) if (m.dev(), m.ino()) == want => {}
            Ok(m) => st.fail(SetupError::CwdChanged { path: st.spec.cwd.clone(), want, found: (m.dev(), m.ino()) }),
            Err(e) => st.fail(SetupError::Cwd { path: st.spec.cwd.clone(), source: e.into() }),
        }
    }
    if !ns.pid {
        // Without a pid namespace, orphans must still come to us to be reaped.
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0);
    }
    signals::reaper_install();
    let (ctl, one_shot) = (st.ctl, st.zygote_view.is_none());
    let slave = st.pty_slave.as_ref().map(|s| s.as_raw_fd());
    let start = timing::now_ns();
    let target = move || {
        timing::record("fork target", start);
        target::main(st, view)
    };
    // SAFETY: the reaper is single-threaded (forked from the single-threaded helper). The
    // target confines itself in this process's memory while the reaper waits, and
    // `execve`s (or exits): nothing of ours runs in the target once it exec'd, and the
    // reaper uses none of `st` (moved to the target) from here on. No other process shares
    // the memory meanwhile, so nothing can change what the exec supervisor read of the
    // target's `execve` arguments before the kernel reads them again.
    let target = match unsafe { sys::spawn_vfork(Box::new(target)) } {
        Ok(pid) => pid,
        Err(e) => super::stop(ctl, crate::proto::Failure::Setup(SetupError::ForkTarget(e.into()))),
    };
    signals::reaper_set_target(target);
    // The reaper's copy of the pty slave (the target took it as its terminal).
    if let Some(slave) = slave {
        sys::close(slave);
    }
    if let Some(null) = null {
        sys::redirect_stdio(null);
        sys::close(null);
    }
    reap_until(ctl, target, one_shot, ns.pid)
}

/// Moves into the sandbox's cgroup and, with a cgroup namespace, roots it there (the
/// tree sees the sandbox's cgroup as `/`). A cgroup that cannot be entered makes the
/// cgroup layer unavailable (rlimits still bound the run). The descriptors of the cgroup
/// are closed here; the helper removes it.
fn enter_cgroup(st: &mut State, ns: &Namespaces, cg: CgroupEntry) {
    let entered = match &cg {
        CgroupEntry::Helper(fd) => placed_by_helper(fd),
        CgroupEntry::Itself(cg) => cg.enter(),
    };
    drop(cg);
    match entered {
        Ok(()) if ns.cgroup => {
            if sys::unshare(libc::CLONE_NEWCGROUP).is_err() {
                st.report.set(Layer::CgroupNs, LayerState::Partial, "new namespace, rooted above the sandbox's cgroup");
            }
        }
        Ok(()) => {}
        Err(e) => {
            st.cgroup = Applied::new(
                LayerState::Unavailable,
                format!("moving into the sandbox's cgroup failed: {e}; only RLIMIT_NPROC (per uid, not for root) and RLIMIT_AS (per process) bound memory and processes"),
            );
        }
    }
}

/// Waits for the word on moving this process into the cgroup (from the helper, or from
/// the caller for a pid 1 cloned with no helper): 0, or the errno.
fn placed_by_helper(fd: &OwnedFd) -> std::io::Result<()> {
    let mut word = [0u8; 4];
    let mut got = 0;
    while got < word.len() {
        match sys::read(fd.as_raw_fd(), &mut word[got..])? {
            0 => {
                return Err(std::io::Error::other(
                    "the process that moves the reaper (its helper, or the caller) ended before it did",
                ))
            }
            n => got += n,
        }
    }
    match i32::from_ne_bytes(word) {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// A one-shot run's mount view, built here in the reaper's mount namespace.
fn own_view(st: &mut State, ns: &Namespaces) -> View {
    if !ns.mount {
        st.report.set(Layer::Mounts, LayerState::Unavailable, mounts::NO_VIEW);
        return View { built: false, private_tmp: false };
    }
    let ahead = st.mounts_ahead.take();
    match mounts::build(&st.plan, st.pty, false, st.spec.limits.tmpfs_size(), st.scratch_ahead.take(), ahead) {
        Ok(view) => {
            st.report.record(Layer::Mounts, mounts::layer(&view, st.spec.enforcement == Enforcement::Strict));
            View { built: true, private_tmp: view.private_tmp }
        }
        Err(e) => st.fail(SetupError::MountView(e)),
    }
}

/// A zygote's call: its own mount namespace, copied from the zygote's view, gets the
/// per-call mounts (a fresh `/proc`, `/dev/shm`, and `/tmp` when private); `None` when
/// the zygote has no view. Returns whether /proc is there, and notes.
fn call_mounts(ns: &Namespaces, z: ZygoteView, plan: &PathPlan, size: TmpfsSize) -> CallMounts {
    if z.built && !ns.mount {
        return Err(SetupError::CallSharesMounts);
    }
    if !z.built {
        return Ok(None);
    }
    mounts::per_call(z.private_tmp, plan, size).map(Some).map_err(SetupError::CallMounts)
}

/// The per-call mounts' outcome: whether /proc is there, and notes.
type CallMounts = Result<Option<(bool, Vec<String>)>, SetupError>;

/// Records the per-call mounts in the report (a failure stops the call).
fn call_view(st: &mut State, z: ZygoteView, mounts: CallMounts) -> View {
    let (proc_ok, notes) = match mounts {
        Err(e) => st.fail(e),
        Ok(None) => return View { built: z.built, private_tmp: z.private_tmp },
        Ok(Some(r)) => r,
    };
    let size = st.spec.limits.tmpfs_size();
    let prev = st.report.get(Layer::Mounts).map(|l| (l.state, l.detail.clone()));
    let (mut state, mut detail) = prev.unwrap_or((LayerState::Enforced, String::new()));
    detail.push_str(&format!(
        "; per call: {}, fresh /dev/shm{}, tmpfs of {} each",
        if proc_ok { "fresh /proc of the call's pid namespace" } else { "no /proc" },
        if z.private_tmp { " and private /tmp" } else { "" },
        size
    ));
    if !notes.is_empty() {
        detail.push_str("; ");
        detail.push_str(&notes.join("; "));
    }
    if (!proc_ok || !notes.is_empty()) && state == LayerState::Enforced {
        state = LayerState::Partial;
    }
    st.report.set(Layer::Mounts, state, detail);
    View { built: z.built, private_tmp: z.private_tmp }
}

/// Opens a pty in the sandbox's own devpts and sends the master to the caller; the target
/// takes the slave as its controlling terminal.
fn open_pty(st: &mut State) {
    match pty::open_pair() {
        Ok((master, slave)) => {
            if proto::send(st.ctl, &Msg::Pty, &[master.as_raw_fd()]).is_err() {
                exit_now(125);
            }
            st.pty_slave = Some(slave);
        }
        Err(e) => st.fail(SetupError::OpenPty(e.into())),
    }
}

/// Reaps every process until `target` ends, reports its wait status, and exits (which,
/// as pid 1, kills whatever the target left behind).
fn reap_until(ctl: libc::c_int, target: libc::pid_t, release: bool, pid_ns: bool) -> ! {
    // From here on this process only reaps: once the target has run a while, the code
    // that built the sandbox is handed back (the alarm interrupts the wait for it).
    let mut release = release && signals::reaper_alarm(sys::RELEASE_CODE_AFTER).is_ok();
    loop {
        match sys::wait_any() {
            Ok((pid, ws)) if pid == target => {
                // The caller may be gone; the reaper's exit ends the sandbox either way.
                // Without a pid namespace other processes of the tree may not be this
                // process's children: never said to be gone then.
                let gone = pid_ns && sys::no_child_left();
                let _ = proto::send(ctl, &Msg::Exit { wstatus: ws, gone }, &[]);
                exit_now(0);
            }
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => exit_now(0),
            Err(e) if release && e.kind() == std::io::ErrorKind::Interrupted && signals::alarm_rang() => {
                release = false;
                // Stopping a timer with valid values cannot fail (`setitimer` fails
                // only on a bad value or address); were it left running, it would only
                // interrupt each wait, which goes on.
                let _ = signals::reaper_alarm_off();
                sys::release_code();
            }
            // Another process reaped, or EINTR: keep reaping.
            _ => {}
        }
    }
}
