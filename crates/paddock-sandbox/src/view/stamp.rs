//! Whether a view built earlier is still current for its rules: the status of every
//! directory the view walk visits (every directory under every root of [`super::plan::roots`]:
//! sockets are hidden under every granted path, so that is every place a rule or a socket
//! can match), taken on the host before the view is built and compared later.
//!
//! A directory's ctime moves with every change of its entries (a file created, renamed in
//! or out, a socket bound) and of its mode, and nobody can set it (mtime one can), so a
//! stamp compares ctime, mtime, inode, device, size and link count by path, never following
//! a symlink (a directory swapped for another or for a symlink is another inode). Directories
//! whose ctime is within [`super::cache::MARGIN_SECS`] of the moment the stamp was taken
//! count as changed (the view cache's "racily clean" rule: a change in the same clock tick
//! leaves ctime as it was), unless a watch vouches for them.
//!
//! Where it can, a stamp also watches those directories ([`super::watch`]), from the start:
//! each directory's watch is added before its status is taken, top down (a directory's
//! watch is on before it is listed, and the directories above each root are watched
//! first), so any change after a status is an event, whatever its ctime. The check then
//! reads a queue and `lstat`s only what the queue cannot vouch for; a directory within the
//! margin is vouched for by its watch alone, so once the queue cannot say (an overflow, a
//! change of the mount table) such a stamp counts as changed. An entry of a stamped
//! directory made, removed or renamed is a change unless it is a regular file no rule
//! matches and no rule's prefix is or lies beneath ([`ViewStamp::plain`]): the view masks
//! matches and sockets and walks directories, and a plain file needs none of that (a
//! status comparison cannot tell it apart: it is a change there). Before 2026-12-04 the
//! watches were added at the first check that found the view unchanged, and a directory
//! within the margin made the stamp stale, and any entry was a change: in a session whose
//! calls change the workspace (a `git status` rewrites `.git/index`) every call started a
//! new zygote, and so did every call of the 2 s after.
//!
//! A directory the view masks whole (a hidden path such as `$STATE`, a literal deny path, a
//! deny glob's match) met beneath a stamped one is neither stamped nor walked: what it holds
//! never enters the view (the walk does not go in either), and which object its name is
//! the stamped parent's entries say (a rename, removal or new directory there moves the
//! parent's ctime). So a session whose workspace holds `$STATE` keeps its zygote while each
//! call changes `$STATE/running`; before, every call of such a session started a new one.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::cache::MARGIN_SECS;
use super::plan::{overlay_candidate, roots, Rules, Verdict as PathVerdict};
use super::walk::pseudo_type;
use super::watch::{self, Verdict, Watch};
use crate::spec::{PathPlan, SandboxSpec};
use crate::sys;

/// Device, inode, ctime (s, ns), mtime (s, ns), size, link count; `None`: absent.
type Status = Option<[i64; 8]>;

/// Why a stamp's scan stopped.
enum ScanError {
    /// The stamp cannot vouch for the view (the reason).
    Stale(String),
    /// The watch cannot go on (the reason): the stamp is taken again unwatched.
    Lost(String),
}
use ScanError::{Lost, Stale};

impl ScanError {
    fn why(self) -> String {
        match self {
            Stale(why) | Lost(why) => why,
        }
    }
}

/// The status of the directories a view walk visits, taken before the view was built.
#[derive(Debug)]
pub struct ViewStamp {
    dirs: Vec<(PathBuf, Status)>,
    /// Of the directories masked whole met beneath a stamped one (not stamped, not walked:
    /// the module docs), those of a literal deny path: the scan for glob matches reads
    /// beneath them (not beneath a glob's match, nor paddock's own state), so it cannot
    /// lean on this stamp there ([`ViewStamp::covers`]).
    read_beneath: Vec<PathBuf>,
    /// Whether a directory changed within the 2 s margin was vouched for by its watch
    /// alone: a comparison of statuses cannot vouch for it, so once the queue cannot say
    /// (an overflow, a change of the mount table) the view counts as changed.
    watch_only: bool,
    /// The view's rules, to tell a plain file's entry from one the view cares about
    /// ([`ViewStamp::plain`]).
    rules: Option<std::sync::Arc<Rules>>,
    /// Why the stamp cannot vouch for the view (a directory changed while it was taken or
    /// too recently, or could not be read): [`ViewStamp::unchanged`] is then always false.
    stale: Option<String>,
    /// The watch on `dirs` ([`super::watch`]), set at the first check that finds them
    /// unchanged (a view that changes before its second call never pays for one).
    watch: Mutex<Watching>,
}

