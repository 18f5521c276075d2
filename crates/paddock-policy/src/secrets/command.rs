//! What a `command:` source runs, against the write grants. The supervisor runs it outside
//! the sandbox, with the user's rights: a program, script or `PATH` directory it uses that
//! a call can write would let the call run code of its own there, unconfined (found by an
//! attack: `command:/home/u/proj/get-token.sh` in the workspace, rewritten by the call, ran
//! on the next refresh). Read as shell words: the first word and each word after `|`,
//! `&&`, `||` or `;` is a program, found on `PATH` when it has no `/` (relative to `/`,
//! where the command runs, when it has one); every word, or part after `=`, `<` or `>`,
//! that starts at `/` or the home (`python3 /ws/tok.py`, `--config=/ws/c`, `</ws/x`,
//! `~/ws`: `~/`, `$HOME/` and `${HOME}/` expanded) is a path. This only explains a mistake
//! early: what the command does is kept away from the write grants by the kernel when it
//! runs (Landlock, applied by the supervisor: `paddock_sandbox::Away`). What a script reads on its own, or a word built at run time
//! (`$(...)`, another `$VAR`), is not seen: what the command names beyond these is the
//! user's to trust.

use std::path::{Path, PathBuf};

use crate::paths::FsRules;

/// The words after which a program is named.
const SEPARATORS: [&str; 6] = ["|", "||", "&&", ";", "&", "!"];

/// The first path `cmd` runs or names that a call could write, with the rule granting it;
/// `Err` when `cmd` cannot be read as shell words.
pub(crate) fn writable_use(
    cmd: &str,
    path_var: &str,
    home: Option<&Path>,
    fs: &FsRules,
) -> Result<Option<(PathBuf, String)>, String> {
    let words = shell_words::split(cmd).map_err(|e| e.to_string())?;
    let writable = |p: &Path| {
        // `~`, `$HOME` and `${HOME}` as the shell expands them at a word's start.
        let text = p.to_string_lossy();
        let rest = ["~/", "$HOME/", "${HOME}/"].iter().find_map(|pre| text.strip_prefix(pre));
        let expanded = match (rest, home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => p.to_path_buf(),
        };
        let p = crate::paths::normalize(&expanded, Path::new("/"));
        let d = fs.decide_write(&p);
        d.is_allow().then(|| (p, d.rule.to_string()))
    };
    let mut program_next = true;
    for w in &words {
        if SEPARATORS.contains(&w.as_str()) {
            program_next = true;
            continue;
        }
        let is_program = std::mem::replace(&mut program_next, false);
        // `VAR=value` before the program: the value is looked at, the next word is the program.
        if is_program && !w.contains('/') && w.split_once('=').is_some_and(|(k, _)| !k.is_empty()) {
            program_next = true;
        }
        if is_program && !w.contains('/') && !w.contains('=') {
            // Each `PATH` directory up to the one holding it: a call could put a program of
            // that name in any of them first.
            for dir in path_var.split(':').filter(|d| !d.is_empty()) {
                let dir = Path::new(dir);
                if let Some(found) = writable(dir) {
                    return Ok(Some(found));
                }
                let candidate = dir.join(w);
                if candidate.is_file() {
                    if let Some(found) = writable(&candidate) {
                        return Ok(Some(found));
                    }
                    break;
                }
            }
            continue;
        }
        // Paths from the root or the home: an item name with a `/` (`pass show tmp/github`)
        // is no path (the command itself is kept away from the write grants when it runs).
        let rooted = |p: &&str| ["/", "~/", "$HOME/", "${HOME}/"].iter().any(|pre| p.starts_with(pre));
        for part in w.split(['=', '<', '>']).filter(rooted) {
            if let Some(found) = writable(Path::new(part)) {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(ws: &Path) -> FsRules {
        let text = format!("version = 1\n[filesystem]\nwrite = [{:?}]\n", ws.to_str().unwrap());
        let vars = crate::Vars { workspace: ws.into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        crate::Policy::from_toml_str("p.toml", &text, &vars).unwrap().filesystem
    }

    #[test]
    fn programs_paths_and_path_directories_a_call_can_write_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("tok"), "").unwrap();
        std::fs::write(ws.join("tok"), "").unwrap();
        let fs = fs(&ws);
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let ws_path = format!("{}:{}", ws.display(), bin.display());
        let hit =
            |cmd: &str, path_var: &str| writable_use(cmd, path_var, Some(dir.path()), &fs).unwrap().map(|(p, _)| p);
        // A program or script in the workspace, however named.
        assert_eq!(hit(&format!("{}/tok", ws.display()), &path), Some(ws.join("tok")));
        assert_eq!(hit(&format!("python3 {}/tok --x", ws.display()), &path), Some(ws.join("tok")));
        assert_eq!(hit(&format!("tok --config={}/c", ws.display()), &path), Some(ws.join("c")));
        assert_eq!(hit(&format!("cat <{}/t | tok", ws.display()), &path), Some(ws.join("t")));
        assert_eq!(hit(&format!("true && X=1 {}/tok", ws.display()), &path), Some(ws.join("tok")));
        // The home's `~`, as the shell expands it (`cd ~/ws && make` runs the call's Makefile).
        assert_eq!(hit("cd ~/ws && make", &path), Some(ws.clone()));
        assert_eq!(hit("sh ${HOME}/ws/tok", &path), Some(ws.join("tok")));
        // A PATH directory the call can write, before the program's own.
        assert_eq!(hit("tok", &ws_path), Some(ws.clone()));
        // Nothing writable: the program found in `bin`, system programs, plain words.
        assert_eq!(hit("tok --user me", &path), None);
        assert_eq!(hit("gh auth token", &path), None);
        assert_eq!(hit("printf %s abc", &path), None);
        // An item name with a `/` is no path.
        assert_eq!(hit("tok show ws/tok", &path), None);
        assert!(writable_use("echo 'unterminated", &path, None, &fs).is_err());
    }
}
