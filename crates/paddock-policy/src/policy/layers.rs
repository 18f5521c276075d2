//! [`Policy`]'s methods over its ask and approved layers: what a person said earlier, what
//! is asked, and the approved list (`$STATE/approved.toml`). Here, not in `ask.rs` and
//! `approved.rs`, so those hold the layers' own rules and `policy.rs` imports them one way.

use std::path::Path;
use std::time::Duration;

use super::Policy;
use crate::approved::{parse_approved, Approved, ApprovedEntry};
use crate::ask::{toml_string, Asked, DEFAULT_ASK_TIMEOUT};
use crate::decision::{Decision, Verdict};
use crate::error::{PolicyError, Problems};
use crate::network::Host;

impl Policy {
    /// A decision a person gave earlier (for the session), checked again against what
    /// holds for every decision: a policy that denies all, and the revocations (a
    /// `command:`, `network:` or `rule:` revocation cuts a person's answer as it cuts a rule).
    pub fn recheck(&self, d: Decision, asked: &Asked<'_>) -> Decision {
        if let Some(all) = self.denied_all() {
            return all;
        }
        if self.revocations.is_empty() {
            return d;
        }
        match *asked {
            Asked::Command { program, argv } => {
                self.revocations.command(d, Some(program), argv.get(1..).unwrap_or(&[]))
            }
            Asked::Network { host, port } => self.revocations.connect(d, host, port),
        }
    }

    /// `[sandbox] ask_timeout`, or [`DEFAULT_ASK_TIMEOUT`].
    pub fn ask_timeout(&self) -> Duration {
        self.ask_timeout.unwrap_or(DEFAULT_ASK_TIMEOUT)
    }

    /// Whether a sandbox under this policy needs the egress proxy: a host is allowed,
    /// approved, or may be asked for.
    pub fn network_wanted(&self) -> bool {
        self.network.any_allowed() || !self.ask.network_raw.is_empty() || self.approved.any_network()
    }

    /// The programs an exec could be allowed to start: those of `[commands] allow`, of the
    /// approved allow entries and of `[commands] ask` (a person may allow them); `None`
    /// when any program could be (an `ask` entry for every command).
    pub fn exec_candidates(&self) -> Option<Vec<std::path::PathBuf>> {
        if self.ask.asks_any_command() {
            return None;
        }
        let allow = self.commands.iter().flat_map(|c| c.allowed_programs());
        Some(allow.chain(self.approved.command_allow_programs()).chain(self.ask.command_programs()).collect())
    }

    /// The layers after a command's own rules: approved deny, approved allow, ask.
    pub(crate) fn layer_command(&self, d: Decision, program: Option<&Path>, shown: &str, args: &[String]) -> Decision {
        let Some(program) = program else { return d };
        if d.verdict == Verdict::Deny && &*d.rule != "default" {
            return d;
        }
        if let Some(a) = self.approved.command(program, shown, args, false) {
            return a;
        }
        if d.is_allow() || self.commands.is_none() {
            return d;
        }
        if let Some(a) = self.approved.command(program, shown, args, true) {
            return a;
        }
        self.ask.command(program, shown, args).unwrap_or(d)
    }

    /// The layers after a connection's own rules: approved deny, approved allow, ask.
    pub(crate) fn layer_connect(&self, d: Decision, host: &Host, port: u16) -> Decision {
        if d.verdict == Verdict::Deny && &*d.rule != "default" {
            return d;
        }
        if let Some(a) = self.approved.connect(host, port, false) {
            return a;
        }
        if d.is_allow() {
            return d;
        }
        if let Some(a) = self.approved.connect(host, port, true) {
            return a;
        }
        self.ask.host(host, port).unwrap_or(d)
    }
}

impl Policy {
    /// Sets the approved layer (`$STATE/approved.toml`, see [`parse_approved`]); an entry
    /// that does not compile is an error, located in that file.
    pub fn set_approved(&mut self, entries: Vec<ApprovedEntry>) -> Result<(), PolicyError> {
        let mut problems = Problems::default();
        let approved = Approved::compile(entries, &self.sandbox_path, &mut problems);
        problems.into_result()?;
        self.approved = approved;
        Ok(())
    }

    /// Reads `path` (absent: no entries) and sets it as the approved layer.
    pub fn load_approved(&mut self, path: &Path) -> Result<(), PolicyError> {
        // Not through a symlink: one in the list's place (`$STATE` once under a write
        // grant) would approve whatever its target says.
        use std::os::unix::fs::OpenOptionsExt;
        let read = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
        let text = match read.and_then(|mut f| {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut f, &mut t).map(|_| t)
        }) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                let e = if e.raw_os_error() == Some(libc::ELOOP) {
                    std::io::Error::other("it is a symlink, which paddock does not follow in its state")
                } else {
                    e
                };
                return Err(PolicyError::file(
                    path,
                    format!("cannot read the approved list `{}`: {e}", path.display()),
                    Some("fix its permissions, or move it away to drop every \"always\" answer".into()),
                ));
            }
        };
        self.set_approved(parse_approved(path, &text)?)
    }

    /// The entries of the approved layer, in order (entry `N` is rule `approved[N]`).
    pub fn approved(&self) -> &[ApprovedEntry] {
        &self.approved.entries
    }

    /// The approved layer as comment lines for `policy show` (empty when there is none).
    pub fn approved_listing(&self) -> String {
        let mut out = String::new();
        for (n, e) in self.approved.entries.iter().enumerate() {
            if n == 0 {
                out.push_str(&format!("# approved layer ({}), merged after the policy:\n", e.origin.file.display()));
            }
            let (table, list) = e.list.as_str().split_once('.').unwrap_or(("", ""));
            let revoked = if self.revocations.revokes_rule(&format!("approved[{n}]")) { " (revoked)" } else { "" };
            out.push_str(&format!("# approved[{n}]: [{table}] {list} = [{}]{revoked}\n", toml_string(&e.entry)));
        }
        out
    }
}
