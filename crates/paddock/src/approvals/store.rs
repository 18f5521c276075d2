//! `$STATE/approvals/`: one file per open question (`ID.question.json`) and, once a
//! person answered, one per answer (`ID.answer.json`), each written whole (a temporary
//! file, mode 0600, renamed or linked into place), so any process of the same user can
//! list the questions and answer them, and a reader never sees half a file. The first
//! answer wins: an answer is linked into place, which fails when one is there.
//!
//! The asker holds a shared lock on its question's file while it waits, and takes the
//! files down only once it has done what the answer says (kept it in the approved list, for
//! "always"). So a question whose lock is free was left by an asker that ended: it is not
//! listed, and it takes no answer that nobody would carry out; and an answerer can tell
//! that its answer was taken from the question's file being gone.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::question::{Answer, Question};

/// How long after its deadline a question left behind is removed by a listing.
const STALE_MS: u64 = 60_000;

/// The directory's name in `$STATE`.
pub const APPROVALS_DIR: &str = "approvals";

/// Why an answer was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// No open question has this id.
    #[error(
        "no open question `{0}` (it was answered, timed out, never asked, or the call that asked has ended): `paddock approvals` lists the open ones"
    )]
    Unknown(String),
    /// Someone answered first.
    #[error("question `{0}` was already answered")]
    Answered(String),
    /// The asker ended before it had an answer: nothing would carry one out.
    #[error("the call that asked question `{0}` has ended: nothing was answered, and nothing kept")]
    Ended(String),
    /// The file could not be written.
    #[error("cannot write the answer to `{0}`: {1}")]
    Io(String, std::io::Error),
}

/// The asker's hold on its open question (a shared lock on the question's file), until
/// dropped.
#[derive(Debug)]
pub struct Asking {
    _held: File,
}

/// What became of an answer, as its answerer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The asker took it and did what it says.
    Yes,
    /// The asker ended before it took it.
    AskerEnded,
    /// The asker stopped waiting (its deadline passed) before the answer came.
    TooLate,
    /// The asker has not taken it yet (it is stopped, or very busy).
    NotYet,
}

/// Whether the asker of a question is still there.
#[derive(Debug, PartialEq, Eq)]
enum Asker {
    Waiting,
    Ended,
    /// The question is gone.
    Gone,
}

