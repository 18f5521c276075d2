//! The caller's side: [`spawn`] starts the helper and waits for the report, [`Running::wait`]
//! releases the child, relays its I/O, enforces the timeout and collects its status.
//!
//! Not a confinement step: this runs in the caller. A single-threaded caller (`Threads: 1`
//! in `/proc/self/status`) forks the helper,
//! which runs the helper code at once: nothing can hold a lock across that fork, so the
//! child may allocate. A multi-threaded caller (e.g. a tokio server) never forks to run
//! code: `std::process::Command` re-executes `/proc/self/exe` as the helper. The timeout
//! kills the reaper through its pidfd; the kernel then kills every process of the pid
//! namespace, daemons and double forks included. While [`Running::wait`] runs, `SIGINT`,
//! `SIGTERM` and `SIGHUP` are forwarded to the command ([`crate::signals`]).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::helper::{self, Request, HELPER_MARKER};
use crate::proto::{self, Msg};
use crate::pty::{self, RawMode};
use crate::relay::{self, Sink, StreamResult};
use crate::report::{EnforcementReport, ExitKind, RunOutcome};
use crate::signals::Forwarder;
use crate::spec::{Limits, SandboxSpec, StdioMode};
use crate::sys::{self, cvt, cvt_long};
use crate::SandboxError;

/// How long the helper may take to confine the child before it counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the pid namespace may take to die after the timeout's SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A confined child that is ready to run: every layer is in place and reported, and the
/// target waits for [`Running::wait`] to release it into `execve`.
pub struct Running {
    /// The helper's pid, until it is reaped.
    helper: Option<libc::pid_t>,
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
    /// A zygote's call: the pidfd of the call's helper (a child of the zygote, not ours),
    /// until the call ends.
    remote: Option<OwnedFd>,
    /// A zygote's call: the cgroup the caller made for it, removed once the call ends.
    cgroup: Option<crate::cgroup::SandboxCgroup>,
    /// Exec supervision (issue 16): the seccomp listener of the tree's execs.
    exec_listener: Option<OwnedFd>,
}

/// Kills one call's whole process tree from another thread, as its timeout does: SIGKILL
/// to the sandbox's pid 1 (through a pidfd, so never another process), which takes the
/// pid namespace with it; the call's [`Running::wait`] then returns
/// [`crate::ExitKind::Signaled`] (9) as usual.
#[derive(Debug)]
pub struct Killer(OwnedFd);

impl Killer {
    /// Sends the SIGKILL; whether the kernel took it (not once the call has ended).
    pub fn kill(&self) -> bool {
        // SAFETY: pidfd_send_signal on a pidfd we own, without siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        r == 0
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("helper_pid", &self.helper)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two ints for the kernel to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// `fd` moved to a number above 2 (a caller that closed its stdin gets pipes on 0), so it
/// can be `dup2`'d onto 0, 1, 2 without clobbering another.
pub(crate) fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on our own descriptor returns a new one that we own.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn decode(ws: i32) -> ExitKind {
    if libc::WIFSIGNALED(ws) {
        ExitKind::Signaled(libc::WTERMSIG(ws))
    } else {
        ExitKind::Exited(libc::WEXITSTATUS(ws))
    }
}

/// The number of threads of this process (`Threads:` in `/proc/self/status`).
pub(crate) fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// The helper's ends of its standard descriptors (`None`: the caller's own).
pub(crate) struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The caller's ends of the child's standard descriptors.
pub(crate) struct ParentStdio {
    out_r: Option<OwnedFd>,
    err_r: Option<OwnedFd>,
    in_w: Option<OwnedFd>,
    capture_stdin: Option<Vec<u8>>,
}

/// The pipes (or `/dev/null`) for the child's 0, 1, 2 under `spec.stdio`.
pub(crate) fn make_stdio(spec: &SandboxSpec, use_pty: bool) -> std::io::Result<(ChildStdio, ParentStdio)> {
    let null = || -> std::io::Result<OwnedFd> {
        let fd = sys::open_dev_null()?;
        // SAFETY: a new descriptor that nothing else owns.
        above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
    };
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

/// Forks the helper from this single-threaded process; the child runs [`helper::run`] and
/// never returns.
pub(crate) fn fork_helper(req: Request, ctl: OwnedFd, stdio: ChildStdio) -> std::io::Result<libc::pid_t> {
    let ctl_fd = ctl.as_raw_fd();
    let pid = sys::fork()?;
    if pid != 0 {
        return Ok(pid);
    }
    // The child. A panic must never unwind into the caller's code.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        // The caller's subscriber must not write into the child's output.
        std::mem::forget(tracing::dispatcher::set_default(&tracing::Dispatch::none()));
        for (target, fd) in [(0, &stdio.stdin), (1, &stdio.stdout), (2, &stdio.stderr)] {
            if let Some(fd) = fd {
                // SAFETY: dup2 of our own descriptor onto a standard one (fd > 2).
                if unsafe { libc::dup2(fd.as_raw_fd(), target) } == -1 {
                    sys::exit_now(125);
                }
            }
        }
        // As `execve` would: nothing of the caller's beyond 0, 1, 2 (and the control
        // socket), and no handler of the caller's.
        // SAFETY: close_range on this process's own descriptors; none of them is used after
        // (the OwnedFds in `stdio` are forgotten below, never closed twice).
        unsafe {
            libc::syscall(libc::SYS_close_range, 3u32, (ctl_fd - 1) as u32, 0u32);
            libc::syscall(libc::SYS_close_range, (ctl_fd + 1) as u32, u32::MAX, 0u32);
        }
        std::mem::forget(stdio);
        std::mem::forget(ctl);
        crate::signals::reset_all_handlers();
        if std::env::set_current_dir("/").is_err() {
            sys::exit_now(125);
        }
        helper::run(req, ctl_fd)
    }));
    sys::exit_now(125)
}

