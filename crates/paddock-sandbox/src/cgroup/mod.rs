//! The `cgroup` layer: a fresh cgroup that bounds the whole process tree.
//!
//! rlimits are per process (`RLIMIT_AS`) or per uid, and the kernel exempts root from
//! `RLIMIT_NPROC`, so as root neither `max_processes` nor `max_memory` would bound a fork
//! bomb or a tree of allocators. When a cgroup can be had, the tree goes into a new one,
//! `paddock-<helper pid>`, with `pids.max = max_processes` and a memory limit of
//! `max_memory` (swap included where the kernel accounts it):
//!
//! * cgroup v2: under this process's own cgroup when its `cgroup.subtree_control` already
//!   offers `pids`/`memory` (only the root cgroup may hold processes and offer them), else
//!   beside it, under its parent, when the parent offers them to it (`cgroup.controllers`)
//!   and is writable: as root, or when the parent is delegated to this user.
//! * cgroup v1, per controller: under this process's cgroup of the `pids` and `memory`
//!   hierarchies, when writable (as root).
//!
//! Order: created by the helper before the namespaces (step 1b), while it still sees the
//! host's cgroup tree; the descriptors of the new `cgroup.procs` files are opened then, so
//! the kernel checks the move with the helper's credentials and cgroup namespace as of
//! that moment. The reaper moves itself in first thing (step 3a), before it forks the
//! target, and then takes a cgroup namespace rooted at the new cgroup. The helper removes
//! the cgroup once the reaper is reaped: the pid namespace is dead then, so it is empty.
//! For a [`crate::Zygote`]'s call the caller makes the cgroup (`paddock-<pid>-z<n>`, its
//! host view and credentials), and hands the descriptors to the call's helper, which
//! plays the helper's part above (and the caller removes it too if the call's helper
//! died). `RLIMIT_NPROC` and `RLIMIT_AS` stay in force as well (step 5); they are what works
//! unprivileged.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

mod v1;
mod v2;

use crate::layer::{Applied, LayerState};
use crate::spec::Limits;
use crate::sys::{cstring, cvt, write_all};

/// One directory made for the sandbox in one hierarchy.
#[derive(Debug)]
struct Part {
    /// The parent directory (`O_PATH`), to remove the cgroup whatever the mount view.
    parent: OwnedFd,
    /// The new directory's name in `parent`.
    name: CString,
    /// Its `cgroup.procs`, open for writing.
    procs: OwnedFd,
}

/// The sandbox's cgroup, one directory per hierarchy used.
#[derive(Debug, Default)]
pub(crate) struct SandboxCgroup {
    parts: Vec<Part>,
}

/// What [`create`] made, and the layer's status.
#[derive(Debug)]
pub(crate) struct Setup {
    /// The cgroup, when at least one limit is set in one.
    pub cgroup: Option<SandboxCgroup>,
    /// The layer's status.
    pub applied: Applied,
}

fn open_at(dir: RawFd, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstring(name)?;
    // SAFETY: a valid directory descriptor or AT_FDCWD and a NUL-terminated name.
    let fd = cvt(unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn write_file(dir: &OwnedFd, name: &str, value: &str) -> io::Result<()> {
    let f = open_at(dir.as_raw_fd(), name, libc::O_WRONLY)?;
    write_all(f.as_raw_fd(), value.as_bytes()).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))
}

fn exists_at(dir: &OwnedFd, name: &str) -> bool {
    let Ok(c) = cstring(name) else { return false };
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    unsafe { libc::faccessat(dir.as_raw_fd(), c.as_ptr(), libc::F_OK, 0) == 0 }
}

