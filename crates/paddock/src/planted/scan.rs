//! One scan of the places a `deny` or `protect` glob can match under a write grant: every
//! directory read relative to its parent's descriptor, no symlink followed, every match
//! noted with its identity and its parent's descriptor (to move it by).

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::Globs;

/// One match met by a scan.
pub(super) struct Found {
    /// Its path.
    pub path: PathBuf,
    /// The index of the rule it matches in [`Globs`].
    pub rule: usize,
    /// Device and inode.
    pub id: (u64, u64),
    /// Its parent directory, open, and its name there.
    pub parent: Rc<OwnedFd>,
    pub name: CString,
}

/// What one scan met.
#[derive(Default)]
pub(super) struct Scan {
    /// Every match.
    pub found: Vec<Found>,
    /// Directories that could not be read, with the error: what they hold is unknown.
    pub failed: Vec<(PathBuf, String)>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Scans each root (a write grant, or a rule's prefix beneath one).
pub(super) fn scan(globs: &Globs, roots: &[PathBuf]) -> Scan {
    let mut out = Scan::default();
    for root in roots {
        match rustix::fs::open(root.as_path(), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => walk(globs, fd, root.clone(), &mut out),
            // Nothing there (yet): nothing to find.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
            Err(e) => out.failed.push((root.clone(), e.to_string())),
        }
    }
    out
}

fn walk(globs: &Globs, fd: OwnedFd, path: PathBuf, out: &mut Scan) {
    let mut stack = vec![(fd, path)];
    while let Some((fd, path)) = stack.pop() {
        let parent = Rc::new(fd);
        let dir = match Dir::read_from(&*parent) {
            Ok(d) => d,
            Err(e) => {
                out.failed.push((path, e.to_string()));
                continue;
            }
        };
        for entry in dir {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.failed.push((path.clone(), e.to_string()));
                    break;
                }
            };
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let full = path.join(OsStr::from_bytes(name.to_bytes()));
            let mut t = entry.file_type();
            if t == FileType::Unknown {
                match rustix::fs::statat(&*parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => t = FileType::from_raw_mode(st.st_mode),
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        out.failed.push((full, e.to_string()));
                        continue;
                    }
                }
            }
            let rule =
                globs.matching(&full).or_else(|| (t == FileType::Symlink).then(|| globs.on_the_way(&full)).flatten());
            if let Some(rule) = rule {
                note(&parent, name, full, rule, out);
            } else if t == FileType::Directory && globs.relevant(&full) {
                match rustix::fs::openat(&*parent, name, DIR_FLAGS, Mode::empty()) {
                    Ok(fd) => stack.push((fd, full)),
                    // Gone, or no longer a directory, since it was listed.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                    // Neither listed nor searched by paddock (which has the child's uid
                    // and at least its capabilities), so not reached by the child either.
                    Err(Errno::ACCESS) if !searchable(&parent, name) => {}
                    Err(e) => out.failed.push((full, e.to_string())),
                }
            }
        }
    }
}

/// Whether this process may search directory `name` of `parent`.
fn searchable(parent: &OwnedFd, name: &CStr) -> bool {
    rustix::fs::accessat(parent, name, rustix::fs::Access::EXEC_OK, AtFlags::EACCESS | AtFlags::SYMLINK_NOFOLLOW)
        .is_ok()
}

/// Notes the match `name` of `parent` with its identity.
fn note(parent: &Rc<OwnedFd>, name: &CStr, path: PathBuf, rule: usize, out: &mut Scan) {
    match rustix::fs::statat(&**parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => out.found.push(Found {
            path,
            rule,
            id: (st.st_dev, st.st_ino),
            parent: Rc::clone(parent),
            name: name.to_owned(),
        }),
        Err(Errno::NOENT) => {}
        Err(e) => out.failed.push((path, e.to_string())),
    }
}

/// Whether `a` is `b` or beneath it.
pub(super) fn beneath(a: &Path, b: &Path) -> bool {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    a.starts_with(b) && (a.len() == b.len() || b.ends_with(b"/") || a[b.len()] == b'/')
}
