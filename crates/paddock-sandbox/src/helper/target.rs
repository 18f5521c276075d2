//! Steps 4 to 10, in the target: it confines itself layer by layer, sends the report,
//! waits for the caller's release and `execve`s the program with the spec's environment.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::state::{State, View};
use crate::error::SetupError;
use crate::layer::{Applied, Layer, LayerState};
use crate::proto::{self, Msg};
use crate::sys::{self, exit_now};
use crate::{caps, fds, landlock, limits, pty, seccomp, signals, timing};

/// The program, argv and environment as C strings and their null-terminated pointer
/// arrays, built before the layers are applied (nothing allocates between the filter and
/// `execve` but the report) and kept alive until `execve`.
struct Exec {
    program: CString,
    /// Owns the strings `argv_p` points into (heap buffers: moving `Exec` keeps them).
    _argv: Vec<CString>,
    /// Owns the strings `envp_p` points into.
    _envp: Vec<CString>,
    argv_p: Vec<*const libc::c_char>,
    envp_p: Vec<*const libc::c_char>,
}

/// The target: confines itself, reports, waits for the release, `execve`.
pub(super) fn main(mut st: State, view: View) -> ! {
    signals::target_reset();
    // A process group of its own: what the reaper forwards signals to. With a pty, a
    // session of its own too, to take the pty as its controlling terminal; without one it
    // stays in the helper's session, which has none (a new session is also a new
    // scheduler autogroup, whose first placement often cost the target a tick, 4 ms).
    // Not a group leader (the reaper is), so neither can fail.
    if st.pty_slave.is_some() {
        let _ = sys::setsid();
    } else {
        let _ = sys::new_process_group();
    }
    if let Some(slave) = st.pty_slave.take() {
        if let Err(e) = pty::make_controlling(&slave) {
            st.fail(SetupError::ControllingTerminal(e.into()));
        }
    }
    let exec = exec_args(&st);
    let listener = confine(&mut st, view);
    st.strict_check();
    // The exec listener goes with the report: one message, one wake-up of the caller.
    let ready = Msg::Ready { report: st.report.clone(), phases: timing::take() };
    let fd = listener.as_ref().map(AsRawFd::as_raw_fd);
    if proto::send(st.ctl, &ready, fd.as_slice()).is_err() {
        exit_now(125);
    }
    // The tree never holds its own supervisor's descriptor.
    let supervised = listener.is_some();
    drop(listener);
    // With its execs supervised, the `execve` itself waits: the supervisor answers it
    // once the caller released the child (`crate::ExecListener`). Else the release comes
    // here.
    if !supervised {
        let mut go = [0u8; 1];
        match sys::read(st.ctl, &mut go) {
            Ok(1) if go[0] == proto::GO => {}
            _ => exit_now(125),
        }
    }
    execve(&st, &exec)
}

/// The program's path, argv and environment as C strings.
fn exec_args(st: &State) -> Exec {
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let program = match sys::cpath(&st.spec.program) {
        Ok(p) => p,
        Err(e) => st.fail(SetupError::ProgramPath(e.into())),
    };
    let argv: Vec<CString> = st.spec.argv.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = st.spec.env.iter().map(|(k, v)| to_c(&format!("{k}={v}"))).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    Exec { program, _argv: argv, _envp: envp, argv_p, envp_p }
}

/// Steps 4 to 9 in the order of application, each recorded in the report; the listener of
/// the exec notification where the execs are supervised (for the caller, with the report).
fn confine(st: &mut State, view: View) -> Option<OwnedFd> {
    let facts = landlock::Facts::of(&st.spec, &st.report, view.built, st.zygote_view.is_some());
    let oom = limits::oom_first();
    let ahead = st.landlock_ahead.take();
    let applied = timing::time("landlock", || landlock::apply(ahead, &st.spec, &st.plan, &facts, view.private_tmp));
    st.report.record(Layer::Landlock, applied);
    st.report.record(Layer::Rlimits, timing::time("rlimits", || limits::apply(&st.spec.limits, oom)));
    st.report.record(Layer::Cgroup, st.cgroup.clone());
    st.report.record(Layer::Caps, timing::time("caps", caps::drop_all));
    st.report.record(Layer::NoNewPrivs, caps::no_new_privs());
    // After no_new_privs: the seccomp filter, with the exec notification linked in when
    // the execs are supervised (one filter: the kernel translates and compiles it once);
    // its listener goes to the caller.
    let mut listener = None;
    match &st.spec.exec {
        Some(control) => {
            let (applied, fd) = timing::time("seccomp", seccomp::install_supervised);
            let (exec, fd) = crate::exec_notify::layer(fd, control);
            listener = fd;
            st.report.record(Layer::Exec, exec);
            st.report.record(Layer::Seccomp, applied);
        }
        None => st.report.record(Layer::Seccomp, timing::time("seccomp", seccomp::install)),
    }
    let keep = [st.ctl, listener.as_ref().map_or(st.ctl, AsRawFd::as_raw_fd)];
    st.report.record(Layer::Fds, timing::time("fds", || fds::close_inherited(&keep)));
    st.report.record(
        Layer::Env,
        Applied::new(LayerState::Enforced, format!("{} variables from the spec, nothing inherited", st.spec.env.len())),
    );
    listener
}

/// `execve`; on failure the errno goes to the caller and the target exits 127.
fn execve(st: &State, exec: &Exec) -> ! {
    // SAFETY: argv_p and envp_p are null-terminated arrays of pointers into the CStrings
    // `exec` owns, alive until execve replaces the process image.
    let e = unsafe { sys::execve(&exec.program, &exec.argv_p, &exec.envp_p) };
    let errno = e.raw_os_error().unwrap_or(0);
    // The exit code 127 says it if the caller is gone.
    let _ = proto::send(st.ctl, &Msg::ExecFailed { errno }, &[]);
    exit_now(127)
}