/// Makes `base/name` and opens what the later steps need.
fn make_dir(base: &Path, name: &str) -> io::Result<(Part, OwnedFd)> {
    let parent = open_at(libc::AT_FDCWD, &base.to_string_lossy(), libc::O_PATH | libc::O_DIRECTORY)?;
    let cname = cstring(name)?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    let mut r = unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o755) };
    if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
        // A leftover of a helper that was killed with this pid: empty, so removable.
        // SAFETY: as above.
        unsafe {
            libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), libc::AT_REMOVEDIR);
            r = libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o755);
        }
    }
    cvt(r).map_err(|e| io::Error::new(e.kind(), format!("mkdir {}/{name}: {e}", base.display())))?;
    let dir = open_at(parent.as_raw_fd(), name, libc::O_DIRECTORY | libc::O_RDONLY);
    let procs = dir.as_ref().ok().map(|d| open_at(d.as_raw_fd(), "cgroup.procs", libc::O_WRONLY));
    match (dir, procs) {
        (Ok(dir), Some(Ok(procs))) => Ok((Part { parent, name: cname, procs }, dir)),
        (Err(e), _) | (_, Some(Err(e))) => {
            Part::remove_dir(&parent, &cname);
            Err(e)
        }
        (Ok(_), None) => unreachable!("procs is opened when dir is"),
    }
}

impl Part {
    fn remove_dir(parent: &OwnedFd, name: &CString) -> bool {
        // Tasks leave their cgroup in do_exit, before they are reaped; a short retry covers
        // the rare case where the last one is still on its way out.
        for _ in 0..200 {
            // SAFETY: a valid directory descriptor and a NUL-terminated name.
            if unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) } == 0 {
                return true;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(1)),
                _ => return false,
            }
        }
        false
    }
}

impl SandboxCgroup {
    /// In the reaper, before the target forks: moves this process into every directory.
    pub(crate) fn enter(&self) -> io::Result<()> {
        for fd in self.parts.iter().map(|p| &p.procs) {
            write_all(fd.as_raw_fd(), b"0")?;
        }
        Ok(())
    }

    /// What a zygote's call needs to enter and remove the cgroup: for each directory its
    /// name, and the descriptors of its `cgroup.procs` and of its parent.
    pub(crate) fn handover(&self) -> (Vec<String>, Vec<RawFd>) {
        let names = self.parts.iter().map(|p| p.name.to_string_lossy().into_owned()).collect();
        let fds = self.parts.iter().flat_map(|p| [p.procs.as_raw_fd(), p.parent.as_raw_fd()]).collect();
        (names, fds)
    }

    /// The cgroup [`SandboxCgroup::handover`] described, received by a zygote's call
    /// (`fds`: pairs of `cgroup.procs` and parent). Malformed input yields `None`.
    pub(crate) fn from_handover(names: &[String], fds: Vec<OwnedFd>) -> Option<SandboxCgroup> {
        if fds.len() != names.len() * 2 || names.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        let mut it = fds.into_iter();
        for n in names {
            let (procs, parent) = (it.next()?, it.next()?);
            parts.push(Part { parent, name: cstring(n).ok()?, procs });
        }
        Some(SandboxCgroup { parts })
    }

    /// In the helper, once the reaper is reaped: removes every directory.
    pub(crate) fn remove(&self) {
        for p in &self.parts {
            if !Part::remove_dir(&p.parent, &p.name) {
                tracing::debug!(name = ?p.name, "the sandbox cgroup could not be removed");
            }
        }
    }
}

/// `(hierarchy id, controllers, path)` of each line of `/proc/self/cgroup`.
fn own_cgroups(text: &str) -> Vec<(&str, Vec<&str>, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (id, ctl, path) = (it.next()?, it.next()?, it.next()?);
            Some((id, ctl.split(',').filter(|c| !c.is_empty()).collect(), path))
        })
        .collect()
}

/// `(root, mount point, fstype, super options)` of each cgroup mount in `mountinfo`.
fn cgroup_mounts(text: &str) -> Vec<(&str, &str, &str, &str)> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut pre = pre.split(' ');
            let root = pre.nth(3)?;
            let mp = pre.next()?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let opts = post.nth(1).unwrap_or("");
            (fstype == "cgroup" || fstype == "cgroup2").then_some((root, mp, fstype, opts))
        })
        .collect()
}

/// The directory of `path` (a cgroup path as `/proc/self/cgroup` shows it) under a mount of
/// the hierarchy rooted at `root`, mounted at `mp`.
fn dir_of(mp: &str, root: &str, path: &str) -> Option<PathBuf> {
    let rel = if root == "/" { path } else { path.strip_prefix(root)? };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() { PathBuf::from(mp) } else { Path::new(mp).join(rel) })
}

