//! The walk of the view: every directory under every root, read relative to its parent's
//! descriptor, every match placed by descriptor ([`super::mask`]).
//!
//! * No symlink is followed: entries are opened `O_PATH | O_NOFOLLOW` relative to their
//!   parent, roots with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)`.
//! * A listing is a snapshot: read in one `getdents64` call (the kernel holds the
//!   directory's lock through it, so a rename is wholly before or after), or, for a large
//!   directory, bracketed by `fstat` (inode, ctime, mtime, size, link count) and read again
//!   until both agree.
//! * An entry that is gone, or another object, by the time it is opened was renamed: the
//!   parent is listed again and the object followed under its new name by inode; one that
//!   left the directory is "lost", and the whole walk runs again (objects already masked
//!   are skipped) until a walk loses nothing; then, or after [`WALKS`] walks, it fails.
//! * A directory this process cannot list is skipped only when it cannot search it
//!   either: the walker has the child's uid and gid and at least its capabilities (the
//!   child drops them all), so the child cannot reach into it. Otherwise the walk fails.
//! * Pseudo filesystems (proc, sysfs, cgroup, ...) hold no sockets and are not entered.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::cache;
use super::mask::Masker;
use super::plan::{Rules, Verdict};
use super::{Placed, ViewError};
use crate::sys;

/// How many times a directory is read, or a moving entry followed, before giving up.
const TRIES: usize = 100;
/// How many whole walks before giving up when entries keep moving.
pub(crate) const WALKS: usize = 4;
/// The `getdents64` buffer: directories up to a few thousand entries are read in one call.
const BUF: usize = 256 * 1024;

const DT_UNKNOWN: u8 = 0;
const DT_DIR: u8 = 4;
const DT_SOCK: u8 = 12;

/// Filesystems that hold no socket files and are never walked.
pub(crate) const PSEUDO_FS: [i64; 13] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x7363_6673, // securityfs
    0xcafe_4a11, // bpf
    0x1cd1,      // devpts
    0x6165_676c, // pstore
    0x6265_6570, // configfs
    0x6573_5543, // fusectl
    0x4249_4e4d, // binfmt_misc
];

/// One directory entry.
struct Entry {
    name: CString,
    ino: u64,
    dtype: u8,
}

/// Work left on the stack.
enum Item {
    /// A directory to walk, named in its (open) parent.
    Dir { parent: Rc<OwnedFd>, parent_dev: u64, name: CString, ino: u64, path: PathBuf, relevant: bool },
    /// A directory of a cached listing, by its path from the view's root and its inode.
    Cached { path: PathBuf, ino: u64, parent_dev: u64 },
    /// A directory already open (a root, a protected directory).
    Open { fd: OwnedFd, parent_dev: u64, path: PathBuf },
    /// A protected directory, bound read-only once all beneath it is done.
    Protect { fd: OwnedFd, path: PathBuf },
}

fn same(a: &libc::stat, b: &libc::stat) -> bool {
    (a.st_dev, a.st_ino, a.st_nlink, a.st_size, a.st_mtime, a.st_mtime_nsec, a.st_ctime, a.st_ctime_nsec)
        == (b.st_dev, b.st_ino, b.st_nlink, b.st_size, b.st_mtime, b.st_mtime_nsec, b.st_ctime, b.st_ctime_nsec)
}

fn kind(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// The walk's state across roots and walks.
pub(crate) struct Walker<'a> {
    rules: &'a Rules,
    masker: &'a Masker,
    buf: Vec<u8>,
    /// Entries that left their directory while it was walked.
    lost: Vec<PathBuf>,
    /// Protected objects (device, inode), so a second walk does not protect them twice.
    protected: std::collections::HashSet<(u64, u64)>,
    /// The view's root (for cached listings, reached by path).
    root: Option<OwnedFd>,
    /// Listings of earlier starts, and those of this one.
    old: Option<cache::Cache>,
    new: Option<cache::Cache>,
    /// Wall-clock seconds when this walk began (for [`cache::Cache::put`]).
    now: i64,
    /// What was placed.
    pub placed: Placed,
}

