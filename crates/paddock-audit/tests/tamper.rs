//! Every kind of tampering breaks the chain at a named line.

mod common;

use common::{lines, ten_record_log, write_lines};
use paddock_audit::{line_hash, verify, BreakKind, Record, VerifyReport};

/// Builds the ten-record log, applies `tamper` to its lines, verifies.
fn tampered(tamper: impl FnOnce(&mut Vec<String>)) -> VerifyReport {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let mut l = ten_record_log(&path);
    assert_eq!(l.len(), 10);
    assert!(verify(&path).unwrap().is_intact());
    tamper(&mut l);
    write_lines(&path, &l);
    verify(&path).unwrap()
}

fn broken_at(report: &VerifyReport) -> (u64, &BreakKind) {
    let b = report.broken.as_ref().unwrap_or_else(|| panic!("not detected: {report}"));
    assert!(!report.is_intact());
    (b.line, &b.kind)
}

#[test]
fn intact_log_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let l = ten_record_log(&path);
    let r = verify(&path).unwrap();
    assert!(r.is_intact(), "{r}");
    assert_eq!(r.records, 10);
    let head = r.head.as_ref().unwrap();
    assert_eq!((head.seq, head.line), (10, 10));
    assert_eq!(head.hash, line_hash(l[9].as_bytes()));
    assert!(r.to_string().contains("chain intact, 10 records"), "{r}");
}

#[test]
fn edited_field_is_detected_at_the_next_line() {
    let r = tampered(|l| l[2] = l[2].replace(r#""exit_code":0"#, r#""exit_code":1"#));
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 4);
    assert!(matches!(kind, BreakKind::PrevMismatch { .. }), "{kind:?}");
    let msg = r.to_string();
    assert!(msg.contains("line 4: prev is") && msg.contains("line 3 was edited"), "{msg}");
}

#[test]
fn edited_whitespace_is_detected() {
    // Same JSON value, different bytes: the chain is over bytes.
    let r = tampered(|l| l[4] = l[4].replacen(',', ", ", 1));
    assert_eq!(broken_at(&r).0, 6);
}

#[test]
fn deleted_line_is_detected() {
    let r = tampered(|l| {
        l.remove(4);
    });
    assert_eq!(broken_at(&r), (5, &BreakKind::SeqMismatch { expected: 5, found: 6 }));
    assert!(r.to_string().contains("a line was removed, inserted or moved"), "{r}");
}

#[test]
fn deleted_first_line_is_detected() {
    let r = tampered(|l| {
        l.remove(0);
    });
    assert_eq!(broken_at(&r), (1, &BreakKind::SeqMismatch { expected: 1, found: 2 }));
}

#[test]
fn deleted_line_with_renumbering_is_detected() {
    // The attacker removes line 5 and renumbers the rest: prev gives it away.
    let r = tampered(|l| {
        l.remove(4);
        for (i, line) in l.iter_mut().enumerate().skip(4) {
            let mut rec = Record::from_line(line.as_bytes()).unwrap();
            rec.seq = i as u64 + 1;
            *line = rec.to_line().unwrap();
        }
    });
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 5);
    assert!(matches!(kind, BreakKind::PrevMismatch { .. }), "{kind:?}");
}

#[test]
fn inserted_forged_line_is_detected() {
    // A well-formed record with the right seq and prev for its position.
    let r = tampered(|l| {
        let mut forged = Record::from_line(l[4].as_bytes()).unwrap();
        forged.prev = line_hash(l[3].as_bytes());
        forged.seq = 5;
        l.insert(4, forged.to_line().unwrap());
    });
    assert_eq!(broken_at(&r), (6, &BreakKind::SeqMismatch { expected: 6, found: 5 }));
}

#[test]
fn inserted_garbage_line_is_detected() {
    let r = tampered(|l| l.insert(3, "{\"hello\":1}".to_owned()));
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 4);
    assert!(matches!(kind, BreakKind::BadRecord { .. }), "{kind:?}");
    assert!(r.to_string().contains("line 4: JSON but not a valid record"), "{r}");
}

