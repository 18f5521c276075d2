//! The read-only and read-write binds of the plan's paths into the new root, parents
//! first, and the private `/tmp` among them.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::paths::{mkdir_one, mkdir_p, mountpoint, new_root, old_root, scratch_opts, touch, under};
use crate::spec::{PathPlan, TmpfsSize};
use crate::sys::{mount, set_attrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// What is mounted at a place of the new root, for the binds beneath it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    ReadOnly,
    Writable,
    /// Not a bind of the host (the private /tmp).
    Other,
}

/// The binds made so far: which one a path lies in, and the directories made in the new
/// root's own tmpfs (so mount points need no lookups).
#[derive(Default)]
struct Binds {
    bound: Vec<(PathBuf, Bound)>,
    made: HashSet<PathBuf>,
}

impl Binds {
    /// The deepest bind at or above `p` (a path as seen in the sandbox).
    fn covering(&self, p: &Path) -> Option<Bound> {
        self.bound.iter().filter(|(b, _)| p.starts_with(b)).max_by_key(|(b, _)| b.components().count()).map(|(_, k)| *k)
    }

    /// Creates the mount point `dst` (`/newroot` + `p`) for a bind of `p`.
    fn mountpoint(&mut self, p: &Path, dst: &Path, dir: bool) -> io::Result<()> {
        if self.covering(p).is_some() {
            // Inside an earlier bind: the host's tree, look before making anything.
            return mountpoint(dst, dir);
        }
        // In the new root's own tmpfs: make each missing parent once.
        let mut cur = PathBuf::new();
        if let Some(parent) = dst.parent() {
            for c in parent.components() {
                cur.push(c);
                if cur.components().count() > 2 && !self.made.contains(&cur) {
                    mkdir_one(&cur)?;
                    self.made.insert(cur.clone());
                }
            }
        }
        if dir {
            mkdir_one(dst)?;
            self.made.insert(dst.to_path_buf());
            Ok(())
        } else {
            touch(dst)
        }
    }
}

/// How many binds were made, and whether `/tmp` is private.
pub(super) struct BindCounts {
    pub read_only: usize,
    pub writable: usize,
    pub private_tmp: bool,
}

/// Paths the sandbox provides itself; the spec cannot bind over them.
fn is_reserved(p: &Path) -> bool {
    p.starts_with("/proc") || p.starts_with("/dev")
}

/// A private tmpfs on `/tmp` of the new root.
fn mount_private_tmp(size: TmpfsSize) -> io::Result<()> {
    let tmp = new_root().join("tmp");
    mkdir_p(&tmp)?;
    mount(Some(Path::new("tmpfs")), &tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(&scratch_opts(size)))
}

/// Binds the plan's read and write paths into the new root, parents first (a write path
/// beneath a read path lands on top of it), with the private `/tmp` right after the
/// top-level binds, below any deeper one. What is skipped goes to `notes`.
pub(super) fn bind_all(plan: &PathPlan, tmp_size: TmpfsSize, notes: &mut Vec<String>) -> io::Result<BindCounts> {
    let mut binds: Vec<(&PathBuf, bool)> =
        plan.reads.iter().map(|p| (p, false)).chain(plan.writes.iter().map(|p| (p, true))).collect();
    binds.sort_by_key(|(p, w)| (p.components().count(), *w));
    let private_tmp = !plan.is_writable(Path::new("/tmp"));
    let mut tmp_done = false;
    let mut state = Binds::default();
    let mut made = BindCounts { read_only: 0, writable: 0, private_tmp };
    for (p, writable) in binds {
        if private_tmp && !tmp_done && p.components().count() > 2 {
            mount_private_tmp(tmp_size)?;
            state.bound.push((PathBuf::from("/tmp"), Bound::Other));
            tmp_done = true;
        }
        if is_reserved(p) {
            notes.push(format!("{} skipped: the sandbox provides its own", p.display()));
            continue;
        }
        let kind = if writable { Bound::Writable } else { Bound::ReadOnly };
        if state.covering(p) == Some(kind) {
            // Already in view, with the same rights, through the recursive bind of an
            // ancestor (e.g. /usr/bin beneath /usr): another bind would change nothing.
            continue;
        }
        if bind_one(&mut state, p, writable, notes)? {
            if writable {
                made.writable += 1;
            } else {
                made.read_only += 1;
            }
            state.bound.push((p.to_path_buf(), kind));
        }
    }
    if private_tmp && !tmp_done {
        mount_private_tmp(tmp_size)?;
    }
    Ok(made)
}

/// Binds `p` of the host at the same place in the new root (`nosuid,nodev`, and read-only
/// unless `writable`, recursively); a symlink is reproduced instead. Whether a bind was
/// made.
fn bind_one(state: &mut Binds, p: &Path, writable: bool, notes: &mut Vec<String>) -> io::Result<bool> {
    let src = under(old_root(), p);
    let dst = under(new_root(), p);
    let Ok(meta) = fs::symlink_metadata(&src) else {
        notes.push(format!("{} skipped: does not exist", p.display()));
        return Ok(false);
    };
    if meta.file_type().is_symlink() {
        // Reproduce the link (e.g. /bin -> usr/bin); its target needs its own entry.
        let target = fs::read_link(&src)?;
        if fs::symlink_metadata(&dst).is_err() {
            if let Some(parent) = dst.parent() {
                mkdir_p(parent)?;
            }
            symlink(&target, &dst)?;
        }
        return Ok(false);
    }
    state.mountpoint(p, &dst, meta.is_dir())?;
    mount(Some(&src), &dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    let attrs = if writable { 0 } else { MOUNT_ATTR_RDONLY };
    set_attrs(&dst, attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true)?;
    Ok(true)
}
