//! The change notification behind a [`super::stamp::ViewStamp`]: an inotify watch on every
//! stamped directory and on every directory above the stamp's roots, and a poll of the
//! mount table, so that the check before each call of a session reads a queue instead of
//! stat-ing every directory of the view again.
//!
//! What counts as a change is what the stamp's comparison sees: an entry of a stamped
//! directory created, removed or renamed (in or out), the directory's own attributes
//! changed, the directory removed, renamed or unmounted; above a root, the entry on the
//! root's path created, removed or renamed, or a directory on the path removed, renamed or
//! its attributes changed. Events that the comparison does not see (a file's own
//! attributes, a sibling of a root's path) are read and let go.
//!
//! What inotify does not say, the stamp still compares by `lstat`:
//! - every stamped path that is not a directory (an absent root, a granted file), every
//!   directory this process cannot read (a watch needs read permission: another user's
//!   private directory, such as `/etc/polkit-1/rules.d` for uid 65534), and every
//!   directory on a filesystem whose changes inotify may not all report (a network or FUSE
//!   filesystem: only [`LOCAL_FS`] are watched; a directory above a root elsewhere means no
//!   watch at all);
//! - everything, once: after the mount table changed (a mount over a stamped directory hides
//!   its watch), once more whenever it changes again;
//! - everything, once: after the queue overflowed (read to its end first);
//! - everything, always: when a watch could not be added (the user's
//!   `fs.inotify.max_user_watches` or instances), the queue cannot be read, or
//!   `/proc/self/mountinfo` cannot be opened.
//!
//! Watches are added after the stamp's statuses were taken, and the stamp compares them all
//! once after the last watch is in: a change before its watch shows in that comparison, one
//! after in the queue.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::event::{PollFd, PollFlags};
use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// Filesystems whose every change to a directory is reported to inotify, whoever makes it
/// (local ones: ext2/3/4, xfs, btrfs, tmpfs, f2fs, bcachefs; overlayfs for changes made
/// through it, which are the only ones a running system may make).
pub(super) const LOCAL_FS: [i64; 7] = [
    0xef53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683e, // btrfs
    0x0102_1994, // tmpfs
    0xf2f5_2010, // f2fs
    0xca45_1a4e, // bcachefs
    0x794c_7630, // overlayfs
];

/// Every event either kind of watched directory may count.
fn mask() -> WatchFlags {
    WatchFlags::ATTRIB
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DONT_FOLLOW
        | WatchFlags::ONLYDIR
}

/// What a watched directory is to the stamp.
#[derive(Debug)]
enum Kind {
    /// A stamped directory (its path): an entry created, removed or renamed there is a
    /// change unless the stamp's judge lets it go ([`Watch::check`]).
    Stamped(PathBuf),
    /// A directory above a root: only these entries (the next component of a root's path).
    Above(Vec<OsString>),
}

/// What the queue says since the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing the stamp compares changed.
    Quiet,
    /// Something did (for good: a stamp never vouches again once changed).
    Changed,
    /// The queue cannot say (it overflowed, or the mount table changed): compare all,
    /// this once.
    Unsure,
}

/// The inotify instance and the mount table's descriptor of one stamp.
#[derive(Debug)]
pub(super) struct Watch {
    inotify: rustix::fd::OwnedFd,
    mounts: File,
    kinds: HashMap<i32, Kind>,
    changed: bool,
    broken: bool,
}

impl Watch {
    /// Starts a watch: the mount table, and every directory above each of `roots`. The
    /// stamped directories are added one by one ([`Watch::add_stamped`]), each before its
    /// status is taken. An error: no watch (the stamp compares everything, every time).
    pub(super) fn begin(roots: &[PathBuf]) -> io::Result<Watch> {
        let inotify = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        let mounts = File::open("/proc/self/mountinfo")?;
        let mut w = Watch { inotify, mounts, kinds: HashMap::new(), changed: false, broken: false };
        for root in roots {
            let mut above = PathBuf::from("/");
            for c in root.components() {
                let Component::Normal(name) = c else { continue };
                if !local(&above)? {
                    return Err(io::Error::other(format!("{} is not on a local filesystem", above.display())));
                }
                super::keeper::keep(&above);
                let wd = inotify::add_watch(&w.inotify, &above, mask())?;
                match w.kinds.entry(wd).or_insert_with(|| Kind::Above(Vec::new())) {
                    Kind::Above(names) => names.push(name.to_os_string()),
                    Kind::Stamped(_) => {}
                }
                above.push(name);
            }
        }
        Ok(w)
    }

