//! Where the view is built, and making mount points: directories and empty files, with
//! as few lookups as possible.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::spec::TmpfsSize;

/// Where the view is built, in the scratch root.
pub(super) fn new_root() -> &'static Path {
    Path::new("/newroot")
}

/// Where the host's root is, in the scratch root.
pub(super) fn old_root() -> &'static Path {
    Path::new("/oldroot")
}

/// Where a `/proc` made ahead waits, in the scratch root ([`super::ahead`]).
pub(super) fn proc_ahead() -> &'static Path {
    Path::new("/proc-ahead")
}

/// Where a `/dev` made ahead waits, in the scratch root ([`super::ahead`]).
pub(super) fn dev_ahead() -> &'static Path {
    Path::new("/dev-ahead")
}

/// The options of a private `/tmp` or `/dev/shm`: sized, so that filling it answers `ENOSPC`
/// instead of taking the host's memory (tmpfs pages are not counted by `RLIMIT_AS`).
pub(super) fn scratch_opts(size: TmpfsSize) -> String {
    format!("mode=1777,size={}", size.bytes)
}

pub(super) fn mkdir_p(p: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(p)
}

/// One `mkdir`, content if it is already there.
pub(super) fn mkdir_one(p: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// An empty file to mount on, in a directory we made (no lookup first).
pub(super) fn touch(p: &Path) -> io::Result<()> {
    fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(p).map(drop)
}

/// `root` + `p` (`/newroot/usr` for `/usr`).
pub(super) fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Creates an empty directory or file at `dst` to mount on, unless something is there.
pub(super) fn mountpoint(dst: &Path, dir: bool) -> io::Result<()> {
    if fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dst.parent() {
        mkdir_p(parent)?;
    }
    if dir {
        mkdir_p(dst)
    } else {
        touch(dst)
    }
}
