//! Step 5 of the order (in the target, after Landlock, before the capabilities go):
//! rlimits, and the cgroup v2 status.
//!
//! `max_processes` → `RLIMIT_NPROC` (counted per user in the child's user namespace),
//! `max_memory` → `RLIMIT_AS` (per process), `max_open_files` → `RLIMIT_NOFILE`; core dumps
//! are always off. cgroup v2 would bound the whole tree, but only when this process's cgroup
//! is delegated to it; otherwise the layer says so and the rlimits stand in (a strict run
//! accepts that). The timeout is not an rlimit: the parent kills the pid namespace.

use std::path::Path;

use crate::report::LayerState;
use crate::spec::Limits;

fn set(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: a valid rlimit struct for a valid resource.
    crate::sys::cvt(unsafe { libc::setrlimit(resource, &lim) }).map(drop)
}

/// Applies the rlimits; returns the layer state and detail.
pub(crate) fn apply(limits: &Limits) -> (LayerState, String) {
    let mut done = vec![];
    let mut failed = vec![];
    let mut one = |name: &str, res, v: Option<u64>| {
        if let Some(v) = v {
            match set(res, v) {
                Ok(()) => done.push(format!("{name}={v}")),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
    };
    one("RLIMIT_CORE", libc::RLIMIT_CORE, Some(0));
    one("RLIMIT_NPROC", libc::RLIMIT_NPROC, limits.max_processes);
    one("RLIMIT_AS", libc::RLIMIT_AS, limits.max_memory);
    one("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, limits.max_open_files);
    if failed.is_empty() {
        (LayerState::Enforced, done.join(", "))
    } else {
        (LayerState::Partial, format!("{}; failed: {}", done.join(", "), failed.join(", ")))
    }
}

/// Whether cgroup v2 could bound the tree here; run in the helper, before the namespaces.
pub(crate) fn cgroup_status(limits: &Limits) -> (LayerState, String) {
    let fallback = if limits.max_memory.is_some() || limits.max_processes.is_some() {
        "; memory and processes bounded by RLIMIT_AS and RLIMIT_NPROC instead"
    } else {
        "; no memory or process limit requested"
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string)));
    let Some(own) = own else {
        return (LayerState::Unavailable, format!("cgroup v2 not in use{fallback}"));
    };
    let mountpoint = std::fs::read_to_string("/proc/self/mountinfo").ok().and_then(|s| {
        s.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split(' ').next() == Some("cgroup2")).then(|| pre.split(' ').nth(4).map(str::to_string))?
        })
    });
    let Some(mp) = mountpoint else {
        return (LayerState::Unavailable, format!("cgroup v2 not mounted{fallback}"));
    };
    let dir = Path::new(&mp).join(own.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let writable = {
        let c = crate::sys::cpath(&dir.join("cgroup.procs")).ok();
        // SAFETY: a valid NUL-terminated path.
        c.is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
    };
    let why = if !(has("memory") && has("pids")) {
        format!("cgroup v2 not delegated (controllers at {}: {:?})", dir.display(), controllers.trim())
    } else if !writable {
        format!("cgroup v2 not delegated ({} is not writable)", dir.display())
    } else {
        format!("cgroup v2 delegated at {} but not used by this version", dir.display())
    };
    (LayerState::Unavailable, format!("{why}{fallback}"))
}
