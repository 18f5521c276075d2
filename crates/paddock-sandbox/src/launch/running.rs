//! [`Running`]: a confined child parked before `execve`; [`Running::wait`] releases it,
//! relays its I/O, enforces the timeout and collects its status.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::SetupError;
use crate::layer::Layer;
use crate::proto::{self, Msg};
use crate::pty::RawMode;
use crate::relay::StreamResult;
use crate::report::{describe_wait_status, EnforcementReport, ExitKind, RunOutcome};
use crate::signals::Forwarder;
use crate::spec::{Limits, SandboxSpec};
use crate::sys;
use crate::workers::Job;
use crate::SandboxError;

/// How long the pid namespace may take to die after the timeout's SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A confined child that is ready to run: every layer is in place and reported, and the
/// target waits for [`Running::wait`] to release it into `execve`.
pub struct Running {
    /// The helper's pid, until it is reaped.
    pub(super) helper: Option<libc::pid_t>,
    pub(super) ctl: OwnedFd,
    pub(super) reaper: Option<OwnedFd>,
    pub(super) listener: Option<OwnedFd>,
    pub(super) report: EnforcementReport,
    pub(super) stdout: Option<Job<StreamResult>>,
    pub(super) stderr: Option<Job<StreamResult>>,
    pub(super) stdin: Option<Job<()>>,
    pub(super) pty: Option<(JoinHandle<StreamResult>, Arc<AtomicBool>)>,
    pub(super) raw_mode: Option<RawMode>,
    pub(super) limits: Limits,
    pub(super) program: PathBuf,
    /// A zygote's call: the pidfd of the call's helper (a child of the zygote, not ours),
    /// until the call ends.
    pub(super) remote: Option<OwnedFd>,
    /// The zygote call's helper is its pid 1 too (a spare): no process is left to report
    /// how that one ended.
    pub(super) remote_pid1: bool,
    /// The process [`Running::helper`] names is the sandbox's pid 1 itself (forked ahead
    /// into its namespaces, [`crate::prestart`]): no helper is left to report how it
    /// ended, so its own wait status says it.
    pub(super) helper_is_pid1: bool,
    /// A zygote's call: the cgroup the caller made for it, removed once the call ends.
    pub(super) cgroup: Option<crate::cgroup::SandboxCgroup>,
    /// Exec supervision: the seccomp listener of the tree's execs.
    pub(super) exec_listener: Option<crate::ExecListener>,
    /// Exec supervision: the write end of the listener's `release`; a byte on it lets the
    /// supervisor answer the program's own exec.
    pub(super) exec_release: Option<OwnedFd>,
    /// [`Running::release_code_after`]: how long after the release.
    pub(super) release_code: Option<Duration>,
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
        sys::pidfd_send_signal(self.0.as_fd(), libc::SIGKILL)
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

impl Running {
    pub(crate) fn new(spec: &SandboxSpec, ctl: OwnedFd, helper: Option<libc::pid_t>) -> Running {
        let mut r = Running::new_empty(ctl);
        r.limits = spec.limits;
        r.program = spec.program.clone();
        r.helper = helper;
        r
    }

    /// Holds only `ctl` (what [`Running::tear_down_later`] fills in).
    fn new_empty(ctl: OwnedFd) -> Running {
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
            limits: Limits::default(),
            program: PathBuf::new(),
            helper: None,
            remote: None,
            remote_pid1: false,
            helper_is_pid1: false,
            cgroup: None,
            exec_listener: None,
            exec_release: None,
            release_code: None,
        }
    }

    /// A zygote's call: the cgroup to remove once it ends.
    pub(crate) fn set_cgroup(&mut self, cg: Option<crate::cgroup::SandboxCgroup>) {
        self.cgroup = cg;
    }

    /// The process it reaps is the sandbox's pid 1, not a helper ([`Running::helper_is_pid1`]).
    pub(crate) fn set_helper_is_pid1(&mut self, pid1: bool) {
        self.helper_is_pid1 = pid1;
    }
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
    /// the tree (the program's own first) waits, and once it is closed they fail (one not
    /// taken is closed by [`Running::wait`]).
    pub fn take_exec_listener(&mut self) -> Option<crate::ExecListener> {
        self.exec_listener.take()
    }

    /// Exec supervision: the listener received from the target, and the pipe through
    /// which [`Running::wait`] releases its first exec.
    pub(super) fn set_exec_listener(&mut self, fd: OwnedFd) -> std::io::Result<()> {
        let (release, release_w) = crate::stdio::pipe()?;
        self.exec_listener = Some(crate::ExecListener { fd, release });
        self.exec_release = Some(release_w);
        Ok(())
    }

