//! A one-shot run's helper forked ahead of its spec ([`crate::prestart`]), and its reaper
//! forked ahead too.
//!
//! The helper runs step 1's `setsid` and step 2's namespaces at once, compiles the seccomp
//! filter and enters the scratch root the view is built in (none of it depends on the
//! spec). Then, with a pid namespace and a scratch root of its own, it forks the reaper
//! before the spec comes too: the reaper, pid 1 of the new pid namespace, mounts its fresh
//! `/proc` and most of its `/dev` in the scratch root ([`crate::mounts::make_ahead`]), then
//! reads the spec ([`Msg::Begin`]) from the caller itself, tells the helper what it needs
//! of it ([`Msg::Begun`]: the cgroup and the network mode) on a socket of their own, and
//! goes on as a reaper forked after the spec does ([`super::reaper`]): the order of
//! application and every process's part in it are unchanged; only the reaper's fork and
//! those two mounts leave the path from the spec to the child. The helper, told, moves
//! the reaper into the cgroup where that move is slow, passes the caller the reaper's
//! pidfd (and the proxy's listener) and waits, as after any reaper's fork.
//!
//! Without a pid namespace, a mount namespace or the scratch root (best effort), or if
//! the reaper cannot be forked yet, the helper reads the spec itself and forks the reaper
//! after it, as [`super::run`] does.
//!
//! The end of the control stream before a spec came (the caller dropped its helper
//! unused): the reaper (or the helper) reads it and exits, and the helper with it; they
//! made nothing but namespaces of their own, which go with them.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::reaper::{self, CgroupEntry};
use super::{
    new_session, reaper_started, start_reaper, stop, strict_check_before_reaper, tell_reaper, HelperSide, State,
};
use crate::cgroup::SandboxCgroup;
use crate::error::SetupError;
use crate::layer::Applied;
use crate::namespaces::{self, Namespaces};
use crate::proto::{self, Failure, Msg};
use crate::report::EnforcementReport;
use crate::spec::{PathPlan, SandboxSpec};
use crate::sys::{self, exit_now};
use crate::timing;

/// How a helper forked ahead was started, for the report.
const LAUNCH_AHEAD: &str = "helper forked from the single-threaded caller before its spec was known (no re-exec)";
/// How a pid 1 forked ahead was started, for the report.
const LAUNCH_PID1: &str = "the sandbox's pid 1 forked from the single-threaded caller before its spec was known, straight into its namespaces (no helper process, no re-exec)";

/// What the helper made before its spec, for the steps after it.
struct Ahead {
    report: EnforcementReport,
    ns: Namespaces,
    /// The host's `/dev/null`, opened before the scratch root was entered (it has none).
    dev_null: Option<RawFd>,
    /// How entering the scratch root went (with a mount namespace).
    scratch: Option<std::io::Result<()>>,
}

/// The spec as `Begin` brought it: the standard descriptors given are in place.
struct Given {
    spec: SandboxSpec,
    pty: bool,
    /// The cgroup layer's status, as the caller decided it.
    applied: Applied,
    cgroup: Option<SandboxCgroup>,
}

/// Runs a helper forked ahead (the module docs).
pub(crate) fn run_ahead(ctl: RawFd) -> ! {
    let mut report = EnforcementReport::default();
    new_session(&mut report, LAUNCH_AHEAD);
    let ns = timing::time("namespaces", || namespaces::enter(&mut report));
    let mut ahead = before_the_spec(report, ns);
    if ns.pid && matches!(ahead.scratch, Some(Ok(()))) {
        ahead = match fork_reaper_ahead(ctl, ahead) {
            Ok(never) => match never {},
            Err(back) => back,
        };
    }
    let Given { spec, pty, applied, cgroup: cg } = receive_begin(ctl);
    let plan = timing::time("path plan", || PathPlan::with_host_root(&spec, host_root(&ahead.scratch)));
    // No `Warmup` here: forked now, its process would be the new pid namespace's init,
    // and its end would leave the namespace unable to fork the reaper (ENOMEM). The
    // caller started one when it made the cgroup (`Prestarted::spawn_meanwhile`).
    let st = state(ctl, ahead, spec, pty, plan, applied);
    strict_check_before_reaper(&st, cg.as_ref());
    start_reaper(st, ns, cg, None)
}

/// What does not depend on the spec, made once the namespaces `ns` are entered. The seccomp
/// filter: compiled while the caller builds the spec, the target only installs it (the one
/// with the exec notification: paddock supervises every run's execs; a spec without
/// supervision has its target compile the other). And, in a mount namespace of this
/// process's own, the scratch root the reaper builds the mount view in: entered now, the
/// host's root is at /oldroot from here on.
fn before_the_spec(report: EnforcementReport, ns: Namespaces) -> Ahead {
    timing::time("seccomp filter compiled", || crate::seccomp::prepare(true));
    let dev_null = ns.mount.then(|| sys::open_dev_null().ok()).flatten();
    let scratch =
        ns.mount.then(|| timing::time("mounts: scratch root, entered ahead", crate::mounts::enter_scratch_ahead));
    Ahead { report, ns, dev_null, scratch }
}

