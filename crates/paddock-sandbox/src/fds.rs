//! Step 9 of the order (in the target, after seccomp, just before `execve`): no inherited
//! descriptors beyond 0, 1 and 2.
//!
//! Everything from 3 up is closed with `close_range(2)` except the control socket, which is
//! marked close-on-exec: it carries the report and the release byte, and is gone once
//! `execve` succeeds (or reports its failure if not); and, where the execs are supervised,
//! the exec listener, also close-on-exec, which goes out with the report and is closed
//! right after, before `execve`.

use std::os::fd::RawFd;

use crate::layer::{Applied, LayerState};
use crate::sys::{self, close_range};

/// Closes every descriptor but 0, 1, 2 and those of `keep` (made close-on-exec).
pub(crate) fn close_inherited(keep: &[RawFd]) -> Applied {
    let mut keep: Vec<u32> = keep.iter().map(|&fd| fd as u32).filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    // The gaps between the kept ones (sorted), then everything above the last.
    let mut from = 3u32;
    let r = keep
        .iter()
        .try_for_each(|&k| {
            let gap = if k > from { close_range(from, k - 1) } else { Ok(()) };
            from = k + 1;
            gap
        })
        .and_then(|()| close_range(from, u32::MAX));
    let cloexec = keep.iter().try_for_each(|&fd| sys::set_cloexec(fd as RawFd));
    match (r, cloexec) {
        (Ok(()), Ok(())) => Applied::new(LayerState::Enforced, "only 0, 1, 2 are inherited (close_range)"),
        (Err(e), _) => Applied::new(LayerState::Unavailable, format!("close_range failed: {e}")),
        (_, _) => Applied::new(LayerState::Unavailable, "control socket could not be marked close-on-exec"),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::IntoRawFd;

    use super::*;

    /// The descriptor flags of `fd`, `None` when it is not open.
    fn flags(fd: RawFd) -> Option<libc::c_int> {
        // SAFETY: F_GETFD only reads the descriptor table entry of `fd`.
        let f = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        (f >= 0).then_some(f)
    }

    /// Every descriptor from 3 up is closed but the kept ones, which stay open and
    /// close-on-exec, whatever their order, repeated, and with gaps between them; 0, 1 and
    /// 2 are left as they were.
    #[test]
    fn only_the_kept_descriptors_survive() {
        let code = crate::sys::in_child(|| {
            let std_before: Vec<bool> = (0..3).map(|fd| flags(fd).is_some()).collect();
            let fds: Vec<RawFd> = (0..8).map(|_| File::open("/dev/null").unwrap().into_raw_fd()).collect();
            let keep = [fds[5], fds[1], fds[5]];
            if close_inherited(&keep).state != LayerState::Enforced {
                return 1;
            }
            for &fd in &fds {
                match (keep.contains(&fd), flags(fd)) {
                    (true, Some(f)) if f & libc::FD_CLOEXEC != 0 => {}
                    (false, None) => {}
                    _ => return 2,
                }
            }
            let std_after: Vec<bool> = (0..3).map(|fd| flags(fd).is_some()).collect();
            if std_after != std_before {
                return 3;
            }
            0
        });
        assert_eq!(code, 0);
    }
}
