//! Finding the end of the chain: the last complete record of the file,
//! read backwards from the end in small blocks (never the whole file), after
//! removing a torn last line. Runs under the log's exclusive lock, at step 3
//! and 4 of an append (see the [parent module](super)).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Deserialize;

use crate::error::AuditError;
use crate::record::line_digest;

/// The end of the log as this writer last saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tail {
    /// File length: just after the `\n` of the last complete line.
    pub(super) len: u64,
    /// `seq` of the last record (0: none yet).
    pub(super) seq: u64,
    /// SHA-256 of the last line (zeros: none yet, which is `GENESIS_PREV`).
    pub(super) hash: [u8; 32],
}

pub(super) const EMPTY_TAIL: Tail = Tail { len: 0, seq: 0, hash: [0; 32] };

const BLOCK: u64 = 8 * 1024;

/// Position of the last `\n` strictly before `end`, reading backwards.
fn last_newline_before(file: &File, end: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; BLOCK as usize];
    let mut pos = end;
    while pos > 0 {
        let n = BLOCK.min(pos);
        let start = pos - n;
        let chunk = &mut buf[..n as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

/// Finds the last complete record of a file of length `len`, truncating a
/// torn last line first. Called under the exclusive lock.
pub(super) fn read_tail(file: &File, path: &Path, len: u64) -> Result<Tail, AuditError> {
    let io = |op| move |e| AuditError::io(path, op, e);
    if len == 0 {
        return Ok(EMPTY_TAIL);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1).map_err(io("read"))?;
    let mut end = len;
    if last[0] != b'\n' {
        let keep = last_newline_before(file, len).map_err(io("read"))?.map_or(0, |p| p + 1);
        tracing::warn!(
            path = %path.display(),
            offset = keep,
            torn_bytes = len - keep,
            "audit log ends with a torn line (an interrupted write); removing it and chaining from the last complete record"
        );
        file.set_len(keep).map_err(io("truncate the torn line of"))?;
        end = keep;
        if end == 0 {
            return Ok(EMPTY_TAIL);
        }
    }
    let start = last_newline_before(file, end - 1).map_err(io("read"))?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; (end - 1 - start) as usize];
    file.read_exact_at(&mut line, start).map_err(io("read"))?;

    #[derive(Deserialize)]
    struct Head {
        seq: u64,
        #[allow(dead_code)]
        prev: String,
    }
    let head: Head = serde_json::from_slice(&line).map_err(|e| AuditError::CorruptTail {
        path: path.to_path_buf(),
        offset: start,
        reason: e.to_string(),
    })?;
    Ok(Tail { len: end, seq: head.seq, hash: line_digest(&line) })
}
