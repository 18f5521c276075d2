//! Resolving an exec's path the way the kernel will, in the child's own view: under the
//! child's root (`root/...` from its `/proc/PID` directory), one component at a time,
//! following every symlink by hand (an absolute link target is taken from the child's root,
//! never from the supervisor's).

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

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

/// The child's root directory: `prefix` (`root`, the magic link) under `dir` (its
/// `/proc/PID`).
#[derive(Clone, Copy)]
pub(crate) struct Root<'a> {
    pub dir: BorrowedFd<'a>,
    pub prefix: &'a str,
}

impl Root<'_> {
    /// The path, from `dir`, of the components (all plain names) under the root.
    fn at(&self, comps: &[Vec<u8>]) -> PathBuf {
        let mut p = PathBuf::with_capacity(self.prefix.len() + comps.iter().map(|c| c.len() + 1).sum::<usize>());
        p.push(self.prefix);
        for c in comps {
            p.push(OsStr::from_bytes(c));
        }
        p
    }
}

/// `path` (relative ones from `base`, an absolute directory in the child's view) resolved
/// under `root`: the canonical path in the child's view of a regular file.
pub(crate) fn resolve(root: Root<'_>, base: &Path, path: &Path) -> Result<PathBuf, Unresolved> {
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
        let rel = root.at(&done);
        let st = rustix::fs::statat(root.dir, &rel, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
            rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => Unresolved::NotFound,
            _ => Unresolved::Missing,
        })?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return Err(Unresolved::Loop);
            }
            let target = rustix::fs::readlinkat(root.dir, &rel, Vec::new()).map_err(|_| Unresolved::Missing)?;
            let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
            done.pop();
            if target.is_absolute() {
                done.clear();
            }
            push_all(&mut todo, &target);
        } else if (todo.is_empty() && kind != FileType::RegularFile)
            || (!todo.is_empty() && kind != FileType::Directory)
        {
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

/// The interpreter named by a `#!` line of `program` (a canonical path in the child's view,
/// as [`resolve`] returns it), resolved in the child's view; `None` when the file does not
/// start with `#!` (or is no longer a regular file there). A relative interpreter is taken
/// from `cwd` (the process's working directory in its view), as the kernel takes it.
pub(crate) fn shebang(root: Root<'_>, program: &Path, cwd: &Path) -> Option<Result<PathBuf, Unresolved>> {
    let rel = Path::new(root.prefix).join(program.strip_prefix("/").unwrap_or(program));
    // Never follow a link the tree swapped in (its target would be looked up in the
    // supervisor's root), never wait on a FIFO.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::openat(root.dir, &rel, flags, Mode::empty()).ok()?;
    let mut head = [0u8; 256];
    let n = rustix::io::read(&fd, &mut head).ok()?;
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
        let root = std::fs::File::open(&dir).unwrap();
        let root = Root { dir: std::os::fd::AsFd::as_fd(&root), prefix: "." };
        let r = |base: &str, p: &str| resolve(root, Path::new(base), Path::new(p));
        let real = Ok(PathBuf::from("/usr/bin/real"));
        assert_eq!(r("/", "/usr/bin/abs"), real);
        assert_eq!(r("/", "/bin/rel"), real);
        assert_eq!(r("/usr", "bin/../bin/./abs"), real);
        assert_eq!(r("/", "/usr/bin/missing"), Err(Unresolved::NotFound));
        assert_eq!(r("/", "/usr/bin/real/x"), Err(Unresolved::Missing));
        assert_eq!(r("/", "/usr/bin"), Err(Unresolved::Missing));
        assert_eq!(r("/", "/proc/self/exe"), Err(Unresolved::Proc));
        assert_eq!(r("/", "/loop"), Err(Unresolved::Loop));
        assert_eq!(shebang(root, Path::new("/usr/bin/real"), Path::new("/")), Some(real));
        assert_eq!(shebang(root, Path::new("/usr/bin/abs"), Path::new("/")), None, "a link is not followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
