//! A program of the user's run outside the sandbox (a `command:` secret's source) kept away
//! from what a call can write: a Landlock ruleset that grants every filesystem right
//! everywhere but beneath the given paths (the policy's write grants), applied in the
//! child before its `exec`. A check of the command's words cannot see what a shell line
//! does (`cd && cd proj && ./tok.sh`, `sh -c '…'`, `env tool` found on a `PATH` entry a
//! call can write: found by an attack); the kernel then refuses the program every read,
//! exec or write beneath those paths, whatever the line.
//!
//! Landlock grants by hierarchy: a right on a directory is a right beneath it. So the
//! rules name, for each directory above a kept-away path, each of its entries but those
//! on the way to a kept-away path (a directory above one is searched, never listed; a new
//! entry made there later is not granted). Symlinks among them are left out (a rule on a
//! link's target could name a kept-away path): what they lead to is granted where it lies.
//!
//! Not covered, as Landlock goes by the path taken: a kept-away file's other names (hard
//! links elsewhere), and a kept-away directory, or one above it, mounted a second time
//! deeper elsewhere (a bind), reached by that path (one mounted right at an entry that would
//! be granted is left out).

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use ::landlock::{
    Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI,
};

/// A ruleset keeping a program away from some paths ([`Away::from`]).
pub struct Away {
    fd: OwnedFd,
    rules: usize,
}

impl Away {
    /// The ruleset for `paths` (absolute, normalised); `None` when the kernel has no
    /// Landlock (the caller says what that means), or nothing is to be kept away.
    pub fn from(paths: &[PathBuf]) -> io::Result<Option<Away>> {
        if paths.is_empty() {
            return Ok(None);
        }
        let abi = ABI::V5;
        let err = |e: ::landlock::RulesetError| io::Error::other(e.to_string());
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(abi))
            .map_err(err)?
            .create()
            .map_err(err)?;
        let mut rules = 0;
        for entry in granted_around(paths)? {
            // Gone since it was listed, or not to be opened: not granted.
            let Ok(fd) = PathFd::new(&entry) else { continue };
            ruleset = ruleset.add_rule(PathBeneath::new(fd, AccessFs::from_all(abi))).map_err(err)?;
            rules += 1;
        }
        let fd: Option<OwnedFd> = ruleset.into();
        Ok(fd.map(|fd| Away { fd, rules }))
    }

    /// How many rules it holds.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Confines the child `cmd` starts to this ruleset (`no_new_privs` set first, as
    /// Landlock needs), before its `exec`; a child that cannot be confined exits 126 and
    /// never runs the program.
    pub fn confine(&self, cmd: &mut std::process::Command) {
        let fd = self.fd.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // `prctl`, `syscall` and `_exit`, all async-signal-safe, with no allocation; `fd`
        // is the parent's open ruleset descriptor, inherited by the child until its exec;
        // the descriptors `close_range` closes are the child's copies, none of which it
        // uses again (its standard streams, 0 to 2, are already in place).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) != 0
                {
                    libc::_exit(126);
                }
                // Nothing of the supervisor's past its standard streams (the ruleset's
                // descriptor included, now applied).
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                Ok(())
            });
        }
    }
}

/// The entries of every directory above one of `paths` that are neither one of them nor
/// above one, symlinks left out.
fn granted_around(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    // Only the outermost: the directories above one beneath another kept-away path lie in
    // that one, and their entries must not be granted (found by an attack: the workspace
    // and `${WORKSPACE}/target`, or the home and `~/.cache/pip`, granted the outer one).
    let kept: BTreeSet<&Path> = paths
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| !paths.iter().any(|o| o.as_path() != *p && p.starts_with(o)))
        .collect();
    let mut above: BTreeSet<PathBuf> = BTreeSet::new();
    for p in &kept {
        above.extend(p.ancestors().skip(1).map(Path::to_path_buf));
    }
    // A rule names an object, and grants beneath it wherever it is mounted: an entry that is
    // a kept-away directory or one above it, mounted a second time there (a bind), would
    // grant it whole (found by an attack). Such an entry is left out.
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let held: BTreeSet<(u64, u64)> =
        above.iter().map(PathBuf::as_path).chain(kept.iter().copied()).filter_map(id).collect();
    let mut out = Vec::new();
    for dir in &above {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            // Not there, or not ours to list: nothing beneath it is granted.
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if above.contains(&path) || kept.contains(path.as_path()) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            if id(&path).is_some_and(|i| held.contains(&i)) {
                continue;
            }
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is granted around a kept-away path: its siblings and its ancestors' siblings,
    /// never itself, an ancestor, or a symlink.
    #[test]
    fn the_entries_around_a_kept_away_path() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("paddock-away-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let ws = root.join("home/u/ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(root.join("home/u/.config")).unwrap();
        std::fs::write(root.join("home/u/.gitconfig"), "").unwrap();
        std::fs::create_dir_all(root.join("home/v")).unwrap();
        std::os::unix::fs::symlink(&ws, root.join("home/u/link")).unwrap();
        let got = granted_around(std::slice::from_ref(&ws)).unwrap();
        for want in ["home/u/.config", "home/u/.gitconfig", "home/v"] {
            assert!(got.contains(&root.join(want)), "{want}: {got:?}");
        }
        for not in ["home/u/ws", "home/u", "home", "home/u/link"] {
            assert!(!got.contains(&root.join(not)), "{not}: {got:?}");
        }
        // A kept-away path beneath another: nothing in the outer one is granted.
        std::fs::create_dir_all(ws.join("target")).unwrap();
        std::fs::write(ws.join("usercustomize.py"), "").unwrap();
        let nested = granted_around(&[ws.clone(), ws.join("target")]).unwrap();
        assert!(!nested.iter().any(|p| p.starts_with(&ws)), "{nested:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
