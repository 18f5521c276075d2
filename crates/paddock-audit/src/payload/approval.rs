//! `approval.ask` and `approval.answer`: a question put to a person (a call or connection
//! that an `ask` entry matched) and its answer.

use serde::{Deserialize, Serialize};

/// Payload of `approval.ask`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAsk {
    /// The question's id (`paddock approve ID`).
    pub id: String,
    /// The session that asks.
    pub session: String,
    /// `network` or `command`.
    pub kind: String,
    /// What is asked for: `host:port`, or the argv joined as shell words.
    pub subject: String,
    /// The rule that asked (`network.ask[0]`).
    pub rule: String,
    /// The policy line an "always" answer adds.
    pub proposed: String,
    /// The asking process.
    pub pid: u32,
}

/// Payload of `approval.answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAnswer {
    /// The question's id.
    pub id: String,
    /// The session that asked.
    pub session: String,
    /// `allow` or `deny`.
    pub answer: String,
    /// `once`, `session`, `always`, or `timeout` (nobody answered in time: deny).
    pub scope: String,
    /// Who answered: `uid 1000 pid 4242 tty /dev/pts/3`, `serve token holder`, `timeout`.
    pub by: String,
    /// When the answer was given (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// For "always": the rule id of the entry written to the approved list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_rule: Option<String>,
}
