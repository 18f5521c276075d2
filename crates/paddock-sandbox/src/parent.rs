//! The caller's side: [`spawn`] starts the helper and waits for the report, [`Running::wait`]
//! releases the child, relays its I/O, enforces the timeout and collects its status.
//!
//! Not a confinement step: this runs in the (possibly multi-threaded) caller, which only
//! uses `std::process::Command` to start `/proc/self/exe` and never forks itself. The
//! timeout kills the reaper through its pidfd; the kernel then kills every process of the
//! pid namespace, daemons and double forks included.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::helper::{Request, HELPER_MARKER};
use crate::proto::{self, Msg};
use crate::pty::{self, RawMode};
use crate::relay::{self, Sink, StreamResult};
use crate::report::{EnforcementReport, ExitKind, RunOutcome};
use crate::spec::{Limits, SandboxSpec, StdioMode};
use crate::sys::cvt;
use crate::SandboxError;

/// How long the helper may take to confine the child before it counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the pid namespace may take to die after the timeout's SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A confined child that is ready to run: every layer is in place and reported, and the
/// target waits for [`Running::wait`] to release it into `execve`.
pub struct Running {
    child: Option<Child>,
    ctl: OwnedFd,
    reaper: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    report: EnforcementReport,
    stdout: Option<JoinHandle<StreamResult>>,
    stderr: Option<JoinHandle<StreamResult>>,
    stdin: Option<JoinHandle<()>>,
    pty: Option<(JoinHandle<StreamResult>, Arc<AtomicBool>)>,
    raw_mode: Option<RawMode>,
    limits: Limits,
    program: PathBuf,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("helper_pid", &self.child.as_ref().map(|c| c.id()))
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two ints for the kernel to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn decode(ws: i32) -> ExitKind {
    if libc::WIFSIGNALED(ws) {
        ExitKind::Signaled(libc::WTERMSIG(ws))
    } else {
        ExitKind::Exited(libc::WEXITSTATUS(ws))
    }
}

/// Starts the helper and returns once the child is confined (or refused).
///
/// The child does not run until [`Running::wait`]: a caller can first record the report
/// (e.g. write and sync an audit record) and take the proxy listener.
pub fn spawn(spec: &SandboxSpec) -> Result<Running, SandboxError> {
    spec.validate()?;
    let use_pty = matches!(spec.stdio, StdioMode::Pty) && pty::is_tty(0);
    let (spec_r, spec_w) = pipe()?;
    let (ctl, ctl_child) = proto::socketpair()?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("paddock-sandbox-helper")
        .arg(HELPER_MARKER)
        .arg(spec_r.as_raw_fd().to_string())
        .arg(ctl_child.as_raw_fd().to_string())
        .env_clear()
        .current_dir("/");
    let mut capture_stdin = None;
    match &spec.stdio {
        StdioMode::Capture { stdin } => {
            cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            capture_stdin = stdin.clone();
        }
        StdioMode::Pty if use_pty => {
            // The reaper opens the pty inside the sandbox and sends the master.
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        }
        StdioMode::Inherit | StdioMode::Pty => {
            cmd.stdin(Stdio::inherit()).stdout(Stdio::piped()).stderr(Stdio::piped());
        }
    }
    let keep: [RawFd; 2] = [spec_r.as_raw_fd(), ctl_child.as_raw_fd()];
    // SAFETY: the closure runs between fork and exec in the child and only calls fcntl,
    // which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::Spawn(format!("starting the helper /proc/self/exe: {e}")))?;
    drop(cmd);
    drop(spec_r);
    drop(ctl_child);
    tracing::debug!(helper = child.id(), program = %spec.program.display(), "sandbox helper started");

    let mut running = Running {
        stdout: None,
        stderr: None,
        stdin: None,
        pty: None,
        raw_mode: None,
        ctl,
        reaper: None,
        listener: None,
        report: EnforcementReport::default(),
        limits: spec.limits,
        program: spec.program.clone(),
        child: None,
    };
    let cap = spec.limits.max_output;
    let capture = matches!(spec.stdio, StdioMode::Capture { .. });
    if let Some(out) = child.stdout.take() {
        running.stdout = Some(relay::spawn_stream(out, if capture { Sink::Capture } else { Sink::Fd(1) }, cap));
    }
    if let Some(err) = child.stderr.take() {
        running.stderr = Some(relay::spawn_stream(err, if capture { Sink::Capture } else { Sink::Fd(2) }, cap));
    }
    if let (Some(input), Some(data)) = (child.stdin.take(), capture_stdin) {
        running.stdin = Some(relay::spawn_stdin(input, data));
    }
    running.child = Some(child);

    let mut request_spec = spec.clone();
    if let StdioMode::Capture { stdin } = &mut request_spec.stdio {
        *stdin = None; // the parent writes those bytes itself
    }
    let body = serde_json::to_vec(&Request { spec: request_spec, pty: use_pty })
        .map_err(|e| SandboxError::Spawn(format!("serialising the spec: {e}")))?;
    // SAFETY: `spec_w` is our own pipe end; File takes it over.
    let mut w = unsafe { File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(spec_w)) };
    let _ = w.write_all(&body); // a dead helper shows up below
    drop(w);

    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut ready = false;
    let mut master = None;
    while !(ready && running.reaper.is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if !proto::poll_in(&running.ctl, left.as_millis() as i32)? {
            return Err(SandboxError::Spawn("the helper did not confine the child within 30 s".into()));
        }
        match proto::recv(running.ctl.as_raw_fd())? {
            None => {
                let status = running.child.as_mut().and_then(|c| c.wait().ok());
                return Err(SandboxError::Spawn(format!(
                    "the helper ended ({}) before the child was ready; does main() call \
                     paddock_sandbox::helper_main_if_requested() first?",
                    status.map_or("unknown status".into(), |s| s.to_string())
                )));
            }
            Some((Msg::Reaper { listener }, fds)) => {
                let mut fds = fds.into_iter();
                running.reaper = fds.next();
                if listener {
                    running.listener = fds.next();
                }
            }
            Some((Msg::Pty, fds)) => master = fds.into_iter().next(),
            Some((Msg::Ready { report }, _)) => {
                running.report = report;
                ready = true;
            }
            Some((Msg::Failed { layer: Some(layer), detail }, _)) => {
                return Err(SandboxError::LayerUnavailable { layer, detail });
            }
            Some((Msg::Failed { layer: None, detail }, _)) => return Err(SandboxError::Spawn(detail)),
            Some((other, _)) => tracing::debug!(?other, "unexpected message before the child was ready"),
        }
    }
    if use_pty {
        let Some(m) = master else {
            return Err(SandboxError::Spawn("the sandbox sent no pty".into()));
        };
        if let Some(ws) = pty::winsize(0) {
            pty::set_winsize(m.as_raw_fd(), &ws);
        }
        running.raw_mode = RawMode::enter(0).ok();
        let stop = Arc::new(AtomicBool::new(false));
        running.pty = Some((relay::spawn_pty(m, cap, stop.clone()), stop));
    }
    tracing::debug!(report = ?running.report, "sandbox ready");
    Ok(running)
}

