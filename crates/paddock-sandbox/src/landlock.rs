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
//! What is asked of the kernel is asked at the compatibility level of the policy's
//! enforcement: under `strict`, every right above is a hard requirement
//! ([`CompatLevel::HardRequirement`]: a kernel that lacks one fails the ruleset, and the call
//! stops with exit 71 naming Landlock and what was missing, so strict needs ABI ≥ 6, Linux
//! 6.12); under `best-effort` they are asked for as far as the kernel goes. The layer's
//! state is the status the kernel returned ([`RulesetStatus`]), never inferred from the ABI
//! number; the ABI only explains, in the detail, what a partial ruleset lacks.

use std::path::{Path, PathBuf};

use ::landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::report::LayerState;
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

/// The compatibility level of every request under `enforcement`.
fn compat_level(enforcement: Enforcement) -> CompatLevel {
    match enforcement {
        Enforcement::Strict => CompatLevel::HardRequirement,
        Enforcement::BestEffort => CompatLevel::BestEffort,
    }
}

/// The layer's state from the status the kernel returned for the ruleset.
fn state_of(status: &RulesetStatus) -> LayerState {
    match status {
        RulesetStatus::FullyEnforced => LayerState::Enforced,
        RulesetStatus::PartiallyEnforced => LayerState::Partial,
        RulesetStatus::NotEnforced => LayerState::Unavailable,
    }
}

/// What paddock's ruleset asks for that a kernel of Landlock ABI `abi` lacks (the
/// explanation of a partial status or of a failed hard requirement, not its cause).
fn lacks_at(abi: i64) -> Vec<&'static str> {
    [
        (2, "file reparenting rules (ABI 2, Linux 5.19)"),
        (3, "truncate rules (ABI 3, Linux 6.2)"),
        (4, "TCP bind and connect rules (ABI 4, Linux 6.7)"),
        (5, "device ioctl rules (ABI 5, Linux 6.10)"),
        (6, "abstract unix socket and signal scopes (ABI 6, Linux 6.12)"),
    ]
    .into_iter()
    .filter(|(v, _)| abi < *v)
    .map(|(_, what)| what)
    .collect()
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

/// Applies the ruleset; returns the layer state and detail.
pub(crate) fn apply(spec: &SandboxSpec, plan: &PathPlan, mounts_ok: bool, private_tmp: bool) -> (LayerState, String) {
    let abi = kernel_abi();
    if abi == 0 {
        return (LayerState::Unavailable, "landlock not supported by this kernel".into());
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
    let result = (|| -> Result<RulesetStatus, ::landlock::RulesetError> {
        let mut created = Ruleset::default()
            .set_compatibility(compat_level(spec.enforcement))
            .handle_access(fs_all)?
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?
            .scope(Scope::from_all(TARGET_ABI))?
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
    let tcp = match net_rule_port {
        Some(p) => format!("TCP connect only to port {p}, no bind"),
        None => "no TCP connect or bind".into(),
    };
    let deny_note = if mounts_ok || plan.denies.is_empty() {
        String::new()
    } else {
        ", deny paths excluded by granting their siblings".into()
    };
    let detail = format!(
        "landlock ABI {abi}: {} read, {} write path rules{deny_note}; {tcp}; scopes: abstract unix sockets, signals",
        reads.len(),
        writes.len()
    );
    let strict = spec.enforcement == Enforcement::Strict;
    let level = if strict { "strict: every right a hard requirement" } else { "best effort" };
    let lacks = lacks_at(abi);
    match result {
        Ok(status) => {
            let state = state_of(&status);
            let detail = match state {
                LayerState::Enforced => format!("{detail}; fully enforced ({level})"),
                LayerState::Partial => format!(
                    "{detail}; partially enforced ({level}), the kernel lacks: {}",
                    if lacks.is_empty() { "rights this ABI should have".to_string() } else { lacks.join(", ") }
                ),
                LayerState::Unavailable => format!("landlock ABI {abi}: ruleset not enforced ({level})"),
            };
            (state, detail)
        }
        Err(e) if strict && !lacks.is_empty() => (
            LayerState::Unavailable,
            format!("landlock ABI {abi}: strict requires what this kernel lacks: {} ({e})", lacks.join(", ")),
        ),
        Err(e) => (LayerState::Unavailable, format!("landlock ABI {abi}: {e} ({level})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_asks_hard_best_effort_asks_best_effort() {
        assert_eq!(compat_level(Enforcement::Strict), CompatLevel::HardRequirement);
        assert_eq!(compat_level(Enforcement::BestEffort), CompatLevel::BestEffort);
    }

    #[test]
    fn state_comes_from_the_ruleset_status() {
        assert_eq!(state_of(&RulesetStatus::FullyEnforced), LayerState::Enforced);
        assert_eq!(state_of(&RulesetStatus::PartiallyEnforced), LayerState::Partial);
        assert_eq!(state_of(&RulesetStatus::NotEnforced), LayerState::Unavailable);
    }

    #[test]
    fn names_what_an_older_abi_lacks() {
        assert!(lacks_at(6).is_empty());
        assert!(lacks_at(7).is_empty());
        assert_eq!(lacks_at(5), ["abstract unix socket and signal scopes (ABI 6, Linux 6.12)"]);
        assert_eq!(lacks_at(1).len(), 5);
        assert!(lacks_at(3)[0].starts_with("TCP"));
    }
}
