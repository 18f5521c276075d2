//! The groups of rights paddock asks Landlock for ([`Right`]), what else covers each on a
//! kernel without it ([`cover`]), and so the level each is asked at ([`needs`]).

use ::landlock::CompatLevel;

use crate::layer::Layer;
use crate::report::EnforcementReport;
use crate::spec::{Enforcement, SandboxSpec};

/// The Landlock ABI version of the running kernel (0: unsupported or disabled).
pub fn kernel_abi() -> i64 {
    crate::sys::landlock_abi_version()
}

/// A group of rights paddock asks Landlock for, each brought by one ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Right {
    /// Execute, read/write file, read dir, remove file/dir, make anything (ABI 1).
    Filesystem,
    /// Reparenting a file: cross-directory rename and link (ABI 2).
    Refer,
    /// Truncating a file (ABI 3).
    Truncate,
    /// TCP bind and connect (ABI 4).
    Tcp,
    /// ioctl on a character or block device (ABI 5).
    IoctlDev,
    /// Connecting to an abstract unix socket outside the domain (ABI 6).
    AbstractUnixSocket,
    /// Signalling a process outside the domain (ABI 6).
    Signal,
}

impl Right {
    /// Every right, in ABI order.
    pub(crate) const ALL: [Right; 7] = [
        Right::Filesystem,
        Right::Refer,
        Right::Truncate,
        Right::Tcp,
        Right::IoctlDev,
        Right::AbstractUnixSocket,
        Right::Signal,
    ];

    /// The Landlock ABI that brought it.
    pub(crate) fn abi(self) -> i64 {
        match self {
            Right::Filesystem => 1,
            Right::Refer => 2,
            Right::Truncate => 3,
            Right::Tcp => 4,
            Right::IoctlDev => 5,
            Right::AbstractUnixSocket | Right::Signal => 6,
        }
    }

    /// Its name in the report, with the ABI and the first Linux release that has it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Right::Filesystem => "filesystem rights (ABI 1, Linux 5.13)",
            Right::Refer => "file reparenting (ABI 2, Linux 5.19)",
            Right::Truncate => "truncate (ABI 3, Linux 6.2)",
            Right::Tcp => "TCP bind and connect rules (ABI 4, Linux 6.7)",
            Right::IoctlDev => "device ioctl (ABI 5, Linux 6.10)",
            Right::AbstractUnixSocket => "abstract unix socket scope (ABI 6, Linux 6.12)",
            Right::Signal => "signal scope (ABI 6, Linux 6.12)",
        }
    }
}

/// The child's network namespace, as far as Landlock is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetNs {
    /// Its own: `lo`, and at most its own proxy listener.
    Own,
    /// Shared with the other calls of a zygote (each call's proxy listener is there).
    Shared,
    /// None could be had: the host's.
    Host,
}

/// What the sandbox already holds when Landlock is applied: what decides which rights
/// nothing else covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The policy's enforcement.
    pub enforcement: Enforcement,
    /// The child's network namespace.
    pub netns: NetNs,
    /// The child has a pid namespace of its own.
    pub own_pidns: bool,
    /// The mount view was built: read paths are `ro,nodev` binds, write paths `nodev`, the
    /// root read-only, `/dev` minimal.
    pub mount_view: bool,
}

impl Facts {
    /// The facts of a child about to be confined: `report` holds the namespaces and mount
    /// view so far; `shared_netns` is set for a zygote's call.
    pub(crate) fn of(spec: &SandboxSpec, report: &EnforcementReport, mounts_ok: bool, shared_netns: bool) -> Facts {
        let netns = if !report.is_active(Layer::NetNs) {
            NetNs::Host
        } else if shared_netns {
            NetNs::Shared
        } else {
            NetNs::Own
        };
        Facts { enforcement: spec.enforcement, netns, own_pidns: report.is_active(Layer::PidNs), mount_view: mounts_ok }
    }
}

