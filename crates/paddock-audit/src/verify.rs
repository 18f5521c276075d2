//! Verifying the chain: [`verify`].
//!
//! Each complete line must be a valid record whose `seq` is one more than
//! the previous record's (1 for the first line) and whose `prev` is the
//! SHA-256 of the previous line's bytes ([`GENESIS_PREV`] for the first).
//! The first line that fails is reported with why; verification stops there.
//!
//! What this detects: a record edited anywhere but in the last line (the
//! next line's `prev` no longer matches), a line removed, inserted, duplicated
//! or moved (a `seq` or `prev` mismatch), a line cut short or garbled.
//!
//! What a hash chain cannot detect on its own: whole records removed from the
//! *end* of the log, or the last record edited (no later line vouches for
//! it), or a log rewritten from scratch. [`VerifyReport::head`] gives the
//! last record's `seq` and hash: kept elsewhere (printed, shipped to another
//! machine), it extends the guarantee to everything up to it.
//!
//! A torn last line (bytes after the final `\n`: a write a crash interrupted)
//! is reported as [`VerifyReport::torn_tail`], a warning, not a break; the
//! next writer removes it and chains from the last complete record.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::AuditError;
use crate::hex::to_hex;
use crate::reader::{Line, LineReader};
use crate::record::{line_digest, Record, GENESIS_PREV};

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The log verified.
    pub path: PathBuf,
    /// Bytes verified (the log's length when verification began).
    pub bytes: u64,
    /// Records that verified (all of them if the chain is intact; those
    /// before the break otherwise).
    pub records: u64,
    /// The last record that verified.
    pub head: Option<Head>,
    /// The first break in the chain, if any.
    pub broken: Option<ChainBreak>,
    /// A torn last line (warning).
    pub torn_tail: Option<TornTail>,
}

impl VerifyReport {
    /// Whether the chain is intact (a torn tail does not break it).
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The last record that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Its sequence number.
    pub seq: u64,
    /// SHA-256 (hex) of its line.
    pub hash: String,
    /// Its 1-based line number.
    pub line: u64,
}

/// A torn last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// Its 1-based line number.
    pub line: u64,
    /// Byte offset where it starts.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
}

/// The first line at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset where the line starts.
    pub offset: u64,
    /// What is wrong.
    pub kind: BreakKind,
}

/// Why a line breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakKind {
    /// The line is not JSON at all (garbled, cut short, empty).
    BadJson {
        /// The parser's message.
        message: String,
    },
    /// The line is JSON but not a record: `seq`, `ts`, `event` or `prev`
    /// missing or of the wrong type, an unknown event, or an event field
    /// missing or invalid.
    BadRecord {
        /// The parser's message.
        message: String,
    },
    /// `seq` is not the previous record's plus one.
    SeqMismatch {
        /// The `seq` this line should have.
        expected: u64,
        /// The `seq` it has.
        found: u64,
    },
    /// `prev` is not the SHA-256 of the previous line.
    PrevMismatch {
        /// SHA-256 of the previous line (or 64 zeros on line 1).
        expected: String,
        /// The `prev` the line has.
        found: String,
    },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.line;
        match &self.kind {
            BreakKind::BadJson { message } => {
                write!(f, "line {n}: not valid JSON ({message}): the line was edited, cut short or inserted")
            }
            BreakKind::BadRecord { message } => {
                write!(f, "line {n}: JSON but not a valid record ({message}): the line was edited or inserted")
            }
            BreakKind::SeqMismatch { expected, found } => write!(
                f,
                "line {n}: seq is {found} where {expected} was expected: a line was removed, inserted or \
                 moved before this one, or its seq was edited"
            ),
            BreakKind::PrevMismatch { expected, found } if n == 1 => write!(
                f,
                "line 1: prev is {found} where the first record has 64 zeros: lines were removed from \
                 the start of the log, or this line was edited (expected {expected})"
            ),
            BreakKind::PrevMismatch { expected, found } => write!(
                f,
                "line {n}: prev is {found} but line {} hashes to {expected}: line {} was edited, or lines \
                 were removed, inserted or reordered here",
                n - 1,
                n - 1
            ),
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.broken {
            None => {
                write!(f, "{p}: chain intact, {} records", self.records)?;
                if let Some(h) = &self.head {
                    write!(f, "; head seq {} sha256 {}", h.seq, h.hash)?;
                }
            }
            Some(b) => {
                write!(f, "{p}: chain BROKEN at {b}")?;
                write!(f, "\n  {} records verified before the break", self.records)?;
            }
        }
        if let Some(t) = &self.torn_tail {
            write!(
                f,
                "\nwarning: line {} ({} bytes at offset {}) is torn, the remains of an interrupted write; \
                 the next record will replace it",
                t.line, t.bytes, t.offset
            )?;
        }
        Ok(())
    }
}

/// Recomputes the chain of the log at `path`.
///
/// `Err` only when the log cannot be read; a broken chain is
/// [`VerifyReport::broken`].
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
    let mut lines = LineReader::open(path.as_ref())?;
    let mut report = VerifyReport {
        path: path.as_ref().to_path_buf(),
        bytes: lines.len(),
        records: 0,
        head: None,
        broken: None,
        torn_tail: None,
    };
    let mut expected_prev = GENESIS_PREV.to_owned();
    let mut expected_seq = 1u64;
    while let Some(line) = lines.next_line()? {
        let (number, offset, bytes) = match line {
            Line::Torn { number, offset, bytes } => {
                report.torn_tail = Some(TornTail { line: number, offset, bytes: bytes.len() as u64 });
                break;
            }
            Line::Complete { number, offset, bytes } => (number, offset, bytes),
        };
        let brk = |kind| Some(ChainBreak { line: number, offset, kind });
        let record = match Record::from_line(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let message = e.to_string();
                report.broken = brk(match e.classify() {
                    serde_json::error::Category::Data => BreakKind::BadRecord { message },
                    _ => BreakKind::BadJson { message },
                });
                break;
            }
        };
        if record.seq != expected_seq {
            report.broken = brk(BreakKind::SeqMismatch { expected: expected_seq, found: record.seq });
            break;
        }
        if record.prev != expected_prev {
            report.broken = brk(BreakKind::PrevMismatch { expected: expected_prev, found: record.prev });
            break;
        }
        expected_prev = to_hex(&line_digest(&bytes));
        expected_seq += 1;
        report.records += 1;
        report.head = Some(Head { seq: record.seq, hash: expected_prev.clone(), line: number });
    }
    Ok(report)
}
