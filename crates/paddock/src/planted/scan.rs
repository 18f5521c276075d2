//! One scan of the places a `deny` or `protect` glob can match under a write grant: every
//! directory read relative to its parent's descriptor, no symlink followed, every match
//! noted with its identity and its parent's descriptor (to move it by).
//!
//! Listings are kept ([`Listings`]) so a later scan reads only directories that changed:
//! one is used only when the directory's status (ctime, mtime, size, link count) and path
//! are exactly as stored, and stored only when its ctime was at least [`MARGIN_SECS`] older
//! than the read (a change within the same timestamp tick is never mistaken for none); the
//! agent can set mtime, not ctime, and every change of a directory's entries moves its
//! ctime. So the scan after a call reads only the directories the call (or anyone) changed.
//! An encrypted (fscrypt) directory is the exception, never kept: adding or removing its
//! key changes the names it lists and moves neither time.
//! A directory whose listing is kept is not even opened: one `lstat` by path from its
//! nearest opened ancestor checks it is the very object its parent listed (device and
//! inode) with the status stored ([`Walk::listed`]); only a directory that changed, holds a
//! match (noted by its parent's descriptor) or is not what was listed is opened, from its
//! parent reached without following any symlink.
//!
//! A directory the user owns that cannot be read or searched (the call may have
//! `chmod 300` it, to hide a match from this scan and open it again in a later call) is
//! opened for the scan as [`crate::aside::with_access`] opens one for a move: `u+rx` is
//! added, the directory read, and its mode restored. Only one the user does not own and
//! cannot search stays unread (the child, with the user's uid, cannot reach into it or
//! change its mode either); one it cannot read but could reach is reported.
//!
//! Mounts met on the way: a pseudo filesystem (`proc`, `sysfs`, …) is not entered, as the
//! view's walk does not enter one, but each mount inside it that is not one is scanned from
//! its own root (found in the mount table). Each scan notes the mounts it meets (their
//! ids); the scan after a call enters no mount, and takes no match that is a mount, which
//! the scan at the start did not meet, and names each mount of the start it no longer
//! meets: a mount made, moved or mounted again there during the call (by the host: the
//! call's mount namespace is a private copy), or one gone, holds what neither scan can
//! compare. Each is reported as not checked, and nothing in it is moved (an attack mounted
//! a directory of `.env` files into the workspace during a call: they were moved aside in
//! the mount's source, outside the workspace, as planted by the call).

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Statx, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use super::Globs;
use crate::identity::{self, Identity, Status};

/// One match met by a scan.
pub(super) struct Found {
    /// Its path.
    pub path: PathBuf,
    /// The index of the rule it matches in [`Globs`].
    pub rule: usize,
    /// What it is: device, inode, type and birth time ([`Identity`]), so an object made
    /// under the inode number a removed one freed is not taken for it.
    pub id: Identity,
    /// Its parent directory, open, and its name there.
    pub parent: Rc<OwnedFd>,
    pub name: CString,
    /// Its number of names (hard links).
    pub links: u32,
}

/// What one scan met.
#[derive(Default)]
pub(super) struct Scan {
    /// Every match.
    pub found: Vec<Found>,
    /// Directories that could not be read, with the error: what they hold is unknown.
    pub failed: Vec<(PathBuf, String)>,
    /// Directories read (the others came from kept listings).
    pub read: usize,
    /// Of those, the ones whose listing was kept.
    pub added: usize,
    /// Of those, the ones unchanged for [`paddock_sandbox::LONG_UNCHANGED_SECS`].
    pub long_unchanged: usize,
    /// The mounts met (their roots, and matches that are mounts), by mount id.
    pub mounts: Mounts,
}

/// Mount ids (`STATX_MNT_ID_UNIQUE`, or the older `STATX_MNT_ID`) and where each was met.
pub(super) type Mounts = HashMap<u64, PathBuf>;

/// Why a mount the scan after a call met was not scanned.
const MOUNTED_DURING: &str =
    "mounted there during the call (made, moved or mounted again since its start): not scanned, nothing in it moved";
/// Why a mount of the start is not checked.
const MOUNT_GONE: &str = "a mount there at the call's start is gone: what the call left in it is not checked";

