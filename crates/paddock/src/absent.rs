//! Paths a `deny` or `protect` rule names literally but that do not exist when a call
//! starts. The mount view masks and binds objects, so it cannot hold a name that is not
//! there: under a write grant, a call could create one (a git hook, an agent's settings
//! file that names programs, a credentials file) and leave it on the host for a tool that
//! runs later outside paddock. Each such path is noted before the call; whatever the call
//! created there is moved aside after it (renamed beside itself, never deleted), and the
//! call's `call.end` record names each move.

use std::path::{Path, PathBuf};

use paddock_audit::MovedAside;
use paddock_policy::Policy;

/// The literal `deny` and `protect` paths absent at a call's start that the call could
/// create (a `write` grant holds them).
#[derive(Debug, Default)]
pub(crate) struct AbsentPaths(Vec<(String, PathBuf)>);

impl AbsentPaths {
    /// Notes the paths of `policy` that are absent now.
    pub(crate) fn before(policy: &Policy) -> AbsentPaths {
        let fs = &policy.filesystem;
        let paths = fs
            .deny
            .iter()
            .chain(&fs.protect)
            .filter(|r| !r.is_glob)
            .map(|r| (r.id.to_string(), PathBuf::from(&r.pattern)))
            .filter(|(_, p)| p.is_absolute() && std::fs::symlink_metadata(p).is_err())
            .filter(|(_, p)| fs.write.iter().any(|w| p.starts_with(&w.path)))
            .collect();
        AbsentPaths(paths)
    }

    /// Moves aside each noted path that exists now (`NAME` → `NAME.paddock-moved-SECS-PID`
    /// in the same directory); returns the moves, failed ones with their error.
    pub(crate) fn settle(&self) -> Vec<MovedAside> {
        let mut moved = Vec::new();
        for (rule, p) in &self.0 {
            if std::fs::symlink_metadata(p).is_err() {
                continue;
            }
            let to = aside(p);
            let (to, error) = match std::fs::rename(p, &to) {
                Ok(()) => (to.to_string_lossy().into_owned(), String::new()),
                Err(e) => (String::new(), e.to_string()),
            };
            tracing::debug!(rule = %rule, path = %p.display(), to = %to, error = %error, "moved aside: the call created a path a deny or protect rule names");
            moved.push(MovedAside { rule: rule.clone(), from: p.to_string_lossy().into_owned(), to, error });
        }
        moved
    }
}

/// The line that tells a person (or an agent's outcome) of one move, escaped.
pub fn describe(m: &MovedAside) -> String {
    let (from, rule) = (paddock_audit::Escaped(&m.from), paddock_audit::Escaped(&m.rule));
    if m.error.is_empty() {
        format!(
            "paddock: the call created {from}, which {rule} forbids: moved aside to {}",
            paddock_audit::Escaped(&m.to)
        )
    } else {
        format!(
            "paddock: the call created {from}, which {rule} forbids, and it could not be moved aside: {}",
            paddock_audit::Escaped(&m.error)
        )
    }
}

/// `NAME.paddock-moved-SECS-PID` beside `p`.
pub(crate) fn aside(p: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".paddock-moved-{secs}-{}", std::process::id()));
    p.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;

    #[test]
    fn what_a_call_created_under_a_rule_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join(".envrc"), "kept").unwrap();
        let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nprotect = [\"${WORKSPACE}/.envrc\", \"${WORKSPACE}/.mcp.json\", \"${WORKSPACE}/**/x\", \"/elsewhere/y\"]\ndeny = [\"${WORKSPACE}/.credentials.json\"]\n";
        let vars = Vars { workspace: ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let p = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let absent = AbsentPaths::before(&p);
        // Existing (masked by the view), glob, and outside every write grant: not noted.
        let noted: Vec<&Path> = absent.0.iter().map(|(_, p)| p.as_path()).collect();
        assert_eq!(noted, vec![ws.join(".credentials.json").as_path(), ws.join(".mcp.json").as_path()]);
        assert!(absent.settle().is_empty(), "nothing created");
        std::fs::write(ws.join(".mcp.json"), "{\"mcpServers\":{}}").unwrap();
        let moved = absent.settle();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].rule, "filesystem.protect[1]");
        assert!(!ws.join(".mcp.json").exists());
        assert_eq!(std::fs::read_to_string(&moved[0].to).unwrap(), "{\"mcpServers\":{}}");
        assert_eq!(std::fs::read_to_string(ws.join(".envrc")).unwrap(), "kept");
    }
}
