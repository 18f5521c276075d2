//! Resolving an exec's path the way the kernel will, in the child's own view: through
//! `/proc/PID/root`, following every symlink by hand (an absolute link target is taken
//! from the child's root, never from the supervisor's).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed at most (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Why a path names no program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// It does not exist in the child's view (`ENOENT`/`ENOTDIR`): the kernel would fail
    /// the exec with `ENOENT`, and the supervisor answers that, undecided, unrecorded (a
    /// shell's PATH search tries every directory).
    NotFound,
    /// It is not a regular file, or cannot be looked up, in the child's view.
    Missing,
    /// It lies in `/proc` (magic links to descriptors, other processes' files).
    Proc,
    /// Too many symlinks.
    Loop,
}

/// `path` (relative ones from `base`, an absolute directory in the child's view) resolved
/// under `root` (`/proc/PID/root`): the canonical path in the child's view of a regular file.
pub(crate) fn resolve(root: &Path, base: &Path, path: &Path) -> Result<PathBuf, Unresolved> {
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut todo: Vec<Vec<u8>> = Vec::new(); // reversed: the next component last
    let push_all = |todo: &mut Vec<Vec<u8>>, p: &Path| {
        let mut comps: Vec<Vec<u8>> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes().to_vec()),
                Component::ParentDir => Some(b"..".to_vec()),
                _ => None,
            })
            .collect();
        comps.reverse();
        todo.extend(comps);
    };
    push_all(&mut todo, path);
    if !path.is_absolute() {
        push_all(&mut todo, base);
    }
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == b".." {
            done.pop();
            continue;
        }
        done.push(c);
        if done.first().map(Vec::as_slice) == Some(b"proc") {
            return Err(Unresolved::Proc);
        }
        let host = in_root(root, &done);
        let meta = std::fs::symlink_metadata(&host).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Unresolved::NotFound,
            _ => Unresolved::Missing,
        })?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Unresolved::Loop);
            }
            let target = std::fs::read_link(&host).map_err(|_| Unresolved::Missing)?;
            done.pop();
            if target.is_absolute() {
                done.clear();
            }
            push_all(&mut todo, &target);
        } else if (todo.is_empty() && !meta.is_file()) || (!todo.is_empty() && !meta.is_dir()) {
            // The last component must be a regular file; every other one a directory.
            return Err(Unresolved::Missing);
        }
    }
    let mut out = PathBuf::from("/");
    for c in &done {
        out.push(OsStr::from_bytes(c));
    }
    Ok(out)
}

/// `root` joined with the components (all plain names).
pub(crate) fn in_root(root: &Path, comps: &[Vec<u8>]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(OsStr::from_bytes(c));
    }
    p
}

/// The interpreter named by a `#!` line of the file at `host` (a path under the child's
/// root), resolved in the child's view; `None` when the file does not start with `#!`.
/// A relative interpreter is taken from `cwd` (the process's working directory in its
/// view), as the kernel takes it.
pub(crate) fn shebang(root: &Path, host: &Path, cwd: &Path) -> Option<Result<PathBuf, Unresolved>> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(host).and_then(|mut f| f.read(&mut head)).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    let interp = line.split(|&b| b == b' ' || b == b'\t').find(|w| !w.is_empty())?;
    let p = Path::new(OsStr::from_bytes(interp));
    if p.is_relative() && !cwd.is_absolute() {
        return Some(Err(Unresolved::Missing)); // no working directory to take it from
    }
    Some(resolve(root, cwd, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_inside_the_root_only() {
        let dir = std::env::temp_dir().join(format!("paddock-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::write(dir.join("usr/bin/real"), b"#!/usr/bin/real -x\n").unwrap();
        std::os::unix::fs::symlink("/usr/bin/real", dir.join("usr/bin/abs")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("usr/bin/rel")).unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.join("bin")).unwrap();
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
        let r = |base: &str, p: &str| resolve(&dir, Path::new(base), Path::new(p));
        let real = Ok(PathBuf::from("/usr/bin/real"));
        assert_eq!(r("/", "/usr/bin/abs"), real);
        assert_eq!(r("/", "/bin/rel"), real);
        assert_eq!(r("/usr", "bin/../bin/./abs"), real);
        assert_eq!(r("/", "/usr/bin/missing"), Err(Unresolved::NotFound));
        assert_eq!(r("/", "/usr/bin/real/x"), Err(Unresolved::Missing));
        assert_eq!(r("/", "/usr/bin"), Err(Unresolved::Missing));
        assert_eq!(r("/", "/proc/self/exe"), Err(Unresolved::Proc));
        assert_eq!(r("/", "/loop"), Err(Unresolved::Loop));
        assert_eq!(shebang(&dir, &dir.join("usr/bin/real"), Path::new("/")), Some(real));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
