//! Where the programs of a `[commands]` table resolve *now*.
//!
//! A pattern names its program by a bare name (looked up in the sandbox `PATH`) or an
//! absolute path, and matches a call when both resolve to the same file. A policy that
//! lives for a whole session (`serve`, `mcp`, the library) must not keep the answer of
//! its load: a program made later, a name that a new file earlier in the `PATH` shadows,
//! a link moved to another target all change it. The table is resolved again when a
//! directory or file that its resolution read has changed since, told by a stamp of their
//! identities and times, one `statx` each; the resolution of a name that goes through a
//! symbolic link is checked again at every use.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::resolve_program;

/// A file's or directory's identity, permissions and times, as a stamp keeps them.
type Key = (u64, u64, u32, i64, i64, i64, i64);

fn key(p: &Path) -> Option<Key> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.dev(), m.ino(), m.mode(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

/// A change made within this long after a stamp read a time may carry that same time
/// (file times come from a clock that moves in ticks): a stamp that read a time this
/// recent is not trusted, and the table is resolved again at its next use.
const TICK: Duration = Duration::from_millis(50);

/// The programs of one table at one moment, and what tells that moment is past.
#[derive(Debug, Default)]
pub(super) struct Resolution {
    /// Each distinct program token's file, `None` when it does not resolve.
    pub(super) programs: Vec<Option<PathBuf>>,
    /// The rules' indexes by program: allow, then deny.
    pub(super) by_program: [HashMap<PathBuf, super::ProgramIndex>; 2],
    /// What was read, with what it was.
    read: Vec<(PathBuf, Option<Key>)>,
    /// Tokens found through a symbolic link: the path found, and its canonical form.
    linked: Vec<(PathBuf, PathBuf)>,
    /// Whether every time read was older than [`TICK`] when it was read.
    settled: bool,
}

impl Resolution {
    /// Resolves `tokens` (each rule's program as written) through `path_var`.
    pub(super) fn new(tokens: &[String], path_var: &str) -> Resolution {
        let taken = SystemTime::now();
        let mut read: Vec<PathBuf> = Vec::new();
        let mut linked = Vec::new();
        let mut programs = Vec::with_capacity(tokens.len());
        for token in tokens {
            let found = looked_at(token, path_var, &mut read);
            if let Some((f, p)) = &found {
                if f != p {
                    linked.push((f.clone(), p.clone()));
                }
            }
            programs.push(found.map(|(_, p)| p));
        }
        read.sort();
        read.dedup();
        let read: Vec<_> = read.into_iter().map(|p| (key(&p), p)).map(|(k, p)| (p, k)).collect();
        let recent = taken.checked_sub(TICK).unwrap_or(SystemTime::UNIX_EPOCH);
        let settled = read.iter().filter_map(|(_, k)| *k).all(|k| {
            let time = |s: i64, ns: i64| {
                SystemTime::UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32)
            };
            time(k.3, k.4) < recent && time(k.5, k.6) < recent
        });
        Resolution { programs, by_program: Default::default(), read, linked, settled }
    }

    /// Whether this resolution is still the answer: nothing it read has changed since, and
    /// no time it read was too recent to tell.
    pub(super) fn holds(&self) -> bool {
        self.settled && self.unchanged()
    }

    fn unchanged(&self) -> bool {
        self.changed().next().is_none()
    }

    /// What changed since: each path read that is not what it was, and each link found
    /// that leads elsewhere now.
    fn changed(&self) -> impl Iterator<Item = &Path> {
        let read = self.read.iter().filter(|(p, k)| key(p) != *k).map(|(p, _)| p.as_path());
        let resolve = |f: &Path| resolve_program(&f.to_string_lossy(), "", Path::new("/"));
        read.chain(self.linked.iter().filter(move |(f, p)| resolve(f).as_ref() != Some(p)).map(|(f, _)| f.as_path()))
    }
}

/// Looks `token` up the way [`resolve_program`] does, noting in `read` every directory
/// and file whose change could change the answer: the ancestors of each directory
/// searched, and the entries met. Returns the path found and its canonical form.
fn looked_at(token: &str, path_var: &str, read: &mut Vec<PathBuf>) -> Option<(PathBuf, PathBuf)> {
    let mut look = |candidate: PathBuf| {
        read.extend(candidate.ancestors().skip(1).map(Path::to_path_buf));
        read.push(candidate.clone());
        resolve_program(&candidate.to_string_lossy(), "", Path::new("/")).map(|p| (candidate, p))
    };
    if token.starts_with('/') {
        return look(PathBuf::from(token));
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty() && Path::new(d).is_absolute())
        .find_map(|d| look(Path::new(d).join(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// What changed under `dir` (the test's own; `/tmp` above it changes as it likes).
    fn changed_in(r: &Resolution, dir: &Path) -> Vec<PathBuf> {
        r.changed().filter(|p| p.starts_with(dir)).map(Path::to_path_buf).collect()
    }

    /// Ages what a resolution read past [`TICK`], as time would.
    fn age(paths: &[&Path]) {
        let old = SystemTime::now() - Duration::from_secs(10);
        for p in paths {
            let f = std::fs::File::open(p).unwrap();
            f.set_modified(old).unwrap();
        }
    }

    #[test]
    fn a_program_made_later_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let tool = d.path().join("tool");
        let tokens = [tool.to_string_lossy().into_owned()];
        age(&[d.path()]);
        let r = Resolution::new(&tokens, "");
        assert_eq!(r.programs, [None]);
        assert_eq!(changed_in(&r, d.path()), Vec::<PathBuf>::new());
        exe(&tool);
        assert_eq!(changed_in(&r, d.path()), [d.path(), &tool], "a new file in a directory read undoes the resolution");
        let r = Resolution::new(&tokens, "");
        assert_eq!(r.programs, [Some(tool.canonicalize().unwrap())]);
    }

    #[test]
    fn a_name_shadowed_earlier_in_the_path_is_seen() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        exe(&b.path().join("tool"));
        let path_var = format!("{}:{}", a.path().display(), b.path().display());
        age(&[a.path(), b.path(), &b.path().join("tool")]);
        let r = Resolution::new(&["tool".to_string()], &path_var);
        assert_eq!(r.programs, [Some(b.path().join("tool").canonicalize().unwrap())]);
        assert_eq!(changed_in(&r, a.path()), Vec::<PathBuf>::new());
        exe(&a.path().join("tool"));
        assert_eq!(changed_in(&r, a.path()), [a.path(), &a.path().join("tool")]);
    }

    #[test]
    fn a_link_moved_to_another_target_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let (x, y, link) = (d.path().join("x"), d.path().join("y"), d.path().join("link"));
        exe(&x);
        exe(&y);
        std::os::unix::fs::symlink(&x, &link).unwrap();
        age(&[d.path(), &x, &y]);
        let r = Resolution::new(&[link.to_string_lossy().into_owned()], "");
        assert_eq!(r.programs, [Some(x.canonicalize().unwrap())]);
        assert_eq!(changed_in(&r, d.path()), Vec::<PathBuf>::new());
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&y, &link).unwrap();
        assert_eq!(changed_in(&r, d.path()), [d.path(), &link, &link]);
    }

    #[test]
    fn a_recent_time_is_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        exe(&d.path().join("tool"));
        let r = Resolution::new(&[d.path().join("tool").to_string_lossy().into_owned()], "");
        assert_eq!(changed_in(&r, d.path()), Vec::<PathBuf>::new());
        assert!(!r.holds(), "a directory changed within a tick may change again with the same time");
    }
}
