//! Step 3 of the order (in the reaper, pid 1 of the new pid namespace, before the target
//! forks): the mount view.
//!
//! `/` becomes recursively private; a tmpfs on `/tmp` (of this namespace only) becomes a
//! scratch root with the host's root under `/oldroot`; a second tmpfs, `/newroot`, receives
//! read-only binds of the read paths (`ro,nosuid,nodev`, recursive through `mount_setattr`),
//! read-write binds of the write paths (`nosuid,nodev`), then the masks ([`crate::view`]:
//! deny, hidden and protect rules and sockets, found by a walk of the view itself and placed
//! by descriptor; a read-only empty tmpfs of mode 000 on a directory, a bind of an empty
//! mode-000 file on anything else, a read-only clone of itself on a protected path), a fresh `/proc` of the new pid namespace (with `/proc/sys` and friends
//! read-only; for a [`crate::Zygote`], mounted by each call instead: [`per_call`]), a minimal `/dev` (null zero full random urandom tty, a private devpts with
//! `ptmx`, `shm`), and a private `/tmp` unless `/tmp` is a write path. The new root is made
//! read-only, the old root is detached, and `pivot_root` moves in, like bubblewrap does.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use crate::spec::{PathPlan, TmpfsSize};
use crate::sys::{cpath, cvt, cvt_long};
use crate::view;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What the mount view ended up with.
#[derive(Debug, Default)]
pub(crate) struct MountView {
    /// A fresh /proc of the new pid namespace is mounted.
    pub proc_ok: bool,
    /// A private tmpfs is on /tmp.
    pub private_tmp: bool,
    /// Human-readable summary for the report.
    pub detail: String,
    /// Something requested could not be set up (beyond missing paths).
    pub partial: bool,
    /// The deny, protect, hidden or socket masks could not all be placed: the view must
    /// not be used under strict enforcement (the layer is unavailable).
    pub masks_failed: Option<String>,
}

fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cpath).transpose()?;
    let target_c = cpath(target)?;
    let fstype = fstype.map(crate::sys::cstring).transpose()?;
    let data = data.map(crate::sys::cstring).transpose()?;
    let p = |c: &Option<std::ffi::CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::mount(p(&src), target_c.as_ptr(), p(&fstype), flags, p(&data).cast()) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("mount {}: {e}", target.display())))
}

/// Adds mount attributes to `target` (and everything beneath it when `recursive`).
fn set_attrs(target: &Path, set: u64, recursive: bool) -> io::Result<()> {
    let c = cpath(target)?;
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { libc::AT_RECURSIVE as libc::c_uint } else { 0 };
    // SAFETY: a valid path, a valid mount_attr and its exact size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    match cvt_long(r) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => remount_fallback(target, set),
        Err(e) => Err(io::Error::new(e.kind(), format!("mount_setattr {}: {e}", target.display()))),
    }
}

