//! The read-only and read-write binds of the plan's paths into the new root, parents
//! first, and the private `/tmp` among them.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::links;
use super::overlay;
use super::paths::{mkdir_one, mkdir_p, mountpoint, new_root, old_root, scratch_opts, touch, under};
use crate::spec::{PathPlan, TmpfsSize};
use crate::sys::{mount, set_attrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use crate::view::plan;

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
    /// This namespace's mountinfo (read once, when a tree is first overlaid, unless it was
    /// read ahead); `None` when it could not be read.
    mountinfo: Option<Option<Vec<u8>>>,
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

/// How many binds were made, whether `/tmp` is private, and which trees are overlays.
pub(super) struct BindCounts {
    pub read_only: usize,
    pub writable: usize,
    pub private_tmp: bool,
    /// The read-only system trees mounted through an overlay ([`super::overlay`]): no host
    /// socket in them is reachable, so they are walked only beneath the rules' prefixes.
    pub overlaid: Vec<PathBuf>,
    /// The overlays' devices and the devices of the host trees beneath (for the view cache).
    pub overlay_devs: Vec<(u64, u64)>,
    /// The system trees bound instead of overlaid, and why (walked whole).
    pub not_overlaid: Vec<String>,
    /// This namespace's mountinfo as read before the binds (the host's mounts), when it
    /// was read; for the view walk ([`super::masks::place`]).
    pub mountinfo: Option<Option<Vec<u8>>>,
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

/// This mount namespace's `mountinfo`, seen from the scratch root; `None` when it cannot be
/// read (no `/proc`).
pub(super) fn read_mountinfo() -> Option<Vec<u8>> {
    fs::read(old_root().join("proc/self/mountinfo")).ok()
}

/// Binds the plan's read and write paths into the new root, parents first (a write path
/// beneath a read path lands on top of it), with the private `/tmp` right after the
/// top-level binds, below any deeper one. What is skipped goes to `notes`. `mountinfo`:
/// the namespace's mount table when it was read ahead ([`super::MadeAhead`]). `one_shot`:
/// the view of one run, not a zygote's (its `/etc` goes through an overlay too,
/// [`plan::ONE_SHOT_OVERLAY_TREES`]).
pub(super) fn bind_all(
    plan: &PathPlan,
    one_shot: bool,
    tmp_size: TmpfsSize,
    mountinfo: Option<Option<Vec<u8>>>,
    notes: &mut Vec<String>,
) -> io::Result<BindCounts> {
    let mut binds: Vec<(&PathBuf, bool)> =
        plan.reads.iter().map(|p| (p, false)).chain(plan.writes.iter().map(|p| (p, true))).collect();
    binds.sort_by_key(|(p, w)| (p.components().count(), *w));
    let private_tmp = !plan.is_writable(Path::new("/tmp"));
    let mut tmp_done = false;
    let mut state = Binds { mountinfo, ..Binds::default() };
    let mut made = BindCounts {
        read_only: 0,
        writable: 0,
        private_tmp,
        overlaid: Vec::new(),
        overlay_devs: Vec::new(),
        not_overlaid: Vec::new(),
        mountinfo: None,
    };
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
        let overlay = !writable && plan::overlay_candidate(plan, p, one_shot);
        match bind_one(&mut state, p, writable, overlay, notes)? {
            Made::Nothing => continue,
            Made::Overlay(devs) => {
                made.overlaid.push(p.to_path_buf());
                made.overlay_devs.push(devs);
            }
            Made::Bind(_) if writable => made.writable += 1,
            Made::Bind(why) => {
                made.read_only += 1;
                if let Some(why) = why {
                    let note = format!("{} bound and walked whole: {why}", p.display());
                    notes.push(note.clone());
                    made.not_overlaid.push(note);
                }
            }
        }
        state.bound.push((p.to_path_buf(), kind));
    }
    if private_tmp && !tmp_done {
        mount_private_tmp(tmp_size)?;
    }
    made.mountinfo = state.mountinfo.take();
    Ok(made)
}

/// What [`bind_one`] made.
enum Made {
    /// A symlink, or nothing (the path does not exist).
    Nothing,
    /// A bind of the host's object; why it is not an overlay, when one was asked for.
    Bind(Option<String>),
    /// A read-only overlay of the host's directory: its device, and the host tree's.
    Overlay((u64, u64)),
}

/// Binds `p` of the host at the same place in the new root (`nosuid,nodev`, and read-only
/// unless `writable`, recursively); a symlink is reproduced instead. With `overlay`, a
/// directory is mounted through a read-only overlay ([`overlay`]) where it can be: when
/// it cannot, it is bound (the view's walk then covers it whole), and the result says why.
fn bind_one(state: &mut Binds, p: &Path, writable: bool, overlay: bool, notes: &mut Vec<String>) -> io::Result<Made> {
    let src = under(old_root(), p);
    let dst = under(new_root(), p);
    let Ok(meta) = fs::symlink_metadata(&src) else {
        // Named through an absolute symlink on the way, resolved from the scratch root
        // here: the links are made in the view, to the path they resolve to (bound).
        match links::on_the_way(p) {
            Ok(on_way) if !on_way.is_empty() => links::reproduce(&on_way)?,
            Ok(_) => notes.push(format!("{} skipped: does not exist", p.display())),
            Err(e) => notes.push(format!("{} skipped: its way could not be read: {e}", p.display())),
        }
        return Ok(Made::Nothing);
    };
    if meta.file_type().is_symlink() {
        // Reproduce the link (e.g. /bin -> usr/bin), and every link its resolution passes
        // on the way (`hop` -> `/x/lnk` -> `/x/real`: found by a test of the named grants);
        // what it resolves to needs its own entry.
        links::reproduce(&links::on_the_way(p)?)?;
        return Ok(Made::Nothing);
    }
    state.mountpoint(p, &dst, meta.is_dir())?;
    let mut not_overlaid = None;
    if overlay && meta.is_dir() {
        match state.overlay(p, &src, &dst) {
            Ok(()) => return Ok(Made::Overlay((fs::metadata(&dst)?.dev(), meta.dev()))),
            Err(why) => not_overlaid = Some(why),
        }
    }
    mount(Some(&src), &dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    let attrs = if writable { 0 } else { MOUNT_ATTR_RDONLY };
    set_attrs(&dst, attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true)?;
    Ok(Made::Bind(not_overlaid))
}

impl Binds {
    /// Mounts the host's directory `src` on `dst` through a read-only overlay, unless the
    /// host has mounts beneath it (the overlay would hide them); the error says why not.
    fn overlay(&mut self, p: &Path, src: &Path, dst: &Path) -> Result<(), String> {
        let info = self.mountinfo.get_or_insert_with(read_mountinfo);
        match info {
            None => return Err("the host's mounts beneath it could not be listed (no /proc)".into()),
            Some(info) if overlay::has_submounts(info, src) => {
                return Err("it has mounts beneath it, which an overlay would hide".into())
            }
            Some(_) => {}
        }
        // The overlay's second, lowest layer: an empty directory of the scratch root.
        let empty = Path::new("/overlay-empty");
        mkdir_one(empty).map_err(|e| format!("{}: {e}", empty.display()))?;
        overlay::mount(p, src, empty, dst).map_err(|e| e.to_string())
    }
}
