//! Moving one name aside after a call, safely: what a call left where a rule forbids it is
//! renamed `NAME.paddock-moved-SECS-PID` beside itself (never deleted, never overwriting;
//! when that name is taken, a random number is added, which the call cannot have guessed),
//! relative to its parent directory's descriptor. The path to that parent is resolved from
//! a write grant's root one component at a time, never following a symlink and never
//! leaving the root (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS`): a symlink the call planted on the way is not a way out of its
//! view for paddock itself, which runs with the user's full rights. The name itself is
//! never followed either: a symlink is renamed, not its target.
//!
//! Every move aside of paddock goes through [`move_aside_at`] (or [`move_aside`], which
//! resolves the parent first): `absent` (literal paths absent at the start) and `planted`
//! (new glob matches). A symlink a rule matched at the start that the call replaced or
//! removed is made again by [`restore_symlink_at`], in the directory reached the same way.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

/// How long a file name may be (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Opens the directory `root` (a write grant's root, as the policy names it: symlinks in
/// the root's own path are the user's and followed) as an `O_PATH` descriptor.
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Opens the parent directory of `path` (beneath `root`, a write grant's root) as
/// [`open_dir_at`] opens each directory on the way from `root`, never following a symlink:
/// that directory and the path's last component.
pub(crate) fn open_parent(root: &Path, path: &Path) -> io::Result<(OwnedFd, OsString)> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("not beneath {}: {}", root.display(), path.display()))
    })?;
    let names = normal_components(rel)?;
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the root itself has no parent beneath it"));
    };
    let mut dir = open_root(root)?;
    for name in dirs {
        dir = open_dir_at(std::os::fd::AsFd::as_fd(&dir), name)?;
    }
    Ok((dir, last.clone()))
}

/// Opens the directory `name` in `parent` (one component) as an `O_PATH` descriptor,
/// without following a symlink: a symlink, or anything that is not a directory, is an
/// error (`ELOOP` or `ENOTDIR`). A directory the user owns that the call made unsearchable
/// is made searchable for the look-up (see [`with_access`]).
pub(crate) fn open_dir_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    check_name(name)?;
    let how = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || {
        let mut r = rustix::fs::openat2(parent, name, flags, Mode::empty(), how);
        // EAGAIN: a rename elsewhere raced the look-up; tried again a few times.
        for _ in 0..8 {
            if !matches!(r, Err(Errno::AGAIN)) {
                break;
            }
            r = rustix::fs::openat2(parent, name, flags, Mode::empty(), how);
        }
        match r {
            // A kernel before 5.6: one component with O_NOFOLLOW follows nothing either.
            Err(Errno::NOSYS) => rustix::fs::openat(parent, name, flags, Mode::empty()),
            r => r,
        }
    };
    Ok(with_access(parent, open)?)
}

/// What every moved-aside name carries after the original name. A moved-aside file may be
/// a denied secret under a name its rule no longer matches (`.env` →
/// `.env.paddock-moved-…`): every view masks names holding this mark under its write
/// grants ([`crate::spec::fs_view`]), so a later call never reads what was moved.
pub(crate) const MOVED_MARK: &str = ".paddock-moved-";

/// Renames `name` in the directory `parent` to `NAME.paddock-moved-SECS-PID` beside
/// itself (`-` and a random 64-bit number appended when that name is taken: an existing
/// file is never replaced, and a call that made the names it could foresee cannot keep
/// its file in place;
/// `NAME` shortened when the whole would pass 255 bytes), whatever `name` is (a symlink
/// is renamed, not followed). When the rename is refused (`EACCES`/`EPERM`) and `parent`
/// is the user's own (the call may have `chmod a-w` it), `u+wx` is added to `parent` for
/// the rename and its mode restored. The new name.
pub(crate) fn move_aside_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
    check_name(name)?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let base = format!("{MOVED_MARK}{secs}-{}", std::process::id());
    for n in 0..100u32 {
        let suffix = if n == 0 { base.clone() } else { format!("{base}-{:016x}", random()?) };
        let keep = NAME_MAX.saturating_sub(suffix.len()).min(name.len());
        let mut to = name.as_bytes()[..keep].to_vec();
        to.extend_from_slice(suffix.as_bytes());
        let to = OsString::from_vec(to);
        match with_access(parent, || rename_noreplace(parent, name, &to)) {
            Ok(()) => return Ok(to),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "every name to move it aside to is taken"))
}

/// Makes the symlink `name` → `target` in the directory `parent` again, where the call
/// replaced or removed the user's (what it put there already moved aside): never over an
/// existing name (`EEXIST`), and, as [`move_aside_at`], with `u+wx` added to a `parent` of
/// the user's that refuses it, its mode restored.
pub(crate) fn restore_symlink_at(parent: BorrowedFd<'_>, name: &OsStr, target: &[u8]) -> io::Result<()> {
    check_name(name)?;
    if target.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty symlink target"));
    }
    let target = OsStr::from_bytes(target);
    Ok(with_access(parent, || rustix::fs::symlinkat(target, parent, name))?)
}

/// A random number from the kernel.
fn random() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    let mut got = 0;
    while got < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[got..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// `renameat2(RENAME_NOREPLACE)`; on a file system without it, a plain rename after
/// checking that the new name is free (the call has ended: nothing of it races this).
fn rename_noreplace(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) => match rustix::fs::statat(dir, to, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Err(Errno::EXIST),
            Err(Errno::NOENT) => rustix::fs::renameat(dir, from, dir, to),
            Err(e) => Err(e),
        },
        r => r,
    }
}