/// Whether a stamp's directories are watched.
#[derive(Debug)]
enum Watching {
    /// The watch, set up as the stamp was taken (each directory watched before its status
    /// was), and the indices of `dirs` it does not cover (compared by `lstat` at every
    /// check).
    On(Watch, Vec<usize>),
    /// None: every check compares every status.
    Off,
}

/// A clone compares by `lstat` (a watch's queue has one reader).
impl Clone for ViewStamp {
    fn clone(&self) -> ViewStamp {
        ViewStamp {
            dirs: self.dirs.clone(),
            read_beneath: self.read_beneath.clone(),
            watch_only: self.watch_only,
            rules: self.rules.clone(),
            stale: if self.watch_only { Some("vouched for by its watch alone".into()) } else { self.stale.clone() },
            watch: Mutex::new(Watching::Off),
        }
    }
}

/// The watch ends on a thread of its own: closing an inotify instance waits for the
/// kernel's grace period for its marks (8-15 ms measured here for 20 to 400 watches), which
/// the call that finds a view out of date, and so drops the last hold on its stamp, would
/// otherwise wait out. If no thread can be started, it ends here.
impl Drop for ViewStamp {
    fn drop(&mut self) {
        let w = std::mem::replace(self.watch.get_mut().unwrap_or_else(|e| e.into_inner()), Watching::Off);
        if let Watching::On(w, _) = w {
            let _ = std::thread::Builder::new().name("paddock-unwatch".into()).spawn(move || drop(w));
        }
    }
}

