//! Directory entries: a consistent listing of a directory (`getdents64`, see the module
//! docs of [`super`]), its parsing, and the work items of the walk.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::sys;
use crate::view::ViewError;

/// How many times a directory is read, or a moving entry followed, before giving up.
pub(super) const TRIES: usize = 100;
pub(super) const DT_UNKNOWN: u8 = 0;
pub(super) const DT_DIR: u8 = 4;
pub(super) const DT_SOCK: u8 = 12;

/// One directory entry.
pub(super) struct Entry {
    pub(super) name: CString,
    pub(super) ino: u64,
    pub(super) dtype: u8,
}

/// Work left on the stack.
pub(super) enum Item {
    /// A directory to walk, named in its (open) parent.
    Dir { parent: Rc<OwnedFd>, parent_dev: u64, name: CString, ino: u64, path: PathBuf, relevant: bool },
    /// A directory of a cached listing, by its path and its inode; reached from `base`, its
    /// nearest opened ancestor (the path's bytes after the first `skip` are relative to it).
    Cached { base: Rc<OwnedFd>, skip: usize, path: PathBuf, ino: u64, parent_dev: u64 },
    /// A directory already open (a root, a protected directory).
    Open { fd: OwnedFd, parent_dev: u64, path: PathBuf },
    /// A protected directory, bound read-only once all beneath it is done.
    Protect { fd: OwnedFd, path: PathBuf },
}

pub(super) fn same(a: &libc::stat, b: &libc::stat) -> bool {
    (a.st_dev, a.st_ino, a.st_nlink, a.st_size, a.st_mtime, a.st_mtime_nsec, a.st_ctime, a.st_ctime_nsec)
        == (b.st_dev, b.st_ino, b.st_nlink, b.st_size, b.st_mtime, b.st_mtime_nsec, b.st_ctime, b.st_ctime_nsec)
}

/// Whether `st`, the status of `fd` opened under a name its parent (on device
/// `parent_dev`) listed with inode `ino`, is the object listed: the same inode, or the root
/// of a mount there: another filesystem's, or a bind mount of the parent's own (its entry
/// names the directory the mount covers, whose inode differs from the mount's root; until
/// 2026-12-05 such a bind inside a grant read as an entry that kept moving, and every run
/// failed with 71). Only a mismatch on one device costs a `statx`.
pub(super) fn is_listed(fd: BorrowedFd<'_>, st: &libc::stat, ino: u64, parent_dev: u64) -> bool {
    st.st_ino == ino || st.st_dev != parent_dev || mount_root(fd)
}

/// Whether `fd` is the root of a mount (`STATX_ATTR_MOUNT_ROOT`, Linux 5.8; an older
/// kernel says nothing, and the entry reads as moved).
fn mount_root(fd: BorrowedFd<'_>) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::empty())
        .is_ok_and(|s| (s.stx_attributes & s.stx_attributes_mask).contains(StatxAttributes::MOUNT_ROOT))
}

pub(super) fn kind(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// A consistent listing of `dir` (see the module docs), `.` and `..` left out.
pub(super) fn list(
    buf: &mut [u8],
    dir: BorrowedFd<'_>,
    path: &Path,
    st: Option<&libc::stat>,
) -> Result<Vec<Entry>, ViewError> {
    let err = |e: io::Error| ViewError::ReadDir { path: path.to_path_buf(), source: e };
    // A fresh descriptor (its status given) is at the start; a re-read rewinds.
    let mut known = st.copied();
    let fresh = st.is_some();
    for attempt in 0..TRIES {
        let before = match known.take() {
            Some(st) => st,
            None => sys::fstat(dir).map_err(err)?,
        };
        if attempt > 0 || !fresh {
            sys::rewind(dir).map_err(err)?;
        }
        let mut out = Vec::new();
        let mut calls = 0;
        loop {
            let n = sys::getdents64(dir, buf).map_err(err)?;
            if n == 0 {
                break;
            }
            calls += 1;
            parse(&buf[..n], &mut out);
        }
        // One call: read under the directory's lock, a snapshot.
        if calls <= 1 {
            return Ok(out);
        }
        let after = sys::fstat(dir).map_err(err)?;
        if same(&before, &after) {
            return Ok(out);
        }
    }
    Err(ViewError::Unstable { path: path.to_path_buf(), tries: TRIES })
}

/// A view path relative to the view's root, as a C string.
pub(super) fn rel_c(path: &Path) -> Result<CString, ViewError> {
    // On bytes (`Path::strip_prefix` parses components): the walk's paths are normalised.
    let bytes = path.as_os_str().as_bytes();
    let rel = bytes.strip_prefix(b"/").unwrap_or(bytes);
    let rel = if rel.is_empty() { b"." } else { rel };
    CString::new(rel)
        .map_err(|_| ViewError::Open { path: path.to_path_buf(), source: io::ErrorKind::InvalidInput.into() })
}

/// How many bytes of a path beneath `dir` name `dir` and the slash after it.
pub(super) fn skip_of(dir: &Path) -> usize {
    let bytes = dir.as_os_str().as_bytes();
    if bytes.ends_with(b"/") {
        bytes.len()
    } else {
        bytes.len() + 1
    }
}

/// Appends the entries of one `getdents64` buffer (`struct linux_dirent64`) to `out`.
fn parse(buf: &[u8], out: &mut Vec<Entry>) {
    let mut off = 0;
    while off + 19 <= buf.len() {
        let ino = u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap_or([0; 8]));
        let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
        if reclen == 0 || off + reclen > buf.len() {
            break;
        }
        let dtype = buf[off + 18];
        let name_bytes = &buf[off + 19..off + reclen];
        let name = CStr::from_bytes_until_nul(name_bytes).map(CStr::to_owned);
        off += reclen;
        let Ok(name) = name else { continue };
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        out.push(Entry { name, ino, dtype });
    }
}
