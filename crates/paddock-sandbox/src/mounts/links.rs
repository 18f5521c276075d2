//! A grant named through a symlink on the way (`/data/cur/x`, `cur` → `/srv/v2`): the
//! policy grants the path it resolves to as well (`/srv/v2/x`), which is bound; the view
//! then holds each symlink the host's resolution of the named path passes through, so the
//! named path reaches that bind as on the host. (A link relative to its directory resolves
//! inside the old root, and the named path is bound through it; an absolute one, resolved
//! from the scratch root while the view is built, reached nothing: the named path was
//! missing from the view.)

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use super::paths::{mkdir_p, new_root, old_root, under};

/// The kernel's bound on the symlinks one resolution follows (`MAXSYMLINKS`).
const MAXSYMLINKS: usize = 40;

/// The symlinks the host's resolution of the absolute path `p` passes through, in order,
/// each as where it lies (a path with no symlink on it) and its target; up to the first
/// component that does not exist.
pub(super) fn on_the_way(p: &Path) -> io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front(&mut todo, p);
    let mut cur = PathBuf::from("/");
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let host = under(old_root(), &next);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if out.len() == MAXSYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs::read_link(&host)?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                push_front(&mut todo, &target);
                out.push((next, target));
            }
            Ok(_) => cur = next,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Puts the components of `p` (names and `..`) at the front of `todo`, in order.
fn push_front(todo: &mut VecDeque<OsString>, p: &Path) {
    for c in p.components().rev() {
        match c {
            Component::Normal(name) => todo.push_front(name.to_os_string()),
            Component::ParentDir => todo.push_front("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Makes each of `links` ([`on_the_way`]) in the view, where nothing is at its place yet.
pub(super) fn reproduce(links: &[(PathBuf, PathBuf)]) -> io::Result<()> {
    for (at, target) in links {
        let dst = under(new_root(), at);
        if fs::symlink_metadata(&dst).is_ok() {
            continue;
        }
        if let Some(parent) = dst.parent() {
            mkdir_p(parent)?;
        }
        symlink(target, &dst)?;
    }
    Ok(())
}
