//! What cgroup v1 and v2 share: the directory made in one hierarchy ([`Part`]), the
//! files written in it, and the parsing of `/proc/self/cgroup` and `mountinfo`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys::{self, cstring, write_all};

/// One directory made for the sandbox in one hierarchy.
#[derive(Debug)]
pub(super) struct Part {
    /// The parent directory (`O_PATH`), to remove the cgroup whatever the mount view.
    pub(super) parent: OwnedFd,
    /// The new directory's name in `parent`.
    pub(super) name: CString,
    /// Its `cgroup.procs`, open for writing.
    pub(super) procs: OwnedFd,
    /// The file a single-threaded process moves itself into it through: `tasks` in cgroup
    /// v1 (a thread that moves itself takes no global lock there), else `cgroup.procs`
    /// again.
    pub(super) own: OwnedFd,
}

pub(super) fn open_at(dir: BorrowedFd<'_>, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    sys::openat(dir, &cstring(name)?, flags)
}

pub(super) fn write_file(dir: &OwnedFd, name: &str, value: &str) -> io::Result<()> {
    let f = open_at(dir.as_fd(), name, libc::O_WRONLY)?;
    write_all(f.as_raw_fd(), value.as_bytes()).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))
}

pub(super) fn exists_at(dir: &OwnedFd, name: &str) -> bool {
    let Ok(c) = cstring(name) else { return false };
    rustix::fs::accessat(dir, c.as_c_str(), rustix::fs::Access::EXISTS, rustix::fs::AtFlags::empty()).is_ok()
}

/// Makes `base/name` and opens what the later steps need.
pub(super) fn make_dir(base: &Path, name: &str) -> io::Result<(Part, OwnedFd)> {
    let parent = open_at(rustix::fs::CWD, &base.to_string_lossy(), libc::O_PATH | libc::O_DIRECTORY)?;
    let cname = cstring(name)?;
    let mkdir = || rustix::fs::mkdirat(&parent, cname.as_c_str(), rustix::fs::Mode::from_raw_mode(0o755));
    let made = match mkdir() {
        Err(rustix::io::Errno::EXIST) => {
            // A leftover of a helper that was killed with this pid: empty, so removable
            // (if it is not, the mkdir below says so).
            let _ = rustix::fs::unlinkat(&parent, cname.as_c_str(), rustix::fs::AtFlags::REMOVEDIR);
            mkdir()
        }
        r => r,
    };
    made.map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("mkdir {}/{name}: {e}", base.display())))?;
    let opened = open_at(parent.as_fd(), name, libc::O_DIRECTORY | libc::O_RDONLY).and_then(|dir| {
        let procs = open_at(dir.as_fd(), "cgroup.procs", libc::O_WRONLY)?;
        let own = match open_at(dir.as_fd(), "tasks", libc::O_WRONLY) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => open_at(dir.as_fd(), "cgroup.procs", libc::O_WRONLY)?,
            other => other?,
        };
        Ok((dir, procs, own))
    });
    match opened {
        Ok((dir, procs, own)) => Ok((Part { parent, name: cname, procs, own }, dir)),
        Err(e) => {
            Part::remove_dir(&parent, &cname);
            Err(e)
        }
    }
}

impl Part {
    /// Whether [`Part::own`] is `tasks` (cgroup v1), not `cgroup.procs` again: the two are
    /// other files, so other inodes.
    pub(super) fn moves_by_thread(&self) -> bool {
        match (rustix::fs::fstat(&self.own), rustix::fs::fstat(&self.procs)) {
            (Ok(a), Ok(b)) => a.st_ino != b.st_ino || a.st_dev != b.st_dev,
            _ => false,
        }
    }

    pub(super) fn remove_dir(parent: &OwnedFd, name: &CString) -> bool {
        // Tasks leave their cgroup in do_exit, before they are reaped; a short retry covers
        // the rare case where the last one is still on its way out.
        for _ in 0..200 {
            match rustix::fs::unlinkat(parent, name.as_c_str(), rustix::fs::AtFlags::REMOVEDIR) {
                Ok(()) => return true,
                Err(rustix::io::Errno::BUSY) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(_) => return false,
            }
        }
        false
    }
}

/// `(hierarchy id, controllers, path)` of each line of `/proc/self/cgroup`.
pub(super) fn own_cgroups(text: &str) -> Vec<(&str, Vec<&str>, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (id, ctl, path) = (it.next()?, it.next()?, it.next()?);
            Some((id, ctl.split(',').filter(|c| !c.is_empty()).collect(), path))
        })
        .collect()
}

