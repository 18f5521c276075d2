//! A helper forked ahead of its spec: [`prestart`] forks the sandbox helper before the
//! caller knows what it will run (before it loads its policy), and the helper starts a new
//! session and enters its namespaces meanwhile, on the other core; [`Prestarted::spawn_meanwhile`]
//! then makes the sandbox's cgroup here, sends the spec and goes on as
//! [`crate::spawn_meanwhile`] does.
//!
//! Not a confinement step: this runs in the caller. The helper's steps and their order are
//! those of [`crate::helper`]; only the cgroup is made by the caller (as for a zygote's
//! call), the path plan comes after the namespaces, and the reaper may be forked before
//! the spec comes (it then reads the spec itself: [`crate::helper`]'s `ahead`). A helper
//! that is never given a spec reads the end of its control stream when the [`Prestarted`]
//! is dropped and exits: it made nothing but namespaces of its own, which go with it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{fork_helper_side, handshake, Running};
use crate::cgroup;
use crate::error::SetupError;
use crate::proto::{self, Msg};
use crate::pty;
use crate::spec::{SandboxSpec, StdioMode};
use crate::stdio::{above_stdio, make_stdio, ChildStdio, ParentStdio};
use crate::sys;
use crate::timing;
use crate::SandboxError;

/// The workers started while the sandbox is built ([`Prestarted::spawn_meanwhile`]): the
/// exec supervisor's and the teardown's.
const IDLE_WORKERS: usize = 2;

/// How long a dropped, unused helper may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A sandbox helper forked ahead ([`prestart`]): in a session of its own and its own
/// namespaces, waiting for the spec of the one child it will confine. Give it that spec
/// with [`Prestarted::spawn_meanwhile`]; dropped unused, it exits.
#[derive(Debug)]
pub struct Prestarted {
    pid: libc::pid_t,
    /// `None` once handed to the [`Running`] it started.
    ctl: Option<OwnedFd>,
    /// When it was forked (`CLOCK_MONOTONIC`): the origin of its phases' offsets.
    origin: u64,
    /// How long its fork took here (logged with the spec's send: the fork may come before
    /// the program's logging is set up).
    forked_in: Duration,
    /// In cgroup v2, the no-op move started when the cgroup was made, whose grace period
    /// the reaper's move shares (the helper cannot fork it: a process forked in its new
    /// pid namespace would be its init). Reaped with this.
    warm: Option<cgroup::Warmup>,
}

/// Forks the sandbox helper now, before its spec is known, so that its new session and
/// namespaces are made while this process loads its policy and builds the spec; `None`
/// when this process is not single-threaded (the helper can only be forked from a single
/// thread; [`crate::spawn`] then re-executes it) or the fork failed (the spawn then starts
/// a helper as usual).
///
/// For a caller that starts one sandbox soon (`paddock run`); a helper kept unused holds a
/// process and its namespaces until it is dropped.
pub fn prestart() -> Option<Prestarted> {
    if sys::thread_count() != Some(1) {
        return None;
    }
    let started = Instant::now();
    let origin = timing::now_ns();
    let (ctl, ctl_child) = proto::socketpair().ok()?;
    let ctl_child = above_stdio(ctl_child).ok()?;
    let none = ChildStdio { stdin: None, stdout: None, stderr: None };
    let pid = fork_helper_side(ctl_child, none, |ctl| crate::helper::run_ahead(ctl)).ok()?;
    Some(Prestarted { pid, ctl: Some(ctl), origin, forked_in: started.elapsed(), warm: None })
}

