//! Process calls: sessions, ids, namespaces, signals, waiting, descriptors 0 to 2, `execve`.
//! rustix where it has the call; the raw rest (process-wide `setgroups`, `signal`,
//! `waitpid(-1)`, `close` of a raw descriptor, `execve`) each states its precondition.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, RawFd};

use rustix::process::{Pid, Signal};

/// `setsid(2)`: a new session without a controlling terminal.
pub(crate) fn setsid() -> io::Result<()> {
    rustix::process::setsid().map(drop).map_err(Into::into)
}

/// `setpgid(0, 0)`: a process group of its own, in the same session.
pub(crate) fn new_process_group() -> io::Result<()> {
    rustix::process::setpgid(None, None).map_err(Into::into)
}

/// This process's pid.
pub(crate) fn getpid() -> libc::pid_t {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The real uid and gid of this process.
pub(crate) fn ids() -> (libc::uid_t, libc::gid_t) {
    (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw())
}

/// Whether this process holds no supplementary group (`getgroups(2)` lists none): root
/// entering a user namespace without [`drop_supplementary_groups`] first then keeps none.
/// `false` when it cannot be told.
pub(crate) fn no_supplementary_groups() -> bool {
    rustix::process::getgroups().is_ok_and(|g| g.is_empty())
}

/// `setgroups(0, NULL)`: drops every supplementary group (of every thread: the libc call,
/// not the per-thread system call). Whether it worked.
pub(crate) fn drop_supplementary_groups() -> bool {
    // SAFETY: an empty list; no pointer is read when the size is 0.
    unsafe { libc::setgroups(0, std::ptr::null()) == 0 }
}

/// Every `CLONE_NEW*` namespace flag, the only ones [`unshare`] passes on.
const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

/// `unshare(2)` of the `CLONE_NEW*` namespaces in `flags` (any other flag is refused,
/// `EINVAL`). A new user namespace needs a single-threaded caller: the kernel refuses
/// otherwise (`EINVAL`).
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    if flags & !NAMESPACES != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = rustix::thread::UnshareFlags::from_bits_retain(flags as _);
    // SAFETY: only namespace flags (checked above): no CLONE_FILES, so no descriptor this
    // process holds changes meaning, which is what makes the call unsafe in general.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

/// `kill(2)` of `sig` to our child `pid` (unreaped, so its pid cannot have been reused).
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) -> bool {
    match (Pid::from_raw(pid), Signal::from_named_raw(sig)) {
        (Some(pid), Some(sig)) => rustix::process::kill_process(pid, sig).is_ok(),
        _ => false,
    }
}

/// `shutdown(SHUT_RDWR)` of a socket: the peer sees the hang-up though other holders of
/// the socket keep it open.
pub(crate) fn shutdown(sock: impl AsFd) {
    // A socket already shut down or disconnected: nothing left to tell.
    let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Both);
}

/// `dup2(fd, target)` for a standard descriptor (`target` 0, 1 or 2; `fd` above 2).
pub(crate) fn dup_onto_stdio(fd: impl AsFd, target: RawFd) -> io::Result<()> {
    let r = match target {
        0 => rustix::stdio::dup2_stdin(fd),
        1 => rustix::stdio::dup2_stdout(fd),
        2 => rustix::stdio::dup2_stderr(fd),
        _ => return Err(io::ErrorKind::InvalidInput.into()),
    };
    r.map_err(Into::into)
}

/// `close(2)` of a raw descriptor.
///
/// Precondition: this process owns `fd` and nothing uses it afterwards (no `OwnedFd` of it
/// is dropped later): callers pass descriptors they hold as plain numbers.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again (see the precondition).
    unsafe { libc::close(fd) };
}

/// Marks the raw descriptor `fd` (one this process holds as a number, like the control
/// socket) close-on-exec.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD takes an int flag; on a descriptor that is not open it fails (EBADF).
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIGCHLD` ignored (`true`: children are reaped by the kernel) or back to the default.
pub(crate) fn ignore_sigchld(ignore: bool) {
    let disposition = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: SIG_IGN and SIG_DFL install no handler, so no code of ours runs on a signal.
    unsafe { libc::signal(libc::SIGCHLD, disposition) };
}

/// The name of this thread (and so of a single-threaded process) in `ps`, at most 15 bytes.
pub(crate) fn set_name(name: &CStr) {
    // Cosmetic: a process without its name is no less confined.
    let _ = rustix::thread::set_name(name);
}

/// `waitpid(-1)`: the pid and raw wait status of the next child that ends.
pub(crate) fn wait_any() -> io::Result<(libc::pid_t, i32)> {
    let mut ws = 0;
    // SAFETY: waiting for any child into a valid int.
    let pid = unsafe { libc::waitpid(-1, &mut ws, 0) };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((pid, ws))
    }
}

/// `execve(2)`; returns only on failure, with its error.
///
/// # Safety
///
/// `argv` and `envp` must each end with a null pointer, and every other pointer in them
/// must point to a NUL-terminated string that stays alive for the call.
pub(crate) unsafe fn execve(program: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> io::Error {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: the caller guarantees null-terminated arrays of live C strings; `program`
    // is a C string that outlives the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}
