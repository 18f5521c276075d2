//! The zygote process: steps 1 to 3 once (session, namespaces, the mount view), then one
//! call helper per `Spawn` message, which enters the call's own namespaces and runs the
//! helper's reaper and target steps. The call helper is forked ahead of its call when it
//! can be ([`super::spare`]); else here, once the `Spawn` came ([`serve_one`]).

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::cgroup::SandboxCgroup;
use crate::error::SetupError;
use crate::helper::{self, State, ZygoteView};
use crate::layer::{Applied, Layer, LayerState};
use crate::mounts;
use crate::namespaces::{self, Namespaces};
use crate::proto::{self, Failure, Msg, Request};
use crate::report::EnforcementReport;
use crate::spec::{Enforcement, PathPlan, SandboxSpec};
use crate::sys::{self, exit_now};

/// What the zygote process keeps for its calls.
pub(super) struct ZygoteState {
    /// The zygote's control socket, where the `Spawn` messages come.
    pub ctl: RawFd,
    /// The layers the zygote applied.
    pub report: EnforcementReport,
    pub view: ZygoteView,
    /// The spec the zygote was started with (its paths are every call's).
    pub template: SandboxSpec,
}

/// The zygote process: steps 1 to 3, then one fork per `Spawn`. Never returns.
pub(crate) fn main(req: Request, ctl: RawFd) -> ! {
    let plan = PathPlan::new(&req.spec);
    let mut report = EnforcementReport::default();
    helper::new_session(&mut report, &req.launch);
    let ns = namespaces::enter_only(&mut report, namespaces::ZYGOTE);
    helper::strict_check(&req.spec, &report, ctl);
    if let Some(l) = report.get(Layer::NetNs).cloned() {
        report.set(Layer::NetNs, l.state, format!("{}; shared by the session's calls", l.detail));
    }
    let view = build_view(&req.spec, &plan, &ns, &mut report, ctl);
    helper::strict_check(&req.spec, &report, ctl);
    // The calls chdir to their own cwd; "/" only keeps the zygote off any mount.
    let _ = std::env::set_current_dir("/");
    let ready = Msg::ZygoteReady { report: report.clone(), mounts_ok: view.built, private_tmp: view.private_tmp };
    if proto::send(ctl, &ready, &[]).is_err() {
        exit_now(125);
    }
    if let Ok(null) = sys::open_dev_null() {
        sys::redirect_stdio(null);
        sys::close(null);
    }
    // The calls' helpers are reaped by the kernel (they report to the caller themselves).
    sys::ignore_sigchld(true);
    // Compile the seccomp filters once: every call forked from here inherits them.
    crate::seccomp::prepare();
    let z = ZygoteState { ctl, report, view, template: req.spec };
    loop {
        // A spare takes the next call itself; this process reads the socket only when no
        // spare could be forked, or one ended without a call (the socket hung up, most
        // likely: the read below sees it).
        if !super::spare::run_one(&z) {
            serve_one(&z);
        }
    }
}

/// Reads one message from the zygote's socket and starts its call (the zygote ends when
/// the socket hangs up).
fn serve_one(z: &ZygoteState) {
    match proto::recv(z.ctl) {
        Ok(None) => exit_now(0),
        Ok(Some((Msg::Spawn { spec, cgroup, cgroup_dirs }, fds))) => start_call(z, *spec, cgroup, &cgroup_dirs, fds),
        Ok(Some(_)) => {}
        Err(e) if e.raw_os_error().is_some() => exit_now(0),
        Err(_) => {} // an unreadable message: ignored
    }
}

/// The template's mount view, built once and shared by the calls.
fn build_view(
    spec: &SandboxSpec,
    plan: &PathPlan,
    ns: &Namespaces,
    report: &mut EnforcementReport,
    ctl: RawFd,
) -> ZygoteView {
    if !ns.mount {
        report.set(Layer::Mounts, LayerState::Unavailable, "no mount namespace: the host's filesystem, Landlock only");
        return ZygoteView { built: false, private_tmp: false };
    }
    match mounts::build(plan, false, true, spec.limits.tmpfs_size()) {
        Ok(view) => {
            let applied = mounts::layer(&view, spec.enforcement == Enforcement::Strict);
            report.set(
                Layer::Mounts,
                applied.state,
                format!("{} (built once, shared by the session's calls)", applied.detail),
            );
            ZygoteView { built: true, private_tmp: view.private_tmp }
        }
        Err(e) => helper::stop(ctl, Failure::Setup(SetupError::MountView(e))),
    }
}