fn read_words(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

/// What one controller needs: the file and value of its limit.
struct Want {
    ctl: &'static str,
    value: u64,
}

/// Creates the sandbox's cgroup for `limits`, in the helper, before the namespaces.
pub(crate) fn create(limits: &Limits) -> Setup {
    // SAFETY: getpid cannot fail.
    create_named(limits, &format!("paddock-{}", unsafe { libc::getpid() }))
}

/// What the attempts found, for the layer's detail.
#[derive(Default)]
struct Notes {
    /// The limits written (`pids.max=64`, ...).
    set: Vec<String>,
    /// Why a hierarchy or controller could not be used.
    why: Vec<String>,
    /// The directories made.
    where_: Vec<String>,
    /// Controllers no cgroup bounds.
    missing: Vec<&'static str>,
}

/// [`create`] with the directory's name given (a zygote's calls are all made by the
/// caller's process: `paddock-<pid>-z<n>`): cgroup v2 if it offers every controller
/// wanted, else cgroup v1 per controller.
pub(crate) fn create_named(limits: &Limits, name: &str) -> Setup {
    let mut wants = Vec::new();
    if let Some(v) = limits.max_processes {
        wants.push(Want { ctl: "pids", value: v });
    }
    if let Some(v) = limits.max_memory {
        wants.push(Want { ctl: "memory", value: v });
    }
    if wants.is_empty() {
        return Setup {
            cgroup: None,
            applied: Applied::new(LayerState::Unavailable, "not needed: no memory or process limit requested"),
        };
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = own_cgroups(&own);
    let mounts = cgroup_mounts(&mounts);
    let mut notes = Notes::default();
    let mut cg = SandboxCgroup::default();
    let v2 = v2::make(&own, &mounts, &wants, name, limits.max_memory.is_some(), &mut notes);
    let v2_done = v2.is_some();
    match v2 {
        Some(part) => cg.parts.push(part),
        None => cg.parts.extend(v1::make(&own, &mounts, &wants, name, &mut notes)),
    }
    Setup { applied: applied(&cg, v2_done, notes), cgroup: (!cg.parts.is_empty()).then_some(cg) }
}

/// The layer's status for what was made.
fn applied(cg: &SandboxCgroup, v2_done: bool, notes: Notes) -> Applied {
    let stand_in = "RLIMIT_NPROC (per uid, not for root) and RLIMIT_AS (per process)";
    if cg.parts.is_empty() {
        return Applied::new(
            LayerState::Unavailable,
            format!("{}; only {stand_in} bound memory and processes", notes.why.join("; ")),
        );
    }
    let version = if v2_done { "cgroup v2" } else { "cgroup v1" };
    let mut detail = format!(
        "{version} {} bound the whole process tree ({}); {stand_in} stay as well",
        notes.set.join(", "),
        notes.where_.join(", ")
    );
    if notes.missing.is_empty() {
        return Applied::new(LayerState::Enforced, detail);
    }
    detail.push_str(&format!("; not bounded by a cgroup: {} ({})", notes.missing.join(", "), notes.why.join("; ")));
    Applied::new(LayerState::Partial, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_cgroup_and_mountinfo() {
        let own = own_cgroups("8:pids:/\n4:memory:/a/b\n0::/user.slice/x.scope\n");
        assert_eq!(own[1], ("4", vec!["memory"], "/a/b"));
        assert_eq!(own[2], ("0", vec![], "/user.slice/x.scope"));
        let m = cgroup_mounts(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
             22 27 0:21 / /proc rw,relatime - proc proc rw\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], ("/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"));
        assert_eq!(m[1].2, "cgroup2");
        assert_eq!(dir_of("/sys/fs/cgroup/memory", "/", "/a/b").unwrap(), Path::new("/sys/fs/cgroup/memory/a/b"));
        assert_eq!(dir_of("/sys/fs/cgroup", "/a", "/a/b").unwrap(), Path::new("/sys/fs/cgroup/b"));
        assert!(dir_of("/sys/fs/cgroup", "/c", "/a/b").is_none());
    }
}