/// What covers `right` on a kernel without it, given `facts`; `None`: nothing does.
pub(crate) fn cover(right: Right, facts: &Facts) -> Option<&'static str> {
    match right {
        Right::Filesystem => None,
        Right::Refer => Some("below ABI 2 the kernel denies every cross-directory rename and link (stricter, not looser)"),
        Right::Truncate => facts.mount_view.then_some(
            "outside the write paths every mount of the view is read-only (truncate fails with EROFS) but /proc and the device files, where truncate changes nothing",
        ),
        Right::IoctlDev => facts.mount_view.then_some(
            "the binds are nodev, and /dev holds only null, zero, full, random, urandom, tty and a private devpts, granted ioctl anyway",
        ),
        Right::Tcp => (facts.netns == NetNs::Own)
            .then_some("the network namespace is the child's own: only lo, where nothing listens but its own proxy"),
        Right::AbstractUnixSocket => (facts.netns == NetNs::Own)
            .then_some("the network namespace is the child's own, and abstract sockets belong to it"),
        Right::Signal => facts.own_pidns.then_some("the pid namespace is the child's own: no process outside it can be named"),
    }
}

/// The compatibility level of each right under `facts`: under `strict`, a hard requirement
/// when nothing else covers it, best effort otherwise; under `best-effort`, best effort.
pub(crate) fn needs(facts: &Facts) -> [(Right, CompatLevel); 7] {
    Right::ALL.map(|r| {
        let level = match facts.enforcement {
            Enforcement::Strict if cover(r, facts).is_none() => CompatLevel::HardRequirement,
            Enforcement::Strict | Enforcement::BestEffort => CompatLevel::BestEffort,
        };
        (r, level)
    })
}

/// The rights of `needs` at `level` that a kernel of Landlock ABI `abi` lacks.
pub(crate) fn lacking(needs: &[(Right, CompatLevel)], level: CompatLevel, abi: i64) -> Vec<Right> {
    needs.iter().filter(|(r, l)| *l == level && r.abi() > abi).map(|(r, _)| *r).collect()
}

/// The lowest Landlock ABI with which a zygote's call (a shared network namespace, a pid
/// namespace and mount view of its own) runs under `strict`: the highest ABI among the
/// rights it requires.
pub fn shared_netns_abi() -> i64 {
    let facts = Facts { enforcement: Enforcement::Strict, netns: NetNs::Shared, own_pidns: true, mount_view: true };
    needs(&facts).iter().filter(|(_, l)| *l == CompatLevel::HardRequirement).map(|(r, _)| r.abi()).max().unwrap_or(1)
}

/// How one Landlock right stands for a child confined under given facts (for
/// `paddock run --explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockNeed {
    /// The right, with its ABI and the first Linux release that has it.
    pub right: &'static str,
    /// A hard requirement: a kernel without it stops a strict run (exit 71).
    pub required: bool,
    /// The running kernel has it.
    pub available: bool,
    /// What covers it on a kernel without it (`None`: nothing, so strict requires it).
    pub cover: Option<&'static str>,
}

/// Each right as it stands for a child under `enforcement` on this kernel, in a network
/// namespace of its own (a one-shot run) or shared with other calls (`shared_netns`: a
/// session's zygote call); the namespaces and mount view are assumed in place (`strict`
/// stops without them anyway).
pub fn landlock_needs(enforcement: Enforcement, shared_netns: bool) -> Vec<LandlockNeed> {
    let netns = if shared_netns { NetNs::Shared } else { NetNs::Own };
    let facts = Facts { enforcement, netns, own_pidns: true, mount_view: true };
    let abi = kernel_abi();
    needs(&facts)
        .iter()
        .map(|(r, l)| LandlockNeed {
            right: r.name(),
            required: *l == CompatLevel::HardRequirement,
            available: r.abi() <= abi,
            cover: cover(*r, &facts),
        })
        .collect()
}
