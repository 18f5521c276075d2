//! The supervisor's side: one thread per call that answers every exec notification of its
//! tree ([`supervise`]).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::event::{PollFd, PollFlags};

use super::memory::ChildMem;
use super::resolve::{self, Kind, Unresolved};
use super::script;
use super::task::{live_path, Task, Unlive};
use super::{ExecDecider, ExecListener, ExecRequest, ExecVerdict};
use crate::sys;

/// The running supervisor of one call; [`ExecSupervisor::stop`] (or dropping it) ends it.
/// While it runs, each exec of the tree waits for its decider; once it is gone, every
/// later exec of the tree fails (`ENOSYS`): never unsupervised.
pub struct ExecSupervisor {
    stop: Option<OwnedFd>,
    thread: Option<crate::workers::Job<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ExecSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSupervisor").finish_non_exhaustive()
    }
}

/// What the supervisor's thread and the caller share.
struct Shared {
    listener: OwnedFd,
    decider: Arc<dyn ExecDecider>,
    first: Mutex<First>,
}

/// The program's own exec, the tree's first: read and resolved at once, answered once the
/// child is released, by whichever thread comes first to it.
enum First {
    /// Not read yet (the supervisor then answers it after the release, as any other).
    NotRead,
    /// Read ([`read_request`]'s answer), waiting for the release.
    Read { id: u64, read: Option<(ExecRequest, bool)> },
    /// Answered, or taken to be.
    Answered,
}

/// Starts the thread that answers the notifications of `listener` (from
/// [`crate::Running::take_exec_listener`]) with `decider`'s verdicts. The first one (the
/// program's own exec) is read at once and answered once the child is released: by
/// [`ExecSupervisor::answer_first`] on the caller's thread, or by this thread after the
/// release.
pub fn supervise(listener: ExecListener, decider: Arc<dyn ExecDecider>) -> std::io::Result<ExecSupervisor> {
    // Each exec hands the CPU to the supervisor and back: on the same CPU, without waking
    // another one, where the kernel can (Linux 6.6).
    if let Err(e) = sys::notif_sync_wake_up(listener.fd.as_raw_fd()) {
        tracing::debug!("exec supervisor: no synchronous wake-up ({e}); answers take a cross-CPU wake-up");
    }
    let (stop_r, stop_w) = crate::stdio::pipe()?;
    let ExecListener { fd, release } = listener;
    let shared = Arc::new(Shared { listener: fd, decider, first: Mutex::new(First::NotRead) });
    let for_thread = Arc::clone(&shared);
    let thread = crate::workers::spawn(c"paddock-exec", move || serve(&for_thread, Some(release), &stop_r))?;
    Ok(ExecSupervisor { stop: Some(stop_w), thread: Some(thread), shared })
}

impl Shared {
    fn first(&self) -> std::sync::MutexGuard<'_, First> {
        self.first.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ExecSupervisor {
    /// Answers the program's own exec here, on the caller's thread, when the supervisor
    /// has read it already (else it answers it itself after the release). Call it only
    /// where [`crate::Running::wait`] may release the child (its `call.start` durable),
    /// just before that: the exec is decided and recorded, and runs, at once, without
    /// waiting for the supervisor's thread to wake up. The release still follows.
    pub fn answer_first(&self) {
        let mut first = self.shared.first();
        if !matches!(*first, First::Read { .. }) {
            tracing::debug!("exec supervisor: the program's own exec is not read yet; the supervisor answers it");
            return;
        }
        if let First::Read { id, read } = std::mem::replace(&mut *first, First::Answered) {
            let t = std::time::Instant::now();
            answer(self.shared.listener.as_raw_fd(), id, read, &*self.shared.decider);
            crate::timing::phase("the program's own exec answered on the caller's thread", t);
        }
    }

    /// Stops the thread once the notifications already queued are answered (call it after
    /// the tree is gone, so that every exec is decided and recorded before the call ends).
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.stop.take()); // the thread sees the hang-up
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the exec supervisor panicked; the tree's later execs failed");
            }
        }
    }
}

