//! Confine one child process on Linux.
//!
//! `paddock-sandbox` takes a [`SandboxSpec`] (a program, its argv, environment and working
//! directory, the paths it may read, write and must not see, its network and limits) and
//! runs the program so that the kernel, not the program's good behaviour, keeps it inside.
//! It returns how the child ended ([`RunOutcome`]) and what was enforced
//! ([`EnforcementReport`]). It knows nothing of policies, HTTP, audit or sessions, and it
//! holds all of paddock's `unsafe` code, each block with a `// SAFETY:` comment.
//!
//! # Order of application
//!
//! The caller never runs confinement code itself: [`spawn`] starts a single-threaded
//! helper, forked straight from the caller when the caller is single-threaded, and
//! otherwise re-executed from the current binary ([`helper_main_if_requested`] must be the
//! first thing `main` does); the session layer's detail says which. The helper applies, in
//! this order, one module per concern:
//!
//! | step | where | module |
//! |------|-------|--------|
//! | 1. a fresh cgroup bounding the tree (pids, memory), when one can be had; `setsid` | helper | `cgroup`, `helper` |
//! | 2. user, mount, pid, net, ipc, uts, cgroup namespaces; `lo` up; proxy listener | helper | `namespaces` |
//! | 3. mount view (ro/rw binds, deny masks, /proc, /dev, /tmp, `pivot_root`); in the cgroup (the helper moves the reaper meanwhile) + a cgroup namespace rooted there; signal forwarding | reaper, pid 1 | `cgroup`, `mounts`, `signals` |
//! | 4. Landlock (filesystem, TCP, scopes) | target | `landlock` |
//! | 5. rlimits (the cgroup's status is reported here too) | target | `limits` |
//! | 6. drop every capability | target | `caps` |
//! | 7. `no_new_privs` | target | `caps` |
//! | 8. seccomp filter | target | `seccomp` |
//! | 9. close inherited descriptors | target | `fds` |
//! | 10. `execve` with the spec's environment only | target | `helper` |
//!
//! [`Zygote`] splits this order for the calls of one session: steps 1 and 2 (but the pid
//! and cgroup namespaces) and the mount view once, in a long-lived helper; then, per call,
//! a fork with its own pid, mount (fresh `/proc`, `/tmp`, `/dev/shm`), ipc and cgroup
//! namespaces, and steps 3 to 10 exactly as here. Its module docs say what calls share.
//!
//! The cgroup is removed by the helper once the reaper (and so the pid namespace) is gone.
//! While [`Running::wait`] runs, `SIGINT`, `SIGTERM` and `SIGHUP` sent to the caller are
//! forwarded to the command's process group; if the caller dies, the helper kills the tree.
//!
//! # Layout
//!
//! Files import one way, in the order of the data path: `launch` (the caller: spawn,
//! handshake, [`Running`]) and `zygote::client` → `entry` (the helper side's dispatch) →
//! `helper` (steps 1–2; `reaper`, `target`) and `zygote::server` → one module per layer
//! (`namespaces`, `cgroup`, `mounts`, `view`, `landlock`, `limits`, `caps`, `seccomp`,
//! `fds`) → `proto` (the control channel), `report`, `layer` ([`Layer`]), `error` →
//! `sys`: rustix where it has the call, and the raw calls it lacks, each with its
//! precondition. A few raw calls stay beside the only code that needs them, each with its
//! `// SAFETY:`: signal handlers (`signals`), capabilities (`caps`), `lo`'s flags
//! (`namespaces`), the Landlock ABI probe, and a few `poll`s.
//!
//! Each step records an [`LayerStatus`] (enforced, partial, unavailable). With
//! [`Enforcement::Strict`] the first unavailable layer stops the run with
//! [`SandboxError::LayerUnavailable`] (exit code 71); with [`Enforcement::BestEffort`] the
//! child runs and the report says what was missing.
//!
//! # Example
//!
//! ```
//! use paddock_sandbox::{run, Enforcement, Layer, SandboxSpec, StdioMode};
//!
//! fn main() {
//!     paddock_sandbox::helper_main_if_requested(); // first thing in main()
//!
//!     let mut spec = SandboxSpec::new("/bin/sh", vec!["sh".into(), "-c".into(), "echo hi".into()]);
//!     spec.read_paths = ["/usr", "/bin", "/lib", "/lib64"].iter().map(Into::into).collect();
//!     spec.stdio = StdioMode::Capture { stdin: None };
//!     // `Strict` refuses to run (exit code 71) when a layer is missing on this machine;
//!     // `BestEffort` runs and the report says what was missing.
//!     spec.enforcement = Enforcement::BestEffort;
//!     let outcome = run(&spec).expect("confined run");
//!     assert_eq!(outcome.stdout, b"hi\n");
//!     assert_eq!(outcome.exit_code(), 0);
//!     for layer in &outcome.report.layers {
//!         println!("{:<13} {:?} {}", layer.name, layer.state, layer.detail);
//!     }
//!     assert!(outcome.report.get(Layer::Seccomp).is_some());
//! }
//! ```
//!
//! The same with [`Enforcement::Strict`] runs only where every required layer is
//! available (Linux ≥ 5.13 with unprivileged user namespaces, or root), and otherwise
//! fails with [`SandboxError::LayerUnavailable`] naming the layer.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "linux"))]
compile_error!("paddock-sandbox confines processes with Linux namespaces, Landlock and seccomp");

