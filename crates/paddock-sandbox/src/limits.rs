//! Step 5 of the order (in the target, after Landlock, before the capabilities go):
//! rlimits.
//!
//! `max_processes` → `RLIMIT_NPROC` (counted per uid in the child's user namespace, and
//! not enforced at all for root: the kernel exempts the host's uid 0), `max_memory` →
//! `RLIMIT_AS` (per process: a tree of processes may use a multiple), `max_open_files` →
//! `RLIMIT_NOFILE`, `max_file_size` → `RLIMIT_FSIZE` (with `SIGXFSZ` ignored, so that a
//! write past it fails with `EFBIG`, which tools report, instead of killing the writer with
//! a signal nobody explains); core dumps are always off. What bounds the whole tree is the cgroup
//! made by [`crate::cgroup`] when one can be had; these rlimits stay in force either way
//! (unprivileged, they are what there is). The timeout is not an rlimit: the parent kills
//! the pid namespace.

use crate::layer::{Applied, LayerState};
use crate::spec::Limits;
use rustix::process::Resource;

fn set(resource: Resource, value: u64) -> std::io::Result<()> {
    let lim = rustix::process::Rlimit { current: Some(value), maximum: Some(value) };
    rustix::process::setrlimit(resource, lim).map_err(Into::into)
}

/// Sets `resource` to `value`, or, when `value` is above what this process may set (its
/// hard limit, or for `RLIMIT_NOFILE` the kernel's `nr_open`), to its hard limit: the
/// child is then held to less than the policy asked, never more. The limit set, and
/// whether it is that lower one.
fn set_at_most(resource: Resource, value: u64) -> std::io::Result<(u64, bool)> {
    let Err(e) = set(resource, value) else { return Ok((value, false)) };
    let hard = rustix::process::getrlimit(resource).maximum;
    match hard {
        Some(h) if h < value => set(resource, h).map(|()| (h, true)),
        _ => Err(e),
    }
}

/// Ignores `SIGXFSZ` in this process (and, through execve, in the child). Raw `signal(2)`:
/// rustix has no call that sets a signal's disposition (as in `signals.rs`).
fn ignore_sigxfsz() -> std::io::Result<()> {
    // SAFETY: SIG_IGN installs no handler; SIGXFSZ is a valid signal number.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes this process, and what it starts, the first the OOM killer takes
/// (`oom_score_adj` 1000, which needs no privilege to raise): before Landlock, which
/// grants `/proc` read only. Without it a call that filled its private `/tmp` and
/// `/dev/shm` (charged to its cgroup, held by no process) had the OOM killer take the
/// sandbox's pid 1, the largest process there, and the call's own status was lost (found
/// by an attack).
pub(crate) fn oom_first() -> std::io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", "1000")
}

/// Applies the rlimits (with `oom`, what [`oom_first`] did); returns the layer state and
/// detail.
pub(crate) fn apply(limits: &Limits, oom: std::io::Result<()>) -> Applied {
    let mut done = vec![];
    let mut failed = vec![];
    match oom {
        Ok(()) => done.push("oom_score_adj=1000 (the OOM killer takes the call first)".to_string()),
        Err(e) => failed.push(format!("oom_score_adj: {e}")),
    }
    let mut one = |name: &str, res, v: Option<u64>, note: &str| {
        if let Some(v) = v {
            match set_at_most(res, v) {
                Ok((v, false)) => done.push(format!("{name}={v}{note}")),
                Ok((h, true)) => done
                    .push(format!("{name}={h}{note} (its hard limit: {v} was asked, more than this process may set)")),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
    };
    one("RLIMIT_CORE", Resource::Core, Some(0), "");
    let root = crate::sys::ids().0 == 0;
    let nproc_note = if root { " (not enforced for root)" } else { " (per uid)" };
    one("RLIMIT_NPROC", Resource::Nproc, limits.max_processes, nproc_note);
    one("RLIMIT_AS", Resource::As, limits.max_memory, " (per process)");
    one("RLIMIT_NOFILE", Resource::Nofile, limits.max_open_files, "");
    if limits.max_file_size.is_some() {
        // Before the limit: a write past it must come back as EFBIG, not as SIGXFSZ's
        // default action (the ignored disposition survives execve).
        match ignore_sigxfsz() {
            Ok(()) => one("RLIMIT_FSIZE", Resource::Fsize, limits.max_file_size, " (SIGXFSZ ignored: EFBIG)"),
            Err(e) => failed.push(format!("RLIMIT_FSIZE: SIGXFSZ could not be ignored: {e}")),
        }
    }
    if failed.is_empty() {
        Applied::new(LayerState::Enforced, done.join(", "))
    } else {
        Applied::new(LayerState::Partial, format!("{}; failed: {}", done.join(", "), failed.join(", ")))
    }
}