/// Before Linux 5.12: a bind remount of the top mount only, keeping its locked flags.
fn remount_fallback(target: &Path, set: u64) -> io::Result<()> {
    let c = cpath(target)?;
    // SAFETY: an all-zero statvfs is valid; statvfs fills it from a valid path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and buffer.
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT;
    for (st_flag, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms;
        }
    }
    for (a, ms) in [
        (MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
        (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
        (MOUNT_ATTR_NODEV, libc::MS_NODEV),
        (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
    ] {
        if set & a != 0 {
            flags |= ms;
        }
    }
    mount(None, target, None, flags, None)
}

fn mkdir_p(p: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(p)
}

/// One `mkdir`, content if it is already there.
fn mkdir_one(p: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// An empty file to mount on, in a directory we made (no lookup first).
fn touch(p: &Path) -> io::Result<()> {
    fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(p).map(drop)
}

/// What is mounted at a place of the new root, for the binds beneath it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    ReadOnly,
    Writable,
    /// Not a bind of the host (the private /tmp).
    Other,
}

/// The binds made so far: which one a path lies in, and the directories made in the new
/// root's own tmpfs (so mount points need no lookups).
#[derive(Default)]
struct Binds {
    bound: Vec<(PathBuf, Bound)>,
    made: std::collections::HashSet<PathBuf>,
}

impl Binds {
    /// The deepest bind at or above `p` (a path as seen in the sandbox).
    fn covering(&self, p: &Path) -> Option<Bound> {
        self.bound.iter().filter(|(b, _)| p.starts_with(b)).max_by_key(|(b, _)| b.components().count()).map(|(_, k)| *k)
    }

    /// Creates the mount point `dst` (`/newroot` + `p`) for a bind of `p`.
    fn mountpoint(&mut self, p: &Path, dst: &Path, dir: bool) -> io::Result<()> {
        if self.covering(p).is_some() {
            // Inside an earlier bind: the host's tree, look before making anything.
            return mountpoint(dst, dir);
        }
        // In the new root's own tmpfs: make each missing parent once.
        let mut cur = PathBuf::new();
        if let Some(parent) = dst.parent() {
            for c in parent.components() {
                cur.push(c);
                if cur.components().count() > 2 && !self.made.contains(&cur) {
                    mkdir_one(&cur)?;
                    self.made.insert(cur.clone());
                }
            }
        }
        if dir {
            mkdir_one(dst)?;
            self.made.insert(dst.to_path_buf());
            Ok(())
        } else {
            touch(dst)
        }
    }
}

/// `/newroot` + `p`.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Creates an empty directory or file at `dst` to mount on, unless something is there.
fn mountpoint(dst: &Path, dir: bool) -> io::Result<()> {
    if fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dst.parent() {
        mkdir_p(parent)?;
    }
    if dir {
        mkdir_p(dst)
    } else {
        fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(dst).map(drop)
    }
}

fn pivot_root(new_root: &str, put_old: &str) -> io::Result<()> {
    let a = crate::sys::cstring(new_root)?;
    let b = crate::sys::cstring(put_old)?;
    // SAFETY: two valid NUL-terminated paths.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("pivot_root: {e}")))
}

fn chdir(p: &Path) -> io::Result<()> {
    std::env::set_current_dir(p)
}

fn umount_detach(p: &str) -> io::Result<()> {
    let c = crate::sys::cstring(p)?;
    // SAFETY: a valid NUL-terminated path.
    cvt(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("umount {p}: {e}")))
}

/// Paths the sandbox provides itself; the spec cannot bind over them.
fn is_reserved(p: &Path) -> bool {
    p.starts_with("/proc") || p.starts_with("/dev")
}

/// The options of a private `/tmp` or `/dev/shm`: sized, so that filling it answers `ENOSPC`
/// instead of taking the host's memory (tmpfs pages are not counted by `RLIMIT_AS`).
fn scratch_opts(size: TmpfsSize) -> String {
    format!("mode=1777,size={}", size.bytes)
}

/// A private tmpfs on `/tmp` of the new root.
fn mount_private_tmp(root: &Path, size: TmpfsSize) -> io::Result<()> {
    let tmp = root.join("tmp");
    mkdir_p(&tmp)?;
    mount(Some(Path::new("tmpfs")), &tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(&scratch_opts(size)))
}

/// The state and detail of the `mounts` layer for `view`: a view whose masks are
/// incomplete is unavailable under strict enforcement (the run stops, 71, naming the path)
/// and partial otherwise (the run goes on and the report says what is missing).
pub(crate) fn layer(view: &MountView, strict: bool) -> crate::layer::Applied {
    use crate::layer::Applied;
    use crate::layer::LayerState;
    match &view.masks_failed {
        Some(f) if strict => Applied::new(LayerState::Unavailable, f.clone()),
        Some(f) => Applied::new(LayerState::Partial, format!("{}; {f}", view.detail)),
        None if view.partial => Applied::new(LayerState::Partial, view.detail.clone()),
        None => Applied::new(LayerState::Enforced, view.detail.clone()),
    }
}

/// Builds the view and moves into it. An error leaves the process in an unusable state:
/// the caller reports it and exits.
///
/// With `zygote`, the view is the one a [`crate::Zygote`] shares among its calls: no
/// /proc yet (see [`per_call`]).
pub(crate) fn build(plan: &PathPlan, pty: bool, zygote: bool, tmp_size: TmpfsSize) -> io::Result<MountView> {
    let mut view = MountView::default();
    let mut notes: Vec<String> = plan.notes.clone();
    let root = Path::new("/newroot");
    let old = Path::new("/oldroot");

    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    mount(
        Some(Path::new("tmpfs")),
        Path::new("/tmp"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    mkdir_one(Path::new("/tmp/oldroot"))?;
    mkdir_one(Path::new("/tmp/newroot"))?;
    pivot_root("/tmp", "/tmp/oldroot")?;
    chdir(Path::new("/"))?;
    mount(Some(Path::new("tmpfs")), root, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755"))?;
    // The empty file that masks denied files (mode 000: not even its owner may read it).
    fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o000).open("/deny-file")?;

    let (mut n_ro, mut n_rw) = (0, 0);
    let masks_summary;
    // Binds, parents first; a write path beneath a read path lands on top of it.
    let mut binds: Vec<(&PathBuf, bool)> =
        plan.reads.iter().map(|p| (p, false)).chain(plan.writes.iter().map(|p| (p, true))).collect();
    binds.sort_by_key(|(p, w)| (p.components().count(), *w));
    let private_tmp = !plan.is_writable(Path::new("/tmp"));
    let mut tmp_done = false;
    let mut state = Binds::default();
    for (p, writable) in binds {
        // The private /tmp goes right after the top-level binds, below any deeper bind.
        if private_tmp && !tmp_done && p.components().count() > 2 {
            mount_private_tmp(root, tmp_size)?;
            state.bound.push((PathBuf::from("/tmp"), Bound::Other));
            tmp_done = true;
        }
        if is_reserved(p) {
            notes.push(format!("{} skipped: the sandbox provides its own", p.display()));
            continue;
        }
        let kind = if writable { Bound::Writable } else { Bound::ReadOnly };
        if state.covering(p) == Some(kind) {
            // Already in view, with the same rights, through the recursive bind of an
            // ancestor (e.g. /usr/bin beneath /usr): another bind would change nothing.
            continue;
        }
        let src = under(old, p);
        let dst = under(root, p);
        let meta = match fs::symlink_metadata(&src) {
            Ok(m) => m,
            Err(_) => {
                notes.push(format!("{} skipped: does not exist", p.display()));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            // Reproduce the link (e.g. /bin -> usr/bin); its target needs its own entry.
            let target = fs::read_link(&src)?;
            if fs::symlink_metadata(&dst).is_err() {
                if let Some(parent) = dst.parent() {
                    mkdir_p(parent)?;
                }
                symlink(&target, &dst)?;
            }
            continue;
        }
        state.mountpoint(p, &dst, meta.is_dir())?;
        mount(Some(&src), &dst, None, libc::MS_BIND | libc::MS_REC, None)?;
        if writable {
            set_attrs(&dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true)?;
            n_rw += 1;
        } else {
            set_attrs(&dst, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true)?;
            n_ro += 1;
        }
        state.bound.push((p.to_path_buf(), kind));
    }
    if private_tmp && !tmp_done {
        mount_private_tmp(root, tmp_size)?;
    }
    view.private_tmp = private_tmp;
    // Deny, hidden and protected paths and sockets, on the objects the child will see.
    match place_masks(root, plan) {
        Ok(placed) => {
            masks_summary = placed.summary();
            if !placed.notes.is_empty() {
                notes.extend(placed.notes);
            }
        }
        Err(e) => {
            masks_summary = "masks incomplete".into();
            view.masks_failed = Some(format!("deny/protect masks incomplete: {e}"));
            view.partial = true;
        }
    }

    // /proc of the new pid namespace; a zygote has none yet (each call mounts its own).
    let proc_dir = root.join("proc");
    mkdir_one(&proc_dir)?;
    if zygote {
        // The kernel lets a user namespace mount a proc only when one is already fully
        // visible in the mount namespace: keep the host's, bound here and covered at once
        // by an empty read-only tmpfs (so a call whose own /proc failed sees nothing).
        mount(Some(&old.join("proc")), &proc_dir, None, libc::MS_BIND | libc::MS_REC, None)?;
        mount(
            Some(Path::new("tmpfs")),
            &proc_dir,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=000,size=4k,nr_inodes=1"),
        )?;
    } else {
        let before = notes.len();
        match mount_proc(&proc_dir, &mut notes) {
            Ok(()) => {
                view.proc_ok = true;
                view.partial |= notes.len() > before;
            }
            Err(e) => {
                notes.push(format!("no /proc: {e}"));
                view.partial = true;
            }
        }
    }

    // A minimal /dev.
    let dev = root.join("dev");
    mkdir_one(&dev)?;
    mount(Some(Path::new("tmpfs")), &dev, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some("mode=0755"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(name);
        let src = old.join("dev").join(name);
        // /dev is a fresh tmpfs: no lookups first.
        let r = touch(&dst).and_then(|()| mount(Some(&src), &dst, None, libc::MS_BIND, None));
        if let Err(e) = r {
            notes.push(format!("/dev/{name} missing: {e}"));
            view.partial = true;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(link))?;
    }
    let pts = dev.join("pts");
    mkdir_one(&pts)?;
    if let Err(e) = mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    ) {
        notes.push(format!("no private devpts: {e}"));
        if pty {
            view.partial = true;
        }
    }
    let shm = dev.join("shm");
    mkdir_one(&shm)?;
    mount(
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&scratch_opts(tmp_size)),
    )?;
    set_attrs(&dev, MOUNT_ATTR_RDONLY, false)?;

    // Seal the new root, drop the old one, move in.
    mount(
        None,
        root,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    mount(None, old, None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    umount_detach("/oldroot")?;
    chdir(root)?;
    pivot_root(".", ".")?;
    umount_detach(".")?;
    chdir(Path::new("/"))?;

    let mut detail = format!(
        "new root: {n_ro} read-only, {n_rw} read-write binds, {masks_summary}, {}, minimal /dev, {}",
        if view.proc_ok {
            "fresh /proc"
        } else if zygote {
            "a fresh /proc per call"
        } else {
            "no /proc"
        },
        if view.private_tmp {
            format!("private /tmp and /dev/shm, tmpfs of {tmp_size} each")
        } else {
            format!("/tmp from the write paths, /dev/shm a tmpfs of {tmp_size}")
        }
    );
    if !notes.is_empty() {
        detail.push_str("; ");
        detail.push_str(&notes.join("; "));
    }
    view.detail = detail;
    Ok(view)
}

/// Expands the plan's masks in the view under `root` and places them ([`crate::view`]).
/// The templates live in the scratch root (the current `/`), which is detached later:
/// each mask is a clone, so it stays.
fn place_masks(root: &Path, plan: &PathPlan) -> Result<view::Placed, view::ViewError> {
    let rules = view::plan::Rules::new(plan)?;
    let roots = view::plan::roots(plan, &rules);
    let setup = || -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
        // The template of a masked directory: an empty read-only tmpfs of mode 000.
        let dir = Path::new("/deny-dir");
        mkdir_one(dir)?;
        mount(
            Some(Path::new("tmpfs")),
            dir,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=000,size=4k,nr_inodes=1"),
        )?;
        // The template of anything else: the empty mode-000 file, bound over itself so its
        // clones carry read-only, nosuid, nodev, noexec.
        let file = Path::new("/deny-file");
        mount(Some(file), file, None, libc::MS_BIND, None)?;
        set_attrs(file, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, false)?;
        let scratch = crate::sys::openat_cwd(c"/", libc::O_PATH | libc::O_DIRECTORY)?;
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        let d = crate::sys::openat(scratch.as_fd(), c"deny-dir", flags | libc::O_DIRECTORY)?;
        let f = crate::sys::openat(scratch.as_fd(), c"deny-file", flags)?;
        let newroot = crate::sys::openat_cwd(&cpath(root)?, libc::O_PATH | libc::O_DIRECTORY)?;
        Ok((d, f, newroot))
    };
    let (d, f, newroot) = setup().map_err(view::ViewError::Root)?;
    let masker = view::mask::Masker::new(d, f).map_err(view::ViewError::Root)?;
    let start = std::time::Instant::now();
    let mut walker = view::walk::Walker::new(&rules, &masker);
    // The cache file, reached through the host's root (still at /oldroot).
    let cache_file = plan.view_cache.as_ref().map(|p| under(Path::new("/oldroot"), p));
    if let Some(f) = &cache_file {
        let fp = rules.fingerprint();
        walker = walker.with_cache(view::cache::Cache::load(f, fp), fp);
    }
    walker.run(newroot.as_fd(), &roots)?;
    walker.placed.elapsed = start.elapsed();
    let mut placed = walker.placed.clone();
    if let (Some(f), Some(cache)) = (&cache_file, walker.into_cache()) {
        if let Err(e) = cache.save(f) {
            // Only later starts are slower: the masks of this one are complete.
            placed.notes.push(format!("the view cache was not saved: {e}"));
        }
    }
    Ok(placed)
}

/// A fresh proc on `proc_dir`, with `/proc/sys` and friends read-only. Notes what could not
/// be made read-only (and sets nothing partial: the caller decides).
fn mount_proc(proc_dir: &Path, notes: &mut Vec<String>) -> io::Result<()> {
    mount(Some(Path::new("proc")), proc_dir, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)?;
    for sub in ["sys", "sysrq-trigger", "irq", "bus"] {
        let p = proc_dir.join(sub);
        let r = mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)
            .and_then(|()| set_attrs(&p, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true));
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // not in this kernel
            Err(e) => notes.push(format!("/proc/{sub} not read-only: {e}")),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Step 3 for a call of a [`crate::Zygote`] (in the call's reaper, pid 1 of its own pid
/// namespace, in a mount namespace of its own copied from the zygote's view): a fresh
/// `/proc` of the call's pid namespace, and a fresh `/tmp` (when the view's is private)
/// and `/dev/shm`, so no call sees another's. Returns whether /proc is there, and notes.
///
/// The fresh `/tmp` keeps the binds the view has beneath `/tmp` (e.g. a workspace under
/// `/tmp`): each is held (`open_tree`, the mount itself, attributes and masks beneath it
/// included) before the tmpfs goes on, and moved onto the same path in it (`move_mount`):
/// moved, not cloned, so a call does not copy the view's masks a second time.
pub(crate) fn per_call(private_tmp: bool, plan: &PathPlan, tmp_size: TmpfsSize) -> io::Result<(bool, Vec<String>)> {
    let mut notes = Vec::new();
    let proc_ok = match mount_proc(Path::new("/proc"), &mut notes) {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("no /proc: {e}"));
            false
        }
    };
    if private_tmp {
        fresh_tmp(plan, tmp_size)?;
    }
    mount(
        Some(Path::new("tmpfs")),
        Path::new("/dev/shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&scratch_opts(tmp_size)),
    )?;
    Ok((proc_ok, notes))
}

const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// What lies beneath the view's `/tmp`, to put back on the fresh one.
enum Keep {
    Tree(std::os::fd::OwnedFd, bool),
    Link(PathBuf),
}

/// A fresh tmpfs on `/tmp`, with the view's binds beneath `/tmp` moved onto it.
fn fresh_tmp(plan: &PathPlan, size: TmpfsSize) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let tmp = Path::new("/tmp");
    let mut tops: Vec<&PathBuf> =
        plan.reads.iter().chain(&plan.writes).filter(|p| p.starts_with(tmp) && p.as_path() != tmp).collect();
    tops.sort_by_key(|p| p.components().count());
    let mut kept: Vec<(PathBuf, Keep)> = Vec::new();
    for p in tops {
        if kept.iter().any(|(k, _)| p.starts_with(k)) {
            continue; // comes along with its ancestor's tree
        }
        let Ok(meta) = fs::symlink_metadata(p) else { continue }; // not in the view
        if meta.file_type().is_symlink() {
            kept.push((p.clone(), Keep::Link(fs::read_link(p)?)));
            continue;
        }
        let c = cpath(p)?;
        // SAFETY: open_tree with a valid path and flags; on success we own the descriptor.
        let fd = cvt_long(unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c.as_ptr(),
                // Not a clone: the mount itself, moved below (a clone would copy every
                // mask beneath it for each call).
                libc::O_CLOEXEC as libc::c_uint,
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("open_tree {}: {e}", p.display())))?;
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        kept.push((p.clone(), Keep::Tree(fd, meta.is_dir())));
    }
    mount(Some(Path::new("tmpfs")), tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(&scratch_opts(size)))?;
    for (p, keep) in kept {
        if let Some(parent) = p.parent() {
            mkdir_p(parent)?;
        }
        match keep {
            Keep::Link(target) => symlink(&target, &p)?,
            Keep::Tree(fd, dir) => {
                if dir {
                    mkdir_p(&p)?;
                } else {
                    touch(&p)?;
                }
                let c = cpath(&p)?;
                // SAFETY: move_mount of a detached tree we own onto a valid path.
                cvt_long(unsafe {
                    libc::syscall(
                        libc::SYS_move_mount,
                        fd.as_raw_fd(),
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH,
                    )
                })
                .map_err(|e| io::Error::new(e.kind(), format!("move_mount {}: {e}", p.display())))?;
            }
        }
    }
    Ok(())
}
