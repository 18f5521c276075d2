//! Which paths get which rule: the read, write and device paths of the plan, with a deny
//! path's siblings granted instead of its parent when there is no mount view, and so for
//! each match of a deny glob there then, and each protect match granted read only
//! ([`super::globs`]).

use std::path::{Path, PathBuf};

use crate::spec::PathPlan;

/// The paths of each kind of rule.
pub(super) struct PathRules {
    /// Read and execute (the read paths).
    pub reads: Vec<PathBuf>,
    /// Everything (the write paths, and the private `/tmp`).
    pub writes: Vec<PathBuf>,
    /// Read only: the read paths, `/proc`, and `/dev` in the mount view.
    pub read_only: Vec<PathBuf>,
    /// The sandbox's own device files: read, write, truncate, ioctl.
    pub dev_files: Vec<&'static str>,
    /// Without a mount view: the globs' matches found at the start.
    pub found: super::globs::Found,
}

/// The rules for `plan`. In the mount view, a rule beneath another that grants as much
/// adds nothing (e.g. /usr/bin beneath /usr): each rule costs an open, a
/// `landlock_add_rule` and a close. Without one, deny paths are left out by granting
/// their siblings along the way.
pub(super) fn plan(plan: &PathPlan, mounts_ok: bool, private_tmp: bool) -> PathRules {
    let expand = |paths: &[PathBuf], except: &[PathBuf]| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in paths {
            rules_excluding(p, except, &mut out);
        }
        out
    };
    let mut found = super::globs::Found::default();
    let (reads, mut writes) = if mounts_ok {
        let writes = without_nested(&plan.writes, &plan.writes);
        let covers: Vec<PathBuf> = plan.reads.iter().chain(&plan.writes).cloned().collect();
        (without_nested(&plan.reads, &covers), writes)
    } else {
        found = super::globs::found(plan);
        let denied: Vec<PathBuf> = plan.denies.iter().chain(&found.denied).cloned().collect();
        let unwritable: Vec<PathBuf> = denied.iter().chain(&found.protected).cloned().collect();
        let mut reads = expand(&plan.reads, &denied);
        // A protect match beneath a write path is read only; beneath a deny, nothing.
        let protected = found.protected.iter().filter(|p| !denied.iter().any(|d| p.starts_with(d)));
        reads.extend(expand(&protected.cloned().collect::<Vec<_>>(), &denied));
        (reads, expand(&plan.writes, &unwritable))
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
    PathRules { reads, writes, read_only, dev_files, found }
}

/// Grants `access` on `root`, except on the deny paths beneath it (their siblings get it).
pub(super) fn rules_excluding(root: &Path, denies: &[PathBuf], out: &mut Vec<PathBuf>) {
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
pub(super) fn without_nested(paths: &[PathBuf], covers: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().filter(|p| !covers.iter().any(|c| c != *p && p.starts_with(c))).cloned().collect()
}
