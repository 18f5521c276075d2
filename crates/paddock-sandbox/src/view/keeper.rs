//! One inotify instance this process keeps while it runs, watching each directory above a
//! watched path for a child's attribute change (events it never reads, only drains).
//!
//! Why: a watch on a directory that counts a child's attribute change (`IN_ATTRIB`, which
//! [`super::watch`] and [`super::paths_watch`] ask for) makes the kernel flag every cached
//! dentry beneath that directory when the first such watch on it is added: 16.8 ms for
//! `/tmp` on this machine, 5.2 ms for `/`, against microseconds for a watch without
//! `IN_ATTRIB`. The flags stay while any such watch on the directory does, so a session
//! that replaced its zygote (a new notes watch and view stamp, the old ones closed) paid it
//! again for each new zygote: about 23 ms of the call that started one. With this
//! instance's watch in place the next costs microseconds. It changes nothing any watch
//! reports: each instance gets its own events.

use std::path::Path;
use std::sync::Mutex;

use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

/// The keeping instance, made at the first [`keep`].
static KEEPER: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Watches directory `dir` from this process's keeping instance, after reading away what
/// that instance queued since the last call. Best effort: where it cannot, a watch costs
/// what it did before (said at debug level).
pub(super) fn keep(dir: &Path) {
    let mut k = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
    if k.is_none() {
        match inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC) {
            Ok(fd) => *k = Some(fd),
            Err(e) => return tracing::debug!(error = %e, "no inotify instance to keep watched directories flagged"),
        }
    }
    let Some(fd) = k.as_ref() else { return };
    read_away(fd);
    let mask = WatchFlags::ATTRIB | WatchFlags::ONLYDIR | WatchFlags::DONT_FOLLOW;
    if let Err(e) = inotify::add_watch(fd, dir, mask) {
        tracing::debug!(dir = %dir.display(), error = %e, "a directory above a watched path is not kept watched");
    }
}

/// Reads `fd`'s queue to its end, every event let go.
fn read_away(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) | Err(rustix::io::Errno::WOULDBLOCK) => return,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return tracing::debug!(error = %e, "the keeping inotify instance's queue cannot be read"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The files the keeping instance watches, from its `fdinfo`: each one's device, as the
    /// kernel numbers it (`major << 20 | minor`), and inode.
    fn kept() -> Vec<(u64, u64)> {
        use std::os::fd::AsRawFd;
        let k = KEEPER.lock().unwrap();
        let fd = k.as_ref().expect("made").as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let field = |l: &str, name: &str| {
            let h = l.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap();
            u64::from_str_radix(h, 16).unwrap()
        };
        info.lines().filter(|l| l.starts_with("inotify wd:")).map(|l| (field(l, "sdev:"), field(l, "ino:"))).collect()
    }

    /// `path`'s device and inode, numbered as [`kept`] numbers them: inode numbers alone
    /// repeat across filesystems.
    fn id(path: &Path) -> (u64, u64) {
        let m = std::fs::metadata(path).unwrap();
        let dev = m.dev();
        (u64::from(rustix::fs::major(dev)) << 20 | u64::from(rustix::fs::minor(dev)), m.ino())
    }

    #[test]
    fn a_kept_directory_stays_watched_and_its_queue_is_read_away() {
        let dir = std::env::temp_dir().join(format!("paddock-keeper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        keep(&dir);
        assert!(kept().contains(&id(&dir)), "watched by the keeping instance");
        // A child's attribute change queues an event; the next keep reads it away.
        std::fs::write(dir.join("f"), "x").unwrap();
        std::fs::set_permissions(dir.join("f"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        keep(&dir);
        // Its own events only: other tests keep `/tmp`, above it, at the same time.
        let k = KEEPER.lock().unwrap();
        let fd = k.as_ref().unwrap();
        let wd = inotify::add_watch(fd, &dir, WatchFlags::ATTRIB | WatchFlags::ONLYDIR).unwrap();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(fd, &mut buf);
        let mut left = 0;
        while let Ok(e) = reader.next() {
            left += usize::from(e.wd() == wd);
        }
        assert_eq!(left, 0, "nothing of it left queued");
        // A path that is no directory is not watched, and says so only at debug level.
        drop(k);
        keep(&dir.join("f"));
        assert!(!kept().contains(&id(&dir.join("f"))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
