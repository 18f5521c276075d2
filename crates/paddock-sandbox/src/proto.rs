//! The control channel between the parent and the helper side (the "status pipe").
//!
//! A `SOCK_SEQPACKET` unix socketpair: one message per datagram, JSON, with descriptors
//! (the reaper's pidfd, the proxy listener, the pty master, the exec listener with `Ready`) passed as `SCM_RIGHTS`. Upward: `Reaper`, `Pty`,
//! `Ready` (the report, just before `execve`), `Failed`, `ExecFailed`, `Exit`,
//! `ReaperLost`. Downward: one byte, [`GO`], that releases the target into `execve` (not
//! sent to a target whose execs are supervised: its `execve` waits in the supervisor,
//! [`crate::ExecListener`]). A helper forked ahead ([`crate::prestart`]) gets its spec
//! downward as `Begin`; where it forked the reaper ahead too, the reaper reads that and
//! tells the helper `Begun` on a socket of their own.
//! A zygote ([`crate::Zygote`]) has a socket of its own: downward `Spawn` (the call's own
//! control socket and stdio attached), upward `ZygoteReady` once; each call's side (a
//! spare, the call's pid 1, or a call helper) then speaks on the call's socket as above,
//! starting with `CallHelper`. The helper and the reaper never read the call's socket,
//! they only watch it for hang-up (a poll, or `SIGIO` in a spare).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

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
        /// How long the helper's steps after the reaper's fork took ([`crate::timing`]).
        #[serde(default)]
        phases: Vec<crate::timing::Phase>,
    },
    /// From the reaper: the master of the pty it opened in the sandbox's own devpts
    /// (descriptor attached).
    Pty,
    /// From the target: every layer is in place; `execve` follows the parent's [`GO`], or
    /// at once where the supervisor holds it ([`crate::ExecListener`]): the seccomp listener
    /// of its execs is then attached (exec supervision, issue 16).
    Ready {
        /// The complete report.
        report: EnforcementReport,
        /// How long each step of the helper side took ([`crate::timing`]).
        #[serde(default)]
        phases: Vec<crate::timing::Phase>,
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
        /// No other process of the tree was left (the reaper, pid 1, had no child): the
        /// tree has ended, whatever the reaper's own exit still tears down.
        #[serde(default)]
        gone: bool,
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
    /// then its stdin, stdout, stderr, then `cgroup.procs`, parent and the file a process
    /// moves itself in through (`tasks` in cgroup v1) of each directory of its cgroup.
    Spawn {
        /// The call (its filesystem fields are the zygote's).
        spec: Box<SandboxSpec>,
        /// The cgroup layer's status, decided by the caller that made the cgroup.
        cgroup: Applied,
        /// The names of the cgroup's directories (descriptors: `cgroup.procs`, parent and
        /// own file of each).
        #[serde(default)]
        cgroup_dirs: Vec<String>,
    },
    /// Downward, to a helper forked ahead ([`crate::prestart`]): the one child to confine.
    /// Descriptors: those of its stdin, stdout and stderr that `stdio` says are given (the
    /// others are the helper's own), then `cgroup.procs`, parent and own file of each
    /// directory of its cgroup.
    Begin {
        /// The child.
        spec: Box<SandboxSpec>,
        /// The child gets the pty on 0, 1, 2 as its controlling terminal.
        pty: bool,
        /// The cgroup layer's status, decided by the caller that made the cgroup.
        cgroup: Applied,
        /// The names of the cgroup's directories.
        cgroup_dirs: Vec<String>,
        /// Which of stdin, stdout and stderr come attached.
        stdio: [bool; 3],
    },
    /// From a one-shot run's reaper forked ahead to its helper, over their own socket, once
    /// its spec came (the reaper, not the helper, reads the `Begin`): what the helper needs
    /// of it. Descriptors: `cgroup.procs`, parent and own file of each directory of the
    /// sandbox's cgroup, which the helper moves the reaper into (where that move waits for
    /// a grace period) and removes once the reaper is gone.
    Begun {
        /// The child's network: the helper passes the caller the proxy's listener.
        network: crate::spec::NetworkMode,
        /// The names of the cgroup's directories.
        cgroup_dirs: Vec<String>,
    },
    /// From the helper, last: the reaper is reaped, so every process of the pid namespace
    /// is gone (and the one-shot helper's cgroup removed). The helper exits next; its own
    /// namespaces' teardown need not delay the caller.
    Done,
    /// From a zygote's per-call helper: its own pidfd (descriptor attached), so the caller
    /// can kill it although it is not the caller's child.
    CallHelper {
        /// The helper is the call's pid 1 itself (a spare): an end without the target's
        /// exit status is then its death by `SIGKILL`.
        #[serde(default)]
        pid1: bool,
    },
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

/// Sends one datagram with optional descriptors (`SCM_RIGHTS`).
///
/// `sock` and every descriptor of `fds` are numbers the caller holds open for the call.
pub(crate) fn send_raw(sock: RawFd, body: &[u8], fds: &[RawFd]) -> io::Result<()> {
    // SAFETY: the caller holds `sock` and each of `fds` open until this call returns, and
    // the borrows do not outlive it.
    let (sock, fds): (BorrowedFd<'_>, Vec<BorrowedFd<'_>>) =
        unsafe { (BorrowedFd::borrow_raw(sock), fds.iter().map(|&fd| BorrowedFd::borrow_raw(fd)).collect()) };
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("descriptors do not fit the control buffer"));
    }
    let iov = [io::IoSlice::new(body)];
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Answers a `Spawn` that came without its descriptors (on the call's socket, if any).
pub(crate) fn refuse_malformed(fds: &[OwnedFd]) {
    if let Some(c) = fds.first() {
        // The call's caller waits on this socket; if it is gone, nobody is left to tell.
        let _ = send(c.as_raw_fd(), &Msg::Failed(Failure::Setup(SetupError::MalformedSpawn)), &[]);
    }
}

/// The most descriptors one message carries (the pidfd and the proxy listener; a call's
/// socket, stdio and two per cgroup hierarchy).
const MAX_FDS: usize = 16;

/// Receives one message; `Ok(None)` at end of stream (every holder of the other end closed).
///
/// The datagram's length is peeked first (`MSG_PEEK | MSG_TRUNC` returns it whole), so
/// the buffer is the message's size, not the largest one's. A message whose descriptors
/// did not all fit (`MSG_CTRUNC`: the kernel closed the rest) or whose body was cut is an
/// error: a descriptor the protocol promised is missing.
pub(crate) fn recv(sock: RawFd) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    parsed(recv_raw(sock)?)
}

