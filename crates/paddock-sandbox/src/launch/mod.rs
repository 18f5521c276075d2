//! The caller's side: [`spawn`] starts the helper and waits for the report, [`Running::wait`]
//! releases the child, relays its I/O, enforces the timeout and collects its status.
//!
//! Not a confinement step: this runs in the caller. A single-threaded caller (one thread by
//! [`sys::thread_count`]) forks the helper,
//! which runs the helper code at once: nothing can hold a lock across that fork, so the
//! child may allocate. A multi-threaded caller (e.g. a tokio server) never forks to run
//! code: `std::process::Command` re-executes `/proc/self/exe` as the helper. The timeout
//! kills the reaper through its pidfd; the kernel then kills every process of the pid
//! namespace, daemons and double forks included. While [`Running::wait`] runs, `SIGINT`,
//! `SIGTERM` and `SIGHUP` are forwarded to the command ([`crate::signals`]).

mod ahead;
mod running;

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use ahead::{prestart, Prestarted};
pub use running::{finish_teardowns, Killer, Running};

use crate::entry;
use crate::error::SetupError;
use crate::layer::{Layer, LayerState};
use crate::proto::{self, Msg, Request, HELPER_MARKER};
use crate::pty::{self, RawMode};
use crate::relay::{self, Sink};
use crate::report::{describe_wait_status, RunOutcome};
use crate::spec::{SandboxSpec, StdioMode};
use crate::stdio::{above_stdio, make_stdio, pipe, ChildStdio, ParentStdio};
use crate::sys;
use crate::timing;
use crate::SandboxError;

/// How long the helper may take to confine the child before it counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Forks the helper from this single-threaded process; the child runs [`entry::run`] and
/// never returns. Only called when [`sys::thread_count`] is 1.
pub(crate) fn fork_helper(req: Request, ctl: OwnedFd, stdio: ChildStdio) -> std::io::Result<libc::pid_t> {
    fork_helper_side(ctl, stdio, move |ctl_fd| entry::run(req, ctl_fd))
}

/// [`fork_side_into`] as a plain fork (no new namespace), keeping `ctl` alone.
pub(crate) fn fork_helper_side(
    ctl: OwnedFd,
    stdio: ChildStdio,
    then: impl FnOnce(RawFd) -> std::convert::Infallible,
) -> std::io::Result<libc::pid_t> {
    fork_side_into(0, ctl, None, stdio, move |ctl, _| then(ctl))
}

/// Forks a helper-side process from this single-threaded process, into the new
/// namespaces `flags` (`CLONE_NEW*`, [`sys::fork_into`]; 0: none, a plain fork): the child
/// takes `stdio` onto 0, 1, 2 (those given), keeps no other descriptor of the caller's but
/// `ctl` and `also`, no handler of the caller's, `/` as its cwd, and runs `then` with
/// `ctl`'s number and `also`. Only called when [`sys::thread_count`] is 1.
pub(crate) fn fork_side_into(
    flags: libc::c_int,
    ctl: OwnedFd,
    also: Option<OwnedFd>,
    stdio: ChildStdio,
    then: impl FnOnce(RawFd, Option<OwnedFd>) -> std::convert::Infallible,
) -> std::io::Result<libc::pid_t> {
    let ctl_fd = ctl.as_raw_fd();
    // This process goes on working: the helper is started on another CPU (`sys::cpus`).
    let spread = sys::Spread::plan();
    // SAFETY: the caller checked that this process is single-threaded (`sys::thread_count`), and
    // a single thread cannot start another between that check and this fork. With
    // namespace flags, the child uses nothing that reads glibc's cached thread id
    // ([`sys::fork_into`]): it runs the helper's or the reaper's code, as a spare does.
    let pid = unsafe {
        if flags == 0 {
            sys::fork()?
        } else {
            sys::fork_into(flags)?
        }
    };
    if pid != 0 {
        if let Some(s) = spread {
            s.parent(pid);
        }
        return Ok(pid);
    }
    // The child. A panic must never unwind into the caller's code.
    let start = crate::timing::now_ns();
    if let Some(s) = spread {
        s.child();
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        // The caller's subscriber must not write into the child's output.
        std::mem::forget(tracing::dispatcher::set_default(&tracing::Dispatch::none()));
        for (target, fd) in [(0, &stdio.stdin), (1, &stdio.stdout), (2, &stdio.stderr)] {
            if let Some(fd) = fd {
                // Above 2 (stdio::above_stdio): no standard descriptor is clobbered.
                if sys::dup_onto_stdio(fd, target).is_err() {
                    sys::exit_now(125);
                }
            }
        }
        // As `execve` would: nothing of the caller's beyond 0, 1, 2 (and the control
        // socket), and no handler of the caller's.
        // None of them is used after (the OwnedFds in `stdio` are forgotten below, never
        // closed twice). A kernel without close_range leaves them: the target's `fds` step
        // closes what is left before `execve` and reports it if it cannot.
        let mut keep = vec![ctl_fd];
        keep.extend(also.as_ref().map(AsRawFd::as_raw_fd));
        sys::close_all_above_stdio_but(&mut keep);
        std::mem::forget(stdio);
        std::mem::forget(ctl);
        crate::signals::reset_all_handlers();
        if std::env::set_current_dir("/").is_err() {
            sys::exit_now(125);
        }
        crate::timing::record("helper: the caller's descriptors and handlers dropped", start);
        match then(ctl_fd, also) {}
    }));
    sys::exit_now(125)
}

