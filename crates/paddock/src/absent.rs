//! Paths a `deny` or `protect` rule names literally but that do not exist when a call
//! starts. The mount view masks and binds objects, so it cannot hold a name that is not
//! there: under a write grant, a call could create one (a git hook, an agent's settings
//! file that names programs, a credentials file) and leave it on the host for a tool that
//! runs later outside paddock. Each such path is noted before the call; whatever the call
//! created on the way to it is moved aside after it (renamed beside itself, never
//! deleted), and the call's `call.end` record names each move.
//!
//! On the way: for a path P, the first component that was absent at the start is noted
//! (A: `.git` when the workspace had no `.git`, `.git/config` when only the file was
//! missing), or the first one that was there but not a directory (a `.git` gitfile, with
//! its stamp). After the call the path is walked again from the write grant's root, one
//! component at a time, never following a symlink (see [`crate::aside`]): a component that
//! is now a symlink or a file where a directory is needed (A, or a directory that was
//! there and was replaced), a directory that is not the one there at the start (its inode
//! differs: the call renamed the old one away and made its own), or P itself, is moved
//! aside whole; a directory is entered. A
//! symlink planted anywhere on the way is itself what moves, so nothing outside the view is
//! ever touched, and a `.git` file (`gitdir: ...`) that host git would follow cannot stay.
//!
//! A path that is there at the start as a symlink is noted too: the view cannot bind a
//! symlink read-only (it leaves it as it is), so the call could remove it and put a file
//! of its own under the rule's name (`.claude/settings.json` with hooks). After the call,
//! what is there unless it is that very symlink ([`Identity`]: device, inode, type and
//! birth time, so an object made under the freed inode number is not it) is moved aside
//! and the symlink made again with its target; one that cannot be made again is said
//! (`restored.error`), and counts as a move that failed.
//!
//! So is every symlink the resolution of a literal path passes through, at every level of
//! a chain ([`crate::chain`]: `.claude/settings.json` → `../cfg/link2` → `../real.json`),
//! each by its own path, once however many rules pass through it: the view leaves each as
//! it is, and the call could re-point the rule's name by replacing any one of them.
//!
//! Directories on the way are compared by [`Identity`] too: one the call removed and made
//! again, under the inode number the old one freed, is not the one there at the start.
//!
//! And every directory such a resolution enters and then leaves by `..` (`x` of a
//! `gitdir: x/../.bare` line or of a symlink to `x/../real`, [`chain::Way::left`]): the
//! kernel takes `..` from where `x` leads on disk, so a call that renamed `x` away and put
//! a symlink there (`x -> deep/a`) would re-point the user's unchanged link or gitfile at
//! a file of its own. Each is noted, with every directory down to it, as a held
//! directory; after the call, whatever is at its name unless it is that very directory is
//! moved aside, so the name leads nowhere rather than to the call's file (the user's
//! directory, renamed by the call, is not looked for).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use paddock_audit::{MovedAside, Restored};
use paddock_policy::Policy;
use rustix::fs::FileType;
use rustix::io::Errno;

use crate::aside;
use crate::chain;
use crate::identity::{self, Identity, Status};

/// The literal `deny` and `protect` paths absent at a call's start that the call could
/// create (a `write` grant holds them).
#[derive(Debug, Default, Clone)]
pub(crate) struct AbsentPaths(Vec<Noted>);

/// One noted path as the registry of running calls keeps it ([`crate::running`]): what
/// a call that starts while this one runs notes as well.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    rule: String,
    root: Vec<u8>,
    names: Vec<Vec<u8>>,
    first: usize,
    was: Option<Was>,
    dirs: Vec<Identity>,
}

impl Record {
    /// Whether what this record says was there at its call's start, the user's object
    /// the view leaves as it is (a symlink, at the rule's name or on its way, or a
    /// `.git` file) and each directory before it, is still there, unchanged: `None`
    /// when it is (or when nothing was there then), else the path that changed and how.
    /// A rule a call compiles while a running call's child has removed, replaced or
    /// moved such an object resolves to another file than the user's state names
    /// ([`crate::running`] refuses that call's start).
    pub(crate) fn unsettled(&self) -> Option<(PathBuf, &'static str)> {
        use std::os::unix::ffi::OsStrExt;
        let was = self.was.as_ref()?;
        let root_path = PathBuf::from(std::ffi::OsStr::from_bytes(&self.root));
        let mut path = root_path.clone();
        let root = match aside::open_root(&root_path) {
            Ok(r) => r,
            Err(_) => return Some((root_path, "cannot be opened")),
        };
        let mut dir: Option<OwnedFd> = None;
        for (i, name) in self.names.iter().enumerate().take(self.first + 1) {
            let name = std::ffi::OsStr::from_bytes(name);
            path.push(name);
            let at = dir.as_ref().map_or(root.as_fd(), |d| d.as_fd());
            let st = match look(at, name) {
                Ok(Some(st)) => st,
                Ok(None) => return Some((path, "is gone")),
                Err(_) => return Some((path, "cannot be looked at")),
            };
            if i == self.first {
                // Its ctime too, a symlink's included: a link moved away and back (to have
                // a later call compile its rules without it, then pass this check) is not
                // the object as noted (found by an attack).
                let same = was.holds(&st)
                    && was.ctime == st.ctime
                    && was.link.as_ref().is_none_or(|l| identity::link_target(at, name).is_ok_and(|t| &t == l));
                return (!same).then_some((path, "was replaced, changed or moved since"));
            }
            if self.dirs.get(i) != Some(&st.id) || st.file_type() != FileType::Directory {
                return Some((path, "was replaced"));
            }
            match aside::open_dir_at(at, name) {
                Ok(d) => dir = Some(d),
                Err(_) => return Some((path, "cannot be entered")),
            }
        }
        None
    }
}

