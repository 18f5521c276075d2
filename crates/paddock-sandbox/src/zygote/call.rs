//! A call's helper, for [`super::server`] and [`super::spare`] alike: what the zygote
//! keeps for its calls, the call's own namespaces, the helper's first word to the caller;
//! and the helper the zygote forks once a `Spawn` came, when no spare took it.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::cgroup::SandboxCgroup;
use crate::error::SetupError;
use crate::helper::{self, State, ZygoteView};
use crate::layer::{Applied, Layer, LayerState};
use crate::namespaces::{self, Namespaces};
use crate::proto::{self, Failure, Msg};
use crate::report::EnforcementReport;
use crate::spec::{PathPlan, SandboxSpec};
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
    /// The template's path plan as seen from inside the zygote's view, made once: a
    /// spare starts from it ([`PathPlan::again`] checks it still holds).
    pub plan: PathPlan,
    /// A pidfd of the zygote itself: a spare that asked for its death signal too late
    /// (the zygote had ended) sees it readable.
    pub me: Option<OwnedFd>,
}

/// Forks the call's helper; the zygote keeps none of the call's descriptors.
pub(super) fn start_call(
    z: &ZygoteState,
    spec: SandboxSpec,
    cgroup: Applied,
    cgroup_dirs: &[String],
    fds: Vec<OwnedFd>,
) {
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
        Err(e) => {
            // The call's caller waits on this socket; if it is gone, nobody is left to tell.
            let failure = Msg::Failed(Failure::Setup(SetupError::ForkCallHelper(e.into())));
            let _ = proto::send(fds[0].as_raw_fd(), &failure, &[]);
        }
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
    let Some((ctl, cg_fds)) = crate::stdio::received_call(fds) else { exit_now(125) };
    let cg = SandboxCgroup::received(cgroup_dirs, cg_fds, &mut cgroup);
    let ctl = ctl.into_raw_fd(); // kept for the life of the process (close-on-exec)
    helper::announce(ctl, false);
    let mut st = State {
        plan: PathPlan::new(&spec),
        spec,
        pty: false,
        report: z.report.clone(),
        cgroup,
        ctl,
        pty_slave: None,
        zygote_view: Some(z.view),
        landlock_ahead: None,
        scratch_ahead: None,
        mounts_ahead: None,
        dev_null: None,
    };
    let ns = crate::timing::time("call namespaces", || call_namespaces(&mut st.report));
    st.strict_check();
    // The session's warmer keeps the calls' moves fast ([`crate::cgroup::Warmer`]).
    helper::start_reaper(st, ns, cg, None)
}

/// The call's own namespaces (pid, mount, ipc, cgroup), entered by its helper.
fn call_namespaces(report: &mut EnforcementReport) -> Namespaces {
    let ns = namespaces::enter_only(report, namespaces::PER_CALL);
    call_mount_ns(report);
    ns
}

/// The mount namespace's detail for a zygote's call: its own, over the zygote's.
pub(super) fn call_mount_ns(report: &mut EnforcementReport) {
    if let Some(l) = report.get(Layer::MountNs).cloned() {
        if l.state == LayerState::Enforced {
            report.set(Layer::MountNs, l.state, "the zygote's, then one of the call's own (its /proc, /tmp, /dev/shm)");
        }
    }
}
