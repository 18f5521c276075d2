//! "The same object" at a path before and after a call, told apart from a new one that
//! reused its inode number. A filesystem hands a freed inode number out again at once
//! (ext4 did, to the very next file made in the same directory: an attack replaced a
//! `.envrc` and a `.git/hooks` symlink by objects of their own with the same device and
//! inode), so (device, inode) alone says nothing of an object the call could remove. An
//! [`Identity`] adds the file type and a stamp no new object can carry: the birth time
//! (`statx`'s `btime`), which every local filesystem paddock watches keeps (ext4, xfs,
//! btrfs, tmpfs, f2fs, bcachefs); where there is none, the ctime of a non-directory (set
//! by the kernel when the object is made, never by the call: an edit in place by the host
//! during the call then reads as a new object, and is moved aside, fail closed), and
//! nothing more for a directory (whose ctime moves with every entry the call adds: the
//! directories on the way to a literal rule's path would all read as replaced).
//!
//! Nor for a directory on overlayfs: its copy-up (the first write beneath it, a `git
//! commit` in a repository baked into a container image) makes a new upper directory,
//! whose birth time overlayfs reports, while its device and inode stay: the repository's
//! `.git` would read as replaced by every call that wrote in it. Files and symlinks are
//! copied up only when they are changed themselves.
//!
//! One `statx` per object, where a `stat` was made before: no system call is added, but for
//! the first directory of each device (an `open` and an `fstatfs`, to know overlayfs).

use std::os::fd::BorrowedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

/// Device, inode, file type and a stamp of the object's making (see the module's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct Identity {
    /// Device (as `stat`'s `st_dev`).
    pub(crate) dev: u64,
    /// Inode number.
    pub(crate) ino: u64,
    /// The file type bits of the mode (`S_IFMT`).
    kind: u32,
    /// When the object was made, as far as the filesystem tells.
    born: Born,
}

/// What tells an object from a later one under the same inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Born {
    /// The birth time (s, ns).
    Birth(i64, u32),
    /// No birth time: the ctime (s, ns) of a non-directory.
    Change(i64, u32),
    /// No birth time, a directory: device, inode and type only.
    Unknown,
}

/// What one `statx` of an object gives: its identity and the rest of its status that the
/// callers compare.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Status {
    /// The object's identity.
    pub(crate) id: Identity,
    /// Its ctime (s, ns).
    pub(crate) ctime: (i64, u32),
    /// Its size.
    pub(crate) size: u64,
    /// Its number of names (hard links).
    pub(crate) links: u32,
    /// The id of the mount it is the root of, if it is one ([`mount_root`]).
    pub(crate) mount: Option<u64>,
}

impl Status {
    /// Its file type.
    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.id.kind)
    }
}

impl Identity {
    /// Its file type.
    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.kind)
    }

    /// Whether it holds a stamp of the object's making (a birth time, or a non-directory's
    /// ctime): without one, a new object under a freed inode number has this identity.
    pub(crate) fn stamped(&self) -> bool {
        self.born != Born::Unknown
    }
}

/// The mask asked of `statx`: what an [`Identity`] and a [`Status`] hold.
const MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::INO)
    .union(StatxFlags::BTIME)
    .union(StatxFlags::CTIME)
    .union(StatxFlags::SIZE)
    .union(StatxFlags::NLINK)
    .union(MNT_IDS);

/// The mount id `statx` is asked for: `STATX_MNT_ID_UNIQUE` (Linux 6.8, never reused),
/// which rustix does not name, where the kernel has it, else `STATX_MNT_ID` (Linux 5.8).
pub(crate) const MNT_IDS: StatxFlags = StatxFlags::from_bits_retain(0x4000).union(StatxFlags::MNT_ID);

/// The id of the mount `stx` is the root of, if it is one and the kernel tells it.
pub(crate) fn mount_root(stx: &rustix::fs::Statx) -> Option<u64> {
    let root = (stx.stx_attributes & stx.stx_attributes_mask).contains(rustix::fs::StatxAttributes::MOUNT_ROOT);
    (root && StatxFlags::from_bits_retain(stx.stx_mask).intersects(MNT_IDS)).then_some(stx.stx_mnt_id)
}

/// The status of `name` in directory `dir`, not followed (a symlink is itself looked at).
pub(crate) fn status_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<Status, Errno> {
    let stx = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, MASK)?;
    Ok(status(dir, name, &stx))
}

