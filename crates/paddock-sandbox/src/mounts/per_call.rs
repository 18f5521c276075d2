//! Step 3 for a zygote's call: the per-call mounts over the zygote's view.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::paths::{mkdir_p, scratch_opts, touch};
use super::proc::mount_proc;
use crate::error::{MountError, MountStep};
use crate::spec::{PathPlan, TmpfsSize};
use crate::sys::{self, mount};

/// Step 3 for a call of a [`crate::Zygote`] (in the call's reaper, pid 1 of its own pid
/// namespace, in a mount namespace of its own copied from the zygote's view): a fresh
/// `/proc` of the call's pid namespace, and a fresh `/tmp` (when the view's is private)
/// and `/dev/shm`, so no call sees another's. Returns whether /proc is there, and notes.
///
/// The fresh `/tmp` keeps the binds the view has beneath `/tmp` (e.g. a workspace under
/// `/tmp`): each is held (`open_tree`, the mount itself, attributes and masks beneath it
/// included) before the tmpfs goes on, and moved onto the same path in it (`move_mount`):
/// moved, not cloned, so a call does not copy the view's masks a second time.
pub(crate) fn per_call(
    private_tmp: bool,
    plan: &PathPlan,
    tmp_size: TmpfsSize,
) -> Result<(bool, Vec<String>), MountError> {
    let mut notes = Vec::new();
    let proc_ok = match mount_proc(Path::new("/proc"), &mut notes) {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("no /proc: {e}"));
            false
        }
    };
    if private_tmp {
        fresh_tmp(plan, tmp_size).map_err(MountError::at(MountStep::CallTmp))?;
    }
    mount(
        Some(Path::new("tmpfs")),
        Path::new("/dev/shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&scratch_opts(tmp_size)),
    )
    .map_err(MountError::at(MountStep::CallShm))?;
    Ok((proc_ok, notes))
}

/// What lies beneath the view's `/tmp`, to put back on the fresh one.
enum Keep {
    Tree(OwnedFd, bool),
    Link(PathBuf),
}

/// A fresh tmpfs on `/tmp`, with the view's binds beneath `/tmp` moved onto it.
fn fresh_tmp(plan: &PathPlan, size: TmpfsSize) -> io::Result<()> {
    let tmp = Path::new("/tmp");
    let mut tops: Vec<&PathBuf> =
        plan.reads.iter().chain(&plan.writes).filter(|p| p.starts_with(tmp) && p.as_path() != tmp).collect();
    tops.sort_by_key(|p| p.components().count());
    let mut kept: Vec<(PathBuf, Keep)> = Vec::new();
    for p in tops {
        if kept.iter().any(|(k, _)| p.starts_with(k)) {
            continue; // comes along with its ancestor's tree
        }
        let Ok(meta) = fs::symlink_metadata(p) else { continue }; // not in the view
        if meta.file_type().is_symlink() {
            kept.push((p.clone(), Keep::Link(fs::read_link(p)?)));
            continue;
        }
        // Not a clone: the mount itself, moved below (a clone would copy every mask
        // beneath it for each call).
        let fd = sys::open_tree_at(p)?;
        kept.push((p.clone(), Keep::Tree(fd, meta.is_dir())));
    }
    mount(Some(Path::new("tmpfs")), tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(&scratch_opts(size)))?;
    for (p, keep) in kept {
        if let Some(parent) = p.parent() {
            mkdir_p(parent)?;
        }
        match keep {
            Keep::Link(target) => symlink(&target, &p)?,
            Keep::Tree(fd, dir) => {
                if dir {
                    mkdir_p(&p)?;
                } else {
                    touch(&p)?;
                }
                sys::move_mount_to(fd.as_fd(), &p)?;
            }
        }
    }
    Ok(())
}

/// Gives the per-call tmpfs mounts (`/dev/shm`, and `/tmp` when private) the size
/// `tmp_size`: for a call whose mounts were made ahead ([`crate::Zygote`]'s spare call
/// helper) at the template's size, when its own limits differ.
pub(crate) fn resize(private_tmp: bool, tmp_size: TmpfsSize) -> Result<(), MountError> {
    let flags = libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
    let opts = scratch_opts(tmp_size);
    if private_tmp {
        mount(None, Path::new("/tmp"), None, flags, Some(&opts)).map_err(MountError::at(MountStep::CallTmp))?;
    }
    mount(None, Path::new("/dev/shm"), None, flags, Some(&opts)).map_err(MountError::at(MountStep::CallShm))
}