/// Starts the helper and returns once the child is confined (or refused).
///
/// The child does not run until [`Running::wait`]: a caller can first record the report
/// (e.g. write and sync an audit record) and take the proxy listener.
pub fn spawn(spec: &SandboxSpec) -> Result<Running, SandboxError> {
    spec.validate()?;
    let use_pty = matches!(spec.stdio, StdioMode::Pty) && pty::is_tty(0);
    let (ctl, ctl_child) = proto::socketpair()?;
    let ctl_child = above_stdio(ctl_child)?;

    let (stdio, ends) = make_stdio(spec, use_pty)?;

    let mut request_spec = spec.clone();
    if let StdioMode::Capture { stdin } = &mut request_spec.stdio {
        *stdin = None; // the parent writes those bytes itself
    }
    let threads = thread_count();
    let helper_pid = if threads == Some(1) {
        let req = Request {
            spec: request_spec,
            pty: use_pty,
            launch: "helper forked from the single-threaded caller (no re-exec)".into(),
            zygote: false,
        };
        fork_helper(req, ctl_child, stdio).map_err(|e| SandboxError::Spawn(format!("fork of the helper: {e}")))?
    } else {
        let launch = match threads {
            Some(n) => format!("helper re-executed from /proc/self/exe (the caller has {n} threads)"),
            None => "helper re-executed from /proc/self/exe (the caller's thread count is unknown)".into(),
        };
        let req = Request { spec: request_spec, pty: use_pty, launch, zygote: false };
        reexec_helper(&req, ctl_child, stdio)?
    };
    tracing::debug!(helper = helper_pid, forked = threads == Some(1), program = %spec.program.display(), "sandbox helper started");

    handshake(Running::new(spec, ctl, Some(helper_pid)), ends, spec, use_pty)
}

impl Running {
    pub(crate) fn new(spec: &SandboxSpec, ctl: OwnedFd, helper: Option<libc::pid_t>) -> Running {
        Running {
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
            helper,
            remote: None,
            cgroup: None,
            exec_listener: None,
        }
    }

    /// A zygote's call: the cgroup to remove once it ends.
    pub(crate) fn set_cgroup(&mut self, cg: Option<crate::cgroup::SandboxCgroup>) {
        self.cgroup = cg;
    }
}

