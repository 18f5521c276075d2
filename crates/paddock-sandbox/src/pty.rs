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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::cvt;

/// True when `fd` is a terminal.
pub(crate) fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The window size of `fd`, if it is a terminal.
pub(crate) fn winsize(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize to the pointer.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// Sets the window size of `fd`.
pub(crate) fn set_winsize(fd: RawFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
}

/// In the reaper: a new pty pair `(master, slave)` from `/dev/ptmx` of the current view,
/// both close-on-exec.
pub(crate) fn open_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: a valid NUL-terminated path.
    let m = cvt(unsafe { libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    // SAFETY: unlockpt on the master we own.
    cvt(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    // SAFETY: TIOCGPTPEER opens the slave of this master without a path lookup.
    let s =
        cvt(unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: a new descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok((master, slave))
}

/// In the target: the slave becomes descriptors 0, 1, 2 and the controlling terminal of
/// this new session.
pub(crate) fn make_controlling(slave: RawFd) -> io::Result<()> {
    for target in 0..3 {
        // SAFETY: dup2 onto our own standard descriptors.
        cvt(unsafe { libc::dup2(slave, target) })?;
    }
    // SAFETY: TIOCSCTTY with argument 0 on our own stdin.
    cvt(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }).map(drop)
}

/// Raw mode on the caller's terminal while it lives; the old settings come back on drop.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` in raw mode.
    pub(crate) fn enter(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: an all-zero termios is valid; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and termios pointer.
        cvt(unsafe { libc::tcgetattr(fd, &mut saved) })?;
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: valid descriptor and termios pointer.
        cvt(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) })?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter` on the same descriptor.
        unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved) };
    }
}