/// How much older than its read a directory's ctime must be for its listing to be kept.
const MARGIN_SECS: i64 = 2;

/// What a scan keeps of one directory.
#[derive(Clone)]
pub(super) struct Listing {
    /// ctime (s, ns), mtime (s, ns), size, link count.
    pub(super) stamp: [i64; 6],
    /// The directory's path (matches depend on it).
    pub(super) path: PathBuf,
    /// Subdirectories to follow: name, inode (as the directory listed it).
    pub(super) dirs: Vec<(CString, u64)>,
    /// Matches: name, rule.
    pub(super) matches: Vec<(CString, usize)>,
}

/// Listings by (device, inode), shared between the scans that keep them.
pub(super) type Listings =
    HashMap<(u64, u64), Arc<Listing>, std::hash::BuildHasherDefault<paddock_sandbox::InodeHasher>>;

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Scans each root (a write grant, or a rule's prefix beneath one), with the listings of
/// `old` still exact, but not `own` (paddock's own state: neither a match nor looked in);
/// the listings of this scan are left in `new`.
/// `start`: for the scan after a call, the mounts the scan at its start met.
pub(super) fn scan(
    globs: &Globs,
    roots: &[PathBuf],
    own: &[PathBuf],
    old: &Listings,
    new: &mut Listings,
    start: Option<&Mounts>,
) -> Scan {
    let mut out = Scan::default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut w = Walk { globs, own, old, new, now, start };
    for root in roots {
        match open_dir(rustix::fs::CWD, root.as_os_str()) {
            Ok((fd, restore)) => w.walk(fd, restore, root.clone(), &mut out),
            // Nothing there (yet): nothing to find.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
            Err(e) => out.failed.push((root.clone(), e.to_string())),
        }
    }
    if let Some(start) = start {
        for (id, path) in start {
            if !out.mounts.contains_key(id) && !still_mounted(path, *id) {
                out.failed.push((path.clone(), MOUNT_GONE.to_string()));
            }
        }
    }
    out
}

/// Whether the mount `id` is still at `path` (a mount the scan did not open: the bind of a
/// directory onto itself shows its parent's listing the inode it covers, and is passed by).
fn still_mounted(path: &Path, id: u64) -> bool {
    rustix::fs::statx(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW, identity::MNT_IDS)
        .is_ok_and(|st| identity::mount_root(&st) == Some(id))
}

struct Walk<'a> {
    globs: &'a Globs,
    own: &'a [PathBuf],
    old: &'a Listings,
    new: &'a mut Listings,
    now: i64,
    /// The mounts the scan at the call's start met ([`scan`]).
    start: Option<&'a Mounts>,
}

/// What the scan reads of a directory's status.
struct DirStatus {
    dev: u64,
    ino: u64,
    /// As [`Listing::stamp`]: ctime (s, ns), mtime (s, ns), size, link count.
    stamp: [i64; 6],
}

impl DirStatus {
    fn of_statx(st: &Statx) -> DirStatus {
        let stamp = [
            st.stx_ctime.tv_sec,
            i64::from(st.stx_ctime.tv_nsec),
            st.stx_mtime.tv_sec,
            i64::from(st.stx_mtime.tv_nsec),
            st.stx_size as i64,
            i64::from(st.stx_nlink),
        ];
        DirStatus { dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor), ino: st.stx_ino, stamp }
    }

    fn ctime(&self) -> i64 {
        self.stamp[0]
    }
}

/// What [`Walk::open`] asks of a directory: its [`DirStatus`], mode and owner, whether it
/// is a mount's root, and the mount's id.
const DIR_STATX: StatxFlags = StatxFlags::BASIC_STATS.union(identity::MNT_IDS);

/// A directory on the scan's stack.
enum Dir {
    /// Opened, with the mode to restore when the scan opened it up.
    Open(OwnedFd, Option<u32>, PathBuf),
    /// Named by its parent's listing, not opened: reached by path from `base`, its nearest
    /// opened ancestor (the path's bytes after the first `skip` are relative to it).
    Listed { base: Rc<OwnedFd>, skip: usize, path: PathBuf, id: (u64, u64) },
}