/// [`recv`] on a socket other processes read at once ([`recv_raw_shared`]).
pub(crate) fn recv_shared(sock: RawFd) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    parsed(recv_raw_shared(sock)?)
}

/// A received datagram, parsed.
fn parsed(raw: Option<(Vec<u8>, Vec<OwnedFd>)>) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    match raw {
        None => Ok(None),
        Some((body, fds)) => Ok(Some((parse(&body)?, fds))),
    }
}

/// A message [`recv_raw`] received.
pub(crate) fn parse(body: &[u8]) -> io::Result<Msg> {
    serde_json::from_slice(body).map_err(io::Error::other)
}

/// [`recv`] without the parse: the datagram's bytes (for [`send_raw`] to pass on) and
/// descriptors.
pub(crate) fn recv_raw(sock: RawFd) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    // SAFETY: the caller holds `sock` open for the call; the borrow does not outlive it.
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    let len = peek_len(sock)?;
    if len > MAX_MSG {
        return Err(io::Error::other(format!("control message of {len} bytes (at most {MAX_MSG})")));
    }
    recv_sized(sock, len.max(1))
}

/// [`recv_raw`] on a socket other processes read at once (a zygote's, which its spares and
/// the zygote itself read): a peeked length could be another message's by the time this
/// process takes one, so the buffer is the largest message's (reserved, not touched
/// beyond what the message fills) and a longer one is an error.
pub(crate) fn recv_raw_shared(sock: RawFd) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    // SAFETY: the caller holds `sock` open for the call; the borrow does not outlive it.
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    recv_sized(sock, MAX_MSG)
}

