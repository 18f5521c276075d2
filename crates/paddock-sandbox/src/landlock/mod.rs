//! Step 4 of the order (in the target, after the mount view, before rlimits): Landlock.
//! A zygote's spare reaper makes the ruleset before its call comes (every rule but the
//! call's proxy port, [`Prepared`]); the call's target adds the port and restricts itself.
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

mod globs;
mod paths;
mod rights;
mod ruleset;

use ::landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, BitFlags, CompatLevel, NetPort, Ruleset, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

pub(crate) use rights::Facts;
pub use rights::{kernel_abi, landlock_needs, shared_netns_abi, LandlockNeed};
use rights::{needs, Right};
use ruleset::{error_detail, handle, state_of, status_detail};

use crate::layer::{Applied, LayerState};
use crate::spec::{NetworkMode, PathPlan, SandboxSpec};

/// The ABI whose rights this crate knows and vets.
const TARGET_ABI: ABI = ABI::V7;

/// A ruleset made before its call came (by a zygote's spare reaper, in the call's own mount
/// namespace, once its per-call mounts are there): every rule but the call's proxy port,
/// which the target adds before `restrict_self`. It serves the one call its reaper takes,
/// and only if that call asks for the same rules ([`apply`]).
pub(crate) struct Prepared {
    key: Key,
    rules: paths::PathRules,
    created: Result<RulesetCreated, ::landlock::RulesetError>,
}

/// What a ruleset is made of, but the port.
struct Key {
    plan: PathPlan,
    facts: Facts,
    private_tmp: bool,
    exec_files: Option<Vec<std::path::PathBuf>>,
}

impl Key {
    /// Whether a ruleset made of this serves a call with these.
    fn is_for(
        &self,
        plan: &PathPlan,
        facts: &Facts,
        private_tmp: bool,
        exec_files: &Option<Vec<std::path::PathBuf>>,
    ) -> bool {
        self.plan == *plan && self.facts == *facts && self.private_tmp == private_tmp && self.exec_files == *exec_files
    }
}

/// Makes the ruleset for `spec` ahead of the call (see [`Prepared`]); `None` without
/// Landlock.
pub(crate) fn prepare(spec: &SandboxSpec, plan: &PathPlan, facts: &Facts, private_tmp: bool) -> Option<Prepared> {
    if kernel_abi() == 0 {
        return None;
    }
    let exec_files = crate::exec_notify::landlock_files(spec);
    let rules = paths::plan(plan, facts.mount_view, private_tmp);
    let created = create(&rules, &needs(facts), facts.mount_view, exec_files.as_deref());
    let key = Key { plan: plan.clone(), facts: *facts, private_tmp, exec_files };
    Some(Prepared { key, rules, created })
}

/// Applies the ruleset, each right at the level [`needs`] gives for `facts`; returns the
/// layer state (from the kernel's status) and detail. The ruleset `prepared` ahead is used
/// when it was made for the same rules (else it is dropped and the ruleset made now).
pub(crate) fn apply(
    prepared: Option<Prepared>,
    spec: &SandboxSpec,
    plan: &PathPlan,
    facts: &Facts,
    private_tmp: bool,
) -> Applied {
    let mounts_ok = facts.mount_view;
    let abi = kernel_abi();
    if abi == 0 {
        return Applied::new(LayerState::Unavailable, "landlock not supported by this kernel");
    }
    // Exec supervision: with a list of programs, no grant carries execute; each listed
    // file that exists in the view gets execute (and read) of its own.
    let exec_files = crate::exec_notify::landlock_files(spec);
    let needs = needs(facts);
    let (rules, created) = match prepared {
        Some(p) if p.key.is_for(plan, facts, private_tmp, &exec_files) => (p.rules, p.created),
        _ => {
            let rules = paths::plan(plan, mounts_ok, private_tmp);
            let created = create(&rules, &needs, mounts_ok, exec_files.as_deref());
            (rules, created)
        }
    };
    let net_rule_port = match spec.network {
        NetworkMode::Proxy { port } => Some(port),
        NetworkMode::None => None,
    };
    let result = created.and_then(|c| restrict(c, net_rule_port));
    let mut detail = rules_detail(&rules, plan, mounts_ok, net_rule_port, abi);
    if let Some(files) = &exec_files {
        detail.push_str(&format!("; execute on {} program files only", files.len()));
    }
    match result {
        Ok(status) => {
            Applied::new(state_of(&status), format!("{detail}; {}", status_detail(&status, &needs, facts, abi)))
        }
        Err(e) => Applied::new(LayerState::Unavailable, error_detail(&e, &needs, abi)),
    }
}

