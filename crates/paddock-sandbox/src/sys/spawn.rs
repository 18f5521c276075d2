//! `clone(CLONE_VM | CLONE_VFORK)`: a child that shares this process's memory until it
//! `execve`s, for the target (what `fork` would copy of the reaper's page tables, and fault
//! in again, the target never uses).

use std::io;

use super::exit_now;

/// The stack of a [`spawn_vfork`] child: the target's confinement steps (Landlock,
/// seccomp, the report's JSON) use a small part of it; reserved, not committed.
const VFORK_STACK: usize = 2 << 20;

/// Runs `child` in a new process that shares this process's memory (`clone(2)` with
/// `CLONE_VM | CLONE_VFORK`, as `posix_spawn` does) on a stack of its own, until it
/// `execve`s or exits; this process is suspended meanwhile, so the two never run at once
/// on the shared memory. Returns the child's pid once the child has exec'd or exited. Its
/// exit signal is `SIGCHLD`, as a fork's child. The child gets a copy of the descriptor
/// table and signal dispositions, and credentials of its own (so its Landlock domain,
/// seccomp filters, capabilities and rlimits are its own), exactly as after `fork`; only
/// the pages are not copied, nor faulted in again: what `fork` costs a large process.
///
/// # Safety
///
/// The calling process must be single-threaded (as for [`super::fork`]). `child` must never
/// return (it ends in `execve` or `_exit`); what it changes in memory (allocations,
/// statics) is seen by this process afterwards, so it must leave nothing this process
/// relies on broken; a descriptor it closes stays open here. (Should it return, the child
/// exits 125.)
pub(crate) unsafe fn spawn_vfork(child: Box<dyn FnOnce()>) -> io::Result<libc::pid_t> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `Box` leaked below, taken exactly once, here.
        let child = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce()>>()) };
        child();
        exit_now(125)
    }
    let page = super::memory::page_size();
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            VFORK_STACK + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let unmap = || {
        // SAFETY: the mapping made above, no longer used by anyone (the child has exec'd
        // or exited, or never ran).
        unsafe { libc::munmap(base, VFORK_STACK + page) };
    };
    // SAFETY: the lowest page of the mapping made above becomes a guard page: the child
    // overflowing its stack faults instead of writing below it.
    if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
        let e = io::Error::last_os_error();
        unmap();
        return Err(e);
    }
    let arg = Box::into_raw(Box::new(child));
    // SAFETY: the stack's top is the mapping's end (the stack grows down, 16-byte aligned:
    // the mapping is page-aligned); `trampoline` takes `arg` and never returns; with
    // CLONE_VFORK this single-threaded process runs again only once the child no longer
    // uses the shared memory (the caller's precondition covers what the child does).
    let pid = unsafe {
        libc::clone(
            trampoline,
            base.cast::<u8>().add(VFORK_STACK + page).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg.cast(),
        )
    };
    if pid < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: the child never ran: the box is still ours.
        drop(unsafe { Box::from_raw(arg) });
        unmap();
        return Err(e);
    }
    unmap();
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    static SEEN: AtomicU32 = AtomicU32::new(0);

    fn nofile() -> libc::rlim_t {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid rlimit to fill.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        r.rlim_cur
    }

    /// The child runs to its end before the parent goes on, writes the memory the parent
    /// sees, and its limits and descriptors are its own. (The test harness has other
    /// threads; the child makes system calls only, which is safe there too.)
    #[test]
    fn a_vfork_child_shares_memory_but_not_limits_or_descriptors() {
        let (r, w) = crate::stdio::pipe().unwrap();
        let (w_raw, before) = (w.as_raw_fd(), nofile());
        let child = move || {
            SEEN.store(7, Ordering::SeqCst);
            let low = libc::rlimit { rlim_cur: 16, rlim_max: 16 };
            // SAFETY: a valid rlimit; the descriptor is this child's copy.
            unsafe {
                libc::setrlimit(libc::RLIMIT_NOFILE, &low);
                libc::close(w_raw);
            }
            exit_now(9)
        };
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { spawn_vfork(Box::new(child)) }.unwrap();
        assert_eq!(SEEN.load(Ordering::SeqCst), 7, "the parent went on before the child ended");
        assert_eq!(nofile(), before, "the child's limit changed the parent's");
        // SAFETY: F_GETFD on a descriptor number.
        assert!(unsafe { libc::fcntl(w_raw, libc::F_GETFD) } >= 0, "the child's close closed the parent's");
        let ws = crate::sys::reap(pid).unwrap();
        assert!(libc::WIFEXITED(ws) && libc::WEXITSTATUS(ws) == 9, "{ws:#x}");
        drop((r, w));
    }

    /// A child that `execve`s: the parent goes on once the exec is done, and the program's
    /// exit status is the child's.
    #[test]
    fn a_vfork_child_that_execs_is_the_program() {
        let path = c"/bin/sh";
        let (a0, a1, a2) = (c"sh", c"-c", c"exit 3");
        let argv = [a0.as_ptr(), a1.as_ptr(), a2.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let (argv, envp) = (argv.as_ptr() as usize, envp.as_ptr() as usize);
        let child = move || {
            // SAFETY: null-terminated arrays of static C strings, alive in the parent's
            // frame (suspended until the exec is done).
            unsafe {
                libc::execve(path.as_ptr(), argv as *const *const libc::c_char, envp as *const *const libc::c_char)
            };
            exit_now(127)
        };
        // SAFETY: the child only execs (or exits).
        let pid = unsafe { spawn_vfork(Box::new(child)) }.unwrap();
        let ws = crate::sys::reap(pid).unwrap();
        assert!(libc::WIFEXITED(ws) && libc::WEXITSTATUS(ws) == 3, "{ws:#x}");
    }
}