impl Walk<'_> {
    fn walk(&mut self, fd: OwnedFd, restore: Option<u32>, path: PathBuf, out: &mut Scan) {
        let mut stack = vec![Dir::Open(fd, restore, path)];
        while let Some(dir) = stack.pop() {
            match dir {
                Dir::Open(fd, restore, path) => self.open(fd, restore, path, &mut stack, out),
                Dir::Listed { base, skip, path, id } => self.listed(base, skip, path, id, &mut stack, out),
            }
        }
    }

    /// Lists the open directory `fd`, opened up for the scan first when it is the user's
    /// and its mode would not let the scan read or search it.
    fn open(&mut self, fd: OwnedFd, mut restore: Option<u32>, path: PathBuf, stack: &mut Vec<Dir>, out: &mut Scan) {
        let parent = Rc::new(fd);
        let stx = match rustix::fs::statx(&*parent, "", AtFlags::EMPTY_PATH, DIR_STATX) {
            Ok(st) => st,
            Err(e) => {
                restore_mode(&parent, restore, &path);
                out.failed.push((path, e.to_string()));
                return;
            }
        };
        if let Some(id) = identity::mount_root(&stx) {
            if !self.entered(&parent, id, &path, stack, out) {
                restore_mode(&parent, restore, &path);
                return;
            }
        }
        let st = DirStatus::of_statx(&stx);
        let encrypted = stx.stx_attributes.contains(StatxAttributes::ENCRYPTED);
        // Readable (opened) but not searchable, or the reverse: the user's own is
        // opened up for the scan (the modes a scan cannot work with).
        let mode = u32::from(stx.stx_mode) & 0o7777;
        if restore.is_none() && mode & 0o500 != 0o500 && stx.stx_uid == rustix::process::geteuid().as_raw() {
            match rustix::fs::fchmod(&*parent, Mode::from_raw_mode(mode | 0o500)) {
                Ok(()) => restore = Some(mode),
                Err(e) => {
                    out.failed.push((path, e.to_string()));
                    return;
                }
            }
        }
        // Its subdirectories are opened now, while it can be searched, when its mode is
        // put back after: they cannot be reached by path then.
        self.list(&parent, &st, encrypted, &path, restore.is_some(), stack, out);
        restore_mode(&parent, restore, &path);
    }

    /// Whether the scan goes into the mount `id` whose root is open at `fd` (at `path`):
    /// noted as met, not one the start did not meet (noted as not checked), and not a
    /// pseudo filesystem, whose mounts of other kinds are put on `stack` instead.
    fn entered(&mut self, fd: &OwnedFd, id: u64, path: &Path, stack: &mut Vec<Dir>, out: &mut Scan) -> bool {
        out.mounts.insert(id, path.to_path_buf());
        if self.start.is_some_and(|start| !start.contains_key(&id)) {
            out.failed.push((path.to_path_buf(), MOUNTED_DURING.to_string()));
            return false;
        }
        match paddock_sandbox::pseudo_filesystem(fd.as_fd()) {
            Ok(false) => true,
            Ok(true) => {
                match paddock_sandbox::mounts_in_pseudo(path) {
                    Ok(points) => {
                        for p in points.into_iter().filter(|p| self.globs.relevant(p)) {
                            let how = ResolveFlags::NO_SYMLINKS;
                            match rustix::fs::openat2(rustix::fs::CWD, &p, DIR_FLAGS, Mode::empty(), how) {
                                Ok(fd) => stack.push(Dir::Open(fd, None, p)),
                                // A file's mount, or gone since the table was read.
                                Err(Errno::NOTDIR | Errno::NOENT) => {}
                                // Not searched by paddock (with the child's uid and at least
                                // its capabilities), so not reached by the child either.
                                Err(Errno::ACCESS) if !reachable(&p) => {}
                                Err(e) => out.failed.push((p, e.to_string())),
                            }
                        }
                    }
                    Err(e) => out.failed.push((path.to_path_buf(), format!("its mounts could not be listed: {e}"))),
                }
                false
            }
            // Not known: scanned as any other.
            Err(_) => true,
        }
    }

    /// A directory its parent's listing named, by (device, inode): its kept listing is
    /// taken without opening it when its status, one `lstat` by path from its nearest
    /// opened ancestor, is that very object's, unchanged, and the listing holds no match
    /// (a match is noted with its parent's descriptor). Anything else, it is opened from
    /// its parent, the parent reached without following any symlink.
    ///
    /// The `lstat` follows a symlink put in place of a directory above it since that was
    /// checked; the object it reaches is used only if it is the one listed (no hard link
    /// to a directory exists) and its own status is as kept, so what the listing says of
    /// it is still true (as of a walk by descriptors that held the directory open while
    /// it was moved).
    fn listed(
        &mut self,
        base: Rc<OwnedFd>,
        skip: usize,
        path: PathBuf,
        id: (u64, u64),
        stack: &mut Vec<Dir>,
        out: &mut Scan,
    ) {
        let bytes = path.as_os_str().as_bytes();
        let rel = Path::new(OsStr::from_bytes(&bytes[skip.min(bytes.len())..]));
        if let Ok(stx) = rustix::fs::statx(&*base, rel, AtFlags::SYMLINK_NOFOLLOW, DIR_STATX) {
            let st = DirStatus::of_statx(&stx);
            let directory = FileType::from_raw_mode(u32::from(stx.stx_mode)) == FileType::Directory;
            // The bind of a directory onto itself is its listed object: noted as a mount
            // met here, as when opened.
            if let (true, Some(mount)) = (directory && (st.dev, st.ino) == id, identity::mount_root(&stx)) {
                out.mounts.insert(mount, path.clone());
                if self.start.is_some_and(|start| !start.contains_key(&mount)) {
                    out.failed.push((path, MOUNTED_DURING.to_string()));
                    return;
                }
            }
            if directory && (st.dev, st.ino) == id {
                if let Some(l) = self.kept(&st, &path).filter(|l| l.matches.is_empty()) {
                    for (name, ino) in &l.dirs {
                        let child = path.join(OsStr::from_bytes(name.to_bytes()));
                        stack.push(Dir::Listed { base: Rc::clone(&base), skip, path: child, id: (st.dev, *ino) });
                    }
                    self.keep(&st, l);
                    return;
                }
            }
        }
        let (Some(up), Some(name)) = (rel.parent(), rel.file_name()) else { return };
        let (up, name) = (up.to_path_buf(), name.to_os_string());
        let parent = if up.as_os_str().is_empty() {
            base
        } else {
            let how = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
            match rustix::fs::openat2(&*base, &up, OFlags::PATH | DIR_FLAGS, Mode::empty(), how) {
                Ok(fd) => Rc::new(fd),
                // Gone since its parent was listed: nothing there to find.
                Err(Errno::NOENT) => return,
                // A symlink or another object on the way now, or no way in: what the
                // directory holds now is unknown.
                Err(e) => {
                    out.failed.push((path.parent().map(Path::to_path_buf).unwrap_or_default(), e.to_string()));
                    return;
                }
            }
        };
        self.child(&parent, &name, path, stack, out);
    }

    /// Opens subdirectory `name` of `parent` (at `full`) and puts it on `stack`.
    fn child(&mut self, parent: &OwnedFd, name: &OsStr, full: PathBuf, stack: &mut Vec<Dir>, out: &mut Scan) {
        match open_dir(parent, name) {
            Ok((fd, restore)) => stack.push(Dir::Open(fd, restore, full)),
            // Gone, or no longer a directory, since it was listed.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
            // Neither listed nor searched by paddock (which has the child's uid and at
            // least its capabilities), so not reached by the child either.
            Err(Errno::ACCESS) if !searchable(parent, name) => {}
            Err(e) => out.failed.push((full, e.to_string())),
        }
    }

    /// The kept listing of the directory of status `st` at `path`, when still exact.
    fn kept(&self, st: &DirStatus, path: &Path) -> Option<Arc<Listing>> {
        self.old.get(&(st.dev, st.ino)).filter(|l| l.stamp == st.stamp && same_path(&l.path, path)).cloned()
    }

    /// Keeps listing `l` of the directory of status `st` for the next scan, when its
    /// ctime is past the margin.
    fn keep(&mut self, st: &DirStatus, l: Arc<Listing>) -> bool {
        let old_enough = st.ctime() <= self.now - MARGIN_SECS;
        if old_enough {
            self.new.insert((st.dev, st.ino), l);
        }
        old_enough
    }

    /// Lists (or takes the kept listing of) the open directory `parent`, notes its
    /// matches and puts its subdirectories onto `stack`: opened now when `open_now` or
    /// when no listing of theirs is kept (one would be read anyway), else to be reached
    /// by path ([`Dir::Listed`]).
    #[allow(clippy::too_many_arguments)]
    fn list(
        &mut self,
        parent: &Rc<OwnedFd>,
        st: &DirStatus,
        encrypted: bool,
        path: &Path,
        open_now: bool,
        stack: &mut Vec<Dir>,
        out: &mut Scan,
    ) {
        let (l, read_now) = match self.kept(st, path) {
            Some(l) => (l, false),
            None => match read(self.globs, self.own, parent, path, out) {
                Some(mut l) => {
                    l.stamp = st.stamp;
                    (Arc::new(l), true)
                }
                None => return,
            },
        };
        // An encrypted directory's listing is never kept: read while its key was absent it
        // holds encoded names, and adding the key changes neither its ctime nor its mtime
        // (the scan after a call would then take the user's own match for the call's).
        let keepable = !read_now || !encrypted;
        for (name, rule) in &l.matches {
            note(parent, name, path.join(OsStr::from_bytes(name.to_bytes())), *rule, self.start, out);
        }
        let bytes = path.as_os_str().as_bytes();
        let skip = if bytes.ends_with(b"/") { bytes.len() } else { bytes.len() + 1 };
        for (name, ino) in &l.dirs {
            let full = path.join(OsStr::from_bytes(name.to_bytes()));
            let id = (st.dev, *ino);
            if open_now || !self.old.contains_key(&id) {
                self.child(parent, OsStr::from_bytes(name.to_bytes()), full, stack, out);
            } else {
                stack.push(Dir::Listed { base: Rc::clone(parent), skip, path: full, id });
            }
        }
        if keepable && self.keep(st, l) && read_now {
            out.added += 1;
            out.long_unchanged += usize::from(paddock_sandbox::long_unchanged(st.ctime(), self.now));
        }
    }
}

