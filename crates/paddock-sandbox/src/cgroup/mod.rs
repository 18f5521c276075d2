//! The `cgroup` layer: a fresh cgroup that bounds the whole process tree.
//!
//! rlimits are per process (`RLIMIT_AS`) or per uid, and the kernel exempts root from
//! `RLIMIT_NPROC`, so as root neither `max_processes` nor `max_memory` would bound a fork
//! bomb or a tree of allocators. When a cgroup can be had, the tree goes into a new one,
//! `paddock-<helper pid>`, with `pids.max = max_processes` and a memory limit of
//! `max_memory` (swap included where the kernel accounts it):
//!
//! * cgroup v2: under this process's own cgroup when its `cgroup.subtree_control` already
//!   offers `pids`/`memory` (only the root cgroup may hold processes and offer them), else
//!   beside it, under its parent, when the parent offers them to it (`cgroup.controllers`)
//!   and is writable: as root, or when the parent is delegated to this user.
//! * cgroup v1, per controller: under this process's cgroup of the `pids` and `memory`
//!   hierarchies, when writable (as root).
//!
//! Order: created by the helper before the namespaces (step 1b), while it still sees the
//! host's cgroup tree; the descriptors of the new `cgroup.procs` files are opened then, so
//! the kernel checks the move with the helper's credentials and cgroup namespace as of
//! that moment. The reaper moves itself in before it takes a cgroup namespace rooted at
//! the new cgroup and forks the target: in cgroup v1 through `tasks` (a single-threaded
//! process moving itself takes no global lock, [`SandboxCgroup::quick_self_move`]).
//! Elsewhere a move waits for an RCU grace period (milliseconds), so the helper moves the
//! reaper right after forking it, while the reaper builds its mount view, and the reaper
//! waits for the helper's word (it moves itself when the helper could not make the pipe).
//! The helper removes the cgroup once the reaper is reaped: the pid namespace is dead
//! then, so it is empty. A one-shot run whose reaper was cloned ahead with no helper
//! ([`crate::prestart`]) has the caller play that part: a worker thread of its moves the
//! reaper ([`Mover`]), and it removes the cgroup once it reaped the reaper.
//! For a [`crate::Zygote`]'s call the caller makes the cgroup (`paddock-<pid>-z<n>`, its
//! host view and credentials; a multi-threaded caller one call ahead, [`CallCgroups`]),
//! and hands the descriptors to the call: a spare (the call's pid 1) moves itself in and
//! the caller removes the cgroup once it has ended; a call helper the zygote forked plays
//! the helper's part above (and the caller removes it too if that helper died). `RLIMIT_NPROC` and `RLIMIT_AS` stay in force as well (step 5); they are what works
//! unprivileged.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

mod ahead;
mod fs;
mod sweep;
mod v1;
mod v2;
mod warm;

pub(crate) use ahead::CallCgroups;
pub(crate) use warm::{Warmer, Warmup};

use fs::{cgroup_mounts, own_cgroups, Notes, Part, Want};

use crate::layer::{Applied, LayerState};
use crate::spec::Limits;
use crate::sys::{cstring, write_all};

/// The sandbox's cgroup, one directory per hierarchy used.
#[derive(Debug, Default)]
pub(crate) struct SandboxCgroup {
    parts: Vec<Part>,
}

/// What [`create`] made, and the layer's status.
#[derive(Debug)]
pub(crate) struct Setup {
    /// The cgroup, when at least one limit is set in one.
    pub cgroup: Option<SandboxCgroup>,
    /// The layer's status.
    pub applied: Applied,
}

impl Setup {
    /// For a helper side that did not make it: the names of the cgroup's directories,
    /// their descriptors ([`SandboxCgroup::handover`]) appended to `fds`; none without a
    /// cgroup.
    pub(crate) fn hand_over(&self, fds: &mut Vec<RawFd>) -> Vec<String> {
        let Some(c) = &self.cgroup else { return Vec::new() };
        let (names, cg_fds) = c.handover();
        fds.extend(cg_fds);
        names
    }

    /// Whether a move into this cgroup waits for an RCU grace period (cgroup v2; a
    /// single-threaded process moving itself in v1 does not).
    pub(crate) fn slow_move(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| !c.quick_self_move())
    }

    /// Where a move waits ([`Setup::slow_move`]): a [`Warmup`] started now, right after
    /// the `mkdir`, whose grace period the move into this cgroup a few steps later shares.
    pub(crate) fn warm_up(&self) -> Option<Warmup> {
        self.slow_move().then(Warmup::start)
    }
}

