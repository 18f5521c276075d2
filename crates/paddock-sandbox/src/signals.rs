//! Forwarding of `SIGINT`, `SIGTERM` and `SIGHUP` from the caller to the command.
//!
//! Not a confinement layer: it makes `kill <paddock pid>` (or a terminal's ^C when the
//! child has no pty of its own) end the sandboxed command as it would end an unsandboxed
//! one, so the caller sees the command die of signal N (exit code 128+N).
//!
//! * Parent, only inside [`crate::Running::wait`]: a [`Forwarder`] installs a handler for
//!   each of the three signals whose disposition is the default (a signal the caller
//!   ignores or handles itself, e.g. under tokio, is left alone), and restores the previous
//!   disposition when the last concurrent `wait` ends. The handler only `write(2)`s the
//!   signal number to a self-pipe of each waiting run (async-signal-safe); the wait loop
//!   reads it and sends the signal to the reaper through its pidfd.
//! * Reaper (pid 1 of the sandbox): handlers for the same signals send them on to the
//!   command's process group (the target is a group leader, and with a pty a session
//!   leader, so this is what a terminal's ^C reaches: the command and the children it did
//!   not move to a group of their own). A process that moved away still dies with the pid namespace when the
//!   command ends. A pid namespace's init only receives signals it has a handler for, so
//!   without these handlers the signal would be dropped.
//! * Target: resets the three signals to their default right after the fork.
//! * A one-shot run's reaper, once the target runs: a `SIGALRM` a while later, repeated
//!   until it has done so ([`reaper_alarm`]), interrupts its wait, so it can hand back its
//!   start-up code and go on reaping.
//!
//! If paddock itself is killed (`SIGKILL`), the helper sees the control socket hang up and
//! kills the reaper, and with it the whole pid namespace. A zygote spare's reaper is its
//! call's helper too: the hang-up reaches it as `SIGIO` ([`reaper_watch_caller`]), and it
//! exits, which ends the pid namespace the same way.
//!
//! Raw `libc` on purpose, outside `sys`: rustix has no `sigaction` (but in its `runtime`
//! module, for libc implementors), and the handler's own calls (`write` to the self-pipe,
//! saving and restoring `errno`) must stay async-signal-safe, which is easiest to check
//! with everything the handlers touch in this one file.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sys::cvt;

/// The signals that are forwarded.
pub(crate) const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

const SLOTS: usize = 64;
/// Write ends of the self-pipes of the waiting runs (-1: free).
static PIPES: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Handlers running right now (a closing pipe waits for 0).
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

struct Installed {
    /// Waiting runs.
    users: usize,
    /// The dispositions replaced by ours, to restore.
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

static REGISTRY: Mutex<Installed> = Mutex::new(Installed { users: 0, saved: Vec::new() });

fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno location; no preconditions.
    unsafe { libc::__errno_location() }
}

extern "C" fn parent_handler(sig: libc::c_int) {
    // SAFETY: the thread's own errno, saved and restored around the writes.
    let saved = unsafe { *errno_location() };
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let byte = sig as u8;
    for slot in &PIPES {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe; `fd` stays open while IN_HANDLER > 0
            // (see `Drop for Forwarder`); the pipe is non-blocking.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *errno_location() = saved };
}

fn sigaction(sig: libc::c_int, new: Option<&libc::sigaction>) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value to be filled.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    let new_p = new.map_or(std::ptr::null(), |n| n as *const libc::sigaction);
    // SAFETY: valid pointers (or null for "no change").
    cvt(unsafe { libc::sigaction(sig, new_p, &mut old) })?;
    Ok(old)
}

fn action(handler: libc::sighandler_t) -> libc::sigaction {
    // SAFETY: an all-zero sigaction is valid (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t to fill.
    unsafe { libc::sigfillset(&mut sa.sa_mask) };
    sa
}

/// The parent's side: while it lives, the forwarded signals arrive on [`Forwarder::fd`].
pub(crate) struct Forwarder {
    slot: usize,
    read: OwnedFd,
    write: RawFd,
}

impl Forwarder {
    /// Registers a self-pipe and installs the handlers if this is the first waiting run.
    pub(crate) fn install() -> io::Result<Forwarder> {
        let mut fds = [0; 2];
        // SAFETY: a valid array for the kernel to fill.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: a new descriptor that nothing else owns.
        let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        let write = fds[1];
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = PIPES.iter().position(|s| s.load(Ordering::SeqCst) < 0) else {
            // SAFETY: our own descriptor.
            unsafe { libc::close(write) };
            return Err(io::Error::other("too many concurrent runs for signal forwarding"));
        };
        PIPES[slot].store(write, Ordering::SeqCst);
        if reg.users == 0 {
            reg.saved.clear();
            for sig in FORWARDED {
                let Ok(old) = sigaction(sig, None) else { continue };
                if old.sa_sigaction != libc::SIG_DFL {
                    continue; // ignored, or handled by the caller: theirs to decide
                }
                let ours = action(parent_handler as *const () as libc::sighandler_t);
                if let Ok(old) = sigaction(sig, Some(&ours)) {
                    reg.saved.push((sig, old));
                }
            }
        }
        reg.users += 1;
        Ok(Forwarder { slot, read, write })
    }

