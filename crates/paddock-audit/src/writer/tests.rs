use super::*;
use crate::payload::{Call, Decision, Target};
use crate::record::{line_hash, Record, GENESIS_PREV};
use std::os::unix::fs::PermissionsExt;

fn ev(i: usize) -> Event {
    Call::new(format!("c{i}"), "s", Target::command(["true"]), Decision::Allow).start()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn creates_private_file_and_dirs_and_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/sub/audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let a = log.append(&ev(1)).unwrap();
    let b = log.append_durable(&ev(2)).unwrap();
    assert_eq!((a.seq, a.offset, a.durable), (1, 0, false));
    assert_eq!((b.seq, b.durable), (2, true));
    drop(log);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let l = lines(&path);
    let r1 = Record::from_line(l[0].as_bytes()).unwrap();
    let r2 = Record::from_line(l[1].as_bytes()).unwrap();
    assert_eq!(r1.prev, GENESIS_PREV);
    assert_eq!(r2.prev, line_hash(l[0].as_bytes()));
    assert_eq!(a.hash, r2.prev);
    assert_eq!(b.offset, l[0].len() as u64 + 1);
}

#[test]
fn reopening_continues_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    AuditLog::open(&path).unwrap().append(&ev(1)).unwrap();
    let second = AuditLog::open(&path).unwrap();
    let r = second.append(&ev(2)).unwrap();
    assert_eq!(r.seq, 2);
}

#[test]
fn another_writer_invalidates_the_cached_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let a = AuditLog::open(&path).unwrap();
    let b = AuditLog::open(&path).unwrap();
    for i in 0..10 {
        let w = if i % 3 == 0 { &a } else { &b };
        assert_eq!(w.append(&ev(i)).unwrap().seq, i as u64 + 1);
    }
}

#[test]
fn torn_tail_is_truncated_and_chained_over() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    log.append(&ev(1)).unwrap();
    let good_len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"seq":2,"ts":"20"#).unwrap();
    let r = log.append(&ev(2)).unwrap();
    assert_eq!((r.seq, r.offset), (2, good_len));
    let l = lines(&path);
    assert_eq!(l.len(), 2);
    assert_eq!(Record::from_line(l[1].as_bytes()).unwrap().prev, line_hash(l[0].as_bytes()));
}

#[test]
fn a_torn_only_file_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    std::fs::write(&path, b"{\"seq\":1,").unwrap();
    let r = AuditLog::open(&path).unwrap().append(&ev(1)).unwrap();
    assert_eq!((r.seq, r.offset), (1, 0));
}

#[test]
fn long_last_line_is_found_across_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let big = Call::new("c", "s", Target::command(vec!["x".repeat(50_000)]), Decision::Allow).start();
    AuditLog::open(&path).unwrap().append(&big).unwrap();
    AuditLog::open(&path).unwrap().append(&big).unwrap();
    let r = AuditLog::open(&path).unwrap().append(&ev(3)).unwrap();
    assert_eq!(r.seq, 3);
    let l = lines(&path);
    assert_eq!(Record::from_line(l[2].as_bytes()).unwrap().prev, line_hash(l[1].as_bytes()));
}

#[test]
fn corrupt_last_line_fails_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    std::fs::write(&path, b"not json\n").unwrap();
    let err = AuditLog::open(&path).unwrap().append(&ev(1)).unwrap_err();
    assert!(matches!(err, AuditError::CorruptTail { offset: 0, .. }), "{err}");
    assert!(err.to_string().contains("paddock audit verify"));
}

#[test]
fn background_sync_runs_and_threads_share_a_log() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let log = Arc::new(
        AuditLog::open_with(&path, SyncPolicy { max_delay: Duration::from_millis(5), max_records: 7 }).unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..100 {
                    log.append(&ev(t * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // The flusher syncs within `max_delay` of the last append, once it has the core and
    // any sync under way has returned: polled, not slept on.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while log.inner.lock_state().dirty != 0 {
        assert!(std::time::Instant::now() < deadline, "the flusher never synced the last records");
        std::thread::sleep(Duration::from_millis(2));
    }
    let l = lines(&path);
    assert_eq!(l.len(), 400);
    for (i, w) in l.windows(2).enumerate() {
        let r = Record::from_line(w[1].as_bytes()).unwrap();
        assert_eq!(r.seq, i as u64 + 2);
        assert_eq!(r.prev, line_hash(w[0].as_bytes()));
    }
}

#[test]
fn a_symlink_in_the_logs_place_is_refused_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim.rc");
    std::fs::write(&victim, "export IMPORTANT=1\n# no newline").unwrap();
    let path = tmp.path().join("state/audit.jsonl");
    std::fs::create_dir(tmp.path().join("state")).unwrap();
    // Control: the same path as a plain file is opened and written.
    drop(AuditLog::open(&path).unwrap().append(&ev(1)).unwrap());
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let e = match AuditLog::open(&path) {
        Ok(_) => panic!("a symlinked log is refused"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("symlink"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "export IMPORTANT=1\n# no newline",
        "the target is untouched"
    );
}

#[test]
fn a_conditional_append_asks_under_the_lock_and_writes_only_on_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let other = AuditLog::open(&path).unwrap();
    log.append(&ev(1)).unwrap();
    // While the condition is asked, no other writer can append: a try-lock of the file
    // from another descriptor fails then.
    let probe = std::fs::File::open(&path).unwrap();
    let mut asked = 0;
    let mut still = || {
        asked += 1;
        matches!(probe.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    };
    let r = log.append_durable_if(&ev(2), &mut still).unwrap().expect("the lock was held, so the answer was yes");
    assert_eq!((r.seq, r.durable, asked), (2, true, 1));
    // No: nothing is written, and the chain goes on from the last record.
    assert!(log.append_durable_if(&ev(3), &mut || false).unwrap().is_none());
    assert_eq!(lines(&path).len(), 2);
    assert_eq!(other.append(&ev(4)).unwrap().seq, 3);
}