impl SandboxCgroup {
    /// In the reaper, before the target forks: moves this process, single-threaded, into
    /// every directory (when the helper did not do it for it, [`SandboxCgroup::place`]),
    /// through each directory's [`Part::own`] file.
    pub(crate) fn enter(&self) -> io::Result<()> {
        for fd in self.parts.iter().map(|p| &p.own) {
            write_all(fd.as_raw_fd(), b"0")?;
        }
        Ok(())
    }

    /// Whether [`SandboxCgroup::enter`] is quick: every directory is cgroup v1, where a
    /// single-threaded process moving itself through `tasks` takes no global lock (a move
    /// through `cgroup.procs`, or of another process, waits for an RCU grace period when
    /// none came in the last few milliseconds; see [`Warmup`]).
    pub(crate) fn quick_self_move(&self) -> bool {
        self.parts.iter().all(Part::moves_by_thread)
    }

    /// In the helper, right after the reaper's fork: moves the reaper (`pid`, in this
    /// process's pid namespace) into every directory, while the reaper builds its view.
    pub(crate) fn place(&self, pid: libc::pid_t) -> io::Result<()> {
        place_in(self.parts.iter().map(|p| &p.procs), pid)
    }

    /// Duplicates of the directories' `cgroup.procs`, to move a process in from another
    /// thread ([`Mover::place`]) while this one keeps the cgroup.
    pub(crate) fn mover(&self) -> io::Result<Mover> {
        let procs = self.parts.iter().map(|p| p.procs.try_clone()).collect::<io::Result<_>>()?;
        Ok(Mover { procs })
    }

    /// What a zygote's call needs to enter and remove the cgroup: for each directory its
    /// name, and the descriptors of its `cgroup.procs`, of its parent and of its
    /// [`Part::own`] file.
    pub(crate) fn handover(&self) -> (Vec<String>, Vec<RawFd>) {
        let names = self.parts.iter().map(|p| p.name.to_string_lossy().into_owned()).collect();
        let fds =
            self.parts.iter().flat_map(|p| [p.procs.as_raw_fd(), p.parent.as_raw_fd(), p.own.as_raw_fd()]).collect();
        (names, fds)
    }

    /// The cgroup [`SandboxCgroup::handover`] described, received by a zygote's call
    /// (`fds`: `cgroup.procs`, parent and own file of each). Malformed input yields `None`.
    pub(crate) fn from_handover(names: &[String], fds: Vec<OwnedFd>) -> Option<SandboxCgroup> {
        if fds.len() != names.len() * 3 || names.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        let mut it = fds.into_iter();
        for n in names {
            let (procs, parent, own) = (it.next()?, it.next()?, it.next()?);
            parts.push(Part { parent, name: cstring(n).ok()?, procs, own });
        }
        Some(SandboxCgroup { parts })
    }

    /// [`SandboxCgroup::from_handover`] for a zygote's call; one that did not come whole
    /// makes the cgroup layer unavailable (`status`). No descriptors: no cgroup.
    pub(crate) fn received(names: &[String], fds: Vec<OwnedFd>, status: &mut Applied) -> Option<SandboxCgroup> {
        if fds.is_empty() {
            return None;
        }
        let cg = SandboxCgroup::from_handover(names, fds);
        if cg.is_none() {
            *status = Applied::new(LayerState::Unavailable, "the call's cgroup was not handed over whole");
        }
        cg
    }

    /// Whether every directory is still there (nobody removed one since it was made).
    pub(crate) fn is_there(&self) -> bool {
        self.parts.iter().all(|p| {
            let exists = rustix::fs::Access::EXISTS;
            rustix::fs::accessat(&p.parent, p.name.as_c_str(), exists, rustix::fs::AtFlags::empty()).is_ok()
        })
    }

    /// In the helper, once the reaper is reaped: removes every directory.
    pub(crate) fn remove(&self) {
        for p in &self.parts {
            if !Part::remove_dir(&p.parent, &p.name) {
                tracing::debug!(name = ?p.name, "the sandbox cgroup could not be removed");
            }
        }
    }
}

/// A [`SandboxCgroup`]'s `cgroup.procs` files, for [`Mover::place`] ([`SandboxCgroup::mover`]).
#[derive(Debug)]
pub(crate) struct Mover {
    procs: Vec<OwnedFd>,
}

impl Mover {
    /// Moves `pid` (in this process's pid namespace) into every directory, as
    /// [`SandboxCgroup::place`] does.
    pub(crate) fn place(&self, pid: libc::pid_t) -> io::Result<()> {
        place_in(self.procs.iter(), pid)
    }
}

/// Writes `pid` to each of `procs` (`cgroup.procs` files), in order.
fn place_in<'a>(procs: impl Iterator<Item = &'a OwnedFd>, pid: libc::pid_t) -> io::Result<()> {
    let word = pid.to_string();
    for fd in procs {
        write_all(fd.as_raw_fd(), word.as_bytes())?;
    }
    Ok(())
}

