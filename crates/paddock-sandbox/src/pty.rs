//! The pseudo-terminal of [`crate::StdioMode::Pty`]: opened by the reaper right after the
//! mount view (step 3), from the sandbox's own devpts instance, so the child's terminal is
//! `/dev/pts/N` of its own view and no host pty is reachable; the master goes to the parent
//! over the control socket. In the target (step 4, right after its own `setsid`) the slave
//! becomes descriptors 0, 1, 2 and the controlling terminal.
//!
//! The parent puts the caller's terminal in raw mode (restored on drop), relays bytes both
//! ways and copies the window size to the pty whenever it changes, which makes the kernel
//! send `SIGWINCH` to the child's foreground process group. The child never holds a
//! descriptor of the caller's real terminal.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios, Winsize};

use crate::sys;

/// True when this process's stdin is a terminal.
pub(crate) fn stdin_is_tty() -> bool {
    rustix::termios::isatty(io::stdin())
}

/// The window size of this process's stdin, if it is a terminal.
pub(crate) fn stdin_winsize() -> Option<Winsize> {
    rustix::termios::tcgetwinsize(io::stdin()).ok()
}

/// Sets the window size of the terminal `fd` (the pty master): the kernel then sends
/// `SIGWINCH` to the child's foreground process group.
pub(crate) fn set_winsize(fd: impl AsFd, ws: Winsize) {
    // A pty whose child is gone has nobody left to tell.
    let _ = rustix::termios::tcsetwinsize(fd, ws);
}

/// In the reaper: a new pty pair `(master, slave)` from `/dev/ptmx` of the current view,
/// both close-on-exec; the slave opened from the master (`TIOCGPTPEER`), without a path.
pub(crate) fn open_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
    Ok((master, slave))
}

/// In the target: the slave becomes descriptors 0, 1, 2 and the controlling terminal of
/// this new session.
pub(crate) fn make_controlling(slave: impl AsFd) -> io::Result<()> {
    for target in 0..3 {
        sys::dup_onto_stdio(&slave, target)?;
    }
    Ok(rustix::process::ioctl_tiocsctty(io::stdin())?)
}

/// Raw mode on the caller's terminal (its stdin) while it lives; the old settings come
/// back on drop.
pub(crate) struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode.
    pub(crate) fn enter_stdin() -> io::Result<RawMode> {
        let saved = rustix::termios::tcgetattr(io::stdin())?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(io::stdin(), OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Best effort: the caller's terminal is restored if it is still there.
        let _ = rustix::termios::tcsetattr(io::stdin(), OptionalActions::Flush, &self.saved);
    }
}
