//! The caller's side of the child's standard descriptors: pipes (or `/dev/null`) for 0, 1
//! and 2 under [`crate::StdioMode`], each kept above 2 so it can be `dup2`'d onto a
//! standard descriptor without clobbering another.
//!
//! Not a confinement step: this runs in the caller, before the helper starts.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::spec::{SandboxSpec, StdioMode};
use crate::sys;

/// `pipe2(O_CLOEXEC)`, both ends above 2.
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// `fd` moved to a number above 2 (a caller that closed its stdin gets pipes on 0), so it
/// can be `dup2`'d onto 0, 1, 2 without clobbering another.
pub(crate) fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// `/dev/null`, read-write, above 2.
pub(crate) fn null() -> std::io::Result<OwnedFd> {
    above_stdio(sys::openat_cwd(c"/dev/null", libc::O_RDWR)?)
}

/// A duplicate of the caller's own stdin (above 2), or `/dev/null` when it has none.
pub(crate) fn own_stdin_or_null() -> std::io::Result<OwnedFd> {
    match rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3) {
        Ok(fd) => Ok(fd),
        Err(_) => null(),
    }
}

/// The helper's ends of its standard descriptors (`None`: the caller's own).
pub(crate) struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The caller's ends of the child's standard descriptors.
pub(crate) struct ParentStdio {
    pub out_r: Option<OwnedFd>,
    pub err_r: Option<OwnedFd>,
    pub in_w: Option<OwnedFd>,
    pub capture_stdin: Option<Vec<u8>>,
}

/// The pipes (or `/dev/null`) for the child's 0, 1, 2 under `spec.stdio`.
pub(crate) fn make_stdio(spec: &SandboxSpec, use_pty: bool) -> std::io::Result<(ChildStdio, ParentStdio)> {
    let mut ends = ParentStdio { out_r: None, err_r: None, in_w: None, capture_stdin: None };
    let stdio = match &spec.stdio {
        StdioMode::Capture { stdin } => {
            let (o_r, o_w) = pipe()?;
            let (e_r, e_w) = pipe()?;
            ends.out_r = Some(o_r);
            ends.err_r = Some(e_r);
            let child_in = if stdin.is_some() {
                let (i_r, i_w) = pipe()?;
                ends.in_w = Some(i_w);
                i_r
            } else {
                null()?
            };
            ends.capture_stdin = stdin.clone();
            ChildStdio { stdin: Some(child_in), stdout: Some(o_w), stderr: Some(e_w) }
        }
        // The reaper opens the pty inside the sandbox and sends the master.
        StdioMode::Pty if use_pty => ChildStdio { stdin: Some(null()?), stdout: Some(null()?), stderr: Some(null()?) },
        StdioMode::Inherit | StdioMode::Pty => {
            let (o_r, o_w) = pipe()?;
            let (e_r, e_w) = pipe()?;
            ends.out_r = Some(o_r);
            ends.err_r = Some(e_r);
            ChildStdio { stdin: None, stdout: Some(o_w), stderr: Some(e_w) }
        }
    };
    Ok((stdio, ends))
}

/// A zygote call's descriptors as they came with its `Spawn`: its control socket, then its
/// stdin, stdout and stderr, which go onto 0, 1, 2 here (received, so above 2: none is
/// clobbered); returns the socket and the rest (the cgroup's). `None` when fewer came or
/// a `dup2` failed.
pub(crate) fn received_call(fds: Vec<OwnedFd>) -> Option<(OwnedFd, Vec<OwnedFd>)> {
    let mut fds = fds.into_iter();
    let (ctl, i, o, e) = (fds.next()?, fds.next()?, fds.next()?, fds.next()?);
    for (fd, target) in [(i, 0), (o, 1), (e, 2)] {
        sys::dup_onto_stdio(&fd, target).ok()?;
    }
    Some((ctl, fds.collect()))
}
