//! The helper: the single-threaded process that runs the whole order of application, so
//! forking and allocating are safe. [`crate::spawn`] starts it one of two ways, and both
//! run [`run`]:
//!
//! * forked straight from the caller when the caller is single-threaded (nothing can hold
//!   a lock across the fork): no `execve`, no dynamic loading, the spec passed in memory;
//! * otherwise re-executed: `/proc/self/exe <MARKER> <spec fd> <control fd>`, which reads
//!   the spec as JSON from the inherited pipe ([`main`]).
//!
//! The session layer's detail says which. Then:
//!
//! 1. helper: the sandbox's cgroup ([`crate::cgroup`], while the host's cgroup tree is still
//!    in view); `setsid` (layer `session`);
//! 2. helper: namespaces ([`crate::namespaces`]); fork the reaper; in proxy mode create the
//!    listener and pass it, with the reaper's pidfd, to the parent; then wait for the
//!    reaper, kill it if the parent goes away, and remove the cgroup once it is reaped;
//! 3. reaper (pid 1 of the new pid namespace): move into the cgroup and take a cgroup
//!    namespace rooted there; the mount view ([`crate::mounts`]), `chdir`; install the
//!    signal forwarding ([`crate::signals`]); fork the target, reap every orphan, report the
//!    target's wait status, exit (which kills whatever the target left behind);
//! 4. target: default signal dispositions, `setsid` (+ the pty as controlling terminal), Landlock, rlimits, capabilities,
//!    no_new_privs, seccomp, descriptors; send the report; wait for the parent's release;
//!    `execve` with the spec's environment only.
//!
//! A strict run stops at the first step that finds a layer unavailable and reports it.
//!
//! A request with `zygote` set runs [`crate::zygote`]'s process instead, which forks one
//! call helper per call; those reuse the reaper and target steps here unchanged (the
//! reaper adds the per-call mounts, [`crate::mounts::per_call`], to the zygote's view).

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::proto::{self, Msg};
use crate::report::{EnforcementReport, LayerState};
use crate::spec::{Enforcement, NetworkMode, PathPlan, SandboxSpec};
use crate::sys::{self, cvt, cvt_long, exit_now};
use crate::{caps, cgroup, fds, landlock, limits, mounts, namespaces, pty, seccomp, signals};

/// `argv[1]` that turns the paddock binary into the helper.
pub const HELPER_MARKER: &str = "__paddock-sandbox-helper-v1__";

/// What the parent sends over the spec pipe.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub spec: SandboxSpec,
    /// The child gets the pty on 0, 1, 2 as its controlling terminal.
    pub pty: bool,
    /// How the helper was started, for the report.
    pub launch: String,
    /// Start a zygote ([`crate::Zygote`]) rather than one child.
    #[serde(default)]
    pub zygote: bool,
}

/// Everything the later steps need, carried through the forks.
pub(crate) struct State {
    pub spec: SandboxSpec,
    pub pty: bool,
    pub plan: PathPlan,
    pub report: EnforcementReport,
    pub cgroup: (LayerState, String),
    pub ctl: RawFd,
    /// The pty slave the target takes as its terminal.
    pub pty_slave: Option<OwnedFd>,
    /// A zygote's call: the mount view is the zygote's (built, private /tmp); the reaper
    /// only adds the per-call mounts.
    pub zygote_view: Option<(bool, bool)>,
}

impl State {
    pub(crate) fn fail(&self, layer: Option<&str>, detail: String) -> ! {
        let _ = proto::send(self.ctl, &Msg::Failed { layer: layer.map(str::to_string), detail }, &[]);
        exit_now(if layer.is_some() { 71 } else { 125 })
    }

    fn strict_check(&self) {
        if self.spec.enforcement == Enforcement::Strict {
            if let Some(l) = self.report.first_missing() {
                self.fail(Some(&l.name.clone()), l.detail.clone());
            }
        }
    }
}

