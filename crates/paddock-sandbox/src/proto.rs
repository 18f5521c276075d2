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
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::error::SetupError;
use crate::layer::{Applied, Layer};
use crate::report::EnforcementReport;
use crate::spec::SandboxSpec;

/// `argv[1]` that turns the paddock binary into the helper.
pub const HELPER_MARKER: &str = "__paddock-sandbox-helper-v1__";

/// The byte that releases the target into `execve`.
pub(crate) const GO: u8 = b'g';

/// The largest message accepted (a spec with long path lists fits many times over).
const MAX_MSG: usize = 1 << 20;

/// What the parent sends over the spec pipe to a re-executed helper (a forked one gets it
/// in memory).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub spec: SandboxSpec,
    /// The child gets the pty on 0, 1, 2 as its controlling terminal.
    pub pty: bool,
    /// How the helper was started, for the report.
    pub launch: String,
    /// Start a zygote ([`crate::Zygote`]) rather than one child.
    #[serde(default)]
    pub zygote: bool,
}

/// Why the helper side stopped before the child was ready.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// A strict run met an unavailable layer (exit 71).
    Layer {
        /// The missing layer.
        layer: Layer,
        /// Why it is unavailable.
        detail: String,
    },
    /// A setup step failed (exit 125).
    Setup(SetupError),
}

impl Failure {
    /// The helper side's exit code for it.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Failure::Layer { .. } => 71,
            Failure::Setup(_) => 125,
        }
    }
}

impl From<Failure> for crate::SandboxError {
    fn from(f: Failure) -> crate::SandboxError {
        match f {
            Failure::Layer { layer, detail } => crate::SandboxError::LayerUnavailable { layer, detail },
            Failure::Setup(e) => crate::SandboxError::Spawn(e),
        }
    }
}

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
    /// Setup failed: a missing layer (strict) or the step that failed.
    Failed(Failure),
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
        cgroup: Applied,
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
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?)
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
///
/// The datagram's length is peeked first (`MSG_PEEK | MSG_TRUNC` returns it whole), so
/// the buffer is the message's size, not the largest one's. A message whose descriptors
/// did not all fit (`MSG_CTRUNC`: the kernel closed the rest) or whose body was cut is an
/// error: a descriptor the protocol promised is missing.
pub(crate) fn recv(sock: RawFd) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    let len = peek_len(sock)?;
    if len > MAX_MSG {
        return Err(io::Error::other(format!("control message of {len} bytes (at most {MAX_MSG})")));
    }
    // Not zeroed: the kernel writes what it returns, and only those bytes are read.
    let mut body: Vec<u8> = Vec::with_capacity(len.max(1));
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec { iov_base: body.as_mut_ptr().cast(), iov_len: body.capacity() };
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
    let fds = received_fds(&hdr);
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if hdr.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("control message's descriptors truncated"));
    }
    if hdr.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::other("control message truncated"));
    }
    // SAFETY: recvmsg initialised the first `n` bytes (n <= the capacity given as iov_len).
    unsafe { body.set_len(n) };
    let msg = serde_json::from_slice(&body).map_err(io::Error::other)?;
    Ok(Some((msg, fds)))
}

/// The length of the next datagram, without taking it (nor its descriptors: no control
/// buffer is given, so none is installed).
fn peek_len(sock: RawFd) -> io::Result<usize> {
    loop {
        // SAFETY: a zero-length receive into no buffer; MSG_TRUNC makes the kernel return
        // the datagram's real length, MSG_PEEK leaves it queued.
        let r = unsafe { libc::recv(sock, std::ptr::null_mut(), 0, libc::MSG_PEEK | libc::MSG_TRUNC) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The descriptors of the `SCM_RIGHTS` messages in `hdr`, now ours.
fn received_fds(hdr: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `hdr`; the CMSG_* macros walk the control buffer within
    // `msg_controllen`, and each SCM_RIGHTS payload holds whole descriptors now owned by us.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c);
                for i in 0..len / mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    fds
}