#[test]
fn edited_event_field_to_an_invalid_value_is_detected() {
    // Even where the chain alone could not tell (the last line), a field
    // that no longer parses is reported.
    let r = tampered(|l| l[9] = l[9].replace(r#""verdict":"allow""#, r#""verdict":"maybe""#));
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 10);
    assert!(matches!(kind, BreakKind::BadRecord { .. }), "{kind:?}");
}

#[test]
fn duplicated_line_is_detected() {
    let r = tampered(|l| {
        let dup = l[6].clone();
        l.insert(7, dup);
    });
    assert_eq!(broken_at(&r), (8, &BreakKind::SeqMismatch { expected: 8, found: 7 }));
}

#[test]
fn swapped_lines_are_detected() {
    let r = tampered(|l| l.swap(5, 6));
    assert_eq!(broken_at(&r), (6, &BreakKind::SeqMismatch { expected: 6, found: 7 }));
}

#[test]
fn line_cut_short_in_the_middle_is_detected() {
    let r = tampered(|l| {
        let half = l[4].len() / 2;
        l[4].truncate(half);
    });
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 5);
    assert!(matches!(kind, BreakKind::BadJson { .. }), "{kind:?}");
    assert!(r.to_string().contains("line 5: not valid JSON"), "{r}");
}

#[test]
fn changed_seq_is_detected() {
    let r = tampered(|l| l[3] = l[3].replacen(r#"{"seq":4,"#, r#"{"seq":40,"#, 1));
    assert_eq!(broken_at(&r), (4, &BreakKind::SeqMismatch { expected: 4, found: 40 }));
}

#[test]
fn changed_prev_of_first_line_is_detected() {
    let r = tampered(|l| l[0] = l[0].replacen("\"prev\":\"0", "\"prev\":\"1", 1));
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 1);
    assert!(matches!(kind, BreakKind::PrevMismatch { .. }), "{kind:?}");
}

#[test]
fn empty_line_is_detected() {
    let r = tampered(|l| l.insert(2, String::new()));
    let (line, kind) = broken_at(&r);
    assert_eq!(line, 3);
    assert!(matches!(kind, BreakKind::BadJson { .. }), "{kind:?}");
}

/// The limits of a bare hash chain: a cut at a line boundary at the end, an
/// edit of the last line, or a rewrite with recomputed hashes all verify;
/// the head (seq + hash) from an earlier verification exposes them.
#[test]
fn tail_cuts_and_rewrites_are_exposed_by_the_head() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let original = ten_record_log(&path);
    let head = verify(&path).unwrap().head.unwrap();

    // Cut at a line boundary.
    write_lines(&path, &original[..7]);
    let r = verify(&path).unwrap();
    assert!(r.is_intact());
    assert_ne!(r.head.as_ref().unwrap().seq, head.seq);

    // Edit the last line.
    let mut l = original.clone();
    l[9] = l[9].replace("github.com", "example.com");
    write_lines(&path, &l);
    let r = verify(&path).unwrap();
    assert!(r.is_intact());
    assert_ne!(r.head.as_ref().unwrap().hash, head.hash);

    // Edit line 3 and recompute every later prev.
    let mut l = original.clone();
    l[2] = l[2].replace(r#""exit_code":0"#, r#""exit_code":1"#);
    for i in 3..l.len() {
        let mut rec = Record::from_line(l[i].as_bytes()).unwrap();
        rec.prev = line_hash(l[i - 1].as_bytes());
        l[i] = rec.to_line().unwrap();
    }
    write_lines(&path, &l);
    let r = verify(&path).unwrap();
    assert!(r.is_intact());
    assert_ne!(r.head.as_ref().unwrap().hash, head.hash);
    assert_eq!(lines(&path).len(), 10);
}

#[test]
fn missing_log_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = verify(tmp.path().join("nope.jsonl")).unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
}

#[test]
fn empty_log_is_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    std::fs::write(&path, "").unwrap();
    let r = verify(&path).unwrap();
    assert!(r.is_intact());
    assert_eq!((r.records, r.head), (0, None));
}