/// Creates the sandbox's cgroup for `limits`, in the helper, before the namespaces.
pub(crate) fn create(limits: &Limits) -> Setup {
    create_named(limits, &format!("paddock-{}", crate::sys::getpid()))
}

/// [`create`] with the directory's name given (a zygote's calls are all made by the
/// caller's process: `paddock-<pid>-z<n>`): cgroup v2 if it offers every controller
/// wanted, else cgroup v1 per controller.
pub(crate) fn create_named(limits: &Limits, name: &str) -> Setup {
    let mut wants = Vec::new();
    if let Some(v) = limits.max_processes {
        wants.push(Want { ctl: "pids", value: v });
    }
    if let Some(v) = limits.max_memory {
        wants.push(Want { ctl: "memory", value: v });
    }
    if wants.is_empty() {
        return Setup {
            cgroup: None,
            applied: Applied::new(LayerState::Unavailable, "not needed: no memory or process limit requested"),
        };
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = fs::cgroup_mount_lines();
    let own = own_cgroups(&own);
    let mounts = cgroup_mounts(&mounts);
    let mut notes = Notes::default();
    let mut cg = SandboxCgroup::default();
    let v2 = v2::make(&own, &mounts, &wants, name, limits.max_memory.is_some(), &mut notes);
    let v2_done = v2.is_some();
    match v2 {
        Some(part) => cg.parts.push(part),
        None => cg.parts.extend(v1::make(&own, &mounts, &wants, name, &mut notes)),
    }
    Setup { applied: applied(&cg, v2_done, notes), cgroup: (!cg.parts.is_empty()).then_some(cg) }
}

/// The layer's status for what was made.
fn applied(cg: &SandboxCgroup, v2_done: bool, notes: Notes) -> Applied {
    let stand_in = "RLIMIT_NPROC (per uid, not for root) and RLIMIT_AS (per process)";
    if cg.parts.is_empty() {
        return Applied::new(
            LayerState::Unavailable,
            format!("{}; only {stand_in} bound memory and processes", notes.why.join("; ")),
        );
    }
    let version = if v2_done { "cgroup v2" } else { "cgroup v1" };
    let mut detail = format!(
        "{version} {} bound the whole process tree ({}); {stand_in} stay as well",
        notes.set.join(", "),
        notes.where_.join(", ")
    );
    if notes.missing.is_empty() {
        return Applied::new(LayerState::Enforced, detail);
    }
    detail.push_str(&format!("; not bounded by a cgroup: {} ({})", notes.missing.join(", "), notes.why.join("; ")));
    Applied::new(LayerState::Partial, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forked, single-threaded child enters a made cgroup by itself (as the reaper
    /// does), and comes out in it in every hierarchy; where the cgroup is v1 the move goes
    /// through `tasks`, and so is quick. Where no cgroup can be made (unprivileged), the
    /// status says so.
    #[test]
    fn a_single_threaded_process_enters_by_itself() {
        let name = format!("paddock-test-enter-{}", crate::sys::getpid());
        let setup = create_named(&Limits { max_processes: Some(64), ..Limits::default() }, &name);
        let Some(cg) = setup.cgroup else {
            assert_ne!(setup.applied.state, LayerState::Enforced, "{setup:?}");
            return;
        };
        let v1 = cg.parts.iter().map(|p| fs::exists_at(&p.parent, &format!("{name}/tasks"))).collect::<Vec<_>>();
        assert_eq!(cg.quick_self_move(), v1.iter().all(|v| *v), "{v1:?}");
        let (r, w) = crate::stdio::pipe().unwrap();
        // SAFETY: the child makes system calls only (no allocation: `enter` writes to
        // descriptors opened before the fork, the rest uses this stack) and leaves with
        // `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut buf = [0u8; 4096];
            let code = match cg.enter() {
                // SAFETY: a NUL-terminated path; the descriptor is this child's own.
                Ok(()) => match unsafe { libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY) } {
                    fd if fd >= 0 => {
                        while let Ok(n @ 1..) = crate::sys::read(fd, &mut buf) {
                            let _ = write_all(w.as_raw_fd(), &buf[..n]);
                        }
                        0
                    }
                    _ => 2,
                },
                Err(_) => 1,
            };
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        drop(w);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = crate::sys::read(r.as_raw_fd(), &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        let status = crate::sys::reap(pid);
        cg.remove();
        assert!(status.is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0), "{status:?}");
        let out = String::from_utf8_lossy(&out);
        let pids = out.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "pids")));
        let unified = out.lines().find(|l| l.starts_with("0::"));
        let line = pids.or(unified).unwrap_or_default();
        assert!(line.ends_with(&format!("/{name}")), "not in the cgroup: {out}");
    }
}