/// Runs `f` (an operation in the directory `dir`); when it is refused (`EACCES`/`EPERM`)
/// and `dir` is owned by this process's user without `u+wx`, adds `u+wx` to `dir`, runs
/// `f` again and restores the mode. (`dir` is an `O_PATH` descriptor: its mode is changed
/// through `/proc/self/fd`, which names that very inode, never a path that could move.)
pub(crate) fn with_access<T>(
    dir: BorrowedFd<'_>,
    mut f: impl FnMut() -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    let first = f();
    let Err(Errno::ACCESS | Errno::PERM) = first else { return first };
    let Ok(st) = rustix::fs::fstat(dir) else { return first };
    let mode = st.st_mode & 0o7777;
    if st.st_uid != rustix::process::geteuid().as_raw() || mode & 0o300 == 0o300 {
        return first;
    }
    let proc = format!("/proc/self/fd/{}", dir.as_raw_fd());
    if rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode | 0o300)).is_err() {
        return first;
    }
    let again = f();
    if let Err(e) = rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode)) {
        tracing::warn!(error = %e, mode = format!("{mode:o}"), "a directory's mode could not be restored after moving a file aside");
    }
    again
}

/// The components of `rel`, each a plain name (no `..`, `.` or root).
pub(crate) fn normal_components(rel: &Path) -> io::Result<Vec<OsString>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n.to_os_string()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a plain path below the root: {}", rel.display()),
            )),
        })
        .collect()
}

/// One plain file name: not empty, no `/`, not `.` or `..`.
fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a file name: {}", name.to_string_lossy()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::path::PathBuf;

    /// The pieces by path, as `absent` and `planted` use them by descriptor.
    /// Moves `path` (absolute and below `root`, or relative to it) aside: its parent is
    /// resolved from `root` without following a symlink or leaving `root`, then
    /// [`move_aside_at`] renames its last component. The new path.
    fn move_aside(root: &Path, path: &Path) -> io::Result<PathBuf> {
        let path = if path.is_absolute() { path.to_path_buf() } else { root.join(path) };
        let (dir, last) = open_parent(root, &path)?;
        let to = move_aside_at(dir.as_fd(), &last)?;
        Ok(path.with_file_name(to))
    }
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn a_symlinked_parent_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, victim) = (dir.path().join("ws"), dir.path().join("victim"));
        std::fs::create_dir_all(victim.join(".git")).unwrap();
        std::fs::write(victim.join(".git/config"), "victim").unwrap();
        std::fs::create_dir(&ws).unwrap();
        symlink(victim.join(".git"), ws.join(".git")).unwrap();
        let e = move_aside(&ws, &ws.join(".git/config")).unwrap_err();
        let refused = [Errno::LOOP, Errno::NOTDIR].map(|e| Some(e.raw_os_error()));
        assert!(refused.contains(&e.raw_os_error()), "{e}");
        assert_eq!(std::fs::read_to_string(victim.join(".git/config")).unwrap(), "victim");
        // The symlink itself is what moves.
        let to = move_aside(&ws, &ws.join(".git")).unwrap();
        assert!(to.file_name().unwrap().to_string_lossy().starts_with(".git.paddock-moved-"), "{to:?}");
        assert_eq!(std::fs::read_link(&to).unwrap(), victim.join(".git"));
        assert!(std::fs::symlink_metadata(ws.join(".git")).is_err());
        assert!(move_aside(&ws, Path::new("../victim/.git/config")).is_err(), "`..` is refused");
        assert_eq!(std::fs::read_to_string(victim.join(".git/config")).unwrap(), "victim");
    }

    #[test]
    fn an_existing_name_is_never_replaced_and_a_long_name_is_shortened() {
        let dir = tempfile::tempdir().unwrap();
        let root = open_root(dir.path()).unwrap();
        let long = "x".repeat(250);
        std::fs::write(dir.path().join(&long), "a").unwrap();
        let to = move_aside_at(root.as_fd(), OsStr::new(&long)).unwrap();
        assert!(to.len() <= NAME_MAX && to.to_string_lossy().contains(".paddock-moved-"), "{to:?}");
        std::fs::write(dir.path().join(&long), "b").unwrap();
        let to2 = move_aside_at(root.as_fd(), OsStr::new(&long)).unwrap();
        assert_ne!(to, to2);
        assert_eq!(std::fs::read_to_string(dir.path().join(&to)).unwrap(), "a");
        assert_eq!(std::fs::read_to_string(dir.path().join(&to2)).unwrap(), "b");
    }

    #[test]
    fn names_a_call_could_foresee_do_not_keep_its_file_in_place() {
        // Found by an attack: a call made every name of the next seconds (this process's
        // pid is in them), `-1` to `-99` included, so the move failed and `.envrc` stayed.
        let dir = tempfile::tempdir().unwrap();
        let root = open_root(dir.path()).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        for secs in now..now + 30 {
            let base = format!(".envrc{MOVED_MARK}{secs}-{}", std::process::id());
            std::fs::write(dir.path().join(&base), "").unwrap();
            for n in 1..100 {
                std::fs::write(dir.path().join(format!("{base}-{n}")), "").unwrap();
            }
        }
        std::fs::write(dir.path().join(".envrc"), "planted").unwrap();
        let to = move_aside_at(root.as_fd(), OsStr::new(".envrc")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(&to)).unwrap(), "planted");
        assert!(!dir.path().join(".envrc").exists());
    }

    #[test]
    fn a_read_only_parent_of_ones_own_is_opened_for_the_move_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir(&git).unwrap();
        std::fs::write(git.join("config"), "planted").unwrap();
        std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o555)).unwrap();
        let to = move_aside(dir.path(), &git.join("config")).unwrap();
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "planted");
        assert_eq!(std::fs::metadata(&git).unwrap().permissions().mode() & 0o7777, 0o555, "mode restored");
        std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