mod away;
mod beside;
mod caps;
mod cgroup;
mod entry;
mod error;
// exec supervision (issue 16): a new module; see its docs.
mod exec_notify;
mod fds;
mod helper;
mod landlock;
mod launch;
mod layer;
mod limits;
mod mounts;
mod namespaces;
mod proto;
mod pty;
mod relay;
mod report;
#[cfg(test)]
mod scratch;
mod seccomp;
mod signals;
mod spec;
mod stdio;
mod sys;
mod timing;
mod view;
mod workers;
mod zygote;

/// Held by the tests that mount in the host's mount namespace and by those that assert
/// that a watch saw nothing change: a watch counts any change of the mount table.
#[cfg(test)]
pub(crate) static HOST_MOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub use away::Away;
pub use beside::new_file_beside;
pub use error::{MountError, MountStep, OsError, SandboxError, SetupError};
pub use exec_notify::{
    supervise, ExecDecider, ExecListener, ExecRequest, ExecSupervisor, ExecVerdict, ScriptInterpreter,
};
pub use landlock::{landlock_needs, shared_netns_abi, LandlockNeed};
pub use launch::{finish_teardowns, prestart, run, spawn, spawn_meanwhile, Killer, Prestarted, Running};
pub use layer::{Layer, LayerState};
pub use paddock_globs::{PathGlobError, PathGlobs};
pub use proto::HELPER_MARKER;
pub use relay::{hold_terminal, readable_within, TerminalHold};
pub use report::{EnforcementReport, ExitKind, LayerStatus, RunOutcome};
pub use spec::{Enforcement, ExecControl, Limits, NetworkMode, SandboxSpec, StdioMode, DEFAULT_TMPFS_SIZE};
pub use sys::{encrypted, RELEASE_CODE_AFTER};
pub use timing::{phase, TARGET as TIMING_TARGET};
pub use view::cache::{listings_worth_saving, long_unchanged, InodeHasher, LISTINGS_SAVED_AFTER, LONG_UNCHANGED_SECS};
pub use view::paths_watch::PathsWatch;
pub use view::plan::{ONE_SHOT_OVERLAY_TREES, SYSTEM_TREES};
pub use view::stamp::{view_stamp, ViewStamp};
pub use view::walk::{mounts_in_pseudo, pseudo_filesystem};
pub use workers::end_idle_workers;
pub use zygote::Zygote;

/// Runs the sandbox helper when this process was started as one, and never returns then;
/// returns immediately otherwise.
///
/// Call it first thing in `main()` of every binary that calls [`run`] or [`spawn`]: they
/// start `/proc/self/exe` with [`HELPER_MARKER`] as `argv[1]`.
pub fn helper_main_if_requested() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(std::ffi::OsStr::new(HELPER_MARKER)) {
        return;
    }
    entry::main(args)
}

/// Which layers this machine offers: a best-effort confinement of `/bin/true` that is
/// stopped right before `execve`, so every layer is really tried.
///
/// Needs [`helper_main_if_requested`] in `main`, like [`run`]. If the helper cannot start,
/// every layer is reported unavailable with the reason.
pub fn probe() -> EnforcementReport {
    let mut spec = SandboxSpec::new("/bin/true", vec!["true".into()]);
    spec.enforcement = Enforcement::BestEffort;
    spec.stdio = StdioMode::Capture { stdin: None };
    match spawn(&spec) {
        Ok(running) => running.report().clone(), // dropping it kills the parked child
        Err(e) => {
            let mut r = EnforcementReport::default();
            for layer in Layer::ALL {
                r.set(layer, LayerState::Unavailable, format!("the sandbox helper failed: {e}"));
            }
            r
        }
    }
}

/// The Landlock ABI version of the running kernel (0 when Landlock is unavailable).
pub fn landlock_abi() -> i64 {
    landlock::kernel_abi()
}