/// One path noted at the start.
#[derive(Debug, Clone)]
struct Noted {
    /// The rule (`filesystem.protect[0]`).
    rule: String,
    /// The outermost write grant holding the path, opened at the start.
    root: Arc<OwnedFd>,
    /// That grant's path.
    root_path: PathBuf,
    /// The path's components below the root.
    names: Vec<OsString>,
    /// The index of the first component that was not a directory at the start.
    first: usize,
    /// What that component was when it was there (a file or a symlink); `None`: absent.
    was: Option<Was>,
    /// The identity of each directory before it: one the call replaced (renamed away, or
    /// removed, and a directory of its own put in its place) is the call's creation too.
    dirs: Vec<Identity>,
}

/// What was at the first component that is not a directory, at the start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Was {
    /// The object.
    id: Identity,
    /// Its ctime (s, ns) and size: a file the call rewrote in place differs (the call
    /// cannot set a ctime).
    ctime: (i64, u32),
    size: u64,
    /// The path itself as a symlink (the user's, which the view leaves as it is): its
    /// target, to make it again where the call replaced or removed it.
    link: Option<Vec<u8>>,
}

impl Was {
    /// Whether `now` is what was there: that very object, and for a file, unchanged (a
    /// symlink cannot change; a rename back and forth moves its ctime and is harmless).
    fn holds(&self, now: &Status) -> bool {
        self.id == now.id && (self.link.is_some() || (self.ctime, self.size) == (now.ctime, now.size))
    }
}

