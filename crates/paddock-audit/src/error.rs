//! The crate's error type.
//!
//! Every variant names the file it concerns and, where a person can act on
//! it, what would fix it. The CLI renders these; the library never prints.

use std::path::PathBuf;

use crate::selector::SelectorError;

/// Everything that can go wrong while writing, reading, verifying or
/// reviewing the audit log, or while handling the revocation list.
///
/// A *broken chain* is not an error: [`verify`](crate::verify()) returns it in
/// its [`VerifyReport`](crate::VerifyReport). Errors are for conditions that
/// stop an operation (I/O, an unreadable last record that the writer cannot
/// chain from, a malformed revocation file, ...).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An I/O operation on `path` failed.
    #[error("{path}: cannot {op}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done ("open", "lock", "append to", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The last complete line of the log is not a readable record, so a new
    /// record cannot be chained to it. The writer refuses (fails closed)
    /// rather than guess a sequence number.
    #[error(
        "{path}: the last record (byte offset {offset}) is unreadable: {reason}; \
         run `paddock audit verify` and move the damaged log aside"
    )]
    CorruptTail {
        /// The audit log.
        path: PathBuf,
        /// Byte offset where the unreadable line starts.
        offset: u64,
        /// Why it could not be read.
        reason: String,
    },

    /// A line of the log is not a valid record (reported by
    /// [`records`](crate::records); [`verify`](crate::verify()) reports this in
    /// its report instead).
    #[error("{path}:{line}: not a valid audit record: {reason}")]
    BadLine {
        /// The audit log.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A record could not be encoded as JSON (should not happen with the
    /// types of this crate, but an `enforcement` report is arbitrary JSON).
    #[error("cannot encode audit record: {0}")]
    Encode(#[source] serde_json::Error),

    /// The revocation file is not valid.
    #[error("{}:{line}:{col}: invalid revocation list: {message}; expected [[revoked]] tables with selector, reason and ts", path.display())]
    RevocationsParse {
        /// The revocation file.
        path: PathBuf,
        /// Where the parser stopped (1-based).
        line: usize,
        /// The column there (1-based, in characters).
        col: usize,
        /// The parser's message, one line.
        message: String,
    },

    /// The revocation list could not be encoded as TOML.
    #[error("cannot encode revocation list: {0}")]
    RevocationsEncode(#[source] toml::ser::Error),

    /// A revocation selector did not parse.
    #[error(transparent)]
    Selector(#[from] SelectorError),

    /// A `--since` value is neither a duration nor an RFC 3339 timestamp.
    #[error("invalid --since value `{input}`: expected a duration such as `24h` or `7days`, an RFC 3339 UTC timestamp such as `2026-01-31T12:00:00Z`, or a date such as `2026-01-31`")]
    InvalidSince {
        /// What was given.
        input: String,
    },

    /// No state directory could be determined.
    #[error("cannot determine the state directory: set PADDOCK_STATE_DIR, XDG_STATE_HOME or HOME")]
    NoStateDir,

    /// `PADDOCK_STATE_DIR` is not an absolute path (nothing was created).
    #[error("PADDOCK_STATE_DIR={value:?} is a relative path: set it to an absolute one (paddock's state must not depend on the directory a command runs from)")]
    RelativeStateDir {
        /// The variable's value.
        value: String,
    },

    /// `$STATE` is not a directory only this user can change.
    #[error("state directory {}: {why}; paddock does not trust a state it may not own alone (its revocations, audit log, approvals)", path.display())]
    UntrustedStateDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        AuditError::Io { path: path.into(), op, source }
    }
}
