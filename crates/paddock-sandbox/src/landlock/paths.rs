//! Which paths get which rule: the read, write and device paths of the plan, with a deny
//! path's siblings granted instead of its parent when there is no mount view, and so for
//! each match of a deny glob there then, and each protect match granted read only
//! ([`super::globs`]).

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use ::landlock::{AccessFs, BitFlags, PathBeneath, RulesetError};

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
    /// Without a mount view, the paths the plan names itself (its grants, `/tmp`,
    /// `/proc`): a rule on one of them follows its symlinks, as the grant was written.
    /// Every other path here was found by listing a directory (a deny's siblings, a
    /// glob's match), and its rule is made only on what that path is without following
    /// any symlink. `None` in the mount view, where every path is one the plan names.
    pub named: Option<HashSet<PathBuf>>,
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
        // A directory that could not be listed may hold a match: left out whole.
        let unlisted = found.unlisted.iter().map(|(d, _)| d.clone());
        let denied: Vec<PathBuf> = plan.denies.iter().chain(&found.denied).cloned().chain(unlisted).collect();
        let unwritable: Vec<PathBuf> = denied.iter().chain(&found.protected).cloned().collect();
        let mut reads = expand(&plan.reads, &denied);
        // A protect match beneath a write path is read only; beneath a deny, nothing.
        let link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        let protected = found.protected.iter().filter(|p| !denied.iter().any(|d| p.starts_with(d)) && !link(p));
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
    let named = (!mounts_ok)
        .then(|| plan.reads.iter().chain(&plan.writes).cloned().chain(["/tmp", "/proc"].map(PathBuf::from)).collect());
    PathRules { reads, writes, read_only, dev_files, found, named }
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
            // A symlink gets no rule: Landlock's rule would be on what it points at,
            // anywhere (found by an attack: a sibling link to a denied file or to a
            // directory outside every grant made it readable). Its target is granted, or
            // not, on its own; the link itself needs no right to be read.
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            rules_excluding(&e.path(), denies, out);
        }
    }
}

/// The rules granting `access` on `paths`: on each path `named` holds (every path without
/// `named`) as the path
/// resolves; on any other (found by listing a directory) only when no symlink is on its
/// way, the last component included (one swapped in since the listing gets no rule). A
/// path that cannot be opened gets none; a file gets only the rights a file can have.
pub(super) fn rules_on<'a>(
    paths: &'a [PathBuf],
    access: BitFlags<AccessFs>,
    named: &'a Option<HashSet<PathBuf>>,
) -> impl Iterator<Item = Result<PathBeneath<OwnedFd>, RulesetError>> + 'a {
    use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
    paths.iter().filter_map(move |p| {
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        let fd = if named.as_ref().is_none_or(|n| n.contains(p)) {
            rustix::fs::open(p, flags, Mode::empty())
        } else {
            rustix::fs::openat2(CWD, p, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS)
        };
        let fd = fd.ok()?;
        let is_file = rustix::fs::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR);
        let access = if is_file { access & AccessFs::from_file(super::TARGET_ABI) } else { access };
        Some(Ok(PathBeneath::new(fd, access)))
    })
}

/// `paths` without those strictly beneath one of `covers`.
pub(super) fn without_nested(paths: &[PathBuf], covers: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().filter(|p| !covers.iter().any(|c| c != *p && p.starts_with(c))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a mount view, a deny match's siblings are granted one by one: a symlink
    /// among them gets no rule (a rule on it would be on its target, anywhere), nor does a
    /// symlink matching a protect rule.
    #[test]
    fn siblings_granted_around_a_match_leave_symlinks_out() {
        let scratch = crate::scratch::Scratch::new("landlock-paths");
        let ws = scratch.path().join("ws");
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::write(ws.join("sub/k.pem"), "x").unwrap();
        std::fs::write(ws.join("sub/plain"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("sub/l")).unwrap();
        std::os::unix::fs::symlink(ws.join("sub/k.pem"), ws.join("sub/alias")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", ws.join("cfg")).unwrap();
        let g = |s: &str| format!("{}/{s}", ws.display());
        let plan = PathPlan {
            writes: vec![ws.clone()],
            deny_globs: vec![g("**/*.pem")],
            protect_globs: vec![g("cfg")],
            ..PathPlan::default()
        };
        let rules = plan_rules(&plan);
        assert!(rules.writes.contains(&ws.join("sub/plain")), "{:?}", rules.writes);
        for left_out in ["sub/k.pem", "sub/l", "sub/alias", "cfg"] {
            let p = ws.join(left_out);
            assert!(
                !rules.writes.contains(&p) && !rules.reads.contains(&p),
                "{left_out}: {:?} {:?}",
                rules.writes,
                rules.reads
            );
        }
        assert!(!rules.writes.contains(&ws), "the workspace itself is split");
    }

    fn plan_rules(plan: &PathPlan) -> PathRules {
        super::plan(plan, false, false)
    }
}