/// What is at a name now, not followed: `None` when nothing is.
fn look(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<Option<Status>, Errno> {
    match aside::with_access(dir, || identity::status_at(dir, name)) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

impl AbsentPaths {
    /// Notes the paths of `policy` that are absent now.
    #[cfg(test)]
    pub(crate) fn before(policy: &Policy) -> AbsentPaths {
        AbsentPaths::before_traced(policy, None)
    }

    /// Notes the paths of `policy` that are absent now; adds to `looked`, when given, every
    /// path it looked at (the ways resolved, and each path walked from a write grant with
    /// every directory on the way to it): what it notes holds while none of them, nor the
    /// directory entry naming it, changed.
    pub(crate) fn before_traced(policy: &Policy, mut looked: Option<&mut Vec<PathBuf>>) -> AbsentPaths {
        let fs = &policy.filesystem;
        let mut roots: HashMap<PathBuf, Option<Arc<OwnedFd>>> = HashMap::new();
        let mut noted = Vec::new();
        let literal = fs.deny.iter().chain(&fs.protect).filter(|r| !r.is_glob);
        let mut lookups = chain::Lookups::default();
        // Each rule's path as normalised (symlinks on the way resolved), as named when
        // that differs, and each symlink resolving it passes through (at every level of a
        // chain): the view leaves a symlink as it is, and each is the user's.
        let paths = literal.flat_map(|r| {
            let named = as_named(r, &fs.write).filter(|n| n.as_path() != Path::new(&r.pattern));
            // From the path as written (a rule outside the write grants, `~/.gitconfig`,
            // can lead through a symlink of the workspace to its file).
            let way = lookups.way(named.as_deref().unwrap_or(r.expanded.as_path()));
            std::iter::once((r, PathBuf::from(&r.pattern), false))
                .chain(named.map(|n| (r, n, false)))
                .chain(way.links.into_iter().map(move |l| (r, l, false)))
                .chain(way.left.into_iter().map(move |d| (r, d, true)))
        });
        for (r, p, held) in paths {
            let p = p.as_path();
            // The outermost grant: every component below it is the call's to change.
            let Some(w) = fs.write.iter().filter(|w| p.starts_with(&w.path)).min_by_key(|w| w.path.as_os_str().len())
            else {
                continue;
            };
            let root = roots.entry(w.path.clone()).or_insert_with(|| aside::open_root(&w.path).ok().map(Arc::new));
            let Some(root) = root.clone() else { continue }; // no root: nothing to create under
            let Ok(mut names) = aside::normal_components(p.strip_prefix(&w.path).unwrap_or(p)) else { continue };
            if names.is_empty() {
                continue;
            }
            if let Some(looked) = looked.as_deref_mut() {
                let mut walked = w.path.clone();
                looked.push(walked.clone());
                for n in &names {
                    walked.push(n);
                    looked.push(walked.clone());
                }
            }
            let Some(Gap { first, was, dirs }) = first_gap(root.as_fd(), &names, held) else { continue };
            // A symlink is noted by its own path: the walk after the call goes no further
            // (what lies beyond it is not the call's way to the path).
            if was.as_ref().is_some_and(|w| w.link.is_some()) {
                names.truncate(first + 1);
            }
            // Once per path (a deny and a protect rule may name the same one, two rules may
            // pass through one `.claude` symlink): settled twice, the user's symlink made
            // again by the first would be the second's to move.
            if noted.iter().any(|n: &Noted| n.root_path == w.path && n.names == names) {
                continue;
            }
            noted.push(Noted { rule: r.id.to_string(), root, root_path: w.path.clone(), names, first, was, dirs });
        }
        if let Some(looked) = looked {
            looked.extend(lookups.into_looked());
        }
        AbsentPaths(noted)
    }

    /// What was noted, for the registry of running calls.
    pub(crate) fn records(&self) -> Vec<Record> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = |s: &std::ffi::OsStr| s.as_bytes().to_vec();
        self.0
            .iter()
            .map(|n| Record {
                rule: n.rule.clone(),
                root: bytes(n.root_path.as_os_str()),
                names: n.names.iter().map(|s| bytes(s)).collect(),
                first: n.first,
                was: n.was.clone(),
                dirs: n.dirs.clone(),
            })
            .collect()
    }

    /// Notes the paths another running call noted at its start (its child may have
    /// created them since: they are not the user's), each once, where this call can
    /// write (`writes`: elsewhere this call's child makes nothing, and that call settles
    /// its own). A root that cannot be opened now holds nothing to settle.
    pub(crate) fn adopt(&mut self, records: &[Record], writes: &[PathBuf]) {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let mut mine = self.records();
        for r in records {
            // `first == names.len()`: a held directory, with the identity of each name.
            let held = r.first == r.names.len() && r.dirs.len() == r.names.len();
            if mine.contains(r) || r.names.is_empty() || (r.first >= r.names.len() && !held) {
                continue;
            }
            let root_path = PathBuf::from(std::ffi::OsStr::from_bytes(&r.root));
            let names: Vec<OsString> = r.names.iter().map(|n| OsString::from_vec(n.clone())).collect();
            if names.iter().any(|n| aside::normal_components(Path::new(n)).map_or(true, |c| c.len() != 1)) {
                continue;
            }
            let full: PathBuf =
                std::iter::once(root_path.as_os_str()).chain(names.iter().map(|n| n.as_os_str())).collect();
            if !writes.iter().any(|w| full.starts_with(w)) {
                continue;
            }
            mine.push(r.clone());
            let root = self.0.iter().find(|n| n.root_path == root_path).map(|n| Arc::clone(&n.root));
            let Some(root) = root.or_else(|| aside::open_root(&root_path).ok().map(Arc::new)) else { continue };
            self.0.push(Noted {
                rule: r.rule.clone(),
                root,
                root_path,
                names,
                first: r.first,
                was: r.was.clone(),
                dirs: r.dirs.clone(),
            });
        }
    }

    /// Moves aside what the call created on the way to each noted path (`NAME` →
    /// `NAME.paddock-moved-SECS-PID` in the same directory); returns the moves, failed
    /// ones (and walks that could not finish) with their error.
    pub(crate) fn settle(&self) -> Vec<MovedAside> {
        self.0.iter().filter_map(Noted::settle).collect()
    }
}

/// The path literal rule `r` names, as named (`${WORKSPACE}/.claude/settings.json`, not
/// the shared file a symlink there leads to), beneath the write grant that holds it: the
/// grant's normalised path joined with what follows it in the expanded form. `None` when
/// no grant holds it or the rest is not plain names.
pub(crate) fn as_named(r: &paddock_policy::DenyRule, writes: &[paddock_policy::PathRule]) -> Option<PathBuf> {
    let named = r.expanded.as_path();
    writes
        .iter()
        .filter_map(|w| {
            let rel = named.strip_prefix(&w.expanded).or_else(|_| named.strip_prefix(&w.path)).ok()?;
            aside::normal_components(rel).ok()?;
            Some(w.path.join(rel))
        })
        .min_by_key(|p| p.as_os_str().len())
}

/// Where a path stops being directories at the start.
struct Gap {
    /// `names.len()` for a held directory: every name is one.
    first: usize,
    was: Option<Was>,
    dirs: Vec<Identity>,
}

/// The first component of `names` below `root` that is not a directory now: its index,
/// what it is when it is there, and the directories before it; the path itself when it is
/// a symlink (the view leaves it as it is). `None` when the whole path is there as
/// anything else (the view masks or binds it) or it cannot be looked at now.
///
/// `held`: the path is a directory a resolution leaves by `..` ([`chain::Way::left`]):
/// noted with every name a directory (`first` past the last, the identity of each), or
/// not at all when it is anything else now.
fn first_gap(root: BorrowedFd<'_>, names: &[OsString], held: bool) -> Option<Gap> {
    let mut dir: Option<OwnedFd> = None;
    let mut dirs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        let st = match look(at, name) {
            Ok(None) => return Some(Gap { first: i, was: None, dirs }),
            Ok(Some(st)) => st,
            Err(e) => {
                tracing::debug!(name = %name.to_string_lossy(), error = %e, "a literal rule's path cannot be looked at: not noted");
                return None;
            }
        };
        let was = |link| Was { id: st.id, ctime: st.ctime, size: st.size, link };
        if held {
            if st.file_type() != FileType::Directory {
                return None; // a link on the way is noted as one ([`chain::Way::links`])
            }
            dirs.push(st.id);
            if i + 1 == names.len() {
                return Some(Gap { first: names.len(), was: None, dirs });
            }
            dir = Some(aside::open_dir_at(at, name).ok()?);
            continue;
        }
        if i + 1 == names.len() {
            if st.file_type() != FileType::Symlink {
                return None; // there: the view masks or binds it
            }
            let link = match identity::link_target(at, name) {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(name = %name.to_string_lossy(), error = %e, "a literal rule's symlink cannot be read: not noted");
                    return None;
                }
            };
            return Some(Gap { first: i, was: Some(was(Some(link))), dirs });
        }
        if st.file_type() == FileType::Symlink {
            // A symlink on the way (`.claude` → a directory elsewhere): the user's, made
            // again should the call replace it.
            let link = identity::link_target(at, name).ok()?;
            return Some(Gap { first: i, was: Some(was(Some(link))), dirs });
        }
        if st.file_type() != FileType::Directory {
            return Some(Gap { first: i, was: Some(was(None)), dirs });
        }
        dirs.push(st.id);
        dir = Some(aside::open_dir_at(at, name).ok()?);
    }
    None
}

