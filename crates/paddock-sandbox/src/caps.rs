//! Steps 6 and 7 of the order (in the target, after the rlimits, before seccomp): drop
//! every capability, then set `no_new_privs`.
//!
//! Securebits are locked first (`NOROOT`, `NO_SETUID_FIXUP`, `KEEP_CAPS`,
//! `NO_CAP_AMBIENT_RAISE`) so uid 0 inside the sandbox gains nothing at `execve`; then the
//! bounding set is emptied, the ambient set cleared, and `capset` zeroes the inheritable,
//! effective and permitted sets. As root, the child therefore holds no capability at all,
//! in its user namespace or the host's.
//!
//! The bounding set limits only what an `execve` can grant, so the process the target is
//! forked from (a run's reaper forked ahead, a zygote's spare) empties it ahead of the
//! call ([`empty_bounding_set`]) while it waits, keeping its own effective capabilities for
//! the mounts; the target inherits the empty set, and its own step reads each
//! capability and drops only one still there. Each drop commits new credentials (about
//! 1.5 µs a capability here, 41 of them); a read costs a fifth of that.

use std::io;

use rustix::thread::{capabilities, set_capabilities, CapabilitySet, CapabilitySets};

use crate::layer::{Applied, LayerState};
use crate::sys::prctl;

/// `capset(2)` of empty effective, permitted and inheritable sets for this thread.
fn capset_zero() -> io::Result<()> {
    let none = CapabilitySet::empty();
    Ok(set_capabilities(None, CapabilitySets { effective: none, permitted: none, inheritable: none })?)
}

/// Empties the capability bounding set: each capability still in it is dropped, one
/// already out is only read. Whether every one is out (a drop needs `CAP_SETPCAP`).
pub(crate) fn empty_bounding_set() -> bool {
    let mut all_out = true;
    // Capabilities are numbered without gaps: the first EINVAL is one past the last
    // (/proc/sys/kernel/cap_last_cap says the same, for the price of a file read).
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_READ, cap, 0) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(_) => {}
        }
        if prctl(libc::PR_CAPBSET_DROP, cap, 0).is_err() {
            all_out = false;
        }
    }
    all_out
}

/// Drops all capabilities; returns the layer state and detail.
pub(crate) fn drop_all() -> Applied {
    const SECBIT_NOROOT: u64 = 1 << 0;
    const SECBIT_NOROOT_LOCKED: u64 = 1 << 1;
    const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
    const SECBIT_NO_SETUID_FIXUP_LOCKED: u64 = 1 << 3;
    const SECBIT_KEEP_CAPS_LOCKED: u64 = 1 << 5;
    const SECBIT_NO_CAP_AMBIENT_RAISE: u64 = 1 << 6;
    const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u64 = 1 << 7;
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    let mut notes = Vec::new();
    if let Err(e) = prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0) {
        notes.push(format!("securebits not locked: {e}"));
    }
    if !empty_bounding_set() {
        notes.push("bounding set kept (no CAP_SETPCAP); no_new_privs stops any gain".into());
    }
    let _ = prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0);
    if let Err(e) = capset_zero() {
        return Applied::new(LayerState::Unavailable, format!("capset failed: {e}"));
    }
    match capabilities(None) {
        Ok(c) if c.effective.is_empty() && c.permitted.is_empty() && c.inheritable.is_empty() => {
            let mut detail =
                "no capabilities: bounding, ambient, inheritable, effective and permitted sets empty".to_string();
            if !notes.is_empty() {
                detail = format!("no capabilities; {}", notes.join("; "));
            }
            Applied::new(LayerState::Enforced, detail)
        }
        Ok(_) => Applied::new(LayerState::Unavailable, "capabilities remain after capset"),
        Err(e) => Applied::new(LayerState::Unavailable, format!("capget failed: {e}")),
    }
}

/// `PR_SET_NO_NEW_PRIVS`: setuid bits and file capabilities grant nothing from here on.
pub(crate) fn no_new_privs() -> Applied {
    match prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).and_then(|_| prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0)) {
        Ok(1) => Applied::new(LayerState::Enforced, "PR_SET_NO_NEW_PRIVS"),
        Ok(_) => Applied::new(LayerState::Unavailable, "no_new_privs did not stick"),
        Err(e) => Applied::new(LayerState::Unavailable, format!("prctl failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PR_CAPBSET_READ` of every capability the kernel knows (no allocation: for a child
    /// forked from the multi-threaded test process), and how many it knows.
    fn bounding_set() -> ([bool; 64], usize) {
        let mut set = [false; 64];
        let mut known = 0;
        while let Ok(r) = prctl(libc::PR_CAPBSET_READ, known as libc::c_ulong, 0) {
            set[known] = r == 1;
            known += 1;
            if known == set.len() {
                break;
            }
        }
        (set, known)
    }

    #[test]
    fn the_bounding_set_is_emptied_around_what_was_dropped_before() {
        let root = rustix::process::geteuid().is_root();
        // SAFETY: the child makes system calls only (no allocation) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let before = bounding_set();
            // One already out, as after the reaper's step ahead (needs CAP_SETPCAP).
            let _ = prctl(libc::PR_CAPBSET_DROP, 3, 0);
            let all_out = empty_bounding_set();
            let after = bounding_set();
            let ok = if root {
                all_out && before.1 > 3 && after.1 == before.1 && after.0.iter().all(|&c| !c)
            } else {
                // No CAP_SETPCAP: nothing changes, and it says so.
                !all_out && after == before
            };
            crate::sys::exit_now(if ok { 0 } else { 1 })
        }
        assert_eq!(crate::sys::wait_for(pid, std::time::Duration::from_secs(10)), Some(0));
    }
}
