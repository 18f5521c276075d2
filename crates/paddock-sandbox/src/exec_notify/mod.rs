//! Every program started in the sandboxed tree, seen and decided before it runs: a seccomp
//! user-notification filter on `execve`/`execveat` in the target, and a supervisor in the
//! caller that answers it.
//!
//! * [`filter`] (in the target, after `no_new_privs`, linked into the one seccomp filter,
//!   [`crate::seccomp::install_supervised`]): `execve` and `execveat` answer
//!   `SECCOMP_RET_USER_NOTIF`; `seccomp(2)` asking for a listener of its own fails with
//!   `EPERM` (a newer listener would be asked first and could let the call through); the
//!   listener descriptor goes to the caller over the control socket (`SCM_RIGHTS`) with the
//!   target's report ([`layer`]) and is closed in the target before anything else runs.
//! * [`listener`] (in the caller, a thread per call, [`supervise`]): receives each
//!   notification, reads the path and argv from the child's memory ([`memory`]) between two
//!   `SECCOMP_IOCTL_NOTIF_ID_VALID` checks, resolves the program in the child's own root
//!   ([`resolve`]) from the directory the kernel starts from (the working directory or
//!   directory descriptor, each checked to be the very directory the task holds: a removed
//!   one, or one whose path cannot be read, refuses the exec), follows a `#!` script's
//!   chain of interpreters as the kernel does ([`script`]), asks an [`ExecDecider`] and
//!   answers `CONTINUE` (the kernel then runs the exec as usual) or `EACCES`.
//!
//! Which programs can run at all is the kernel's: with [`ExecControl::programs`] set,
//! Landlock grants execute on those files only (no directory grant carries it). The
//! supervisor decides argv, and refuses what the kernel's rule cannot tell apart: the
//! dynamic loader run as a program, `/proc` magic links, a descriptor with no path
//! (`memfd_create` + `execveat`).
//!
//! The limit of user notification: the argv the supervisor read may be changed by another
//! thread of the caller (sharing its memory) before the kernel copies it. The program's
//! identity does not race (Landlock checks the file the kernel opens).

pub(crate) mod filter;
mod listener;
mod memory;
mod resolve;
mod script;
mod task;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::layer::{Applied, LayerState};
use crate::spec::ExecControl;

pub use listener::{supervise, ExecSupervisor};

/// The seccomp listener of a tree's execs, from [`crate::Running::take_exec_listener`]:
/// give it to [`supervise`] before [`crate::Running::wait`].
///
/// The target does not wait for the caller's release before its `execve` when its execs
/// are supervised: the program's own exec is already waiting in this listener when the
/// child is ready. The supervisor reads and resolves it at once (while the caller records
/// the call) and answers it only once [`crate::Running::wait`] released the child, through
/// `release`; so nothing of the program runs before that, as without supervision.
#[derive(Debug)]
pub struct ExecListener {
    /// The seccomp listener.
    pub(crate) fd: OwnedFd,
    /// Readable with a byte once the caller released the child; the end of the stream
    /// without one: never released (the child is being killed).
    pub(crate) release: OwnedFd,
}

/// One `execve`/`execveat` in the tree, as the supervisor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The calling thread, in the caller's pid namespace.
    pub pid: i32,
    /// Its parent, in the caller's pid namespace (0 when unknown).
    pub ppid: i32,
    /// `execve` or `execveat`.
    pub syscall: &'static str,
    /// The path argument as the child passed it (lossy UTF-8; empty for `AT_EMPTY_PATH`).
    pub path: String,
    /// The program the kernel will open, resolved in the child's view (symlinks followed,
    /// relative to its cwd or directory descriptor); `None` when it does not resolve to a
    /// regular file there, or names no path (`problem` says why).
    pub program: Option<PathBuf>,
    /// A `#!` script's interpreters, in the order the kernel runs them (an interpreter may
    /// itself be a script), each resolved in the child's view with the argv the kernel
    /// gives it; the last one is what runs. Empty for a program that is not a script.
    pub interpreters: Vec<ScriptInterpreter>,
    /// Why the exec cannot be decided as the kernel will run it: the program does not
    /// resolve (a descriptor without a path, `/proc`, missing), the working directory or a
    /// directory descriptor is not a live path in the view, a `#!` chain cannot be followed.
    /// A decider that decides must refuse such an exec.
    pub problem: Option<String>,
    /// The arguments, `argv[0]` first (lossy UTF-8), bounded.
    pub argv: Vec<String>,
    /// Some arguments (or their bytes) were left out: beyond the bounds or unreadable.
    pub argv_truncated: bool,
    /// Some argument is not UTF-8: `argv` shows it lossily, so two different argvs can
    /// read the same there (a person's answer about it holds for this exec only).
    pub argv_lossy: bool,
    /// The working directory in the child's view (as read, when `problem` says it is not
    /// live; empty when it could not be read).
    pub cwd: PathBuf,
}

/// One interpreter of a `#!` chain: the kernel runs `program` with `argv`
/// (`[the #! name, its argument if any, the previous file's name, the exec's argv[1..]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInterpreter {
    /// The interpreter, resolved in the child's view (symlinks followed).
    pub program: PathBuf,
    /// The arguments the kernel gives it, `argv[0]` (the name on the `#!` line) first.
    pub argv: Vec<String>,
}

/// What the supervisor answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecVerdict {
    /// The kernel runs the exec (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Allow,
    /// The exec fails with `EACCES` in the child.
    Deny,
}

/// Decides each exec of a tree (a policy's `[commands]`, in paddock). Called on the
/// supervisor's thread, one exec at a time, in the order the tree made them.
pub trait ExecDecider: Send + Sync {
    /// The verdict for `exec`; the child waits for it.
    fn decide(&self, exec: &ExecRequest) -> ExecVerdict;
}

/// In the target, once the filter with the exec notification is installed
/// ([`crate::seccomp::install_supervised`]): the `exec` layer's state and detail, and the
/// `listener` to send to the caller with the target's report (one message: the caller
/// wakes once for both). The target closes it once sent, before `execve`: the tree must
/// never hold its own supervisor's descriptor.
pub(crate) fn layer(listener: Result<OwnedFd, String>, control: &ExecControl) -> (Applied, Option<OwnedFd>) {
    let fd = match listener {
        Ok(fd) => fd,
        Err(e) => return (Applied::new(LayerState::Unavailable, e), None),
    };
    let programs = match &control.programs {
        Some(p) => format!("Landlock executes {} files only", p.len()),
        None => "any program of the view may execute".into(),
    };
    let applied = Applied::new(
        LayerState::Enforced,
        format!(
            "execve/execveat wait for the supervisor (seccomp user notification), which reads \
             and decides each one; {programs}; no listener of the tree's own"
        ),
    );
    (applied, Some(fd))
}

/// In the target, for Landlock: the program files of [`ExecControl::programs`] that exist
/// in the view (a missing one could not be opened for its rule and grants nothing);
/// `None` when execute is not restricted.
pub(crate) fn landlock_files(spec: &crate::SandboxSpec) -> Option<Vec<PathBuf>> {
    let programs = spec.exec.as_ref()?.programs.as_ref()?;
    Some(programs.iter().filter(|p| p.is_absolute() && p.is_file()).cloned().collect())
}
