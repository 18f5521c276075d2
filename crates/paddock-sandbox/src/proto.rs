//! The control channel between the parent and the helper side (the "status pipe").
//!
//! A `SOCK_SEQPACKET` unix socketpair: one message per datagram, JSON, with descriptors
//! (the reaper's pidfd, the proxy listener, the pty master) passed as `SCM_RIGHTS`. Upward: `Reaper`, `Pty`,
//! `Ready` (the report, just before `execve`), `Failed`, `ExecFailed`, `Exit`,
//! `ReaperLost`. Downward: one byte, [`GO`], that releases the target into `execve`.
//! A zygote ([`crate::Zygote`]) has a socket of its own: downward `Spawn` (the call's own
//! control socket and stdio attached), upward `ZygoteReady` once; each call's helper
//! then speaks on the call's socket as above, starting with `CallHelper`.
//! The helper and the reaper never read the socket, they only poll it for hang-up.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::report::{EnforcementReport, LayerState};
use crate::spec::SandboxSpec;
use crate::sys::cvt;

/// The byte that releases the target into `execve`.
pub(crate) const GO: u8 = b'g';

const MAX_MSG: usize = 1 << 20;

/// A message from the helper side to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Msg {
    /// From the helper: the reaper exists; descriptors: its pidfd, then the proxy listener
    /// when `listener` is true.
    Reaper {
        /// A proxy listener follows the pidfd.
        listener: bool,
    },
    /// From the reaper: the master of the pty it opened in the sandbox's own devpts
    /// (descriptor attached).
    Pty,
    /// From the target: every layer is in place; `execve` follows the parent's [`GO`].
    Ready {
        /// The complete report.
        report: EnforcementReport,
    },
    /// Setup failed. `layer` is set when a strict run met an unavailable layer.
    Failed {
        /// The missing layer (strict mode), if that was the reason.
        layer: Option<String>,
        /// What went wrong.
        detail: String,
    },
    /// From the target: `execve` failed with this errno.
    ExecFailed {
        /// errno.
        errno: i32,
    },
    /// From the reaper: the target ended with this wait status.
    Exit {
        /// Raw wait status.
        wstatus: i32,
    },
    /// From the helper: the reaper ended without reporting (wait status of the reaper).
    ReaperLost {
        /// Raw wait status of the reaper.
        wstatus: i32,
    },
    /// From a zygote: its namespaces and mount view are in place (the report of those
    /// layers).
    ZygoteReady {
        /// The layers the zygote applied.
        report: EnforcementReport,
        /// The mount view was built (else Landlock alone guards the filesystem).
        mounts_ok: bool,
        /// The view has a private `/tmp` (remounted fresh for each call).
        private_tmp: bool,
    },
    /// Downward, to a zygote: start one call. Descriptors: the call's control socket,
    /// then its stdin, stdout, stderr, then `cgroup.procs` and parent of each directory of
    /// its cgroup.
    Spawn {
        /// The call (its filesystem fields are the zygote's).
        spec: Box<SandboxSpec>,
        /// The cgroup layer's status, decided by the caller that made the cgroup.
        cgroup: (LayerState, String),
        /// The names of the cgroup's directories (descriptors: `cgroup.procs` and parent
        /// of each).
        #[serde(default)]
        cgroup_dirs: Vec<String>,
    },
    /// From the helper, last: the reaper is reaped, so every process of the pid namespace
    /// is gone (and the one-shot helper's cgroup removed). The helper exits next; its own
    /// namespaces' teardown need not delay the caller.
    Done,
    /// From a zygote's per-call helper: its own pidfd (descriptor attached), so the caller
    /// can kill it although it is not the caller's child.
    CallHelper,
    /// From the target (exec supervision, issue 16): the seccomp listener of its execs
    /// (descriptor attached), before `Ready`.
    ExecListener,
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: the kernel just returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message with optional descriptors.
pub(crate) fn send(sock: RawFd, msg: &Msg, fds: &[RawFd]) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    send_raw(sock, &body, fds)
}

/// Sends one datagram with optional descriptors.
pub(crate) fn send_raw(sock: RawFd, body: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec { iov_base: body.as_ptr() as *mut libc::c_void, iov_len: body.len() };
    let fd_bytes = mem::size_of_val(fds);
    let space = if fds.is_empty() {
        0
    } else {
        // SAFETY: CMSG_SPACE is a pure computation on a length.
        (unsafe { libc::CMSG_SPACE(fd_bytes as u32) }) as usize
    };
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !fds.is_empty() {
        hdr.msg_control = cbuf.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        // SAFETY: msg_control points to `space` zeroed, 8-aligned bytes, enough for one
        // header carrying `fds.len()` descriptors (CMSG_SPACE), so CMSG_FIRSTHDR is non-null
        // and CMSG_DATA has room for `fd_bytes` bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), fd_bytes);
        }
    }
    loop {
        // SAFETY: `hdr` points to live buffers (iov, cbuf) for the duration of the call.
        let r = unsafe { libc::sendmsg(sock, &hdr, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message; `Ok(None)` at end of stream (every holder of the other end closed).
pub(crate) fn recv(sock: RawFd) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    // Not zeroed: the kernel writes what it returns, and only those bytes are read.
    let mut body: Vec<u8> = Vec::with_capacity(MAX_MSG);
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec { iov_base: body.as_mut_ptr().cast(), iov_len: MAX_MSG };
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cbuf.as_mut_ptr().cast();
    hdr.msg_controllen = mem::size_of_val(&cbuf) as _;
    let n = loop {
        // SAFETY: `hdr` points to live, writable buffers of the stated sizes.
        let r = unsafe { libc::recvmsg(sock, &mut hdr, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `hdr`; the CMSG_* macros walk the control buffer within
    // `msg_controllen`, and each SCM_RIGHTS payload holds whole descriptors now owned by us.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c);
                for i in 0..len / mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&hdr, c);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if hdr.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::other("control message truncated"));
    }
    // SAFETY: recvmsg initialised the first `n` bytes (n <= MAX_MSG, the capacity).
    unsafe { body.set_len(n) };
    let msg = serde_json::from_slice(&body).map_err(io::Error::other)?;
    Ok(Some((msg, fds)))
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1: forever). True when readable
/// (or hung up).
pub(crate) fn poll_in(fd: &impl AsRawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
