//! Reading a directory and handling its entries: each is masked, protected, followed
//! into, or left, by its verdict and type; an entry that moved is followed by inode.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::entry::{is_listed, kind, list, rel_c, Entry, Item, DT_DIR, DT_SOCK, DT_UNKNOWN, TRIES};
use super::{pseudo_type, Walker};
use crate::sys;
use crate::view::cache;
use crate::view::plan::Verdict;
use crate::view::ViewError;

impl Walker<'_> {
    /// Opens `fd` (a directory opened `O_PATH`) for reading, then [`Walker::read_dir`].
    pub(super) fn dir(
        &mut self,
        fd: OwnedFd,
        parent_dev: u64,
        path: PathBuf,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        let dir = match sys::openat(fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) && !sys::can_search(fd.as_fd()) => {
                // Neither listed nor searched by this process, so not by the child either,
                // unless the child owns it (below).
                let st = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                if st.st_uid == rustix::process::geteuid().as_raw() {
                    return self.mask_unwalked(fd.as_fd(), path);
                }
                self.placed.notes.push(format!("{} not walked: the sandbox cannot enter it", path.display()));
                return Ok(());
            }
            Err(e) => return Err(ViewError::ReadDir { path, source: e }),
        };
        let st = sys::fstat(dir.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
        self.read_dir(dir, &st, parent_dev, path, stack)
    }

    /// Masks whole the directory `fd`, which this process cannot walk and the child owns.
    /// This process has the child's ids, and the user namespace's capabilities did not let
    /// it in: they cover only files whose owner and group are both mapped, and its group is
    /// another. Its owner can open it up (`chmod`), so what it holds, unknown here, would be
    /// reachable: nothing of it is in the view.
    fn mask_unwalked(&mut self, fd: std::os::fd::BorrowedFd<'_>, path: PathBuf) -> Result<(), ViewError> {
        self.mask_whole(fd, path, "the sandbox's user owns it and could open it up, and it could not be walked")
    }

    /// A mount at `path` inside a pseudo filesystem (of device `dev`) that the walk does
    /// not enter: its root opened beneath the view's root and handled as an entry met there.
    fn mounted_in_pseudo(&mut self, path: &Path, dev: u64, stack: &mut Vec<Item>) -> Result<(), ViewError> {
        let root = self.root.clone().ok_or_else(|| ViewError::Root(std::io::ErrorKind::NotFound.into()))?;
        let fd = sys::openat_beneath(root.as_fd(), &rel_c(path)?, libc::O_PATH | libc::O_NOFOLLOW)
            .map_err(|e| ViewError::Open { path: path.to_path_buf(), source: e })?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: path.to_path_buf(), source: e })?;
        let verdict = self.rules.verdict(path);
        self.object(fd, &st, path.to_path_buf(), verdict, dev, stack)
    }

    /// Masks whole the directory `fd`, paddock's own state reached under another name.
    pub(super) fn mask_alias(&mut self, fd: std::os::fd::BorrowedFd<'_>, path: PathBuf) -> Result<(), ViewError> {
        self.mask_whole(fd, path, "paddock's own state, reached under this name (a bind mount)")
    }

    /// Masks whole the directory `fd` at `path`, noting `why`.
    fn mask_whole(&mut self, fd: std::os::fd::BorrowedFd<'_>, path: PathBuf, why: &str) -> Result<(), ViewError> {
        self.mask(fd, true, &path)?;
        self.placed.masks += 1;
        self.placed.notes.push(format!("{} masked whole: {why}", path.display()));
        Ok(())
    }

    /// Lists `dir` (open for reading, `st` its status) and handles each entry.
    pub(super) fn read_dir(
        &mut self,
        dir: OwnedFd,
        st: &libc::stat,
        parent_dev: u64,
        path: PathBuf,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        if self.masker.devs.contains(&st.st_dev) {
            return Ok(()); // a mask already
        }
        if self.hidden.contains(&(st.st_dev, st.st_ino)) {
            return self.mask_alias(dir.as_fd(), path);
        }
        // Listed, but its entries not reachable by this process, and its owner's: below.
        if st.st_mode & libc::S_IXUSR == 0
            && st.st_uid == rustix::process::geteuid().as_raw()
            && !sys::can_search(dir.as_fd())
        {
            return self.mask_unwalked(dir.as_fd(), path);
        }
        if st.st_dev != parent_dev {
            let t = sys::fs_type(dir.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
            if pseudo_type(t) {
                // Not entered; what else is mounted inside it is walked from its own root
                // (found by an attack: `$STATE` and a host socket bound over entries of a
                // `sysfs` mounted in the workspace were passed over with it).
                for mount in self.other_mounts_beneath(&path)? {
                    self.mounted_in_pseudo(&mount, st.st_dev, stack)?;
                }
                return Ok(());
            }
        }
        let entries = list(&mut self.buf, dir.as_fd(), &path, Some(st))?;
        let rules = self.rules.fingerprint_of(&path);
        let relevant = rules.is_some();
        let parent = Rc::new(dir);
        let mounted = self.mount_points.get(&(st.st_dev, st.st_ino)).cloned().unwrap_or_default();
        let mut listing = cache::Listing {
            stamp: cache::stamp(st),
            path: relevant.then(|| path.as_os_str().as_bytes().to_vec()),
            rules: rules.unwrap_or(0),
            count: 0,
            dirs: Vec::new(),
            special: Vec::new(),
        };
        for e in &entries {
            self.placed.entries += 1;
            // A mount point: its listed type is the covered file's, not the mount's.
            let unknown;
            let e = if e.dtype != DT_DIR && mounted.iter().any(|n| n.as_bytes() == e.name.to_bytes()) {
                unknown = Entry { name: e.name.clone(), ino: e.ino, dtype: DT_UNKNOWN };
                &unknown
            } else {
                e
            };
            let special = e.dtype == DT_DIR || e.dtype == DT_SOCK || e.dtype == DT_UNKNOWN;
            if !relevant && !special {
                listing.count += 1;
                continue; // a plain file, link, fifo or device where no rule can match
            }
            let verdict = if relevant {
                self.rules.verdict(&path.join(OsStr::from_bytes(e.name.to_bytes())))
            } else {
                Verdict::Keep
            };
            if verdict == Verdict::Keep && e.dtype == DT_DIR {
                listing.dirs.push((e.name.clone(), e.ino));
            } else if verdict != Verdict::Keep || special {
                listing.special.push((e.name.clone(), e.ino, e.dtype));
            } else {
                listing.count += 1;
            }
            self.visit(&parent, st.st_dev, &path, e, verdict, 0, stack)?;
        }
        // An encrypted directory's listing is never kept: read while its key was absent, it
        // holds encoded names, and adding the key changes neither its ctime nor its mtime
        // (found by an attack: `vault/.env` unmasked by a listing kept while locked).
        let encrypted =
            sys::encrypted(parent.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
        if let Some(c) = self.new.as_mut().filter(|_| !encrypted) {
            // Read again though the cache held it (a directory in a protected tree, a
            // root that was not a plain directory to keep): unchanged if the listing is
            // the same.
            let before = self.old.as_mut().and_then(|o| o.take(st, &path, rules));
            if before.as_ref() == Some(&listing) {
                c.keep(st, listing);
            } else {
                c.put(st, self.now, listing);
            }
        }
        Ok(())
    }

    /// Handles one entry of `parent`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn entry(
        &mut self,
        parent: &Rc<OwnedFd>,
        parent_dev: u64,
        parent_path: &Path,
        e: &Entry,
        relevant: bool,
        depth: usize,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        self.placed.entries += 1;
        let special = e.dtype == DT_DIR || e.dtype == DT_SOCK || e.dtype == DT_UNKNOWN;
        if !relevant && !special {
            return Ok(());
        }
        let verdict = if relevant {
            self.rules.verdict(&parent_path.join(OsStr::from_bytes(e.name.to_bytes())))
        } else {
            Verdict::Keep
        };
        self.visit(parent, parent_dev, parent_path, e, verdict, depth, stack)
    }

    /// Handles one entry of `parent` whose verdict is known.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        parent: &Rc<OwnedFd>,
        parent_dev: u64,
        parent_path: &Path,
        e: &Entry,
        verdict: Verdict,
        depth: usize,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        let special = e.dtype == DT_DIR || e.dtype == DT_SOCK || e.dtype == DT_UNKNOWN;
        let relevant = verdict != Verdict::Keep || self.rules.relevant(parent_path);
        let path = parent_path.join(OsStr::from_bytes(e.name.to_bytes()));
        match (verdict, e.dtype) {
            // Nothing to place on a plain file, link, fifo or device no rule matches.
            (Verdict::Keep, _) if !special => return Ok(()),
            // A directory is opened when its turn comes (few descriptors held at once).
            (Verdict::Keep, DT_DIR) if depth == 0 => {
                stack.push(Item::Dir {
                    parent: Rc::clone(parent),
                    parent_dev,
                    name: e.name.clone(),
                    ino: e.ino,
                    path,
                    relevant,
                });
                return Ok(());
            }
            _ => {}
        }
        let fd = match sys::openat(parent.as_fd(), &e.name, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                return self.moved(parent, parent_dev, parent_path, e, relevant, depth, stack)
            }
            Err(err) if err.raw_os_error() == Some(libc::EACCES) && !sys::can_search(parent.as_fd()) => {
                // The child cannot search the parent either: nothing in it is reachable.
                return Ok(());
            }
            Err(err) => return Err(ViewError::Open { path, source: err }),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|err| ViewError::Open { path: path.clone(), source: err })?;
        if !is_listed(fd.as_fd(), &st, e.ino, parent_dev) {
            // Another object under this name now: handle it, and follow the listed one.
            self.moved(parent, parent_dev, parent_path, e, relevant, depth, stack)?;
        }
        self.object(fd, &st, path, verdict, parent_dev, stack)
    }

    /// The listed entry `e` is no longer under its name: list the parent again and follow
    /// the object by inode; gone from the parent, it is lost (the walk runs again).
    #[allow(clippy::too_many_arguments)]
    fn moved(
        &mut self,
        parent: &Rc<OwnedFd>,
        parent_dev: u64,
        parent_path: &Path,
        e: &Entry,
        relevant: bool,
        depth: usize,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        let path = parent_path.join(OsStr::from_bytes(e.name.to_bytes()));
        if depth >= TRIES {
            return Err(ViewError::Unstable { path, tries: TRIES });
        }
        // The parent may be open `O_PATH` (from a cached listing): open it for reading.
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let dir = sys::openat(parent.as_fd(), c".", flags)
            .map_err(|err| ViewError::ReadDir { path: parent_path.to_path_buf(), source: err })?;
        let entries = list(&mut self.buf, dir.as_fd(), parent_path, None)?;
        let mut found = false;
        for n in entries.iter().filter(|n| n.ino == e.ino && n.name != e.name) {
            found = true;
            self.entry(parent, parent_dev, parent_path, n, relevant, depth + 1, stack)?;
        }
        if !found {
            self.lost.push(path);
        }
        Ok(())
    }

    /// Places what `verdict` and the object's type call for on `fd` (opened `O_PATH`).
    pub(super) fn object(
        &mut self,
        fd: OwnedFd,
        st: &libc::stat,
        path: PathBuf,
        verdict: Verdict,
        parent_dev: u64,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        if self.masker.devs.contains(&st.st_dev) {
            return Ok(()); // masked by an earlier walk
        }
        let t = kind(st);
        // paddock's own under another name (a bind mount of it); under its own path, a
        // literal mask like any other (pinned on its way, below).
        if verdict != Verdict::Mask && self.hidden.contains(&(st.st_dev, st.st_ino)) {
            if t == libc::S_IFDIR {
                return self.mask_alias(fd.as_fd(), path);
            }
            self.mask(fd.as_fd(), false, &path)?;
            self.placed.masks += 1;
            return Ok(());
        }
        match (verdict, t) {
            (_, libc::S_IFLNK) => {
                if verdict != Verdict::Keep {
                    // A link holds no data; what it points to is decided by its own path.
                    self.placed.notes.push(format!("{} is a symlink: left as is", path.display()));
                }
                Ok(())
            }
            (Verdict::Mask, _) => {
                self.pins.extend(self.rules.pins(&path, verdict));
                self.mask(fd.as_fd(), t == libc::S_IFDIR, &path)?;
                self.placed.masks += 1;
                Ok(())
            }
            (_, libc::S_IFSOCK) => {
                // Any socket under a granted path, however it was bound: connect(2) on it
                // would reach a host process.
                self.mask(fd.as_fd(), false, &path)?;
                self.placed.sockets += 1;
                Ok(())
            }
            (Verdict::Protect, libc::S_IFDIR) => {
                self.pins.extend(self.rules.pins(&path, verdict));
                let dup = fd.try_clone().map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                stack.push(Item::Protect { fd: dup, path: path.clone() });
                stack.push(Item::Open { fd, parent_dev, path });
                Ok(())
            }
            (Verdict::Protect, _) => {
                self.pins.extend(self.rules.pins(&path, verdict));
                self.protect(fd.as_fd(), &path)
            }
            (Verdict::Keep, libc::S_IFDIR) => {
                stack.push(Item::Open { fd, parent_dev, path });
                Ok(())
            }
            (Verdict::Keep, _) => Ok(()),
        }
    }
}
