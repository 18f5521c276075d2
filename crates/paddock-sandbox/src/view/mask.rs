//! Placing a mask or a read-only bind on an object, by descriptor: the object the walk
//! opened is the one covered, whatever its name is by then (no path is resolved again).
//!
//! A masked directory gets a clone of an empty read-only tmpfs of mode 000; anything else
//! (file, socket, fifo, device) a clone of an empty read-only file of mode 000; both are
//! templates made once ([`Masker::new`]). A protected object gets a recursive clone of its
//! own mount tree, made read-only, moved back onto it; a pinned directory (an ancestor of a
//! match, [`crate::view::plan::Rules::pins`]) the same, left writable.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// A step of placing a mask, for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaskStep {
    /// `open_tree(OPEN_TREE_CLONE)` of the template or of the protected object.
    Clone,
    /// `mount_setattr(MOUNT_ATTR_RDONLY)` of the clone.
    ReadOnly,
    /// `move_mount` of the clone onto the object.
    Move,
}

impl std::fmt::Display for MaskStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MaskStep::Clone => "open_tree (clone)",
            MaskStep::ReadOnly => "mount_setattr (read-only)",
            MaskStep::Move => "move_mount",
        })
    }
}

/// The mask templates.
pub(crate) struct Masker {
    dir: OwnedFd,
    file: OwnedFd,
    /// The devices of the templates: an object on one of them is a mask already.
    pub devs: [u64; 2],
}

impl Masker {
    /// Takes the templates: `dir` an empty read-only tmpfs of mode 000, `file` a read-only
    /// bind of an empty file of mode 000 (each an `open_tree` handle of the mount).
    pub(crate) fn new(dir: OwnedFd, file: OwnedFd) -> io::Result<Masker> {
        let devs = [sys::fstat(dir.as_fd())?.st_dev, sys::fstat(file.as_fd())?.st_dev];
        Ok(Masker { dir, file, devs })
    }

    /// Masks the object `target` refers to (`is_dir`: whether it is a directory).
    pub(crate) fn mask(&self, target: BorrowedFd<'_>, is_dir: bool) -> Result<(), (MaskStep, io::Error)> {
        let template = if is_dir { &self.dir } else { &self.file };
        let flags = sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as libc::c_uint;
        let clone = sys::open_tree(template.as_fd(), c"", flags).map_err(|e| (MaskStep::Clone, e))?;
        sys::move_mount_fd(clone.as_fd(), target).map_err(|e| (MaskStep::Move, e))
    }

    /// Binds the object `target` refers to read-only over itself, with everything beneath.
    pub(crate) fn protect(&self, target: BorrowedFd<'_>) -> Result<(), (MaskStep, io::Error)> {
        let flags = sys::OPEN_TREE_CLONE | (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
        let clone = sys::open_tree(target, c"", flags).map_err(|e| (MaskStep::Clone, e))?;
        sys::mount_setattr_fd(clone.as_fd(), sys::MOUNT_ATTR_RDONLY, true).map_err(|e| (MaskStep::ReadOnly, e))?;
        sys::move_mount_fd(clone.as_fd(), target).map_err(|e| (MaskStep::Move, e))
    }

    /// Binds the directory `target` refers to over itself, with everything beneath (the
    /// masks placed there come along): a mount point, it cannot be renamed or removed.
    pub(crate) fn pin(&self, target: BorrowedFd<'_>) -> Result<(), (MaskStep, io::Error)> {
        let flags = sys::OPEN_TREE_CLONE | (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
        let clone = sys::open_tree(target, c"", flags).map_err(|e| (MaskStep::Clone, e))?;
        sys::move_mount_fd(clone.as_fd(), target).map_err(|e| (MaskStep::Move, e))
    }
}
