//! The git directories that `.git` files in the workspace name.
//!
//! A `.git` may be a file holding `gitdir: PATH` (a bare repository with worktrees,
//! `echo "gitdir: ./.bare" > .git`; a linked worktree; a submodule checkout). Git obeys
//! the config and hooks of the directory it names, which the protect rules written for
//! `.git/config` and `.git/hooks` do not cover when that directory is called anything but
//! `.git`. So for every protect rule that names something inside a `.git` whose part
//! before `/.git/` is literal (the workspace's own `.git`), a `.git` file found there
//! when the policy is compiled is protected itself, and gives the directory it names the
//! protection of a `.git` directory: its `config`, `config.worktree`, `hooks` and
//! `commondir`, its submodules' and linked worktrees' (`modules/**`, `worktrees/*`), and,
//! when it has a `commondir`, the common directory's `config` and `hooks`. Only directories inside a
//! write path count (nothing else is writable). A `.git` file the call makes itself, and
//! one in a subdirectory of the workspace, are not looked for: documented limits.

use std::io::Read;
use std::path::{Path, PathBuf};

/// At most this many bytes of a `.git` or `commondir` file are read (git's own are one
/// short line).
const MAX_READ: u64 = 4096;

/// What in a git directory is protected, as in a `.git` directory.
const IN_GITDIR: [&str; 4] = ["config", "config.worktree", "hooks", "commondir"];
/// The same, as patterns: its submodules' and its linked worktrees' (and theirs).
const IN_GITDIR_GLOBS: [&str; 8] = [
    "modules/**/config",
    "modules/**/hooks",
    "modules/**/config.worktree",
    "modules/**/commondir",
    "worktrees/*/config*",
    "worktrees/*/modules/**/config",
    "worktrees/*/modules/**/hooks",
    "worktrees/*/modules/**/config.worktree",
];
/// What in a common directory is protected.
const IN_COMMONDIR: [&str; 2] = ["config", "hooks"];

/// Where to look for `.git` files: the literal part of each protect pattern before a
/// `/.git/` component (`has_glob`: whether text is a pattern), as a `.git` path (`/ws/.git`
/// for `/ws/.git/config`). Patterns whose
/// part before `/.git/` holds a glob (`/ws/**/.git/config`) are skipped: finding every
/// `.git` file beneath a workspace would walk it whole at every policy load.
pub(crate) fn places(patterns: &[&str], has_glob: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in patterns {
        let Some(i) = p.find("/.git/") else { continue };
        let before = &p[..i];
        if !has_glob(before) {
            push_new(&mut files, Path::new(before).join(".git"));
        }
    }
    files
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, p: T) {
    if !v.contains(&p) {
        v.push(p);
    }
}

/// One protect entry a `.git` file gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A path, taken literally whatever characters it holds (as named: the links and `..`
    /// on its way are noted as the user's).
    Path(PathBuf),
    /// A glob: a normalised directory, escaped, then a pattern beneath it.
    Glob(String),
}

/// The protect entries for the `.git` files at `files`, each inside one of `writable`
/// (already normalised); `normalize` resolves a path as the policy does. The entries named
/// from the `.git` file are given wherever they lead (where that is not writable, the
/// protection costs nothing, and the way there, which may be, is still the user's); the
/// globs beneath a directory only where it is writable.
pub(crate) fn protected(
    files: &[PathBuf],
    writable: &dyn Fn(&Path) -> bool,
    normalize: &mut dyn FnMut(&Path) -> PathBuf,
) -> Vec<Entry> {
    let found: Vec<PathBuf> = files.iter().filter(|f| writable(f)).cloned().collect();
    let mut out = Vec::new();
    for file in found {
        // Each file read is looked up on the way there too, so the lookups name every path
        // the outcome depends on (`FsRules::drift_traced`).
        normalize(&file);
        let Some((named, dir)) = named_dir(&file, normalize) else { continue };
        // The `.git` file itself: moved or rewritten by a call, the next call's policy
        // would not find the directory it names (nor protect it).
        push_new(&mut out, Entry::Path(file.clone()));
        // As the file names it (a symlink on the way, `gitdir: ./bare` with `bare` a link,
        // is then noted and kept as the user's link; the view binds its target).
        for n in IN_GITDIR {
            push_new(&mut out, Entry::Path(named.join(n)));
        }
        // Its submodules' and linked worktrees', as `**/.git/modules/**/config` and the
        // rest protect a `.git` directory's.
        globs_beneath(&mut out, &dir, writable);
        normalize(&dir.join("commondir"));
        let Some(line) = read_line(&dir.join("commondir")) else { continue };
        // Git reads it against the git directory; as named from there (`../shared`, a
        // symlink on the way, is then noted and kept as the user's link; so is a
        // directory it leaves by `..`), protected where it leads.
        let common = named.join(line);
        for n in IN_COMMONDIR {
            push_new(&mut out, Entry::Path(common.join(n)));
        }
        // The common directory holds the other worktrees and the submodules too.
        globs_beneath(&mut out, &normalize(&common), writable);
    }
    out
}

