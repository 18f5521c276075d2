//! Thin wrappers over the system calls the other modules share.
//!
//! Not a confinement layer: error conversion, C strings, raw reads and writes, `fork`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

mod conv;
mod cpus;
mod memory;
mod mount;
mod notify;
mod process;
mod spawn;

pub(crate) use conv::{cpath, cstring, cvt, cvt_long};
pub(crate) use cpus::Spread;
pub(crate) use memory::release_code;
pub use memory::RELEASE_CODE_AFTER;
pub(crate) use mount::*;
pub(crate) use notify::*;
pub(crate) use process::*;
pub(crate) use spawn::spawn_vfork;

/// `write(2)` of the whole buffer, retrying on `EINTR`.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes for the whole call.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `read(2)`, retrying on `EINTR`.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes for the whole call.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `fork(2)`: `Ok(0)` in the child, the child's pid in the parent.
///
/// # Safety
///
/// The calling process must be single-threaded (the helper, the reaper, a zygote, or a
/// caller whose [`thread_count`] is 1): after a fork of a multi-threaded
/// process the child may only call async-signal-safe functions, and everything the child
/// of this one does (allocate, format, take locks) assumes no other thread held a lock at
/// the time of the fork.
pub(crate) unsafe fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the caller guarantees this process is single-threaded (see `# Safety`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// [`fork`] into new namespaces: `clone(2)` with `flags` (`CLONE_NEW*`) and `SIGCHLD`, on
/// no stack of its own (the child runs on its copy of this one, as after `fork`). With
/// `CLONE_NEWPID` the child is pid 1 of a new pid namespace, which `unshare` cannot give
/// a process that already forked a child into one.
///
/// # Safety
///
/// As [`fork`]. And glibc's fork handlers do not run: the child's cached thread id is its
/// parent's, so it must not use what reads it (`raise`, `pthread_kill`, robust or
/// error-checking mutexes). Nothing this crate runs in such a child does; a `raise` would
/// miss and `abort` still ends the process.
pub(crate) unsafe fn fork_into(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: a raw clone without CLONE_VM or a new stack is a fork with namespace flags;
    // the caller guarantees this process is single-threaded (see `# Safety`).
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid as libc::pid_t)
    }
}

/// The number of threads of this process: the link count of `/proc/self/task`, which
/// procfs gives as 2 plus the threads (one `statx`, where `/proc/self/status`, read when
/// that count is not of that form, is a page of text the kernel writes out).
pub(crate) fn thread_count() -> Option<usize> {
    let by_links = rustix::fs::stat("/proc/self/task").ok().and_then(|st| (st.st_nlink as usize).checked_sub(2));
    by_links.filter(|n| *n > 0).or_else(threads_by_status)
}

/// `Threads:` in `/proc/self/status`.
fn threads_by_status() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// `pidfd_open(2)` of `pid` (a child of ours, or this process itself).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?)
}

/// `pidfd_send_signal(2)` of `sig` to the process `pidfd` refers to; whether the kernel
/// took it (not once the process has been reaped).
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> bool {
    rustix::process::Signal::from_named_raw(sig)
        .is_some_and(|sig| rustix::process::pidfd_send_signal(pidfd, sig).is_ok())
}

/// `timeout` as a `poll(2)` timespec (`None`: forever); seconds beyond `i64` are forever
/// too, never a wrapped, negative value.
fn timespec(timeout: Option<Duration>) -> Option<rustix::event::Timespec> {
    let d = timeout?;
    let tv_sec = i64::try_from(d.as_secs()).ok()?;
    Some(rustix::event::Timespec { tv_sec, tv_nsec: d.subsec_nanos().into() })
}