/// Starts the helper and returns once the child is confined (or refused).
///
/// The child does not run until [`Running::wait`]: a caller can first record the report
/// (e.g. write and sync an audit record) and take the proxy listener.
pub fn spawn(spec: &SandboxSpec) -> Result<Running, SandboxError> {
    spawn_meanwhile(spec, &mut || ()).0
}

/// [`spawn`], running `meanwhile` in this process while the helper side sets the sandbox
/// up: after the helper started, before waiting for its report. Nothing of the child runs
/// before [`Running::wait`], so what `meanwhile` must do before the child exists it can do
/// there, on the other core. Its result is `None` when the helper did not start.
pub fn spawn_meanwhile<T>(
    spec: &SandboxSpec,
    meanwhile: &mut dyn FnMut() -> T,
) -> (Result<Running, SandboxError>, Option<T>) {
    let origin = timing::now_ns();
    let started = Instant::now();
    let (running, ends, use_pty) = match start_helper(spec, started) {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    let done = meanwhile();
    let r = handshake(running, ends, spec, use_pty, origin);
    timing::phase("sandbox start, in all", started);
    (r, Some(done))
}

/// The first half of [`spawn`]: the helper forked (or re-executed) with its request.
fn start_helper(spec: &SandboxSpec, started: Instant) -> Result<(Running, ParentStdio, bool), SandboxError> {
    spec.validate()?;
    let use_pty = matches!(spec.stdio, StdioMode::Pty) && pty::stdin_is_tty();
    let (ctl, ctl_child) = proto::socketpair()?;
    let ctl_child = above_stdio(ctl_child)?;

    let (stdio, ends) = make_stdio(spec, use_pty)?;

    let request_spec = spec.for_helper();
    let threads = sys::thread_count();
    let helper_pid = if threads == Some(1) {
        let req = Request {
            spec: request_spec,
            pty: use_pty,
            launch: "helper forked from the single-threaded caller (no re-exec)".into(),
            zygote: false,
        };
        fork_helper(req, ctl_child, stdio).map_err(|e| SetupError::ForkHelper(e.into()))?
    } else {
        let launch = match threads {
            Some(n) => format!("helper re-executed from /proc/self/exe (the caller has {n} threads)"),
            None => "helper re-executed from /proc/self/exe (the caller's thread count is unknown)".into(),
        };
        let req = Request { spec: request_spec, pty: use_pty, launch, zygote: false };
        reexec_helper(&req, ctl_child, stdio)?
    };
    tracing::debug!(helper = helper_pid, forked = threads == Some(1), program = %spec.program.display(), "sandbox helper started");
    timing::phase(if threads == Some(1) { "helper fork" } else { "helper re-exec" }, started);
    Ok((Running::new(spec, ctl, Some(helper_pid)), ends, use_pty))
}

/// Starts the relays and waits for the helper side's report: the child is then parked
/// before `execve`.
pub(crate) fn handshake(
    mut running: Running,
    ends: ParentStdio,
    spec: &SandboxSpec,
    use_pty: bool,
    origin: u64,
) -> Result<Running, SandboxError> {
    let capture = matches!(spec.stdio, StdioMode::Capture { .. });
    let cap = relay::cap_of(spec.limits.max_output, capture);
    if let Some(out) = ends.out_r {
        running.stdout =
            Some(relay::spawn_stream(File::from(out), if capture { Sink::Capture } else { Sink::Fd(1) }, cap)?);
    }
    if let Some(err) = ends.err_r {
        running.stderr =
            Some(relay::spawn_stream(File::from(err), if capture { Sink::Capture } else { Sink::Fd(2) }, cap)?);
    }
    if let (Some(input), Some(data)) = (ends.in_w, ends.capture_stdin) {
        running.stdin = Some(relay::spawn_stdin(File::from(input), data)?);
    }

    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut ready = false;
    let mut master = None;
    while !(ready && running.reaper.is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if !sys::poll_in(&running.ctl, Some(left))? {
            return Err(SetupError::HandshakeTimeout.into());
        }
        match proto::recv(running.ctl.as_raw_fd())? {
            // A zygote's call has no helper of this process's: nothing to reap.
            None if running.helper.is_none() => return Err(SetupError::CallLost.into()),
            None => {
                let status = running.reap_helper();
                return Err(
                    SetupError::HelperEnded(status.map_or("unknown status".into(), describe_wait_status)).into()
                );
            }
            Some((Msg::CallHelper { pid1 }, fds)) => {
                running.remote = fds.into_iter().next();
                running.remote_pid1 = pid1;
            }
            Some((Msg::Reaper { listener, phases }, fds)) => {
                timing::log_remote(&phases, origin);
                let mut fds = fds.into_iter();
                running.reaper = fds.next();
                if listener {
                    running.listener = fds.next();
                }
            }
            Some((Msg::Pty, fds)) => master = fds.into_iter().next(),
            Some((Msg::Ready { report, phases }, fds)) => {
                timing::log_remote(&phases, origin);
                // A supervised tree's exec listener comes with the report: without it the
                // layer the report names enforced is not (fail closed).
                let supervised = report.get(Layer::Exec).is_some_and(|l| l.state == LayerState::Enforced);
                match (supervised, fds.into_iter().next()) {
                    (true, Some(fd)) => running.set_exec_listener(fd)?,
                    (true, None) => return Err(SetupError::NoExecListener.into()),
                    (false, _) => {}
                }
                running.report = report;
                ready = true;
            }
            Some((Msg::Failed(failure), _)) => return Err(failure.into()),
            Some((other, _)) => tracing::debug!(?other, "unexpected message before the child was ready"),
        }
    }
    if use_pty {
        let Some(m) = master else {
            return Err(SetupError::NoPty.into());
        };
        if let Some(ws) = pty::stdin_winsize() {
            pty::set_winsize(&m, ws);
        }
        running.raw_mode = RawMode::enter_stdin().ok();
        let stop = Arc::new(AtomicBool::new(false));
        running.pty = Some((relay::spawn_pty(m, cap, stop.clone()), stop));
    }
    tracing::debug!(report = ?running.report, "sandbox ready");
    Ok(running)
}

/// Re-executes `/proc/self/exe` as the helper (a multi-threaded caller); the spec goes
/// over a pipe as JSON.
pub(crate) fn reexec_helper(req: &Request, ctl_child: OwnedFd, stdio: ChildStdio) -> Result<libc::pid_t, SandboxError> {
    let (spec_r, spec_w) = pipe()?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("paddock-sandbox-helper")
        .arg(HELPER_MARKER)
        .arg(spec_r.as_raw_fd().to_string())
        .arg(ctl_child.as_raw_fd().to_string())
        .env_clear()
        .current_dir("/");
    let to_stdio = |fd: Option<OwnedFd>| fd.map_or_else(Stdio::inherit, Stdio::from);
    cmd.stdin(to_stdio(stdio.stdin)).stdout(to_stdio(stdio.stdout)).stderr(to_stdio(stdio.stderr));
    let keep: [RawFd; 2] = [spec_r.as_raw_fd(), ctl_child.as_raw_fd()];
    // SAFETY: the closure runs between fork and exec in the child and only calls fcntl,
    // which is async-signal-safe; it allocates nothing. `keep` are descriptors this
    // function holds open until after the spawn.
    unsafe {
        cmd.pre_exec(move || {
            for fd in keep {
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| SetupError::ExecHelper(e.into()))?;
    drop(cmd); // the helper's ends of its descriptors
    drop(spec_r);
    drop(ctl_child);
    let pid = child.id() as libc::pid_t;
    drop(child); // dropping a Child neither kills nor waits: the pid is reaped by `Running`
    let body = serde_json::to_vec(req).map_err(|e| SetupError::SerializeSpec(e.to_string()))?;
    // A helper that died before reading shows up as the end of the control stream.
    let _ = sys::write_all(spec_w.as_raw_fd(), &body);
    Ok(pid)
}

/// Spawns and waits: the whole confined run.
pub fn run(spec: &SandboxSpec) -> Result<RunOutcome, SandboxError> {
    spawn(spec)?.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call's socket ends with no word from its side: a zygote's call (no helper of
    /// this process) is lost, not a helper that forgot `helper_main_if_requested`.
    fn ended_without_a_word(helper: Option<libc::pid_t>) -> SandboxError {
        let spec = SandboxSpec::new("/bin/true", vec!["true".into()]);
        let (ctl, theirs) = proto::socketpair().unwrap();
        drop(theirs);
        let ends = ParentStdio { out_r: None, err_r: None, in_w: None, capture_stdin: None };
        handshake(Running::new(&spec, ctl, helper), ends, &spec, false, 0).err().unwrap()
    }

    #[test]
    fn a_zygote_call_that_ends_without_a_word_is_reported_lost() {
        let e = ended_without_a_word(None);
        assert!(matches!(e, SandboxError::Spawn(SetupError::CallLost)), "{e:?}");
        assert!(e.to_string().contains("a process of the call was killed"), "{e}");
    }
}