impl Noted {
    /// Walks the path again and moves aside what the call put on the way (see the module's
    /// documentation); the move, if any.
    fn settle(&self) -> Option<MovedAside> {
        let last = self.names.len() - 1;
        let mut dir: Option<OwnedFd> = None;
        let mut path = self.root_path.clone();
        for (i, name) in self.names.iter().enumerate() {
            path.push(name);
            let at = dir.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
            let st = match look(at, name) {
                // Nothing there. The user's symlink, removed: made again.
                Ok(None) if i == self.first => {
                    let restored = self.restore(Ok(at))?;
                    return Some(MovedAside { restored: Some(restored), ..self.failed(&path, String::new()) });
                }
                // A directory on the way to it, gone: nowhere to make the symlink again.
                Ok(None) => {
                    let restored = self.restore(Err("a directory on the way to it is gone".into()))?;
                    let path = self.first_path();
                    return Some(MovedAside { restored: Some(restored), ..self.failed(&path, String::new()) });
                }
                Ok(Some(st)) => st,
                Err(e) => return Some(self.failed(&path, format!("it cannot be looked at: {e}"))),
            };
            // The file or symlink that was there at the start, unchanged (a symlink with
            // the same target: no call can change one in place, yet it costs one read).
            if i == self.first
                && self.was.as_ref().is_some_and(|w| w.holds(&st))
                && self.link().is_none_or(|l| identity::link_target(at, name).is_ok_and(|t| t == l))
            {
                return None;
            }
            // A directory on the way that is not the one there at the start, or one where
            // the user's symlink was: the call's, moved whole.
            let replaced =
                (i < self.first && self.dirs.get(i) != Some(&st.id)) || (i == self.first && self.link().is_some());
            if !replaced && st.file_type() == FileType::Directory {
                if i == last && self.first == self.names.len() {
                    return None; // the held directory, as it was
                }
                if i < last {
                    match aside::open_dir_at(at, name) {
                        Ok(d) => dir = Some(d),
                        Err(e) => return Some(self.failed(&path, format!("it cannot be entered: {e}"))),
                    }
                    continue;
                }
            }
            // P itself, something not a directory on the way to it (a symlink, a
            // gitfile), or a directory that replaced the one there: what the call created.
            let moved = aside::move_aside_at(at, name);
            tracing::debug!(rule = %self.rule, path = %path.display(), ok = moved.is_ok(), "moved aside: the call created a path on the way to one a deny or protect rule names");
            return Some(match moved {
                Ok(to) => {
                    // The user's symlink made again where the call's object was; a
                    // directory on the way that moved leaves it no place.
                    let place =
                        if i == self.first { Ok(at) } else { Err("a directory on the way to it was replaced".into()) };
                    let mut restored = self.restore(place);
                    if let Some(r) = restored.as_mut().filter(|_| i < self.first) {
                        // What moved is the user's directory on the way, not the symlink:
                        // the notice says so.
                        r.path = self.first_path().to_string_lossy().into_owned();
                    }
                    MovedAside {
                        rule: self.rule.clone(),
                        from: path.to_string_lossy().into_owned(),
                        to: path.with_file_name(to).to_string_lossy().into_owned(),
                        error: String::new(),
                        restored,
                    }
                }
                Err(e) => {
                    let restored = self.restore(Err("what the call put there could not be moved aside".into()));
                    MovedAside { restored, ..self.failed(&path, e.to_string()) }
                }
            });
        }
        None
    }

    /// The target of the symlink that was at the first component that is not a
    /// directory (the path itself, or one on the way), if it was one.
    fn link(&self) -> Option<&[u8]> {
        self.was.as_ref().and_then(|w| w.link.as_deref())
    }

    /// The path down to that component.
    fn first_path(&self) -> PathBuf {
        self.names.iter().take(self.first + 1).fold(self.root_path.clone(), |p, n| p.join(n))
    }

    /// Makes the user's symlink again in `place`, the directory that holds the first
    /// component (or says why there is no place for it); `None` when that component was
    /// no symlink at the start.
    fn restore(&self, place: Result<BorrowedFd<'_>, String>) -> Option<Restored> {
        let link = self.link()?;
        let name = self.names.get(self.first)?;
        let error = match place {
            Ok(at) => match aside::restore_symlink_at(at, name, link) {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            },
            Err(why) => why,
        };
        tracing::debug!(rule = %self.rule, error = %error, "the user's symlink under a deny or protect rule, replaced or removed by the call: made again");
        Some(Restored { target: String::from_utf8_lossy(link).into_owned(), error, path: String::new() })
    }

