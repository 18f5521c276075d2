//! Whether a view built earlier is still current for its rules: the status of every
//! directory the view walk visits (every directory under every root of [`super::plan::roots`]:
//! sockets are hidden under every granted path, so that is every place a rule or a socket
//! can match), taken on the host before the view is built and compared later.
//!
//! A directory's ctime moves with every change of its entries (a file created, renamed in
//! or out, a socket bound) and of its mode, and nobody can set it (mtime one can), so a
//! stamp compares ctime, mtime, inode, device, size and link count by path, never following
//! a symlink (a directory swapped for another or for a symlink is another inode). Directories
//! whose ctime is within [`super::cache::MARGIN_SECS`] of the moment the stamp was taken
//! count as changed (the view cache's "racily clean" rule: a change in the same clock tick
//! leaves ctime as it was).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cache::MARGIN_SECS;
use super::plan::{overlay_candidate, roots, Rules};
use super::walk::PSEUDO_FS;
use crate::spec::{PathPlan, SandboxSpec};
use crate::sys;

/// Device, inode, ctime (s, ns), mtime (s, ns), size, link count; `None`: absent.
type Status = Option<[i64; 8]>;

/// The status of the directories a view walk visits, taken before the view was built.
#[derive(Debug, Clone)]
pub struct ViewStamp {
    dirs: Vec<(PathBuf, Status)>,
    /// Why the stamp cannot vouch for the view (a directory changed while it was taken or
    /// too recently, or could not be read): [`ViewStamp::unchanged`] is then always false.
    stale: Option<String>,
}

fn status(p: &Path) -> io::Result<Status> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(key(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn key(m: &std::fs::Metadata) -> [i64; 8] {
    [
        m.dev() as i64,
        m.ino() as i64,
        m.ctime(),
        m.ctime_nsec(),
        m.mtime(),
        m.mtime_nsec(),
        m.size() as i64,
        m.nlink() as i64,
    ]
}

/// The stamp of the view of `spec` (see the module docs). Take it before the view is built:
/// a change while the view is walked is then a change.
pub fn view_stamp(spec: &SandboxSpec) -> ViewStamp {
    ViewStamp::take(&PathPlan::new(spec))
}

impl ViewStamp {
    pub(crate) fn take(plan: &PathPlan) -> ViewStamp {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut s = ViewStamp { dirs: Vec::new(), stale: None };
        let rules = match Rules::new(plan) {
            Ok(r) => r,
            Err(e) => {
                s.stale = Some(e.to_string());
                return s;
            }
        };
        // The system trees the view will mount through an overlay (where one cannot be
        // mounted, the view walks the tree whole at its start, but this stamp does not
        // watch it: what is bound there later is not seen, as in any view after its start).
        let overlaid: Vec<PathBuf> = plan.reads.iter().filter(|p| overlay_candidate(plan, p)).cloned().collect();
        if let Err(why) = s.scan(&roots(plan, &rules, &overlaid), now) {
            s.stale = Some(why);
            s.dirs.clear();
        }
        s
    }

    fn scan(&mut self, roots: &[PathBuf], now: i64) -> Result<(), String> {
        let mut stack: Vec<(PathBuf, Option<u64>)> = roots.iter().map(|r| (r.clone(), None)).collect();
        while let Some((path, parent_dev)) = stack.pop() {
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            self.dirs.push((path.clone(), md.as_ref().map(key)));
            let Some(md) = md else {
                if parent_dev.is_some() {
                    return Err(format!("{} moved while the stamp was taken", path.display()));
                }
                continue; // an absent root: compared as absent
            };
            let k = key(&md);
            if k[2] + MARGIN_SECS >= now {
                return Err(format!("{} changed too recently", path.display()));
            }
            if !md.is_dir() {
                continue;
            }
            let dir = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if parent_dev != Some(k[0] as u64) {
                let t = sys::fs_type(dir.as_fd()).map_err(|e| format!("{}: {e}", path.display()))?;
                if PSEUDO_FS.contains(&t) {
                    continue;
                }
            }
            let entries = match std::fs::read_dir(&path) {
                Ok(r) => r,
                // The child, with the same ids and no more capabilities, cannot reach in.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !sys::can_search(dir.as_fd()) => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            for e in entries {
                let e = e.map_err(|e| format!("{}: {e}", path.display()))?;
                if e.file_type().map_err(|e| format!("{}: {e}", path.display()))?.is_dir() {
                    stack.push((e.path(), Some(k[0] as u64)));
                }
            }
        }
        Ok(())
    }

    /// Whether every directory stamped is as it was: nothing was created, removed, renamed
    /// or bound in any of them since the stamp was taken.
    pub fn unchanged(&self) -> bool {
        self.stale.is_none() && self.dirs.iter().all(|(p, st)| status(p).is_ok_and(|now| now == *st))
    }

    /// Why the view cannot be vouched for, if that is so.
    pub fn stale_reason(&self) -> Option<&str> {
        self.stale.as_deref()
    }

    /// How many directories the stamp holds (what [`ViewStamp::unchanged`] stats).
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether the stamp holds no directory.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str, dirs: usize) -> PathBuf {
        let root = std::env::temp_dir().join(format!("paddock-stamp-{name}-{}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        for i in 0..dirs {
            std::fs::create_dir_all(root.join(format!("d{}", i / 50)).join(format!("e{i}"))).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn plan(root: &Path) -> PathPlan {
        PathPlan {
            writes: vec![root.to_path_buf()],
            deny_globs: vec![format!("{}/**/*.pem", root.display())],
            ..PathPlan::default()
        }
    }

    /// Back-dates the tree's ctimes past the racy margin by waiting it out.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_secs(MARGIN_SECS as u64 + 1));
    }

    #[test]
    fn a_new_entry_anywhere_is_a_change() {
        let root = tree("change", 120);
        settle();
        let s = ViewStamp::take(&plan(&root));
        assert!(s.stale_reason().is_none(), "{:?}", s.stale_reason());
        assert!(s.unchanged());
        assert!(s.len() > 120);
        std::fs::write(root.join("d1/e60/late.pem"), "x").unwrap();
        assert!(!s.unchanged(), "a file created deep in the tree");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_swapped_or_removed_is_a_change() {
        let root = tree("swap", 60);
        settle();
        let s = ViewStamp::take(&plan(&root));
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        std::fs::rename(root.join("d0/e1"), root.join("d0/e1.old")).unwrap();
        std::fs::create_dir(root.join("d0/e1")).unwrap();
        assert!(!s.unchanged(), "a directory swapped for another of the same name");
        let s = ViewStamp::take(&PathPlan { writes: vec![root.join("d1")], ..PathPlan::default() });
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        std::fs::remove_dir(root.join("d1/e51")).unwrap();
        assert!(!s.unchanged(), "a directory removed");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_fresh_tree_is_racily_changed() {
        let root = tree("racy", 3);
        let s = ViewStamp::take(&plan(&root));
        assert!(s.stale_reason().is_some());
        assert!(!s.unchanged());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// `cargo test -p paddock-sandbox --release stamp_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn stamp_cost() {
        for n in [100, 2000] {
            let root = tree(&format!("cost{n}"), n);
            settle();
            let s = ViewStamp::take(&plan(&root));
            assert!(s.unchanged());
            let runs = 200;
            let t = std::time::Instant::now();
            for _ in 0..runs {
                assert!(s.unchanged());
            }
            println!("{n} directories ({} stamped): {:?} per check", s.len(), t.elapsed() / runs);
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}
