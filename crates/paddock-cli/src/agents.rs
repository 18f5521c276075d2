//! The coding agents paddock knows by name: `paddock run -- claude` picks the agent's
//! preset, starts the agent the way it works inside paddock, and says both in one line
//! each.

use std::path::Path;

/// One agent paddock knows.
pub struct Agent {
    /// The program's file name (`claude`, `/usr/local/bin/claude`, `./claude` all match).
    pub program: &'static str,
    /// The embedded preset made for it.
    pub preset: &'static str,
    /// The variables one of which holds its API key (brokered by the preset's `[secrets]`).
    pub key_vars: &'static [&'static str],
    /// Where its own login keeps tokens the sandbox never shows it.
    pub login: &'static str,
    /// Arguments put right after the program, and why.
    pub args: Option<(&'static [&'static str], &'static str)>,
    /// Its state directories under the home directory, writable under its preset: made
    /// (0700) when missing, since a write grant covers only what exists at the start.
    pub state_dirs: &'static [&'static str],
    /// Its settings file under the home directory (it names hooks, MCP servers, commands
    /// the agent starts later, outside paddock too) and an empty form of it: `protect`
    /// holds only what exists at the start, so a missing one is made empty (0600) first,
    /// or the agent inside could create it.
    pub settings: (&'static str, &'static str),
    /// Directories under the home directory whose files the agent runs or loads at its
    /// next start (extensions): protected by the preset, made (0700) when missing for the
    /// same reason as `settings`.
    pub protected_dirs: &'static [&'static str],
}

/// The agents, by program name.
pub const AGENTS: &[Agent] = &[
    Agent {
        program: "claude",
        preset: "claude",
        key_vars: &["ANTHROPIC_API_KEY"],
        login: "its claude.ai login (~/.claude/.credentials.json)",
        args: None,
        state_dirs: &[".claude"],
        settings: (".claude/settings.json", "{}\n"),
        protected_dirs: &[".claude/plugins"],
    },
    Agent {
        program: "codex",
        preset: "codex",
        key_vars: &["OPENAI_API_KEY", "CODEX_API_KEY"],
        login: "its ChatGPT login (~/.codex/auth.json)",
        args: Some((
            &["-c", "sandbox_mode=\"danger-full-access\""],
            "codex's own sandbox (bubblewrap) cannot start inside paddock's, which refuses new namespaces: starting it with -c sandbox_mode=\"danger-full-access\"; paddock's sandbox confines every command it runs",
        )),
        state_dirs: &[".codex"],
        settings: (".codex/config.toml", ""),
        protected_dirs: &[],
    },
    Agent {
        program: "gemini",
        preset: "gemini",
        key_vars: &["GEMINI_API_KEY"],
        login: "its Google login (~/.gemini/oauth_creds.json)",
        args: None,
        state_dirs: &[".gemini"],
        settings: (".gemini/settings.json", "{}\n"),
        protected_dirs: &[".gemini/extensions"],
    },
];

/// The agent `program` (a name or a path) is, if paddock knows it.
pub fn known(program: &str) -> Option<&'static Agent> {
    let name = Path::new(program).file_name()?.to_str()?;
    AGENTS.iter().find(|a| a.program == name)
}

impl Agent {
    /// The line that says the preset was picked.
    pub fn picked_line(&self) -> String {
        format!(
            "paddock: {} is a coding agent paddock knows: using the {} preset (`paddock policy show --policy {}` prints it; --no-agent-preset uses the embedded default)",
            self.program, self.preset, self.preset
        )
    }

    /// Makes its missing state directories under `home` (0700, owned by the caller);
    /// returns a line for each one made, or the error of the first that fails.
    pub fn make_state_dirs(&self, home: &Path) -> Result<Vec<String>, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let mut made = Vec::new();
        for d in self.state_dirs {
            let dir = home.join(d);
            if std::fs::symlink_metadata(&dir).is_ok() {
                continue;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot make {}, {}'s state directory: {e}", dir.display(), self.program))?;
            made.push(format!("paddock: made {} ({}'s state, writable under its preset)", dir.display(), self.program));
        }
        for d in self.protected_dirs {
            let dir = home.join(d);
            if std::fs::symlink_metadata(&dir).is_ok() {
                continue;
            }
            std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| {
                format!(
                    "cannot make {} (read-only under {}'s preset, or the agent could create it): {e}",
                    dir.display(),
                    self.program
                )
            })?;
            made.push(format!(
                "paddock: made {} empty ({} loads what is there at its start: read-only under its preset)",
                dir.display(),
                self.program
            ));
        }
        let (rel, empty) = self.settings;
        let path = home.join(rel);
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true) // never follows a link, never truncates
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, empty.as_bytes()));
        match created {
            Ok(()) => made.push(format!(
                "paddock: made {} empty ({}'s settings, read-only under its preset: the agent cannot plant hooks or servers in it)",
                path.display(),
                self.program
            )),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "cannot make {} ({}'s settings, which the agent could otherwise create with commands that run outside paddock): {e}",
                    path.display(),
                    self.program
                ))
            }
        }
        Ok(made)
    }

    /// When none of its key variables is set in `env`: the line that names the fix.
    pub fn missing_key_line(&self, env: impl Fn(&str) -> bool) -> Option<String> {
        if self.key_vars.iter().any(|v| env(v)) {
            return None;
        }
        Some(format!(
            "paddock: {} is not set: inside paddock {} authenticates with an API key from your environment, brokered (the agent and its commands see a placeholder); {} stays out of the sandbox. Set {} to use it",
            self.key_vars.join(" or "),
            self.program,
            self.login,
            self.key_vars[0]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_known_by_file_name_only() {
        assert_eq!(known("claude").map(|a| a.preset), Some("claude"));
        assert_eq!(known("/usr/local/bin/codex").map(|a| a.preset), Some("codex"));
        assert_eq!(known("./gemini").map(|a| a.preset), Some("gemini"));
        assert!(known("claude-dev").is_none());
        assert!(known("cargo").is_none());
        assert!(known("").is_none());
    }

    #[test]
    fn every_agent_has_its_preset() {
        for a in AGENTS {
            assert!(paddock_policy::preset_text(a.preset).is_some(), "no embedded preset {}", a.preset);
        }
    }

    #[test]
    fn state_dirs_are_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let codex = known("codex").unwrap();
        let made = codex.make_state_dirs(home).unwrap();
        assert_eq!(made.len(), 2, "{made:?}");
        assert!(home.join(".codex").is_dir());
        assert_eq!(std::fs::read_to_string(home.join(".codex/config.toml")).unwrap(), "");
        assert!(codex.make_state_dirs(home).unwrap().is_empty());
    }

    #[test]
    fn the_missing_key_line_names_the_variable() {
        let claude = known("claude").unwrap();
        assert!(claude.missing_key_line(|v| v == "ANTHROPIC_API_KEY").is_none());
        let line = claude.missing_key_line(|_| false).unwrap();
        assert!(line.contains("Set ANTHROPIC_API_KEY"), "{line}");
        let codex = known("codex").unwrap();
        assert!(codex.missing_key_line(|v| v == "CODEX_API_KEY").is_none());
    }
}
