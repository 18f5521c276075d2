//! A watch that says whether anything a set of lookups saw may have changed since: an
//! inotify watch on each path looked at that exists (not followed) and on every directory
//! above it, and a poll of the mount table.
//!
//! What counts as a change: the object at a watched path (a file, a symlink, a
//! directory) changed in any way inotify reports (written, its attributes or link count
//! changed, removed, renamed); in a directory above a path, the entry naming the next
//! component created, removed, renamed (in or out), written or its attributes changed; a
//! watched directory's own attributes changed, the directory removed, renamed or
//! unmounted; the mount table changed; the queue overflowed or cannot be read. Other
//! entries of a directory above (a sibling created or written) are read and let go.
//!
//! What inotify does not report, this watch does not say. So it refuses (an error) a path
//! on a filesystem whose changes inotify may not all report (only
//! [`super::watch::LOCAL_FS`]), a directory this process can search but not read (a
//! watch needs read permission; a lookup through it needs only search permission), and an
//! encrypted or case-insensitive directory ([`names_as_stored`]); its holder then looks
//! again every time. A directory it can neither read nor search is not
//! watched: no lookup went through it, and the directory above names it. Neither is an
//! object it cannot read: the directory above names it, and says all but a link count
//! changed by a hard link made elsewhere. Nor does inotify report a file written through a
//! shared memory mapping or by Linux AIO (`io_submit`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::fs::{Mode, OFlags, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use super::watch::{local, mounts_unchanged, read_queue};

/// Every event a watched object (and a directory's entry) may count: contents written (a
/// `.git` file read for its `gitdir:` line), attributes (a link count too), created,
/// removed, renamed.
fn mask() -> WatchFlags {
    WatchFlags::ATTRIB
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MODIFY
        | WatchFlags::MOVE_SELF
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DONT_FOLLOW
        | WatchFlags::MASK_ADD
}

/// The watch on the paths of [`PathsWatch::add`]; [`PathsWatch::quiet`] reads its queue.
/// Dropping it closes the inotify instance on a thread of its own (see
/// [`crate::ViewStamp`]'s drop: the close waits for the kernel's grace period).
#[derive(Debug)]
pub struct PathsWatch {
    inotify: Option<rustix::fd::OwnedFd>,
    mounts: File,
    /// By watch: `None`, every event counts (a watched path itself); else the names in
    /// that directory whose entry counts (a directory above watched paths, and not one
    /// itself: its own events count too).
    kinds: HashMap<i32, Option<HashSet<OsString>>>,
    /// The queue could not be read once: never quiet again.
    broken: bool,
}

impl PathsWatch {
    /// A watch on nothing yet. An error: no inotify instance, or no mount table to poll.
    pub fn new() -> io::Result<PathsWatch> {
        let inotify = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        let mounts = File::open("/proc/self/mountinfo")?;
        Ok(PathsWatch { inotify: Some(inotify), mounts, kinds: HashMap::new(), broken: false })
    }

