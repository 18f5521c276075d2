//! Step 4 of the order (in the target, after the mount view, before rlimits): Landlock.
//!
//! The same filesystem rights as the mount view, as defence in depth and as the fallback
//! when there is no mount namespace: read paths get read + execute, write paths everything,
//! plus the sandbox's own `/dev` files, `/proc` (read) and the private `/tmp`. Without a
//! mount view, deny paths are enforced by granting the siblings along the way instead of
//! the parent. TCP (ABI ≥ 4): no bind, connect only to the proxy port (none without a
//! proxy). Scopes (ABI ≥ 6): no abstract unix sockets and no signals out of the sandbox.
//! With a mount view, a path beneath another that grants at least as much gets no rule of
//! its own: the view holds nothing else there (a symlink inside a granted tree that points
//! elsewhere resolves within the view, where only granted paths are bound).
//!
//! # What strict requires
//!
//! Each group of rights ([`Right`]) is asked for at its own compatibility level, derived by
//! [`needs`] from what the sandbox already holds ([`Facts`]): a right is a hard requirement
//! ([`CompatLevel::HardRequirement`]) under `strict` exactly when nothing else covers it on
//! a kernel without it, and best effort otherwise; under `best-effort` nothing is a hard
//! requirement.
//!
//! | right (ABI) | under `strict` | what covers it on a kernel without it |
//! |---|---|---|
//! | filesystem: execute, read/write file, read dir, remove, make (1) | always required | nothing: they keep the child inside its read and write paths |
//! | file reparenting, `REFER` (2) | best effort | the kernel itself: below ABI 2 Landlock denies every cross-directory rename and link (stricter, not looser) |
//! | truncate (3) | best effort with the mount view, else required | outside the write paths every mount of the view is read-only (`truncate` and `O_TRUNC` fail with `EROFS`) but `/proc` and the device files, where truncating changes nothing |
//! | device ioctl, `IOCTL_DEV` (5) | best effort with the mount view, else required | the binds are `nodev`, and `/dev` holds only null, zero, full, random, urandom, tty and a private devpts, which are granted ioctl anyway |
//! | TCP bind and connect (4) | required where the network namespace is shared (a zygote's call, [`crate::Zygote`]: the calls' proxy listeners share it) or the host's; best effort in a run's own namespace | a run's own network namespace: only `lo`, where nothing listens but the run's own proxy |
//! | abstract unix socket scope (6) | required where the network namespace is shared or the host's; best effort in a run's own | abstract sockets belong to a network namespace: a run's own holds only its own |
//! | signal scope (6) | required without a pid namespace of the child's own; best effort with one (one-shot runs and zygote calls alike) | the child's own pid namespace: no process outside it can be named |
//!
//! So a one-shot `run` under `strict` needs Landlock ABI 1 (Linux 5.13), and a zygote's
//! call ABI 6 (Linux 6.12) — a session uses zygotes only there
//! ([`shared_netns_abi`]). A kernel without a required right makes the landlock crate fail
//! the ruleset: the layer is unavailable, with a detail naming the right(s), and a strict
//! call stops with exit 71. The layer's state is the status the kernel returned
//! ([`RulesetStatus`]): fully enforced is `enforced`; partially enforced (only best-effort
//! rights can be missing then) is `partial`, which does not stop a strict run, and the
//! detail lists each missing right with what covers it (or, under `best-effort`, that
//! nothing does).

use std::path::{Path, PathBuf};

use ::landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::layer::{Applied, Layer, LayerState};
use crate::report::EnforcementReport;
use crate::spec::{Enforcement, NetworkMode, PathPlan, SandboxSpec};

/// The ABI whose rights this crate knows and vets.
const TARGET_ABI: ABI = ABI::V7;

