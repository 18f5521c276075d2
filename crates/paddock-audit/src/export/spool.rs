//! Cursors: how far each collector has acknowledged each log, and the backlog after it.
//!
//! `$STATE/export/KEY/` per (log, collector), KEY the first 16 hex digits of the SHA-256
//! of `LOG\nURL`: `cursor.json` (replaced atomically after each delivered batch) and
//! `lock` (held by the one shipper working on it).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ExportError;
use crate::hex::to_hex;
use crate::record::{line_hash, GENESIS_PREV};
use crate::time::now_ts;

/// Name of the directory of cursors inside `$STATE`.
pub const EXPORT_DIR: &str = "export";
const CURSOR_FILE: &str = "cursor.json";
const LOCK_FILE: &str = "lock";

/// What a cursor file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The collector URL.
    pub url: String,
    /// The audit log.
    pub log: PathBuf,
    /// Byte offset after the last delivered line.
    pub offset: u64,
    /// `seq` of the last delivered record (0: none yet).
    pub seq: u64,
    /// SHA-256 of the last delivered line (`GENESIS_PREV` before the first).
    pub hash: String,
    /// Records delivered through this cursor, in all.
    pub delivered: u64,
    /// When a batch was last delivered.
    pub last_success: Option<String>,
    /// The last failure, if any (kept after later successes; see `last_error_at`).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<String>,
}

impl Cursor {
    fn new(url: &str, log: &Path) -> Cursor {
        Cursor {
            url: url.to_owned(),
            log: log.to_path_buf(),
            offset: 0,
            seq: 0,
            hash: GENESIS_PREV.to_owned(),
            delivered: 0,
            last_success: None,
            last_error: None,
            last_error_at: None,
        }
    }
}

/// One line of the backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The line, without `\n`.
    pub bytes: Vec<u8>,
    /// Byte offset after its `\n`.
    pub end: u64,
}

/// The backlog of one (log, collector), locked for shipping.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cursor: Cursor,
    _lock: File,
}

/// The directory of the cursor of (`log`, `url`) in `state_dir`.
pub fn cursor_dir(state_dir: &Path, log: &Path, url: &str) -> PathBuf {
    let key = Sha256::digest(format!("{}\n{url}", log.display()).as_bytes());
    state_dir.join(EXPORT_DIR).join(&to_hex(&key)[..16])
}

