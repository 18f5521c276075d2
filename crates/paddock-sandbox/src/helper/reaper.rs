//! Step 3, in the reaper (pid 1 of the sandbox's pid namespace): into the cgroup (and a
//! cgroup namespace rooted there), the mount view, the pty, `chdir`, signal forwarding;
//! then it forks the target and reaps every process until the target ends.

use std::os::fd::{AsRawFd, OwnedFd};

use super::state::{State, View};
use super::target;
use crate::cgroup::SandboxCgroup;
use crate::error::SetupError;
use crate::layer::{Applied, Layer, LayerState};
use crate::mounts;
use crate::namespaces::Namespaces;
use crate::proto::{self, Msg};
use crate::pty;
use crate::signals;
use crate::spec::Enforcement;
use crate::sys::{self, exit_now};
use crate::timing;

/// The reaper: pid 1 of the new pid namespace. `handoff`: where the helper says whether it
/// moved this process into the cgroup (`None`: it moves itself).
pub(super) fn main(mut st: State, ns: Namespaces, cg: Option<SandboxCgroup>, handoff: Option<OwnedFd>) -> ! {
    // Best effort: the helper also kills the reaper when the caller goes away.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
    sys::set_name(c"paddock-reaper");
    let null = sys::open_dev_null().ok();
    let start = timing::now_ns();
    let view = match st.zygote_view {
        Some(z) => call_view(&mut st, &ns, z.built, z.private_tmp),
        None => own_view(&mut st, &ns),
    };
    timing::record("mount view", start);
    // Into the cgroup before anything forks (the target, and so the whole tree, is born
    // there); the cgroup namespace is rooted there.
    if let Some(cg) = cg {
        timing::time("enter cgroup", || enter_cgroup(&mut st, &ns, &cg, handoff));
        drop(cg); // the descriptors; the helper removes the cgroup
    }
    st.strict_check();
    if st.pty {
        open_pty(&mut st);
    }
    if let Err(e) = std::env::set_current_dir(&st.spec.cwd) {
        st.fail(SetupError::Cwd { path: st.spec.cwd.clone(), source: e.into() });
    }
    if !ns.pid {
        // Without a pid namespace, orphans must still come to us to be reaped.
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0);
    }
    signals::reaper_install();
    let start = timing::now_ns();
    // SAFETY: the reaper is single-threaded (forked from the single-threaded helper).
    let target = match unsafe { sys::fork() } {
        Ok(0) => {
            timing::record("fork target", start);
            target::main(st, view)
        }
        Ok(pid) => pid,
        Err(e) => st.fail(SetupError::ForkTarget(e.into())),
    };
    signals::reaper_set_target(target);
    drop(st.pty_slave.take());
    if let Some(null) = null {
        sys::redirect_stdio(null);
        sys::close(null);
    }
    reap_until(st.ctl, target)
}

/// Moves into the sandbox's cgroup and, with a cgroup namespace, roots it there (the
/// tree sees the sandbox's cgroup as `/`). A cgroup that cannot be entered makes the
/// cgroup layer unavailable (rlimits still bound the run).
fn enter_cgroup(st: &mut State, ns: &Namespaces, cg: &SandboxCgroup, handoff: Option<OwnedFd>) {
    let entered = match handoff {
        Some(fd) => placed_by_helper(&fd),
        None => cg.enter(),
    };
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

/// Waits for the helper's word on moving this process into the cgroup: 0, or the errno.
fn placed_by_helper(fd: &OwnedFd) -> std::io::Result<()> {
    let mut word = [0u8; 4];
    let mut got = 0;
    while got < word.len() {
        match sys::read(fd.as_raw_fd(), &mut word[got..])? {
            0 => return Err(std::io::Error::other("the helper ended before it moved the reaper")),
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
        st.report.set(
            Layer::Mounts,
            LayerState::Unavailable,
            "no mount namespace: the host's filesystem, Landlock only",
        );
        return View { built: false, private_tmp: false };
    }
    match mounts::build(&st.plan, st.pty, false, st.spec.limits.tmpfs_size()) {
        Ok(view) => {
            st.report.record(Layer::Mounts, mounts::layer(&view, st.spec.enforcement == Enforcement::Strict));
            View { built: true, private_tmp: view.private_tmp }
        }
        Err(e) => st.fail(SetupError::MountView(e)),
    }
}

/// A zygote's call: its own mount namespace, copied from the zygote's view, gets the
/// per-call mounts (a fresh `/proc`, `/dev/shm`, and `/tmp` when private).
fn call_view(st: &mut State, ns: &Namespaces, built: bool, private_tmp: bool) -> View {
    if built && !ns.mount {
        st.fail(SetupError::CallSharesMounts);
    }
    if built {
        let size = st.spec.limits.tmpfs_size();
        let (proc_ok, notes) = match mounts::per_call(private_tmp, &st.plan, size) {
            Ok(r) => r,
            Err(e) => st.fail(SetupError::CallMounts(e)),
        };
        let prev = st.report.get(Layer::Mounts).map(|l| (l.state, l.detail.clone()));
        let (mut state, mut detail) = prev.unwrap_or((LayerState::Enforced, String::new()));
        detail.push_str(&format!(
            "; per call: {}, fresh /dev/shm{}, tmpfs of {} each",
            if proc_ok { "fresh /proc of the call's pid namespace" } else { "no /proc" },
            if private_tmp { " and private /tmp" } else { "" },
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
    }
    View { built, private_tmp }
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
fn reap_until(ctl: libc::c_int, target: libc::pid_t) -> ! {
    loop {
        match sys::wait_any() {
            Ok((pid, ws)) if pid == target => {
                // The caller may be gone; the reaper's exit ends the sandbox either way.
                let _ = proto::send(ctl, &Msg::Exit { wstatus: ws }, &[]);
                exit_now(0);
            }
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => exit_now(0),
            // Another process reaped, or EINTR: keep reaping.
            _ => {}
        }
    }
}