/// The Landlock ABI version of the running kernel (0: unsupported or disabled).
pub fn kernel_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attr, size 0 and the VERSION flag, the call only returns a number.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    r.max(0)
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
fn lacking(needs: &[(Right, CompatLevel)], level: CompatLevel, abi: i64) -> Vec<Right> {
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

/// The access rights of `right` among those this crate asks for.
enum Asked {
    Fs(BitFlags<AccessFs>),
    Net(BitFlags<AccessNet>),
    Scope(BitFlags<Scope>),
}

fn asked(right: Right) -> Asked {
    match right {
        Right::Filesystem => Asked::Fs(AccessFs::from_all(ABI::V1)),
        Right::Refer => Asked::Fs(AccessFs::Refer.into()),
        Right::Truncate => Asked::Fs(AccessFs::Truncate.into()),
        Right::IoctlDev => Asked::Fs(AccessFs::IoctlDev.into()),
        Right::Tcp => Asked::Net(AccessNet::BindTcp | AccessNet::ConnectTcp),
        Right::AbstractUnixSocket => Asked::Scope(Scope::AbstractUnixSocket.into()),
        Right::Signal => Asked::Scope(Scope::Signal.into()),
    }
}

/// The ruleset's handled rights and scopes, each asked at its level in `needs`; the level is
/// best effort again afterwards, for the rules (a rule only grants: a right the kernel drops
/// from one grants less).
fn handle(mut ruleset: Ruleset, needs: &[(Right, CompatLevel)]) -> Result<Ruleset, ::landlock::RulesetError> {
    for (right, level) in needs {
        ruleset = ruleset.set_compatibility(*level);
        ruleset = match asked(*right) {
            Asked::Fs(a) => ruleset.handle_access(a)?,
            Asked::Net(a) => ruleset.handle_access(a)?,
            Asked::Scope(s) => ruleset.scope(s)?,
        };
    }
    Ok(ruleset.set_compatibility(CompatLevel::BestEffort))
}

/// The layer's state from the status the kernel returned for the ruleset.
fn state_of(status: &RulesetStatus) -> LayerState {
    match status {
        RulesetStatus::FullyEnforced => LayerState::Enforced,
        RulesetStatus::PartiallyEnforced => LayerState::Partial,
        RulesetStatus::NotEnforced => LayerState::Unavailable,
    }
}

/// The names of `rights`, joined.
fn names(rights: &[Right]) -> String {
    rights.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
}

/// The detail's tail for a ruleset the kernel (of Landlock ABI `abi`) returned `status` for.
fn status_detail(status: &RulesetStatus, needs: &[(Right, CompatLevel)], facts: &Facts, abi: i64) -> String {
    let hard: Vec<Right> = needs.iter().filter(|(_, l)| *l == CompatLevel::HardRequirement).map(|(r, _)| *r).collect();
    let required = if hard.is_empty() {
        "best-effort: nothing required".to_string()
    } else {
        format!("required: {}", names(&hard))
    };
    match status {
        RulesetStatus::FullyEnforced => format!("fully enforced; {required}"),
        RulesetStatus::NotEnforced => format!("not enforced; {required}"),
        RulesetStatus::PartiallyEnforced => {
            let missing: Vec<String> = lacking(needs, CompatLevel::BestEffort, abi)
                .into_iter()
                .map(|r| match cover(r, facts) {
                    Some(c) => format!("{} (covered: {c})", r.name()),
                    None => format!("{} (not covered)", r.name()),
                })
                .collect();
            let missing = if missing.is_empty() { "rights the kernel dropped".to_string() } else { missing.join("; ") };
            format!("partially enforced; {required}; this kernel lacks {missing}")
        }
    }
}

/// The detail when the ruleset failed: names the required rights the kernel lacks.
fn error_detail(e: &::landlock::RulesetError, needs: &[(Right, CompatLevel)], abi: i64) -> String {
    let missing = lacking(needs, CompatLevel::HardRequirement, abi);
    if missing.is_empty() {
        format!("landlock ABI {abi}: {e}")
    } else {
        format!("landlock ABI {abi}: strict requires {}, which this kernel lacks ({e})", names(&missing))
    }
}

/// Grants `access` on `root`, except on the deny paths beneath it (their siblings get it).
fn rules_excluding(root: &Path, denies: &[PathBuf], out: &mut Vec<PathBuf>) {
    if denies.iter().any(|d| d == root) {
        return;
    }
    if !denies.iter().any(|d| d.starts_with(root)) {
        out.push(root.to_path_buf());
        return;
    }
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            rules_excluding(&e.path(), denies, out);
        }
    }
}