/// `(root, mount point, fstype, super options)` of each cgroup mount in `mountinfo`.
pub(super) fn cgroup_mounts(text: &str) -> Vec<(&str, &str, &str, &str)> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut pre = pre.split(' ');
            let root = pre.nth(3)?;
            let mp = pre.next()?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let opts = post.nth(1).unwrap_or("");
            (fstype == "cgroup" || fstype == "cgroup2").then_some((root, mp, fstype, opts))
        })
        .collect()
}

/// The cgroup mounts' lines of this process's `mountinfo` (as [`cgroup_mounts`] reads them),
/// read again only once the mount table changed since the last read: the file kept open
/// reports a change by `POLLPRI` (proc(5)), so a session's calls do not each have the
/// kernel format the whole table. Empty when it cannot be read (as an unreadable file was).
/// A forked process reads its own (the open file's change mark is shared with the parent).
pub(super) fn cgroup_mount_lines() -> String {
    use std::io::Read;
    type Kept = (u32, std::fs::File, String);
    static KEPT: std::sync::Mutex<Option<Kept>> = std::sync::Mutex::new(None);
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    if let Some((_, file, lines)) = kept.as_ref().filter(|k| k.0 == me) {
        let mut fds = [rustix::event::PollFd::new(file, rustix::event::PollFlags::PRI)];
        let now = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
        if matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(0)) {
            return lines.clone();
        }
    }
    *kept = None;
    let mut text = String::new();
    let Ok(mut file) = std::fs::File::open("/proc/self/mountinfo") else { return text };
    if file.read_to_string(&mut text).is_err() {
        return String::new();
    }
    let lines: String = text.lines().filter(|l| !cgroup_mounts(l).is_empty()).flat_map(|l| [l, "\n"]).collect();
    *kept = Some((me, file, lines.clone()));
    lines
}

/// The directory of `path` (a cgroup path as `/proc/self/cgroup` shows it) under a mount of
/// the hierarchy rooted at `root`, mounted at `mp`.
pub(super) fn dir_of(mp: &str, root: &str, path: &str) -> Option<PathBuf> {
    let rel = if root == "/" { path } else { path.strip_prefix(root)? };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() { PathBuf::from(mp) } else { Path::new(mp).join(rel) })
}

pub(super) fn read_words(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

/// What one controller needs: the file and value of its limit.
pub(super) struct Want {
    pub(super) ctl: &'static str,
    pub(super) value: u64,
}

/// What the attempts found, for the layer's detail.
#[derive(Default)]
pub(super) struct Notes {
    /// The limits written (`pids.max=64`, ...).
    pub(super) set: Vec<String>,
    /// Why a hierarchy or controller could not be used.
    pub(super) why: Vec<String>,
    /// The directories made.
    pub(super) where_: Vec<String>,
    /// Controllers no cgroup bounds.
    pub(super) missing: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept lines are the cgroup mounts a fresh read of `mountinfo` finds, call after
    /// call (the mount table unchanged meanwhile).
    #[test]
    fn kept_cgroup_mounts_are_what_mountinfo_says() {
        let fresh = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let fresh = cgroup_mounts(&fresh);
        for _ in 0..3 {
            let kept = cgroup_mount_lines();
            assert_eq!(cgroup_mounts(&kept), fresh);
        }
    }

    #[test]
    fn parses_proc_cgroup_and_mountinfo() {
        let own = own_cgroups("8:pids:/\n4:memory:/a/b\n0::/user.slice/x.scope\n");
        assert_eq!(own[1], ("4", vec!["memory"], "/a/b"));
        assert_eq!(own[2], ("0", vec![], "/user.slice/x.scope"));
        let m = cgroup_mounts(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
             22 27 0:21 / /proc rw,relatime - proc proc rw\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], ("/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"));
        assert_eq!(m[1].2, "cgroup2");
        assert_eq!(dir_of("/sys/fs/cgroup/memory", "/", "/a/b").unwrap(), Path::new("/sys/fs/cgroup/memory/a/b"));
        assert_eq!(dir_of("/sys/fs/cgroup", "/a", "/a/b").unwrap(), Path::new("/sys/fs/cgroup/b"));
        assert!(dir_of("/sys/fs/cgroup", "/c", "/a/b").is_none());
    }
}