impl Drop for ExecSupervisor {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Answers each notification of the listener until it hangs up or `stop` does; `release`:
/// the child is not released yet (its first exec is answered only once it is).
fn serve(shared: &Shared, mut release: Option<OwnedFd>, stop: &OwnedFd) {
    let listener = &shared.listener;
    loop {
        let mut fds = [PollFd::new(listener, PollFlags::IN), PollFd::new(stop, PollFlags::IN)];
        match sys::poll(&mut fds, None) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("exec supervisor: poll failed: {e}");
                return;
            }
        }
        let (listening, stopping) = (fds[0].revents(), fds[1].revents());
        if listening.contains(PollFlags::IN) {
            if !answer_one(shared, &mut release, stop) {
                return;
            }
            continue; // drain what is queued before looking at the stop pipe
        }
        if listening.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) || !stopping.is_empty() {
            return;
        }
    }
}

fn id_valid(fd: RawFd, id: u64) -> bool {
    sys::notif_id_valid(fd, id)
}

/// Reads, decides and answers one notification; `false` when the child was never
/// released (this supervisor then answers nothing more: its tree is being killed, and its
/// execs fail once the listener is closed).
fn answer_one(shared: &Shared, release: &mut Option<OwnedFd>, stop: &OwnedFd) -> bool {
    let fd = shared.listener.as_raw_fd();
    let Ok(req) = sys::notif_recv(fd) else {
        // ENOENT: the task was killed or its call interrupted in between; nothing to answer.
        return true;
    };
    let read = read_request(fd, &req);
    // Read and resolved while the caller records the call; decided (and so recorded) and
    // answered only after that: by the caller's thread as it releases the child
    // (`ExecSupervisor::answer_first`), or here after the release.
    if let Some(r) = release.take() {
        *shared.first() = First::Read { id: req.id, read };
        if !released(&r, stop) {
            return false;
        }
        if let First::Read { id, read } = std::mem::replace(&mut *shared.first(), First::Answered) {
            answer(fd, id, read, &*shared.decider);
        }
        return true;
    }
    answer(fd, req.id, read, &*shared.decider);
    true
}

/// Decides and answers the notification `id`, as [`read_request`] read it.
fn answer(fd: RawFd, id: u64, read: Option<(ExecRequest, bool)>, decider: &dyn ExecDecider) {
    let answer = match read {
        // Nothing there: the kernel's own answer, without running anything.
        Some((_, true)) => Err(libc::ENOENT),
        Some((exec, false)) => match decider.decide(&exec) {
            ExecVerdict::Allow => Ok(()),
            ExecVerdict::Deny => Err(libc::EACCES),
        },
        None => return, // the notification is no longer valid: the task is gone
    };
    if let Err(e) = sys::notif_send(fd, id, answer) {
        tracing::debug!("exec supervisor: answer not delivered: {e}");
    }
}