    fn failed(&self, path: &Path, error: String) -> MovedAside {
        MovedAside {
            rule: self.rule.clone(),
            from: path.to_string_lossy().into_owned(),
            to: String::new(),
            error,
            restored: None,
        }
    }
}

/// Whether a move failed (what the call created is still there) or the user's symlink
/// could not be made again: `run` says so and exits 71 rather than the call's own code.
pub fn any_failed(moved: &[MovedAside]) -> bool {
    moved.iter().any(|m| !m.error.is_empty() || m.restored.as_ref().is_some_and(|r| !r.error.is_empty()))
}

/// The line that tells a person (or an agent's outcome) of one move, escaped. A symlink
/// moved aside is named with its target (never followed); the user's symlink made again
/// is named with its own.
pub fn describe(m: &MovedAside) -> String {
    let (from, rule) = (paddock_audit::Escaped(&m.from), paddock_audit::Escaped(&m.rule));
    if let Some(r) = &m.restored {
        let target = paddock_audit::Escaped(&r.target);
        let again = if r.error.is_empty() {
            format!("the symlink to {target} that was there is made again")
        } else {
            format!(
                "the symlink to {target} that was there could not be made again: {}",
                paddock_audit::Escaped(&r.error)
            )
        };
        // What was at `from`: the symlink, or a directory on the way to it.
        let was = if r.path.is_empty() {
            format!("the symlink {from}")
        } else {
            format!("the directory {from} on the way to the symlink {}", paddock_audit::Escaped(&r.path))
        };
        return if !m.error.is_empty() {
            format!(
                "paddock: the call replaced {was}, which {rule} covers, and what it put there could not be moved aside: {}; it is still there, and {again}",
                paddock_audit::Escaped(&m.error)
            )
        } else if m.to.is_empty() {
            format!("paddock: the call removed {was}, which {rule} covers: {again}")
        } else {
            format!(
                "paddock: the call replaced {was}, which {rule} covers: what it put there is moved aside to {}, and {again}",
                paddock_audit::Escaped(&m.to)
            )
        };
    }
    if m.error.is_empty() {
        let what = match std::fs::read_link(&m.to) {
            Ok(t) => format!(" (a symlink to {}, not followed)", paddock_audit::Escaped(&t.to_string_lossy())),
            Err(_) => String::new(),
        };
        format!(
            "paddock: the call created {from}{what}, which {rule} forbids: moved aside to {}",
            paddock_audit::Escaped(&m.to)
        )
    } else {
        format!(
            "paddock: the call created {from}, which {rule} forbids, and it could not be moved aside: {}; it is still there",
            paddock_audit::Escaped(&m.error)
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;
    use std::os::unix::fs::symlink;

    fn policy(ws: &Path, protect: &str, deny: &str) -> Policy {
        let text = format!(
            "version = 1\n[filesystem]\nwrite = [\"${{WORKSPACE}}\"]\nprotect = [{protect}]\ndeny = [{deny}]\n"
        );
        let vars = Vars { workspace: ws.to_path_buf(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", &text, &vars).unwrap()
    }

    #[test]
    fn what_a_call_created_under_a_rule_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join(".envrc"), "kept").unwrap();
        let p = policy(
            &ws,
            "\"${WORKSPACE}/.envrc\", \"${WORKSPACE}/.mcp.json\", \"${WORKSPACE}/**/x\", \"/elsewhere/y\"",
            "\"${WORKSPACE}/.credentials.json\"",
        );
        let absent = AbsentPaths::before(&p);
        // Existing (masked by the view), glob, and outside every write grant: not noted.
        let noted: Vec<PathBuf> =
            absent.0.iter().map(|n| n.root_path.join(n.names.iter().collect::<PathBuf>())).collect();
        assert_eq!(noted, vec![ws.join(".credentials.json"), ws.join(".mcp.json")]);
        assert!(absent.settle().is_empty(), "nothing created");
        std::fs::write(ws.join(".mcp.json"), "{\"mcpServers\":{}}").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].rule, "filesystem.protect[1]");
        assert!(!ws.join(".mcp.json").exists());
        assert_eq!(std::fs::read_to_string(&moved[0].to).unwrap(), "{\"mcpServers\":{}}");
        assert_eq!(std::fs::read_to_string(ws.join(".envrc")).unwrap(), "kept");
        assert!(!any_failed(&moved));
    }

    #[test]
    fn a_symlink_planted_on_the_way_is_moved_aside_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, victim) = (dir.path().join("ws"), dir.path().join("victim"));
        std::fs::create_dir_all(victim.join(".git")).unwrap();
        std::fs::write(victim.join(".git/config"), "victim").unwrap();
        std::fs::create_dir(&ws).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.git/config\", \"${WORKSPACE}/.git/hooks\"", "");
        let absent = AbsentPaths::before(&p);
        assert_eq!(absent.0.iter().map(|n| n.first).collect::<Vec<_>>(), [0, 0], "`.git` was absent");
        symlink(victim.join(".git"), ws.join(".git")).unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "the second finds nothing once the symlink is gone: {moved:?}");
        assert_eq!(moved[0].from, ws.join(".git").to_string_lossy());
        assert!(describe(&moved[0]).contains("a symlink to"), "{}", describe(&moved[0]));
        assert_eq!(std::fs::read_link(&moved[0].to).unwrap(), victim.join(".git"));
        assert_eq!(std::fs::read_to_string(victim.join(".git/config")).unwrap(), "victim");
    }

    #[test]
    fn a_gitfile_created_or_rewritten_is_moved_aside_and_an_unchanged_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.git/config\"", "");
        // Absent at the start, a gitfile after the call.
        let absent = AbsentPaths::before(&p);
        std::fs::write(ws.join(".git"), "gitdir: .g\n").unwrap();
        let moved = absent.settle();
        assert_eq!((moved.len(), moved[0].from.as_str()), (1, &*ws.join(".git").to_string_lossy()), "{moved:?}");
        // A gitfile at the start (a linked worktree): kept as it is, moved when rewritten.
        std::fs::write(ws.join(".git"), "gitdir: /repo/.git/worktrees/w\n").unwrap();
        let absent = AbsentPaths::before(&p);
        assert!(absent.settle().is_empty());
        std::fs::write(ws.join(".git"), "gitdir: .g\n").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(std::fs::read_to_string(&moved[0].to).unwrap(), "gitdir: .g\n");
        // A directory made where it was absent is entered: only the path itself moves.
        let absent = AbsentPaths::before(&p);
        std::fs::create_dir_all(ws.join(".git/objects")).unwrap();
        std::fs::write(ws.join(".git/config"), "[core]").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join(".git/config").to_string_lossy());
        assert!(ws.join(".git/objects").is_dir());
    }

    #[test]
    fn a_directory_the_call_put_in_place_of_one_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        std::fs::write(ws.join(".git/config"), "mine").unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.git/config\", \"${WORKSPACE}/.git/commondir\"", "");
        let absent = AbsentPaths::before(&p);
        assert!(absent.settle().is_empty(), "the same directory: nothing moves");
        std::fs::rename(ws.join(".git"), ws.join(".git-old")).unwrap();
        std::fs::create_dir(ws.join(".git")).unwrap();
        std::fs::write(ws.join(".git/config"), "planted").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join(".git").to_string_lossy());
        assert_eq!(std::fs::read_to_string(Path::new(&moved[0].to).join("config")).unwrap(), "planted");
        assert_eq!(std::fs::read_to_string(ws.join(".git-old/config")).unwrap(), "mine");
    }

    /// Found by an attack: the view leaves a symlink as it is, so a call removed the user's
    /// `.claude/settings.json` symlink and wrote its own file there; nothing checked it
    /// after the call (only paths absent at the start were noted).
    /// Found by an attack: a running call's child moved the user's link away (so a later
    /// call compiled its rules without it) and back before that call's registry check,
    /// which found the same object and target: its ctime tells.
    #[test]
    fn a_link_moved_away_and_back_is_unsettled() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        let settings = ws.join(".claude/settings.json");
        symlink("../cfg/real.json", &settings).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\"", "");
        let records = AbsentPaths::before(&p).records();
        assert!(records.iter().all(|r| r.unsettled().is_none()), "untouched");
        std::thread::sleep(std::time::Duration::from_millis(20)); // a ctime tick apart
        std::fs::rename(&settings, ws.join(".claude/away")).unwrap();
        std::fs::rename(ws.join(".claude/away"), &settings).unwrap();
        let found: Vec<_> = records.iter().filter_map(Record::unsettled).collect();
        assert!(found.contains(&(settings, "was replaced, changed or moved since")), "{found:?}");
    }

    #[test]
    fn the_users_symlink_replaced_or_removed_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        let settings = ws.join(".claude/settings.json");
        symlink("/some/shared.json", &settings).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\"", "");
        let absent = AbsentPaths::before(&p);
        assert_eq!(absent.0.len(), 1, "the symlink is noted");
        assert!(absent.settle().is_empty(), "the same symlink: nothing moves");
        let is_the_users = || std::fs::read_link(&settings).unwrap() == Path::new("/some/shared.json");

        // Replaced by a file (a type change: caught whether or not the inode is reused).
        std::fs::remove_file(&settings).unwrap();
        std::fs::write(&settings, "{\"hooks\":{}}").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(std::fs::read_to_string(&moved[0].to).unwrap(), "{\"hooks\":{}}");
        let r = moved[0].restored.as_ref().expect("made again");
        assert_eq!((r.target.as_str(), r.error.as_str()), ("/some/shared.json", ""));
        assert!(is_the_users() && !any_failed(&moved));
        assert!(describe(&moved[0]).contains("is made again"), "{}", describe(&moved[0]));

        // Removed, and made again at once by the call (the same target, maybe the same
        // inode number): not the user's object. And another target.
        for target in ["/some/shared.json", "/evil.json"] {
            let absent = AbsentPaths::before(&p);
            std::fs::remove_file(&settings).unwrap();
            symlink(target, &settings).unwrap();
            let moved = absent.settle();
            assert_eq!(moved.len(), 1, "{target}: {moved:?}");
            assert_eq!(std::fs::read_link(&moved[0].to).unwrap(), Path::new(target));
            assert!(is_the_users(), "{target}");
        }

        // Removed: made again, nothing moved.
        let absent = AbsentPaths::before(&p);
        std::fs::remove_file(&settings).unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(moved[0].to.is_empty() && moved[0].restored.as_ref().is_some_and(|r| r.error.is_empty()));
        assert!(is_the_users() && !any_failed(&moved));
        assert!(describe(&moved[0]).contains("removed the symlink"), "{}", describe(&moved[0]));

        // Its directory removed and made again (maybe under the same inode number): that
        // directory is the call's, moved aside whole; the symlink has no place then: said.
        let absent = AbsentPaths::before(&p);
        std::fs::remove_dir_all(ws.join(".claude")).unwrap();
        std::fs::create_dir(ws.join(".claude")).unwrap();
        std::fs::write(&settings, "planted").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join(".claude").to_string_lossy());
        assert!(std::fs::symlink_metadata(&settings).is_err());
        assert!(any_failed(&moved), "the symlink could not be made again: {moved:?}");
        assert!(describe(&moved[0]).contains("could not be made again"), "{}", describe(&moved[0]));
    }

    /// Two rules naming the same symlink settle it once: made again by the first, it is not
    /// taken for the call's by the second.
    #[test]
    fn a_symlink_two_rules_name_is_settled_once() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        symlink("/some/mcp.json", ws.join(".mcp.json")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.mcp.json\"", "\"${WORKSPACE}/.mcp.json\"");
        let absent = AbsentPaths::before(&p);
        std::fs::remove_file(ws.join(".mcp.json")).unwrap();
        std::fs::write(ws.join(".mcp.json"), "{}").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(std::fs::read_link(ws.join(".mcp.json")).unwrap(), Path::new("/some/mcp.json"));
    }

    /// A symlink on the way to a literal path (`.claude` → the user's directory
    /// elsewhere), replaced by a directory of the call's holding the file: that directory
    /// moves whole and the symlink is made again; the directory it points to is untouched.
    #[test]
    fn a_symlink_on_the_way_replaced_by_a_directory_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, shared) = (dir.path().join("ws"), dir.path().join("shared"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(shared.join("settings.json"), "{}").unwrap();
        symlink(&shared, ws.join(".claude")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\"", "");
        let absent = AbsentPaths::before(&p);
        assert!(absent.settle().is_empty());
        std::fs::remove_file(ws.join(".claude")).unwrap();
        std::fs::create_dir(ws.join(".claude")).unwrap();
        std::fs::write(ws.join(".claude/settings.json"), "{\"hooks\":{}}").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join(".claude").to_string_lossy(), "the directory moves whole");
        assert!(moved[0].restored.as_ref().is_some_and(|r| r.error.is_empty()), "{moved:?}");
        assert_eq!(std::fs::read_link(ws.join(".claude")).unwrap(), shared);
        assert_eq!(std::fs::read_to_string(shared.join("settings.json")).unwrap(), "{}");
        assert!(!any_failed(&moved));
    }

    /// Found by an attack (H1): a chain of symlinks under a literal rule. Only the named
    /// path and the final target were noted; the link in the middle (`cfg/link2`), or a
    /// directory symlink the target runs through (`shared`), was the call's to replace.
    #[test]
    fn every_symlink_of_a_chain_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap().join("ws");
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        std::fs::create_dir_all(ws.join("cfg")).unwrap();
        std::fs::write(ws.join("real.json"), "{\"user\":1}").unwrap();
        symlink("../real.json", ws.join("cfg/link2")).unwrap();
        symlink("../cfg/link2", ws.join(".claude/settings.json")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\"", "");
        let absent = AbsentPaths::before(&p);
        assert!(absent.settle().is_empty(), "the same links: nothing moves");
        std::fs::remove_file(ws.join("cfg/link2")).unwrap();
        std::fs::write(ws.join("cfg/link2"), "{\"hooks\":\"evil\"}").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join("cfg/link2").to_string_lossy());
        assert_eq!(std::fs::read_to_string(&moved[0].to).unwrap(), "{\"hooks\":\"evil\"}");
        assert_eq!(std::fs::read_link(ws.join("cfg/link2")).unwrap(), Path::new("../real.json"));
        assert_eq!(std::fs::read_to_string(ws.join(".claude/settings.json")).unwrap(), "{\"user\":1}");
        assert!(!any_failed(&moved));

        // The directory variant: the link's target runs through `shared` → `config-v2`.
        std::fs::create_dir_all(ws.join(".vscode")).unwrap();
        std::fs::create_dir_all(ws.join("config-v2")).unwrap();
        std::fs::write(ws.join("config-v2/settings.json"), "{}").unwrap();
        symlink("config-v2", ws.join("shared")).unwrap();
        symlink("../shared/settings.json", ws.join(".vscode/settings.json")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.vscode/settings.json\"", "");
        let absent = AbsentPaths::before(&p);
        std::fs::remove_file(ws.join("shared")).unwrap();
        std::fs::create_dir(ws.join("shared")).unwrap();
        std::fs::write(ws.join("shared/settings.json"), "evil").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join("shared").to_string_lossy(), "the call's directory moves whole");
        assert!(describe(&moved[0]).contains("replaced the symlink"), "{}", describe(&moved[0]));
        assert_eq!(std::fs::read_link(ws.join("shared")).unwrap(), Path::new("config-v2"));
        assert_eq!(std::fs::read_to_string(ws.join(".vscode/settings.json")).unwrap(), "{}");
        assert!(!any_failed(&moved));
    }

    /// Found by an attack (B1): a `.claude` directory symlink that two rules pass through
    /// is settled once; the second rule took the symlink the first made again for the
    /// call's, moved it aside and said so.
    #[test]
    fn a_directory_symlink_two_rules_pass_through_is_settled_once() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, shared) = (dir.path().join("ws"), dir.path().join("shared"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&shared).unwrap();
        symlink(&shared, ws.join(".claude")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\", \"${WORKSPACE}/.claude/settings.local.json\"", "");
        let absent = AbsentPaths::before(&p);
        std::fs::remove_file(ws.join(".claude")).unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(moved[0].to.is_empty(), "nothing of the call's to move: {moved:?}");
        assert_eq!(std::fs::read_link(ws.join(".claude")).unwrap(), shared);
        let names: Vec<_> = std::fs::read_dir(&ws).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [".claude"], "no spurious move");
    }

    /// A real directory on the way to the user's symlink, renamed away and made again by
    /// the call: the notice names it as the directory it was, not as the symlink.
    #[test]
    fn a_directory_on_the_way_to_a_symlink_is_called_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        symlink("/some/shared.json", ws.join(".claude/settings.json")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\"", "");
        let absent = AbsentPaths::before(&p);
        std::fs::rename(ws.join(".claude"), ws.join(".claude-old")).unwrap();
        std::fs::create_dir(ws.join(".claude")).unwrap();
        std::fs::write(ws.join(".claude/settings.json"), "planted").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join(".claude").to_string_lossy());
        let line = describe(&moved[0]);
        assert!(
            line.contains(&format!(
                "replaced the directory {} on the way to the symlink {}",
                ws.join(".claude").display(),
                ws.join(".claude/settings.json").display()
            )),
            "{line}"
        );
        assert!(!line.contains("replaced the symlink"), "{line}");
    }

    /// A directory on the way removed and made again by the call, which the filesystem
    /// may give the freed inode number: not the one there at the start.
    #[test]
    fn a_directory_removed_and_made_again_is_not_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.git/config\"", "");
        for _ in 0..3 {
            let absent = AbsentPaths::before(&p);
            std::fs::remove_dir_all(ws.join(".git")).unwrap();
            std::fs::create_dir(ws.join(".git")).unwrap();
            std::fs::write(ws.join(".git/config"), "planted").unwrap();
            let moved = absent.settle();
            assert_eq!(moved.len(), 1, "{moved:?}");
            assert_eq!(moved[0].from, ws.join(".git").to_string_lossy(), "the directory moves whole");
            assert!(moved[0].restored.is_none());
            std::fs::create_dir(ws.join(".git")).unwrap();
        }
    }

    /// Found by an attack: `.claude/settings.json -> ../x/../cfg/real.json`, `x` a real
    /// directory the kernel leaves by `..` from wherever `x` leads. `x` is held: the same
    /// directory, nothing moves; a symlink or a directory of the call's in its place is
    /// moved aside (the link then leads nowhere); gone, nothing is there to move. Another
    /// running call adopts the note.
    #[test]
    fn a_directory_left_by_dotdot_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap().join("ws");
        for d in [".claude", "x", "cfg", "deep/a", "deep/cfg"] {
            std::fs::create_dir_all(ws.join(d)).unwrap();
        }
        std::fs::write(ws.join("cfg/real.json"), "{}").unwrap();
        std::fs::write(ws.join("deep/cfg/real.json"), "evil").unwrap();
        symlink("../x/../cfg/real.json", ws.join(".claude/settings.json")).unwrap();
        let p = policy(&ws, "\"${WORKSPACE}/.claude/settings.json\"", "");
        let absent = AbsentPaths::before(&p);
        let held: Vec<&Noted> = absent.0.iter().filter(|n| n.first == n.names.len()).collect();
        let names: Vec<PathBuf> = held.iter().map(|n| n.names.iter().collect()).collect();
        assert_eq!(names, [PathBuf::from(".claude"), PathBuf::from("x")]);
        assert!(absent.settle().is_empty(), "the same directories: nothing moves");

        let settings = ws.join(".claude/settings.json");
        std::fs::rename(ws.join("x"), ws.join("x.old")).unwrap();
        symlink("deep/a", ws.join("x")).unwrap();
        assert_eq!(std::fs::read_to_string(&settings).unwrap(), "evil", "the attack");
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join("x").to_string_lossy());
        assert_eq!(std::fs::read_link(&moved[0].to).unwrap(), Path::new("deep/a"));
        assert!(std::fs::read_to_string(&settings).is_err(), "the link leads nowhere");
        assert!(!any_failed(&moved));

        // A directory of the call's in its place: not the user's, moved aside too.
        std::fs::create_dir(ws.join("x")).unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join("x").to_string_lossy());
        // Gone: nothing to move, the link leads nowhere.
        assert!(absent.settle().is_empty());

        // Put back: the user's again. Adopted by another call, held the same.
        std::fs::rename(ws.join("x.old"), ws.join("x")).unwrap();
        assert!(absent.settle().is_empty());
        let mut other = AbsentPaths::default();
        other.adopt(&absent.records(), std::slice::from_ref(&ws));
        assert_eq!(other.records(), absent.records());
        std::fs::rename(ws.join("x"), ws.join("x.old")).unwrap();
        symlink("deep/a", ws.join("x")).unwrap();
        let moved = other.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].from, ws.join("x").to_string_lossy());
    }

    #[test]
    fn a_failed_move_is_said_and_counted() {
        let m = MovedAside {
            rule: "filesystem.protect[0]".into(),
            from: "/w/.git/config".into(),
            to: String::new(),
            error: "Permission denied".into(),
            restored: None,
        };
        assert!(any_failed(std::slice::from_ref(&m)));
        assert!(
            describe(&m).contains("could not be moved aside: Permission denied; it is still there"),
            "{}",
            describe(&m)
        );
    }
}
