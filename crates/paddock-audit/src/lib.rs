//! paddock's tamper-evident audit log, its verification and review, and the
//! revocation list.
//!
//! The log is JSON lines (`$STATE/audit.jsonl`); every record carries `seq`,
//! `ts`, `event` and `prev`, the SHA-256 of the previous line, so editing,
//! removing, inserting or reordering a line breaks the chain at a line that
//! [`verify()`] names. Any number of processes append to one log under an
//! exclusive file lock ([`AuditLog`]). [`review()`] aggregates what each grant
//! (policy rule) was used for, and [`Revocations`] stores the revoked grants
//! (matching them against calls is the policy crate's job).
//!
//! This crate knows nothing of sandboxes or sessions: records in, verified
//! records and queries out. It never prints; it logs through `tracing`.
//!
//! ```
//! use paddock_audit::{review, verify, AuditLog, Call, CallOutcome, Decision, Target};
//!
//! # fn main() -> Result<(), paddock_audit::AuditError> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.jsonl");
//!
//! let log = AuditLog::open(&path)?;
//! let call = Call::new("c1", "s1", Target::command(["git", "status"]), Decision::Allow)
//!     .with_cwd("/work")
//!     .with_rule("commands.allow[0]")
//!     .with_policy_hash("5f1e");
//! log.append_durable(&call.start())?; // on disk before the child runs
//! log.append(&call.end(CallOutcome::exited(0).with_duration_ms(12)))?;
//! drop(log); // syncs
//!
//! let report = verify(&path)?;
//! assert!(report.is_intact());
//! assert_eq!(report.records, 2);
//!
//! let rules = vec!["commands.allow[0]".to_string(), "commands.allow[1]".to_string()];
//! let r = review(&path, None, &rules)?;
//! assert_eq!(r.grants[0].rule, "commands.allow[0]");
//! assert_eq!(r.grants[0].used_by[0].summary, "git status");
//! assert_eq!(r.unused_grants, ["commands.allow[1]"]);
//! # Ok(()) }
//! ```
//!
//! Modules, one concern each: [`escape`](mod@escape) (agent-chosen text made
//! safe to print), [`record`] (the line format), [`payload`]
//! (typed builders for the event payloads), [`writer`]
//! (appending), [`reader`] (snapshots of complete lines), [`verify`](mod@verify)
//! (the chain), [`review`](mod@review) (aggregation, and the HTML page), [`export`]
//! (OpenTelemetry and OCSF), [`revocations`] (the
//! revocation list), [`selector`] (what a revocation covers), [`hex`] (the one
//! hex encoder) and [`state`] (`$STATE`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod escape;
pub mod export;
pub mod hex;
pub mod payload;
pub mod reader;
pub mod record;
pub mod review;
pub mod revocations;
pub mod selector;
pub mod state;
mod time;
pub mod verify;
pub mod writer;

pub use error::AuditError;
pub use escape::{escape, Escaped};
pub use payload::{
    redact_url, ApprovalAnswer, ApprovalAsk, Call, CallEnd, CallOutcome, Decision, Exec, MovedAside, NetConnect,
    Restored, RevokeEvent, SessionEnd, SessionStart, Target, Tool, Unchecked,
};
pub use payload::{strip_query_values, Exfiltration, HttpRequest};
pub use reader::{records, Records};
pub use record::{line_hash, Event, EventKind, Record, GENESIS_PREV};
pub use review::{
    review, review_html, DeniedAttempt, ExfiltrationAttempt, GrantInView, GrantUsage, GrantUse, HostTraffic,
    HttpHostTraffic, QuestionReview, Review, SecretTarget, SecretUsage, Since, NO_RULE,
};
pub use revocations::{Revocation, Revocations, Selector, SelectorError};
pub use state::{audit_log_path, check_private_dir, resolve_state_dir, revocations_path, state_dir};
pub use verify::{verify, BreakKind, ChainBreak, Head, TornTail, VerifyReport};
pub use writer::{AppendedRecord, AuditLog, SyncPolicy};
