//! Walking from cached listings ([`crate::view::cache`]): a directory whose status is
//! unchanged since an earlier start is not read again, only its directories and its
//! special entries (sockets, matches) are followed.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use super::entry::{kind, rel_c, Entry, Item};
use super::Walker;
use crate::sys;
use crate::view::cache;
use crate::view::ViewError;

impl Walker<'_> {
    /// A directory of a cached listing: its status by path from the view's root (one
    /// system call); the inode must be the one listed (a swapped path component gives
    /// another), then its own cached listing if still exact, else it is opened and read.
    pub(super) fn cached_path(
        &mut self,
        path: PathBuf,
        ino: u64,
        parent_dev: u64,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        // The view's root, shared (not duplicated: this runs once per cached directory).
        let Some(root) = self.root.clone() else {
            return Ok(());
        };
        let rel = rel_c(&path)?;
        let st = sys::lstatat(root.as_fd(), &rel).ok();
        if let Some(st) = st.filter(|st| kind(st) == libc::S_IFDIR && (st.st_ino == ino || st.st_dev != parent_dev)) {
            let own = self.rules.relevant(&path);
            if let Some(l) = self.old.as_mut().and_then(|c| c.take(&st, &path, own)) {
                return self.cached(None, &st, path, own, l, stack);
            }
        }
        // Changed, or not what was listed: open it without following any symlink.
        match sys::openat_beneath(root.as_fd(), &rel, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => {
                let st = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                if (st.st_ino == ino || st.st_dev != parent_dev) && kind(&st) == libc::S_IFDIR {
                    return self.dir(fd, parent_dev, path, stack);
                }
                // Another object now: the listed one moved; walk again.
                self.lost.push(path);
                Ok(())
            }
            Err(_) => {
                self.lost.push(path);
                Ok(())
            }
        }
    }

    /// Walks a directory from its cached listing `l` (`fd`: the directory opened `O_PATH`,
    /// when at hand).
    pub(super) fn cached(
        &mut self,
        fd: Option<OwnedFd>,
        st: &libc::stat,
        path: PathBuf,
        relevant: bool,
        l: cache::Listing,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        if self.masker.devs.contains(&st.st_dev) {
            return Ok(());
        }
        self.placed.entries += l.count as usize + l.dirs.len();
        self.placed.cached += 1;
        for (name, ino) in &l.dirs {
            let child = path.join(OsStr::from_bytes(name.to_bytes()));
            stack.push(Item::Cached { path: child, ino: *ino, parent_dev: st.st_dev });
        }
        if !l.special.is_empty() {
            // Sockets and matches are placed by descriptor: open the directory, checked to
            // be the one listed.
            let fd = match fd {
                Some(fd) => fd,
                None => {
                    let root = self.root.as_ref().ok_or_else(|| ViewError::Root(io::ErrorKind::NotFound.into()))?;
                    let fd = sys::openat_beneath(root.as_fd(), &rel_c(&path)?, libc::O_PATH | libc::O_NOFOLLOW)
                        .map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                    let now = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                    if cache::stamp(&now) != cache::stamp(st) || now.st_ino != st.st_ino {
                        self.lost.push(path);
                        return Ok(());
                    }
                    fd
                }
            };
            let parent = Rc::new(fd);
            for (name, ino, t) in &l.special {
                let e = Entry { name: name.clone(), ino: *ino, dtype: *t };
                self.entry(&parent, st.st_dev, &path, &e, relevant, 0, stack)?;
            }
        }
        if let Some(c) = &mut self.new {
            c.keep(st, l);
        }
        Ok(())
    }
}
