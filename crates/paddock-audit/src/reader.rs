//! Reading the log: a consistent snapshot of its complete lines.
//!
//! A reader takes the log's shared lock only long enough to read its length;
//! writers append whole lines under the exclusive lock, so every byte before
//! that length belongs to a finished write. The reader then reads up to that
//! length without holding the lock, so a long verification never stalls the
//! writers (and so calls). Bytes after the last `\n` of the snapshot are a
//! torn tail: a write that a crash interrupted.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Take};
use std::path::{Path, PathBuf};

use crate::error::AuditError;
use crate::record::Record;

/// One line of the snapshot.
pub(crate) enum Line {
    /// A line that ends with `\n` (not included in `bytes`).
    Complete {
        /// 1-based line number.
        number: u64,
        /// Byte offset of the line's first byte.
        offset: u64,
        /// The line, without `\n`.
        bytes: Vec<u8>,
    },
    /// Bytes after the last `\n`.
    Torn {
        /// 1-based line number.
        number: u64,
        /// Byte offset of the first torn byte.
        offset: u64,
        /// The torn bytes.
        bytes: Vec<u8>,
    },
}

pub(crate) struct LineReader {
    path: PathBuf,
    reader: BufReader<Take<File>>,
    number: u64,
    offset: u64,
    len: u64,
}

impl LineReader {
    /// Opens `path` and fixes the snapshot length.
    pub(crate) fn open(path: &Path) -> Result<Self, AuditError> {
        // Non-blocking, then regular files only: opening a FIFO for reading waits for a
        // writer (`audit verify` hung). O_NONBLOCK changes nothing for a regular file.
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| crate::state::nofollow_error(path, "open", e))?;
        if !file.metadata().map_err(|e| AuditError::io(path, "inspect", e))?.is_file() {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(AuditError::io(path, "open", e));
        }
        file.lock_shared().map_err(|e| AuditError::io(path, "lock", e))?;
        let len = file.metadata().map(|m| m.len());
        let _ = file.unlock();
        let len = len.map_err(|e| AuditError::io(path, "inspect", e))?;
        Ok(LineReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(256 * 1024, file.take(len)),
            number: 0,
            offset: 0,
            len,
        })
    }

    /// Length of the snapshot in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn next_line(&mut self) -> Result<Option<Line>, AuditError> {
        let mut bytes = Vec::new();
        let n = self.reader.read_until(b'\n', &mut bytes).map_err(|e| AuditError::io(&self.path, "read", e))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let offset = self.offset;
        self.offset += n as u64;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            Ok(Some(Line::Complete { number: self.number, offset, bytes }))
        } else {
            Ok(Some(Line::Torn { number: self.number, offset, bytes }))
        }
    }
}

/// Reads the records of the log at `path`, in order.
///
/// Reads a snapshot (see the module docs); a torn last line is skipped. A
/// line that is not a valid record yields [`AuditError::BadLine`] (the
/// iterator goes on after it). This does not check the chain: use
/// [`verify`](crate::verify()) for that.
pub fn records(path: impl AsRef<Path>) -> Result<Records, AuditError> {
    Ok(Records { lines: LineReader::open(path.as_ref())? })
}

/// Iterator over the records of a log; see [`records`].
pub struct Records {
    lines: LineReader,
}

impl Iterator for Records {
    type Item = Result<Record, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.lines.next_line() {
            Err(e) => Some(Err(e)),
            Ok(None) | Ok(Some(Line::Torn { .. })) => None,
            Ok(Some(Line::Complete { number, bytes, .. })) => Some(Record::from_line(&bytes).map_err(|e| {
                AuditError::BadLine { path: self.lines.path().to_path_buf(), line: number, reason: e.to_string() }
            })),
        }
    }
}
