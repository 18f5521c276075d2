//! The caller's side of a [`Zygote`]: it starts the zygote process, checks that a call
//! fits its template, makes the call's cgroup and hands the call over.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::cgroup;
use crate::error::SetupError;
use crate::launch::{self, Running};
use crate::layer::Applied;
use crate::proto::{self, Msg, Request};
use crate::report::EnforcementReport;
use crate::spec::{NetworkMode, SandboxSpec, StdioMode};
use crate::stdio::{self, above_stdio, make_stdio, ChildStdio, ParentStdio};
use crate::sys;
use crate::SandboxError;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A long-lived helper holding a template's namespaces and mount view; see the module
/// docs. Dropping it ends the zygote (calls already started go on).
pub struct Zygote {
    ctl: OwnedFd,
    pid: Option<libc::pid_t>,
    pidfd: Option<OwnedFd>,
    report: EnforcementReport,
    template: SandboxSpec,
    /// Keeps the calls' cgroup moves fast while calls come ([`crate::cgroup::Warmer`]):
    /// started with the first call that wants a cgroup.
    warmer: std::sync::OnceLock<Option<crate::cgroup::Warmer>>,
    /// The calls' cgroups, made one call ahead where this process is multi-threaded.
    cgroups: cgroup::CallCgroups,
    /// The report each recent call shape started with ([`super::expect`]).
    expected: super::expect::Expected,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote").field("pid", &self.pid).field("report", &self.report).finish_non_exhaustive()
    }
}