/// The questions directory of one `$STATE`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Whether `id` can name a question file (no path in it).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Store {
    /// The store in `state` (`$STATE`), created 0700 when absent.
    pub fn open(state: &Path) -> std::io::Result<Store> {
        let dir = state.join(APPROVALS_DIR);
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
        Ok(Store { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn question_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.question.json"))
    }

    fn answer_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.answer.json"))
    }

    /// Where an asker leaves the answer it took, for its answerer to see.
    fn taken_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.taken.json"))
    }

    /// Says that the answer to `id` was taken and carried out (the asker's last step
    /// before it takes the question down): the answer file becomes the taken one. Only an
    /// answer marked so is "taken" to its answerer; a question taken down without it timed
    /// out (found by a test: an answer that came after the asker's deadline was said kept).
    pub fn mark_taken(&self, id: &str) {
        if let Err(e) = std::fs::rename(self.answer_path(id), self.taken_path(id)) {
            tracing::warn!(id, "cannot mark the answer taken: {e}");
        }
    }

    /// Takes the taken mark of `id` away; whether there was one.
    fn take_mark(&self, id: &str) -> bool {
        std::fs::remove_file(self.taken_path(id)).is_ok()
    }

    /// Writes `bytes` to a new temporary file (0600) in the directory; its path and file.
    fn temp(&self, bytes: &[u8]) -> std::io::Result<(PathBuf, File)> {
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(".tmp-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok((tmp, f))
    }

    /// Puts a question up; it stays answerable while the returned hold lives.
    pub fn put(&self, q: &Question) -> std::io::Result<Asking> {
        let bytes = serde_json::to_vec(q).map_err(std::io::Error::other)?;
        let (tmp, held) = self.temp(&bytes)?;
        let put = held.lock_shared().and_then(|()| std::fs::rename(&tmp, self.question_path(&q.id)));
        put.inspect_err(|_| {
            std::fs::remove_file(&tmp).ok();
        })?;
        Ok(Asking { _held: held })
    }

    /// Whether the asker of question `id` still holds it.
    fn asker(&self, id: &str) -> Asker {
        let f = match File::open(self.question_path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Asker::Gone,
            // Unreadable: taken as held, so that it is neither removed nor answered blind.
            Err(_) => return Asker::Waiting,
        };
        match f.try_lock() {
            Ok(()) => Asker::Ended,
            Err(TryLockError::WouldBlock) => Asker::Waiting,
            Err(TryLockError::Error(_)) => Asker::Waiting,
        }
    }

    /// The open question `id`, if there is one (answered or not).
    pub fn get(&self, id: &str) -> Option<Question> {
        if !valid_id(id) {
            return None;
        }
        let bytes = std::fs::read(self.question_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The open questions not yet answered and not past their deadline, oldest first.
    pub fn list(&self) -> std::io::Result<Vec<Question>> {
        let now = now_ms();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(".taken.json")) {
                // A mark whose answerer went away before it looked.
                let old = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if old.is_some_and(|age| age.as_millis() as u64 > STALE_MS) {
                    std::fs::remove_file(entry.path()).ok();
                }
                continue;
            }
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".question.json")) else { continue };
            let Some(q) = self.get(id) else { continue };
            if q.deadline_ms.saturating_add(STALE_MS) <= now || self.asker(id) == Asker::Ended {
                // Its asker ended while it waited (a waiting asker removes its own).
                self.remove(id);
                continue;
            }
            if q.deadline_ms <= now || self.answer_path(id).exists() {
                continue;
            }
            out.push(q);
        }
        out.sort_by(|a, b| (&a.asked_at, &a.id).cmp(&(&b.asked_at, &b.id)));
        Ok(out)
    }

    /// Records `answer` to the open question `id`; the first answer wins.
    pub fn answer(&self, id: &str, answer: &Answer) -> Result<(), AnswerError> {
        let q = self.get(id).ok_or_else(|| AnswerError::Unknown(id.to_string()))?;
        if q.deadline_ms <= now_ms() {
            return Err(AnswerError::Unknown(id.to_string()));
        }
        match self.asker(id) {
            Asker::Waiting => {}
            Asker::Gone => return Err(AnswerError::Unknown(id.to_string())),
            Asker::Ended => {
                self.remove(id);
                return Err(AnswerError::Ended(id.to_string()));
            }
        }
        let shown = self.answer_path(id).display().to_string();
        let bytes = serde_json::to_vec(answer).map_err(|e| AnswerError::Io(shown.clone(), std::io::Error::other(e)))?;
        let (tmp, _) = self.temp(&bytes).map_err(|e| AnswerError::Io(shown.clone(), e))?;
        let linked = std::fs::hard_link(&tmp, self.answer_path(id));
        std::fs::remove_file(&tmp).ok();
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(AnswerError::Answered(id.to_string())),
            Err(e) => Err(AnswerError::Io(shown, e)),
        }
    }

    /// What became of the answer given to `id`, waiting up to `within` for its asker to
    /// take it (an asker looks every few tens of milliseconds).
    pub fn taken(&self, id: &str, within: std::time::Duration) -> Taken {
        let deadline = std::time::Instant::now() + within;
        loop {
            if self.take_mark(id) {
                return Taken::Yes;
            }
            match self.asker(id) {
                // Marked just before the question went: looked at again.
                Asker::Gone if self.take_mark(id) => return Taken::Yes,
                Asker::Gone => {
                    self.remove(id);
                    return Taken::TooLate;
                }
                Asker::Ended => {
                    self.remove(id);
                    return Taken::AskerEnded;
                }
                Asker::Waiting if std::time::Instant::now() >= deadline => return Taken::NotYet,
                Asker::Waiting => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }

    /// The answer to `id`, once there is one.
    pub fn answered(&self, id: &str) -> Option<Answer> {
        let bytes = std::fs::read(self.answer_path(id)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(id, "unreadable answer file: {e}; waiting on");
                None
            }
        }
    }

    /// Takes question `id` and its answer down.
    pub fn remove(&self, id: &str) {
        for p in [self.question_path(id), self.answer_path(id)] {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), "cannot remove: {e}");
                }
            }
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::question::{Scope, Verdict};

    fn q(id: &str, deadline_ms: u64) -> Question {
        Question {
            id: id.into(),
            kind: "network".into(),
            subject: "a.test:8080".into(),
            proposed: "[network] allow = [\"a.test:8080\"]".into(),
            session: "s".into(),
            pid: 1,
            workspace: "/w".into(),
            asked_at: "t".into(),
            rule: "network.ask[0]".into(),
            entry: "a.test:8080".into(),
            deadline_ms,
            cwd: None,
            stdin: None,
            program: None,
        }
    }

    #[test]
    fn first_answer_wins_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let _held = [
            s.put(&q("q1", now_ms() + 60_000)).unwrap(),
            s.put(&q("q2", now_ms() - 1)).unwrap(),
            s.put(&q("q3", now_ms() - STALE_MS - 1)).unwrap(),
        ];
        assert_eq!(
            s.list().unwrap().iter().map(|q| q.id.as_str()).collect::<Vec<_>>(),
            ["q1"],
            "past deadline: not listed"
        );
        assert!(s.get("q3").is_none() && s.get("q2").is_some(), "left behind long ago: removed");
        let mode = std::fs::metadata(s.dir().join("q1.question.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let a = Answer::new(Verdict::Allow, Scope::Once, "me".into()).unwrap();
        s.answer("q1", &a).unwrap();
        assert!(matches!(s.answer("q1", &a), Err(AnswerError::Answered(_))));
        assert!(matches!(s.answer("nope", &a), Err(AnswerError::Unknown(_))));
        assert!(matches!(s.answer("../x", &a), Err(AnswerError::Unknown(_))));
        assert_eq!(s.answered("q1"), Some(a));
        assert!(s.list().unwrap().is_empty(), "answered: not listed");
        s.remove("q1");
        assert!(s.get("q1").is_none());
        assert!(Answer::new(Verdict::Deny, Scope::Session, "me".into()).is_err());
    }

    #[test]
    fn a_question_whose_asker_ended_is_neither_listed_nor_answered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let held = s.put(&q("q1", now_ms() + 60_000)).unwrap();
        let a = Answer::new(Verdict::Allow, Scope::Always, "me".into()).unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
        assert_eq!(s.taken("q1", std::time::Duration::ZERO), Taken::NotYet, "not answered, still held");
        drop(held);
        assert!(s.list().unwrap().is_empty(), "its asker ended");
        assert!(s.get("q1").is_none(), "taken down");

        let held = s.put(&q("q2", now_ms() + 60_000)).unwrap();
        drop(held);
        assert!(matches!(s.answer("q2", &a), Err(AnswerError::Ended(_))));
        assert!(s.answered("q2").is_none(), "no answer written");

        let held = s.put(&q("q3", now_ms() + 60_000)).unwrap();
        s.answer("q3", &a).unwrap();
        drop(held);
        assert_eq!(s.taken("q3", std::time::Duration::from_secs(5)), Taken::AskerEnded);

        let held = s.put(&q("q4", now_ms() + 60_000)).unwrap();
        s.answer("q4", &a).unwrap();
        s.mark_taken("q4");
        s.remove("q4");
        drop(held);
        assert_eq!(
            s.taken("q4", std::time::Duration::from_secs(5)),
            Taken::Yes,
            "the asker took it, then took it down"
        );
        assert!(!s.dir().join("q4.taken.json").exists(), "the mark is the answerer's to take away");

        // Taken down without the mark: the asker stopped waiting first.
        let held = s.put(&q("q5", now_ms() + 60_000)).unwrap();
        s.answer("q5", &a).unwrap();
        s.remove("q5");
        drop(held);
        assert_eq!(s.taken("q5", std::time::Duration::from_secs(5)), Taken::TooLate);
    }
}