    /// For a process that starts one sandbox and then only waits for it (`paddock run`):
    /// once the child has run for `after`, [`Running::wait`] unmaps from this process the
    /// pages of code and read-only data it faulted in to get there (policy, start-up,
    /// sandbox set-up). They stay in the page cache; what runs again faults back in. A
    /// process serving other work at the same time should not ask for this: each of its
    /// threads would fault its code back in.
    pub fn release_code_after(&mut self, after: Duration) {
        self.release_code = Some(after);
    }

    fn signal_reaper(&self, sig: libc::c_int) -> bool {
        self.reaper.as_ref().is_some_and(|pidfd| sys::pidfd_send_signal(pidfd.as_fd(), sig))
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
            sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        }
    }

    /// A zygote's call has ended (or is abandoned): make sure its helper is gone (it exits
    /// once its reaper, and so the call's pid namespace, is gone), then remove the call's
    /// cgroup.
    fn end_remote(&mut self) {
        if let Some(fd) = self.remote.take() {
            if !sys::poll_in(&fd, Some(KILL_GRACE)).unwrap_or(false) {
                sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                // Best effort: a helper that outlives this grace dies with its reaper.
                let _ = sys::poll_in(&fd, Some(KILL_GRACE));
            }
        }
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
    }

    /// Reaps the helper, which said it is done, on a thread of its own unless it has ended
    /// already.
    fn reap_helper_later(&mut self) {
        let Some(pid) = self.helper.take() else { return };
        if sys::try_reap(pid).is_some() {
            return;
        }
        if !later(c"paddock-reap", move || {
            let _ = sys::reap(pid);
        }) {
            sys::reap(pid);
        }
    }

    /// The tree has ended, the helper side has not said `Done` yet: on a thread of its
    /// own ([`finish_teardowns`] waits for it), the helper's `Done` (or its end) is waited
    /// for, then the helper reaped and a zygote call's helper and cgroup seen to, as
    /// [`Running::wait`] does itself otherwise.
    fn tear_down_later(&mut self) {
        let Ok(ctl) = self.ctl.try_clone() else { return };
        let mut rest = Running::new_empty(ctl);
        rest.helper = self.helper.take();
        rest.remote = self.remote.take();
        rest.cgroup = self.cgroup.take();
        rest.reaper = self.reaper.as_ref().and_then(|r| r.try_clone().ok());
        let work = move || {
            // `Done`, or the end of the stream, within the grace; then as `Running::wait`.
            let deadline = Instant::now() + KILL_GRACE;
            while let Ok(true) = sys::poll_in(&rest.ctl, Some(deadline.saturating_duration_since(Instant::now()))) {
                match proto::recv(rest.ctl.as_raw_fd()) {
                    Ok(Some((Msg::Done, _))) => {
                        rest.cgroup = None; // removed by the helper
                        rest.remote = None; // a zygote's call helper exits on its own
                        break;
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            if let Some(pid) = rest.helper.take() {
                if sys::wait_for(pid, KILL_GRACE).is_none() {
                    sys::kill_and_reap(pid);
                }
            }
            rest.end_remote();
        };
        // Without a thread, `rest` is dropped here, which waits for the helper.
        later(c"paddock-teardown", work);
    }

    /// Waits for the helper (blocking) and returns its wait status.
    pub(super) fn reap_helper(&mut self) -> Option<i32> {
        sys::reap(self.helper.take()?)
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
        // A target whose execs are supervised is already in its `execve`, held by the
        // supervisor until the release byte (a listener not given to a supervisor is
        // closed here, which fails it). Any other target reads the `GO`; one that does
        // not must not get it: a byte left unread when the socket's last holder exits
        // resets the stream (ECONNRESET) instead of ending it.
        drop(self.exec_listener.take());
        match self.exec_release.take() {
            // A supervisor that is gone has closed the listener: the exec fails.
            Some(w) => {
                let _ = sys::write_all(w.as_raw_fd(), &[proto::GO]);
            }
            // A helper that is gone shows up as the end of the control stream below.
            None => {
                let _ = proto::send_raw(self.ctl.as_raw_fd(), &[proto::GO], &[]);
            }
        }
        let start = Instant::now();
        let ended = self.watch(forwarder.as_ref(), start)?;
        drop(forwarder);
        let duration = start.elapsed();
        crate::timing::phase("child: released until its tree ended", start);
        let end = Instant::now();
        // Once the helper said it is done (the tree gone, the cgroup removed), what is
        // left is its own exit (its namespaces torn down, an RCU grace period or two):
        // not waited for when the run's end is known.
        let helper_status = if ended.gone && !ended.done {
            self.tear_down_later();
            None
        } else if ended.done && ended.known() {
            self.reap_helper_later();
            None
        } else {
            self.reap_helper()
        };
        self.end_remote();
        crate::timing::phase("helper reaped", end);
        let end = Instant::now();
        let (out, err) = self.join_relays();
        crate::timing::phase("output relayed", end);
        let status = self.exit_kind(&ended, helper_status)?;
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

    /// How long the next poll may wait: the rest of the kill grace once killed, else the
    /// rest of the timeout (and a millisecond, so the poll ends past the deadline), else
    /// forever. A timeout of any length stays a timeout (no `as i32` wrapping into an
    /// infinite wait).
    fn poll_timeout(killed_at: Option<Instant>, deadline: Option<Instant>) -> Option<Duration> {
        match (killed_at, deadline) {
            (Some(k), _) => Some(KILL_GRACE.saturating_sub(k.elapsed())),
            (None, Some(d)) => {
                Some(d.saturating_duration_since(Instant::now()).saturating_add(Duration::from_millis(1)))
            }
            (None, None) => None,
        }
    }

    /// The loop of [`Running::wait`]: forwards signals, enforces the timeout and collects
    /// the helper side's messages until the control stream ends.
    fn watch(&mut self, forwarder: Option<&Forwarder>, start: Instant) -> Result<Ended, SandboxError> {
        // A deadline beyond what the clock can hold is none (it would never come).
        let deadline = self.limits.timeout.and_then(|t| start.checked_add(t));
        let mut release_at = self.release_code.and_then(|d| start.checked_add(d));
        let mut ended = Ended::default();
        loop {
            let mut wait_ms = Self::poll_timeout(ended.killed_at, deadline);
            if let Some(at) = release_at {
                let until = at.saturating_duration_since(Instant::now());
                wait_ms = Some(wait_ms.map_or(until, |w| w.min(until)));
            }
            let (n, ctl_ready, signalled) = match self.poll_once(forwarder, wait_ms) {
                Ok(r) => r,
                // A forwarded signal: its byte is in the pipe.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if signalled {
                if let Some(f) = forwarder {
                    for sig in f.drain() {
                        tracing::debug!(sig, "forwarding a signal to the sandbox");
                        self.signal_reaper(sig);
                    }
                }
            }
            if n == 0 {
                if release_at.is_some_and(|at| Instant::now() >= at) {
                    release_at = None;
                    sys::release_code();
                    continue;
                }
                if ended.killed_at.is_none() {
                    tracing::debug!("timeout: killing the sandbox's pid namespace");
                    ended.killed_at = Some(Instant::now());
                    self.kill_tree();
                    continue;
                }
                if let Some(pid) = self.helper {
                    sys::kill(pid, libc::SIGKILL);
                }
                self.kill_remote();
                return Ok(ended);
            }
            if !ctl_ready {
                continue;
            }
            match proto::recv(self.ctl.as_raw_fd())? {
                None => {
                    // A call whose pid 1 is its helper (a zygote's spare) that ended
                    // without the target's status was killed: the init of a pid namespace
                    // dies of no signal it has no handler for but `SIGKILL` (the caller
                    // ending the call, `Session::kill_running`, the OOM killer).
                    if self.remote_pid1 && !ended.known() {
                        ended.lost = Some(libc::SIGKILL);
                    }
                    // A pid 1 of this process's that ended without the target's status:
                    // its own wait status says how (it closed the stream on its way out).
                    if self.helper_is_pid1 && !ended.known() {
                        ended.lost = Some(self.reap_helper().unwrap_or(libc::SIGKILL));
                    }
                    return Ok(ended);
                }
                Some((Msg::Done, _)) => {
                    // The pid namespace is gone and the cgroup removed; a zygote's call
                    // helper exits on its own.
                    self.remote = None;
                    self.cgroup = None;
                    ended.done = true;
                    return Ok(ended);
                }
                Some((Msg::Exit { wstatus, gone }, _)) => {
                    crate::timing::phase("child: released until its exit status", start);
                    ended.status = Some(ExitKind::from_wait_status(wstatus));
                    if gone && ended.killed_at.is_none() {
                        // The tree has ended: what is left (the reaper's exit, the cgroup's
                        // removal, the helper's `Done`) is not waited for here.
                        ended.gone = true;
                        return Ok(ended);
                    }
                }
                Some((Msg::ExecFailed { errno }, _)) => ended.exec_errno = Some(errno),
                Some((Msg::ReaperLost { wstatus }, _)) => ended.lost = Some(wstatus),
                Some((other, _)) => tracing::debug!(?other, "unexpected message while running"),
            }
        }
    }

    /// One poll of the control socket and the signal pipe: how many are ready, and whether
    /// each is.
    fn poll_once(
        &self,
        forwarder: Option<&Forwarder>,
        timeout: Option<Duration>,
    ) -> std::io::Result<(usize, bool, bool)> {
        use rustix::event::{PollFd, PollFlags};
        let mut fds = vec![PollFd::new(&self.ctl, PollFlags::IN)];
        if let Some(f) = forwarder {
            fds.push(PollFd::from_borrowed_fd(f.fd(), PollFlags::IN));
        }
        let n = sys::poll(&mut fds, timeout)?;
        let ready = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
        Ok((n, ready(0), ready(1)))
    }

    /// Joins the output relays (and the stdin writer) once the child is gone.
    fn join_relays(&mut self) -> (StreamResult, StreamResult) {
        let pid_ns = self.report.is_active(Layer::PidNs);
        let join = |h: Option<Job<StreamResult>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        let streams = if let Some((h, stop)) = self.pty.take() {
            if !pid_ns {
                stop.store(true, Ordering::Relaxed);
            }
            (h.join().unwrap_or_default(), StreamResult::default())
        } else {
            (join(self.stdout.take()), join(self.stderr.take()))
        };
        if let Some(h) = self.stdin.take() {
            // A writer that panicked only lost the child's input, which has ended.
            let _ = h.join();
        }
        self.raw_mode = None;
        streams
    }

    /// How the child ended, from what [`Running::watch`] saw.
    fn exit_kind(&self, ended: &Ended, helper_status: Option<i32>) -> Result<ExitKind, SandboxError> {
        if ended.killed_at.is_some() {
            Ok(ExitKind::TimedOut)
        } else if let Some(errno) = ended.exec_errno {
            Err(SandboxError::Exec {
                program: self.program.display().to_string(),
                source: std::io::Error::from_raw_os_error(errno),
            })
        } else if let Some(s) = ended.status {
            Ok(s)
        } else if let Some(ws) = ended.lost {
            tracing::warn!(wstatus = ws, "the sandbox's reaper ended without reporting");
            Ok(ExitKind::from_wait_status(ws))
        } else {
            Err(SandboxError::Spawn(SetupError::NoStatus(helper_status.map_or("unknown".into(), describe_wait_status))))
        }
    }
}

/// The teardowns [`Running::wait`] left running ([`finish_teardowns`]).
static TEARDOWNS: std::sync::Mutex<Vec<Job<()>>> = std::sync::Mutex::new(Vec::new());

/// Runs `work` on a worker thread named `name` ([`crate::workers`]) that
/// [`finish_teardowns`] joins; whether it started.
fn later(name: &'static std::ffi::CStr, work: impl FnOnce() + Send + 'static) -> bool {
    let mut list = TEARDOWNS.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|t| !t.is_finished());
    match crate::workers::spawn(name, work) {
        Ok(t) => {
            list.push(t);
            true
        }
        Err(e) => {
            tracing::debug!(?name, "no thread for it: {e}");
            false
        }
    }
}

/// Waits until what is left of every ended run is gone: [`Running::wait`] returns once
/// the tree has ended, and the helper side's own end (the sandbox's namespaces torn
/// down, the cgroup removed, the helper reaped) finishes on a thread. A process that
/// exits after its runs (`paddock run`) calls this first, so that it leaves nothing
/// behind.
pub fn finish_teardowns() {
    let list = std::mem::take(&mut *TEARDOWNS.lock().unwrap_or_else(|e| e.into_inner()));
    for t in list {
        let _ = t.join();
    }
}

/// What [`Running::watch`] saw of the child's end.
#[derive(Default)]
struct Ended {
    status: Option<ExitKind>,
    exec_errno: Option<i32>,
    lost: Option<i32>,
    killed_at: Option<Instant>,
    /// The helper side said `Done`: the tree is gone and the cgroup removed.
    done: bool,
    /// The reaper said, with the exit status, that no other process of the tree was left.
    gone: bool,
}

impl Ended {
    /// Whether the run's end is known without the helper's own wait status.
    fn known(&self) -> bool {
        self.status.is_some() || self.exec_errno.is_some() || self.lost.is_some() || self.killed_at.is_some()
    }
}

impl Drop for Running {
    /// A child that was never waited for is killed with its whole namespace. The helper
    /// then removes the sandbox's cgroup and exits; it is killed too if it takes too long.
    fn drop(&mut self) {
        if let Some(pid) = self.helper.take() {
            self.kill_tree();
            // The helper sees the hang-up (and kills the reaper if we never got its pidfd).
            sys::shutdown(&self.ctl);
            if sys::wait_for(pid, KILL_GRACE).is_none() {
                sys::kill_and_reap(pid);
            }
        }
        if self.remote.is_some() || self.cgroup.is_some() {
            self.kill_tree();
            // The call's helper sees the hang-up and kills its reaper if we never got the
            // reaper's pidfd.
            sys::shutdown(&self.ctl);
            self.end_remote();
        }
        if let Some((_, stop)) = &self.pty {
            stop.store(true, Ordering::Relaxed);
        }
    }
}