impl Spool {
    /// Takes the cursor of (`log`, `url`) for shipping: `Ok(None)` if another process
    /// holds it. `log` should be absolute (it names the cursor).
    pub fn acquire(state_dir: &Path, log: &Path, url: &str) -> Result<Option<Spool>, ExportError> {
        let dir = cursor_dir(state_dir, log, url);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ExportError::io(&dir, "create directory", e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| ExportError::io(&lock_path, "open", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(ExportError::io(&lock_path, "lock", e)),
        }
        let cursor = match read_cursor(&dir.join(CURSOR_FILE))? {
            Some(c) => c,
            None => Cursor::new(url, log),
        };
        Ok(Some(Spool { dir, cursor, _lock: lock }))
    }

    /// The cursor.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// The lock file of a cursor directory.
    pub fn lock_path(state_dir: &Path, log: &Path, url: &str) -> PathBuf {
        cursor_dir(state_dir, log, url).join(LOCK_FILE)
    }

    /// Up to `max_records` lines (and about `max_bytes`) after the cursor. If the first
    /// of them does not chain to the cursor, the log was replaced: the cursor starts
    /// again at its first line, and the status says so.
    pub fn next_batch(&mut self, max_records: usize, max_bytes: usize) -> Result<Vec<Pending>, ExportError> {
        let log = self.cursor.log.clone();
        let (mut file, len) = match open_snapshot(&log) {
            Ok(x) => x,
            // No log yet: nothing is pending.
            Err(ExportError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        if self.cursor.offset > len {
            self.restart(format!(
                "{} is shorter than the cursor (offset {}): shipping it again from its start",
                log.display(),
                self.cursor.offset
            ))?;
        }
        let mut batch = read_lines(&mut file, &log, self.cursor.offset, len, max_records, max_bytes)?;
        if self.cursor.offset > 0 {
            if let Some(first) = batch.first() {
                if prev_of(&first.bytes).as_deref() != Some(self.cursor.hash.as_str()) {
                    self.restart(format!(
                        "the record after seq {} in {} does not chain to it (the log was replaced or rewritten): shipping it again from its start",
                        self.cursor.seq,
                        log.display()
                    ))?;
                    batch = read_lines(&mut file, &log, 0, len, max_records, max_bytes)?;
                }
            }
        }
        Ok(batch)
    }

    fn restart(&mut self, why: String) -> Result<(), ExportError> {
        tracing::warn!(log = %self.cursor.log.display(), url = %self.cursor.url, "{why}");
        self.cursor.offset = 0;
        self.cursor.seq = 0;
        self.cursor.hash = GENESIS_PREV.to_owned();
        self.cursor.last_error = Some(why);
        self.cursor.last_error_at = Some(now_ts());
        self.save()
    }

    /// Moves the cursor past `batch` (delivered) and saves it.
    pub fn delivered(&mut self, batch: &[Pending]) -> Result<(), ExportError> {
        let Some(last) = batch.last() else { return Ok(()) };
        self.cursor.offset = last.end;
        self.cursor.hash = line_hash(&last.bytes);
        if let Some(seq) = seq_of(&last.bytes) {
            self.cursor.seq = seq;
        }
        self.cursor.delivered += batch.len() as u64;
        self.cursor.last_success = Some(now_ts());
        self.save()
    }

    /// Records a failure and saves the cursor.
    pub fn failed(&mut self, reason: &str) -> Result<(), ExportError> {
        self.cursor.last_error = Some(reason.to_owned());
        self.cursor.last_error_at = Some(now_ts());
        self.save()
    }

    fn save(&self) -> Result<(), ExportError> {
        let path = self.dir.join(CURSOR_FILE);
        let tmp = self.dir.join("cursor.json.tmp");
        let text = serde_json::to_vec_pretty(&self.cursor)
            .map_err(|e| ExportError::BadCursor { path: path.clone(), reason: e.to_string() })?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ExportError::io(&tmp, "open", e))?;
        f.write_all(&text).and_then(|()| f.sync_data()).map_err(|e| ExportError::io(&tmp, "write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ExportError::io(&path, "replace", e))
    }
}

fn read_cursor(path: &Path) -> Result<Option<Cursor>, ExportError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| ExportError::BadCursor { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExportError::io(path, "read", e)),
    }
}

/// Opens the log (regular files only, never blocking on a FIFO) and takes its length
/// under the shared lock: every byte before it belongs to a finished append.
fn open_snapshot(log: &Path) -> Result<(File, u64), ExportError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(log)
        .map_err(|e| ExportError::io(log, "open", e))?;
    let meta = file.metadata().map_err(|e| ExportError::io(log, "inspect", e))?;
    if !meta.is_file() {
        return Err(ExportError::io(
            log,
            "open",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    file.lock_shared().map_err(|e| ExportError::io(log, "lock", e))?;
    let len = file.metadata().map(|m| m.len());
    file.unlock().map_err(|e| ExportError::io(log, "unlock", e))?;
    Ok((file, len.map_err(|e| ExportError::io(log, "inspect", e))?))
}

/// Complete lines between `from` and `len`.
fn read_lines(
    file: &mut File,
    log: &Path,
    from: u64,
    len: u64,
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<Pending>, ExportError> {
    file.seek(SeekFrom::Start(from)).map_err(|e| ExportError::io(log, "seek", e))?;
    let mut r = BufReader::new(file.take(len - from));
    let mut out = Vec::new();
    let (mut pos, mut bytes) = (from, 0usize);
    while out.len() < max_records && (bytes < max_bytes || out.is_empty()) {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).map_err(|e| ExportError::io(log, "read", e))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a torn line still being written
        }
        line.pop();
        pos += n as u64;
        bytes += n;
        out.push(Pending { bytes: line, end: pos });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Head {
    seq: Option<u64>,
    prev: Option<String>,
}

fn seq_of(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Head>(line).ok()?.seq
}

fn prev_of(line: &[u8]) -> Option<String> {
    serde_json::from_slice::<Head>(line).ok()?.prev
}

/// What `paddock audit export --status` shows for one cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolStatus {
    /// The cursor.
    #[serde(flatten)]
    pub cursor: Cursor,
    /// Records waiting in the log after the cursor (`None` if the log cannot be read).
    pub pending_records: Option<u64>,
    /// Their bytes.
    pub pending_bytes: Option<u64>,
    /// Why the backlog could not be counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// Whether a shipper holds the cursor now.
    pub shipping: bool,
}

/// The status of every cursor in `state_dir`, sorted by log then URL.
pub fn spool_status(state_dir: &Path) -> Result<Vec<SpoolStatus>, ExportError> {
    let root = state_dir.join(EXPORT_DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ExportError::io(&root, "list", e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let dir = entry.map_err(|e| ExportError::io(&root, "list", e))?.path();
        let Some(cursor) = read_cursor(&dir.join(CURSOR_FILE))? else { continue };
        let shipping = match File::open(dir.join(LOCK_FILE)) {
            Ok(f) => match f.try_lock_shared() {
                Ok(()) => false,
                Err(std::fs::TryLockError::WouldBlock) => true,
                Err(std::fs::TryLockError::Error(_)) => false,
            },
            Err(_) => false,
        };
        let (pending_records, pending_bytes, log_error) = match backlog(&cursor) {
            Ok((n, b)) => (Some(n), Some(b), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        out.push(SpoolStatus { cursor, pending_records, pending_bytes, log_error, shipping });
    }
    out.sort_by(|a, b| (&a.cursor.log, &a.cursor.url).cmp(&(&b.cursor.log, &b.cursor.url)));
    Ok(out)
}

/// Complete lines and bytes after the cursor.
fn backlog(c: &Cursor) -> Result<(u64, u64), ExportError> {
    let (file, len) = open_snapshot(&c.log)?;
    let from = if c.offset > len { 0 } else { c.offset };
    let mut r = BufReader::new(file);
    r.seek(SeekFrom::Start(from)).map_err(|e| ExportError::io(&c.log, "seek", e))?;
    let mut r = r.take(len - from);
    let (mut lines, mut bytes, mut buf) = (0u64, 0u64, Vec::new());
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(|e| ExportError::io(&c.log, "read", e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        lines += 1;
        bytes += n as u64;
    }
    Ok((lines, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuditLog, Call, Decision, Target};

    #[test]
    fn cursor_moves_only_on_delivery_and_notices_a_replaced_log() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&log_path).unwrap();
        for i in 0..5 {
            log.append(&Call::new(format!("c{i}"), "s", Target::command(["ls"]), Decision::Allow).start()).unwrap();
        }
        let mut s = Spool::acquire(dir.path(), &log_path, "http://c").unwrap().unwrap();
        assert!(Spool::acquire(dir.path(), &log_path, "http://c").unwrap().is_none(), "one shipper at a time");
        let b = s.next_batch(3, usize::MAX).unwrap();
        assert_eq!(b.len(), 3);
        s.failed("down").unwrap();
        assert_eq!(s.next_batch(3, usize::MAX).unwrap(), b, "nothing moves on failure");
        s.delivered(&b).unwrap();
        drop(s);
        let st = spool_status(dir.path()).unwrap();
        assert_eq!(
            (st[0].cursor.seq, st[0].pending_records, st[0].cursor.last_error.as_deref()),
            (3, Some(2), Some("down"))
        );
        let mut s = Spool::acquire(dir.path(), &log_path, "http://c").unwrap().unwrap();
        let rest = s.next_batch(10, usize::MAX).unwrap();
        assert_eq!(rest.iter().map(|p| seq_of(&p.bytes).unwrap()).collect::<Vec<_>>(), [4, 5]);
        s.delivered(&rest).unwrap();
        assert!(s.next_batch(10, usize::MAX).unwrap().is_empty());
        // A new log in its place: shipped from its start, and said.
        drop(log);
        std::fs::remove_file(&log_path).unwrap();
        let log = AuditLog::open(&log_path).unwrap();
        for i in 0..7 {
            log.append(&Call::new(format!("d{i}"), "s", Target::command(["ls"]), Decision::Allow).start()).unwrap();
        }
        let again = s.next_batch(10, usize::MAX).unwrap();
        assert_eq!(again.len(), 7);
        assert!(s.cursor().last_error.as_deref().unwrap().contains("does not chain"));
    }
}