/// The re-exec entry; `args` are the arguments after the marker.
pub(crate) fn main(mut args: impl Iterator<Item = OsString>) -> ! {
    let mut fd_arg = || -> Option<RawFd> { args.next()?.to_str()?.parse().ok() };
    let (Some(spec_fd), Some(ctl)) = (fd_arg(), fd_arg()) else { exit_now(125) };
    if spec_fd < 3 || ctl < 3 {
        exit_now(125)
    }
    // SAFETY: the parent passed this descriptor (the spec pipe's read end) for us to own.
    let mut spec_pipe = unsafe { std::fs::File::from_raw_fd(spec_fd) };
    let mut buf = Vec::with_capacity(16 * 1024);
    let read = spec_pipe.read_to_end(&mut buf);
    drop(spec_pipe);
    let req: Request = match read.ok().and_then(|_| serde_json::from_slice(&buf).ok()) {
        Some(r) => r,
        None => {
            let _ = proto::send(ctl, &Msg::Failed { layer: None, detail: "unreadable spec".into() }, &[]);
            exit_now(125)
        }
    };
    run(req, ctl)
}

/// Runs the helper: steps 1 and 2, and forks the reaper. `ctl` is the control socket.
pub(crate) fn run(req: Request, ctl: RawFd) -> ! {
    if req.zygote {
        crate::zygote::main(req, ctl)
    }
    let plan = PathPlan::new(&req.spec);
    let cg = cgroup::create(&req.spec.limits);
    let mut st = State {
        cgroup: (cg.state, cg.detail),
        spec: req.spec,
        pty: req.pty,
        plan,
        report: EnforcementReport::default(),
        ctl,
        pty_slave: None,
        zygote_view: None,
    };
    let cg = cg.cgroup;
    let fail = |st: &State, detail: String| -> ! {
        if let Some(c) = &cg {
            c.remove();
        }
        st.fail(None, detail)
    };

    // SAFETY: setsid has no memory-safety preconditions.
    match cvt(unsafe { libc::setsid() }) {
        Ok(_) => st.report.set(
            "session",
            LayerState::Enforced,
            format!("setsid: new session, no controlling terminal; {}", req.launch),
        ),
        Err(e) => st.report.set("session", LayerState::Unavailable, format!("setsid failed: {e}")),
    }
    let ns = namespaces::enter(&mut st.report);
    if st.spec.enforcement == Enforcement::Strict {
        if let Some(l) = st.report.first_missing() {
            if let Some(c) = &cg {
                c.remove();
            }
            st.fail(Some(&l.name.clone()), l.detail.clone());
        }
    }

    let reaper = match sys::fork() {
        Ok(0) => reaper_main(st, ns, cg),
        Ok(pid) => pid,
        Err(e) => fail(&st, format!("fork of the reaper failed: {e}")),
    };
    // SAFETY: pidfd_open on our own child, which cannot be reaped before we wait for it.
    let pidfd = match cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, reaper, 0) }) {
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        Err(e) => {
            kill_and_reap(reaper);
            fail(&st, format!("pidfd_open failed: {e}"))
        }
    };
    let listener = match st.spec.network {
        NetworkMode::Proxy { port } => match namespaces::proxy_listener(port) {
            Ok(l) => Some(l),
            Err(e) => {
                kill_and_reap(reaper);
                fail(&st, format!("proxy listener on 127.0.0.1:{port}: {e}"))
            }
        },
        NetworkMode::None => None,
    };
    let mut pass = vec![pidfd.as_raw_fd()];
    pass.extend(listener.as_ref().map(|l| l.as_raw_fd()));
    if proto::send(ctl, &Msg::Reaper { listener: listener.is_some() }, &pass).is_err() {
        kill_and_reap(reaper);
        if let Some(c) = &cg {
            c.remove();
        }
        exit_now(125)
    }
    drop(listener);
    if let Ok(null) = sys::open_dev_null() {
        sys::redirect_stdio(null);
    }
    helper_wait(ctl, reaper, &pidfd, cg.as_ref())
}