/// Forks the call's helper; the zygote keeps none of the call's descriptors.
fn start_call(z: &ZygoteState, spec: SandboxSpec, cgroup: Applied, cgroup_dirs: &[String], fds: Vec<OwnedFd>) {
    let refuse = |ctl: &OwnedFd, e: SetupError| {
        // The call's caller waits on this socket; if it is gone, nobody is left to tell.
        let _ = proto::send(ctl.as_raw_fd(), &Msg::Failed(Failure::Setup(e)), &[]);
    };
    if fds.len() < 4 {
        return proto::refuse_malformed(&fds);
    }
    // SAFETY: the zygote is single-threaded.
    match unsafe { sys::fork() } {
        Ok(0) => {
            crate::timing::clear();
            call_main(z, spec, cgroup, cgroup_dirs, fds)
        }
        Ok(_) => {}
        Err(e) => refuse(&fds[0], SetupError::ForkCallHelper(e.into())),
    }
}

/// The call's helper: the caller's stdio on 0, 1, 2; its pidfd to the caller; new pid,
/// mount, ipc, cgroup namespaces; then the reaper, the proxy listener and the wait of the
/// one-shot helper ([`helper::start_reaper`]).
fn call_main(z: &ZygoteState, spec: SandboxSpec, mut cgroup: Applied, cgroup_dirs: &[String], fds: Vec<OwnedFd>) -> ! {
    // The reaper's waitpid needs SIGCHLD not ignored.
    sys::ignore_sigchld(false);
    // The zygote's control socket, in this process only: no call may speak to the zygote.
    sys::close(z.ctl);
    let mut fds = fds.into_iter();
    let (Some(ctl), Some(i), Some(o), Some(e)) = (fds.next(), fds.next(), fds.next(), fds.next()) else {
        exit_now(125)
    };
    for (fd, target) in [(&i, 0), (&o, 1), (&e, 2)] {
        // Received, so above 2: no standard descriptor is clobbered.
        if sys::dup_onto_stdio(fd, target).is_err() {
            exit_now(125);
        }
    }
    drop((i, o, e));
    let cg = SandboxCgroup::received(cgroup_dirs, fds.collect(), &mut cgroup);
    let ctl = ctl.into_raw_fd(); // kept for the life of the process (close-on-exec)
    announce(ctl);
    let mut st = State {
        plan: PathPlan::new(&spec),
        spec,
        pty: false,
        report: z.report.clone(),
        cgroup,
        ctl,
        pty_slave: None,
        zygote_view: Some(z.view),
    };
    let ns = crate::timing::time("call namespaces", || call_namespaces(&mut st.report));
    st.strict_check();
    // The session's warmer keeps the calls' moves fast ([`crate::cgroup::Warmer`]).
    helper::start_reaper(st, ns, cg, None)
}

/// The call's own namespaces (pid, mount, ipc, cgroup), entered by its helper.
pub(super) fn call_namespaces(report: &mut EnforcementReport) -> Namespaces {
    let ns = namespaces::enter_only(report, namespaces::PER_CALL);
    if let Some(l) = report.get(Layer::MountNs).cloned() {
        if l.state == LayerState::Enforced {
            report.set(Layer::MountNs, l.state, "the zygote's, then one of the call's own (its /proc, /tmp, /dev/shm)");
        }
    }
    ns
}

/// The call helper's first word on the call's socket: its own pidfd, so the caller can
/// kill it although it is not the caller's child.
pub(super) fn announce(ctl: RawFd) {
    match sys::pidfd_open(std::process::id() as libc::pid_t) {
        Ok(me) => {
            if proto::send(ctl, &Msg::CallHelper, &[me.as_raw_fd()]).is_err() {
                exit_now(125);
            }
        }
        Err(err) => helper::stop(ctl, Failure::Setup(SetupError::CallPidfd(err.into()))),
    }
}
