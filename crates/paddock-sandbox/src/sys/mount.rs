//! The mount calls: `mount(2)`, `mount_setattr(2)` (with a bind-remount fallback before
//! Linux 5.12), `open_tree(2)`, `move_mount(2)`, `pivot_root(2)`, `umount2(2)`.
//!
//! rustix has no `mount_setattr`, and its `open_tree`/`move_mount` need the `mount`
//! feature on a newer release; these few stay raw here, each with its precondition.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::conv::{cpath, cstring, cvt, cvt_long, owned};

/// `MOUNT_ATTR_NOSUID` of `mount_setattr(2)`.
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV` of `mount_setattr(2)`.
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC` of `mount_setattr(2)`.
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `OPEN_TREE_CLONE` of `open_tree(2)`.
pub(crate) const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `MOVE_MOUNT_F_EMPTY_PATH` of `move_mount(2)`.
pub(crate) const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `MOVE_MOUNT_T_EMPTY_PATH` of `move_mount(2)`.
pub(crate) const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
/// `MOUNT_ATTR_RDONLY` of `mount_setattr(2)`.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `open_tree(2)` of `path` relative to `dir` (`""` with `AT_EMPTY_PATH`: `dir` itself),
/// close-on-exec. With `OPEN_TREE_CLONE` the result is a detached copy the caller owns.
pub(crate) fn open_tree(dir: BorrowedFd<'_>, path: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: a valid descriptor and a NUL-terminated path; on success we own the result.
    let fd = unsafe {
        libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), path.as_ptr(), flags | libc::O_CLOEXEC as libc::c_uint)
    };
    cvt_long(fd).map(owned)
}

/// `move_mount(2)` of the detached tree `from` onto the object `to` refers to (both by
/// descriptor: no path is resolved).
pub(crate) fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: two valid descriptors and empty NUL-terminated paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    cvt_long(r).map(drop)
}

/// `mount_setattr(2)` adding `set` to the mount `fd` refers to, and to every mount
/// beneath it when `recursive`.
pub(crate) fn mount_setattr_fd(fd: BorrowedFd<'_>, set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a valid descriptor, an empty path, a valid mount_attr and its exact size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt_long(r).map(drop)
}

/// `mount(2)`; the error names the target.
pub(crate) fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cpath).transpose()?;
    let target_c = cpath(target)?;
    let fstype = fstype.map(cstring).transpose()?;
    let data = data.map(cstring).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::mount(p(&src), target_c.as_ptr(), p(&fstype), flags, p(&data).cast()) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("mount {}: {e}", target.display())))
}

/// Adds mount attributes to `target` (and everything beneath it when `recursive`).
pub(crate) fn set_attrs(target: &Path, set: u64, recursive: bool) -> io::Result<()> {
    let c = cpath(target)?;
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { libc::AT_RECURSIVE as libc::c_uint } else { 0 };
    // SAFETY: a valid path, a valid mount_attr and its exact size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    match cvt_long(r) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => remount_fallback(target, set),
        Err(e) => Err(io::Error::new(e.kind(), format!("mount_setattr {}: {e}", target.display()))),
    }
}

/// Before Linux 5.12: a bind remount of the top mount only, keeping its locked flags.
fn remount_fallback(target: &Path, set: u64) -> io::Result<()> {
    let c = cpath(target)?;
    // SAFETY: an all-zero statvfs is valid; statvfs fills it from a valid path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and buffer.
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT;
    for (st_flag, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms;
        }
    }
    for (a, ms) in [
        (MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
        (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
        (MOUNT_ATTR_NODEV, libc::MS_NODEV),
        (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
    ] {
        if set & a != 0 {
            flags |= ms;
        }
    }
    mount(None, target, None, flags, None)
}

/// `pivot_root(2)`.
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: two valid NUL-terminated paths.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("pivot_root: {e}")))
}

/// `umount2(MNT_DETACH)`.
pub(crate) fn umount_detach(p: &CStr) -> io::Result<()> {
    // SAFETY: a valid NUL-terminated path.
    cvt(unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("umount {}: {e}", p.to_string_lossy())))
}

/// `open_tree(2)` of the mount at `path` itself (not a clone: the caller moves it).
pub(crate) fn open_tree_at(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: open_tree with a valid path and flags; on success we own the descriptor.
    cvt_long(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), libc::O_CLOEXEC as libc::c_uint) })
        .map(owned)
        .map_err(|e| io::Error::new(e.kind(), format!("open_tree {}: {e}", path.display())))
}

/// `move_mount(2)` of the detached tree `from` onto `path`.
pub(crate) fn move_mount_to(from: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: move_mount of a detached tree we own onto a valid path.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
    .map_err(|e| io::Error::new(e.kind(), format!("move_mount {}: {e}", path.display())))
}