pub(crate) fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Waits for the reaper; kills it if the parent hangs up the control socket. Then the
/// cgroup, empty with the pid namespace gone, is removed.
pub(crate) fn helper_wait(ctl: RawFd, reaper: libc::pid_t, pidfd: &OwnedFd, cg: Option<&cgroup::SandboxCgroup>) -> ! {
    let remove = || {
        if let Some(c) = cg {
            c.remove();
        }
    };
    loop {
        let mut fds = [
            libc::pollfd { fd: ctl, events: 0, revents: 0 },
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfd entries.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            continue;
        }
        if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            kill_and_reap(reaper);
            remove();
            exit_now(125);
        }
        if fds[1].revents != 0 {
            let mut ws = 0;
            // SAFETY: reaping our own child into a valid int.
            unsafe { libc::waitpid(reaper, &mut ws, 0) };
            if !(libc::WIFEXITED(ws) && libc::WEXITSTATUS(ws) == 0) {
                let _ = proto::send(ctl, &Msg::ReaperLost { wstatus: ws }, &[]);
            }
            remove();
            let _ = proto::send(ctl, &Msg::Done, &[]);
            exit_now(0);
        }
    }
}

/// The reaper: pid 1 of the new pid namespace.
pub(crate) fn reaper_main(mut st: State, ns: namespaces::Namespaces, cg: Option<cgroup::SandboxCgroup>) -> ! {
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"paddock-reaper".as_ptr()) };
    if let Some(cg) = cg {
        match cg.enter() {
            Ok(()) if ns.cgroup => {
                // A cgroup namespace rooted at the sandbox's cgroup: the tree sees it as `/`.
                // SAFETY: unshare takes only flags; this process is single-threaded.
                if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
                    st.report.set("cgroup_ns", LayerState::Partial, "new namespace, rooted above the sandbox's cgroup");
                }
            }
            Ok(()) => {}
            Err(e) => {
                st.cgroup = (
                    LayerState::Unavailable,
                    format!("moving into the sandbox's cgroup failed: {e}; only RLIMIT_NPROC (per uid, not for root) and RLIMIT_AS (per process) bound memory and processes"),
                );
            }
        }
        drop(cg); // the descriptors; the helper removes the cgroup
    }
    let null = sys::open_dev_null().ok();
    let (mounts_ok, private_tmp) = if let Some((built, private_tmp)) = st.zygote_view {
        // A zygote's call: its own mount namespace, copied from the zygote's view.
        if built && ns.mount {
            match mounts::per_call(private_tmp, &st.plan, st.spec.limits.tmpfs_size()) {
                Ok((proc_ok, notes)) => {
                    let prev = st.report.get("mounts").map(|l| (l.state, l.detail.clone()));
                    let (mut state, mut detail) = prev.unwrap_or((LayerState::Enforced, String::new()));
                    detail.push_str(&format!(
                        "; per call: {}, fresh /dev/shm{}, tmpfs of {} each",
                        if proc_ok { "fresh /proc of the call's pid namespace" } else { "no /proc" },
                        if private_tmp { " and private /tmp" } else { "" },
                        st.spec.limits.tmpfs_size()
                    ));
                    if !notes.is_empty() {
                        detail.push_str("; ");
                        detail.push_str(&notes.join("; "));
                    }
                    if (!proc_ok || !notes.is_empty()) && state == LayerState::Enforced {
                        state = LayerState::Partial;
                    }
                    st.report.set("mounts", state, detail);
                }
                Err(e) => st.fail(None, format!("the call's mounts failed: {e}")),
            }
        } else if built {
            st.fail(None, "the call has no mount namespace of its own: its /proc and /tmp would be shared".into());
        }
        (built, private_tmp)
    } else if ns.mount {
        match mounts::build(&st.plan, st.pty, false, st.spec.limits.tmpfs_size()) {
            Ok(view) => {
                let (state, detail) = mounts::layer(&view, st.spec.enforcement == Enforcement::Strict);
                st.report.set("mounts", state, detail);
                (true, view.private_tmp)
            }
            Err(e) => st.fail(None, format!("building the mount view failed: {e}")),
        }
    } else {
        st.report.set("mounts", LayerState::Unavailable, "no mount namespace: the host's filesystem, Landlock only");
        (false, false)
    };
    st.strict_check();
    if st.pty {
        match pty::open_pair() {
            Ok((master, slave)) => {
                if proto::send(st.ctl, &Msg::Pty, &[master.as_raw_fd()]).is_err() {
                    exit_now(125);
                }
                st.pty_slave = Some(slave);
            }
            Err(e) => st.fail(None, format!("no pty in the sandbox: {e}")),
        }
    }
    if let Err(e) = std::env::set_current_dir(&st.spec.cwd) {
        st.fail(None, format!("cwd {} is not visible in the sandbox: {e}", st.spec.cwd.display()));
    }
    if !ns.pid {
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0);
    }
    signals::reaper_install();
    let target = match sys::fork() {
        Ok(0) => target_main(st, mounts_ok, private_tmp),
        Ok(pid) => pid,
        Err(e) => st.fail(None, format!("fork of the target failed: {e}")),
    };
    signals::reaper_set_target(target);
    drop(st.pty_slave.take());
    if let Some(null) = null {
        sys::redirect_stdio(null);
        // SAFETY: closing our own spare descriptor.
        unsafe { libc::close(null) };
    }
    loop {
        let mut ws = 0;
        // SAFETY: waiting for any child into a valid int.
        let pid = unsafe { libc::waitpid(-1, &mut ws, 0) };
        if pid == target {
            let _ = proto::send(st.ctl, &Msg::Exit { wstatus: ws }, &[]);
            exit_now(0);
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            exit_now(0);
        }
    }
}