/// Receives the next datagram into a buffer of `len` bytes (cut short: an error).
fn recv_sized(sock: BorrowedFd<'_>, len: usize) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut body = vec![0u8; len];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        let mut iov = [io::IoSliceMut::new(&mut body)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => break m,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other("control message's descriptors truncated"));
    }
    if msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > body.len() {
        return Err(io::Error::other("control message truncated"));
    }
    body.truncate(msg.bytes);
    Ok(Some((body, fds)))
}

/// The length of the next datagram, without taking it (nor its descriptors: no control
/// buffer is given, so none is installed).
fn peek_len(sock: BorrowedFd<'_>) -> io::Result<usize> {
    loop {
        match rustix::net::recv(sock, &mut [0u8; 0], RecvFlags::PEEK | RecvFlags::TRUNC) {
            Ok((_, len)) => return Ok(len),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};

    use super::*;

    #[test]
    fn a_message_and_its_descriptors_arrive_whole() {
        let (a, b) = socketpair().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        send(a.as_raw_fd(), &Msg::Reaper { listener: true, phases: Vec::new() }, &[r.as_raw_fd(), w.as_raw_fd()])
            .unwrap();
        let (msg, fds) = recv(b.as_raw_fd()).unwrap().unwrap();
        assert!(matches!(msg, Msg::Reaper { listener: true, .. }));
        assert_eq!(fds.len(), 2);
        // A large message is received whole (the buffer is the message's size).
        let spec = SandboxSpec::new("/bin/true", vec!["x".repeat(200_000)]);
        let big = Msg::Spawn {
            spec: Box::new(spec),
            cgroup: Applied::new(crate::LayerState::Enforced, "x"),
            cgroup_dirs: vec![],
        };
        send(a.as_raw_fd(), &big, &[]).unwrap();
        let (msg, _) = recv(b.as_raw_fd()).unwrap().unwrap();
        assert!(matches!(msg, Msg::Spawn { spec, .. } if spec.argv[0].len() == 200_000));
        drop(a);
        assert!(recv(b.as_raw_fd()).unwrap().is_none(), "end of stream");
    }

    /// Several processes read a zygote's socket: each reader takes the next message whole
    /// without peeking its length first.
    #[test]
    fn shared_readers_take_each_message_whole() {
        let (a, b) = socketpair().unwrap();
        for len in [1, 150_000, 3, 5] {
            send_raw(a.as_raw_fd(), &vec![b'x'; len], &[]).unwrap();
        }
        // Two readers at once, as a zygote's spares: each message goes to one of them.
        let reader = |sock: RawFd| {
            std::thread::spawn(move || {
                (0..2).map(|_| recv_raw_shared(sock).unwrap().unwrap().0.len()).collect::<Vec<_>>()
            })
        };
        let (one, two) = (reader(b.as_raw_fd()), reader(b.as_raw_fd()));
        let mut got: Vec<_> = one.join().unwrap().into_iter().chain(two.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![1, 3, 5, 150_000]);
    }

    /// A message longer than the buffer is an error, and the next one arrives whole.
    #[test]
    fn a_message_longer_than_the_buffer_is_an_error() {
        let (a, b) = socketpair().unwrap();
        send_raw(a.as_raw_fd(), b"0123456789", &[]).unwrap();
        send_raw(a.as_raw_fd(), b"abc", &[]).unwrap();
        let b = b.as_fd();
        let e = recv_sized(b, 4).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert_eq!(recv_sized(b, 4).unwrap().unwrap().0, b"abc");
    }

    #[test]
    fn descriptors_that_do_not_fit_are_an_error() {
        let (a, b) = socketpair().unwrap();
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let many = vec![r.as_raw_fd(); MAX_FDS + 4];
        send(a.as_raw_fd(), &Msg::Pty, &many).unwrap();
        let e = recv(b.as_raw_fd()).unwrap_err();
        assert!(e.to_string().contains("descriptors truncated"), "{e}");
    }
}