impl Zygote {
    /// Starts a zygote for `template`'s filesystem and network fields (its program, argv,
    /// environment, limits and stdio are not used). With [`crate::Enforcement::Strict`] a missing
    /// namespace or mount view fails here.
    pub fn start(template: &SandboxSpec) -> Result<Zygote, SandboxError> {
        template.validate()?;
        let (ctl, ctl_child) = proto::socketpair()?;
        let ctl_child = above_stdio(ctl_child)?;
        let stdio =
            ChildStdio { stdin: Some(stdio::null()?), stdout: Some(stdio::null()?), stderr: Some(stdio::null()?) };
        let mut spec = template.clone();
        spec.stdio = StdioMode::Capture { stdin: None };
        let threads = sys::thread_count();
        let pid = if threads == Some(1) {
            let req = Request {
                spec,
                pty: false,
                launch: "zygote forked from the single-threaded caller (no re-exec)".into(),
                zygote: true,
            };
            launch::fork_helper(req, ctl_child, stdio).map_err(|e| SetupError::ForkZygote(e.into()))?
        } else {
            let req =
                Request { spec, pty: false, launch: "zygote re-executed from /proc/self/exe".into(), zygote: true };
            launch::reexec_helper(&req, ctl_child, stdio)?
        };
        let mut z = Zygote {
            ctl,
            pid: Some(pid),
            pidfd: sys::pidfd_open(pid).ok(),
            report: EnforcementReport::default(),
            template: template.clone(),
            warmer: std::sync::OnceLock::new(),
            cgroups: cgroup::CallCgroups::default(),
            expected: Default::default(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !sys::poll_in(&z.ctl, Some(left))? {
                return Err(SetupError::ZygoteTimeout.into());
            }
            match proto::recv(z.ctl.as_raw_fd())? {
                None => return Err(SetupError::ZygoteEnded.into()),
                Some((Msg::ZygoteReady { report, .. }, _)) => {
                    z.report = report;
                    break;
                }
                Some((Msg::Failed(failure), _)) => return Err(failure.into()),
                Some((other, _)) => tracing::debug!(?other, "unexpected message from the zygote"),
            }
        }
        tracing::debug!(zygote = pid, report = ?z.report, "zygote ready");
        Ok(z)
    }

    /// The layers the zygote applied once for all its calls (each call's [`Running`]
    /// reports every layer).
    pub fn report(&self) -> &EnforcementReport {
        &self.report
    }

    /// The template the zygote was started with.
    pub fn template(&self) -> &SandboxSpec {
        &self.template
    }

    /// False once the zygote process has ended.
    pub fn is_alive(&self) -> bool {
        match &self.pidfd {
            Some(fd) => !sys::poll_in(fd, Some(Duration::ZERO)).unwrap_or(true),
            None => true,
        }
    }

    /// Whether `call` can run in this zygote: the same read, write and deny paths and
    /// enforcement, no pty, and a network the zygote's namespace serves (a `None` call in a
    /// proxy zygote gets no listener, and Landlock denies its TCP).
    pub fn accepts(&self, call: &SandboxSpec) -> Result<(), SandboxError> {
        let t = &self.template;
        let bad = |what: &str| Err(SandboxError::InvalidSpec(format!("the call's {what} differs from the zygote's")));
        if call.read_paths != t.read_paths {
            return bad("read paths");
        }
        if call.write_paths != t.write_paths {
            return bad("write paths");
        }
        if call.deny_paths != t.deny_paths {
            return bad("deny paths");
        }
        if call.deny_globs != t.deny_globs || call.protect_globs != t.protect_globs {
            return bad("deny or protect globs");
        }
        if call.hidden_paths != t.hidden_paths {
            return bad("hidden paths");
        }
        if call.enforcement != t.enforcement {
            return bad("enforcement");
        }
        match (t.network, call.network) {
            (NetworkMode::None, NetworkMode::None) | (NetworkMode::Proxy { .. }, _) => {}
            _ => return bad("network"),
        }
        if matches!(call.stdio, StdioMode::Pty) {
            return Err(SandboxError::InvalidSpec("a zygote's calls have no pty".into()));
        }
        Ok(())
    }

    /// Starts one call: returns once it is confined and parked before `execve`, like
    /// [`crate::spawn`]. Its program, argv, cwd, environment, limits, stdio and proxy port
    /// are its own; the rest must be the template's ([`Zygote::accepts`]). In proxy mode
    /// each concurrent call needs a port of its own (the listener is bound in the shared
    /// network namespace).
    pub fn spawn(&self, call: &SandboxSpec) -> Result<Running, SandboxError> {
        self.spawn_meanwhile(call, &mut |_| ()).0
    }

    /// [`Zygote::spawn`], running `meanwhile` in this process while the call's helper sets
    /// the call up, as [`crate::spawn_meanwhile`] does; `None` when the call was not sent.
    ///
    /// `meanwhile` is given the report the call is expected to start with: the one the
    /// zygote's last call of the same shape (its spec but the argv and the environment's
    /// values) reported, with this call's cgroup status. So the caller can record the call
    /// while it is set up, and let it run only if [`Running::report`] is that report. `None`
    /// for the first call of a shape, and for every call once an expectation did not hold.
    pub fn spawn_meanwhile<T>(
        &self,
        call: &SandboxSpec,
        meanwhile: &mut dyn FnMut(Option<&EnforcementReport>) -> T,
    ) -> (Result<Running, SandboxError>, Option<T>) {
        let origin = crate::timing::now_ns();
        let started = std::time::Instant::now();
        let (running, ends, cgroup) = match self.send_call(call, started) {
            Ok(s) => s,
            Err(e) => {
                self.cgroups.started();
                return (Err(e), None);
            }
        };
        let shape = super::expect::shape(call);
        let expected = self.expected.of(&shape, &cgroup);
        let done = meanwhile(expected.as_ref());
        let r = launch::handshake(running, ends, call, false, origin);
        crate::timing::phase("zygote call start, in all", started);
        if let Ok(r) = &r {
            self.expected.started(shape, expected.as_ref(), r.report());
        }
        // The next call's cgroup is made from now on, not while this one entered its own.
        self.cgroups.started();
        (r, Some(done))
    }

    /// The first half of [`Zygote::spawn`]: the call's cgroup made, its `Spawn` sent; the
    /// cgroup's status as the call will report it.
    fn send_call(
        &self,
        call: &SandboxSpec,
        started: std::time::Instant,
    ) -> Result<(Running, ParentStdio, Applied), SandboxError> {
        call.validate()?;
        self.accepts(call)?;
        let cg = self.cgroups.take(&call.limits);
        // The reaper moves itself in; where that waits for a grace period (not cgroup v1).
        if cg.slow_move() {
            if let Some(w) = self.warmer.get_or_init(crate::cgroup::Warmer::start) {
                w.touch();
            }
        }
        crate::timing::phase("call cgroup", started);
        let (ctl, ctl_child) = proto::socketpair()?;
        let ctl_child = above_stdio(ctl_child)?;
        let (stdio, ends) = make_stdio(call, false)?;
        let stdin = match stdio.stdin {
            Some(fd) => fd,
            // Inherit: the caller's own stdin, or /dev/null when it has none.
            None => stdio::own_stdin_or_null()?,
        };
        let (Some(out), Some(err)) = (stdio.stdout, stdio.stderr) else {
            return Err(SetupError::CallPipes.into());
        };
        let mut fds = vec![ctl_child.as_raw_fd(), stdin.as_raw_fd(), out.as_raw_fd(), err.as_raw_fd()];
        let cgroup_dirs = cg.hand_over(&mut fds);
        let spec = call.for_helper();
        let applied = cg.applied.clone();
        let msg = Msg::Spawn { spec: Box::new(spec), cgroup: cg.applied, cgroup_dirs };
        if let Err(e) = proto::send(self.ctl.as_raw_fd(), &msg, &fds) {
            if let Some(c) = &cg.cgroup {
                c.remove();
            }
            return Err(SetupError::ZygoteGone(e.into()).into());
        }
        drop((ctl_child, stdin, out, err));
        let mut running = Running::new(call, ctl, None);
        running.set_cgroup(cg.cgroup);
        Ok((running, ends, applied))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // The zygote reads the end of the stream and exits.
        sys::shutdown(&self.ctl);
        if let Some(pid) = self.pid.take() {
            if sys::wait_for(pid, KILL_GRACE).is_none() {
                sys::kill_and_reap(pid);
            }
        }
    }
}