impl Running {
    /// What is enforced around the child.
    pub fn report(&self) -> &EnforcementReport {
        &self.report
    }

    /// The listening socket on `127.0.0.1:port` inside the child's network namespace
    /// ([`crate::NetworkMode::Proxy`]); the proxy accepts the child's connections on it.
    pub fn take_proxy_listener(&mut self) -> Option<OwnedFd> {
        self.listener.take()
    }

    fn kill_tree(&self) {
        if let Some(pidfd) = &self.reaper {
            // SAFETY: pidfd_send_signal on a pidfd we own, without siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                )
            };
        }
    }

    /// Releases the child into `execve`, relays its I/O, enforces the timeout, and returns
    /// how it ended.
    pub fn wait(mut self) -> Result<RunOutcome, SandboxError> {
        let _ = proto::send_raw(self.ctl.as_raw_fd(), &[proto::GO], &[]);
        let start = Instant::now();
        let deadline = self.limits.timeout.map(|t| start + t);
        let mut status = None;
        let mut exec_errno = None;
        let mut lost = None;
        let mut killed_at: Option<Instant> = None;
        loop {
            let wait_ms = match (killed_at, deadline) {
                (Some(k), _) => KILL_GRACE.saturating_sub(k.elapsed()).as_millis() as i32,
                (None, Some(d)) => d.saturating_duration_since(Instant::now()).as_millis() as i32 + 1,
                (None, None) => -1,
            };
            if !proto::poll_in(&self.ctl, wait_ms)? {
                if killed_at.is_none() {
                    tracing::debug!("timeout: killing the sandbox's pid namespace");
                    killed_at = Some(Instant::now());
                    self.kill_tree();
                } else {
                    if let Some(c) = self.child.as_mut() {
                        let _ = c.kill();
                    }
                    break;
                }
                continue;
            }
            match proto::recv(self.ctl.as_raw_fd())? {
                None => break,
                Some((Msg::Exit { wstatus }, _)) => status = Some(decode(wstatus)),
                Some((Msg::ExecFailed { errno }, _)) => exec_errno = Some(errno),
                Some((Msg::ReaperLost { wstatus }, _)) => lost = Some(wstatus),
                Some((other, _)) => tracing::debug!(?other, "unexpected message while running"),
            }
        }
        let duration = start.elapsed();
        let helper_status = self.child.take().map(|mut c| c.wait()).transpose()?;
        let pid_ns = self.report.is_active("pid_ns");
        let join = |h: Option<JoinHandle<StreamResult>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        let (out, err) = if let Some((h, stop)) = self.pty.take() {
            if !pid_ns {
                stop.store(true, Ordering::Relaxed);
            }
            (join(Some(h)), StreamResult::default())
        } else {
            (join(self.stdout.take()), join(self.stderr.take()))
        };
        if let Some(h) = self.stdin.take() {
            let _ = h.join();
        }
        self.raw_mode = None;
        let status = if killed_at.is_some() {
            ExitKind::TimedOut
        } else if let Some(errno) = exec_errno {
            return Err(SandboxError::Exec {
                program: self.program.display().to_string(),
                source: std::io::Error::from_raw_os_error(errno),
            });
        } else if let Some(s) = status {
            s
        } else if let Some(ws) = lost {
            tracing::warn!(wstatus = ws, "the sandbox's reaper ended without reporting");
            decode(ws)
        } else {
            return Err(SandboxError::Spawn(format!(
                "the helper ended ({}) without a status for the child",
                helper_status.map_or("unknown".into(), |s| s.to_string())
            )));
        };
        Ok(RunOutcome {
            status,
            report: std::mem::take(&mut self.report),
            stdout_bytes: out.total,
            stderr_bytes: err.total,
            stdout_truncated: out.truncated,
            stderr_truncated: err.truncated,
            stdout: out.captured,
            stderr: err.captured,
            duration,
        })
    }
}

impl Drop for Running {
    /// A child that was never waited for is killed with its whole namespace.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.kill_tree();
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some((_, stop)) = &self.pty {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Spawns and waits: the whole confined run.
pub fn run(spec: &SandboxSpec) -> Result<RunOutcome, SandboxError> {
    spawn(spec)?.wait()
}