/// `paths` without those strictly beneath one of `covers`.
fn without_nested(paths: &[PathBuf], covers: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().filter(|p| !covers.iter().any(|c| c != *p && p.starts_with(c))).cloned().collect()
}

/// Applies the ruleset, each right at the level [`needs`] gives for `facts`; returns the
/// layer state (from the kernel's status) and detail.
pub(crate) fn apply(spec: &SandboxSpec, plan: &PathPlan, facts: &Facts, private_tmp: bool) -> Applied {
    let mounts_ok = facts.mount_view;
    let abi = kernel_abi();
    if abi == 0 {
        return Applied::new(LayerState::Unavailable, "landlock not supported by this kernel");
    }
    let expand = |paths: &[PathBuf]| -> Vec<PathBuf> {
        if mounts_ok {
            return paths.to_vec();
        }
        let mut out = Vec::new();
        for p in paths {
            rules_excluding(p, &plan.denies, &mut out);
        }
        out
    };
    let (reads, mut writes) = if mounts_ok {
        // In the mount view, a rule beneath another that grants as much adds nothing (e.g.
        // /usr/bin beneath /usr): each rule costs an open, a landlock_add_rule and a close.
        let writes = without_nested(&plan.writes, &plan.writes);
        let covers: Vec<PathBuf> = plan.reads.iter().chain(&plan.writes).cloned().collect();
        (without_nested(&plan.reads, &covers), writes)
    } else {
        (expand(&plan.reads), expand(&plan.writes))
    };
    let mut dev_files = vec![
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/pts",
        "/dev/shm",
    ];
    if private_tmp {
        writes.push(PathBuf::from("/tmp"));
    }
    let mut read_only: Vec<PathBuf> = reads.clone();
    read_only.push(PathBuf::from("/proc"));
    if mounts_ok {
        read_only.push(PathBuf::from("/dev"));
    } else {
        dev_files.retain(|f| *f != "/dev/shm");
    }

    let fs_all = AccessFs::from_all(TARGET_ABI);
    let fs_read = AccessFs::from_read(TARGET_ABI);
    let dev_rw: BitFlags<AccessFs> = AccessFs::from_read(TARGET_ABI)
        | AccessFs::WriteFile
        | AccessFs::Truncate
        | AccessFs::IoctlDev
        | AccessFs::MakeReg
        | AccessFs::RemoveFile
        | AccessFs::MakeDir
        | AccessFs::RemoveDir;
    let net_rule_port = match spec.network {
        NetworkMode::Proxy { port } => Some(port),
        NetworkMode::None => None,
    };
    let needs = needs(facts);
    let result = (|| -> Result<RulesetStatus, ::landlock::RulesetError> {
        let mut created = handle(Ruleset::default(), &needs)?
            .create()?
            .add_rules(path_beneath_rules(&read_only, fs_read))?
            .add_rules(path_beneath_rules(&writes, fs_all))?
            .add_rules(path_beneath_rules(&dev_files, dev_rw))?;
        if mounts_ok {
            // The new root holds only what the spec allows: listing it reveals nothing more.
            created = created.add_rules(path_beneath_rules(["/"], AccessFs::ReadDir))?;
        }
        if let Some(port) = net_rule_port {
            created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
        Ok(created.restrict_self()?.ruleset)
    })();
    let deny_note = if mounts_ok || plan.denies.is_empty() {
        String::new()
    } else {
        ", deny paths excluded by granting their siblings".into()
    };
    // Only what this kernel has: what it lacks, the status detail names.
    let mut detail = format!("landlock ABI {abi}: {} read, {} write path rules{deny_note}", reads.len(), writes.len());
    if Right::Tcp.abi() <= abi {
        detail.push_str(&match net_rule_port {
            Some(p) => format!("; TCP connect only to port {p}, no bind"),
            None => "; no TCP connect or bind".into(),
        });
    }
    if Right::AbstractUnixSocket.abi() <= abi {
        detail.push_str("; scopes: abstract unix sockets, signals");
    }
    match result {
        Ok(status) => {
            Applied::new(state_of(&status), format!("{detail}; {}", status_detail(&status, &needs, facts, abi)))
        }
        Err(e) => Applied::new(LayerState::Unavailable, error_detail(&e, &needs, abi)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CompatLevel::{BestEffort as Soft, HardRequirement as Hard};

    /// A one-shot run under `strict`: its own namespaces and mount view.
    const RUN: Facts = Facts { enforcement: Enforcement::Strict, netns: NetNs::Own, own_pidns: true, mount_view: true };
    /// A zygote's call under `strict`: the network namespace shared with the other calls.
    const CALL: Facts = Facts { netns: NetNs::Shared, ..RUN };

    fn hard(facts: &Facts) -> Vec<Right> {
        needs(facts).iter().filter(|(_, l)| *l == Hard).map(|(r, _)| *r).collect()
    }

    #[test]
    fn a_strict_run_requires_only_the_filesystem_rights() {
        assert_eq!(hard(&RUN), [Right::Filesystem]);
        // Ubuntu 24.04 (Linux 6.8, ABI 4) and Debian 12 (6.1, ABI 2) run it: nothing required
        // is missing, what is missing is reported.
        for abi in [1, 2, 4] {
            assert!(lacking(&needs(&RUN), Hard, abi).is_empty(), "ABI {abi}");
        }
        assert_eq!(lacking(&needs(&RUN), Soft, 4), [Right::IoctlDev, Right::AbstractUnixSocket, Right::Signal]);
        assert_eq!(lacking(&needs(&RUN), Hard, 0), [Right::Filesystem]);
    }

    #[test]
    fn a_strict_zygote_call_requires_tcp_and_the_abstract_socket_scope() {
        assert_eq!(hard(&CALL), [Right::Filesystem, Right::Tcp, Right::AbstractUnixSocket]);
        // Signals stay best effort: each call has a pid namespace of its own.
        assert!(needs(&CALL).contains(&(Right::Signal, Soft)));
        assert_eq!(lacking(&needs(&CALL), Hard, 4), [Right::AbstractUnixSocket]);
        assert_eq!(lacking(&needs(&CALL), Hard, 3), [Right::Tcp, Right::AbstractUnixSocket]);
        assert!(lacking(&needs(&CALL), Hard, 6).is_empty());
        assert_eq!(shared_netns_abi(), 6);
    }

    #[test]
    fn what_the_namespaces_and_view_do_not_cover_becomes_required() {
        let no_view = Facts { mount_view: false, ..RUN };
        assert_eq!(hard(&no_view), [Right::Filesystem, Right::Truncate, Right::IoctlDev]);
        let host_net = Facts { netns: NetNs::Host, ..RUN };
        assert_eq!(hard(&host_net), [Right::Filesystem, Right::Tcp, Right::AbstractUnixSocket]);
        let no_pidns = Facts { own_pidns: false, ..RUN };
        assert_eq!(hard(&no_pidns), [Right::Filesystem, Right::Signal]);
        // Reparenting is never required: without it the kernel denies more, not less.
        let nothing = Facts { netns: NetNs::Host, own_pidns: false, mount_view: false, ..RUN };
        assert!(!hard(&nothing).contains(&Right::Refer));
        assert!(cover(Right::Refer, &nothing).is_some());
        assert_eq!(hard(&nothing).len(), Right::ALL.len() - 1);
    }

    #[test]
    fn best_effort_requires_nothing() {
        for netns in [NetNs::Own, NetNs::Shared, NetNs::Host] {
            for own_pidns in [true, false] {
                for mount_view in [true, false] {
                    let f = Facts { enforcement: Enforcement::BestEffort, netns, own_pidns, mount_view };
                    assert!(hard(&f).is_empty(), "{f:?}");
                }
            }
        }
    }

    #[test]
    fn every_right_this_crate_asks_for_is_in_one_group() {
        let (mut fs, mut net, mut scopes) = (BitFlags::<AccessFs>::empty(), BitFlags::empty(), BitFlags::empty());
        for r in Right::ALL {
            match asked(r) {
                Asked::Fs(a) => fs |= a,
                Asked::Net(a) => net |= a,
                Asked::Scope(s) => scopes |= s,
            }
        }
        assert_eq!(fs, AccessFs::from_all(TARGET_ABI));
        assert_eq!(net, AccessNet::from_all(TARGET_ABI));
        assert_eq!(scopes, Scope::from_all(TARGET_ABI));
        for w in Right::ALL.windows(2) {
            assert!(w[0].abi() <= w[1].abi());
        }
    }

    #[test]
    fn state_comes_from_the_ruleset_status() {
        assert_eq!(state_of(&RulesetStatus::FullyEnforced), LayerState::Enforced);
        assert_eq!(state_of(&RulesetStatus::PartiallyEnforced), LayerState::Partial);
        assert_eq!(state_of(&RulesetStatus::NotEnforced), LayerState::Unavailable);
    }

    #[test]
    fn a_partial_ruleset_names_each_missing_right_and_its_cover() {
        let d = status_detail(&RulesetStatus::PartiallyEnforced, &needs(&RUN), &RUN, 4);
        assert!(d.starts_with("partially enforced; required: filesystem rights (ABI 1, Linux 5.13); this kernel lacks device ioctl (ABI 5, Linux 6.10) (covered: the binds are nodev"), "{d}");
        assert!(
            d.contains(
                "abstract unix socket scope (ABI 6, Linux 6.12) (covered: the network namespace is the child's own"
            ),
            "{d}"
        );
        assert!(d.contains("signal scope (ABI 6, Linux 6.12) (covered: the pid namespace is the child's own"), "{d}");
        assert!(!d.contains("not covered") && !d.contains("truncate"), "{d}");
        // Under best-effort, a zygote's call on ABI 4 runs with the gap said plainly.
        let call = Facts { enforcement: Enforcement::BestEffort, ..CALL };
        let d = status_detail(&RulesetStatus::PartiallyEnforced, &needs(&call), &call, 4);
        assert!(d.starts_with("partially enforced; best-effort: nothing required; this kernel lacks"), "{d}");
        assert!(d.contains("abstract unix socket scope (ABI 6, Linux 6.12) (not covered)"), "{d}");
        let d = status_detail(&RulesetStatus::FullyEnforced, &needs(&CALL), &CALL, 7);
        assert_eq!(
            d,
            "fully enforced; required: filesystem rights (ABI 1, Linux 5.13), TCP bind and connect rules (ABI 4, Linux 6.7), abstract unix socket scope (ABI 6, Linux 6.12)"
        );
    }

    #[test]
    fn a_failed_ruleset_names_the_required_rights_the_kernel_lacks() {
        // Any error of the crate will do (this one needs no syscall).
        let e = Ruleset::default().create().map(drop).unwrap_err();
        let d = error_detail(&e, &needs(&CALL), 4);
        assert!(
            d.starts_with("landlock ABI 4: strict requires abstract unix socket scope (ABI 6, Linux 6.12), which this kernel lacks ("),
            "{d}"
        );
        let d = error_detail(&e, &needs(&RUN), 4);
        assert!(d.starts_with("landlock ABI 4: ") && !d.contains("requires"), "{d}");
    }

    #[test]
    fn the_explain_view_matches_the_derivation() {
        let run = landlock_needs(Enforcement::Strict, false);
        assert_eq!(run.iter().filter(|n| n.required).map(|n| n.right).collect::<Vec<_>>(), [Right::Filesystem.name()]);
        assert!(run.iter().all(|n| n.required == n.cover.is_none()));
        let call = landlock_needs(Enforcement::Strict, true);
        assert_eq!(call.iter().filter(|n| n.required).count(), 3);
        assert!(landlock_needs(Enforcement::BestEffort, true).iter().all(|n| !n.required));
    }
}