/// The [`Status`] a `statx` answer of `name` in `dir` holds.
fn status(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, stx: &rustix::fs::Statx) -> Status {
    let kind = u32::from(stx.stx_mode) & S_IFMT;
    let ctime = (stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec);
    let dev = rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    let directory = FileType::from_raw_mode(kind) == FileType::Directory;
    let born = if StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::BTIME)
        && !(directory && on_overlay(dev, dir, name))
    {
        Born::Birth(stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec)
    } else if !directory {
        Born::Change(ctime.0, ctime.1)
    } else {
        Born::Unknown
    };
    Status {
        id: Identity { dev, ino: stx.stx_ino, kind, born },
        ctime,
        size: stx.stx_size,
        links: stx.stx_nlink,
        mount: mount_root(stx),
    }
}

/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS: u64 = 0x794c_7630;

/// Whether device `dev`, on which the directory `name` in `dir` lies, is an overlayfs:
/// asked once per device in this process (`fstatfs` of the directory). One that cannot
/// be asked is taken as none (its birth times are compared: never a weaker check).
fn on_overlay(dev: u64, dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> bool {
    static KNOWN: std::sync::Mutex<Vec<(u64, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, o)) = known.iter().find(|(d, _)| *d == dev) {
        return *o;
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(dir, name, flags, Mode::empty()) else { return false };
    let Ok(fs) = rustix::fs::fstatfs(&fd) else { return false };
    #[allow(clippy::unnecessary_cast)] // its width differs between architectures
    let overlay = fs.f_type as u64 == OVERLAYFS;
    known.push((dev, overlay));
    overlay
}

/// The file type bits of a mode.
const S_IFMT: u32 = 0o170000;

/// The target of the symlink `name` in `dir`, as bytes (never followed).
pub(crate) fn link_target(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<Vec<u8>, Errno> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn at(dir: &std::path::Path, name: &str) -> Status {
        let d =
            rustix::fs::open(dir, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty())
                .unwrap();
        status_at(d.as_fd(), std::ffi::OsStr::new(name)).unwrap()
    }

    #[test]
    fn the_same_object_is_the_same_and_a_new_one_under_its_number_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::os::unix::fs::symlink("/some/envrc", p.join("l")).unwrap();
        let a = at(p, "l");
        assert_eq!(a.file_type(), FileType::Symlink);
        assert_eq!(at(p, "l").id, a.id, "the same symlink");
        // Removed and made again at once: the filesystem may hand out the same inode number
        // (ext4 and tmpfs often do); whether or not it does, it is another object.
        for _ in 0..3 {
            std::fs::remove_file(p.join("l")).unwrap();
            std::os::unix::fs::symlink("/some/envrc", p.join("l")).unwrap();
            assert_ne!(at(p, "l").id, a.id, "a symlink made again is not the one there before");
        }
        std::fs::remove_file(p.join("l")).unwrap();
        std::fs::write(p.join("l"), "x").unwrap();
        let f = at(p, "l");
        assert_ne!(f.id, a.id);
        assert_eq!(f.id.file_type(), FileType::RegularFile);
        let d =
            rustix::fs::open(p, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty())
                .unwrap();
        std::fs::remove_file(p.join("l")).unwrap();
        std::os::unix::fs::symlink("/t", p.join("l")).unwrap();
        assert_eq!(link_target(d.as_fd(), std::ffi::OsStr::new("l")).unwrap(), b"/t");
    }

    /// A directory on overlayfs copied up (a file written beneath it) keeps its device and
    /// inode but gets a new upper directory's birth time: still the same directory. Needs
    /// root (an overlay mount); skipped without.
    #[test]
    fn a_directory_copied_up_on_overlayfs_stays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["l/d", "u", "w", "m"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        let opts = format!("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", p.display());
        let _mounts = crate::HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let mount = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(p.join("m"))
            .stderr(std::process::Stdio::null())
            .status();
        if !mount.is_ok_and(|s| s.success()) {
            return; // no overlay mount here (not root)
        }
        let before = at(&p.join("m"), "d");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(p.join("m/d/x"), "x").unwrap();
        let after = at(&p.join("m"), "d");
        let _ = std::process::Command::new("umount").arg(p.join("m")).status();
        assert_eq!(before.id, after.id, "copied up, the same directory");
    }

    #[test]
    fn a_type_change_or_a_new_stamp_under_the_same_number_is_another_object() {
        // Inode reuse forced by hand: the same device and inode, another type or stamp.
        let id = Identity { dev: 1, ino: 2, kind: 0o120000, born: Born::Birth(10, 5) };
        assert_ne!(id, Identity { kind: 0o040000, ..id }, "a directory where the symlink was");
        assert_ne!(id, Identity { born: Born::Birth(11, 5), ..id });
        assert_ne!(id, Identity { born: Born::Birth(10, 6), ..id });
        let c = Identity { born: Born::Change(10, 5), ..id };
        assert_ne!(c, Identity { born: Born::Change(10, 6), ..c });
    }
}
