//! What a review reports ([`Review`] and its parts): `Serialize` gives the `--json`
//! form, `render` the human one.

use std::path::PathBuf;

use serde::Serialize;

use crate::payload::{Target, Tool};
use crate::revocations::Revocation;
use crate::selector::Selector;

/// The grant name under which allowed calls that name no rule are listed.
pub const NO_RULE: &str = "(no rule)";

/// The result of [`review`](crate::review()). `Serialize` gives the `--json` form;
/// `Display` the human one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// The log reviewed.
    pub path: PathBuf,
    /// Start of the window (RFC 3339), if any.
    pub since: Option<String>,
    /// Records in the window.
    pub records: u64,
    /// Timestamp of the first record in the window.
    pub first_ts: Option<String>,
    /// Timestamp of the last record in the window.
    pub last_ts: Option<String>,
    /// Calls in the window.
    pub calls: u64,
    /// Of which allowed.
    pub allowed_calls: u64,
    /// Of which denied.
    pub denied_calls: u64,
    /// Connections in the window.
    pub connections: u64,
    /// Of which refused (by the policy, the address class or a limit).
    pub denied_connections: u64,
    /// Grants used, most used first.
    pub grants: Vec<GrantUsage>,
    /// Grants held in the sandbox view of calls (filesystem grants), most
    /// held first: in use as far as a reviewer can know, whether or not a
    /// decision named them.
    pub in_view: Vec<GrantInView>,
    /// Rules of the policy (as passed in) neither used nor in any call's view
    /// in the window.
    pub unused_grants: Vec<String>,
    /// Denied calls and refused connections grouped by what was tried, most
    /// frequent first.
    pub denied: Vec<DeniedAttempt>,
    /// Connections grouped by host, busiest first.
    pub hosts: Vec<HostTraffic>,
    /// Secrets injected by the proxy: which calls used which key for what.
    pub secrets: Vec<super::http::SecretUsage>,
    /// Requests the proxy saw in plain text, by host.
    pub http_hosts: Vec<super::http::HttpHostTraffic>,
    /// Placeholders sent where their secret does not belong (refused), in log order.
    pub exfiltration: Vec<super::http::ExfiltrationAttempt>,
    /// Revocations in force: replayed from the log's `revoke`/`unrevoke`
    /// records, or as set by [`Review::with_revocations`].
    pub revocations: Vec<Revocation>,
    /// Questions put to a person in the window, in order, with their answers (none:
    /// still open, or the asker ended first).
    pub questions: Vec<super::questions::QuestionReview>,
    /// Line numbers that are not records (skipped; `verify` says more).
    pub unreadable_lines: Vec<u64>,
    /// Whether the log ends with a torn line (skipped).
    pub torn_tail: bool,
    /// `exec` records in the window.
    pub execs: u64,
    /// The programs the calls' trees started, per call program, busiest first.
    pub programs: Vec<super::programs::ProgramTree>,
}

/// One grant and what used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUsage {
    /// The rule id.
    pub rule: String,
    /// How many calls and connections it allowed.
    pub uses: u64,
    /// Timestamp of the first use.
    pub first_use: String,
    /// Timestamp of the last use.
    pub last_use: String,
    /// The `rule:` selector revoking it, if one is in force.
    pub revoked: Option<String>,
    /// Every use, in log order.
    pub used_by: Vec<GrantUse>,
}

/// One use of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUse {
    /// The record's `seq` (its `call.start` for a call).
    pub seq: u64,
    /// The record's timestamp.
    pub ts: String,
    /// The call's id (calls only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// What the call asked for: `tool` and `argv` / `path` / `url` (calls only).
    #[serde(flatten)]
    pub target: Option<Target>,
    /// `host:port` (connections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// One-line description.
    pub summary: String,
    /// Exit code from the matching `call.end`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// A grant that calls' sandbox views held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantInView {
    /// The rule id (`filesystem.read[3]`).
    pub rule: String,
    /// How many calls ran with it in their view.
    pub calls: u64,
    /// How many decisions named it (its uses in [`Review::grants`]).
    pub decided_uses: u64,
    /// Timestamp of the first such call.
    pub first: String,
    /// Timestamp of the last such call.
    pub last: String,
    /// `seq` of the last such call's `call.start`.
    pub last_seq: u64,
}

/// Denied calls (or refused connections) that asked for the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeniedAttempt {
    /// The tool (`connect` for a refused connection).
    pub tool: Tool,
    /// What was tried (argv shell-quoted, path, `METHOD url`, or `host:port`).
    pub summary: String,
    /// How many times.
    pub count: u64,
    /// The rules that denied it (distinct, sorted).
    pub rules: Vec<String>,
    /// The reason of the latest denial.
    pub reason: Option<String>,
    /// Timestamp of the first attempt.
    pub first: String,
    /// Timestamp of the last attempt.
    pub last: String,
    /// `seq` of each attempt.
    pub seqs: Vec<u64>,
}

/// Connections to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostTraffic {
    /// The host name asked for.
    pub host: String,
    /// Ports asked for (distinct, sorted).
    pub ports: Vec<u16>,
    /// Connections allowed.
    pub allowed: u64,
    /// Connections denied.
    pub denied: u64,
    /// Bytes sent upstream.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Rules that decided (distinct, sorted).
    pub rules: Vec<String>,
}

impl Review {
    /// Replaces the revocations (replayed from the log) by the list in force,
    /// normally [`Revocations::entries`](crate::Revocations::entries).
    pub fn with_revocations(mut self, revocations: &[Revocation]) -> Self {
        self.revocations = revocations.to_vec();
        self.mark_revoked();
        self
    }

    /// Marks grants revoked by a `rule:` selector (exact rule id; other
    /// selectors are matched by the policy, not here).
    pub(super) fn mark_revoked(&mut self) {
        for g in &mut self.grants {
            let sel = Selector::Rule(g.rule.clone());
            g.revoked = self.revocations.iter().any(|r| r.selector == sel).then(|| sel.to_string());
        }
    }
}