/// `poll(2)` of `fds` for at most `timeout` (`None`: forever): how many are ready. `EINTR`
/// is returned (as `ErrorKind::Interrupted`) so the caller can recompute its timeout.
pub(crate) fn poll(fds: &mut [rustix::event::PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    Ok(rustix::event::poll(fds, timespec(timeout).as_ref())?)
}

/// `poll(2)` of raw entries, for at most `timeout_ms` (-1: forever): how many are ready.
/// For descriptors the caller holds as raw numbers, and entries of -1 (ignored by the
/// kernel), which rustix's `PollFd` (a borrowed descriptor) cannot hold. `EINTR` is
/// returned as `ErrorKind::Interrupted`.
pub(crate) fn poll_raw(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `fds` is a valid, writable slice of `n` pollfd entries for the whole call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// The Landlock ABI version of the running kernel (`landlock_create_ruleset` with the
/// VERSION flag): 0 when unsupported or disabled.
pub(crate) fn landlock_abi_version() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attr, size 0 and the VERSION flag, the call only returns a number.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    r.max(0)
}

/// Sets the flags `IFF_UP | IFF_RUNNING` on the interface `name` (as `ip link set NAME
/// up`), with the classic `SIOCGIFFLAGS`/`SIOCSIFFLAGS` ioctls on `sock` (any socket of
/// the network namespace; `CAP_NET_ADMIN` there).
pub(crate) fn set_link_up(sock: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = name.to_bytes_with_nul();
    if name.len() > req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface named in `req` and fills ifru_flags.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: ifru_flags is the union member SIOCGIFFLAGS just filled.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req` (name and flags).
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// Waits until `fd` is readable or `timeout` passes (`None`: forever). True when readable
/// (or hung up).
pub(crate) fn poll_in(fd: &impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let mut p = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    loop {
        match poll(&mut p, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `waitpid(2)` of our child `pid`, retrying on `EINTR`: its wait status, `None` if it
/// cannot be reaped (not our child, or already reaped).
pub(crate) fn reap(pid: libc::pid_t) -> Option<i32> {
    let mut ws = 0;
    loop {
        // SAFETY: reaping our own child into a valid int.
        let r = unsafe { libc::waitpid(pid, &mut ws, 0) };
        if r == pid {
            return Some(ws);
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
}

/// Reaps our child `pid` if it has ended; its wait status then.
pub(crate) fn try_reap(pid: libc::pid_t) -> Option<i32> {
    let mut ws = 0;
    // SAFETY: reaping our own child into a valid int, without blocking.
    let r = unsafe { libc::waitpid(pid, &mut ws, libc::WNOHANG) };
    (r == pid).then_some(ws)
}

/// Reaps every child that has ended; whether none is left (`ECHILD`): in a pid
/// namespace's init, that no other process of the namespace is there.
pub(crate) fn no_child_left() -> bool {
    let mut ws = 0;
    loop {
        // SAFETY: reaping any child into a valid int, without blocking.
        let r = unsafe { libc::waitpid(-1, &mut ws, libc::WNOHANG) };
        match r {
            0 => return false,
            r if r > 0 => continue,
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                e => return e == Some(libc::ECHILD),
            },
        }
    }
}

/// Waits for our child `pid` for at most `limit`; its wait status if it ended.
pub(crate) fn wait_for(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    if let Ok(fd) = pidfd_open(pid) {
        if !poll_in(&fd, Some(limit)).unwrap_or(false) {
            return None;
        }
    }
    reap(pid)
}

/// `SIGKILL` to our child `pid`, then reaps it.
pub(crate) fn kill_and_reap(pid: libc::pid_t) {
    kill(pid, libc::SIGKILL);
    reap(pid);
}

/// `close_range(2)` of `first..=last` (nothing when `first > last`).
///
/// Precondition: nothing in this process uses a descriptor of the range afterwards (an
/// `OwnedFd` of one would close a number that may be reused).
pub(crate) fn close_range(first: u32, last: u32) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range only closes descriptors of this process; the caller guarantees
    // that none of them is used afterwards.
    cvt_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
}

/// Closes every descriptor above 2 but those of `keep` (sorted here), with
/// [`close_range`]; a kernel without it leaves them (the target's `fds` step closes what
/// is left before `execve` and reports it if it cannot).
///
/// Precondition: as [`close_range`]'s, for every descriptor closed.
pub(crate) fn close_all_above_stdio_but(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut first = 3u32;
    for &fd in keep.iter().filter(|fd| **fd >= 3) {
        let fd = fd as u32;
        if fd > first {
            let _ = close_range(first, fd - 1);
        }
        first = first.max(fd + 1);
    }
    let _ = close_range(first, u32::MAX);
}

/// `_exit(2)`: leaves without running destructors or atexit handlers (inherited state such
/// as buffered output must not be flushed twice after a fork).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// `prctl(2)` with integer arguments.
pub(crate) fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: every caller passes an option whose arguments are plain integers (no pointers).
    cvt(unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

/// Opens `/dev/null` read-write, close-on-exec.
pub(crate) fn open_dev_null() -> io::Result<RawFd> {
    // SAFETY: the path is a valid NUL-terminated string literal.
    cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
}

/// Points descriptors 0, 1 and 2 at `fd`.
pub(crate) fn redirect_stdio(fd: RawFd) {
    for target in 0..3 {
        // SAFETY: dup2 on descriptors this process owns; failure leaves the old descriptor.
        unsafe { libc::dup2(fd, target) };
    }
}

/// `openat(2)` of `name` relative to `dir`, close-on-exec. `name` is one path component
/// (or `.`) whenever the caller must not resolve symlinks: pass `O_NOFOLLOW` then.
pub(crate) fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let flags = rustix::fs::OFlags::from_bits_retain(flags as _) | rustix::fs::OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, rustix::fs::Mode::empty())?)
}

/// `openat2(2)` with `RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH`:
/// `path` (relative) resolves beneath `dir` without following any symlink.
pub(crate) fn openat_beneath(dir: BorrowedFd<'_>, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::BENEATH;
    openat2(dir, path, flags, resolve)
}

/// `openat2(2)` of `path` relative to `dir` with `flags` (close-on-exec added) and `resolve`.
fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    resolve: rustix::fs::ResolveFlags,
) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::from_bits_retain(flags as _) | OFlags::CLOEXEC;
    Ok(rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve)?)
}

/// Whether something is at `path` (absolute, its last component not followed) in the tree
/// whose root is `root`: looked up with `openat2(2)` and `RESOLVE_IN_ROOT`, so an absolute
/// symlink on the way resolves beneath `root`, as it does for the processes rooted there.
/// Only `ENOENT` and `ENOTDIR` say no; any other failure to look says yes.
pub(crate) fn present_in_root(root: BorrowedFd<'_>, path: &std::path::Path) -> bool {
    use rustix::fs::ResolveFlags;
    let rel = path.strip_prefix("/").unwrap_or(path);
    let Ok(rel) = cpath(if rel.as_os_str().is_empty() { std::path::Path::new(".") } else { rel }) else {
        return true;
    };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    match openat2(root, &rel, libc::O_PATH | libc::O_NOFOLLOW, resolve) {
        Ok(_) => true,
        Err(e) => !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)),
    }
}

/// Device and inode of `path` looked up beneath `root` as if it were `/` (a symlink on the
/// way resolved within it, the last one followed); `None` when it is not there.
pub(crate) fn identity_in_root(root: BorrowedFd<'_>, path: &std::path::Path) -> Option<(u64, u64)> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = cpath(if rel.as_os_str().is_empty() { std::path::Path::new(".") } else { rel }).ok()?;
    let fd = openat_in_root(root, &rel).ok()?;
    let st = fstat(fd.as_fd()).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// `rel` opened `O_PATH` beneath `root` as if it were `/` (a symlink on the way resolved
/// within it, the last one followed).
pub(crate) fn openat_in_root(root: BorrowedFd<'_>, rel: &CStr) -> io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let rel = if rel.is_empty() { c"." } else { rel };
    openat2(root, rel, libc::O_PATH, ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
}

/// `fstat(2)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a valid buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `fstatat(2)` of `path` relative to `dir`, not following a final symlink (an
/// intermediate one is followed: callers compare the inode they get with the one expected).
pub(crate) fn lstatat(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, a NUL-terminated path and a valid buffer.
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), path.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// The filesystem type (`f_type` of `fstatfs(2)`) of what `fd` refers to.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    Ok(rustix::fs::fstatfs(fd)?.f_type as i64)
}

/// Whether the object open at `fd` is encrypted (fscrypt: `STATX_ATTR_ENCRYPTED`). Adding
/// or removing an encrypted directory's key changes the names it lists with no inotify
/// event and no change of its ctime or mtime, so no listing of one is kept.
pub fn encrypted(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = rustix::fs::statx(fd, "", rustix::fs::AtFlags::EMPTY_PATH, rustix::fs::StatxFlags::empty())?;
    Ok(st.stx_attributes.contains(rustix::fs::StatxAttributes::ENCRYPTED))
}

/// Whether this process may search (`X_OK`, effective ids) the directory `dir`.
pub(crate) fn can_search(dir: BorrowedFd<'_>) -> bool {
    rustix::fs::accessat(dir, c".", rustix::fs::Access::EXEC_OK, rustix::fs::AtFlags::EACCESS).is_ok()
}

/// `lseek(fd, 0, SEEK_SET)`: rewinds a directory for another `getdents64`.
pub(crate) fn rewind(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0))?;
    Ok(())
}

