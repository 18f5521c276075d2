//! The notifying task's files in `/proc`: its magic links, the identity of what they
//! hold, and a link's file as a live path in the task's view ([`live_path`]).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::resolve::{self, Kind, Root, Unresolved};

/// How the task's directories are opened: as handles to look up from, never read.
const DIR: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// The notifying task's files, through one descriptor of its `/proc/PID` directory: opened
/// before the first validity check, it stays the task's own even if the pid is reused
/// (its files then fail with `ESRCH`), and each file is one lookup from it.
pub(crate) struct Task {
    pub(crate) dir: OwnedFd,
    /// Its root directory, opened through the `root` magic link at the first lookup in it
    /// (`None`: that open failed, and each lookup goes through the link and fails as it).
    root: std::cell::OnceCell<Option<OwnedFd>>,
}

impl Task {
    pub(crate) fn open(pid: u32) -> std::io::Result<Task> {
        Ok(Task { dir: rustix::fs::open(format!("/proc/{pid}"), DIR, Mode::empty())?, root: Default::default() })
    }

    /// The target of one of its magic links (`cwd`, `exe`, `fd/N`), as text.
    fn link(&self, what: &str) -> std::io::Result<PathBuf> {
        let l = rustix::fs::readlinkat(&self.dir, what, Vec::new())?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(l.into_bytes())))
    }

    /// The identity of the file one of its magic links holds (the link followed, as the
    /// kernel follows it, whatever its text says).
    fn identity(&self, what: &str) -> std::io::Result<resolve::FileId> {
        Ok(resolve::file_id(&rustix::fs::statat(&self.dir, what, AtFlags::empty())?))
    }

    /// Its root directory: `root` (the magic link, never read as text) under its
    /// `/proc/PID`, followed once, at the first lookup: an exec's resolution looks up
    /// every component of every path from it, and each lookup through the link was a
    /// `/proc` lookup and a ptrace access check besides. The task waits in its exec
    /// meanwhile; its root can change only with `chroot` or `pivot_root`, which the
    /// sandbox's processes cannot call (no capabilities; seccomp refuses `pivot_root`).
    pub(crate) fn root(&self) -> Root<'_> {
        let opened = self.root.get_or_init(|| rustix::fs::openat(&self.dir, "root", DIR, Mode::empty()).ok());
        match opened {
            Some(fd) => Root { dir: fd.as_fd(), prefix: "." },
            None => Root { dir: self.dir.as_fd(), prefix: "root" },
        }
    }

    fn file(&self, what: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
        Ok(rustix::fs::openat(&self.dir, what, flags | OFlags::CLOEXEC, Mode::empty())?)
    }

    /// Reads its file `what` from the start until `enough` finds what it looks for in
    /// what was read (or the file, or `N` bytes, ends); `None` when unreadable.
    fn read_until<const N: usize, T>(&self, what: &str, enough: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
        let fd = self.file(what, OFlags::RDONLY).ok()?;
        let mut buf = [0u8; N];
        let mut n = 0;
        while n < buf.len() {
            match rustix::io::read(&fd, &mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return None,
            }
            if let Some(found) = enough(&buf[..n]) {
                return Some(found); // the rest is not needed
            }
        }
        enough(&buf[..n])
    }

    /// Its process: the task of its thread group leader (`Tgid` in its `status`), whose
    /// files `/proc/self` names for every thread of it.
    pub(crate) fn process(&self) -> Option<Task> {
        let tgid = self.read_until::<4096, _>("status", tgid_in_status)?;
        Task::open(tgid).ok()
    }

    /// Its parent's pid, from its `stat`; 0 when unreadable.
    pub(crate) fn ppid(&self) -> i32 {
        self.read_until::<1024, _>("stat", ppid_in_stat).unwrap_or(0)
    }
}

/// The `Tgid:` of a `status` file, once its line is whole (ended by a newline).
fn tgid_in_status(status: &[u8]) -> Option<u32> {
    let at = status.windows(6).position(|w| w == b"\nTgid:")? + 6;
    let line = &status[at..];
    let end = line.iter().position(|&b| b == b'\n')?;
    std::str::from_utf8(&line[..end]).ok()?.trim().parse().ok()
}

/// The 4th field of a `stat` line (after the name, which may hold spaces and parens), once
/// it is whole (followed by a space) in `stat`.
fn ppid_in_stat(stat: &[u8]) -> Option<i32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // ") S 123 ...": the state, then the parent's pid, whole once a space follows it
    let rest = stat[close + 1..].strip_prefix(b" ")?;
    let after_state = &rest[rest.iter().position(|&b| b == b' ')? + 1..];
    let end = after_state.iter().position(|&b| b == b' ')?;
    std::str::from_utf8(&after_state[..end]).ok()?.parse().ok()
}

/// Why a magic link (`cwd`, `fd/N`, `exe`) gives no live path in the view.
#[derive(Debug)]
pub(crate) enum Unlive {
    /// The link could not be read, or its file not looked at (`ENAMETOOLONG` for a path
    /// over PATH_MAX, `EACCES`, `ESRCH`).
    Unreadable(std::io::Error),
    /// Its text is no path in the view: a memfd, a pipe, a removed file (` (deleted)`).
    NoPath(PathBuf),
    /// Its text does not resolve in the view to a file of the kind needed.
    Unresolved(PathBuf, Unresolved),
    /// Its text names another file in the view than the link's own (a removed
    /// directory's old name taken by another, a file outside the view).
    Elsewhere(PathBuf),
}

impl Unlive {
    /// The link's text, when it could be read.
    pub(crate) fn text(&self) -> Option<&Path> {
        match self {
            Unlive::Unreadable(_) => None,
            Unlive::NoPath(t) | Unlive::Unresolved(t, _) | Unlive::Elsewhere(t) => Some(t),
        }
    }
}