    /// Watches each of `paths` (absolute, as looked up: not normalised) and, in every
    /// directory above it, the entry naming the next component. `Ok(true)` when each was
    /// watched already: every directory there now above each path, with that entry, and
    /// the object at each path (so since before the lookups that named them, if they were
    /// added then). The kernel says which object a watch is on (a directory replaced, even
    /// under the freed inode number, takes a new one), so every directory and object is
    /// asked again each time. `Ok(false)` when one was added now. An error: a path or a
    /// directory above it cannot be watched (not on a local filesystem, searchable but not
    /// readable, the user's inotify limits reached); the watch vouches for nothing then.
    pub fn add<'a>(&mut self, paths: impl IntoIterator<Item = &'a Path>) -> io::Result<bool> {
        let mut above: HashMap<&Path, HashSet<&std::ffi::OsStr>> = HashMap::new();
        let mut objects: HashSet<&Path> = HashSet::new();
        for p in paths {
            if !p.is_absolute() {
                return Err(io::Error::other(format!("{} is not absolute", p.display())));
            }
            objects.insert(p);
            let mut at = p;
            while let (Some(dir), Some(name)) = (at.parent(), at.file_name()) {
                above.entry(dir).or_default().insert(name);
                at = dir;
            }
        }
        let mut all_there = true;
        for (&dir, names) in &above {
            super::keeper::keep(dir);
            let Some(wd) = self.watch_dir(dir)? else { continue };
            let watched = self.kinds.entry(wd).or_insert_with(|| {
                all_there = false;
                Some(HashSet::new())
            });
            if let Some(watched) = watched {
                for n in names {
                    all_there &= !watched.insert(n.to_os_string());
                }
            }
        }
        for p in objects {
            // A directory above another path: watched just now, with its own events.
            if above.contains_key(p) {
                continue;
            }
            // Gone since it was looked up: the directory above says so.
            let Ok(meta) = std::fs::symlink_metadata(p) else { continue };
            all_there &= !self.watch_itself(p, &meta)?;
        }
        Ok(all_there)
    }

    fn inotify(&self) -> io::Result<&rustix::fd::OwnedFd> {
        self.inotify.as_ref().ok_or_else(|| io::Error::other("the watch has ended"))
    }

    /// A directory, for its own events and the entries [`PathsWatch::add`] names.
    /// `None`: it is gone, no directory, or this process can neither read nor search it
    /// (then no lookup went through it, and its own changes show in the directory above).
    fn watch_dir(&mut self, dir: &Path) -> io::Result<Option<i32>> {
        let wd = match inotify::add_watch(self.inotify()?, dir, mask() | WatchFlags::ONLYDIR) {
            Ok(wd) => wd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            // A watch needs read permission; a lookup through it needs search permission.
            Err(Errno::ACCESS) if rustix::fs::access(dir, rustix::fs::Access::EXEC_OK).is_err() => return Ok(None),
            Err(e) => return Err(io::Error::other(format!("{}: {e}", dir.display()))),
        };
        if !local(dir)? {
            return Err(io::Error::other(format!("{} is not on a local filesystem", dir.display())));
        }
        names_as_stored(dir)?;
        Ok(Some(wd))
    }

    /// The object at `p` (`meta`: its `lstat`), not followed: a directory for its own
    /// events (its entries count where a path below it names them), anything else for
    /// every event; whether its watch is new. One this process cannot read is not watched
    /// itself: the directory above names it, which says all but a link count changed by a
    /// hard link made elsewhere.
    fn watch_itself(&mut self, p: &Path, meta: &std::fs::Metadata) -> io::Result<bool> {
        if meta.is_dir() {
            let Some(wd) = self.watch_dir(p)? else { return Ok(false) };
            let mut new = false;
            self.kinds.entry(wd).or_insert_with(|| {
                new = true;
                Some(HashSet::new())
            });
            return Ok(new);
        }
        let wd = match inotify::add_watch(self.inotify()?, p, mask()) {
            Ok(wd) => wd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::ACCESS) => return Ok(false),
            Err(e) => return Err(io::Error::other(format!("{}: {e}", p.display()))),
        };
        // A symlink's filesystem is its directory's (checked above); `statfs` would follow it.
        if !meta.file_type().is_symlink() && !local(p)? {
            return Err(io::Error::other(format!("{} is not on a local filesystem", p.display())));
        }
        Ok(self.kinds.insert(wd, None).is_none())
    }

    /// Whether nothing counted happened since the last call (or since the paths were
    /// added): reads the queue to its end and polls the mount table. Each event is
    /// reported once: a later call says `true` again unless something else happened.
    pub fn quiet(&mut self) -> bool {
        if self.broken {
            return false;
        }
        let Some(fd) = &self.inotify else { return false };
        let kinds = &self.kinds;
        let mut quiet = true;
        let read = read_queue(fd, |event| {
            quiet &= match (kinds.get(&event.wd()), event.file_name()) {
                // An overflow (wd -1), or a watch this one never added.
                (None, _) | (Some(None), _) => false,
                // The directory itself.
                (Some(Some(_)), None) => false,
                (Some(Some(names)), Some(name)) => !names.iter().any(|n| n.as_bytes() == name.to_bytes()),
            };
            false
        });
        if read.is_err() {
            self.broken = true;
            return false;
        }
        // Read even when something counted: a change of the mount table is said once.
        mounts_unchanged(&self.mounts) && quiet
    }
}

/// `FS_CASEFOLD_FL` (`linux/fs.h`): the directory's names match whatever their case.
const FS_CASEFOLD_FL: u32 = 0x4000_0000;

/// Whether a lookup in `dir` finds names as their entries hold them, so that an event's
/// name is the one looked up and every change of what a name finds is an entry's event:
/// not so in an encrypted directory (fscrypt: adding or removing its key changes every
/// name a lookup finds, and inotify says nothing; found by an attack) nor in a
/// case-insensitive one (`CONFIG` made is what a lookup of `config` finds). Checked at
/// each keeping, for every directory watched. An error names why not.
fn names_as_stored(dir: &Path) -> io::Result<()> {
    let st = rustix::fs::statx(rustix::fs::CWD, dir, rustix::fs::AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)?;
    let fd =
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let flags = match rustix::fs::ioctl_getflags(&fd) {
        Ok(f) => f.bits(),
        // No flags on this filesystem: none is case-insensitive.
        Err(Errno::NOTTY | Errno::INVAL | Errno::OPNOTSUPP) => 0,
        Err(e) => return Err(io::Error::other(format!("{}: its flags: {e}", dir.display()))),
    };
    match lookup_differs(st.stx_attributes, flags) {
        Some(why) => Err(io::Error::other(format!("{} is {why}", dir.display()))),
        None => Ok(()),
    }
}