/// Creates the ruleset with `rules`: every rule but the proxy port's.
fn create(
    rules: &paths::PathRules,
    needs: &[(Right, CompatLevel)],
    mounts_ok: bool,
    exec_files: Option<&[std::path::PathBuf]>,
) -> Result<RulesetCreated, ::landlock::RulesetError> {
    let mut fs_all = AccessFs::from_all(TARGET_ABI);
    let mut fs_read = AccessFs::from_read(TARGET_ABI);
    let mut dev_rw: BitFlags<AccessFs> = AccessFs::from_read(TARGET_ABI)
        | AccessFs::WriteFile
        | AccessFs::Truncate
        | AccessFs::IoctlDev
        | AccessFs::MakeReg
        | AccessFs::RemoveFile
        | AccessFs::MakeDir
        | AccessFs::RemoveDir;
    if exec_files.is_some() {
        fs_all &= !AccessFs::Execute;
        fs_read &= !AccessFs::Execute;
        dev_rw &= !AccessFs::Execute;
    }
    let mut created = handle(Ruleset::default(), needs)?
        .create()?
        .add_rules(paths::rules_on(&rules.read_only, fs_read, &rules.named))?
        .add_rules(paths::rules_on(&rules.writes, fs_all, &rules.named))?
        .add_rules(path_beneath_rules(&rules.dev_files, dev_rw))?;
    if let Some(files) = exec_files {
        created = created.add_rules(path_beneath_rules(files, AccessFs::Execute | AccessFs::ReadFile))?;
    }
    if mounts_ok {
        // The new root holds only what the spec allows: listing it reveals nothing more.
        created = created.add_rules(path_beneath_rules(["/"], AccessFs::ReadDir))?;
    }
    Ok(created)
}

/// Adds the proxy port's TCP rule and restricts this process with the ruleset.
fn restrict(
    mut created: RulesetCreated,
    net_rule_port: Option<u16>,
) -> Result<RulesetStatus, ::landlock::RulesetError> {
    if let Some(port) = net_rule_port {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    Ok(created.restrict_self()?.ruleset)
}

/// The detail's head: the rules asked for. Only what this kernel has: what it lacks, the
/// status detail names.
fn rules_detail(
    rules: &paths::PathRules,
    plan: &PathPlan,
    mounts_ok: bool,
    net_rule_port: Option<u16>,
    abi: i64,
) -> String {
    let f = &rules.found;
    let deny_note = if mounts_ok {
        String::new()
    } else {
        let unlisted = match f.unlisted.first() {
            Some((dir, why)) => format!(
                "; {} directories could not be listed for matches (first: {}: {why})",
                f.unlisted.len(),
                dir.display()
            ),
            None => String::new(),
        };
        format!(
            ", deny paths ({}) and the {} deny-glob matches there at the start excluded by granting their siblings, the {} protect matches read only{unlisted}; without a mount view, matches made later and unix sockets outside the grants are not covered",
            plan.denies.len(),
            f.denied.len(),
            f.protected.len()
        )
    };
    let mut detail =
        format!("landlock ABI {abi}: {} read, {} write path rules{deny_note}", rules.reads.len(), rules.writes.len());
    if Right::Tcp.abi() <= abi {
        detail.push_str(&match net_rule_port {
            Some(p) => format!("; TCP connect only to port {p}, no bind"),
            None => "; no TCP connect or bind".into(),
        });
    }
    if Right::AbstractUnixSocket.abi() <= abi {
        detail.push_str("; scopes: abstract unix sockets, signals");
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::rights::{cover, lacking, NetNs};
    use super::ruleset::{asked, Asked};
    use super::*;
    use crate::spec::Enforcement;
    use ::landlock::Scope;
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
