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

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use paddock_audit::MovedAside;
use paddock_policy::Policy;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::aside;

/// The literal `deny` and `protect` paths absent at a call's start that the call could
/// create (a `write` grant holds them).
#[derive(Debug, Default)]
pub(crate) struct AbsentPaths(Vec<Noted>);

/// One noted path as the registry of running calls keeps it ([`crate::running`]): what
/// a call that starts while this one runs notes as well.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    rule: String,
    root: Vec<u8>,
    names: Vec<Vec<u8>>,
    first: usize,
    was: Option<Stamp>,
    dirs: Vec<(u64, u64)>,
}

/// One path noted at the start.
#[derive(Debug)]
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
    /// That component's stamp when it was there (a file or a symlink); `None`: absent.
    was: Option<Stamp>,
    /// The device and inode of each directory before it: one the call replaced (renamed
    /// away, a directory of its own put in its place) is the call's creation too.
    dirs: Vec<(u64, u64)>,
}

/// Device, inode, ctime (s, ns), size: a file the call rewrote or replaced differs (the
/// call cannot set a ctime).
type Stamp = (u64, u64, i64, i64, i64);

fn stamp(st: &rustix::fs::Stat) -> Stamp {
    #[allow(clippy::unnecessary_cast)]
    (st.st_dev as u64, st.st_ino as u64, st.st_ctime as i64, st.st_ctime_nsec as i64, st.st_size as i64)
}

/// What is at a name now, not followed: `None` when nothing is.
fn look(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<Option<rustix::fs::Stat>, Errno> {
    match aside::with_access(dir, || rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

impl AbsentPaths {
    /// Notes the paths of `policy` that are absent now.
    pub(crate) fn before(policy: &Policy) -> AbsentPaths {
        let fs = &policy.filesystem;
        let mut roots: HashMap<PathBuf, Option<Arc<OwnedFd>>> = HashMap::new();
        let mut noted = Vec::new();
        for r in fs.deny.iter().chain(&fs.protect).filter(|r| !r.is_glob) {
            let p = Path::new(&r.pattern);
            // The outermost grant: every component below it is the call's to change.
            let Some(w) = fs.write.iter().filter(|w| p.starts_with(&w.path)).min_by_key(|w| w.path.as_os_str().len())
            else {
                continue;
            };
            let root = roots.entry(w.path.clone()).or_insert_with(|| aside::open_root(&w.path).ok().map(Arc::new));
            let Some(root) = root.clone() else { continue }; // no root: nothing to create under
            let Ok(names) = aside::normal_components(p.strip_prefix(&w.path).unwrap_or(p)) else { continue };
            if names.is_empty() {
                continue;
            }
            if let Some(Gap { first, was, dirs }) = first_gap(root.as_fd(), &names) {
                noted.push(Noted { rule: r.id.to_string(), root, root_path: w.path.clone(), names, first, was, dirs });
            }
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
                was: n.was,
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
            if mine.contains(r) || r.names.is_empty() || r.first >= r.names.len() {
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
                was: r.was,
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

/// Where a path stops being directories at the start.
struct Gap {
    first: usize,
    was: Option<Stamp>,
    dirs: Vec<(u64, u64)>,
}

/// The first component of `names` below `root` that is not a directory now: its index,
/// its stamp when it is there, and the directories before it. `None` when the whole path
/// is there (the view masks it) or it cannot be looked at now.
fn first_gap(root: BorrowedFd<'_>, names: &[OsString]) -> Option<Gap> {
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
        if i + 1 == names.len() {
            return None; // there: the view masks or binds it
        }
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Some(Gap { first: i, was: Some(stamp(&st)), dirs });
        }
        let (dev, ino, ..) = stamp(&st);
        dirs.push((dev, ino));
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
                Ok(None) => return None,
                Ok(Some(st)) => st,
                Err(e) => return Some(self.failed(&path, format!("it cannot be looked at: {e}"))),
            };
            if i == self.first && self.was == Some(stamp(&st)) {
                return None; // the file that was there at the start, unchanged
            }
            let (dev, ino, ..) = stamp(&st);
            let replaced = i < self.first && self.dirs.get(i) != Some(&(dev, ino));
            if i < last && !replaced && FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                match aside::open_dir_at(at, name) {
                    Ok(d) => dir = Some(d),
                    Err(e) => return Some(self.failed(&path, format!("it cannot be entered: {e}"))),
                }
                continue;
            }
            // P itself, something not a directory on the way to it (a symlink, a
            // gitfile), or a directory that replaced the one there: what the call created.
            let moved = aside::move_aside_at(at, name);
            tracing::debug!(rule = %self.rule, path = %path.display(), ok = moved.is_ok(), "moved aside: the call created a path on the way to one a deny or protect rule names");
            return Some(match moved {
                Ok(to) => MovedAside {
                    rule: self.rule.clone(),
                    from: path.to_string_lossy().into_owned(),
                    to: path.with_file_name(to).to_string_lossy().into_owned(),
                    error: String::new(),
                },
                Err(e) => self.failed(&path, e.to_string()),
            });
        }
        None
    }

    fn failed(&self, path: &Path, error: String) -> MovedAside {
        MovedAside { rule: self.rule.clone(), from: path.to_string_lossy().into_owned(), to: String::new(), error }
    }
}

/// Whether a move failed: what the call created is still there, and `run` says so and
/// exits 71 rather than the call's own code.
pub fn any_failed(moved: &[MovedAside]) -> bool {
    moved.iter().any(|m| !m.error.is_empty())
}

/// The line that tells a person (or an agent's outcome) of one move, escaped. A symlink
/// moved aside is named with its target (never followed).
pub fn describe(m: &MovedAside) -> String {
    let (from, rule) = (paddock_audit::Escaped(&m.from), paddock_audit::Escaped(&m.rule));
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

    #[test]
    fn a_failed_move_is_said_and_counted() {
        let m = MovedAside {
            rule: "filesystem.protect[0]".into(),
            from: "/w/.git/config".into(),
            to: String::new(),
            error: "Permission denied".into(),
        };
        assert!(any_failed(std::slice::from_ref(&m)));
        assert!(
            describe(&m).contains("could not be moved aside: Permission denied; it is still there"),
            "{}",
            describe(&m)
        );
    }
}
