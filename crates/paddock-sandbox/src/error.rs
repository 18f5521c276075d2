//! [`SandboxError`]: why a confined run could not start or finish; [`SetupError`]: the
//! step of the setup that failed, typed, so it crosses the control socket from the helper
//! side as it is (never rebuilt from a string).

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layer::Layer;

/// Why a confined run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Strict enforcement and a layer is missing on this machine (the CLI exits 71).
    #[error("sandbox layer `{layer}` is unavailable: {detail}")]
    LayerUnavailable {
        /// The layer.
        layer: Layer,
        /// Why it is unavailable.
        detail: String,
    },
    /// The spec is malformed (relative path, NUL byte, ...).
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The helper could not be started or failed while confining the child: the step.
    #[error("could not start the sandbox: {0}")]
    Spawn(#[from] SetupError),
    /// Everything was confined but `execve` of the program failed.
    #[error("could not execute {program}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The errno of `execve`.
        #[source]
        source: io::Error,
    },
    /// An I/O error in the parent (pipes, relay, wait).
    #[error("sandbox I/O error: {0}")]
    Io(#[from] io::Error),
}

impl SandboxError {
    /// The exit code the CLI uses for this error: 71 for a missing layer, 126/127 for an
    /// exec failure (like a shell), 125 for paddock's own failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::LayerUnavailable { .. } => 71,
            SandboxError::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => 127,
            SandboxError::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// An operating-system error as it crosses the control socket: its errno when it has one,
/// and the message `std::io::Error` gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsError {
    errno: Option<i32>,
    message: String,
}

impl OsError {
    /// The errno, when the error came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl From<io::Error> for OsError {
    fn from(e: io::Error) -> OsError {
        OsError { errno: e.raw_os_error(), message: e.to_string() }
    }
}

impl std::fmt::Display for OsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OsError {}

/// A stage of the mount view ([`crate::Layer::Mounts`]), in the order it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MountStep {
    /// `/` private, the scratch root, `pivot_root` into it.
    ScratchRoot,
    /// The binds of the read and write paths, and the private `/tmp`.
    Binds,
    /// `/proc` (or, for a zygote, its covered place).
    Proc,
    /// The minimal `/dev`.
    Dev,
    /// Sealing the new root read-only and moving into it.
    Pivot,
    /// A zygote call's fresh `/tmp`, with the binds beneath it moved over.
    CallTmp,
    /// A zygote call's fresh `/dev/shm`.
    CallShm,
}

impl std::fmt::Display for MountStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountStep::ScratchRoot => "scratch root",
            MountStep::Binds => "binds",
            MountStep::Proc => "/proc",
            MountStep::Dev => "/dev",
            MountStep::Pivot => "pivot_root",
            MountStep::CallTmp => "the call's /tmp",
            MountStep::CallShm => "the call's /dev/shm",
        })
    }
}

/// A stage of the mount view that failed, with the system's error (which names the path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{step}: {source}")]
pub struct MountError {
    /// The stage.
    pub step: MountStep,
    /// Why it failed.
    pub source: OsError,
}

impl MountError {
    /// A `map_err` for the stage `step`.
    pub(crate) fn at(step: MountStep) -> impl Fn(io::Error) -> MountError {
        move |e| MountError { step, source: e.into() }
    }
}

