//! Starting early the grace period that a move into a cgroup waits for.
//!
//! Not a confinement step: nothing depends on it, and when it cannot be done the move
//! waits as before. Moving a process into a cgroup (a write to `cgroup.procs`) takes the
//! kernel's cgroup-wide thread-group lock for writing; the first writer after a quiet
//! spell waits for an RCU grace period (3–16 ms measured on the development machine,
//! idle or not). Writers that come while one waits share its grace period, and those in
//! the next few milliseconds after it pay none. So a one-shot run starts one early, as
//! soon as its policy asks for a cgroup: a child process moves itself into the cgroup it
//! is already in (which changes nothing) and exits. The helper's own move, milliseconds
//! later, then shares that grace period instead of starting one.

use std::os::fd::{AsRawFd, OwnedFd};

use super::fs::{cgroup_mounts, dir_of, own_cgroups};
use crate::sys::{self, exit_now, write_all};

/// A grace period started early ([`Warmup::start`]); the process that started it is
/// reaped when this is dropped.
#[derive(Debug)]
pub struct Warmup {
    pid: Option<libc::pid_t>,
}

impl Warmup {
    /// Starts the grace period, when this process may write its own `cgroup.procs` (root,
    /// or a cgroup delegated to this user); otherwise does nothing.
    pub fn start() -> Warmup {
        let Some(procs) = own_procs() else {
            return Warmup { pid: None };
        };
        // SAFETY: unlike the helper's forks, the child here runs only `write(2)` and
        // `_exit(2)`, both async-signal-safe, on a descriptor opened before the fork and
        // a static buffer: it allocates nothing and takes no lock, so it is sound whatever
        // the other threads of this process held at the time of the fork.
        match unsafe { sys::fork() } {
            Ok(0) => {
                // "0" is the writer itself: into the cgroup it is in.
                let _ = write_all(procs.as_raw_fd(), b"0");
                exit_now(0)
            }
            Ok(pid) => Warmup { pid: Some(pid) },
            Err(_) => Warmup { pid: None },
        }
    }
}

impl Drop for Warmup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            // Done long before in practice (one grace period after the start).
            sys::reap(pid);
        }
    }
}

/// This process's own `cgroup.procs` in the first hierarchy where it may write it.
fn own_procs() -> Option<OwnedFd> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mounts = cgroup_mounts(&mounts);
    for (id, ctls, path) in own_cgroups(&own) {
        let wanted = |(_, _, fstype, opts): &&(&str, &str, &str, &str)| {
            if id == "0" {
                *fstype == "cgroup2"
            } else {
                *fstype == "cgroup" && ctls.iter().all(|c| opts.split(',').any(|o| o == *c))
            }
        };
        let Some((root, mp, _, _)) = mounts.iter().find(wanted) else { continue };
        let Some(dir) = dir_of(mp, root, path) else { continue };
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")) else { continue };
        return Some(file.into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_moves_itself_and_is_reaped_on_drop() {
        let w = Warmup::start();
        let Some(pid) = w.pid else {
            // Not root (nor a delegated cgroup): nothing started, nothing to reap.
            assert!(own_procs().is_none(), "a writable cgroup.procs but no warm-up");
            return;
        };
        drop(w);
        // Reaped: no such child any more.
        // SAFETY: a plain waitpid on a pid this test started, into a valid int.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(r, -1, "the warm-up child was not reaped");
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ECHILD));
    }
}