    /// Watches the directory at `dir` (not followed), to be stamped next: its watch
    /// descriptor, or `None` when there is no directory there to watch or this process
    /// may not watch it (it cannot read it: another user's private directory; its status
    /// needs no read permission, so the stamp compares that instead). An error: the watch
    /// cannot go on (the user's `fs.inotify.max_user_watches`).
    pub(super) fn add_stamped(&mut self, dir: &Path) -> io::Result<Option<i32>> {
        match inotify::add_watch(&self.inotify, dir, mask()) {
            Ok(wd) => {
                self.kinds.insert(wd, Kind::Stamped(dir.to_path_buf()));
                Ok(Some(wd))
            }
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::ACCESS) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes back the watch `wd` of a stamped directory this watch cannot vouch for (not
    /// on a local filesystem): events on it no longer count.
    pub(super) fn remove(&mut self, wd: i32) {
        if matches!(self.kinds.get(&wd), Some(Kind::Stamped(_))) {
            self.kinds.remove(&wd);
            let _ = inotify::remove_watch(&self.inotify, wd);
        }
    }

    /// From now on every check says [`Verdict::Changed`]: the caller found a status changed
    /// (a comparison after [`Verdict::Unsure`], which the queue says only once).
    pub(super) fn set_changed(&mut self) {
        self.changed = true;
    }

    /// Reads the queue and polls the mount table. An entry of a stamped directory created,
    /// removed or renamed (not a directory's) is let go when `plain(path, removed)` says it
    /// changes nothing the view placed, asked once the queue is read (so of what is there
    /// then); anything else that counts is a change.
    pub(super) fn check(&mut self, plain: &dyn Fn(&Path, bool) -> bool) -> Verdict {
        if self.changed {
            return Verdict::Changed;
        }
        if self.broken {
            return Verdict::Unsure;
        }
        // Events were lost: once the queue is read to its end, the caller's comparison of
        // every status covers what they said (what comes after is queued again).
        let mut overflowed = false;
        let kinds = &self.kinds;
        let mut changed = false;
        let mut entries: Vec<(PathBuf, bool)> = Vec::new();
        let read = read_queue(&self.inotify, |event| {
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                overflowed = true;
                return false;
            }
            let entry_moved = ReadFlags::CREATE | ReadFlags::DELETE | ReadFlags::MOVED_FROM | ReadFlags::MOVED_TO;
            changed = match (kinds.get(&event.wd()), event.file_name()) {
                // A watch the stamp never added: the wd of one that ended, reused.
                (None, _) => true,
                // The directory itself: its attributes, removed, renamed, unmounted.
                (Some(_), None) => true,
                (Some(Kind::Stamped(dir)), Some(name)) if flags.intersects(entry_moved) => {
                    // A directory made, removed or moved in or out: always a change.
                    if flags.contains(ReadFlags::ISDIR) {
                        true
                    } else {
                        let removed = flags.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM);
                        entries.push((dir.join(std::ffi::OsStr::from_bytes(name.to_bytes())), removed));
                        false
                    }
                }
                (Some(Kind::Stamped(_)), Some(_)) => false,
                (Some(Kind::Above(names)), Some(name)) => {
                    flags.intersects(entry_moved) && names.iter().any(|n| n.as_bytes() == name.to_bytes())
                }
            };
            changed
        });
        if read.is_err() {
            self.broken = true;
            return Verdict::Unsure;
        }
        if !changed && !overflowed {
            changed = entries.iter().any(|(p, removed)| !plain(p, *removed));
        }
        if changed {
            self.changed = true;
            return Verdict::Changed;
        }
        match mounts_unchanged(&self.mounts) {
            true if !overflowed => Verdict::Quiet,
            _ => Verdict::Unsure,
        }
    }
}

/// Reads `inotify`'s queue to its end, or until `each` says an event ends the reading
/// (`true`). An error: the queue cannot be read.
pub(super) fn read_queue(inotify: &OwnedFd, mut each: impl FnMut(&inotify::Event<'_>) -> bool) -> io::Result<()> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut reader = inotify::Reader::new(inotify, &mut buf);
    loop {
        match reader.next() {
            Ok(event) if each(&event) => return Ok(()),
            Ok(_) | Err(Errno::INTR) => {}
            Err(Errno::WOULDBLOCK) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the mount table `mounts` (`/proc/self/mountinfo`) did not change since its
/// last poll: a poll sees a change once, the next one does not unless it changes again.
/// `false` too when the poll fails.
pub(super) fn mounts_unchanged(mounts: &File) -> bool {
    let mut fds = [PollFd::new(mounts, PollFlags::PRI)];
    matches!(rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(0))
}

/// Whether `dir` is on one of [`LOCAL_FS`].
pub(super) fn local(dir: &Path) -> io::Result<bool> {
    let t = rustix::fs::statfs(dir)?.f_type as i64;
    Ok(LOCAL_FS.contains(&t))
}
