//! The helper side's entry: a forked or re-executed helper reads its [`Request`] and runs
//! either one confined child ([`crate::helper`]) or a zygote ([`crate::zygote`]).
//!
//! Not a confinement step: it only dispatches, so that neither the helper nor the zygote
//! imports the other's entry.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{FromRawFd, RawFd};

use crate::error::SetupError;
use crate::proto::{self, Failure, Msg, Request};
use crate::sys::exit_now;

/// The re-exec entry; `args` are the arguments after the marker.
pub(crate) fn main(mut args: impl Iterator<Item = OsString>) -> ! {
    let mut fd_arg = || -> Option<RawFd> { args.next()?.to_str()?.parse().ok() };
    let (Some(spec_fd), Some(ctl)) = (fd_arg(), fd_arg()) else { exit_now(125) };
    if spec_fd < 3 || ctl < 3 {
        exit_now(125)
    }
    // SAFETY: the parent passed this descriptor (the spec pipe's read end) for us to own.
    let mut spec_pipe = unsafe { std::fs::File::from_raw_fd(spec_fd) };
    let mut buf = Vec::with_capacity(16 * 1024);
    let read = spec_pipe.read_to_end(&mut buf);
    drop(spec_pipe);
    let req: Request = match read.ok().and_then(|_| serde_json::from_slice(&buf).ok()) {
        Some(r) => r,
        None => {
            // Exiting 125 is the answer either way; the message only says why.
            let _ = proto::send(ctl, &Msg::Failed(Failure::Setup(SetupError::UnreadableSpec)), &[]);
            exit_now(125)
        }
    };
    run(req, ctl)
}

/// Runs the request: a zygote, or steps 1 and 2 of one confined child. `ctl` is the
/// control socket.
pub(crate) fn run(req: Request, ctl: RawFd) -> ! {
    if req.zygote {
        crate::zygote::server::main(req, ctl)
    }
    crate::helper::run(req, ctl)
}
