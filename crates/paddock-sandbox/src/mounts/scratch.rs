//! The scratch root the view is built in, and the move into the finished view.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::paths::{mkdir_one, new_root};
use crate::sys::{self, mount};

/// Makes `/` recursively private and moves into a scratch tmpfs (the host's root at
/// `/oldroot`), with an empty tmpfs at `/newroot` for the view and the empty mode-000 file
/// the masks of files are cloned from.
pub(super) fn enter() -> io::Result<()> {
    // Nothing done here may propagate back to the host's mounts.
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // pivot_root needs the new root on a mount of its own: a tmpfs on this namespace's
    // /tmp, which holds the host's root beneath it from then on.
    mount(
        Some(Path::new("tmpfs")),
        Path::new("/tmp"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    mkdir_one(Path::new("/tmp/oldroot"))?;
    mkdir_one(Path::new("/tmp/newroot"))?;
    sys::pivot_root(c"/tmp", c"/tmp/oldroot")?;
    std::env::set_current_dir("/")?;
    mount(Some(Path::new("tmpfs")), new_root(), Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755"))?;
    // The empty file that masks denied files (mode 000: not even its owner may read it).
    fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o000).open("/deny-file")?;
    Ok(())
}

/// Seals the new root read-only and moves into the view, dropping the scratch root and,
/// beneath it, the host's root in one detach.
pub(super) fn seal_and_enter() -> io::Result<()> {
    mount(
        None,
        new_root(),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    std::env::set_current_dir(new_root())?;
    // pivot_root(".", "."): the old root (the scratch tmpfs, the host's root mounted on
    // its /oldroot) stacks beneath the new one and is detached at once, with every mount
    // beneath it, so no directory of either stays reachable. Every mount of this
    // namespace is private since [`enter`]: the detach reaches no other namespace.
    sys::pivot_root(c".", c".")?;
    sys::umount_detach(c".")?;
    std::env::set_current_dir("/")?;
    Ok(())
}