/// Starts the relays and waits for the helper side's report: the child is then parked
/// before `execve`.
pub(crate) fn handshake(
    mut running: Running,
    ends: ParentStdio,
    spec: &SandboxSpec,
    use_pty: bool,
) -> Result<Running, SandboxError> {
    let cap = spec.limits.max_output;
    let capture = matches!(spec.stdio, StdioMode::Capture { .. });
    if let Some(out) = ends.out_r {
        running.stdout =
            Some(relay::spawn_stream(File::from(out), if capture { Sink::Capture } else { Sink::Fd(1) }, cap));
    }
    if let Some(err) = ends.err_r {
        running.stderr =
            Some(relay::spawn_stream(File::from(err), if capture { Sink::Capture } else { Sink::Fd(2) }, cap));
    }
    if let (Some(input), Some(data)) = (ends.in_w, ends.capture_stdin) {
        running.stdin = Some(relay::spawn_stdin(File::from(input), data));
    }

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
                let status = running.reap_helper();
                return Err(SandboxError::Spawn(format!(
                    "the helper ended ({}) before the child was ready; does main() call \
                     paddock_sandbox::helper_main_if_requested() first?",
                    status.map_or("unknown status".into(), describe_status)
                )));
            }
            Some((Msg::CallHelper, fds)) => running.remote = fds.into_iter().next(),
            Some((Msg::Reaper { listener }, fds)) => {
                let mut fds = fds.into_iter();
                running.reaper = fds.next();
                if listener {
                    running.listener = fds.next();
                }
            }
            Some((Msg::Pty, fds)) => master = fds.into_iter().next(),
            // exec supervision (issue 16)
            Some((Msg::ExecListener, fds)) => running.exec_listener = fds.into_iter().next(),
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
    let child = cmd.spawn().map_err(|e| SandboxError::Spawn(format!("starting the helper /proc/self/exe: {e}")))?;
    drop(cmd); // the helper's ends of its descriptors
    drop(spec_r);
    drop(ctl_child);
    let pid = child.id() as libc::pid_t;
    drop(child); // dropping a Child neither kills nor waits: the pid is reaped by `Running`
    let body = serde_json::to_vec(req).map_err(|e| SandboxError::Spawn(format!("serialising the spec: {e}")))?;
    let _ = sys::write_all(spec_w.as_raw_fd(), &body); // a dead helper shows up later
    Ok(pid)
}

fn describe_status(ws: i32) -> String {
    match decode(ws) {
        ExitKind::Exited(c) => format!("exit status {c}"),
        ExitKind::Signaled(s) => format!("killed by signal {s}"),
        ExitKind::TimedOut => "timed out".into(),
    }
}

