//! What callers killed outright left: the empty cgroup directories of processes that are
//! gone. A zygote's call cgroup is removed by its caller once the call's pid 1 has ended,
//! and the cgroup made ahead for the next call when the zygote goes; a caller killed
//! outright does neither. So a zygote's cgroup thread, once it has made a cgroup (and so
//! knows where they go), removes beside it every `paddock-<pid>` and `paddock-<pid>-z<n>`
//! directory whose process is gone. One that still holds a process stays: the kernel does
//! not remove a populated cgroup. Off every call's path.

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

/// Removes, in each directory `cg`'s parts were made in, the cgroups of gone processes;
/// how many went.
pub(crate) fn beside(cg: &SandboxCgroup) -> usize {
    let mut removed = 0;
    for p in &cg.parts {
        let Ok(dir) = super::fs::open_at(p.parent.as_fd(), ".", libc::O_RDONLY | libc::O_DIRECTORY) else {
            continue;
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&dir) else { continue };
        for entry in entries.flatten() {
            let name: &CStr = entry.file_name();
            let Some(pid) = owner(name.to_bytes()) else { continue };
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
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
}
