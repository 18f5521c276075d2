//! Where a forked child first runs: on another CPU than its parent's, when the parent
//! goes on working.
//!
//! Not a confinement step: nothing depends on it, and what it cannot do is left as the
//! kernel does it. The kernel often puts a forked child in its parent's CPU's run queue,
//! where it waits until the parent's time slice ends although another CPU is idle. On this
//! project's 2-CPU machine half of `paddock run`'s helpers (forked while the caller goes on
//! to load its policy) first ran 1.2 to 2.1 ms after their fork, the others within 0.2 ms;
//! and the helper's side (its namespaces, then the reaper's mounts) is the longer of a
//! run's two sides before the spec. So, right after the fork, the parent allows the child
//! every CPU the parent may use but the one it runs on, which moves the child at once; the
//! child waits for the parent's word that this is done and takes back the parent's whole
//! set before anything else, so no process it forks and no program it runs inherits the
//! narrower one.

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::process::Pid;
use rustix::thread::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};

/// A child to be started elsewhere ([`Spread::plan`], before the fork).
#[derive(Debug)]
pub(crate) struct Spread {
    /// The parent's CPUs: the child's again once it took them back.
    all: CpuSet,
    /// The parent's word: a byte on this pipe once the child's set was narrowed (or that
    /// failed); its end (the parent gone) serves as well.
    word_r: OwnedFd,
    word_w: OwnedFd,
}

impl Spread {
    /// Before the fork: `None` where this process may run on one CPU only (there is
    /// nowhere else to go), or its set or the pipe cannot be had.
    pub(crate) fn plan() -> Option<Spread> {
        let all = sched_getaffinity(None).ok()?;
        if all.count() < 2 {
            return None;
        }
        let (word_r, word_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
        Some(Spread { all, word_r, word_w })
    }

    /// In the parent, right after the fork: moves `child` off the CPU this process runs on
    /// now, and says so.
    pub(crate) fn parent(self, child: libc::pid_t) {
        let mut elsewhere = self.all;
        elsewhere.unset(sched_getcpu());
        if let Some(pid) = Pid::from_raw(child).filter(|_| elsewhere.count() > 0) {
            // Failing (the child is gone, or the CPUs allowed changed meanwhile) leaves the
            // child where the kernel put it, as without this step.
            let _ = sched_setaffinity(Some(pid), &elsewhere);
        }
        let _ = crate::sys::write_all(self.word_w.as_raw_fd(), b"m");
    }

    /// In the child, first of all: waits for the parent's word (it comes within
    /// microseconds of the fork) and takes back every CPU the parent may use. Where that
    /// fails (the CPUs allowed changed meanwhile), this process and what it starts keep
    /// the narrower set: one CPU fewer, nothing else.
    pub(crate) fn child(self) {
        let Spread { all, word_r, word_w } = self;
        // This process's copy of the writing end must not keep the pipe open: the parent's
        // end alone says whether it is done.
        drop(word_w);
        let mut b = [0u8; 1];
        let _ = crate::sys::read(word_r.as_raw_fd(), &mut b);
        let _ = sched_setaffinity(None, &all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child started elsewhere ends up with every CPU its parent may use: nothing it
    /// forks or runs inherits the narrower set it was moved with.
    #[test]
    fn the_child_takes_back_every_cpu() {
        let before = sched_getaffinity(None).unwrap();
        let Some(spread) = Spread::plan() else {
            // One CPU allowed: nothing to do, and nothing is done.
            assert!(before.count() <= 1, "{before:?}");
            return;
        };
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        // SAFETY: the child only makes system calls on descriptors opened before the fork
        // and a stack buffer, then leaves with `_exit`; nothing it calls takes a lock.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            spread.child();
            let mine = sched_getaffinity(None).map(|s| s == before).unwrap_or(false);
            let _ = crate::sys::write_all(w.as_raw_fd(), &[u8::from(mine)]);
            crate::sys::exit_now(0);
        }
        drop(w);
        spread.parent(pid);
        let mut b = [9u8; 1];
        let n = crate::sys::read(r.as_raw_fd(), &mut b).unwrap();
        crate::sys::reap(pid);
        assert_eq!((n, b[0]), (1, 1), "the child did not get every CPU back");
        assert!(sched_getaffinity(None).unwrap() == before, "the parent's own set changed");
    }
}
