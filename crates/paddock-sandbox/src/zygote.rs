//! A zygote: the namespaces and mount view of one filesystem/network template, set up
//! once, from which each call forks a confined child (a session's calls cost little more
//! than a fork and `execve`).
//!
//! Order of application, split between the zygote (once) and each call:
//!
//! | step | where | once / per call |
//! |------|-------|-----------------|
//! | 1. `setsid` | zygote | once |
//! | 2. user, mount, net, ipc, uts namespaces; `lo` up | zygote | once |
//! | 3. mount view of the template (binds, deny masks, minimal /dev, private /tmp, `pivot_root`); the host's /proc stays bound beneath an empty tmpfs on `/proc`, since a user namespace may mount a proc only where one is fully visible | zygote | once |
//! | 4. cgroup made by the caller (its descriptors passed in; the call's helper removes it once the pid namespace is gone, the caller if that helper died) | caller | per call |
//! | 5. fork of the call's helper; new pid, mount, ipc and cgroup namespaces; proxy listener on the call's own port | call helper | per call |
//! | 6. reaper (pid 1): into the cgroup; fresh `/proc` of the call's pid namespace, fresh `/tmp` (when private) and `/dev/shm`; signal forwarding | reaper | per call |
//! | 7. target: Landlock, rlimits, capabilities, `no_new_privs`, seccomp, descriptors, release, `execve` | target | per call, exactly as [`crate::spawn`] |
//!
//! What a zygote's calls share: the filesystem view (so the deny, protect and hidden masks
//! and the masked sockets are those of the zygote's start: a file created later beneath a deny glob is not masked
//! until the next zygote; Landlock still applies the paths' rights per call), the network
//! namespace (`lo` only; Landlock limits each call's TCP to its own proxy port and scopes
//! its abstract unix sockets, both required of a strict call, so ABI ≥ 6; but UDP on `lo`,
//! and under best-effort below ABI 6 abstract unix sockets, can reach a concurrent call),
//! the uts namespace and the user namespace (the caller's uid, mapped to itself).
//! Each call has its own pid namespace and `/proc`, its own SysV IPC, `/tmp` (when the
//! view's is private) and `/dev/shm`, its own cgroup, Landlock domain and seccomp filter.
//!
//! The zygote reads one `Spawn` message at a time from its control socket (concurrent
//! [`Zygote::spawn`] calls are separate datagrams) and forks; the call's helper then talks
//! to the caller on the call's own socket exactly as [`crate::spawn`]'s helper does, so the
//! returned [`Running`] behaves the same: parked before `execve` until [`Running::wait`],
//! the timeout kills the call's pid namespace, output captured and capped, a report per
//! call. If the zygote dies, [`Zygote::spawn`] fails; calls already started go on.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cgroup::{self, SandboxCgroup};
use crate::helper::{self, Request, State};
use crate::parent::{self, above_stdio, make_stdio, ChildStdio, Running};
use crate::proto::{self, Msg};
use crate::report::{EnforcementReport, LayerState};
use crate::spec::{Enforcement, NetworkMode, PathPlan, SandboxSpec, StdioMode};
use crate::sys::{self, cvt_long, exit_now};
use crate::{mounts, namespaces, SandboxError};

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
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote").field("pid", &self.pid).field("report", &self.report).finish_non_exhaustive()
    }
}

