//! seccomp user notification (`SECCOMP_FILTER_FLAG_NEW_LISTENER` and the
//! `SECCOMP_IOCTL_NOTIF_*` ioctls) and reading the notifying process: rustix has no
//! wrapper for these.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: installs `prog` on this thread (with
/// `no_new_privs` set, or `CAP_SYS_ADMIN`); with `SECCOMP_FILTER_FLAG_NEW_LISTENER` in
/// `flags`, the listener it returns.
pub(crate) fn seccomp_filter_listener(prog: &[libc::sock_filter], flags: libc::c_ulong) -> io::Result<OwnedFd> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // The kernel only reads the program (libc's type says `*mut`).
    let fprog = libc::sock_fprog { len, filter: prog.as_ptr().cast_mut() };
    // SAFETY: seccomp(SET_MODE_FILTER) reads `fprog`, which points to `prog` (of `len`
    // instructions), alive for the call, and writes nothing through it; it returns a new
    // descriptor (the listener) or -1.
    let r = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` of listener `fd` still waits
/// for an answer (its task is alive and still in the call).
pub(crate) fn notif_id_valid(fd: RawFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 that lives for the call.
    unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id as *const u64) == 0 }
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next notification of listener `fd` (blocks until there
/// is one; `ENOENT` when its task went away in between).
pub(crate) fn notif_recv(fd: RawFd) -> io::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed before RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV fills the struct, which lives for the call.
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req as *mut libc::seccomp_notif) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answers notification `id` of listener `fd`: `Ok` lets the
/// call continue (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), `Err(errno)` fails it with `errno`.
pub(crate) fn notif_send(fd: RawFd, id: u64, answer: Result<(), i32>) -> io::Result<()> {
    // SAFETY: seccomp_notif_resp is plain data.
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = id;
    match answer {
        Ok(()) => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Err(errno) => resp.error = -errno,
    }
    // SAFETY: SEND reads the struct, which lives for the call.
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp as *mut libc::seccomp_notif_resp) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel wakes the supervisor and
/// then the waiting task on the CPU that is about to sleep, instead of another one.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` on listener
/// `fd` (a scheduling hint: `EINVAL` on kernels without it).
pub(crate) fn notif_sync_wake_up(fd: RawFd) -> io::Result<()> {
    // SAFETY: the ioctl takes the flags by value and touches no memory of ours.
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `process_vm_readv(2)` of one range, for the supervisor to read a notifying process:
/// `buf.len()` bytes of process `pid` from `addr`; the bytes read (fewer when the range
/// runs into an unmapped page).
pub(crate) fn process_vm_read(pid: libc::pid_t, buf: &mut [u8], addr: u64) -> io::Result<usize> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    loop {
        // SAFETY: `local` describes `buf`, writable for its length for the whole call; the
        // remote range is only read (by the kernel, in the other process, checked there).
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