/// Why a lookup in a directory with `statx` attributes `attrs` and inode flags `flags`
/// may find what its entries' events do not name; `None` when it cannot.
fn lookup_differs(attrs: StatxAttributes, flags: u32) -> Option<&'static str> {
    if attrs.contains(StatxAttributes::ENCRYPTED) {
        Some("encrypted (fscrypt): adding or removing its key changes its names unseen")
    } else if flags & FS_CASEFOLD_FL != 0 {
        Some("case-insensitive: a name made in another case is found unseen")
    } else {
        None
    }
}

impl Drop for PathsWatch {
    fn drop(&mut self) {
        if let Some(fd) = self.inotify.take() {
            let _ = std::thread::Builder::new().name("paddock-unwatch".into()).spawn(move || drop(fd));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory of this test's own, removed when dropped.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(name: &str) -> Tmp {
            let root = std::env::temp_dir().join(format!("paddock-paths-watch-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            Tmp(root)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn each_change_on_a_watched_way_is_said_once_and_a_siblings_is_not() {
        let _mounts = crate::HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let t = Tmp::new("ways");
        let d = t.path().join("a");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", d.join("l")).unwrap();
        let looked = [d.join("f"), d.join("l"), d.join("absent"), d.join("absent/below")];
        let mut w = PathsWatch::new().unwrap();
        if !local(t.path()).unwrap() {
            assert!(w.add(looked.iter().map(PathBuf::as_path)).is_err(), "a filesystem it cannot vouch for");
            return;
        }
        assert!(!w.add(looked.iter().map(PathBuf::as_path)).unwrap(), "added now");
        assert!(w.add(looked.iter().map(PathBuf::as_path)).unwrap(), "all there already");
        assert!(w.quiet());
        // A sibling's entry, above the paths: let go.
        std::fs::write(d.join("other"), "").unwrap();
        std::fs::write(t.path().join("other"), "").unwrap();
        assert!(w.quiet(), "a sibling's entry does not count");
        let changes: [&dyn Fn(); 6] = [
            &|| std::fs::write(d.join("f"), "y").unwrap(),
            &|| std::fs::write(d.join("absent"), "").unwrap(),
            &|| std::fs::remove_file(d.join("absent")).unwrap(),
            &|| {
                std::fs::remove_file(d.join("l")).unwrap();
                std::os::unix::fs::symlink("other", d.join("l")).unwrap();
            },
            &|| std::fs::hard_link(d.join("f"), t.path().join("elsewhere")).unwrap(),
            &|| std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap(),
        ];
        for (i, change) in changes.iter().enumerate() {
            change();
            assert!(!w.quiet(), "change {i} is said");
            assert!(w.quiet(), "change {i} is said once");
        }
        // The directory above renamed: the entry naming it.
        std::fs::rename(&d, t.path().join("b")).unwrap();
        assert!(!w.quiet());
    }

    #[test]
    fn a_directory_on_the_way_replaced_is_watched_anew_with_the_entries_below_it() {
        let _mounts = crate::HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let t = Tmp::new("replaced");
        let d = t.path().join("d");
        let looked = [d.join("absent")];
        let paths = || looked.iter().map(PathBuf::as_path);
        for (i, replace) in [
            &(|| {
                std::fs::rename(&d, t.path().join("d.old")).unwrap();
                std::fs::create_dir(&d).unwrap();
            }) as &dyn Fn(),
            // The freed inode number is often the new directory's.
            &|| {
                std::fs::remove_dir(&d).unwrap();
                std::fs::create_dir(&d).unwrap();
            },
        ]
        .into_iter()
        .enumerate()
        {
            let _ = std::fs::remove_dir_all(t.path().join("d.old"));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir(&d).unwrap();
            let mut w = PathsWatch::new().unwrap();
            if !local(t.path()).unwrap() {
                assert!(w.add(paths()).is_err());
                return;
            }
            assert!(!w.add(paths()).unwrap());
            assert!(w.add(paths()).unwrap() && w.quiet());
            replace();
            assert!(!w.quiet(), "{i}: the replacement is said");
            assert!(!w.add(paths()).unwrap(), "{i}: the new directory takes a watch of its own");
            assert!(w.add(paths()).unwrap() && w.quiet(), "{i}");
            std::os::unix::fs::symlink("elsewhere", d.join("absent")).unwrap();
            assert!(!w.quiet(), "{i}: the entry made in the new directory is said");
        }
    }

    #[test]
    fn an_encrypted_or_case_insensitive_directory_cannot_be_vouched_for() {
        assert_eq!(lookup_differs(StatxAttributes::empty(), 0), None);
        assert_eq!(lookup_differs(StatxAttributes::IMMUTABLE | StatxAttributes::MOUNT_ROOT, 0x10), None);
        assert!(lookup_differs(StatxAttributes::ENCRYPTED, 0).is_some_and(|w| w.contains("fscrypt")));
        assert!(lookup_differs(StatxAttributes::empty(), FS_CASEFOLD_FL).is_some_and(|w| w.contains("case")));
        // A plain directory here is one.
        let t = Tmp::new("plain");
        names_as_stored(t.path()).unwrap();
    }
}
