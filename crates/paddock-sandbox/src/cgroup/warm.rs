//! Starting early the grace period that a move into a cgroup waits for.
//!
//! Not a confinement step: nothing depends on it, and when it cannot be done the move
//! waits as before. Moving a process into a cgroup (a write to `cgroup.procs`) takes the
//! kernel's cgroup-wide thread-group lock for writing; the first writer after a quiet
//! spell waits for an RCU grace period (3–16 ms measured on the development machine,
//! idle or not). Writers that come while one waits share its grace period, and those in
//! the next few milliseconds after it pay none. So a one-shot run's helper starts one as
//! soon as it made the cgroup's directory: a child process moves itself into the cgroup it
//! is already in (which changes nothing) and exits. The helper's own move of the reaper,
//! a few steps later, then shares that grace period instead of starting one. Not earlier:
//! a move holds the cgroup mutex while it waits, and making the directory needs it.
//!
//! Only where the reaper's own move is not quick ([`super::SandboxCgroup::quick_self_move`]):
//! in cgroup v1 a single-threaded process moving itself through `tasks` takes no global
//! lock, so it waits for no grace period and neither of these is started.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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

/// How long after a call's start a [`Warmer`] keeps the lock warm.
const ACTIVE_NS: u64 = 200_000_000;
/// How often a [`Warmer`] moves itself while warm (measured here: a call's move took
/// 0.5 ms at one no-op move every 2, 4 or 8 ms, against 8 ms without).
const PERIOD_MS: i32 = 8;

/// A session's calls each move a reaper into a cgroup of their own; when they follow
/// each other more than a grace period apart, every move waits for one. A `Warmer`
/// keeps the writer side of the lock warm while calls come: a process of its own, forked
/// once, moves itself into the cgroup it is in every [`PERIOD_MS`] until [`ACTIVE_NS`]
/// after the last [`Warmer::touch`], then sleeps; it ends with the session (the end of
/// its pipe). What it costs the machine while warm: one no-op move per period, as many as
/// 125 calls per second would make anyway; what a move costs every process meanwhile is
/// what the kernel's `favordynmods` cgroup mount option chooses for good.
#[derive(Debug)]
pub struct Warmer {
    pid: libc::pid_t,
    wake: Option<OwnedFd>,
}

impl Warmer {
    /// Forks the warming process, when this process may write its own `cgroup.procs`.
    pub fn start() -> Option<Warmer> {
        let procs = own_procs()?;
        let (r, w) = crate::stdio::pipe().ok()?;
        // SAFETY: as in `Warmup::start`, the child runs only async-signal-safe calls
        // (`poll`, `read`, `write`, `clock_gettime` through rustix, `_exit`) on
        // descriptors opened before the fork and buffers on its stack: sound whatever
        // other threads held.
        match unsafe { sys::fork() } {
            Ok(0) => {
                // Nothing of the session's stays open here (a pipe of a call held open
                // would never end): only the two descriptors of the loop.
                let (rfd, pfd) = (r.as_raw_fd(), procs.as_raw_fd());
                std::mem::forget((r, procs, w));
                let (lo, hi) = (rfd.min(pfd) as u32, rfd.max(pfd) as u32);
                if lo > 0 {
                    let _ = sys::close_range(0, lo - 1);
                }
                let _ = sys::close_range(lo + 1, hi - 1);
                let _ = sys::close_range(hi + 1, u32::MAX);
                warm_loop(rfd, pfd)
            }
            Ok(pid) => {
                // Non-blocking: a full pipe already says "a call started".
                let _ = rustix::fs::fcntl_setfl(&w, rustix::fs::OFlags::NONBLOCK);
                Some(Warmer { pid, wake: Some(w) })
            }
            Err(_) => None,
        }
    }

    /// A call starts: warm from now on.
    pub fn touch(&self) {
        if let Some(w) = &self.wake {
            let _ = rustix::io::write(w, b"w");
        }
    }
}

impl Drop for Warmer {
    fn drop(&mut self) {
        // The end of the pipe ends the loop (within one move: a grace period at most).
        drop(self.wake.take());
        sys::reap(self.pid);
    }
}

/// The warming process: waits for a byte, then moves itself every period until
/// [`ACTIVE_NS`] passed without one; exits at the end of the pipe.
fn warm_loop(wake: RawFd, procs: RawFd) -> ! {
    // SAFETY: PR_SET_NAME with a NUL-terminated static name (shown by `ps`).
    unsafe { libc::prctl(libc::PR_SET_NAME, c"paddock-warm".as_ptr()) };
    let mut until = 0u64;
    let mut buf = [0u8; 64];
    loop {
        let now = crate::timing::now_ns();
        let timeout = if now < until { PERIOD_MS } else { -1 };
        let mut pfd = libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on this stack.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if ready > 0 {
            // SAFETY: reading into a buffer of this stack, of its length.
            let n = unsafe { libc::read(wake, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                exit_now(0);
            }
            until = crate::timing::now_ns() + ACTIVE_NS;
        }
        if crate::timing::now_ns() < until {
            let _ = write_all(procs, b"0");
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

    #[test]
    fn the_warmer_keeps_two_descriptors_and_ends_with_its_owner() {
        // A descriptor of the owner's that the warmer must not keep open.
        let (keep_r, keep_w) = crate::stdio::pipe().unwrap();
        let Some(w) = Warmer::start() else {
            assert!(own_procs().is_none(), "a writable cgroup.procs but no warmer");
            return;
        };
        w.touch();
        let fds = format!("/proc/{}/fd", w.pid);
        // Poll until the child closed what it inherited (it does so first thing).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let count = loop {
            let n = std::fs::read_dir(&fds).map(|d| d.count()).unwrap_or(0);
            if n == 2 || std::time::Instant::now() > deadline {
                break n;
            }
            std::thread::yield_now();
        };
        let pid = w.pid;
        if count != 2 {
            // It would not see the end of its pipe: end it before failing.
            // SAFETY: a signal to the child this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert_eq!(count, 2, "the warmer holds more than its pipe and cgroup.procs");
        drop(w);
        // SAFETY: a plain waitpid on a pid this test started, into a valid int.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(r, -1, "the warmer was not reaped");
        drop((keep_r, keep_w));
    }
}
