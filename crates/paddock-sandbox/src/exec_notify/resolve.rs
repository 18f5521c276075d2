//! Resolving an exec's path the way the kernel will, in the child's own view: under the
//! child's root (a descriptor of it, opened through its `/proc/PID/root`), one component at a time,
//! following every symlink by hand (an absolute link target is taken from the child's root,
//! never from the supervisor's).

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType};

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

impl Unresolved {
    /// What is wrong with the path, for a refusal's reason.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Unresolved::NotFound => "does not exist in the sandbox's view",
            Unresolved::Missing => "is not a regular file (or directory, where one is needed) in the sandbox's view",
            Unresolved::Proc => "lies in /proc (a descriptor or another process's file, not a program path)",
            Unresolved::Loop => "has too many levels of symbolic links",
        }
    }
}

/// What a path must name at its end: a program (a regular file) or a directory (a
/// working directory, a directory descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
}

/// A file's identity: its device and inode.
pub(crate) type FileId = (u64, u64);

/// The identity of `st`.
pub(crate) fn file_id(st: &rustix::fs::Stat) -> FileId {
    (st.st_dev, st.st_ino)
}

/// The child's root directory: `prefix` under `dir` (`.` under a descriptor of that root,
/// or `root`, the magic link, under its `/proc/PID`).
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
    walk(root, base, path, Kind::File)
}

/// `path` (absolute) resolved under `root` to `kind`: its canonical path in the child's view.
pub(crate) fn resolve_as(root: Root<'_>, path: &Path, kind: Kind) -> Result<PathBuf, Unresolved> {
    walk(root, Path::new("/"), path, kind)
}

/// The identity of `path` (canonical in the child's view, as [`resolve`] returns it).
pub(crate) fn identity(root: Root<'_>, path: &Path) -> Result<FileId, rustix::io::Errno> {
    let rel = Path::new(root.prefix).join(path.strip_prefix("/").unwrap_or(path));
    rustix::fs::statat(root.dir, &rel, AtFlags::SYMLINK_NOFOLLOW).map(|st| file_id(&st))
}

fn walk(root: Root<'_>, base: &Path, path: &Path, want: Kind) -> Result<PathBuf, Unresolved> {
    let want = match want {
        Kind::File => FileType::RegularFile,
        Kind::Directory => FileType::Directory,
    };
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
        } else if (todo.is_empty() && kind != want) || (!todo.is_empty() && kind != FileType::Directory) {
            // The last component must be what is wanted; every other one a directory.
            return Err(Unresolved::Missing);
        }
    }
    if done.is_empty() && want != FileType::Directory {
        return Err(Unresolved::Missing); // `/` itself is no program
    }
    let mut out = PathBuf::from("/");
    for c in &done {
        out.push(OsStr::from_bytes(c));
    }
    Ok(out)
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
        assert_eq!(r("/", "/"), Err(Unresolved::Missing));
        let as_dir = |p: &str| resolve_as(root, Path::new(p), Kind::Directory);
        assert_eq!(as_dir("/bin/../bin"), Ok(PathBuf::from("/usr/bin")));
        assert_eq!(as_dir("/"), Ok(PathBuf::from("/")));
        assert_eq!(as_dir("/usr/bin/real"), Err(Unresolved::Missing));
        let real_id = identity(root, Path::new("/usr/bin/real")).unwrap();
        assert_eq!(
            identity(root, Path::new("/usr/bin/rel")).map(|i| i == real_id),
            Ok(false),
            "a link is not followed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
