//! What callers killed outright left: the empty cgroup directories of processes that are
//! gone. A zygote's call cgroup is removed by its caller once the call's pid 1 has ended,
//! and the cgroup made ahead for the next call when the zygote goes; a caller killed
//! outright does neither. So a zygote's cgroup thread, once it has made a cgroup (and so
//! knows where they go), removes beside it every `paddock-<pid>` and `paddock-<pid>-z<n>`
//! directory whose process is gone, made a minute ago or more. One that still holds a
//! process stays: the kernel does not remove a populated cgroup. Off every call's path.

use std::ffi::CStr;
use std::os::fd::AsFd;

use super::SandboxCgroup;

/// The pid in a name of paddock's cgroups (`paddock-<pid>` or `paddock-<pid>-z<n>`).
fn owner(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(b"paddock-")?;
    let (pid, tail) = match rest.iter().position(|&b| b == b'-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(pid) {
        return None;
    }
    if let Some(t) = tail {
        if !t.strip_prefix(b"z").is_some_and(digits) {
            return None;
        }
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// How old a cgroup must be to be swept ([`beside`]'s `min_age` for a zygote's thread): a
/// creator this process cannot see (another pid namespace sharing the parent cgroup)
/// moves its process in within milliseconds of making it.
pub(crate) const MIN_AGE_SECS: i64 = 60;

/// Whether `name` in `parent` was made (or changed) in the last `min_age` seconds, or its
/// age cannot be told.
fn recent(parent: &std::os::fd::OwnedFd, name: &CStr, min_age: i64) -> bool {
    let Ok(st) = rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else { return true };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    now - st.st_ctime < min_age
}

/// Removes, in each directory `cg`'s parts were made in, the cgroups of gone processes
/// made `min_age` seconds ago or more; how many went.
pub(crate) fn beside(cg: &SandboxCgroup, min_age: i64) -> usize {
    let mut removed = 0;
    for p in &cg.parts {
        let Ok(dir) = super::fs::open_at(p.parent.as_fd(), ".", libc::O_RDONLY | libc::O_DIRECTORY) else {
            continue;
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&dir) else { continue };
        for entry in entries.flatten() {
            let name: &CStr = entry.file_name();
            let Some(pid) = owner(name.to_bytes()) else { continue };
            if std::path::Path::new(&format!("/proc/{pid}")).exists() || recent(&p.parent, name, min_age) {
                continue;
            }
            if rustix::fs::unlinkat(&p.parent, name, rustix::fs::AtFlags::REMOVEDIR).is_ok() {
                tracing::debug!(?name, "removed the cgroup of a gone process");
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paddocks_names_with_a_pid() {
        assert_eq!(owner(b"paddock-123"), Some(123));
        assert_eq!(owner(b"paddock-123-z7"), Some(123));
        for other in [
            &b"paddock-"[..],
            b"paddock-x1",
            b"paddock-12-",
            b"paddock-12-z",
            b"paddock-12-y3",
            b"paddock-test-enter-5",
        ] {
            assert_eq!(owner(other), None, "{}", String::from_utf8_lossy(other));
        }
        assert_eq!(owner(b"user.slice"), None);
    }

    /// Beside a cgroup of this process's: a gone process's cgroup is removed once old
    /// enough, a live one's is kept.
    #[test]
    fn the_cgroups_of_gone_processes_are_removed() {
        use crate::spec::Limits;
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let limits = Limits { max_processes: Some(64), ..Limits::default() };
        let probe = super::super::create_named(&limits, &format!("paddock-test-sweep-{}", crate::sys::getpid()));
        let Some(cg) = probe.cgroup.as_ref() else {
            return; // no cgroup can be made here (unprivileged)
        };
        let gone_name = format!("paddock-{gone}-z0");
        let live_name = format!("paddock-{}-z999999", crate::sys::getpid());
        for p in &cg.parts {
            for n in [&gone_name, &live_name] {
                rustix::fs::mkdirat(&p.parent, n.as_str(), rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
            }
        }
        let there = |n: &str| cg.parts.iter().all(|p| super::super::fs::exists_at(&p.parent, n));
        // Just made: not yet.
        beside(cg, MIN_AGE_SECS);
        assert!(there(&gone_name), "a cgroup made just now was swept");
        beside(cg, 0);
        assert!(cg.parts.iter().all(|p| !super::super::fs::exists_at(&p.parent, &gone_name)), "left");
        assert!(there(&live_name), "a live process's cgroup was removed");
        for p in &cg.parts {
            let _ = rustix::fs::unlinkat(&p.parent, live_name.as_str(), rustix::fs::AtFlags::REMOVEDIR);
        }
        cg.remove();
    }
}
