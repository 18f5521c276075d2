//! The zygote process: steps 1 to 3 once (session, namespaces, the mount view), then the
//! calls: each taken by a spare, the call's pid 1 forked ahead of it into the call's own
//! namespaces ([`super::spare`]); where no spare could be forked, by a call helper forked
//! here once the `Spawn` came ([`serve_one`]), which enters the call's namespaces and runs
//! the helper's reaper and target steps.

use std::os::fd::RawFd;

use super::call::{self, ZygoteState};
use crate::error::SetupError;
use crate::helper::{self, ZygoteView};
use crate::layer::{Layer, LayerState};
use crate::mounts;
use crate::namespaces::{self, Namespaces};
use crate::proto::{self, Failure, Msg, Request};
use crate::report::EnforcementReport;
use crate::spec::{Enforcement, PathPlan, SandboxSpec};
use crate::sys::{self, exit_now};

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
    // Compile the seccomp filter once: every call forked from here inherits it.
    crate::seccomp::prepare(req.spec.exec.is_some());
    // The spares check the plan from inside the view, where a hidden path outside it is
    // absent: made again here once, so that check holds while nothing changes.
    let plan = PathPlan::again(plan, &req.spec, &req.spec);
    let me = sys::pidfd_open(std::process::id() as libc::pid_t).ok();
    let z = ZygoteState { ctl, report, view, template: req.spec, plan, me };
    let mut spares = Vec::new();
    loop {
        // Spares take the next calls themselves, each a `Spawn` of its own; a new one is
        // forked once one took a call (and the caller has its reaper). This process reads
        // the socket only when no spare could be forked, or one ended without a call (the
        // socket hung up, most likely: the read below sees it).
        while spares.len() < super::spare::SPARES {
            match super::spare::fork(&z) {
                Some(took) => spares.push(took),
                None => break,
            }
        }
        if spares.is_empty() || !super::spare::wait_any(&mut spares) {
            serve_one(&z);
        }
    }
}

/// Reads one message from the zygote's socket and starts its call (the zygote ends when
/// the socket hangs up). The spares read the socket meanwhile: whoever reads first takes
/// the message.
fn serve_one(z: &ZygoteState) {
    match proto::recv_shared(z.ctl) {
        Ok(None) => exit_now(0),
        Ok(Some((Msg::Spawn { spec, cgroup, cgroup_dirs }, fds))) => {
            call::start_call(z, *spec, cgroup, &cgroup_dirs, fds)
        }
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
        report.set(Layer::Mounts, LayerState::Unavailable, mounts::NO_VIEW);
        return ZygoteView { built: false, private_tmp: false };
    }
    match mounts::build(plan, false, true, spec.limits.tmpfs_size(), None, None) {
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