/// Opens directory `name` of `parent` to read it. One the user owns that cannot be
/// opened (no `u+r`, or no `u+x` on the way) gets `u+rx` first, by an `O_PATH` descriptor
/// of that very inode (never re-resolving the name): its mode, to restore after the read.
fn open_dir<Fd: rustix::fd::AsFd>(parent: Fd, name: &OsStr) -> Result<(OwnedFd, Option<u32>), Errno> {
    let parent = parent.as_fd();
    match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::ACCESS) => {}
        r => return r.map(|fd| (fd, None)),
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(p) = rustix::fs::openat(parent, name, flags, Mode::empty()) else { return Err(Errno::ACCESS) };
    let st = rustix::fs::fstat(&p)?;
    let mode = st.st_mode & 0o7777;
    if st.st_uid != rustix::process::geteuid().as_raw() || mode & 0o500 == 0o500 {
        return Err(Errno::ACCESS);
    }
    let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&p));
    rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode | 0o500))?;
    // The magic link names the inode itself (no `O_NOFOLLOW`: it is what is followed).
    let reopen = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::open(proc.as_str(), reopen, Mode::empty()) {
        Ok(fd) => Ok((fd, Some(mode))),
        Err(e) => {
            if let Err(e) = rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode)) {
                tracing::warn!(error = %e, mode = format!("{mode:o}"), "a directory's mode could not be restored after the glob scan");
            }
            Err(e)
        }
    }
}