impl std::fmt::Display for Unlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlive::Unreadable(e) => write!(f, "could not be read ({e})"),
            Unlive::NoPath(t) => write!(f, "has no path in the view ({})", t.display()),
            Unlive::Unresolved(t, why) => write!(f, "`{}` {}", t.display(), why.describe()),
            Unlive::Elsewhere(t) => {
                write!(f, "`{}` is not a live path in the view (its name now leads to another file)", t.display())
            }
        }
    }
}

/// The canonical path in the child's view of the file that `owner`'s magic link `link`
/// leads to, resolved in `task`'s root: the link's text, resolved there, must lead to the
/// very file the link holds (the same device and inode). The kernel uses that file (a
/// working directory, a descriptor), never what its old name names now: a removed
/// directory reads as `/p/a (deleted)`, and a symlink of that name would lead elsewhere.
pub(crate) fn live_path(task: &Task, owner: &Task, link: &str, kind: Kind) -> Result<PathBuf, Unlive> {
    let text = owner.link(link).map_err(Unlive::Unreadable)?;
    let b = text.as_os_str().as_bytes();
    if !text.is_absolute() || b.starts_with(b"/memfd:") || b.ends_with(b" (deleted)") {
        return Err(Unlive::NoPath(text));
    }
    let held = owner.identity(link).map_err(Unlive::Unreadable)?;
    let root = task.root();
    let path = match resolve::resolve_as(root, &text, kind) {
        Ok(p) => p,
        Err(why) => return Err(Unlive::Unresolved(text, why)),
    };
    match resolve::identity(root, &path) {
        Ok(id) if id == held => Ok(path),
        _ => Err(Unlive::Elsewhere(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::{live_path, ppid_in_stat, tgid_in_status, Kind, Task, Unlive};

    /// A working directory is known only as a live path in the view: a removed one (whose
    /// old name a symlink now takes) and one whose path is over PATH_MAX are refused, never
    /// taken from their text or guessed.
    #[test]
    fn a_working_directory_is_known_only_as_a_live_path() {
        let dir = std::env::temp_dir().join(format!("paddock-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["live", "dead", "elsewhere"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let dir = std::fs::canonicalize(&dir).unwrap();
        let sleep = |cwd: &std::path::Path| {
            std::process::Command::new("sleep").arg("30").current_dir(cwd).spawn().expect("sleep runs")
        };
        let cwd_of = |child: &std::process::Child| {
            let task = Task::open(child.id()).unwrap();
            live_path(&task, &task, "cwd", Kind::Directory)
        };
        let mut live = sleep(&dir.join("live"));
        let mut dead = sleep(&dir.join("dead"));
        std::fs::remove_dir(dir.join("dead")).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("dead (deleted)")).unwrap();
        // (A shell's `cd` takes the whole path once it is over PATH_MAX, and fails.)
        let deep_cwd =
            "import os, time\nfor _ in range(22):\n    os.mkdir('e' * 200); os.chdir('e' * 200)\ntime.sleep(30)";
        let mut deep = std::process::Command::new("python3")
            .args(["-c", deep_cwd])
            .current_dir(&dir)
            .spawn()
            .expect("python3 runs");
        assert_eq!(cwd_of(&live).ok(), Some(dir.join("live")));
        match cwd_of(&dead) {
            Err(Unlive::NoPath(t)) => assert_eq!(t, dir.join("dead (deleted)")),
            other => panic!("a removed working directory: {other:?}"),
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let too_long = loop {
            match cwd_of(&deep) {
                Err(Unlive::Unreadable(e)) => break e,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => panic!("a working directory over PATH_MAX: {other:?}"),
            }
        };
        assert_eq!(too_long.raw_os_error(), Some(libc::ENAMETOOLONG), "{too_long}");
        for c in [&mut live, &mut dead, &mut deep] {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ppid_from_stat_even_with_parens_in_the_name() {
        assert_eq!(ppid_in_stat(b"42 (a) b) c) S 7 42 42 0 -1"), Some(7));
        assert_eq!(ppid_in_stat(b"42 (sh) S 123"), None, "not known to be whole");
        assert_eq!(ppid_in_stat(b"42 (sh) S 123 "), Some(123));
        assert_eq!(ppid_in_stat(b"42 (sh"), None);
        let own = std::fs::read(format!("/proc/{}/stat", std::process::id())).unwrap();
        assert_eq!(ppid_in_stat(&own), Some(std::os::unix::process::parent_id() as i32));
    }

    #[test]
    fn a_threads_process_is_its_tgid() {
        assert_eq!(
            tgid_in_status(b"Name:\tx\nUmask:\t0022\nState:\tS\nTgid:\t4242\nNgid:\t0\nPid:\t4250\n"),
            Some(4242)
        );
        assert_eq!(tgid_in_status(b"Name:\tx\n"), None);
        // A thread of this process (not its leader): its process is this one.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        let me = std::process::id();
        assert_ne!(tid, me);
        let process = super::Task::open(tid).unwrap().process().expect("the process of a live thread");
        let status = std::fs::read_to_string(format!("/proc/{me}/status")).unwrap();
        let fd = process.file("status", rustix::fs::OFlags::RDONLY).unwrap();
        let mut buf = vec![0u8; 8192];
        let n = rustix::io::read(&fd, &mut buf).unwrap();
        let pid_line = |t: &str| t.lines().find(|l| l.starts_with("Pid:")).map(str::to_string);
        assert_eq!(pid_line(std::str::from_utf8(&buf[..n]).unwrap()), pid_line(&status));
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }
}