    /// The read end: one byte per caught signal, its number.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.read.as_fd()
    }

    /// The signals caught since the last call.
    pub(crate) fn drain(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a valid buffer from our non-blocking pipe.
        let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        buf[..n.max(0) as usize].iter().map(|&b| b as libc::c_int).collect()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        PIPES[self.slot].store(-1, Ordering::SeqCst);
        reg.users -= 1;
        if reg.users == 0 {
            for (sig, old) in reg.saved.drain(..) {
                // Only if ours is still the one installed: the caller may have replaced it.
                if let Ok(cur) = sigaction(sig, None) {
                    if cur.sa_sigaction == parent_handler as *const () as libc::sighandler_t {
                        let _ = sigaction(sig, Some(&old));
                    }
                }
            }
        }
        drop(reg);
        // A handler that loaded this descriptor before the slot was cleared may still be
        // writing to it: wait for every running handler to leave before closing it.
        while IN_HANDLER.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        // SAFETY: our own descriptor, no longer reachable from the handler.
        unsafe { libc::close(self.write) };
    }
}

/// The reaper's target (0 until it is forked).
static TARGET: AtomicI32 = AtomicI32::new(0);
/// A signal that came before the target existed.
static PENDING: AtomicI32 = AtomicI32::new(0);

fn send_to_target(target: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) is async-signal-safe; the group first, then the process itself if it
    // left its group.
    unsafe {
        if libc::kill(-target, sig) != 0 {
            libc::kill(target, sig);
        }
    }
}

extern "C" fn reaper_handler(sig: libc::c_int) {
    // SAFETY: the thread's own errno, saved and restored.
    let saved = unsafe { *errno_location() };
    match TARGET.load(Ordering::SeqCst) {
        0 => PENDING.store(sig, Ordering::SeqCst),
        t => send_to_target(t, sig),
    }
    // SAFETY: as above.
    unsafe { *errno_location() = saved };
}

/// In the reaper, before the target forks: forward the signals to the target.
pub(crate) fn reaper_install() {
    let sa = action(reaper_handler as *const () as libc::sighandler_t);
    for sig in FORWARDED {
        let _ = sigaction(sig, Some(&sa));
    }
}

/// In the reaper, right after the fork: the target exists.
pub(crate) fn reaper_set_target(pid: libc::pid_t) {
    TARGET.store(pid, Ordering::SeqCst);
    let p = PENDING.swap(0, Ordering::SeqCst);
    if p != 0 {
        send_to_target(pid, p);
    }
}

/// A spare's reaper's control socket, watched for the caller's end (-1: none).
static CALLER: AtomicI32 = AtomicI32::new(-1);

/// Whether `fd`'s other end has hung up (async-signal-safe: one `poll(2)`).
fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: poll(2) is async-signal-safe; one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

extern "C" fn caller_handler(_sig: libc::c_int) {
    // SAFETY: the thread's own errno, saved and restored.
    let saved = unsafe { *errno_location() };
    let fd = CALLER.load(Ordering::SeqCst);
    if fd >= 0 && hung_up(fd) {
        // SAFETY: _exit(2) is async-signal-safe; pid 1's exit ends its namespace.
        unsafe { libc::_exit(125) };
    }
    // SAFETY: as above.
    unsafe { *errno_location() = saved };
}

/// In a spare's reaper, which is its call's helper too: when the caller's end of the
/// control socket `ctl` closes (the caller died, or dropped the call), the kernel sends
/// this process `SIGIO` (`O_ASYNC`), whose handler ends it, and so the sandbox's pid
/// namespace: what a call helper's wait does. An end that came before is seen here.
pub(crate) fn reaper_watch_caller(ctl: RawFd) -> io::Result<()> {
    CALLER.store(ctl, Ordering::SeqCst);
    sigaction(libc::SIGIO, Some(&action(caller_handler as *const () as libc::sighandler_t)))?;
    // SAFETY: fcntl(2) on a descriptor this process holds; integer arguments only.
    unsafe {
        cvt(libc::fcntl(ctl, libc::F_SETOWN, libc::getpid()))?;
        let flags = cvt(libc::fcntl(ctl, libc::F_GETFL))?;
        cvt(libc::fcntl(ctl, libc::F_SETFL, flags | libc::O_ASYNC))?;
    }
    if hung_up(ctl) {
        // SAFETY: as in the handler.
        unsafe { libc::_exit(125) };
    }
    Ok(())
}