impl<'a> Walker<'a> {
    /// A walker placing masks with `masker` by `rules`.
    pub(crate) fn new(rules: &'a Rules, masker: &'a Masker) -> Walker<'a> {
        Walker {
            rules,
            masker,
            buf: vec![0; BUF],
            lost: Vec::new(),
            protected: Default::default(),
            root: None,
            old: None,
            new: None,
            now: 0,
            placed: Placed::default(),
        }
    }

    /// Uses `old` for listings still exact and builds a new cache from this walk
    /// ([`Walker::into_cache`]).
    pub(crate) fn with_cache(mut self, old: cache::Cache, rules: u64) -> Walker<'a> {
        self.old = Some(old);
        self.new = Some(cache::Cache::new(rules));
        self
    }

    /// The cache this walk built, when it used one and anything changed.
    pub(crate) fn into_cache(self) -> Option<cache::Cache> {
        // Unchanged when every listing came from the cache (taken out of `old`) and none
        // was added.
        // Listings this walk did not reach (other workspaces, other policies' binds) stay:
        // they are checked like any other when next used.
        let (old, mut new) = (self.old?, self.new?);
        if !new.changed {
            return None;
        }
        new.absorb(old);
        Some(new)
    }

    /// Walks every root (absolute paths as the child sees them) beneath `newroot`, again
    /// while entries move, up to [`WALKS`] times.
    pub(crate) fn run(&mut self, newroot: BorrowedFd<'_>, roots: &[PathBuf]) -> Result<(), ViewError> {
        self.root = Some(newroot.try_clone_to_owned().map_err(ViewError::Root)?);
        self.now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        for _ in 0..WALKS {
            self.placed.walks += 1;
            self.lost.clear();
            for r in roots {
                self.root(newroot, r)?;
            }
            if self.lost.is_empty() {
                return Ok(());
            }
            tracing::debug!(lost = ?self.lost, "entries moved during the view walk: walking again");
        }
        Err(ViewError::Unstable { path: self.lost[0].clone(), tries: WALKS })
    }

    fn root(&mut self, newroot: BorrowedFd<'_>, root: &Path) -> Result<(), ViewError> {
        let rel = root.strip_prefix("/").unwrap_or(root);
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let c = CString::new(rel.as_os_str().as_bytes())
            .map_err(|_| ViewError::Open { path: root.into(), source: io::ErrorKind::InvalidInput.into() })?;
        let fd = match sys::openat_beneath(newroot, &c, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            // Not in the view (a missing path, or a symlink reproduced as such: its target
            // is a root of its own).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)) => return Ok(()),
            Err(e) => return Err(ViewError::Open { path: root.into(), source: e }),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|e| ViewError::Open { path: root.into(), source: e })?;
        let mut stack = Vec::new();
        self.object(fd, &st, root.to_path_buf(), self.rules.root_verdict(root), 0, &mut stack)?;
        self.drain(stack)
    }

    fn drain(&mut self, mut stack: Vec<Item>) -> Result<(), ViewError> {
        while let Some(item) = stack.pop() {
            match item {
                Item::Protect { fd, path } => self.protect(fd.as_fd(), &path)?,
                Item::Open { fd, parent_dev, path } => self.dir(fd, parent_dev, path, &mut stack)?,
                Item::Cached { path, ino, parent_dev } => self.cached_path(path, ino, parent_dev, &mut stack)?,
                Item::Dir { parent, parent_dev, name, ino, path, relevant } => {
                    // Its turn: when a cached listing is still exact, that; else read it.
                    if self.old.is_some() {
                        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                        if let Ok(fd) = sys::openat(parent.as_fd(), &name, flags) {
                            let st = sys::fstat(fd.as_fd())
                                .map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                            if st.st_ino == ino || st.st_dev != parent_dev {
                                let own = self.rules.relevant(&path);
                                let hit = self.old.as_mut().and_then(|c| c.take(&st, &path, own));
                                match hit {
                                    Some(l) => self.cached(Some(fd), &st, path, own, l, &mut stack)?,
                                    None => self.dir(fd, parent_dev, path, &mut stack)?,
                                }
                                continue;
                            }
                        }
                    }
                    // Without a cache, the common case opens it for reading straight away.
                    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                    if let Ok(dir) = sys::openat(parent.as_fd(), &name, flags) {
                        let st =
                            sys::fstat(dir.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                        if st.st_ino == ino || st.st_dev != parent_dev {
                            self.read_dir(dir, &st, parent_dev, path, &mut stack)?;
                            continue;
                        }
                    }
                    // Gone, replaced, or not readable: the general path (depth 1: no
                    // second trip through the stack).
                    self.placed.entries -= 1; // counted when listed
                    let e = Entry { name, ino, dtype: DT_DIR };
                    let parent_path = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    self.entry(&parent, parent_dev, &parent_path, &e, relevant, 1, &mut stack)?;
                }
            }
        }
        Ok(())
    }

    /// Opens `fd` (a directory opened `O_PATH`) for reading, then [`Walker::read_dir`].
    fn dir(&mut self, fd: OwnedFd, parent_dev: u64, path: PathBuf, stack: &mut Vec<Item>) -> Result<(), ViewError> {
        let dir = match sys::openat(fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) && !sys::can_search(fd.as_fd()) => {
                // Neither listed nor searched by this process, so not by the child either.
                self.placed.notes.push(format!("{} not walked: the sandbox cannot enter it", path.display()));
                return Ok(());
            }
            Err(e) => return Err(ViewError::ReadDir { path, source: e }),
        };
        let st = sys::fstat(dir.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
        self.read_dir(dir, &st, parent_dev, path, stack)
    }

    /// Lists `dir` (open for reading, `st` its status) and handles each entry.
    fn read_dir(
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
        if st.st_dev != parent_dev {
            let t = sys::fs_type(dir.as_fd()).map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
            if PSEUDO_FS.contains(&t) {
                return Ok(());
            }
        }
        let entries = self.list(dir.as_fd(), &path, Some(st))?;
        let relevant = self.rules.relevant(&path);
        let parent = Rc::new(dir);
        let mut listing = cache::Listing {
            stamp: cache::stamp(st),
            path: relevant.then(|| path.as_os_str().as_bytes().to_vec()),
            rules: if relevant { self.new.as_ref().map_or(0, cache::Cache::rules) } else { 0 },
            count: 0,
            dirs: Vec::new(),
            special: Vec::new(),
        };
        for e in &entries {
            self.placed.entries += 1;
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
        if let Some(c) = &mut self.new {
            // Read again though the cache held it (a root, a directory in a protected
            // tree): unchanged if the listing is the same.
            let before = self.old.as_mut().and_then(|o| o.take(st, &path, relevant));
            if before.as_ref() == Some(&listing) {
                c.keep(st, listing);
            } else {
                c.put(st, self.now, listing);
            }
        }
        Ok(())
    }

    /// A directory of a cached listing: its status by path from the view's root (one
    /// system call); the inode must be the one listed (a swapped path component gives
    /// another), then its own cached listing if still exact, else it is opened and read.
    fn cached_path(
        &mut self,
        path: PathBuf,
        ino: u64,
        parent_dev: u64,
        stack: &mut Vec<Item>,
    ) -> Result<(), ViewError> {
        let Some(root) = self.root.as_ref().map(|r| r.try_clone()).transpose().map_err(ViewError::Root)? else {
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
    fn cached(
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

    /// A consistent listing of `dir` (see the module docs), `.` and `..` left out.
    fn list(&mut self, dir: BorrowedFd<'_>, path: &Path, st: Option<&libc::stat>) -> Result<Vec<Entry>, ViewError> {
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
                let n = sys::getdents64(dir, &mut self.buf).map_err(err)?;
                if n == 0 {
                    break;
                }
                calls += 1;
                parse(&self.buf[..n], &mut out);
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

    /// Handles one entry of `parent`.
    #[allow(clippy::too_many_arguments)]
    fn entry(
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
        if st.st_ino != e.ino && st.st_dev == parent_dev {
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
        let entries = self.list(dir.as_fd(), parent_path, None)?;
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
    fn object(
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
        match (verdict, t) {
            (_, libc::S_IFLNK) => {
                if verdict != Verdict::Keep {
                    // A link holds no data; what it points to is decided by its own path.
                    self.placed.notes.push(format!("{} is a symlink: left as is", path.display()));
                }
                Ok(())
            }
            (Verdict::Mask, _) => {
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
                let dup = fd.try_clone().map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                stack.push(Item::Protect { fd: dup, path: path.clone() });
                stack.push(Item::Open { fd, parent_dev, path });
                Ok(())
            }
            (Verdict::Protect, _) => self.protect(fd.as_fd(), &path),
            (Verdict::Keep, libc::S_IFDIR) => {
                stack.push(Item::Open { fd, parent_dev, path });
                Ok(())
            }
            (Verdict::Keep, _) => Ok(()),
        }
    }

    fn placed_total(&self) -> usize {
        self.placed.masks + self.placed.protects + self.placed.sockets
    }

    fn mask(&mut self, fd: BorrowedFd<'_>, is_dir: bool, path: &Path) -> Result<(), ViewError> {
        self.masker.mask(fd, is_dir).map_err(|(step, e)| self.mask_error(path, step, e))
    }

    fn protect(&mut self, fd: BorrowedFd<'_>, path: &Path) -> Result<(), ViewError> {
        let st = sys::fstat(fd).map_err(|e| ViewError::Open { path: path.to_path_buf(), source: e })?;
        if !self.protected.insert((st.st_dev, st.st_ino)) {
            return Ok(());
        }
        self.masker.protect(fd).map_err(|(step, e)| self.mask_error(path, step, e))?;
        self.placed.protects += 1;
        Ok(())
    }

    fn mask_error(&self, path: &Path, step: super::MaskStep, e: io::Error) -> ViewError {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            ViewError::MountLimit { path: path.to_path_buf(), placed: self.placed_total() }
        } else {
            ViewError::Mask { path: path.to_path_buf(), step, source: e }
        }
    }
}

/// A view path relative to the view's root, as a C string.
fn rel_c(path: &Path) -> Result<CString, ViewError> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| ViewError::Open { path: path.to_path_buf(), source: io::ErrorKind::InvalidInput.into() })
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