fn status(p: &Path) -> io::Result<Status> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(key(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a stamped path's status is as it was.
fn as_stamped((p, st): &(PathBuf, Status)) -> bool {
    status(p).is_ok_and(|now| now == *st)
}

fn key(m: &std::fs::Metadata) -> [i64; 8] {
    [
        m.dev() as i64,
        m.ino() as i64,
        m.ctime(),
        m.ctime_nsec(),
        m.mtime(),
        m.mtime_nsec(),
        m.size() as i64,
        m.nlink() as i64,
    ]
}

/// The stamp of the view of `spec` (see the module docs). Take it before the view is built:
/// a change while the view is walked is then a change.
pub fn view_stamp(spec: &SandboxSpec) -> ViewStamp {
    ViewStamp::take(&PathPlan::new(spec))
}

impl ViewStamp {
    pub(crate) fn take(plan: &PathPlan) -> ViewStamp {
        Self::take_watched(plan, true)
    }

    fn take_watched(plan: &PathPlan, watched: bool) -> ViewStamp {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut s = ViewStamp {
            dirs: Vec::new(),
            read_beneath: Vec::new(),
            watch_only: false,
            rules: None,
            stale: None,
            watch: Mutex::new(Watching::Off),
        };
        let rules = match Rules::new(plan) {
            Ok(r) => r,
            Err(e) => {
                s.stale = Some(e.to_string());
                return s;
            }
        };
        // The system trees the view will mount through an overlay (where one cannot be
        // mounted, the view walks the tree whole at its start, but this stamp does not
        // watch it: what is bound there later is not seen, as in any view after its start).
        let overlaid: Vec<PathBuf> = plan.reads.iter().filter(|p| overlay_candidate(plan, p, false)).cloned().collect();
        let roots = roots(plan, &rules, &overlaid);
        // Watched from the start where it can be: each directory's watch is added before
        // its status is taken, so a change after the status is an event whatever its
        // ctime, and only a directory no watch covers needs the 2 s margin.
        let mut watch = if watched { Watch::begin(&roots).ok() } else { None };
        let mut on = Vec::new();
        let mut scanned = s.scan(&roots, &rules, &plan.hidden_present, now, watch.as_mut(), &mut on);
        // Lost only where there was a watch: taken again without one.
        if let Err(Lost(why)) = &scanned {
            tracing::debug!(%why, "the view stamp's watch could not go on: taken again unwatched");
            s.dirs.clear();
            s.read_beneath.clear();
            s.watch_only = false;
            on.clear();
            watch = None;
            scanned = s.scan(&roots, &rules, &plan.hidden_present, now, None, &mut on);
        }
        if let Err(e) = scanned {
            s.stale = Some(e.why());
            s.dirs.clear();
            s.read_beneath.clear();
            return s;
        }
        if let Some(w) = watch {
            let others: Vec<usize> = (0..s.dirs.len()).filter(|i| !on[*i]).collect();
            s.watch = Mutex::new(Watching::On(w, others));
        }
        s.rules = Some(std::sync::Arc::new(rules));
        s
    }

    /// Whether an entry created, removed or renamed at `path` (not a directory: the watch
    /// counts those) changes nothing the view placed: no rule matches it and no rule's
    /// prefix is it or lies beneath it, and unless it was removed, what is there now is a
    /// regular file or nothing. A socket, symlink, device or fifo, a rule's match (made or
    /// removed), or anything on a rule's way is a change. A regular file no rule matches
    /// needs nothing in the view: the view masks matches and sockets and walks directories.
    /// (A `git status` rewrites `.git/index` through `index.lock` and a rename.)
    fn plain(&self, path: &Path, removed: bool) -> bool {
        let Some(rules) = &self.rules else { return false };
        if rules.verdict(path) != PathVerdict::Keep || rules.on_a_way(path) {
            return false;
        }
        if removed {
            return true;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) => m.file_type().is_file(),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    fn compare_all(&self) -> bool {
        self.dirs.iter().all(as_stamped)
    }

    /// Stamps every directory beneath `roots` but those `rules` mask whole (a literal deny
    /// path's, not paddock's own state `hidden`, noted in `self.read_beneath`), each watched
    /// by `watch` (when given) before its status is taken; `on[i]` says whether `self.dirs[i]`
    /// is watched (a directory on a filesystem a watch can vouch for, [`watch::LOCAL_FS`]).
    fn scan(
        &mut self,
        roots: &[PathBuf],
        rules: &Rules,
        hidden: &[PathBuf],
        now: i64,
        mut watch: Option<&mut Watch>,
        on: &mut Vec<bool>,
    ) -> Result<(), ScanError> {
        // The filesystem type of each device met: whether its directories can be watched.
        let mut devs: Vec<(u64, bool)> = Vec::new();
        let mut stack: Vec<(PathBuf, Option<u64>)> = roots.iter().map(|r| (r.clone(), None)).collect();
        while let Some((path, parent_dev)) = stack.pop() {
            // Its watch first: a change after its status is then an event.
            let wd = match watch.as_deref_mut() {
                Some(w) => w.add_stamped(&path).map_err(|e| Lost(format!("{}: {e}", path.display())))?,
                None => None,
            };
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(Stale(format!("{}: {e}", path.display()))),
            };
            self.dirs.push((path.clone(), md.as_ref().map(key)));
            on.push(false);
            let Some(md) = md else {
                if parent_dev.is_some() {
                    return Err(Stale(format!("{} moved while the stamp was taken", path.display())));
                }
                continue; // an absent root: compared as absent
            };
            let k = key(&md);
            let racy = k[2] + MARGIN_SECS >= now;
            if !md.is_dir() {
                if racy {
                    return Err(Stale(format!("{} changed too recently", path.display())));
                }
                continue;
            }
            let dir = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| Stale(format!("{}: {e}", path.display())))?;
            // Unlocked while the zygote runs, an encrypted directory shows names its walk
            // did not see, with no event and no change of its status: never vouched for.
            if sys::encrypted(dir.as_fd()).map_err(|e| Stale(format!("{}: {e}", path.display())))? {
                return Err(Stale(format!(
                    "{} is encrypted (fscrypt): its key added shows names unseen",
                    path.display()
                )));
            }
            if parent_dev != Some(k[0] as u64) {
                let t = sys::fs_type(dir.as_fd()).map_err(|e| Stale(format!("{}: {e}", path.display())))?;
                if pseudo_type(t) {
                    // Not walked (no socket lives there): compared by its status alone.
                    if let (Some(wd), Some(w)) = (wd, watch.as_deref_mut()) {
                        w.remove(wd);
                    }
                    continue;
                }
                devs.push((k[0] as u64, watch::LOCAL_FS.contains(&t)));
            }
            // Watched, and on a filesystem whose every change a watch reports: vouched for
            // by the watch, whatever its ctime; else by its status, past the margin.
            let local = devs.iter().any(|&(dev, ok)| dev == k[0] as u64 && ok);
            match (wd, watch.as_deref_mut()) {
                (Some(_), Some(_)) if local => {
                    if let Some(o) = on.last_mut() {
                        *o = true;
                    }
                }
                (Some(wd), Some(w)) => w.remove(wd),
                _ => {}
            }
            if racy {
                if !on.last().copied().unwrap_or(false) {
                    return Err(Stale(format!("{} changed too recently", path.display())));
                }
                self.watch_only = true;
            }
            let entries = match std::fs::read_dir(&path) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !sys::can_search(dir.as_fd()) => {
                    // The child has the same ids and no capabilities: it cannot reach into
                    // another owner's directory. Its owner's it can open up (`chmod`), and
                    // the view's walk, with the user namespace's capabilities over the
                    // user's own files, went in: what it holds is not stamped, so never
                    // vouched for.
                    if sys::fstat(dir.as_fd()).map_err(|e| Stale(format!("{}: {e}", path.display())))?.st_uid
                        == rustix::process::geteuid().as_raw()
                    {
                        return Err(Stale(format!(
                            "{} cannot be listed by its owner, this user, who can open it up: what it holds is not stamped",
                            path.display()
                        )));
                    }
                    continue;
                }
                Err(e) => return Err(Stale(format!("{}: {e}", path.display()))),
            };
            // Only beneath a rule's literal prefix can an entry be masked.
            let relevant = rules.relevant(&path);
            for e in entries {
                let e = e.map_err(|e| Stale(format!("{}: {e}", path.display())))?;
                if e.file_type().map_err(|e| Stale(format!("{}: {e}", path.display())))?.is_dir() {
                    let child = e.path();
                    if relevant && rules.verdict(&child) == PathVerdict::Mask {
                        if rules.is_literal(&child) && !hidden.contains(&child) {
                            self.read_beneath.push(child);
                        }
                        continue;
                    }
                    stack.push((child, Some(k[0] as u64)));
                }
            }
        }
        Ok(())
    }

    /// Whether every directory stamped is as it was: nothing was created, removed, renamed
    /// or bound in any of them since the stamp was taken.
    pub fn unchanged(&self) -> bool {
        if self.stale.is_some() {
            return false;
        }
        // Held while the statuses are compared: a call at once waits for this verdict
        // rather than read an empty queue this check emptied.
        let mut watching = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *watching {
            Watching::On(w, others) => self.watched(w, others),
            Watching::Off => self.compare_all(),
        }
    }

    /// [`ViewStamp::unchanged`] when the directories are watched already (a read of the
    /// watch's queue, and an `lstat` of what it cannot vouch for); `None` when they are not
    /// (the first check sets the watch up, a cost this leaves to that check).
    pub fn unchanged_if_watched(&self) -> Option<bool> {
        if self.stale.is_some() {
            return Some(false);
        }
        let mut watching = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *watching {
            Watching::On(w, others) => Some(self.watched(w, others)),
            Watching::Off => None,
        }
    }

    /// The verdict of the watch `w` (`others`: the directories it does not cover). A change
    /// found by comparing statuses is kept in the watch: the queue says an overflow or a
    /// mount table's change only once, and a later check that read an empty queue would
    /// otherwise vouch for the view again (a call flooding the queue to hide what it
    /// planted, or calls that waited for this check).
    fn watched(&self, w: &mut Watch, others: &[usize]) -> bool {
        let unchanged = match w.check(&|p, removed| self.plain(p, removed)) {
            Verdict::Quiet => others.iter().all(|i| as_stamped(&self.dirs[*i])),
            Verdict::Changed => return false,
            Verdict::Unsure => !self.watch_only && self.compare_all(),
        };
        if !unchanged {
            w.set_changed();
        }
        unchanged
    }

    /// Why the view cannot be vouched for, if that is so.
    pub fn stale_reason(&self) -> Option<&str> {
        self.stale.as_deref()
    }

    /// Whether `dir` is one of the directories stamped: then so is every directory beneath
    /// it that the view walk or the scan for glob matches reads (and any new one is a change
    /// of one stamped). Not when a literal deny path's directory lies beneath it (the scan
    /// reads beneath it, the stamp does not).
    pub fn covers(&self, dir: &Path) -> bool {
        let d = dir.as_os_str().as_encoded_bytes();
        self.dirs.iter().any(|(p, st)| st.is_some() && p.as_os_str().as_encoded_bytes() == d)
            && !self.read_beneath.iter().any(|w| w.starts_with(dir))
    }

    /// How many directories the stamp holds (what [`ViewStamp::unchanged`] stats).
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether the stamp holds no directory.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str, dirs: usize) -> PathBuf {
        let root = std::env::temp_dir().join(format!("paddock-stamp-{name}-{}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        for i in 0..dirs {
            std::fs::create_dir_all(root.join(format!("d{}", i / 50)).join(format!("e{i}"))).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn plan(root: &Path) -> PathPlan {
        PathPlan {
            writes: vec![root.to_path_buf()],
            deny_globs: vec![format!("{}/**/*.pem", root.display())],
            ..PathPlan::default()
        }
    }

    /// Back-dates the tree's ctimes past the racy margin by waiting it out.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_secs(MARGIN_SECS as u64 + 1));
    }

    #[test]
    fn a_new_entry_anywhere_is_a_change() {
        let root = tree("change", 120);
        settle();
        let s = ViewStamp::take(&plan(&root));
        assert!(s.stale_reason().is_none(), "{:?}", s.stale_reason());
        assert!(s.unchanged());
        assert!(s.len() > 120);
        std::fs::write(root.join("d1/e60/late.pem"), "x").unwrap();
        assert!(!s.unchanged(), "a file created deep in the tree");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_swapped_or_removed_is_a_change() {
        let root = tree("swap", 60);
        settle();
        let s = ViewStamp::take(&plan(&root));
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        std::fs::rename(root.join("d0/e1"), root.join("d0/e1.old")).unwrap();
        std::fs::create_dir(root.join("d0/e1")).unwrap();
        assert!(!s.unchanged(), "a directory swapped for another of the same name");
        let s = ViewStamp::take(&PathPlan { writes: vec![root.join("d1")], ..PathPlan::default() });
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        std::fs::remove_dir(root.join("d1/e51")).unwrap();
        assert!(!s.unchanged(), "a directory removed");
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn watched(s: &ViewStamp) -> bool {
        matches!(&*s.watch.lock().unwrap(), Watching::On(_, others) if others.is_empty())
    }

    /// A directory the view masks whole (paddock's own state, a deny glob's match, a
    /// literal deny path) is held by its parent's entries only: what changes inside it is no
    /// change, its name given to another directory is one. A root is still covered with
    /// the first two beneath it (the scan for glob matches does not read beneath them), not
    /// with the third (it does).
    #[test]
    fn a_directory_masked_whole_is_held_by_its_parent() {
        let root = tree("whole", 60);
        for d in ["state/running", "certs.pem/old", "vault/inner"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        settle();
        let plan = |vault: bool| PathPlan {
            writes: vec![root.clone()],
            deny_globs: vec![format!("{}/**/*.pem", root.display())],
            denies: [Some(root.join("state")), vault.then(|| root.join("vault"))].into_iter().flatten().collect(),
            hidden_present: vec![root.join("state")],
            ..PathPlan::default()
        };
        for watch in [true, false] {
            let (s, t) = (ViewStamp::take_watched(&plan(false), watch), ViewStamp::take_watched(&plan(true), watch));
            for s in [&s, &t] {
                assert!(s.unchanged(), "{:?}", s.stale_reason());
                assert_eq!(watched(s), watch);
                assert!(s.covers(&root.join("d0")));
            }
            assert!(s.covers(&root), "paddock's own state and a glob's match beneath");
            assert!(!t.covers(&root), "a literal deny path's directory beneath");
            // What each holds changes, as a session's `$STATE/running` does at every call.
            std::fs::write(root.join("state/running/c1"), "x").unwrap();
            std::fs::create_dir(root.join("state/new")).unwrap();
            std::fs::write(root.join("certs.pem/key"), "x").unwrap();
            std::fs::remove_dir(root.join("certs.pem/old")).unwrap();
            assert!(s.unchanged() && t.unchanged(), "changes inside directories masked whole (watched: {watch})");
            std::fs::create_dir(root.join("vault/inner/sub")).unwrap();
            assert!(t.unchanged(), "a change inside the literal deny path's directory");
            assert!(!s.unchanged(), "control: where no rule masks it, the same change is one");
            // The name given to another directory: the parent's entries changed.
            std::fs::rename(root.join("state"), root.join("state.old")).unwrap();
            std::fs::create_dir(root.join("state")).unwrap();
            assert!(!t.unchanged(), "a directory masked whole replaced (watched: {watch})");
            std::fs::remove_dir(root.join("state")).unwrap();
            std::fs::rename(root.join("state.old"), root.join("state")).unwrap();
            std::fs::remove_file(root.join("state/running/c1")).unwrap();
            std::fs::remove_dir(root.join("state/new")).unwrap();
            std::fs::create_dir(root.join("certs.pem/old")).unwrap();
            std::fs::remove_file(root.join("certs.pem/key")).unwrap();
            std::fs::remove_dir(root.join("vault/inner/sub")).unwrap();
            settle();
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_above_a_root_replaced_is_a_change() {
        let root = tree("above", 40);
        settle();
        for watch in [true, false] {
            let below = root.join("d0");
            let s = ViewStamp::take_watched(&PathPlan { writes: vec![below.clone()], ..PathPlan::default() }, watch);
            assert!(s.unchanged(), "{:?}", s.stale_reason());
            assert_eq!(watched(&s), watch);
            // The root's parent renamed away and another put in its place, with the same
            // names beneath: nothing stamped was touched, but the root is another directory.
            let away = root.with_extension("away");
            std::fs::rename(&root, &away).unwrap();
            std::fs::create_dir_all(&below).unwrap();
            assert!(!s.unchanged(), "watched: {watch}");
            std::fs::remove_dir_all(&root).unwrap();
            std::fs::rename(&away, &root).unwrap();
            settle();
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn what_the_statuses_do_not_show_is_let_go() {
        let root = tree("quiet", 40);
        std::fs::write(root.join("d0/e1/file"), "x").unwrap();
        settle();
        let s = ViewStamp::take(&PathPlan { writes: vec![root.join("d0")], ..PathPlan::default() });
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        assert!(watched(&s));
        // A file's own attributes and content, and a sibling of the root: no directory's
        // status changes, and neither does the verdict.
        let f = root.join("d0/e1/file");
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(&f, "changed").unwrap();
        std::fs::write(root.join("sibling"), "x").unwrap();
        std::fs::create_dir(root.join("d0.sibling")).unwrap();
        assert!(s.unchanged());
        // A plain file made, renamed and removed beneath, no rule matching it: nothing the
        // view placed changes (the watch lets it go; a comparison of statuses would not).
        std::fs::write(root.join("d0/e2/new.lock"), "x").unwrap();
        std::fs::rename(root.join("d0/e2/new.lock"), root.join("d0/e2/new")).unwrap();
        std::fs::remove_file(root.join("d0/e2/new")).unwrap();
        assert!(s.unchanged());
        assert!(!s.clone().unchanged(), "a clone compares statuses");
        // A directory made beneath, then removed again: a change.
        std::fs::create_dir(root.join("d0/e2/new")).unwrap();
        std::fs::remove_dir(root.join("d0/e2/new")).unwrap();
        assert!(!s.unchanged());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// What a watch lets go in a stamped directory and what it does not: a regular file no
    /// rule matches, made, replaced by a rename (as `git status` rewrites `.git/index`) or
    /// removed, is nothing the view placed; a rule's match made or removed, a symlink, a
    /// socket, a fifo and a directory are changes, and so is any of them made then replaced
    /// by a plain file only if the plain file is all that is there when the check looks.
    #[test]
    fn a_plain_file_is_let_go_and_anything_else_is_a_change() {
        let root = tree("plain", 10);
        std::fs::write(root.join("d0/e1/index"), "x").unwrap();
        std::fs::write(root.join("d0/e1/old.pem"), "k").unwrap();
        settle();
        let stamp = || {
            let s = ViewStamp::take(&plan(&root));
            assert!(s.unchanged() && watched(&s), "{:?}", s.stale_reason());
            s
        };
        let d = root.join("d0/e1");
        let s = stamp();
        std::fs::write(d.join("index.lock"), "y").unwrap();
        std::fs::rename(d.join("index.lock"), d.join("index")).unwrap();
        std::fs::write(d.join("notes"), "z").unwrap();
        std::fs::remove_file(d.join("notes")).unwrap();
        assert!(s.unchanged(), "plain files");
        type Make = fn(&Path);
        let changes: [(&str, Make); 6] = [
            ("a match made", |d| std::fs::write(d.join("new.pem"), "k").unwrap()),
            ("a match removed", |d| std::fs::remove_file(d.join("old.pem")).unwrap()),
            ("a symlink", |d| std::os::unix::fs::symlink("/", d.join("link")).unwrap()),
            ("a socket", |d| drop(std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap())),
            ("a directory", |d| std::fs::create_dir(d.join("sub")).unwrap()),
            ("a rule's match renamed away", |d| std::fs::rename(d.join("old.pem"), d.join("plain")).unwrap()),
        ];
        for (what, make) in changes {
            let s = stamp();
            make(&d);
            assert!(!s.unchanged(), "{what}");
            for n in ["new.pem", "link", "sock", "plain"] {
                let _ = std::fs::remove_file(d.join(n));
            }
            let _ = std::fs::remove_dir(d.join("sub"));
            std::fs::write(d.join("old.pem"), "k").unwrap();
        }
        // A socket that a plain file replaced before the check: only the file is there.
        let s = stamp();
        drop(std::os::unix::net::UnixListener::bind(d.join("x")).unwrap());
        std::fs::remove_file(d.join("x")).unwrap();
        std::fs::write(d.join("x"), "plain").unwrap();
        assert!(s.unchanged(), "what is there when the check looks");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A watched stamp of `root/d0` whose queue then overflowed with events that each count
    /// for nothing (on a sibling of the root); `None` where the queue is too long to fill.
    fn overflowed(root: &Path) -> Option<ViewStamp> {
        let s = ViewStamp::take(&PathPlan { writes: vec![root.join("d0")], ..PathPlan::default() });
        assert!(watched(&s), "watched from the start");
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        let max: usize =
            std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").unwrap().trim().parse().unwrap();
        if max > 200_000 {
            return None;
        }
        let churn = root.join("churn");
        for _ in 0..max / 2 + 10 {
            std::fs::write(&churn, "").unwrap();
            std::fs::remove_file(&churn).unwrap();
        }
        Some(s)
    }

    #[test]
    fn an_overflowed_queue_is_compared_once_then_read_again() {
        let root = tree("overflow", 10);
        settle();
        if let Some(s) = overflowed(&root) {
            let check = || match &mut *s.watch.lock().unwrap() {
                Watching::On(w, _) => w.check(&|_, _| false),
                _ => panic!("not watched"),
            };
            assert_eq!(check(), Verdict::Unsure, "an overflow");
            assert!(s.unchanged());
            std::fs::write(root.join("d0/e1/new"), "x").unwrap();
            assert_eq!(check(), Verdict::Changed, "the queue read again after the overflow");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A change whose event was lost in an overflow is found by the comparison the overflow
    /// asks for, and stays a change: the checks after it read an empty queue.
    #[test]
    fn a_change_hidden_by_an_overflow_stays_a_change() {
        let root = tree("overflow-hidden", 10);
        settle();
        if let Some(s) = overflowed(&root) {
            std::fs::write(root.join("d0/e1/planted.pem"), "x").unwrap();
            assert!(!s.unchanged(), "found by the comparison after the overflow");
            assert!(!s.unchanged(), "and still a change at the next check");
            assert_eq!(s.unchanged_if_watched(), Some(false));
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A mount over a stamped directory hides its watch: the mount table's change makes
    /// the check compare every status. Root only (elsewhere the mount is refused: skipped).
    #[test]
    fn a_mount_over_a_stamped_directory_is_a_change() {
        let root = tree("mount", 20);
        settle();
        let s = ViewStamp::take(&PathPlan { writes: vec![root.join("d0")], ..PathPlan::default() });
        assert!(s.unchanged(), "{:?}", s.stale_reason());
        let target = root.join("d0/e3");
        let other = root.join("other");
        std::fs::create_dir(&other).unwrap();
        assert!(s.unchanged(), "a sibling of the root");
        let _mounts = crate::HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        if rustix::mount::mount_bind(&other, &target).is_err() {
            assert!(!rustix::process::geteuid().is_root(), "root may bind");
            std::fs::remove_dir_all(&root).unwrap();
            return;
        }
        let changed = !s.unchanged();
        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert!(changed, "a directory of the view covered by a mount");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A tree changed within the 2 s margin: a stamp that compares statuses cannot vouch
    /// for it (a change in the same timestamp tick leaves ctime as it was), one whose
    /// watches were added before the statuses can, until its queue cannot say (an
    /// overflow): then it counts as changed, and so does a clone (which compares statuses).
    #[test]
    fn a_fresh_tree_is_vouched_for_by_its_watch_alone() {
        let root = tree("racy", 3);
        let s = ViewStamp::take_watched(&plan(&root), false);
        assert!(s.stale_reason().is_some());
        assert!(!s.unchanged());
        let s = ViewStamp::take(&plan(&root));
        assert!(s.stale_reason().is_none(), "{:?}", s.stale_reason());
        assert!(watched(&s));
        assert!(s.unchanged());
        assert!(!s.clone().unchanged(), "a clone compares statuses");
        std::fs::write(root.join("d0/e1/late.pem"), "x").unwrap();
        assert!(!s.unchanged(), "a change after the stamp");
        let s = ViewStamp::take(&plan(&root));
        assert!(s.unchanged());
        let max: usize =
            std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").unwrap().trim().parse().unwrap();
        if max <= 200_000 {
            // A directory made just now, its queue then overflowed by events that each
            // count for nothing (on a sibling): nothing of it changed.
            let fresh = root.join("fresh");
            std::fs::create_dir(&fresh).unwrap();
            let s2 = ViewStamp::take(&PathPlan { writes: vec![fresh], ..PathPlan::default() });
            assert!(s2.unchanged(), "{:?}", s2.stale_reason());
            let sibling = root.join("sibling");
            for _ in 0..max / 2 + 10 {
                std::fs::write(&sibling, "").unwrap();
                std::fs::remove_file(&sibling).unwrap();
            }
            assert!(!s2.unchanged(), "an overflow, with a directory vouched for by its watch alone");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// `cargo test -p paddock-sandbox --release stamp_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn stamp_cost() {
        for n in [100, 2000] {
            let root = tree(&format!("cost{n}"), n);
            settle();
            let s = ViewStamp::take(&plan(&root));
            assert!(s.unchanged());
            let runs = 200;
            let t = std::time::Instant::now();
            for _ in 0..runs {
                assert!(s.unchanged());
            }
            println!("{n} directories ({} stamped): {:?} per check", s.len(), t.elapsed() / runs);
            let t = std::time::Instant::now();
            drop(s);
            println!("  dropped in {:?} (its watch ends on a thread of its own)", t.elapsed());
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}
