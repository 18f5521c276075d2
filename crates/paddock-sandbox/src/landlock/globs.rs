//! Without a mount view: the matches of the deny and protect globs that exist when the
//! ruleset is made, found by a walk of the host's grants beneath each rule's literal
//! prefix, so that Landlock leaves them out (a deny match) or grants them read only (a
//! protect match) as the view would mask or bind them. Landlock's rules hold the inodes
//! they were made on: what matches later, by a new name or a rename, is not covered (the
//! scan after the call still moves a new match aside), and nothing here hides a unix
//! socket (Landlock does not govern `connect`). Until 2026-12-05 the globs were not looked
//! at without a view: a best-effort run read `**/*.pem` and rewrote `.git/config`.

use std::path::{Path, PathBuf};

use crate::spec::PathPlan;
use crate::view::plan::{Rules, Verdict};

/// What the walk found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Found {
    /// Matches of a deny glob: left out of every rule.
    pub denied: Vec<PathBuf>,
    /// Matches of a protect glob: granted read only.
    pub protected: Vec<PathBuf>,
    /// Directories that could not be listed, where a match may hide, and why.
    pub unlisted: Vec<(PathBuf, String)>,
}

/// The matches of `plan`'s globs beneath its read and write paths, now.
pub(super) fn found(plan: &PathPlan) -> Found {
    let mut out = Found::default();
    if plan.deny_globs.is_empty() && plan.protect_globs.is_empty() {
        return out;
    }
    let rules = match Rules::new(&PathPlan { denies: Vec::new(), ..plan.clone() }) {
        Ok(r) => r,
        Err(e) => {
            out.unlisted.push((PathBuf::from("/"), e.to_string()));
            return out;
        }
    };
    for root in plan.reads.iter().chain(&plan.writes) {
        match rules.root_verdict(root) {
            Verdict::Mask => out.denied.push(root.clone()),
            Verdict::Protect => out.protected.push(root.clone()),
            Verdict::Keep if rules.relevant(root) => walk(&rules, root, &mut out),
            Verdict::Keep => {}
        }
    }
    for list in [&mut out.denied, &mut out.protected] {
        list.sort();
        list.dedup();
    }
    out
}

/// Walks `dir` (a directory, not followed if a symlink) where a rule can match beneath it.
fn walk(rules: &Rules, dir: &Path, out: &mut Found) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return,
        Err(e) => {
            out.unlisted.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.unlisted.push((dir.to_path_buf(), e.to_string()));
                return;
            }
        };
        let path = entry.path();
        match rules.verdict(&path) {
            Verdict::Mask => out.denied.push(path),
            Verdict::Protect => out.protected.push(path),
            Verdict::Keep => {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && rules.relevant(&path) {
                    walk(rules, &path, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_beneath_the_grants_are_found_and_nothing_else() {
        let scratch = crate::scratch::Scratch::new("landlock-globs");
        let d = scratch.path();
        let ws = d.join("ws");
        for dir in ["a/b", ".git/hooks", "other"] {
            std::fs::create_dir_all(ws.join(dir)).unwrap();
        }
        for f in ["a/b/k.pem", "a/x.txt", ".git/config", ".git/hooks/pre-commit"] {
            std::fs::write(ws.join(f), "x").unwrap();
        }
        std::fs::write(d.join("outside.pem"), "x").unwrap();
        let g = |s: &str| format!("{}/{s}", ws.display());
        let plan = PathPlan {
            writes: vec![ws.clone()],
            deny_globs: vec![g("**/*.pem")],
            protect_globs: vec![g(".git/config"), g(".git/hooks")],
            ..PathPlan::default()
        };
        let f = found(&plan);
        assert_eq!(f.denied, [ws.join("a/b/k.pem")]);
        assert_eq!(f.protected, [ws.join(".git/config"), ws.join(".git/hooks")]);
        assert!(f.unlisted.is_empty(), "{:?}", f.unlisted);
    }
}
