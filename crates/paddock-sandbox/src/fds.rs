//! Step 9 of the order (in the target, after seccomp, just before `execve`): no inherited
//! descriptors beyond 0, 1 and 2.
//!
//! Everything from 3 up is closed with `close_range(2)` except the control socket, which is
//! marked close-on-exec: it carries the report and the release byte, and is gone once
//! `execve` succeeds (or reports its failure if not).

use std::os::fd::RawFd;

use crate::layer::{Applied, LayerState};
use crate::sys::{self, close_range};

/// Closes every descriptor but 0, 1, 2 and `keep` (made close-on-exec).
pub(crate) fn close_inherited(keep: RawFd) -> Applied {
    let keep = keep as u32;
    let r = close_range(3, keep.saturating_sub(1)).and_then(|()| close_range(keep + 1, u32::MAX));
    let cloexec = sys::set_cloexec(keep as RawFd);
    match (r, cloexec) {
        (Ok(()), Ok(())) => Applied::new(LayerState::Enforced, "only 0, 1, 2 are inherited (close_range)"),
        (Err(e), _) => Applied::new(LayerState::Unavailable, format!("close_range failed: {e}")),
        (_, _) => Applied::new(LayerState::Unavailable, "control socket could not be marked close-on-exec"),
    }
}
