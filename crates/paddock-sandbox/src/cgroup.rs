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

use crate::report::LayerState;
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
    /// The layer status.
    pub state: LayerState,
    /// The layer detail.
    pub detail: String,
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

/// [`create`] with the directory's name given (a zygote's calls are all made by the
/// caller's process: `paddock-<pid>-z<n>`).
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
            state: LayerState::Unavailable,
            detail: "not needed: no memory or process limit requested".into(),
        };
    }
    let name = name.to_string();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = own_cgroups(&own);
    let mounts = cgroup_mounts(&mounts);

    let mut cg = SandboxCgroup::default();
    let mut set: Vec<String> = Vec::new();
    let mut why: Vec<String> = Vec::new();
    let mut where_: Vec<String> = Vec::new();

    // cgroup v2: every wanted controller in one directory.
    let v2 = own.iter().find(|(id, _, _)| *id == "0").and_then(|(_, _, path)| {
        let (root, mp, _, _) = mounts.iter().find(|m| m.2 == "cgroup2")?;
        Some((dir_of(mp, root, path)?, path.to_string()))
    });
    let mut v2_done = false;
    if let Some((dir, path)) = &v2 {
        let has_all = |words: &[String]| wants.iter().all(|w| words.iter().any(|x| x == w.ctl));
        let base = if path == "/" && has_all(&read_words(&dir.join("cgroup.subtree_control"))) {
            Some(dir.clone())
        } else if path != "/" && has_all(&read_words(&dir.join("cgroup.controllers"))) {
            dir.parent().map(Path::to_path_buf)
        } else {
            why.push(format!(
                "cgroup v2 at {} offers no {} controller",
                dir.display(),
                wants.iter().map(|w| w.ctl).collect::<Vec<_>>().join("/")
            ));
            None
        };
        if let Some(base) = base {
            match make_dir(&base, &name) {
                Ok((part, d)) => {
                    let mut r = Ok(());
                    for w in &wants {
                        let (file, v) = if w.ctl == "pids" { ("pids.max", w.value) } else { ("memory.max", w.value) };
                        r = r.and_then(|()| write_file(&d, file, &v.to_string()));
                        if r.is_ok() {
                            set.push(format!("{file}={v}"));
                        }
                    }
                    if r.is_ok()
                        && limits.max_memory.is_some()
                        && exists_at(&d, "memory.swap.max")
                        && write_file(&d, "memory.swap.max", "0").is_ok()
                    {
                        set.push("memory.swap.max=0".into());
                    }
                    match r {
                        Ok(()) => {
                            where_.push(format!("{}/{name}", base.display()));
                            cg.parts.push(part);
                            v2_done = true;
                        }
                        Err(e) => {
                            Part::remove_dir(&part.parent, &part.name);
                            set.clear();
                            why.push(format!("cgroup v2 {}/{name}: {e}", base.display()));
                        }
                    }
                }
                Err(e) => why.push(format!("cgroup v2 not delegated here: {e}")),
            }
        }
    }

    // cgroup v1: one hierarchy per controller.
    let mut missing: Vec<&str> = Vec::new();
    if !v2_done {
        for w in &wants {
            let line = own.iter().find(|(id, ctl, _)| *id != "0" && ctl.contains(&w.ctl));
            let mount = mounts.iter().find(|(_, _, fs, opts)| *fs == "cgroup" && opts.split(',').any(|o| o == w.ctl));
            let (Some((_, _, path)), Some((root, mp, _, _))) = (line, mount) else {
                why.push(format!("no cgroup v1 {} hierarchy", w.ctl));
                missing.push(w.ctl);
                continue;
            };
            let Some(base) = dir_of(mp, root, path) else {
                why.push(format!("cgroup v1 {}: {path} is outside the mount at {mp}", w.ctl));
                missing.push(w.ctl);
                continue;
            };
            let made = make_dir(&base, &name).and_then(|(part, d)| {
                let r = if w.ctl == "pids" {
                    write_file(&d, "pids.max", &w.value.to_string()).map(|()| format!("pids.max={}", w.value))
                } else {
                    write_file(&d, "memory.limit_in_bytes", &w.value.to_string()).map(|()| {
                        let mut s = format!("memory.limit_in_bytes={}", w.value);
                        if exists_at(&d, "memory.memsw.limit_in_bytes")
                            && write_file(&d, "memory.memsw.limit_in_bytes", &w.value.to_string()).is_ok()
                        {
                            s.push_str(&format!(", memory.memsw.limit_in_bytes={}", w.value));
                        }
                        s
                    })
                };
                match r {
                    Ok(s) => Ok((part, s)),
                    Err(e) => {
                        Part::remove_dir(&part.parent, &part.name);
                        Err(e)
                    }
                }
            });
            match made {
                Ok((part, s)) => {
                    set.push(s);
                    where_.push(format!("{}/{name}", base.display()));
                    cg.parts.push(part);
                }
                Err(e) => {
                    why.push(format!("cgroup v1 {}: {e}", w.ctl));
                    missing.push(w.ctl);
                }
            }
        }
    }

    let stand_in = "RLIMIT_NPROC (per uid, not for root) and RLIMIT_AS (per process)";
    if cg.parts.is_empty() {
        return Setup {
            cgroup: None,
            state: LayerState::Unavailable,
            detail: format!("{}; only {stand_in} bound memory and processes", why.join("; ")),
        };
    }
    let version = if v2_done { "cgroup v2" } else { "cgroup v1" };
    let mut detail = format!(
        "{version} {} bound the whole process tree ({}); {stand_in} stay as well",
        set.join(", "),
        where_.join(", ")
    );
    let state = if missing.is_empty() {
        LayerState::Enforced
    } else {
        detail.push_str(&format!("; not bounded by a cgroup: {} ({})", missing.join(", "), why.join("; ")));
        LayerState::Partial
    };
    Setup { cgroup: Some(cg), state, detail }
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