fn open_null() -> std::io::Result<OwnedFd> {
    let fd = sys::open_dev_null()?;
    // SAFETY: a new descriptor that nothing else owns.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; on success we own the new descriptor.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl Zygote {
    /// Starts a zygote for `template`'s filesystem and network fields (its program, argv,
    /// environment, limits and stdio are not used). With [`Enforcement::Strict`] a missing
    /// namespace or mount view fails here.
    pub fn start(template: &SandboxSpec) -> Result<Zygote, SandboxError> {
        template.validate()?;
        let (ctl, ctl_child) = proto::socketpair()?;
        let ctl_child = above_stdio(ctl_child)?;
        let stdio = ChildStdio { stdin: Some(open_null()?), stdout: Some(open_null()?), stderr: Some(open_null()?) };
        let mut spec = template.clone();
        spec.stdio = StdioMode::Capture { stdin: None };
        let threads = parent::thread_count();
        let pid = if threads == Some(1) {
            let req = Request {
                spec,
                pty: false,
                launch: "zygote forked from the single-threaded caller (no re-exec)".into(),
                zygote: true,
            };
            parent::fork_helper(req, ctl_child, stdio)
                .map_err(|e| SandboxError::Spawn(format!("fork of the zygote: {e}")))?
        } else {
            let req =
                Request { spec, pty: false, launch: "zygote re-executed from /proc/self/exe".into(), zygote: true };
            parent::reexec_helper(&req, ctl_child, stdio)?
        };
        let mut z = Zygote {
            ctl,
            pid: Some(pid),
            pidfd: pidfd_open(pid).ok(),
            report: EnforcementReport::default(),
            template: template.clone(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !proto::poll_in(&z.ctl, left.as_millis() as i32)? {
                return Err(SandboxError::Spawn("the zygote did not start within 30 s".into()));
            }
            match proto::recv(z.ctl.as_raw_fd())? {
                None => {
                    return Err(SandboxError::Spawn(
                        "the zygote ended before it was ready; does main() call paddock_sandbox::helper_main_if_requested() first?".into(),
                    ))
                }
                Some((Msg::ZygoteReady { report, .. }, _)) => {
                    z.report = report;
                    break;
                }
                Some((Msg::Failed { layer: Some(layer), detail }, _)) => return Err(SandboxError::LayerUnavailable { layer, detail }),
                Some((Msg::Failed { layer: None, detail }, _)) => return Err(SandboxError::Spawn(detail)),
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
            Some(fd) => !proto::poll_in(fd, 0).unwrap_or(true),
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
        static SEQ: AtomicU64 = AtomicU64::new(0);
        call.validate()?;
        self.accepts(call)?;
        // SAFETY: getpid cannot fail.
        let name = format!("paddock-{}-z{}", unsafe { libc::getpid() }, SEQ.fetch_add(1, Ordering::Relaxed));
        let cg = cgroup::create_named(&call.limits, &name);
        let (ctl, ctl_child) = proto::socketpair()?;
        let ctl_child = above_stdio(ctl_child)?;
        let (stdio, ends) = make_stdio(call, false)?;
        let stdin = match stdio.stdin {
            Some(fd) => fd,
            // Inherit: the caller's own stdin, or /dev/null when it has none.
            None => {
                // SAFETY: F_DUPFD_CLOEXEC of descriptor 0 only creates a new descriptor.
                let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
                if fd >= 0 {
                    // SAFETY: the new descriptor is ours alone.
                    unsafe { OwnedFd::from_raw_fd(fd) }
                } else {
                    open_null()?
                }
            }
        };
        let (Some(out), Some(err)) = (stdio.stdout, stdio.stderr) else {
            return Err(SandboxError::Spawn("no stdout/stderr pipes for the call".into()));
        };
        let mut fds = vec![ctl_child.as_raw_fd(), stdin.as_raw_fd(), out.as_raw_fd(), err.as_raw_fd()];
        let mut cgroup_dirs = Vec::new();
        if let Some(c) = &cg.cgroup {
            let (names, cg_fds) = c.handover();
            cgroup_dirs = names;
            fds.extend(cg_fds);
        }
        let mut spec = call.clone();
        if let StdioMode::Capture { stdin } = &mut spec.stdio {
            *stdin = None; // the caller writes those bytes itself
        }
        let msg = Msg::Spawn { spec: Box::new(spec), cgroup: (cg.state, cg.detail), cgroup_dirs };
        if let Err(e) = proto::send(self.ctl.as_raw_fd(), &msg, &fds) {
            if let Some(c) = &cg.cgroup {
                c.remove();
            }
            return Err(SandboxError::Spawn(format!("the zygote is gone: {e}")));
        }
        drop((ctl_child, stdin, out, err));
        let mut running = Running::new(call, ctl, None);
        running.set_cgroup(cg.cgroup);
        parent::handshake(running, ends, call, false)
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // SAFETY: shutdown of our own socket: the zygote reads end of stream and exits.
        unsafe { libc::shutdown(self.ctl.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(pid) = self.pid.take() {
            if parent::wait_for(pid, KILL_GRACE).is_none() {
                // SAFETY: signalling and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }
}

/// What the zygote process keeps for its calls.
struct ZygoteState {
    ctl: RawFd,
    report: EnforcementReport,
    mounts_ok: bool,
    private_tmp: bool,
}

fn fail(ctl: RawFd, layer: Option<&str>, detail: String) -> ! {
    let _ = proto::send(ctl, &Msg::Failed { layer: layer.map(str::to_string), detail }, &[]);
    exit_now(if layer.is_some() { 71 } else { 125 })
}

fn strict_check(spec: &SandboxSpec, report: &EnforcementReport, ctl: RawFd) {
    if spec.enforcement == Enforcement::Strict {
        if let Some(l) = report.first_missing() {
            fail(ctl, Some(&l.name.clone()), l.detail.clone());
        }
    }
}

/// The zygote process: steps 1 to 3, then one fork per `Spawn`. Never returns.
pub(crate) fn main(req: Request, ctl: RawFd) -> ! {
    let plan = PathPlan::new(&req.spec);
    let mut report = EnforcementReport::default();
    // SAFETY: setsid has no memory-safety preconditions.
    match sys::cvt(unsafe { libc::setsid() }) {
        Ok(_) => report.set(
            "session",
            LayerState::Enforced,
            format!("setsid: new session, no controlling terminal; {}", req.launch),
        ),
        Err(e) => report.set("session", LayerState::Unavailable, format!("setsid failed: {e}")),
    }
    let ns = namespaces::enter_only(&mut report, namespaces::ZYGOTE);
    strict_check(&req.spec, &report, ctl);
    if let Some(l) = report.get("net_ns").cloned() {
        report.set("net_ns", l.state, format!("{}; shared by the session's calls", l.detail));
    }
    let (mounts_ok, private_tmp) = if ns.mount {
        match mounts::build(&plan, false, true, req.spec.limits.tmpfs_size()) {
            Ok(view) => {
                let (state, detail) = mounts::layer(&view, req.spec.enforcement == Enforcement::Strict);
                report.set("mounts", state, format!("{detail} (built once, shared by the session's calls)"));
                (true, view.private_tmp)
            }
            Err(e) => fail(ctl, None, format!("building the mount view failed: {e}")),
        }
    } else {
        report.set("mounts", LayerState::Unavailable, "no mount namespace: the host's filesystem, Landlock only");
        (false, false)
    };
    strict_check(&req.spec, &report, ctl);
    let _ = std::env::set_current_dir("/");
    let ready = Msg::ZygoteReady { report: report.clone(), mounts_ok, private_tmp };
    if proto::send(ctl, &ready, &[]).is_err() {
        exit_now(125);
    }
    if let Ok(null) = sys::open_dev_null() {
        sys::redirect_stdio(null);
        // SAFETY: closing our own spare descriptor.
        unsafe { libc::close(null) };
    }
    // The calls' helpers are reaped by the kernel (they report to the caller themselves).
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    // Compile the seccomp filters once: every call forked from here inherits them.
    crate::seccomp::prepare();
    let z = ZygoteState { ctl, report, mounts_ok, private_tmp };
    loop {
        match proto::recv(ctl) {
            Ok(None) => exit_now(0),
            Ok(Some((Msg::Spawn { spec, cgroup, cgroup_dirs }, fds))) => {
                start_call(&z, *spec, cgroup, &cgroup_dirs, fds)
            }
            Ok(Some(_)) => {}
            Err(e) if e.raw_os_error().is_some() => exit_now(0),
            Err(_) => {} // an unreadable message: ignored
        }
    }
}

/// Forks the call's helper; the zygote keeps none of the call's descriptors.
fn start_call(
    z: &ZygoteState,
    spec: SandboxSpec,
    cgroup: (LayerState, String),
    cgroup_dirs: &[String],
    fds: Vec<OwnedFd>,
) {
    if fds.len() < 4 {
        if let Some(c) = fds.first() {
            let _ =
                proto::send(c.as_raw_fd(), &Msg::Failed { layer: None, detail: "malformed spawn request".into() }, &[]);
        }
        return;
    }
    match sys::fork() {
        Ok(0) => call_main(z, spec, cgroup, cgroup_dirs, fds),
        Ok(_) => {}
        Err(e) => {
            let _ = proto::send(
                fds[0].as_raw_fd(),
                &Msg::Failed { layer: None, detail: format!("fork of the call's helper failed: {e}") },
                &[],
            );
        }
    }
}

/// The call's helper: the caller's stdio on 0, 1, 2; its pidfd to the caller; new pid,
/// mount, ipc, cgroup namespaces; the reaper; the proxy listener; then waits like the
/// one-shot helper.
fn call_main(
    z: &ZygoteState,
    spec: SandboxSpec,
    mut cgroup: (LayerState, String),
    cgroup_dirs: &[String],
    fds: Vec<OwnedFd>,
) -> ! {
    // SAFETY: restoring the default disposition installs no handler; the reaper's waitpid
    // needs SIGCHLD not ignored.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // SAFETY: closing the zygote's control socket in this process only: no call may speak
    // to the zygote.
    unsafe { libc::close(z.ctl) };
    let mut fds = fds.into_iter();
    let (Some(ctl), Some(i), Some(o), Some(e)) = (fds.next(), fds.next(), fds.next(), fds.next()) else {
        exit_now(125)
    };
    for (fd, target) in [(&i, 0), (&o, 1), (&e, 2)] {
        // SAFETY: dup2 of our own descriptor (received, so above 2) onto a standard one.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } == -1 {
            exit_now(125);
        }
    }
    drop((i, o, e));
    let cg_fds: Vec<OwnedFd> = fds.collect();
    let cg = if cg_fds.is_empty() {
        None
    } else {
        let cg = SandboxCgroup::from_handover(cgroup_dirs, cg_fds);
        if cg.is_none() {
            cgroup = (LayerState::Unavailable, "the call's cgroup was not handed over whole".into());
        }
        cg
    };
    let ctl = ctl.into_raw_fd(); // kept for the life of the process (close-on-exec)
    match pidfd_open(std::process::id() as libc::pid_t) {
        Ok(me) => {
            if proto::send(ctl, &Msg::CallHelper, &[me.as_raw_fd()]).is_err() {
                exit_now(125);
            }
        }
        Err(err) => fail(ctl, None, format!("pidfd_open of the call's helper: {err}")),
    }
    let mut st = State {
        plan: PathPlan::new(&spec),
        spec,
        pty: false,
        report: z.report.clone(),
        cgroup,
        ctl,
        pty_slave: None,
        zygote_view: Some((z.mounts_ok, z.private_tmp)),
    };
    let ns = namespaces::enter_only(&mut st.report, namespaces::PER_CALL);
    if let Some(l) = st.report.get("mount_ns").cloned() {
        if l.state == LayerState::Enforced {
            st.report.set("mount_ns", l.state, "the zygote's, then one of the call's own (its /proc, /tmp, /dev/shm)");
        }
    }
    if st.spec.enforcement == Enforcement::Strict {
        if let Some(l) = st.report.first_missing() {
            st.fail(Some(&l.name.clone()), l.detail.clone());
        }
    }
    let network = st.spec.network;
    let reaper = match sys::fork() {
        Ok(0) => helper::reaper_main(st, ns, cg),
        Ok(pid) => pid,
        Err(err) => st.fail(None, format!("fork of the reaper failed: {err}")),
    };
    let pidfd = match pidfd_open(reaper) {
        Ok(fd) => fd,
        Err(err) => {
            helper::kill_and_reap(reaper);
            st.fail(None, format!("pidfd_open failed: {err}"))
        }
    };
    let listener = match network {
        NetworkMode::Proxy { port } => match namespaces::proxy_listener(port) {
            Ok(l) => Some(l),
            Err(err) => {
                helper::kill_and_reap(reaper);
                st.fail(None, format!("proxy listener on 127.0.0.1:{port}: {err}"))
            }
        },
        NetworkMode::None => None,
    };
    let mut pass = vec![pidfd.as_raw_fd()];
    pass.extend(listener.as_ref().map(|l| l.as_raw_fd()));
    if proto::send(ctl, &Msg::Reaper { listener: listener.is_some() }, &pass).is_err() {
        helper::kill_and_reap(reaper);
        exit_now(125)
    }
    drop(listener);
    if let Ok(null) = sys::open_dev_null() {
        sys::redirect_stdio(null);
        // SAFETY: closing our own spare descriptor.
        unsafe { libc::close(null) };
    }
    // Removes the cgroup once the reaper, and so the call's pid namespace, is gone.
    helper::helper_wait(ctl, reaper, &pidfd, cg.as_ref())
}
