//! Appending records: [`AuditLog`].
//!
//! # One append
//!
//! 1. Encode the event's fields (outside any lock).
//! 2. Take the in-process mutex (threads sharing one `AuditLog`), then the
//!    exclusive `flock` of the file (other `AuditLog`s, other processes).
//! 3. Find the last complete line: if the file has the length this writer
//!    left it at, reuse what it remembers; otherwise read backwards from the
//!    end in small blocks (never the whole file) to the last `\n`-terminated
//!    line, and take its `seq` and SHA-256.
//! 4. If the file does not end with `\n`, its last line is torn (a writer
//!    died mid-write): the torn bytes are truncated away, with a `tracing`
//!    warning, and the new record chains from the last complete one. So the
//!    torn bytes never end up in the middle of the log, [`verify`] reports a
//!    torn line only while it is the last one (as a warning), and the chain
//!    stays checkable end to end. Nothing of value is lost: a torn record
//!    was never acknowledged to its caller.
//! 5. Append `line + "\n"` with a single `write` (the file is `O_APPEND`).
//! 6. Release the lock; then, for [`AuditLog::append_durable`], `fdatasync`.
//!
//! If the last complete line is not a record (the log was damaged by hand),
//! appending fails with [`AuditError::CorruptTail`]: the writer fails closed
//! rather than invent a sequence number.
//!
//! # Durability
//!
//! [`AuditLog::append_durable`] returns once the record is on disk (use it
//! for `call.start`, which must be on disk before the child runs).
//! [`AuditLog::append`] returns once the record is in the file (visible to
//! every reader, safe from a crash of this process) and leaves the `fsync`
//! to a background thread, which syncs at most [`SyncPolicy::max_delay`]
//! after the first unsynced record, or as soon as
//! [`SyncPolicy::max_records`] are pending. [`AuditLog::sync`] syncs now;
//! dropping the log syncs too.
//!
//! [`verify`]: crate::verify()

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::AuditError;
use crate::hex::to_hex;
use crate::record::{assemble_line, encode_payload, line_digest, Event};
use crate::time::now_ts;

mod tail;

use tail::{read_tail, Tail};

/// When batched appends ([`AuditLog::append`]) reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Longest time a record written by [`AuditLog::append`] stays unsynced
    /// (give or take the time of one `fsync`).
    pub max_delay: Duration,
    /// Sync as soon as this many records are unsynced.
    pub max_records: u64,
}

impl Default for SyncPolicy {
    /// 50 ms or 1024 records, whichever comes first.
    fn default() -> Self {
        SyncPolicy { max_delay: Duration::from_millis(50), max_records: 1024 }
    }
}

/// What [`AuditLog::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedRecord {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's timestamp.
    pub ts: String,
    /// SHA-256 (hex) of the line written: the next record's `prev`.
    pub hash: String,
    /// Byte offset of the line in the file.
    pub offset: u64,
    /// Whether the record was synced to disk before returning.
    pub durable: bool,
}

#[derive(Debug, Default)]
struct State {
    tail: Option<Tail>,
    dirty: u64,
    dirty_since: Option<Instant>,
    shutdown: bool,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: File,
    policy: SyncPolicy,
    state: Mutex<State>,
    wake: Condvar,
}

/// An open audit log, for appending. `Send + Sync`: share it (in an `Arc`)
/// between threads; any number of processes may open the same file.
///
/// ```
/// # fn main() -> Result<(), paddock_audit::AuditError> {
/// # let dir = tempfile::tempdir().unwrap();
/// use paddock_audit::{AuditLog, Call, CallOutcome, Decision, Target};
/// let log = AuditLog::open(dir.path().join("audit.jsonl"))?;
/// let call = Call::new("c1", "s1", Target::command(["ls"]), Decision::Allow).with_rule("commands.allow[0]");
/// let start = log.append_durable(&call.start())?; // on disk before the child runs
/// let end = log.append(&call.end(CallOutcome::exited(0)))?;
/// assert_eq!((start.seq, end.seq), (1, 2));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AuditLog {
    inner: Arc<Inner>,
    /// The sync thread, started by the first batched append (so that a caller that only
    /// appends durably, or has not appended yet, stays single-threaded: the sandbox forks
    /// its helper directly from a single-threaded process). `None` inside when the thread
    /// could not start: batched appends are then synced at once.
    flusher: std::sync::OnceLock<Option<JoinHandle<()>>>,
}