/// Waits for the caller's release of the child: its byte on `release` (`true`), or the
/// end of that stream or of `stop` without it (`false`).
fn released(release: &OwnedFd, stop: &OwnedFd) -> bool {
    loop {
        let mut fds = [PollFd::new(release, PollFlags::IN), PollFd::new(stop, PollFlags::IN)];
        match sys::poll(&mut fds, None) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
        if !fds[0].revents().is_empty() {
            let mut byte = [0u8; 1];
            return matches!(sys::read(release.as_raw_fd(), &mut byte), Ok(1));
        }
        if !fds[1].revents().is_empty() {
            return false;
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads and resolves one exec; `None` when the notification went stale (checked after
/// the task's directory is opened and again after everything is read: still valid then,
/// the task was alive and waiting all along, so what was read by its pid is its own, not a
/// recycled pid's).
/// The bool: the path names nothing in the child's view (answered `ENOENT`).
fn read_request(fd: RawFd, req: &libc::seccomp_notif) -> Option<(ExecRequest, bool)> {
    let pid = req.pid;
    let a = req.data.args;
    let is_execve = i64::from(req.data.nr) == libc::SYS_execve;
    let (syscall, dirfd, path_ptr, argv_ptr, flags) = if is_execve {
        ("execve", libc::AT_FDCWD, a[0], a[1], 0)
    } else {
        ("execveat", a[0] as i32, a[1], a[2], a[4] as i32)
    };
    let task = Task::open(pid);
    if !id_valid(fd, req.id) {
        return None;
    }
    let mut exec = ExecRequest {
        pid: pid as i32,
        ppid: task.as_ref().map_or(0, Task::ppid),
        syscall,
        path: String::new(),
        program: None,
        interpreters: Vec::new(),
        problem: None,
        argv: Vec::new(),
        argv_truncated: false,
        argv_lossy: false,
        cwd: PathBuf::new(),
    };
    // The working directory the kernel resolves a relative path (and a relative `#!`
    // interpreter) from: known only as a live path in the view, the task's very directory.
    // Anything else (unreadable, longer than PATH_MAX, removed, renamed over) refuses the
    // exec: never a guess such as `/`.
    let cwd = match &task {
        Ok(t) => match live_path(t, t, "cwd", Kind::Directory) {
            Ok(c) => {
                exec.cwd = c.clone();
                Some(c)
            }
            Err(e) => {
                exec.cwd = e.text().map(PathBuf::from).unwrap_or_default();
                note(&mut exec, format!("its working directory {e}"));
                None
            }
        },
        Err(_) => None, // said below
    };
    let mem = match &task {
        Ok(t) => Ok(ChildMem::new(pid as libc::pid_t, t.dir.as_fd())),
        Err(e) => Err(e),
    };
    let path_bytes = match mem {
        Ok(mut mem) => match mem.string(path_ptr, libc::PATH_MAX as usize) {
            Ok(p) => match mem.string_array(argv_ptr) {
                Ok((argv, complete)) => {
                    exec.argv = argv.iter().map(|b| lossy(b)).collect();
                    exec.argv_lossy = argv.iter().any(|b| std::str::from_utf8(b).is_err());
                    exec.argv_truncated = !complete;
                    if !p.complete {
                        note(&mut exec, "the path is longer than PATH_MAX or unreadable".into());
                    }
                    p.complete.then_some(p.bytes)
                }
                Err(e) => {
                    note(&mut exec, format!("the exec's arguments could not be read: {e}"));
                    None
                }
            },
            Err(e) => {
                note(&mut exec, format!("the exec's arguments could not be read: {e}"));
                None
            }
        },
        Err(e) => {
            note(&mut exec, format!("the process's memory could not be opened: {e}"));
            None
        }
    };
    let mut not_found = false;
    if let Some(p) = &path_bytes {
        exec.path = lossy(p);
        match &task {
            Ok(task) => not_found = resolve_program(&mut exec, task, p, dirfd, flags, cwd.as_deref()),
            Err(e) => note(&mut exec, format!("the process's files could not be opened: {e}")),
        }
    }
    if !id_valid(fd, req.id) {
        return None;
    }
    Some((exec, not_found))
}

/// Adds `problem` to the exec's problems (each one refuses it where rules decide).
fn note(exec: &mut ExecRequest, problem: String) {
    exec.problem = Some(match exec.problem.take() {
        Some(earlier) => format!("{earlier}; {problem}"),
        None => problem,
    });
}

/// The name the kernel gives a script's first interpreter (`bprm->filename`): the path as
/// passed when it is absolute or taken from the working directory, else `/dev/fd/N` or
/// `/dev/fd/N/PATH`.
fn kernel_filename(path: &[u8], dirfd: i32) -> String {
    if dirfd == libc::AT_FDCWD || path.starts_with(b"/") {
        lossy(path)
    } else if path.is_empty() {
        format!("/dev/fd/{dirfd}")
    } else {
        format!("/dev/fd/{dirfd}/{}", lossy(path))
    }
}

/// Fills `program`, `interpreters` or `problem`; true when the path names nothing.
fn resolve_program(
    exec: &mut ExecRequest,
    task: &Task,
    path: &[u8],
    dirfd: i32,
    flags: i32,
    cwd: Option<&Path>,
) -> bool {
    let root = task.root();
    let fileless = |e: Unlive| format!("a descriptor with no live path in the view (fileless exec): it {e}");
    let program = if path.is_empty() {
        if flags & libc::AT_EMPTY_PATH == 0 || dirfd == libc::AT_FDCWD {
            note(exec, "an empty path".into());
            return false;
        }
        match live_path(task, task, &format!("fd/{dirfd}"), Kind::File) {
            Ok(p) => p,
            Err(e) => {
                note(exec, fileless(e));
                return false;
            }
        }
    } else if let Some((whose, own)) = own_magic_link(path) {
        // `/proc/self/exe`, `/proc/self/fd/N`, `/dev/fd/N`: the caller's own file, which the
        // kernel reaches through the magic link; decided as that file (or refused when it
        // has no path: a memfd, a deleted file). `/proc/self` is the process's (its
        // leader's descriptors), not the calling thread's, which may have a table of its own.
        let process;
        let owner = match whose {
            Whose::Thread => task,
            Whose::Process => match task.process() {
                Some(p) => {
                    process = p;
                    &process
                }
                None => {
                    note(exec, "a descriptor of a process whose files could not be opened".into());
                    return false;
                }
            },
        };
        match live_path(task, owner, &own, Kind::File) {
            Ok(p) => p,
            Err(e) => {
                note(exec, fileless(e));
                return false;
            }
        }
    } else {
        let target = Path::new(std::ffi::OsStr::from_bytes(path));
        let base: PathBuf = if target.is_absolute() {
            PathBuf::from("/")
        } else if dirfd == libc::AT_FDCWD {
            match cwd {
                Some(c) => c.to_path_buf(),
                None => {
                    note(exec, "a relative path, and no live working directory to take it from".into());
                    return false;
                }
            }
        } else {
            match live_path(task, task, &format!("fd/{dirfd}"), Kind::Directory) {
                Ok(d) => d,
                Err(e) => {
                    note(exec, format!("a path relative to a directory descriptor that {e}"));
                    return false;
                }
            }
        };
        match resolve::resolve(root, &base, target) {
            Ok(p) => p,
            Err(Unresolved::NotFound) => return true,
            Err(e) => {
                note(exec, e.describe().to_string());
                return false;
            }
        }
    };
    // Every interpreter the kernel will run for a script, with the argv it gives each.
    match script::chain(root, &program, &kernel_filename(path, dirfd), &exec.argv, cwd) {
        Ok(levels) => exec.interpreters = levels,
        Err(e) => note(exec, e.to_string()),
    }
    exec.program = Some(program);
    false
}

/// `exe` or `fd/N` for a path that names the calling process's own executable or
/// descriptor through a magic link (`/proc/self/exe`, `/proc/thread-self/fd/3`,
/// `/dev/fd/3`); `None` for any other path.
fn own_magic_link(path: &[u8]) -> Option<(Whose, String)> {
    let s = std::str::from_utf8(path).ok()?;
    let (whose, rest) = match s.strip_prefix("/proc/thread-self/") {
        Some(rest) => (Whose::Thread, rest.to_string()),
        None => (
            Whose::Process,
            s.strip_prefix("/proc/self/")
                .map(str::to_string)
                .or_else(|| s.strip_prefix("/dev/fd/").map(|n| format!("fd/{n}")))?,
        ),
    };
    let ok = rest == "exe"
        || rest.strip_prefix("fd/").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some((whose, rest))
}

/// Whose files a magic link names, as the kernel resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    /// `/proc/self` (and `/dev/fd`, a link to `/proc/self/fd`): the process's, through its
    /// thread group leader (the descriptor table of the leader, whichever thread calls).
    Process,
    /// `/proc/thread-self`: the calling thread's own.
    Thread,
}

#[cfg(test)]
mod tests {
    use super::{own_magic_link, Whose};

    #[test]
    fn own_magic_links_are_recognised() {
        let own = |p: &[u8]| own_magic_link(p).map(|(w, r)| (w, r.to_string()));
        assert_eq!(own(b"/proc/self/exe"), Some((Whose::Process, "exe".into())));
        assert_eq!(own(b"/proc/thread-self/fd/3"), Some((Whose::Thread, "fd/3".into())));
        assert_eq!(own(b"/dev/fd/12"), Some((Whose::Process, "fd/12".into())));
        assert_eq!(own_magic_link(b"/proc/self/root/usr/bin/id"), None);
        assert_eq!(own_magic_link(b"/proc/self/fd/"), None);
        assert_eq!(own_magic_link(b"/usr/bin/id"), None);
    }
}