/// Whether the reaper's alarm has rung.
static RANG: AtomicBool = AtomicBool::new(false);

extern "C" fn alarm_handler(_sig: libc::c_int) {
    RANG.store(true, Ordering::SeqCst);
}

/// In the reaper, after the target's fork (which so keeps the default): a `SIGALRM` in
/// `after`, and again every `after` until [`reaper_alarm_off`], whose handler only notes it
/// ([`alarm_rang`]) and, without `SA_RESTART`, interrupts the wait it arrives in (`EINTR`).
/// It repeats because one signal can arrive before the wait has begun: the note is taken
/// then, and the next signal interrupts the wait.
pub(crate) fn reaper_alarm(after: std::time::Duration) -> io::Result<()> {
    let mut sa = action(alarm_handler as *const () as libc::sighandler_t);
    sa.sa_flags = 0;
    sigaction(libc::SIGALRM, Some(&sa))?;
    let every =
        libc::timeval { tv_sec: after.as_secs() as libc::time_t, tv_usec: after.subsec_micros() as libc::suseconds_t };
    set_alarm(libc::itimerval { it_interval: every, it_value: every })
}

/// Stops [`reaper_alarm`]'s signals (one already sent may still come, and is ignored by a
/// wait that goes on).
pub(crate) fn reaper_alarm_off() -> io::Result<()> {
    let zero = libc::timeval { tv_sec: 0, tv_usec: 0 };
    set_alarm(libc::itimerval { it_interval: zero, it_value: zero })
}

fn set_alarm(timer: libc::itimerval) -> io::Result<()> {
    // SAFETY: a valid `itimerval`; the old value is not asked for.
    cvt(unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) }).map(drop)
}

/// Whether [`reaper_alarm`]'s signal has come (once: the note is taken).
pub(crate) fn alarm_rang() -> bool {
    RANG.swap(false, Ordering::SeqCst)
}

/// In the target, first thing: the default dispositions back, `SIGPIPE`'s too (Rust's
/// runtime ignores it in paddock, and an ignored signal stays ignored through `execve`:
/// `yes | head` would end in `EPIPE` and exit 1 rather than die of the signal, as it
/// does without paddock and under `std::process::Command`).
pub(crate) fn target_reset() {
    let sa = action(libc::SIG_DFL);
    for sig in FORWARDED.into_iter().chain([libc::SIGIO, libc::SIGPIPE]) {
        let _ = sigaction(sig, Some(&sa));
    }
}

/// In a helper forked (not exec'd) from the caller: every caught signal back to its default,
/// as `execve` would do (ignored ones stay ignored).
pub(crate) fn reset_all_handlers() {
    let dfl = action(libc::SIG_DFL);
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if let Ok(old) = sigaction(sig, None) {
            if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                let _ = sigaction(sig, Some(&dfl));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The reaper's alarm rings again after one that came before the wait began: the wait
    /// that follows is interrupted and the alarm noted. In a forked child (the alarm and
    /// its handler are process-wide), which exits 0 if so; a child whose wait is never
    /// interrupted is killed after 30 s and fails the test.
    #[test]
    fn an_alarm_before_the_wait_is_followed_by_one_that_interrupts_it() {
        // SAFETY: the child makes system calls only (`sigaction`, `setitimer`, `fork`,
        // `pause`, `waitpid`, `kill`), spins on an atomic, and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: a process group of its own, so the parent can end the grandchild too.
            unsafe { libc::setpgid(0, 0) };
            // SAFETY: as above; the grandchild only waits for a signal.
            let sleeper = unsafe { libc::fork() };
            if sleeper == 0 {
                loop {
                    // SAFETY: no preconditions.
                    unsafe { libc::pause() };
                }
            }
            let code = if sleeper < 0 || reaper_alarm(Duration::from_millis(20)).is_err() {
                2
            } else {
                // The first signal comes while no wait runs.
                while !RANG.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                match crate::sys::wait_any() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted && alarm_rang() => 0,
                    _ => 3,
                }
            };
            // SAFETY: ends the grandchild, then this forked child without running the
            // parent's exit handlers.
            unsafe {
                if sleeper > 0 {
                    libc::kill(sleeper, libc::SIGKILL);
                }
                libc::_exit(code)
            };
        }
        let start = Instant::now();
        let mut ws = 0;
        loop {
            // SAFETY: polling this test's own child into a valid int.
            let r = unsafe { libc::waitpid(pid, &mut ws, libc::WNOHANG) };
            assert!(r >= 0, "waitpid: {}", io::Error::last_os_error());
            if r == pid {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                // SAFETY: the child's process group, made by this test.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                panic!("the wait after a missed alarm was never interrupted");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(libc::WIFEXITED(ws) && libc::WEXITSTATUS(ws) == 0, "the child's wait status: {ws:#x}");
    }
}
