//! The git directories that `.git` files in the workspace name.
//!
//! A `.git` may be a file holding `gitdir: PATH` (a bare repository with worktrees,
//! `echo "gitdir: ./.bare" > .git`; a linked worktree; a submodule checkout). Git obeys
//! the config and hooks of the directory it names, which the protect rules written for
//! `.git/config` and `.git/hooks` do not cover when that directory is called anything but
//! `.git`. So for every protect rule that names something inside a `.git` (its part
//! before `/.git/` literal, or a literal followed by `/**`), each `.git` file found there
//! when the policy is compiled gives the directory it names the protection of a `.git`
//! directory: its `config`, `config.worktree`, `hooks` and `commondir`, and, when it has
//! a `commondir`, the common directory's `config` and `hooks`. Only directories inside a
//! write path count (nothing else is writable). A `.git` file the call makes itself is not
//! seen: that is a documented limit.

use std::io::Read;
use std::path::{Path, PathBuf};

/// At most this many bytes of a `.git` or `commondir` file are read (git's own are one
/// short line).
const MAX_READ: u64 = 4096;

/// At most this many directory entries are looked at while looking for `.git` files
/// beneath a `**` rule's prefix; past it the rest is not looked at (with a warning).
const MAX_ENTRIES: usize = 200_000;

/// What in a git directory is protected, as in a `.git` directory.
const IN_GITDIR: [&str; 4] = ["config", "config.worktree", "hooks", "commondir"];
/// What in a common directory is protected.
const IN_COMMONDIR: [&str; 2] = ["config", "hooks"];

/// Where to look for `.git` files: the literal part of each protect pattern before a
/// `/.git/` component, as a `.git` path (`/ws/.git`) or as a directory to search
/// (`/ws` for `/ws/**/.git/config`). Patterns of any other shape are skipped.
pub(crate) fn places(patterns: &[&str]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut files, mut trees) = (Vec::new(), Vec::new());
    for p in patterns {
        let Some(i) = p.find("/.git/") else { continue };
        let before = &p[..i];
        if !super::paths::has_glob_meta(before) {
            push_new(&mut files, Path::new(before).join(".git"));
        } else if let Some(root) = before.strip_suffix("/**") {
            if !root.is_empty() && !super::paths::has_glob_meta(root) {
                push_new(&mut trees, PathBuf::from(root));
            }
        }
    }
    (files, trees)
}

fn push_new(v: &mut Vec<PathBuf>, p: PathBuf) {
    if !v.contains(&p) {
        v.push(p);
    }
}

/// The paths to protect for the `.git` files at `files` and beneath `trees`, each inside
/// one of `writable` (already normalised); `normalize` resolves a path as the policy does.
pub(crate) fn protected(
    files: &[PathBuf],
    trees: &[PathBuf],
    writable: &dyn Fn(&Path) -> bool,
    normalize: &mut dyn FnMut(&Path) -> PathBuf,
) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = files.iter().filter(|f| writable(f)).cloned().collect();
    for t in trees.iter().filter(|t| writable(t)) {
        find_gitfiles(t, &mut found);
    }
    let mut out = Vec::new();
    for file in found {
        let Some(dir) = named_dir(&file, normalize) else { continue };
        if writable(&dir) {
            for n in IN_GITDIR {
                push_new(&mut out, dir.join(n));
            }
        }
        let Some(common) = read_path(&dir.join("commondir"), &dir, normalize) else { continue };
        if writable(&common) {
            for n in IN_COMMONDIR {
                push_new(&mut out, common.join(n));
            }
        }
    }
    out
}

/// The directory a `.git` file at `file` names, normalised; `None` when `file` is not a
/// regular file holding `gitdir: PATH`.
fn named_dir(file: &Path, normalize: &mut dyn FnMut(&Path) -> PathBuf) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    let text = read_head(file)?;
    let rest = text.strip_prefix("gitdir:")?.trim();
    let base = file.parent()?;
    Some(normalize(&base.join(rest)))
}

/// The path a one-line file at `file` holds (`commondir`), resolved against `base` as git
/// does; `None` when there is no such regular file.
fn read_path(file: &Path, base: &Path, normalize: &mut dyn FnMut(&Path) -> PathBuf) -> Option<PathBuf> {
    if !std::fs::symlink_metadata(file).ok()?.is_file() {
        return None;
    }
    let text = read_head(file)?;
    let line = text.lines().next()?.trim_end();
    if line.is_empty() {
        return None;
    }
    Some(normalize(&base.join(line)))
}

/// The first [`MAX_READ`] bytes of `file` as text, when they are UTF-8.
fn read_head(file: &Path) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(file).ok()?.take(MAX_READ).read_to_end(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// Adds the `.git` regular files beneath `root` (at any depth, not under a `.git`
/// directory, not through a symlink) to `found`, looking at [`MAX_ENTRIES`] entries at
/// most.
fn find_gitfiles(root: &Path, found: &mut Vec<PathBuf>) {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                tracing::warn!(
                    "more than {MAX_ENTRIES} entries beneath {}: `.git` files past them are not looked for",
                    root.display()
                );
                return;
            }
            let Ok(ft) = e.file_type() else { continue };
            let is_git = e.file_name() == ".git";
            if ft.is_dir() && !is_git {
                stack.push(e.path());
            } else if ft.is_file() && is_git {
                push_new(found, e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &Path) -> PathBuf {
        crate::paths::normalize(p, Path::new("/"))
    }

    #[test]
    fn places_are_the_literal_part_before_dot_git() {
        let (files, trees) = places(&[
            "/ws/.git/config",
            "/ws/.git/hooks",
            "/ws/**/.git/config",
            "/ws/.git/modules/**/config",
            "/ws/.envrc",
            "/w*/.git/config",
        ]);
        assert_eq!(files, vec![PathBuf::from("/ws/.git")]);
        assert_eq!(trees, vec![PathBuf::from("/ws")]);
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
        let got = protected(&[ws.join(".git")], std::slice::from_ref(&ws), &inside, &mut |p| norm(p));
        let want: Vec<PathBuf> = [
            ".bare/config",
            ".bare/config.worktree",
            ".bare/hooks",
            ".bare/commondir",
            ".bare/worktrees/main/config",
            ".bare/worktrees/main/config.worktree",
            ".bare/worktrees/main/hooks",
            ".bare/worktrees/main/commondir",
        ]
        .iter()
        .map(|s| ws.join(s))
        .collect();
        assert_eq!(got, want);
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
        assert!(protected(&[ws.join(".git")], std::slice::from_ref(&ws), &inside, &mut |p| norm(p)).is_empty());
        // Nothing is looked at outside the write paths.
        assert!(protected(&[ws.join("a/.git")], &[], &|_: &Path| false, &mut |p| norm(p)).is_empty());
    }
}