/// Waits for `pid` (our child) for at most `limit`; its wait status if it ended.
pub(crate) fn wait_for(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    // SAFETY: pidfd_open on our own unreaped child.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).ok();
    if let Some(fd) = fd {
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        if !proto::poll_in(&fd, limit.as_millis() as i32).unwrap_or(false) {
            return None;
        }
    }
    let mut ws = 0;
    // SAFETY: reaping our own child into a valid int.
    (unsafe { libc::waitpid(pid, &mut ws, 0) } == pid).then_some(ws)
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

    /// The seccomp listener of the tree's execs ([`crate::SandboxSpec::exec`]); give it to
    /// [`crate::supervise`] before [`Running::wait`]: until it is answered, every exec of
    /// the tree (the program's own first) waits, and once it is closed they fail.
    pub fn take_exec_listener(&mut self) -> Option<OwnedFd> {
        self.exec_listener.take()
    }

    fn signal_reaper(&self, sig: libc::c_int) -> bool {
        let Some(pidfd) = &self.reaper else { return false };
        // SAFETY: pidfd_send_signal on a pidfd we own, without siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        r == 0
    }

    fn kill_tree(&self) {
        self.signal_reaper(libc::SIGKILL);
    }

    /// A [`Killer`] of this call's process tree, for another thread (a supervisor that
    /// stops); `None` when the pidfd of the sandbox's pid 1 cannot be duplicated.
    pub fn killer(&self) -> Option<Killer> {
        self.reaper.as_ref()?.try_clone().ok().map(Killer)
    }

    /// A zygote's call: kills the call's helper (not our child) through its pidfd.
    fn kill_remote(&self) {
        if let Some(fd) = &self.remote {
            // SAFETY: pidfd_send_signal on a pidfd we own, without siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                )
            };
        }
    }

    /// A zygote's call has ended (or is abandoned): make sure its helper is gone (it exits
    /// once its reaper, and so the call's pid namespace, is gone), then remove the call's
    /// cgroup.
    fn end_remote(&mut self) {
        if let Some(fd) = self.remote.take() {
            if !proto::poll_in(&fd, KILL_GRACE.as_millis() as i32).unwrap_or(false) {
                self.remote = Some(fd);
                self.kill_remote();
                if let Some(fd) = self.remote.take() {
                    let _ = proto::poll_in(&fd, KILL_GRACE.as_millis() as i32);
                }
            }
        }
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
    }

    /// Waits for the helper (blocking) and returns its wait status.
    fn reap_helper(&mut self) -> Option<i32> {
        let pid = self.helper.take()?;
        let mut ws = 0;
        loop {
            // SAFETY: reaping our own child into a valid int.
            let r = unsafe { libc::waitpid(pid, &mut ws, 0) };
            if r == pid {
                return Some(ws);
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
    }

    /// Releases the child into `execve`, relays its I/O, enforces the timeout, and returns
    /// how it ended.
    ///
    /// While it waits, `SIGINT`, `SIGTERM` and `SIGHUP` sent to this process are forwarded
    /// to the command's process group (through the sandbox's pid 1): a handler is installed for
    /// each of them whose disposition is the default, and the previous disposition comes
    /// back when the last concurrent `wait` returns. The command decides what the signal
    /// does; if it dies of it, the outcome is [`ExitKind::Signaled`] (exit code 128+N).
    pub fn wait(mut self) -> Result<RunOutcome, SandboxError> {
        let forwarder = match Forwarder::install() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("signals are not forwarded to the sandbox: {e}");
                None
            }
        };
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
            let mut fds = [
                libc::pollfd { fd: self.ctl.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: forwarder.as_ref().map_or(-1, |f| f.fd()), events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: two valid pollfd entries (a negative fd is ignored).
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait_ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue; // a forwarded signal: its byte is in the pipe
                }
                return Err(e.into());
            }
            if fds[1].revents != 0 {
                if let Some(f) = &forwarder {
                    for sig in f.drain() {
                        tracing::debug!(sig, "forwarding a signal to the sandbox");
                        self.signal_reaper(sig);
                    }
                }
            }
            if n == 0 {
                if killed_at.is_none() {
                    tracing::debug!("timeout: killing the sandbox's pid namespace");
                    killed_at = Some(Instant::now());
                    self.kill_tree();
                } else {
                    if let Some(pid) = self.helper {
                        // SAFETY: signalling our own unreaped child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    self.kill_remote();
                    break;
                }
                continue;
            }
            if fds[0].revents == 0 {
                continue;
            }
            match proto::recv(self.ctl.as_raw_fd())? {
                None => break,
                Some((Msg::Done, _)) => {
                    // The pid namespace is gone and the cgroup removed; a zygote's call
                    // helper exits on its own.
                    self.remote = None;
                    self.cgroup = None;
                    break;
                }
                Some((Msg::Exit { wstatus }, _)) => status = Some(decode(wstatus)),
                Some((Msg::ExecFailed { errno }, _)) => exec_errno = Some(errno),
                Some((Msg::ReaperLost { wstatus }, _)) => lost = Some(wstatus),
                Some((other, _)) => tracing::debug!(?other, "unexpected message while running"),
            }
        }
        drop(forwarder);
        let duration = start.elapsed();
        let helper_status = self.reap_helper();
        self.end_remote();
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
                helper_status.map_or("unknown".into(), describe_status)
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
    /// A child that was never waited for is killed with its whole namespace. The helper
    /// then removes the sandbox's cgroup and exits; it is killed too if it takes too long.
    fn drop(&mut self) {
        if let Some(pid) = self.helper.take() {
            self.kill_tree();
            // SAFETY: shutdown of our own socket: the helper sees the hang-up (and kills the
            // reaper if we never got its pidfd).
            unsafe { libc::shutdown(self.ctl.as_raw_fd(), libc::SHUT_RDWR) };
            if wait_for(pid, KILL_GRACE).is_none() {
                // SAFETY: signalling and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
        if self.remote.is_some() || self.cgroup.is_some() {
            self.kill_tree();
            // SAFETY: shutdown of our own socket: the call's helper sees the hang-up and
            // kills its reaper if we never got the reaper's pidfd.
            unsafe { libc::shutdown(self.ctl.as_raw_fd(), libc::SHUT_RDWR) };
            self.end_remote();
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