impl Prestarted {
    /// [`crate::spawn_meanwhile`] with this helper: makes the sandbox's cgroup, sends the
    /// spec, runs `meanwhile` while the helper side builds the sandbox, and waits for the
    /// report. The child is parked before `execve` until [`Running::wait`].
    ///
    /// From the spec's send on, this process keeps its worker threads (they wait a few
    /// seconds for the next job before they end) and starts the call's exec supervisor's
    /// and teardown's ahead: a later [`prestart`] in the same process finds it
    /// multi-threaded and returns `None` (the spawn then re-executes its helper).
    pub fn spawn_meanwhile<T>(
        mut self,
        spec: &SandboxSpec,
        meanwhile: &mut dyn FnMut() -> T,
    ) -> (Result<Running, SandboxError>, Option<T>) {
        let started = Instant::now();
        let (running, ends, use_pty) = match self.begin(spec) {
            Ok(s) => s,
            // The helper is gone before it got its spec (killed): one started now.
            Err(Begin::Gone(e)) => {
                tracing::debug!("the helper forked ahead is gone ({e}); another one is started");
                drop(self);
                return super::spawn_meanwhile(spec, meanwhile);
            }
            Err(Begin::Failed(e)) => return (Err(e), None),
        };
        let done = meanwhile();
        // This process forks no helper itself any more (one that replaced a dead helper
        // would be re-executed): the threads the call needs once its report comes (the
        // exec supervisor, the teardown) start now, while the helper side builds the
        // sandbox, and wait for their jobs.
        crate::workers::keep_workers();
        crate::workers::start_idle(IDLE_WORKERS);
        let r = handshake(running, ends, spec, use_pty, self.origin);
        timing::phase("sandbox start, in all", started);
        (r, Some(done))
    }

    /// The cgroup made, the spec and the descriptors sent: a [`Running`] that now owns the
    /// helper.
    fn begin(&mut self, spec: &SandboxSpec) -> Result<(Running, ParentStdio, bool), Begin> {
        timing::phase_took("helper fork", self.forked_in);
        let failed = |e: SandboxError| Begin::Failed(e);
        spec.validate().map_err(failed)?;
        // A helper that is gone (killed) takes the reaper it forked ahead with it (its death
        // signal), but that one may hold the control socket a moment longer, so the send
        // below could still succeed: asked here.
        if let Some(ws) = sys::try_reap(self.pid) {
            self.pid = 0;
            let why = crate::report::describe_wait_status(ws);
            return Err(Begin::Gone(std::io::Error::other(format!("the helper ended ({why})"))));
        }
        let use_pty = matches!(spec.stdio, StdioMode::Pty) && pty::stdin_is_tty();
        let (stdio, ends) = make_stdio(spec, use_pty).map_err(|e| failed(e.into()))?;
        let t = Instant::now();
        let cg = cgroup::create(&spec.limits);
        self.warm = cg.warm_up();
        timing::phase("cgroup", t);
        let given = [&stdio.stdin, &stdio.stdout, &stdio.stderr];
        let mut fds: Vec<RawFd> = given.iter().filter_map(|f| f.as_ref().map(|f| f.as_raw_fd())).collect();
        let cgroup_dirs = cg.hand_over(&mut fds);
        let msg = Msg::Begin {
            spec: Box::new(spec.for_helper()),
            pty: use_pty,
            cgroup: cg.applied,
            cgroup_dirs,
            stdio: given.map(Option::is_some),
        };
        let Some(ctl) = self.ctl.take() else {
            return Err(failed(SetupError::HelperEnded("already given a spec".into()).into()));
        };
        if let Err(e) = proto::send(ctl.as_raw_fd(), &msg, &fds) {
            if let Some(c) = &cg.cgroup {
                c.remove();
            }
            self.ctl = Some(ctl);
            return Err(Begin::Gone(e));
        }
        drop(stdio);
        let mut running = Running::new(spec, ctl, Some(self.pid));
        // The helper removes it once the tree is gone; this process too, if the helper
        // never says so (the removal of a removed directory is a no-op).
        running.set_cgroup(cg.cgroup);
        self.pid = 0; // the Running reaps it
        Ok((running, ends, use_pty))
    }
}

/// Why [`Prestarted::begin`] did not start the sandbox.
enum Begin {
    /// The helper could not be given its spec (it is gone): another one can be started.
    Gone(std::io::Error),
    /// The spec or this process's part failed, as it would for any helper.
    Failed(SandboxError),
}

impl Drop for Prestarted {
    /// An unused helper reads the end of its control stream and exits; it is reaped here
    /// (killed if it takes too long).
    fn drop(&mut self) {
        if self.pid <= 0 {
            return;
        }
        drop(self.ctl.take());
        if sys::wait_for(self.pid, EXIT_GRACE).is_none() {
            sys::kill_and_reap(self.pid);
        }
    }
}