/// The target: confines itself, reports, waits for the release, `execve`.
fn target_main(mut st: State, mounts_ok: bool, private_tmp: bool) -> ! {
    signals::target_reset();
    // SAFETY: setsid has no memory-safety preconditions (we are not a group leader).
    unsafe { libc::setsid() };
    if let Some(slave) = st.pty_slave.take() {
        if let Err(e) = pty::make_controlling(slave.as_raw_fd()) {
            st.fail(None, format!("the pty could not become the controlling terminal: {e}"));
        }
    }
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let program = match sys::cpath(&st.spec.program) {
        Ok(p) => p,
        Err(e) => st.fail(None, format!("program: {e}")),
    };
    let argv: Vec<CString> = st.spec.argv.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = st.spec.env.iter().map(|(k, v)| to_c(&format!("{k}={v}"))).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());

    let facts = landlock::Facts::of(&st.spec, &st.report, mounts_ok, st.zygote_view.is_some());
    let (s, d) = landlock::apply(&st.spec, &st.plan, &facts, private_tmp);
    st.report.set("landlock", s, d);
    let (s, d) = limits::apply(&st.spec.limits);
    st.report.set("rlimits", s, d);
    let (s, d) = st.cgroup.clone();
    st.report.set("cgroup", s, d);
    let (s, d) = caps::drop_all();
    st.report.set("caps", s, d);
    let (s, d) = caps::no_new_privs();
    st.report.set("no_new_privs", s, d);
    // exec supervision (issue 16): the listener filter, after no_new_privs; its descriptor
    // goes to the caller and is closed here.
    if let Some(control) = &st.spec.exec {
        let (s, d) = crate::exec_notify::install_and_send(st.ctl, control);
        st.report.set("exec", s, d);
    }
    let (s, d) = seccomp::install();
    st.report.set("seccomp", s, d);
    let (s, d) = fds::close_inherited(st.ctl);
    st.report.set("fds", s, d);
    st.report.set(
        "env",
        LayerState::Enforced,
        format!("{} variables from the spec, nothing inherited", st.spec.env.len()),
    );
    st.strict_check();
    if proto::send(st.ctl, &Msg::Ready { report: st.report.clone() }, &[]).is_err() {
        exit_now(125);
    }
    let mut go = [0u8; 1];
    match sys::read(st.ctl, &mut go) {
        Ok(1) if go[0] == proto::GO => {}
        _ => exit_now(125),
    }
    // SAFETY: program, argv and envp are NUL-terminated strings in null-terminated arrays,
    // all alive until execve replaces the process image.
    unsafe { libc::execve(program.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let _ = proto::send(st.ctl, &Msg::ExecFailed { errno }, &[]);
    exit_now(127)
}