/// Runs the sandbox's pid 1 forked ahead straight into its namespaces ([`crate::prestart`]
/// cloned it into its user and pid namespaces, [`namespaces::CLONED`]; it enters the
/// others): it is the reaper and, for the steps a helper takes, its own helper. Step 1's `setsid`, step 2's id maps, `lo` and hostname,
/// the seccomp filter and the scratch root, as a helper forked ahead makes them; then the
/// reaper's part forked ahead ([`reaper_main`]), telling the caller its own pidfd once the
/// spec came. `handoff`: where the caller says how its move of this process into the
/// cgroup went (where that move is not quick). `ids`: the caller's uid and gid, read
/// before the clone.
pub(crate) fn run_pid1_ahead(ctl: RawFd, handoff: OwnedFd, ids: (libc::uid_t, libc::gid_t)) -> ! {
    reaper::begin();
    let mut report = EnforcementReport::default();
    new_session(&mut report, LAUNCH_PID1);
    let ns = timing::time("namespaces", || namespaces::cloned_then_entered(&mut report, ids.0, ids.1));
    let ahead = before_the_spec(report, ns);
    reaper_main(ctl, ahead, Tell::Caller, handoff)
}

/// Whom the reaper forked ahead tells, once the spec came, what the spec says of it.
enum Tell {
    /// The helper it was forked from, on their own socket ([`Msg::Begun`]).
    Helper(OwnedFd),
    /// The caller itself ([`super::tell_reaper`]): this process is its own helper.
    Caller,
}

/// Where the host's root is: under the scratch root once it is entered.
fn host_root(scratch: &Option<std::io::Result<()>>) -> &'static Path {
    match scratch {
        Some(Ok(())) => crate::mounts::host_root(),
        _ => Path::new("/"),
    }
}

/// The state the later steps carry, from what was made ahead and the spec.
fn state(ctl: RawFd, ahead: Ahead, spec: SandboxSpec, pty: bool, plan: PathPlan, applied: Applied) -> State {
    State {
        cgroup: applied,
        spec,
        pty,
        plan,
        report: ahead.report,
        ctl,
        pty_slave: None,
        zygote_view: None,
        landlock_ahead: None,
        scratch_ahead: ahead.scratch,
        mounts_ahead: None,
        dev_null: ahead.dev_null,
    }
}

/// Waits for the spec ([`Msg::Begin`]) on `ctl`, puts the standard descriptors it brought
/// in place and takes the cgroup. The end of the stream first: exits (nothing was made).
fn receive_begin(ctl: RawFd) -> Given {
    let (body, fds) = loop {
        match proto::recv_raw(ctl) {
            Ok(Some(m)) => break m,
            Ok(None) => exit_now(0),
            Err(e) if e.raw_os_error().is_some() => exit_now(0),
            Err(_) => {} // an unreadable message: ignored
        }
    };
    let Ok(Msg::Begin { spec, pty, cgroup, cgroup_dirs, stdio }) = proto::parse(&body) else {
        stop(ctl, Failure::Setup(SetupError::UnreadableSpec))
    };
    let mut fds = fds.into_iter();
    for (target, given) in stdio.iter().enumerate() {
        if !given {
            continue;
        }
        // Received, so above 2: no standard descriptor is clobbered.
        let Some(fd) = fds.next() else { stop(ctl, Failure::Setup(SetupError::UnreadableSpec)) };
        if sys::dup_onto_stdio(&fd, target as RawFd).is_err() {
            exit_now(125);
        }
    }
    let mut applied = cgroup;
    let cg = SandboxCgroup::received(&cgroup_dirs, fds.collect(), &mut applied);
    Given { spec: *spec, pty, applied, cgroup: cg }
}

/// Forks the reaper now (the module docs); on any failure to, `ahead` is handed back and
/// the helper goes on without.
fn fork_reaper_ahead(ctl: RawFd, ahead: Ahead) -> Result<Infallible, Ahead> {
    let Ok((link, link_child)) = proto::socketpair() else { return Err(ahead) };
    // Where the helper moves the reaper into the cgroup (not cgroup v1), it says on this
    // pipe how that went; made now, used only then.
    let Ok((handoff_r, handoff_w)) = crate::stdio::pipe() else { return Err(ahead) };
    let start = timing::now_ns();
    // SAFETY: the helper is single-threaded (forked from the single-threaded caller).
    match unsafe { sys::fork() } {
        Ok(0) => {
            timing::record("fork reaper", start);
            drop((link, handoff_w));
            reaper::begin();
            reaper_main(ctl, ahead, Tell::Helper(link_child), handoff_r)
        }
        Ok(pid) => {
            drop((link_child, handoff_r));
            helper_main(ctl, &ahead, pid, link, handoff_w)
        }
        Err(_) => Err(ahead),
    }
}

