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
//!   either and another user owns it: the walker has the child's uid and gid and at least
//!   its capabilities (the child drops them all), so the child cannot reach into it.
//!   Otherwise the walk fails. A directory of the child's own that this process cannot
//!   search (the user namespace's capabilities cover only files whose owner and group are
//!   both mapped) is masked whole: its owner could `chmod` it open.
//! * Pseudo filesystems (proc, sysfs, cgroup, ...) hold no sockets and are not entered.

mod cached;
mod entry;
mod visit;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use entry::{is_listed, Entry, Item, DT_DIR};

use super::cache;
use super::mask::Masker;
use super::plan::{Rules, Verdict};
use super::{MaskStep, Placed, ViewError};
use crate::sys;

/// How many whole walks before giving up when entries keep moving.
pub(crate) const WALKS: usize = 4;
/// The `getdents64` buffer: directories up to a few thousand entries are read in one call.
pub(super) const BUF: usize = 256 * 1024;

/// Filesystems that hold no socket and no file of the user's, and are never walked, nor
/// scanned for what a call planted (no call can make a file there): as `mountinfo` names
/// them, and their `f_type`. One table for every check, by name or by type.
const PSEUDO: [(&str, i64); 13] = [
    ("proc", 0x9fa0),
    ("sysfs", 0x6265_6572),
    ("cgroup", 0x0027_e0eb),
    ("cgroup2", 0x6367_7270),
    ("debugfs", 0x6462_6720),
    ("tracefs", 0x7472_6163),
    ("securityfs", 0x7363_6673),
    ("bpf", 0xcafe_4a11),
    ("devpts", 0x1cd1),
    ("pstore", 0x6165_676c),
    ("configfs", 0x6265_6570),
    ("fusectl", 0x6573_5543),
    ("binfmt_misc", 0x4249_4e4d),
];

/// Whether `f_type` is a pseudo filesystem's ([`PSEUDO`]).
pub(crate) fn pseudo_type(f_type: i64) -> bool {
    PSEUDO.iter().any(|(_, t)| *t == f_type)
}

/// Whether the directory open at `fd` lies on a pseudo filesystem ([`PSEUDO_FS`]: `proc`,
/// `sysfs`, `cgroup` and the like), where no file of the user's lives and no call can
/// leave one: the view's walk does not enter one, nor does the scan for matches a call
/// planted.
pub fn pseudo_filesystem(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(pseudo_type(sys::fs_type(fd)?))
}

/// The mounts of this process's mount namespace inside the pseudo filesystem mounted at
/// `point` that are not pseudo filesystems themselves, by mount point: those with only
/// pseudo filesystems between (what is mounted beneath them is met from them). A scan that
/// does not enter a pseudo filesystem starts again from each of these.
pub fn mounts_in_pseudo(point: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(in_pseudo(&std::fs::read("/proc/self/mountinfo")?, point))
}

/// [`mounts_in_pseudo`] of the mount table `table`.
fn in_pseudo(table: &[u8], point: &Path) -> Vec<PathBuf> {
    let all: Vec<(PathBuf, bool)> = super::mountinfo::mounts(table).map(|m| (m.point, pseudo_kind(m.kind))).collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for (p, pseudo) in &all {
        if *pseudo || p == point || !p.starts_with(point) || out.contains(p) {
            continue;
        }
        // Only pseudo filesystems between: one beneath another kind of mount is met from
        // that one's root (else it was scanned twice).
        let between = all.iter().filter(|(q, _)| q != p && q != point && p.starts_with(q) && q.starts_with(point));
        if between.clone().all(|(_, pseudo)| *pseudo) {
            out.push(p.clone());
        }
    }
    out
}

