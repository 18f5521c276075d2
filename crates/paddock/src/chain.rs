//! The symlinks a path's resolution passes through. A literal `deny` or `protect` path is
//! resolved when the policy loads, and the view masks or binds where it leads; a symlink
//! on the way (`.claude/settings.json` → `../cfg/link2` → `../real.json`, or a directory
//! `shared` → `config-v2`) is left as it is by the view, so a call under a write grant
//! could replace any of them and re-point the rule's name at a file of its own.
//! [`crate::absent`] notes each of them as the user's and makes it again after the call.
//!
//! So is every directory the resolution enters and then leaves by `..` (`gitdir:
//! sub/../.bare`, a link to `x/../real`): the kernel takes `..` from where `sub` leads on
//! disk, so a call that put a symlink of its own in place of `sub` would re-point the name
//! with no symlink of the user's changed. Each is noted as the directory it was, and one
//! the call replaced is moved aside after it (the name then leads nowhere).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The kernel's bound on symlinks followed in one resolution (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// [`Lookups::way`] with lookups of its own.
#[cfg(test)]
fn way(path: &Path) -> Way {
    Lookups::default().way(path)
}

/// [`Lookups::way`]'s links alone.
#[cfg(test)]
fn links_on_the_way(path: &Path) -> Vec<PathBuf> {
    way(path).links
}

/// What resolving a path depends on besides the directories of its resolved form.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Way {
    /// Each symlink passed through, in the order met, each once.
    pub(crate) links: Vec<PathBuf>,
    /// Each directory entered and then left by `..`, by its resolved path, in the order
    /// met, each once: `x` of `x/../real`.
    pub(crate) left: Vec<PathBuf>,
}

/// What one `lstat` (and `readlink`) of a path said: `None` when it cannot be looked at
/// (absent, or its symlink unreadable), else its target when it is a symlink.
type Looked = Option<Option<PathBuf>>;

/// The lookups of one batch of walks: a policy's deny and protect paths share most of
/// their directories (`$HOME`, `/etc`, the workspace), each looked up once per batch.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    seen: std::collections::HashMap<PathBuf, Looked>,
}

impl Lookups {
    /// Every path this batch looked up.
    pub(crate) fn into_looked(self) -> impl Iterator<Item = PathBuf> {
        self.seen.into_keys()
    }

    fn look(&mut self, path: &Path) -> Looked {
        if let Some(l) = self.seen.get(path) {
            return l.clone();
        }
        let looked = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(path).ok().map(Some),
            Ok(_) => Some(None),
            Err(_) => None,
        };
        self.seen.insert(path.to_path_buf(), looked.clone());
        looked
    }

    /// Each symlink that resolving the absolute path `path` passes through, at every
    /// level of a chain (a symlink whose target holds another), named by its own path
    /// with the directories before it resolved; in the order met, each once, at most
    /// [`MAX_LINKS`] followed; and each directory it leaves by `..` ([`Way::left`]). The
    /// walk stops where a component is absent or cannot be looked at. What this batch
    /// looked up before is not looked up again.
    pub(crate) fn way(&mut self, path: &Path) -> Way {
        let mut links: Vec<PathBuf> = Vec::new();
        let mut left: Vec<PathBuf> = Vec::new();
        let mut followed = 0;
        // What is left to resolve, the next component last.
        let mut todo: Vec<OsString> = Vec::new();
        push_components(&mut todo, path);
        let mut at = PathBuf::from("/");
        while let Some(name) = todo.pop() {
            if name == ".." {
                // `at` is a directory (every name of it was looked at), the root aside.
                if at.parent().is_some() && !left.contains(&at) {
                    left.push(at.clone());
                }
                at.pop();
                continue;
            }
            let next = at.join(&name);
            let Some(looked) = self.look(&next) else { break };
            let Some(target) = looked else {
                at = next;
                continue;
            };
            followed += 1;
            if followed > MAX_LINKS {
                break; // a loop, or a chain the kernel would refuse (ELOOP)
            }
            if !links.contains(&next) {
                links.push(next);
            }
            if target.is_absolute() {
                at = PathBuf::from("/");
            }
            push_components(&mut todo, &target);
        }
        Way { links, left }
    }
}