/// The reaper forked ahead (its [`reaper::begin`] done): `/proc` and `/dev` made (in the
/// scratch root, when it was entered), the spec read, the helper or the caller told
/// ([`Tell`]); then the reaper's steps.
fn reaper_main(ctl: RawFd, ahead: Ahead, tell: Tell, handoff: OwnedFd) -> ! {
    let made = matches!(ahead.scratch, Some(Ok(()))).then(|| crate::mounts::make_ahead(|| spec_came(ctl)));
    if !spec_came(ctl) {
        // As a zygote's spare does ([`crate::caps`]); the target reports the layer.
        let _ = timing::time("capability bounding set emptied, ahead", crate::caps::empty_bounding_set);
    }
    let Given { spec, pty, applied, cgroup: cg } = timing::time("spec read", || receive_begin(ctl));
    match tell {
        Tell::Helper(link) => {
            let (cgroup_dirs, fds) = cg.as_ref().map(SandboxCgroup::handover).unwrap_or_default();
            let begun = Msg::Begun { network: spec.network, cgroup_dirs };
            let told = timing::time("helper told", || proto::send(link.as_raw_fd(), &begun, &fds));
            if told.is_err() {
                // The helper is gone: so is this process, by its death signal.
                exit_now(125);
            }
        }
        Tell::Caller => tell_caller(ctl, &spec, cg.as_ref()),
    }
    let plan = timing::time("path plan", || PathPlan::with_host_root(&spec, host_root(&ahead.scratch)));
    let ns = ahead.ns;
    let mut st = state(ctl, ahead, spec, pty, plan, applied);
    st.mounts_ahead = made;
    strict_check_before_reaper(&st, cg.as_ref());
    // As a reaper forked after the spec enters it: moved by the helper where that move is
    // slow, by itself in cgroup v1.
    let entry = cg.map(|c| if c.quick_self_move() { CgroupEntry::Itself(c) } else { CgroupEntry::Helper(handoff) });
    reaper::main(st, ns, entry)
}

/// A pid 1 forked ahead, its spec read: passes the caller its own pidfd (and in proxy mode
/// the listener) as a helper would, then ends with the caller's end of `ctl` (`SIGIO`,
/// as a zygote's spare does), since no helper watches it. On failure the cgroup goes
/// first (the caller removes it too).
fn tell_caller(ctl: RawFd, spec: &SandboxSpec, cg: Option<&SandboxCgroup>) {
    let fail = |e: SetupError| -> ! {
        if let Some(c) = cg {
            c.remove();
        }
        stop(ctl, Failure::Setup(e))
    };
    match tell_reaper(ctl, sys::getpid(), spec.network, timing::take()) {
        Ok(_) => {}
        Err(Some(e)) => fail(e),
        Err(None) => exit_now(125),
    }
    if let Err(e) = crate::signals::reaper_watch_caller(ctl) {
        fail(SetupError::WatchCaller(e.into()));
    }
}

/// Whether the spec is there to read on `ctl` (or the stream ended).
fn spec_came(ctl: RawFd) -> bool {
    let mut fds = [libc::pollfd { fd: ctl, events: libc::POLLIN, revents: 0 }];
    matches!(sys::poll_raw(&mut fds, 0), Ok(n) if n > 0)
}

/// The helper once the reaper is forked ahead: waits for the reaper's word on `link`,
/// then goes on as after any reaper's fork ([`reaper_started`]). The reaper ending first
/// (the caller dropped the helper unused, or the reaper failed and told the caller): it is
/// reaped and the helper exits.
fn helper_main(
    ctl: RawFd,
    ahead: &Ahead,
    reaper: libc::pid_t,
    link: OwnedFd,
    handoff: OwnedFd,
) -> Result<Infallible, Ahead> {
    // The reaper has the phases so far and passes them on; this process's next ones go
    // with the `Reaper` message.
    timing::clear();
    let (network, cgroup_dirs, fds) = loop {
        match proto::recv(link.as_raw_fd()) {
            Ok(Some((Msg::Begun { network, cgroup_dirs }, fds))) => break (network, cgroup_dirs, fds),
            Ok(Some(_)) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The reaper ended (it told the caller why, or the caller is gone).
            Ok(None) => {
                let ws = sys::reap(reaper).unwrap_or(0);
                exit_now(if libc::WIFEXITED(ws) { libc::WEXITSTATUS(ws) } else { 125 })
            }
            // A word that cannot be read: the run stops here, the reaper with it.
            Err(_) => {
                sys::kill_and_reap(reaper);
                stop(ctl, Failure::Setup(SetupError::UnreadableReaperWord))
            }
        }
    };
    drop(link);
    let mut applied = Applied::new(crate::layer::LayerState::Enforced, "");
    let cg = SandboxCgroup::received(&cgroup_dirs, fds, &mut applied);
    let slow = cg.as_ref().is_some_and(|c| !c.quick_self_move());
    let side = HelperSide { ctl, network, dev_null: ahead.dev_null, one_shot: true };
    reaper_started(&side, reaper, cg.as_ref(), slow.then_some(handoff), None)
}