/// Puts back the mode of a directory opened up for the scan.
fn restore_mode(dir: &OwnedFd, restore: Option<u32>, path: &Path) {
    if let Some(mode) = restore {
        if let Err(e) = rustix::fs::fchmod(dir, Mode::from_raw_mode(mode)) {
            tracing::warn!(path = %path.display(), error = %e, mode = format!("{mode:o}"), "a directory's mode could not be restored after the glob scan");
        }
    }
}

/// Lists directory `parent` (at `path`): its matches and the subdirectories to follow, but
/// not the entries that are paddock's own state (`own`); `None` (noted in `out`) when it
/// cannot be read.
fn read(globs: &Globs, own: &[PathBuf], parent: &Rc<OwnedFd>, path: &Path, out: &mut Scan) -> Option<Listing> {
    out.read += 1;
    let mut l = Listing { stamp: [0; 6], path: path.to_path_buf(), dirs: Vec::new(), matches: Vec::new() };
    // The names of `own` in this directory (compared by name, not per entry by path).
    let own_here: Vec<&OsStr> = own.iter().filter(|o| o.parent() == Some(path)).filter_map(|o| o.file_name()).collect();
    {
        let dir = match rustix::fs::Dir::read_from(&**parent) {
            Ok(d) => d,
            Err(e) => {
                out.failed.push((path.to_path_buf(), e.to_string()));
                return None;
            }
        };
        for entry in dir {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.failed.push((path.to_path_buf(), e.to_string()));
                    return None;
                }
            };
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            if own_here.contains(&OsStr::from_bytes(name.to_bytes())) {
                continue;
            }
            let full = path.join(OsStr::from_bytes(name.to_bytes()));
            let mut t = entry.file_type();
            if t == FileType::Unknown {
                match rustix::fs::statat(&**parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => t = FileType::from_raw_mode(st.st_mode),
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        out.failed.push((full, e.to_string()));
                        continue;
                    }
                }
            }
            let on_the_way = || (t == FileType::Symlink).then(|| globs.on_the_way(&full)).flatten();
            if let Some(rule) = globs.matching(&full).or_else(on_the_way) {
                l.matches.push((name.to_owned(), rule));
            } else if t == FileType::Directory && globs.relevant(&full) {
                l.dirs.push((name.to_owned(), entry.ino()));
            }
        }
    }
    Some(l)
}