/// [`IN_GITDIR_GLOBS`] beneath `dir` (normalised), its path escaped, when it is writable.
fn globs_beneath(out: &mut Vec<Entry>, dir: &Path, writable: &dyn Fn(&Path) -> bool) {
    if !writable(dir) {
        return;
    }
    let base = paddock_globs::escape(&dir.to_string_lossy());
    for g in IN_GITDIR_GLOBS {
        push_new(out, Entry::Glob(format!("{}/{g}", base.trim_end_matches('/'))));
    }
}

/// The directory a `.git` file at `file` names, as it names it and normalised; `None`
/// when `file` is not a regular file (or a symlink to one, which git follows) holding
/// `gitdir: PATH`.
fn named_dir(file: &Path, normalize: &mut dyn FnMut(&Path) -> PathBuf) -> Option<(PathBuf, PathBuf)> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    let text = read_head(file)?;
    let rest = text.strip_prefix("gitdir:")?.trim();
    let named = file.parent()?.join(rest);
    let dir = normalize(&named);
    Some((named, dir))
}

/// The path a one-line file at `file` holds (`commondir`), as written; `None` when there
/// is no such regular file or its first line is empty.
fn read_line(file: &Path) -> Option<PathBuf> {
    if !std::fs::symlink_metadata(file).ok()?.is_file() {
        return None;
    }
    let text = read_head(file)?;
    let line = text.lines().next()?.trim_end();
    if line.is_empty() {
        return None;
    }
    Some(PathBuf::from(line))
}