/// `getdents64(2)` into `buf`: the number of bytes filled, 0 at the end.
pub(crate) fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    cvt_long(n).map(|n| n as usize)
}

/// `open(2)` of an absolute `path` (or relative to the working directory), close-on-exec.
pub(crate) fn openat_cwd(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat(rustix::fs::CWD, path, flags)
}

/// Runs `f` in a forked child and returns its exit code (`f`'s answer; 99 for any other
/// end). `f` makes system calls and may allocate (glibc's `fork` leaves the allocator
/// usable in the child), and takes no lock another thread of the test process may hold.
#[cfg(test)]
pub(crate) fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `f` under the terms above and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = f();
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        99
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count by `/proc/self/task`'s links is the process's own, one thread or more: a
    /// forked child of the test process has one thread, then one more per thread it starts.
    #[test]
    fn thread_count_counts_this_process_threads() {
        let code = in_child(|| {
            if thread_count() != Some(1) {
                return 1;
            }
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let rx = std::sync::Arc::clone(&rx);
                    std::thread::spawn(move || drop(rx.lock().map(|r| r.recv())))
                })
                .collect();
            let (counted, four) = (thread_count(), threads_by_status() == Some(4));
            drop(tx);
            threads.into_iter().for_each(|t| drop(t.join()));
            match (counted, four) {
                (Some(4), true) => 0,
                (_, false) => 2,
                _ => 3,
            }
        });
        assert_eq!(code, 0, "1: not one thread in a fresh child, 2: the status disagrees, 3: the count is wrong");
    }
}