impl AuditLog {
    /// Opens (or creates) the log at `path` with the default [`SyncPolicy`].
    ///
    /// Missing parent directories are created with mode 0700 and a new log
    /// file with mode 0600 (an existing file keeps its mode).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_with(path, SyncPolicy::default())
    }

    /// Opens (or creates) the log at `path` with the given [`SyncPolicy`].
    pub fn open_with(path: impl AsRef<Path>, policy: SyncPolicy) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent {
            crate::state::create_private_dir(dir)?;
        }
        let mut opts = OpenOptions::new();
        // Never through a symlink: one planted in the log's place (by a call that could
        // once write `$STATE`) would have paddock append to, or cut, a file of its choice.
        opts.read(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
        let (file, created) = match opts.clone().create_new(true).open(&path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                (opts.open(&path).map_err(|e| crate::state::nofollow_error(&path, "open", e))?, false)
            }
            Err(e) => return Err(AuditError::io(&path, "create", e)),
        };
        let meta = file.metadata().map_err(|e| AuditError::io(&path, "inspect", e))?;
        if !meta.is_file() {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(AuditError::io(&path, "open", e));
        }
        // paddock hides the log's path from every view, not its other names: a hard link
        // (made before, in a tree a sandbox is granted) would let a call cut the log.
        if meta.nlink() > 1 {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "it has {} names (hard links), and only this one is hidden from the sandbox; remove the others (`find / -xdev -samefile {}`)",
                    meta.nlink(),
                    path.display()
                ),
            );
            return Err(AuditError::io(&path, "open", e));
        }
        if created {
            // Make the new directory entry durable too.
            if let Ok(d) = File::open(parent.unwrap_or(Path::new("."))) {
                let _ = d.sync_all();
            }
            tracing::debug!(path = %path.display(), "created audit log");
        }
        let inner = Arc::new(Inner { path, file, policy, state: Mutex::new(State::default()), wake: Condvar::new() });
        Ok(AuditLog { inner, flusher: std::sync::OnceLock::new() })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends `event`; the `fsync` follows within the [`SyncPolicy`].
    pub fn append(&self, event: &Event) -> Result<AppendedRecord, AuditError> {
        let started = self.start_sync_thread();
        self.inner.append(event, !started)
    }

    /// Starts the thread that syncs appended records within the [`SyncPolicy`], if it is
    /// not running yet (the first [`AuditLog::append`] does it otherwise). A caller that
    /// waits anyway can start it then, instead of on the way of its first record. `false`
    /// when it could not start: then every append syncs its record.
    pub fn start_sync_thread(&self) -> bool {
        self.flusher
            .get_or_init(|| {
                let for_thread = Arc::clone(&self.inner);
                std::thread::Builder::new()
                    .name("paddock-audit-sync".into())
                    .spawn(move || flusher(&for_thread))
                    .map_err(|e| tracing::warn!(error = %e, "audit log: no sync thread; syncing every record"))
                    .ok()
            })
            .is_some()
    }

    /// Appends `event` and syncs it to disk before returning.
    pub fn append_durable(&self, event: &Event) -> Result<AppendedRecord, AuditError> {
        self.inner.append(event, true)
    }

    /// [`AuditLog::append_durable`], if `still` answers `true` once this writer holds the
    /// file's lock (no other writer, of any process, can append meanwhile); `None`, with
    /// nothing written, when it answers `false`.
    ///
    /// So a record is ordered after every record whose writer changed what `still` looks
    /// at before appending: `call.start` is written only if the revocation list is still
    /// the one its call was decided under, so no call recorded after a `revoke` record
    /// uses what that revocation withdrew.
    pub fn append_durable_if(
        &self,
        event: &Event,
        still: &mut dyn FnMut() -> bool,
    ) -> Result<Option<AppendedRecord>, AuditError> {
        self.inner.append_if(event, true, Some(still))
    }

    /// Syncs every record appended so far to disk.
    pub fn sync(&self) -> Result<(), AuditError> {
        let pending = {
            let mut st = self.inner.lock_state();
            st.dirty_since = None;
            std::mem::take(&mut st.dirty)
        };
        self.inner.sync_data(pending)
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.inner.lock_state().shutdown = true;
        self.inner.wake.notify_all();
        if let Some(Some(t)) = self.flusher.take() {
            let _ = t.join();
        }
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "audit log: final sync failed");
        }
    }
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                // A thread panicked mid-append: forget the cached tail and
                // read it again from the file.
                let mut g = poisoned.into_inner();
                g.tail = None;
                self.state.clear_poison();
                g
            }
        }
    }

    fn append(&self, event: &Event, durable: bool) -> Result<AppendedRecord, AuditError> {
        let appended = self.append_if(event, durable, None)?;
        Ok(appended.expect("an append without a condition always appends"))
    }

    fn append_if(
        &self,
        event: &Event,
        durable: bool,
        still: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<Option<AppendedRecord>, AuditError> {
        let payload = encode_payload(event).map_err(AuditError::Encode)?;
        let kind = event.kind();

        let mut st = self.lock_state();
        let flock = FileLock::acquire(&self.file, &self.path)?;
        if let Some(still) = still {
            if !still() {
                return Ok(None);
            }
        }
        let len = self.file.metadata().map_err(|e| AuditError::io(&self.path, "inspect", e))?.len();
        let tail = match st.tail {
            Some(t) if t.len == len => t,
            _ => {
                st.tail = None;
                read_tail(&self.file, &self.path, len)?
            }
        };
        let seq = tail.seq + 1;
        let ts = now_ts();
        let mut line = assemble_line(seq, &ts, kind, &to_hex(&tail.hash), &payload);
        let hash = line_digest(line.as_bytes());
        line.push('\n');
        if let Err(e) = (&self.file).write_all(line.as_bytes()) {
            // Part of the line may be in the file: the next append re-reads
            // the tail and truncates it.
            st.tail = None;
            return Err(AuditError::io(&self.path, "append to", e));
        }
        st.tail = Some(Tail { len: tail.len + line.len() as u64, seq, hash });
        drop(flock);

        let record = AppendedRecord { seq, ts, hash: to_hex(&hash), offset: tail.len, durable };
        if durable {
            // Everything written so far is covered by this sync.
            let pending = std::mem::take(&mut st.dirty) + 1;
            st.dirty_since = None;
            drop(st);
            self.sync_data(pending)?;
        } else {
            st.dirty += 1;
            if st.dirty == 1 {
                st.dirty_since = Some(Instant::now());
                self.wake.notify_one();
            } else if st.dirty == self.policy.max_records {
                self.wake.notify_one();
            }
        }
        Ok(Some(record))
    }

    /// `fdatasync`; on failure the `pending` records count as unsynced again.
    fn sync_data(&self, pending: u64) -> Result<(), AuditError> {
        if let Err(e) = self.file.sync_data() {
            let mut st = self.lock_state();
            st.dirty += pending;
            st.dirty_since.get_or_insert_with(Instant::now);
            return Err(AuditError::io(&self.path, "sync", e));
        }
        Ok(())
    }
}

/// The background thread that applies the [`SyncPolicy`].
fn flusher(inner: &Inner) {
    let policy = inner.policy;
    let mut st = inner.lock_state();
    loop {
        if st.shutdown {
            return;
        }
        let Some(since) = st.dirty_since.filter(|_| st.dirty > 0) else {
            st = inner.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let due = since + policy.max_delay;
        let now = Instant::now();
        if st.dirty < policy.max_records && now < due {
            st = inner.wake.wait_timeout(st, due - now).unwrap_or_else(|p| p.into_inner()).0;
            continue;
        }
        let pending = std::mem::take(&mut st.dirty);
        st.dirty_since = None;
        drop(st);
        let failed = inner.sync_data(pending).err();
        st = inner.lock_state();
        if let Some(e) = failed {
            tracing::warn!(error = %e, "audit log: background sync failed; retrying");
            st = inner.wake.wait_timeout(st, policy.max_delay).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// The exclusive `flock` of the log, released on drop.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn acquire(file: &'a File, path: &Path) -> Result<Self, AuditError> {
        file.lock().map_err(|e| AuditError::io(path, "lock", e))?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests;