/// Pushes the names of `path` (`..` kept, `.` and the root dropped) onto `todo`, the
/// first last.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(names.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The attack's two shapes: a link whose target is another link, and a link whose
    /// target runs through a directory symlink.
    #[test]
    fn every_link_of_a_chain_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        std::fs::create_dir_all(ws.join("cfg")).unwrap();
        std::fs::write(ws.join("real.json"), "{}").unwrap();
        symlink("../real.json", ws.join("cfg/link2")).unwrap();
        symlink("../cfg/link2", ws.join(".claude/settings.json")).unwrap();
        assert_eq!(
            links_on_the_way(&ws.join(".claude/settings.json")),
            [ws.join(".claude/settings.json"), ws.join("cfg/link2")]
        );

        std::fs::create_dir_all(ws.join(".vscode")).unwrap();
        std::fs::create_dir_all(ws.join("config-v2")).unwrap();
        std::fs::write(ws.join("config-v2/settings.json"), "{}").unwrap();
        symlink("config-v2", ws.join("shared")).unwrap();
        symlink("../shared/settings.json", ws.join(".vscode/settings.json")).unwrap();
        assert_eq!(
            links_on_the_way(&ws.join(".vscode/settings.json")),
            [ws.join(".vscode/settings.json"), ws.join("shared")]
        );

        // An absolute target, a directory symlink first on the way, and a dangling end.
        symlink(ws.join(".claude"), ws.join("c")).unwrap();
        symlink("/nonexistent/x", ws.join("cfg/gone")).unwrap();
        symlink(ws.join("cfg/gone"), ws.join(".claude/local.json")).unwrap();
        assert_eq!(
            links_on_the_way(&ws.join("c/local.json")),
            [ws.join("c"), ws.join(".claude/local.json"), ws.join("cfg/gone")]
        );
        // No symlink: nothing.
        assert!(links_on_the_way(&ws.join("real.json")).is_empty());
    }

    /// Found by an attack: `x/../real` with `x` a real directory: the kernel takes `..`
    /// from where `x` leads, so `x` is part of the way (left), as is a link's own directory
    /// its target leaves, and a link's target it leaves; the root is not.
    #[test]
    fn the_directories_left_by_dotdot_are_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap();
        for d in [".claude", "x", "cfg", "real/inner"] {
            std::fs::create_dir_all(ws.join(d)).unwrap();
        }
        std::fs::write(ws.join("cfg/real.json"), "{}").unwrap();
        symlink("../x/../cfg/real.json", ws.join(".claude/settings.json")).unwrap();
        let w = way(&ws.join(".claude/settings.json"));
        assert_eq!(w.links, [ws.join(".claude/settings.json")]);
        assert_eq!(w.left, [ws.join(".claude"), ws.join("x")]);
        // Written in the path itself, and through a directory symlink (`in` leads to
        // `real/inner`: `..` leaves `real/inner`, not the link).
        assert_eq!(way(&ws.join("x/../cfg/real.json")).left, [ws.join("x")]);
        symlink("real/inner", ws.join("in")).unwrap();
        let w = way(&ws.join("in/../inner/../../x/../cfg"));
        let left = vec![ws.join("real/inner"), ws.join("real"), ws.join("x")];
        assert_eq!((w.links, w.left), (vec![ws.join("in")], left), "each once");
        // Where the walk stops (absent `real/x`), so do the directories left.
        assert_eq!(way(&ws.join("in/../x/../cfg")).left, [ws.join("real/inner")]);
        assert!(way(Path::new("/../..")).left.is_empty(), "the root is not left");
        assert!(way(&ws.join("cfg/real.json")).left.is_empty());
    }

    #[test]
    fn a_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap();
        symlink("b", ws.join("a")).unwrap();
        symlink("a", ws.join("b")).unwrap();
        assert_eq!(links_on_the_way(&ws.join("a/x")), [ws.join("a"), ws.join("b")]);
    }

    #[test]
    fn one_batch_looks_each_directory_up_once_and_answers_as_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(ws.join("real")).unwrap();
        std::os::unix::fs::symlink("real", ws.join("cfg")).unwrap();
        std::os::unix::fs::symlink("../cfg/x", ws.join("real/y")).unwrap();
        let mut batch = Lookups::default();
        for p in ["cfg/a", "cfg/y", "real/y", "missing/z", "cfg/y"] {
            assert_eq!(batch.way(&ws.join(p)), way(&ws.join(p)), "{p}");
        }
        assert_eq!(batch.way(&ws.join("real/y")).links, [ws.join("real/y"), ws.join("cfg")]);
        // Each directory of the way once: `/`'s children down to the workspace, and its own.
        let depth = ws.components().count() - 1;
        assert_eq!(batch.seen.len(), depth + 6, "{:?}", batch.seen.keys());
    }
}
