//! A torn last line (a crash mid-write) is a warning; the next writer chains
//! from the last complete record.

mod common;

use std::io::Write;

use common::{lines, ten_record_log};
use paddock_audit::{line_hash, verify, AuditLog, Call, Decision, Record, Target};

fn append_raw(path: &std::path::Path, bytes: &[u8]) {
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

#[test]
fn torn_tail_is_a_warning_then_the_next_writer_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let before = ten_record_log(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    let torn = br#"{"seq":11,"ts":"2026-03-01T12:00:00.000Z","event":"call.st"#;
    append_raw(&path, torn);

    let r = verify(&path).unwrap();
    assert!(r.is_intact(), "{r}");
    assert_eq!(r.records, 10);
    let t = r.torn_tail.as_ref().unwrap();
    assert_eq!((t.line, t.offset, t.bytes), (11, len, torn.len() as u64));
    let text = r.to_string();
    assert!(text.contains("chain intact") && text.contains("warning: line 11") && text.contains("torn"), "{text}");

    let log = AuditLog::open(&path).unwrap();
    let call = Call::new("after", "s2", Target::command(["true"]), Decision::Allow);
    let rec = log.append_durable(&call.start()).unwrap();
    assert_eq!((rec.seq, rec.offset), (11, len));
    drop(log);

    let r = verify(&path).unwrap();
    assert!(r.is_intact(), "{r}");
    assert!(r.torn_tail.is_none());
    assert_eq!(r.records, 11);
    let after = lines(&path);
    assert_eq!(after[..10], before[..]);
    assert_eq!(Record::from_line(after[10].as_bytes()).unwrap().prev, line_hash(before[9].as_bytes()));
}

#[test]
fn a_complete_record_without_its_newline_is_torn_too() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let l = ten_record_log(&path);
    // Rewrite the file without the final newline.
    let text = l.join("\n");
    std::fs::write(&path, &text).unwrap();
    let r = verify(&path).unwrap();
    assert!(r.is_intact());
    assert_eq!(r.records, 9);
    assert_eq!(r.torn_tail.as_ref().unwrap().line, 10);

    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(&Call::new("x", "s", Target::read_file("/a"), Decision::Deny).start()).unwrap().seq, 10);
    drop(log);
    let r = verify(&path).unwrap();
    assert!(r.is_intact() && r.torn_tail.is_none() && r.records == 10, "{r}");
}

#[test]
fn a_writer_that_is_already_open_handles_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let ev = Call::new("a", "s", Target::command(["ls"]), Decision::Allow).start();
    log.append(&ev).unwrap();
    log.append(&ev).unwrap();
    append_raw(&path, b"{\"seq\":3,\"ts");
    assert_eq!(log.append(&ev).unwrap().seq, 3);
    drop(log);
    let r = verify(&path).unwrap();
    assert!(r.is_intact() && r.torn_tail.is_none() && r.records == 3, "{r}");
}