/// The first [`MAX_READ`] bytes of `file` as text, when they are UTF-8.
fn read_head(file: &Path) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(file).ok()?.take(MAX_READ).read_to_end(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &Path) -> PathBuf {
        std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
    }

    fn has_glob(s: &str) -> bool {
        s.contains(['*', '?', '[', ']', '{', '}'])
    }

    #[test]
    fn places_are_the_literal_part_before_dot_git() {
        let files = places(
            &[
                "/ws/.git/config",
                "/ws/.git/hooks",
                "/ws/**/.git/config",
                "/ws/.git/modules/**/config",
                "/ws/.envrc",
                "/w*/.git/config",
            ],
            &has_glob,
        );
        assert_eq!(files, vec![PathBuf::from("/ws/.git")], "the workspace's own `.git` only");
    }

    fn paths(got: &[Entry]) -> Vec<PathBuf> {
        got.iter().filter_map(|e| if let Entry::Path(p) = e { Some(p.clone()) } else { None }).collect()
    }

    fn globs(got: &[Entry]) -> Vec<String> {
        got.iter().filter_map(|e| if let Entry::Glob(g) = e { Some(g.clone()) } else { None }).collect()
    }

    #[test]
    fn a_gitfile_inside_the_workspace_gives_its_dir_and_common_dir_protection() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = norm(tmp.path());
        std::fs::create_dir_all(ws.join(".bare/worktrees/main")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ./.bare\n").unwrap();
        std::fs::create_dir_all(ws.join("main")).unwrap();
        std::fs::write(ws.join("main/.git"), format!("gitdir: {}\n", ws.join(".bare/worktrees/main").display()))
            .unwrap();
        std::fs::write(ws.join(".bare/worktrees/main/commondir"), "../..\n").unwrap();
        let inside = |p: &Path| p.starts_with(&ws);
        let got = protected(&[ws.join(".git")], &inside, &mut |p| norm(p));
        let want: Vec<PathBuf> =
            [".git", "./.bare/config", "./.bare/config.worktree", "./.bare/hooks", "./.bare/commondir"]
                .iter()
                .map(|s| ws.join(s))
                .collect();
        assert_eq!(paths(&got), want);
        let want: Vec<String> = IN_GITDIR_GLOBS.iter().map(|g| format!("{}/{g}", ws.join(".bare").display())).collect();
        assert_eq!(globs(&got), want);
        assert!(
            IN_GITDIR_GLOBS.contains(&"modules/**/hooks") && IN_GITDIR_GLOBS.contains(&"worktrees/*/modules/**/config")
        );
    }

    /// Found by attacks: `wt/commondir` = `../shared`, `shared -> bare-v2`. The common
    /// directory's entries are protected as named from the git directory (the links and
    /// `..` on the way are then the user's), wherever they lead; its submodules' and other
    /// worktrees' too, where it is writable.
    #[test]
    fn a_commondir_is_protected_as_named() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = norm(tmp.path());
        std::fs::create_dir_all(ws.join("bare-v2")).unwrap();
        std::fs::create_dir_all(ws.join("wt")).unwrap();
        std::os::unix::fs::symlink("bare-v2", ws.join("shared")).unwrap();
        std::fs::write(ws.join("wt/commondir"), "../shared\n").unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ./wt\n").unwrap();
        let inside = |p: &Path| p.starts_with(&ws);
        let got = protected(&[ws.join(".git")], &inside, &mut |p| norm(p));
        let common = ws.join("./wt/../shared");
        let p = paths(&got);
        assert_eq!(&p[p.len() - 2..], [common.join("config"), common.join("hooks")]);
        assert_eq!(norm(&common), ws.join("bare-v2"));
        assert!(globs(&got).contains(&format!("{}/worktrees/*/modules/**/config", ws.join("bare-v2").display())));
        // Leading out of the write paths: still named (the way there is the user's), no globs.
        std::fs::write(ws.join("wt/commondir"), "/elsewhere\n").unwrap();
        let got = protected(&[ws.join(".git")], &inside, &mut |p| norm(p));
        assert!(paths(&got).contains(&PathBuf::from("/elsewhere/config")), "{got:?}");
        assert!(globs(&got).iter().all(|g| g.starts_with(&ws.join("wt").display().to_string())), "{got:?}");
    }

    /// Found by an attack: a directory named `b[1]` got no protection (its path was taken
    /// as a pattern).
    #[test]
    fn glob_characters_in_a_gitdir_are_literal() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = norm(tmp.path());
        std::fs::create_dir_all(ws.join("b[1]")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ./b[1]\n").unwrap();
        let got = protected(&[ws.join(".git")], &|p: &Path| p.starts_with(&ws), &mut |p| norm(p));
        assert!(paths(&got).contains(&ws.join("./b[1]/config")));
        let g = globs(&got);
        assert!(
            g.contains(&format!("{}/modules/**/config", paddock_globs::escape(&ws.join("b[1]").to_string_lossy()))),
            "{g:?}"
        );
    }

    #[test]
    fn a_gitdir_outside_the_write_paths_or_not_a_gitfile_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = norm(tmp.path());
        std::fs::create_dir_all(ws.join("a")).unwrap();
        std::fs::write(ws.join("a/.git"), "gitdir: /elsewhere/repo\n").unwrap();
        std::fs::create_dir_all(ws.join("b/.git")).unwrap();
        std::fs::write(ws.join("c"), "gitdir: ./x\n").unwrap();
        std::fs::create_dir_all(ws.join("d")).unwrap();
        std::fs::write(ws.join("d/.git"), "not a gitfile\n").unwrap();
        let inside = |p: &Path| p.starts_with(&ws);
        for f in ["b/.git", "d/.git", ".git"] {
            assert!(protected(&[ws.join(f)], &inside, &mut |p| norm(p)).is_empty(), "{f}");
        }
        // A gitfile naming a directory outside the write paths: the file itself (a call could
        // point it at a directory of its own) and the entries as named (the way there may be
        // the workspace's), no globs.
        let got = protected(&[ws.join("a/.git")], &inside, &mut |p| norm(p));
        assert_eq!(paths(&got)[..2], [ws.join("a/.git"), PathBuf::from("/elsewhere/repo/config")]);
        assert!(globs(&got).is_empty());
        // Nothing is looked at outside the write paths.
        assert!(protected(&[ws.join("a/.git")], &|_: &Path| false, &mut |p| norm(p)).is_empty());
    }
}