/// The walk's state across roots and walks.
pub(crate) struct Walker<'a> {
    pub(super) rules: &'a Rules,
    masker: &'a Masker,
    buf: Vec<u8>,
    /// Entries that left their directory while it was walked.
    lost: Vec<PathBuf>,
    /// Protected objects (device, inode), so a second walk does not protect them twice.
    protected: std::collections::HashSet<(u64, u64)>,
    /// Directories to pin once the walk is done ([`Rules::pins`]).
    pub(super) pins: std::collections::BTreeSet<PathBuf>,
    /// The view's root (for cached listings, reached by path).
    root: Option<std::rc::Rc<OwnedFd>>,
    /// Listings of earlier starts (how many were loaded), and those of this one.
    old: Option<cache::Cache>,
    loaded: usize,
    new: Option<cache::Cache>,
    /// Wall-clock seconds when this walk began (for [`cache::Cache::put`]).
    now: i64,
    /// Device and inode of paddock's own directories (`$STATE`): masked whole wherever
    /// the walk meets them ([`Walker::with_hidden`]).
    pub(super) hidden: std::collections::HashSet<(u64, u64)>,
    /// The host's mount points, by their parent directory's (device, inode)
    /// ([`Walker::with_mount_points`]).
    pub(super) mount_points: std::collections::HashMap<(u64, u64), Vec<std::ffi::OsString>>,
    /// Where this namespace's mount table is read, and the view's root in it
    /// ([`Walker::with_view_mounts`]); the mounts of the view other than pseudo
    /// filesystems, by path as the child sees them, once read.
    view_mounts: Option<(PathBuf, PathBuf)>,
    other_mounts: Option<Vec<PathBuf>>,
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
            pins: Default::default(),
            root: None,
            old: None,
            loaded: 0,
            new: None,
            now: 0,
            hidden: Default::default(),
            mount_points: Default::default(),
            view_mounts: None,
            other_mounts: None,
            placed: Placed::default(),
        }
    }

    /// Masks every object of these (device, inode) the walk meets, a directory whole:
    /// paddock's own state and what it holds, masked by its path too, but reachable under
    /// another name through a bind mount of it, of a directory above it or of one of its
    /// files inside a grant (found by an attack: the child rewrote the view cache there,
    /// and the next start trusted a listing without a secret's name). A file is met where
    /// it is opened: a mount point (below) or a rule's match.
    pub(crate) fn with_hidden(mut self, ids: std::collections::HashSet<(u64, u64)>) -> Walker<'a> {
        self.hidden = ids;
        self
    }

    /// Where to read this namespace's mount table (`mountinfo`) and the view's root as it
    /// names it: when the walk meets a pseudo filesystem, which it does not enter, it
    /// reads the table (once) and walks each mount of another kind beneath it from that
    /// mount's root (found by an attack: `$STATE` and a host socket bound over entries of
    /// a `sysfs` mounted in the workspace were passed over with it).
    pub(crate) fn with_view_mounts(mut self, mountinfo: PathBuf, root: PathBuf) -> Walker<'a> {
        self.view_mounts = Some((mountinfo, root));
        self
    }

    /// The mounts of the view other than pseudo filesystems strictly beneath `path` (as
    /// the child sees it), the topmost of them only (one beneath another is met by that
    /// one's walk). The mount table is read the first time; one that cannot be read is an
    /// error (what is beneath is not known).
    pub(super) fn other_mounts_beneath(&mut self, path: &Path) -> Result<Vec<PathBuf>, ViewError> {
        if self.other_mounts.is_none() {
            let Some((file, root)) = &self.view_mounts else { return Ok(Vec::new()) };
            let table = std::fs::read(file).map_err(|e| ViewError::Open { path: file.clone(), source: e })?;
            self.other_mounts = Some(other_mounts(&table, root));
        }
        let mounts = self.other_mounts.as_deref().unwrap_or_default();
        let beneath: Vec<&PathBuf> = mounts.iter().filter(|m| m.starts_with(path) && *m != path).collect();
        let mut top: Vec<PathBuf> = beneath
            .iter()
            .filter(|m| !beneath.iter().any(|o| o != *m && m.starts_with(o)))
            .map(|m| (*m).clone())
            .collect();
        top.sort();
        top.dedup();
        Ok(top)
    }

    /// The host's mount points, by their parent directory's (device, inode), the same
    /// object in the view under whatever path a grant names it (through a symlinked
    /// directory: found by an attack): a listing gives a mount point the type of the file
    /// it covers, so these names are opened whatever their listed type (a socket bound
    /// over a plain file's name reads as a plain file: found by an attack), and a directory
    /// holding one is read afresh, not from the cache (mounting changes no status of the
    /// directory).
    pub(crate) fn with_mount_points(
        mut self,
        points: std::collections::HashMap<(u64, u64), Vec<std::ffi::OsString>>,
    ) -> Walker<'a> {
        self.mount_points = points;
        self
    }

    /// Uses `old` for listings still exact and builds a new cache from this walk
    /// ([`Walker::into_caches`]).
    pub(crate) fn with_cache(mut self, old: cache::Cache) -> Walker<'a> {
        self.new = Some(old.renewed());
        self.loaded = old.len();
        self.old = Some(old);
        self
    }

    /// The cache this walk built (when it used one), whether it is worth writing (at least
    /// [`cache::LISTINGS_SAVED_AFTER`] listings were added, one of a directory unchanged for
    /// [`cache::LONG_UNCHANGED_SECS`], or the loaded cache had none), and what is left of the
    /// cache it loaded.
    pub(crate) fn into_caches(self) -> (Option<cache::Cache>, bool, Option<cache::Cache>) {
        // Unchanged when every listing came from the cache (taken out of `old`) and none
        // was added. The cache file is this set of roots' own: what this walk did not
        // reach (a directory removed since, the listings with matches of other rules) is
        // left out, so the file stays the size of the view.
        let worth =
            self.new.as_ref().is_some_and(|n| cache::listings_worth_saving(n.added, n.long_unchanged, self.loaded));
        (self.new, worth, self.old)
    }

    /// Walks every root (absolute paths as the child sees them) beneath `newroot`, again
    /// while entries move, up to [`WALKS`] times.
    pub(crate) fn run(&mut self, newroot: BorrowedFd<'_>, roots: &[PathBuf]) -> Result<(), ViewError> {
        self.root = Some(std::rc::Rc::new(newroot.try_clone_to_owned().map_err(ViewError::Root)?));
        self.now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        for _ in 0..WALKS {
            self.placed.walks += 1;
            self.lost.clear();
            for r in roots {
                self.root(newroot, r)?;
            }
            if self.lost.is_empty() {
                return self.pin_all(newroot);
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
        let verdict = self.rules.root_verdict(root);
        let mut stack = Vec::new();
        // A root directory whose cached listing is still exact is walked from it, as the
        // directories beneath are (it was read again on every start: `/etc`'s 150
        // entries, each directory among them opened to be checked).
        if verdict == Verdict::Keep && entry::kind(&st) == libc::S_IFDIR {
            let own = self.rules.fingerprint_of(root);
            if let Some(l) = self.old.as_mut().and_then(|c| c.take(&st, root, own)) {
                self.cached(Some(fd), None, &st, root.to_path_buf(), own.is_some(), l, &mut stack)?;
                return self.drain(stack);
            }
        }
        self.object(fd, &st, root.to_path_buf(), verdict, 0, &mut stack)?;
        self.drain(stack)
    }

    fn drain(&mut self, mut stack: Vec<Item>) -> Result<(), ViewError> {
        while let Some(item) = stack.pop() {
            match item {
                Item::Protect { fd, path } => self.protect(fd.as_fd(), &path)?,
                Item::Open { fd, parent_dev, path } => self.dir(fd, parent_dev, path, &mut stack)?,
                Item::Cached { base, skip, path, ino, parent_dev } => {
                    self.cached_path(base, skip, path, ino, parent_dev, &mut stack)?
                }
                Item::Dir { parent, parent_dev, name, ino, path, relevant } => {
                    // Its turn: when a cached listing is still exact, that; else read it.
                    if self.old.is_some() {
                        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                        if let Ok(fd) = sys::openat(parent.as_fd(), &name, flags) {
                            let st = sys::fstat(fd.as_fd())
                                .map_err(|e| ViewError::Open { path: path.clone(), source: e })?;
                            if is_listed(fd.as_fd(), &st, ino, parent_dev) {
                                let own = self.rules.fingerprint_of(&path);
                                let hit = self.old.as_mut().and_then(|c| c.take(&st, &path, own));
                                match hit {
                                    Some(l) => self.cached(Some(fd), None, &st, path, own.is_some(), l, &mut stack)?,
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
                        if is_listed(dir.as_fd(), &st, ino, parent_dev) {
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

    fn placed_total(&self) -> usize {
        self.placed.masks + self.placed.protects + self.placed.sockets + self.placed.pins
    }

    /// Pins the directories [`Rules::pins`] named, deepest first (each a recursive clone of
    /// itself: what is beneath, pinned or masked, comes along). Each is reached again by
    /// path beneath the view's root without following a symlink; the child has not started,
    /// so it is the directory walked unless the host renamed it meanwhile, and one that is
    /// gone fails the view.
    fn pin_all(&mut self, newroot: BorrowedFd<'_>) -> Result<(), ViewError> {
        let start = std::time::Instant::now();
        let mut pins: Vec<PathBuf> = std::mem::take(&mut self.pins).into_iter().collect();
        pins.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in pins {
            let rel = entry::rel_c(&p)?;
            let fd = sys::openat_beneath(newroot, &rel, libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY)
                .map_err(|e| ViewError::Open { path: p.clone(), source: e })?;
            self.masker.pin(fd.as_fd()).map_err(|(step, e)| self.mask_error(&p, step, e))?;
            self.placed.pins += 1;
        }
        self.placed.pins_elapsed = start.elapsed();
        Ok(())
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

    fn mask_error(&self, path: &Path, step: MaskStep, e: io::Error) -> ViewError {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            ViewError::MountLimit { path: path.to_path_buf(), placed: self.placed_total() }
        } else {
            ViewError::Mask { path: path.to_path_buf(), step, source: e }
        }
    }
}

/// Whether `kind` (as `mountinfo` names it) is a pseudo filesystem's.
fn pseudo_kind(kind: &[u8]) -> bool {
    PSEUDO.iter().any(|(name, _)| name.as_bytes() == kind)
}

/// The mounts in `table` (a `mountinfo`) beneath `root` other than pseudo filesystems, by
/// path beneath `root` (as the child sees them).
fn other_mounts(table: &[u8], root: &Path) -> Vec<PathBuf> {
    super::mountinfo::mounts(table)
        .filter(|m| !pseudo_kind(m.kind))
        .filter_map(|m| Some(Path::new("/").join(m.point.strip_prefix(root).ok()?)))
        .collect()
}

#[cfg(test)]
mod pseudo_tests {
    use super::*;

    #[test]
    fn the_mounts_in_a_pseudo_filesystem_are_those_right_beneath_it() {
        let t = b"1 0 8:1 / / rw - ext4 /dev/sda1 rw
2 1 0:5 / /ws/p rw - proc proc rw
3 2 0:6 / /ws/p/sys/fs rw - tmpfs tmpfs rw
4 3 0:7 / /ws/p/sys/fs/deeper rw - tmpfs tmpfs rw
5 2 0:8 / /ws/p/bus rw - sysfs sysfs rw
6 5 0:9 / /ws/p/bus/x rw - tmpfs tmpfs rw
7 1 0:10 / /ws/pp rw - tmpfs tmpfs rw
";
        let got = in_pseudo(t, Path::new("/ws/p"));
        assert_eq!(got, [PathBuf::from("/ws/p/sys/fs"), PathBuf::from("/ws/p/bus/x")]);
        // sysfs > tmpfs > sysfs > tmpfs: the innermost is the inner sysfs's only.
        let chain = b"1 0 8:1 / / rw - ext4 /dev/sda1 rw
2 1 0:5 / /ws/s rw - sysfs sysfs rw
3 2 0:6 / /ws/s/a rw - tmpfs tmpfs rw
4 3 0:7 / /ws/s/a/s rw - sysfs sysfs rw
5 4 0:8 / /ws/s/a/s/b rw - tmpfs tmpfs rw
";
        assert_eq!(in_pseudo(chain, Path::new("/ws/s")), [PathBuf::from("/ws/s/a")]);
        assert_eq!(in_pseudo(chain, Path::new("/ws/s/a/s")), [PathBuf::from("/ws/s/a/s/b")]);
        assert!(in_pseudo(t, Path::new("/ws/pp")).is_empty());
    }
}
