//! The question and answer files: what a person is asked, and what they said.

use serde::{Deserialize, Serialize};

/// One open question, as stored in `$STATE/approvals/ID.question.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its id (`paddock approve ID`).
    pub id: String,
    /// `network` or `command`.
    pub kind: String,
    /// The call (argv as shell words) or the connection (`host:port`).
    pub subject: String,
    /// The policy line an "always" answer adds: `[network] allow = ["host:8080"]`.
    pub proposed: String,
    /// The session that asks.
    pub session: String,
    /// The asking process.
    pub pid: u32,
    /// The session's workspace.
    pub workspace: String,
    /// When it was asked (RFC 3339).
    pub asked_at: String,
    /// The rule that asked (`network.ask[0]`).
    pub rule: String,
    /// The entry itself (the pattern in `proposed`).
    pub entry: String,
    /// When nobody answering means deny (milliseconds since the epoch).
    pub deadline_ms: u64,
    /// A command's working directory (an answer for the session holds there only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// What a command call is given on its standard input: its size and first bytes (an
    /// answer for the session holds for these very bytes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// The program a command runs (its path: the name it was called by may resolve to
    /// another program in the call's `PATH` than in the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

/// A question as `paddock approvals --json` and `GET /v1/approvals` list it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed<'a> {
    /// Its id.
    pub id: &'a str,
    /// `network` or `command`.
    pub kind: &'a str,
    /// The call or the connection.
    pub subject: &'a str,
    /// The policy line an "always" answer adds.
    pub proposed: &'a str,
    /// The session that asks.
    pub session: &'a str,
    /// The asking process.
    pub pid: u32,
    /// Its workspace.
    pub workspace: &'a str,
    /// When it was asked.
    pub asked_at: &'a str,
    /// A command's working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<&'a str>,
    /// What a command call is given on its standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<&'a str>,
    /// The program a command runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<&'a str>,
}

impl Question {
    /// The listing form (the keys DESIGN names).
    pub fn listed(&self) -> Listed<'_> {
        Listed {
            id: &self.id,
            kind: &self.kind,
            subject: &self.subject,
            proposed: &self.proposed,
            session: &self.session,
            pid: self.pid,
            workspace: &self.workspace,
            asked_at: &self.asked_at,
            cwd: self.cwd.as_deref(),
            stdin: self.stdin.as_deref(),
            program: self.program.as_deref(),
        }
    }

    /// The question for a person, every text the agent chose escaped: the call or host,
    /// the rule that would be added, who asks.
    pub fn describe(&self) -> String {
        use paddock_audit::Escaped;
        let mut given = String::new();
        if let Some(program) = &self.program {
            given += &format!("\n  runs: {}", Escaped(program));
        }
        if let Some(cwd) = &self.cwd {
            given += &format!("\n  in directory: {}", Escaped(cwd));
        }
        if let Some(stdin) = &self.stdin {
            given += &format!("\n  with standard input: {}", Escaped(stdin));
        }
        format!(
            "paddock: {} asks for {} `{}` ({} matched){given}\n  would add: {}\n  asked by session {} (pid {}, workspace {}) at {}\n  answer: paddock approve {} [--scope once|session|always]  |  paddock deny {} [--scope once|always]",
            Escaped(&self.session),
            self.kind,
            Escaped(&self.subject),
            Escaped(&self.rule),
            Escaped(&self.proposed),
            Escaped(&self.session),
            self.pid,
            Escaped(&self.workspace),
            self.asked_at,
            self.id,
            self.id,
        )
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it.
    Deny,
}

/// How long an answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This call or connection only.
    Once,
    /// The rest of this session (or `run`).
    Session,
    /// From now on: written to `$STATE/approved.toml`.
    Always,
}

impl Scope {
    /// `once`, `session`, `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Once => "once",
            Scope::Session => "session",
            Scope::Always => "always",
        }
    }

    /// Parses `once`, `session`, `always`.
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "once" => Scope::Once,
            "session" => Scope::Session,
            "always" => Scope::Always,
            _ => return None,
        })
    }
}

/// A person's answer, as stored in `$STATE/approvals/ID.answer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Allow or deny.
    pub answer: Verdict,
    /// How long it holds.
    pub scope: Scope,
    /// Who answered: `uid 1000 pid 4242 tty /dev/pts/3`, or `serve token holder (...)`.
    pub by: String,
    /// When (RFC 3339).
    pub answered_at: String,
}

impl Answer {
    /// An answer given now by `by`; `deny` takes `once` or `always` only.
    pub fn new(answer: Verdict, scope: Scope, by: String) -> Result<Answer, String> {
        if answer == Verdict::Deny && scope == Scope::Session {
            return Err("a denial holds `once` or `always`".into());
        }
        Ok(Answer { answer, scope, by, answered_at: paddock_audit::record::now_ts() })
    }
}

/// Who this process is, for the record of an answer it gives: uid, pid and terminal.
pub fn this_process() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid().to_string()).unwrap_or_else(|_| "?".into());
    let tty = [0, 1, 2]
        .iter()
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .find(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"))
        .map(|p| format!(" tty {}", p.display()))
        .unwrap_or_default();
    format!("uid {uid} pid {}{tty}", std::process::id())
}
