//! Walking from cached listings ([`crate::view::cache`]): a directory whose status is
//! unchanged since an earlier start is not read again, only its directories and its
//! special entries (sockets, matches) are followed.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use super::entry::{is_listed, kind, rel_c, skip_of, Entry, Item};
use super::Walker;
use crate::sys;
use crate::view::cache;
use crate::view::ViewError;

impl Walker<'_> {
    /// A directory of a cached listing: its status by path from `base`, its nearest opened
    /// ancestor (one system call, the fewer names the shorter the lookup); the inode must
    /// be the one listed (a swapped path component gives another), then its own cached
    /// listing if still exact, else it is opened from the view's root and read.
    pub(super) fn cached_path(
        &mut self,
        base: Rc<OwnedFd>,
        skip: usize,
        path: PathBuf,
        ino: u64,
        parent_dev: u64,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        let bytes = path.as_os_str().as_bytes();
        let below = CString::new(&bytes[skip.min(bytes.len())..])
            .map_err(|_| ViewError::Open { path: path.clone(), source: io::ErrorKind::InvalidInput.into() })?;
        let st = sys::lstatat(base.as_fd(), &below).ok();
        if let Some(st) = st.filter(|st| kind(st) == libc::S_IFDIR && (st.st_ino == ino || st.st_dev != parent_dev)) {
            let own = self.rules.fingerprint_of(&path);
            if let Some(l) = self.old.as_mut().and_then(|c| c.take(&st, &path, own)) {
                return self.cached(None, Some((base, skip)), &st, path, own.is_some(), l, stack);
            }
        }
        // The view's root, shared (not duplicated: this runs once per cached directory).
        let Some(root) = self.root.clone() else {
            return Ok(());
        };
        let rel = rel_c(&path)?;
        // Changed, or not what was listed: open it without following any symlink.
        match sys::openat_beneath(root.as_fd(), &rel, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => {
                let st = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                if is_listed(fd.as_fd(), &st, ino, parent_dev) && kind(&st) == libc::S_IFDIR {
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
    /// when at hand; else `base`, its nearest opened ancestor and the length of that one's
    /// path, from which its subdirectories are reached).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cached(
        &mut self,
        fd: Option<OwnedFd>,
        base: Option<(Rc<OwnedFd>, usize)>,
        st: &libc::stat,
        path: PathBuf,
        relevant: bool,
        l: cache::Listing,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        if self.masker.devs.contains(&st.st_dev) {
            return Ok(());
        }
        let hidden = self.hidden.contains(&(st.st_dev, st.st_ino));
        if hidden || self.mount_points.contains_key(&(st.st_dev, st.st_ino)) {
            // paddock's own state under another name, or a directory holding a mount
            // point (its listing cannot show it): not from the cache.
            let fd = match fd {
                Some(fd) => fd,
                None => match self.reopened(&path, st)? {
                    Some(fd) => fd,
                    None => return Ok(()),
                },
            };
            return if hidden { self.mask_alias(fd.as_fd(), path) } else { self.dir(fd, st.st_dev, path, stack) };
        }
        self.placed.entries += l.count as usize + l.dirs.len();
        self.placed.cached += 1;
        let fd = fd.map(Rc::new);
        if !l.dirs.is_empty() {
            let (base, skip) = match (&fd, base) {
                (Some(fd), _) => (Rc::clone(fd), skip_of(&path)),
                (None, Some(b)) => b,
                (None, None) => match self.root.clone() {
                    Some(root) => (root, 1),
                    None => return Err(ViewError::Root(io::ErrorKind::NotFound.into())),
                },
            };
            for (name, ino) in &l.dirs {
                let child = path.join(OsStr::from_bytes(name.to_bytes()));
                stack.push(Item::Cached {
                    base: Rc::clone(&base),
                    skip,
                    path: child,
                    ino: *ino,
                    parent_dev: st.st_dev,
                });
            }
        }
        if !l.special.is_empty() {
            // Sockets and matches are placed by descriptor: open the directory, checked to
            // be the one listed.
            let parent = match fd {
                Some(fd) => fd,
                None => match self.reopened(&path, st)? {
                    Some(fd) => Rc::new(fd),
                    None => return Ok(()),
                },
            };
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

    /// The directory at `path` (status `st` when listed) opened `O_PATH` beneath the view's
    /// root; `None` when another object is there now (noted as lost: the walk runs again).
    fn reopened(&mut self, path: &std::path::Path, st: &libc::stat) -> Result<Option<OwnedFd>, ViewError> {
        let root = self.root.as_ref().ok_or_else(|| ViewError::Root(io::ErrorKind::NotFound.into()))?;
        let fd = sys::openat_beneath(root.as_fd(), &rel_c(path)?, libc::O_PATH | libc::O_NOFOLLOW)
            .map_err(|e| ViewError::Open { path: path.to_path_buf(), source: e })?;
        let now = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: path.to_path_buf(), source: e })?;
        if cache::stamp(&now) != cache::stamp(st) || now.st_ino != st.st_ino {
            self.lost.push(path.to_path_buf());
            return Ok(None);
        }
        Ok(Some(fd))
    }
}
