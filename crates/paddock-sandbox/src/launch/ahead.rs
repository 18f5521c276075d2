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
//!
//! Unless this process is root with supplementary groups (which a helper drops before it
//! enters a user namespace, and a clone into one cannot), [`prestart`] clones the sandbox's pid 1
//! itself into a new user and pid namespace instead of forking a helper
//! ([`crate::helper::run_pid1_ahead`]): one process fewer per run. This process then plays
//! the rest of the helper's part: it moves the pid 1 into the cgroup where that move waits
//! for a grace period (on a worker thread, while the pid 1 builds its view), reaps it,
//! and removes the cgroup ([`Running`]).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{fork_helper_side, fork_side_into, handshake, Running};
use crate::cgroup::{self, SandboxCgroup};
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
    /// The process forked is the sandbox's pid 1 itself, cloned into its namespaces
    /// ([`crate::helper::run_pid1_ahead`]), not a helper: where its move into the cgroup
    /// is not quick, this process makes it and says how it went on this pipe.
    pid1: Option<OwnedFd>,
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
    let none = || ChildStdio { stdin: None, stdout: None, stderr: None };
    // The sandbox's pid 1 cloned straight into its namespaces: no helper process between
    // this one and the sandbox. Unless this process is root with supplementary groups (a
    // helper drops them before it enters a user namespace; a clone into one cannot, and a
    // user other than root keeps its groups either way), and where the kernel takes the
    // clone; otherwise a helper forked as before.
    let ids = sys::ids();
    if ids.0 != 0 || sys::no_supplementary_groups() {
        if let (Ok(ctl_child), Ok((handoff_r, handoff_w))) = (ctl_child.try_clone(), crate::stdio::pipe()) {
            let flags = crate::namespaces::flags_of(crate::namespaces::CLONED);
            // This clone is the reaper's fork: its phase, in the reaper's time line.
            let fork_start = timing::now_ns();
            let run = move |ctl, handoff: Option<OwnedFd>| {
                timing::record("fork reaper", fork_start);
                match handoff {
                    Some(h) => crate::helper::run_pid1_ahead(ctl, h, ids),
                    None => sys::exit_now(125),
                }
            };
            match fork_side_into(flags, ctl_child, Some(handoff_r), none(), run) {
                Ok(pid) => {
                    let forked_in = started.elapsed();
                    return Some(Prestarted {
                        pid,
                        pid1: Some(handoff_w),
                        ctl: Some(ctl),
                        origin,
                        forked_in,
                        warm: None,
                    });
                }
                Err(e) => tracing::debug!("no clone into every namespace ahead ({e}): a helper is forked instead"),
            }
        }
    }
    let pid = fork_helper_side(ctl_child, none(), |ctl| crate::helper::run_ahead(ctl)).ok()?;
    Some(Prestarted { pid, pid1: None, ctl: Some(ctl), origin, forked_in: started.elapsed(), warm: None })
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
        let (running, ends, use_pty, placing) = match self.begin(spec) {
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
        // Done by now where the sandbox is ready (its pid 1 waited for the word).
        if let Some(job) = placing {
            let _ = job.join();
        }
        timing::phase("sandbox start, in all", started);
        (r, Some(done))
    }

    /// The cgroup made, the spec and the descriptors sent: a [`Running`] that now owns the
    /// helper.
    fn begin(&mut self, spec: &SandboxSpec) -> Result<(Running, ParentStdio, bool, Placing), Begin> {
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
        // A pid 1 forked ahead is moved by a thread of this process ([`Prestarted::place`]),
        // whose move starts the grace period itself.
        if self.pid1.is_none() {
            self.warm = cg.warm_up();
        }
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
        let pid1 = self.pid1.is_some();
        let placing = self.place(cg.cgroup.as_ref());
        let mut running = Running::new(spec, ctl, Some(self.pid));
        // The helper removes it once the tree is gone; this process too, if the helper
        // never says so (the removal of a removed directory is a no-op). A pid 1 forked
        // ahead has no helper: this process removes it.
        running.set_cgroup(cg.cgroup);
        running.set_helper_is_pid1(pid1);
        self.pid = 0; // the Running reaps it
        Ok((running, ends, use_pty, placing))
    }

    /// A pid 1 forked ahead, where its own move into `cg` would wait for an RCU grace
    /// period (not cgroup v1): moves it there on a worker thread (as a helper would, while
    /// it builds its view) and writes how that went on its pipe (a word: 0, or the errno);
    /// on this thread if no worker can start. The job, to be joined once the sandbox is
    /// ready. Nothing to do otherwise: the pid 1 moves itself, or there is no cgroup.
    fn place(&mut self, cg: Option<&SandboxCgroup>) -> Placing {
        let handoff = self.pid1.take()?;
        let cg = cg.filter(|c| !c.quick_self_move())?;
        let pid = self.pid;
        // Without its descriptors the move is made here: the pid 1 waits for the word.
        let mover = cg.mover();
        let work = move || {
            let t = Instant::now();
            let moved = match &mover {
                Ok(m) => m.place(pid),
                Err(e) => Err(std::io::Error::from(e.kind())),
            };
            let word = match moved {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            };
            timing::phase("cgroup: pid 1 moved in, by the caller", t);
            // A pid 1 that is gone ends the run anyway; the caller hears of it.
            let _ = sys::write_all(handoff.as_raw_fd(), &i32::to_ne_bytes(word));
        };
        crate::workers::keep_workers();
        let (tx, rx) = std::sync::mpsc::channel();
        let job = crate::workers::spawn(c"paddock-cgroup", move || work_once(&rx));
        match job {
            Ok(j) => {
                let _ = tx.send(Box::new(work) as Box<dyn FnOnce() + Send>);
                Some(j)
            }
            Err(_) => {
                work();
                None
            }
        }
    }
}

/// Runs the one job sent on `rx`.
fn work_once(rx: &std::sync::mpsc::Receiver<Box<dyn FnOnce() + Send>>) {
    if let Ok(work) = rx.recv() {
        work();
    }
}

/// The move of a pid 1 forked ahead into its cgroup, on a worker ([`Prestarted::place`]).
type Placing = Option<crate::workers::Job<()>>;

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
