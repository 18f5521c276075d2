//! Steps 6 and 7 of the order (in the target, after the rlimits, before seccomp): drop
//! every capability, then set `no_new_privs`.
//!
//! Securebits are locked first (`NOROOT`, `NO_SETUID_FIXUP`, `KEEP_CAPS`,
//! `NO_CAP_AMBIENT_RAISE`) so uid 0 inside the sandbox gains nothing at `execve`; then the
//! bounding set is emptied, the ambient set cleared, and `capset` zeroes the inheritable,
//! effective and permitted sets. As root, the child therefore holds no capability at all,
//! in its user namespace or the host's.

use std::io;

use rustix::thread::{capabilities, set_capabilities, CapabilitySet, CapabilitySets};

use crate::layer::{Applied, LayerState};
use crate::sys::prctl;

/// `capset(2)` of empty effective, permitted and inheritable sets for this thread.
fn capset_zero() -> io::Result<()> {
    let none = CapabilitySet::empty();
    Ok(set_capabilities(None, CapabilitySets { effective: none, permitted: none, inheritable: none })?)
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
    let mut bounding_ok = true;
    // Capabilities are numbered without gaps: the first EINVAL is one past the last
    // (/proc/sys/kernel/cap_last_cap says the same, for the price of a file read).
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(_) => bounding_ok = false,
        }
    }
    if !bounding_ok {
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
