//! [`State`]: what the helper's steps carry through the forks, and how a step that fails
//! stops the run ([`stop`], [`strict_check`]).

use std::os::fd::{OwnedFd, RawFd};

use crate::error::SetupError;
use crate::layer::Applied;
use crate::proto::{self, Failure, Msg};
use crate::report::EnforcementReport;
use crate::spec::{Enforcement, PathPlan, SandboxSpec};
use crate::sys::exit_now;

/// Everything the later steps need, carried through the forks.
pub(crate) struct State {
    pub spec: SandboxSpec,
    pub pty: bool,
    pub plan: PathPlan,
    pub report: EnforcementReport,
    /// The cgroup layer's status, decided when the cgroup was made (and changed by the
    /// reaper if it cannot enter it).
    pub cgroup: Applied,
    pub ctl: RawFd,
    /// The pty slave the target takes as its terminal.
    pub pty_slave: Option<OwnedFd>,
    /// A zygote's call: the mount view is the zygote's; the reaper only adds the per-call
    /// mounts.
    pub zygote_view: Option<ZygoteView>,
    /// The Landlock ruleset a spare reaper made before its call came (the target uses it
    /// if the call asks for the same rules).
    pub landlock_ahead: Option<crate::landlock::Prepared>,
    /// How entering the mount view's scratch root went, when a helper forked ahead did it
    /// while it waited for its spec ([`crate::mounts::enter_scratch_ahead`]).
    pub scratch_ahead: Option<std::io::Result<()>>,
    /// What a one-shot run's reaper forked ahead made of `/proc` and `/dev` while it
    /// waited for its spec ([`crate::mounts::make_ahead`]).
    pub mounts_ahead: Option<crate::mounts::MadeAhead>,
    /// The host's `/dev/null`, opened before the scratch root was entered ahead (it has
    /// none): what the helper and the reaper point their standard descriptors at.
    pub dev_null: Option<RawFd>,
}

impl State {
    /// `/dev/null` for this process's standard descriptors: the one opened ahead, else
    /// opened now.
    pub(crate) fn dev_null(&self) -> Option<RawFd> {
        match self.dev_null {
            Some(fd) => Some(fd),
            None => crate::sys::open_dev_null().ok(),
        }
    }
}

/// The mount view a zygote built once for its calls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZygoteView {
    /// The view was built (else Landlock alone guards the filesystem).
    pub built: bool,
    /// The view has a private `/tmp` (remounted fresh for each call).
    pub private_tmp: bool,
}

impl State {
    /// Reports the failed step to the caller and exits 125.
    pub(crate) fn fail(&self, e: SetupError) -> ! {
        stop(self.ctl, Failure::Setup(e))
    }

    /// A strict run stops at the first unavailable layer it cannot do without.
    pub(crate) fn strict_check(&self) {
        strict_check(&self.spec, &self.report, self.ctl)
    }
}

/// Sends `failure` to the caller and exits with its code (71 or 125).
pub(crate) fn stop(ctl: RawFd, failure: Failure) -> ! {
    let code = failure.exit_code();
    // The exit code says it if the caller is gone.
    let _ = proto::send(ctl, &Msg::Failed(failure), &[]);
    exit_now(code)
}

/// Under [`Enforcement::Strict`], stops at the first unavailable layer of `report` that a
/// strict run cannot do without.
pub(crate) fn strict_check(spec: &SandboxSpec, report: &EnforcementReport, ctl: RawFd) {
    if spec.enforcement == Enforcement::Strict {
        if let Some(l) = report.first_missing_for(spec) {
            stop(ctl, Failure::Layer { layer: l.name, detail: l.detail.clone() });
        }
    }
}

/// What the target needs to know of the mount view for Landlock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// The mount view is in place.
    pub built: bool,
    /// `/tmp` is the sandbox's own.
    pub private_tmp: bool,
}