/// The setup step that failed, on the caller's side or the helper's. One variant per
/// step; the message names the step and carries the system's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SetupError {
    /// Forking the helper from a single-threaded caller.
    #[error("fork of the helper: {0}")]
    ForkHelper(OsError),
    /// Re-executing `/proc/self/exe` as the helper.
    #[error("starting the helper /proc/self/exe: {0}")]
    ExecHelper(OsError),
    /// Serialising the spec for the re-executed helper.
    #[error("serialising the spec: {0}")]
    SerializeSpec(String),
    /// The helper sent no report in time.
    #[error("the helper did not confine the child within 30 s")]
    HandshakeTimeout,
    /// The helper ended (its wait status) before the child was ready.
    #[error(
        "the helper ended ({0}) before the child was ready; does main() call \
         paddock_sandbox::helper_main_if_requested() first?"
    )]
    HelperEnded(String),
    /// A pty was asked for and none came.
    #[error("the sandbox sent no pty")]
    NoPty,
    /// The report names the tree's execs supervised, and their listener did not come with it.
    #[error("the sandbox reported its execs supervised but sent no exec listener")]
    NoExecListener,
    /// The helper ended (its wait status) and nobody reported the child's.
    #[error("the helper ended ({0}) without a status for the child")]
    NoStatus(String),
    /// The re-executed helper could not read the spec.
    #[error("unreadable spec")]
    UnreadableSpec,
    /// The reaper forked ahead sent its helper a word the helper could not read.
    #[error("the reaper forked ahead sent its helper an unreadable message")]
    UnreadableReaperWord,
    /// Forking the reaper (pid 1 of the sandbox).
    #[error("fork of the reaper failed: {0}")]
    ForkReaper(OsError),
    /// `pidfd_open` of the reaper.
    #[error("pidfd_open failed: {0}")]
    ReaperPidfd(OsError),
    /// The proxy's listener inside the sandbox's network namespace.
    #[error("proxy listener on 127.0.0.1:{port}: {source}")]
    ProxyListener {
        /// The port asked for.
        port: u16,
        /// Why it failed.
        source: OsError,
    },
    /// A zygote call's own mounts (`/proc`, `/tmp`, `/dev/shm`).
    #[error("the call's mounts failed: {0}")]
    CallMounts(MountError),
    /// A zygote call without a mount namespace of its own.
    #[error("the call has no mount namespace of its own: its /proc and /tmp would be shared")]
    CallSharesMounts,
    /// Building the mount view: the stage, and the system's error.
    #[error("building the mount view failed: {0}")]
    MountView(MountError),
    /// Opening the pty inside the sandbox.
    #[error("no pty in the sandbox: {0}")]
    OpenPty(OsError),
    /// The working directory is not in the view.
    #[error("cwd {} is not visible in the sandbox: {source}", path.display())]
    Cwd {
        /// The spec's working directory.
        path: PathBuf,
        /// Why `chdir` failed.
        source: OsError,
    },
    /// The working directory is another directory than the call was decided in.
    #[error("cwd {} is no longer the directory the call was decided in (device {}, inode {}; now {}, {})", path.display(), want.0, want.1, found.0, found.1)]
    CwdChanged {
        /// The spec's working directory.
        path: PathBuf,
        /// The device and inode it had when the call was decided.
        want: (u64, u64),
        /// What it is now.
        found: (u64, u64),
    },
    /// Forking the target.
    #[error("fork of the target failed: {0}")]
    ForkTarget(OsError),
    /// Making the pty the target's controlling terminal.
    #[error("the pty could not become the controlling terminal: {0}")]
    ControllingTerminal(OsError),
    /// The program's path as a C string.
    #[error("program: {0}")]
    ProgramPath(OsError),
    /// Forking the zygote from a single-threaded caller.
    #[error("fork of the zygote: {0}")]
    ForkZygote(OsError),
    /// The zygote sent no report in time.
    #[error("the zygote did not start within 30 s")]
    ZygoteTimeout,
    /// The zygote ended before it was ready.
    #[error(
        "the zygote ended before it was ready; does main() call \
         paddock_sandbox::helper_main_if_requested() first?"
    )]
    ZygoteEnded,
    /// A zygote call without output pipes.
    #[error("no stdout/stderr pipes for the call")]
    CallPipes,
    /// The zygote is no longer there to take the call.
    #[error("the zygote is gone: {0}")]
    ZygoteGone(OsError),
    /// A zygote call's side (its helper and reaper, or the zygote or a spare before one of
    /// them took the call) ended without a word before the child was ready: killed, most
    /// likely, as the zygote itself stays up.
    #[error(
        "the zygote's call ended before the child was ready (a process of the call was killed, or the zygote ended)"
    )]
    CallLost,
    /// A spare's reaper could not watch the caller's end of the call's socket.
    #[error("watching the caller's end of the call's socket (O_ASYNC): {0}")]
    WatchCaller(OsError),
    /// The zygote received a spawn request without its descriptors.
    #[error("malformed spawn request")]
    MalformedSpawn,
    /// Forking a zygote call's helper.
    #[error("fork of the call's helper failed: {0}")]
    ForkCallHelper(OsError),
    /// `pidfd_open` of a zygote call's helper (for the caller to kill it).
    #[error("pidfd_open of the call's helper: {0}")]
    CallPidfd(OsError),
}
