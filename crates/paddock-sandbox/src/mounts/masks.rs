//! The masks of the view: deny, hidden and protected paths and sockets, found by a walk
//! of the view itself and placed by descriptor ([`crate::view`]).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::paths::{mkdir_one, old_root, under};
use crate::spec::PathPlan;
use crate::sys::{
    self, cpath, mount, set_attrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use crate::view;

/// Expands the plan's masks in the view under `root` and places them ([`crate::view`]);
/// the `overlaid` trees (of devices `overlay_devs`, with the host's beneath) are walked only
/// beneath the rules' prefixes. The templates live in the scratch root (the current `/`), which is detached later:
/// each mask is a clone, so it stays.
pub(super) fn place(
    root: &Path,
    plan: &PathPlan,
    overlaid: &[PathBuf],
    overlay_devs: &[(u64, u64)],
    mountinfo: Option<&[u8]>,
) -> Result<view::Placed, view::ViewError> {
    let rules = view::plan::Rules::new(plan)?;
    let roots = view::plan::roots(plan, &rules, overlaid);
    let setup = || -> io::Result<(OwnedFd, OwnedFd, OwnedFd)> {
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
        let scratch = sys::openat_cwd(c"/", libc::O_PATH | libc::O_DIRECTORY)?;
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        let d = sys::openat(scratch.as_fd(), c"deny-dir", flags | libc::O_DIRECTORY)?;
        let f = sys::openat(scratch.as_fd(), c"deny-file", flags)?;
        let newroot = sys::openat_cwd(&cpath(root)?, libc::O_PATH | libc::O_DIRECTORY)?;
        Ok((d, f, newroot))
    };
    let (d, f, newroot) = setup().map_err(view::ViewError::Root)?;
    let masker = view::mask::Masker::new(d, f).map_err(view::ViewError::Root)?;
    let start = std::time::Instant::now();
    // The host's root, where paddock's own paths and the host's mount points are looked up.
    let host = cpath(old_root()).and_then(|p| sys::openat_cwd(&p, libc::O_PATH | libc::O_DIRECTORY));
    let (hidden, points) = match &host {
        Ok(host) => (
            hidden_identities(host.as_fd(), plan, mountinfo),
            mountinfo.map(|m| host_mount_points(host.as_fd(), m)).unwrap_or_default(),
        ),
        Err(_) => Default::default(),
    };
    let mut walker = view::walk::Walker::new(&rules, &masker)
        .with_hidden(hidden)
        .with_mount_points(points)
        .with_view_mounts(old_root().join("proc/self/mountinfo"), root.to_path_buf());
    // The cache file of these roots, reached through the host's root (still at /oldroot):
    // one file per set of roots, so a start reads only the listings of its own view.
    let cache_file = plan.view_cache.as_ref().map(|p| under(old_root(), &view::cache::file_for(p, &roots)));
    if let Some(f) = &cache_file {
        walker = walker.with_cache(view::cache::Cache::load(f).with_overlays(overlay_devs.to_vec()));
    }
    walker.run(newroot.as_fd(), &roots)?;
    walker.placed.elapsed = start.elapsed();
    let mut placed = walker.placed.clone();
    let (new, worth, old) = walker.into_caches();
    if let (Some(f), Some(cache), true) = (&cache_file, &new, worth) {
        if let Err(e) = cache.save(f) {
            // Only later starts are slower: the masks of this one are complete.
            placed.notes.push(format!("the view cache was not saved: {e}"));
        }
    }
    // The process that builds a view (a run's pid 1, a zygote) builds one and ends with
    // it: the listings (a few small allocations per directory) go with its memory, not
    // one by one on the way to the child (0.2 ms of a start in a 2,000-file repository).
    std::mem::forget((new, old));
    if mountinfo.is_none() {
        placed
            .notes
            .push("the mount table could not be read: a socket mounted over a file's name is not looked for".into());
    }
    Ok(placed)
}

/// Whether a mount of the host's in `mountinfo` (those under [`old_root`]) of one of
/// `devices` (as `major:minor`) can show a directory under a second name: one whose root
/// is not its filesystem's (a bind of a directory), or the filesystem mounted twice. A
/// device no mount names (a btrfs subvolume's, say) may have any: `true`.
fn may_alias(mountinfo: &[u8], devices: &[String]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut aliased = false;
    for m in view::mountinfo::mounts(mountinfo) {
        if m.point.starts_with(old_root()) && devices.iter().any(|d| d.as_bytes() == m.dev) {
            aliased |= m.root != b"/" || !seen.insert(m.dev);
        }
    }
    aliased || seen.len() < devices.iter().collect::<std::collections::HashSet<_>>().len()
}

/// How many objects of paddock's own state [`hidden_identities`] takes at most.
const HIDDEN_MAX: usize = 100_000;

/// Device and inode of each of paddock's own paths (`$STATE`, hidden whatever the grants)
/// on the host (`host`, its root), and of everything beneath those that are directories:
/// the walk masks the same object reached under another name (a bind mount of it, of a
/// directory above it or of a file or directory in it, inside a grant), not only its own
/// path. What is beneath is listed only where a mount of the host's (`mountinfo`, when
/// read) can show their filesystem under a second name ([`may_alias`]): else nothing of it
/// has one. An overlay with one of them as a layer is added whole ([`overlays_over`]).
fn hidden_identities(
    host: std::os::fd::BorrowedFd<'_>,
    plan: &PathPlan,
    mountinfo: Option<&[u8]>,
) -> std::collections::HashSet<(u64, u64)> {
    let mut ids = std::collections::HashSet::new();
    let tops: Vec<(&PathBuf, (u64, u64))> =
        plan.hidden_present.iter().filter_map(|p| Some((p, sys::identity_in_root(host, p)?))).collect();
    let devices: Vec<String> =
        tops.iter().map(|(_, (dev, _))| format!("{}:{}", rustix::fs::major(*dev), rustix::fs::minor(*dev))).collect();
    let list = mountinfo.is_none_or(|m| may_alias(m, &devices));
    // An overlay with one of them, or a directory above or below one, as a layer shows
    // it under the overlay's own device: the overlay is masked whole wherever met.
    if let Some(m) = mountinfo {
        for point in overlays_over(m, &tops.iter().map(|(p, _)| p.as_path()).collect::<Vec<_>>()) {
            ids.extend(sys::identity_in_root(host, &point));
        }
    }
    for (p, id) in tops {
        ids.insert(id);
        if !list {
            continue;
        }
        // What it holds, by descriptor, on its own device (a mount beneath is another's).
        let mut stack: Vec<PathBuf> = vec![under(old_root(), p)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let Ok(m) = e.metadata() else { continue };
                use std::os::unix::fs::MetadataExt;
                if m.dev() != id.0 || ids.len() >= HIDDEN_MAX {
                    continue;
                }
                ids.insert((m.dev(), m.ino()));
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    ids
}

/// A mount point of the table (its path under [`old_root`]) as the host names it.
fn host_path(point: &Path) -> Option<PathBuf> {
    Some(Path::new("/").join(point.strip_prefix(old_root()).ok()?))
}

/// The host's mount points in `mountinfo` (read in this namespace, its paths under
/// [`old_root`]), by their parent directory's (device, inode) on the host (`host`, its
/// root): a directory's listing gives a mount point the type of the file it covers (a
/// socket bound over a plain file's name reads as a plain file), so the walk opens these
/// by name, in that directory under whatever path a grant names it.
fn host_mount_points(
    host: std::os::fd::BorrowedFd<'_>,
    mountinfo: &[u8],
) -> std::collections::HashMap<(u64, u64), Vec<std::ffi::OsString>> {
    let mut by_parent: std::collections::HashMap<(u64, u64), Vec<std::ffi::OsString>> = Default::default();
    for m in view::mountinfo::mounts(mountinfo) {
        let Some(host_path) = host_path(&m.point) else { continue };
        let (Some(parent), Some(name)) = (host_path.parent(), host_path.file_name()) else { continue };
        // paddock's own `/proc` and `/dev` stand there in every view, and the walk meets
        // what is mounted inside a pseudo filesystem such as `/sys` from the view's own
        // mount table: one lookup fewer per mount of those trees, on every start.
        if ["/proc", "/dev", "/sys"].iter().any(|t| host_path.starts_with(t)) {
            continue;
        }
        if let Some(id) = sys::identity_in_root(host, parent) {
            by_parent.entry(id).or_default().push(name.to_os_string());
        }
    }
    by_parent
}

/// The host's overlay mounts in `mountinfo` (their mount points as the host names them)
/// with a layer (`lowerdir`, `upperdir`) that is one of `hidden`, or above or below one.
fn overlays_over(mountinfo: &[u8], hidden: &[&Path]) -> Vec<PathBuf> {
    view::mountinfo::mounts(mountinfo)
        .filter(|m| m.kind == b"overlay")
        .filter(|m| {
            let layers = m.options.split(|&c| c == b',').filter_map(|o| {
                let v = o.strip_prefix(b"lowerdir=").or_else(|| o.strip_prefix(b"upperdir="))?;
                Some(v.split(|&c| c == b':').map(view::mountinfo::unescape_octal))
            });
            layers.flatten().any(|l| hidden.iter().any(|h| h.starts_with(&l) || l.starts_with(h)))
        })
        .filter_map(|m| host_path(&m.point))
        .collect()
}
