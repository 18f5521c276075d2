//! The package manager's read-only trees (`/usr`, `/lib`, ...; [`crate::SYSTEM_TREES`]),
//! and in a one-shot run the host's `/etc` ([`crate::ONE_SHOT_OVERLAY_TREES`]), mounted in
//! the view through a read-only overlay instead of a bind.
//!
//! Why: a unix socket is reached by the inode it was bound on, and an overlay's inodes are
//! its own. A host socket in the tree shows through the overlay as an `s` file, but
//! `connect()` to it fails (`ECONNREFUSED`) whoever bound it, by whatever path, from
//! whatever network namespace. So these trees need no walk for sockets (which cost every
//! start 55–130 ms): only beneath a deny or protect rule's prefix.
//!
//! The overlay has no upper layer (nothing can be written through it) and two lower ones:
//! the host's tree on top, and an empty directory of the scratch root beneath it (the
//! kernel wants two lower layers without an upper one). It shows one mount only: a tree
//! with mounts beneath it on the host is not overlaid ([`has_submounts`]) but bound and
//! walked whole as before, as is one whose overlay the kernel refuses (no overlayfs, too
//! deep a stack of them): the caller falls back, and the masks are complete either way (or,
//! when that walk cannot finish, they fail closed like any other).
//!
//! Landlock attaches its rules to inodes, and Landlock treats an overlay's merged tree as a
//! hierarchy of its own: the ruleset's paths are opened in the target, after the view is
//! in place, so its read and execute rules (a `[commands]` program's file included) are on
//! the overlay's inodes, the ones the child reaches.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags, MountAttrFlags,
    MoveMountFlags,
};

use crate::view::mountinfo;

/// A step of mounting an overlay, for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OverlayStep {
    /// `fsopen("overlay")`.
    Open,
    /// `fsconfig` of the lower layers.
    Lower,
    /// `fsconfig` of `redirect_dir=nofollow`, `metacopy=off`, `xino=on`.
    Options,
    /// `fsconfig(FSCONFIG_CMD_CREATE)`: the kernel builds the overlay.
    Create,
    /// `fsmount`, read-only, nosuid, nodev.
    Mount,
    /// `move_mount` into the view.
    Move,
}

impl std::fmt::Display for OverlayStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OverlayStep::Open => "fsopen(overlay)",
            OverlayStep::Lower => "fsconfig(lowerdir)",
            OverlayStep::Options => "fsconfig(redirect_dir, metacopy, xino)",
            OverlayStep::Create => "fsconfig(create)",
            OverlayStep::Mount => "fsmount",
            OverlayStep::Move => "move_mount",
        })
    }
}

/// Why a tree could not be overlaid: the step and the errno.
#[derive(Debug, thiserror::Error)]
#[error("no read-only overlay of {} ({step}: {source})", tree.display())]
pub(super) struct OverlayError {
    /// The tree, as the child sees it.
    pub tree: PathBuf,
    /// The step.
    pub step: OverlayStep,
    /// The errno.
    pub source: io::Error,
}

/// Mounts a read-only overlay of `src` (the host's tree, under `/oldroot`) with `empty` (an
/// empty directory) beneath it, on `dst` (a directory of the view). `tree` names it in the
/// error.
pub(super) fn mount(tree: &Path, src: &Path, empty: &Path, dst: &Path) -> Result<(), OverlayError> {
    let err = |step| move |source: rustix::io::Errno| OverlayError { tree: tree.into(), step, source: source.into() };
    let mut lower = escape(src);
    lower.push(b':');
    lower.extend(escape(empty));
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err(OverlayStep::Open))?;
    fsconfig_set_string(fs.as_fd(), "lowerdir", OsStr::from_bytes(&lower)).map_err(err(OverlayStep::Lower))?;
    // The tree as it is: no redirect or metadata-only entry (overlay xattrs on the host's
    // files) leads anywhere else in the layer.
    fsconfig_set_string(fs.as_fd(), "redirect_dir", "nofollow").map_err(err(OverlayStep::Options))?;
    fsconfig_set_string(fs.as_fd(), "metacopy", "off").map_err(err(OverlayStep::Options))?;
    // The layers are on two filesystems (the host's and the scratch tmpfs): without xino a
    // directory's `st_ino` is not its `d_ino` (the view walk follows entries by inode) nor
    // stable, and files and directories differ in `st_dev` (`find -xdev` would skip files).
    fsconfig_set_string(fs.as_fd(), "xino", "on").map_err(err(OverlayStep::Options))?;
    fsconfig_create(fs.as_fd()).map_err(err(OverlayStep::Create))?;
    let attrs =
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(err(OverlayStep::Mount))?;
    move_mount(mnt.as_fd(), "", CWD, dst, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH).map_err(err(OverlayStep::Move))
}

/// A layer's path as overlayfs reads it in `lowerdir` (`:` separates layers; a backslash escapes).
fn escape(p: &Path) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.as_os_str().len());
    for &c in p.as_os_str().as_bytes() {
        if c == b':' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

/// Whether a mount lies strictly beneath `src` in `mountinfo` (this namespace's
/// `/proc/self/mountinfo`): an overlay would hide it (and show what it covers instead).
pub(super) fn has_submounts(table: &[u8], src: &Path) -> bool {
    mountinfo::mounts(table).any(|m| m.point.starts_with(src) && m.point != src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submounts_are_found_beneath_the_tree_only() {
        let info = b"22 1 253:0 / / rw - ext4 /dev/vda rw\n\
                    30 22 0:5 / /oldroot/usr rw - ext4 /dev/vdb rw\n\
                    31 22 0:6 / /oldroot/usrx rw - tmpfs t rw\n\
                    32 22 0:7 / /oldroot/opt/a\\040b rw - tmpfs t rw\n";
        assert!(!has_submounts(info, Path::new("/oldroot/usr")), "the tree's own mount is not beneath it");
        assert!(!has_submounts(info, Path::new("/oldroot/lib")));
        assert!(has_submounts(info, Path::new("/oldroot/opt")));
        assert!(has_submounts(info, Path::new("/oldroot")));
        assert_eq!(mountinfo::unescape_octal(b"/a\\040b\\\\x"), PathBuf::from("/a b\\\\x"));
    }

    #[test]
    fn layer_paths_are_escaped() {
        assert_eq!(escape(Path::new("/oldroot/usr")), b"/oldroot/usr");
        assert_eq!(escape(Path::new("/a:b\\c")), b"/a\\:b\\\\c");
    }
}
