//! `/proc` of the sandbox's pid namespace, with `/proc/sys` and friends read-only; a
//! zygote's view holds a covered place for it that each call mounts over.

use std::io;
use std::path::Path;

use super::paths::{mkdir_one, new_root, old_root, proc_ahead};
use super::view::MountView;
use crate::sys::{mount, set_attrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// `/proc` of the new root: a fresh proc, or for a zygote the covered host's one (each
/// call mounts its own, [`super::per_call`](mod@super::per_call)). `ahead`: the fresh proc
/// a one-shot run's reaper mounted before its spec came ([`super::ahead`]), with its notes,
/// to move into place.
pub(super) fn mount_for(
    zygote: bool,
    ahead: Option<io::Result<Vec<String>>>,
    view: &mut MountView,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let proc_dir = new_root().join("proc");
    mkdir_one(&proc_dir)?;
    if let Some(made) = ahead {
        let moved =
            made.and_then(|made| mount(Some(proc_ahead()), &proc_dir, None, libc::MS_MOVE, None).map(|()| made));
        match moved {
            Ok(made) => {
                view.proc_ok = true;
                view.partial |= !made.is_empty();
                notes.extend(made);
            }
            Err(e) => {
                notes.push(format!("no /proc: {e}"));
                view.partial = true;
            }
        }
        return Ok(());
    }
    if zygote {
        // The kernel lets a user namespace mount a proc only when one is already fully
        // visible in the mount namespace: keep the host's, bound here and covered at once
        // by an empty read-only tmpfs (so a call whose own /proc failed sees nothing).
        mount(Some(&old_root().join("proc")), &proc_dir, None, libc::MS_BIND | libc::MS_REC, None)?;
        return mount(
            Some(Path::new("tmpfs")),
            &proc_dir,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=000,size=4k,nr_inodes=1"),
        );
    }
    let before = notes.len();
    match mount_proc(&proc_dir, notes) {
        Ok(()) => {
            view.proc_ok = true;
            view.partial |= notes.len() > before;
        }
        Err(e) => {
            notes.push(format!("no /proc: {e}"));
            view.partial = true;
        }
    }
    Ok(())
}

/// A fresh proc on `proc_dir`, with `/proc/sys` and friends read-only. Notes what could not
/// be made read-only (and sets nothing partial: the caller decides).
pub(super) fn mount_proc(proc_dir: &Path, notes: &mut Vec<String>) -> io::Result<()> {
    mount(Some(Path::new("proc")), proc_dir, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)?;
    for sub in ["sys", "sysrq-trigger", "irq", "bus"] {
        let p = proc_dir.join(sub);
        let r = mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)
            .and_then(|()| set_attrs(&p, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true));
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // not in this kernel
            Err(e) => notes.push(format!("/proc/{sub} not read-only: {e}")),
            Ok(()) => {}
        }
    }
    Ok(())
}
