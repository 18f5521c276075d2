//! A minimal `/dev`: null zero full random urandom tty bound from the host, the usual
//! links, a private devpts with `ptmx`, and a sized `/dev/shm`; then read-only.
//!
//! Made in two parts: [`make`] (everything but `/dev/shm`, which needs the spec's tmpfs
//! size) and [`finish`]. Every view but one made ahead makes both in place. A one-shot
//! run's reaper forked ahead makes the whole of it in the scratch root before its spec
//! comes ([`make_ahead`], through [`super::ahead`]): `/dev/shm` of the size a spec without
//! `max_memory` asks for, and `/dev` read-only; a spec that asks for another size has
//! `/dev/shm` resized (a tmpfs remount) before the view is entered.

use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::paths::{dev_ahead, mkdir_one, new_root, old_root, scratch_opts, touch};
use super::view::MountView;
use crate::spec::TmpfsSize;
use crate::sys::{mount, set_attrs, MOUNT_ATTR_RDONLY};

/// What [`make`] could not make (noted, not fatal).
#[derive(Debug, Default)]
pub(super) struct Made {
    pub notes: Vec<String>,
    /// A device of the list is missing.
    pub device_missing: bool,
    /// No private devpts (the view is partial only when a pty was asked for).
    pub no_devpts: bool,
}

/// Builds `/dev` in the new root. A missing device or devpts is noted (and makes the view
/// partial when it matters); anything else is an error. `ahead`: the whole of it, made
/// before the spec came ([`make_ahead`]), to resize and move into place.
pub(super) fn build(
    pty: bool,
    tmp_size: TmpfsSize,
    ahead: Option<io::Result<Made>>,
    view: &mut MountView,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let dev = new_root().join("dev");
    let made = match ahead {
        Some(made) => {
            let made = made?;
            // Made whole, of the default size ([`make_ahead`]).
            if tmp_size.bytes != TmpfsSize::default_size().bytes {
                resize_shm(dev_ahead(), tmp_size)?;
            }
            mkdir_one(&dev)?;
            mount(Some(dev_ahead()), &dev, None, libc::MS_MOVE, None)?;
            made
        }
        None => {
            let made = make(&dev)?;
            finish(&dev, tmp_size)?;
            made
        }
    };
    view.partial |= made.device_missing || (made.no_devpts && pty);
    notes.extend(made.notes);
    Ok(())
}

/// Everything of `/dev` at `dev` but `/dev/shm` (its mount point is made).
pub(super) fn make(dev: &Path) -> io::Result<Made> {
    let mut made = Made::default();
    mkdir_one(dev)?;
    mount(Some(Path::new("tmpfs")), dev, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some("mode=0755"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(name);
        let src = old_root().join("dev").join(name);
        // /dev is a fresh tmpfs: no lookups first.
        let r = touch(&dst).and_then(|()| mount(Some(&src), &dst, None, libc::MS_BIND, None));
        if let Err(e) = r {
            made.notes.push(format!("/dev/{name} missing: {e}"));
            made.device_missing = true;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(link))?;
    }
    let pts = dev.join("pts");
    mkdir_one(&pts)?;
    // A devpts of its own: the sandbox sees no terminal of the host's.
    if let Err(e) = mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    ) {
        made.notes.push(format!("no private devpts: {e}"));
        made.no_devpts = true;
    }
    mkdir_one(&dev.join("shm"))?;
    Ok(made)
}

/// All of `/dev` at `dev`, before the spec's tmpfs size is known: [`make`], then
/// [`finish`] with the size of a spec without `max_memory`.
pub(super) fn make_ahead(dev: &Path) -> io::Result<Made> {
    let made = make(dev)?;
    finish(dev, TmpfsSize::default_size())?;
    Ok(made)
}

/// `/dev/shm` at `dev`, made by [`make_ahead`], resized to `tmp_size` (a tmpfs remount; its
/// flags as [`finish`] mounted it).
fn resize_shm(dev: &Path, tmp_size: TmpfsSize) -> io::Result<()> {
    let flags = libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
    mount(None, &dev.join("shm"), None, flags, Some(&scratch_opts(tmp_size)))
}

/// `/dev/shm` of `tmp_size` in the `/dev` at `dev`, then `/dev` read-only.
fn finish(dev: &Path, tmp_size: TmpfsSize) -> io::Result<()> {
    mount(
        Some(Path::new("tmpfs")),
        &dev.join("shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&scratch_opts(tmp_size)),
    )?;
    set_attrs(dev, MOUNT_ATTR_RDONLY, false)
}