/// Whether two paths are the same bytes (paths are built the same way by every scan;
/// `Path`'s own equality parses both into components, a cost on every directory).
fn same_path(a: &Path, b: &Path) -> bool {
    a.as_os_str().as_bytes() == b.as_os_str().as_bytes()
}

/// Whether this process may search the directory at `path` and every one on its way.
fn reachable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok()
}

/// Whether this process may search directory `name` of `parent`.
fn searchable(parent: &OwnedFd, name: &OsStr) -> bool {
    rustix::fs::accessat(parent, name, rustix::fs::Access::EXEC_OK, AtFlags::EACCESS | AtFlags::SYMLINK_NOFOLLOW)
        .is_ok()
}

/// Notes the match `name` of `parent` with its identity (one `statx`, as a `stat` was);
/// a match that is a mount the start did not meet ([`scan`]) is noted as not checked.
fn note(parent: &Rc<OwnedFd>, name: &CStr, path: PathBuf, rule: usize, start: Option<&Mounts>, out: &mut Scan) {
    match identity::status_at(parent.as_fd(), OsStr::from_bytes(name.to_bytes())) {
        Ok(Status { mount: Some(id), .. }) if start.is_some_and(|start| !start.contains_key(&id)) => {
            out.mounts.insert(id, path.clone());
            out.failed.push((path, MOUNTED_DURING.to_string()));
        }
        Ok(st) => {
            if let Some(id) = st.mount {
                out.mounts.insert(id, path.clone());
            }
            out.found.push(Found {
                path,
                rule,
                id: st.id,
                parent: Rc::clone(parent),
                name: name.to_owned(),
                links: st.links,
            })
        }
        Err(Errno::NOENT) => {}
        Err(e) => out.failed.push((path, e.to_string())),
    }
}

/// Whether `a` is `b` or beneath it.
pub(super) fn beneath(a: &Path, b: &Path) -> bool {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    a.starts_with(b) && (a.len() == b.len() || b.ends_with(b"/") || a[b.len()] == b'/')
}
