//! Several writer processes appending to one log at once.
//!
//! The test binary re-executes itself: `child_writer` is a no-op unless the
//! parent sets `PADDOCK_AUDIT_TEST_LOG`, in which case it appends 50 calls
//! (a durable `call.start` and a batched `call.end` each) from two threads.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use paddock_audit::{records, verify, AuditLog, Call, CallOutcome, Decision, Event, Target};

const CHILD_LOG: &str = "PADDOCK_AUDIT_TEST_LOG";
const CHILD_ID: &str = "PADDOCK_AUDIT_TEST_WRITER";
const WRITERS: usize = 4;
const CALLS: usize = 50;

#[test]
fn child_writer() {
    let (Some(path), Some(id)) = (std::env::var_os(CHILD_LOG), std::env::var(CHILD_ID).ok()) else {
        return;
    };
    let log = Arc::new(AuditLog::open(Path::new(&path)).unwrap());
    if id == "forever" {
        // Appends (with large records, so that writes are not instant) until killed.
        let argv: Vec<String> = (0..2000).map(|i| format!("argument-{i}")).collect();
        for i in 0.. {
            let call = Call::new(format!("k{i}"), "killed", Target::command(argv.clone()), Decision::Allow);
            log.append(&call.start()).unwrap();
        }
    }
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let log = Arc::clone(&log);
            let id = id.clone();
            std::thread::spawn(move || {
                for i in (t..CALLS).step_by(2) {
                    let call = Call::new(
                        format!("w{id}-{i}"),
                        format!("session-{id}"),
                        Target::command(["echo", &i.to_string()]),
                        Decision::Allow,
                    )
                    .with_rule("commands.allow[0]");
                    log.append_durable(&call.start()).unwrap();
                    log.append(&call.end(CallOutcome::exited(0))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn four_writer_processes_keep_the_chain_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WRITERS)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env(CHILD_LOG, &path)
                .env(CHILD_ID, id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }

    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, (WRITERS * CALLS * 2) as u64);
    assert!(report.torn_tail.is_none());

    // Every call has exactly one start and one end, the start first.
    let mut seen: HashMap<String, (Option<u64>, Option<u64>)> = HashMap::new();
    let mut writers_in_order = Vec::new();
    for (i, r) in records(&path).unwrap().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.seq, i as u64 + 1);
        match r.event {
            Event::CallStart(c) => {
                writers_in_order.push(c.call_id.split('-').next().unwrap().to_owned());
                let e = seen.entry(c.call_id).or_default();
                assert!(e.0.replace(r.seq).is_none(), "two starts");
            }
            Event::CallEnd(e) => {
                let s = seen.entry(e.call.call_id).or_default();
                assert!(s.1.replace(r.seq).is_none(), "two ends");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen.len(), WRITERS * CALLS);
    for (id, (start, end)) in &seen {
        let (start, end) =
            (start.unwrap_or_else(|| panic!("{id}: no start")), end.unwrap_or_else(|| panic!("{id}: no end")));
        assert!(start < end, "{id}");
    }
    let switches = writers_in_order.windows(2).filter(|w| w[0] != w[1]).count();
    eprintln!("writer switches between consecutive call.start records: {switches}");
}

#[test]
fn a_writer_killed_mid_stream_leaves_a_verifiable_log() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_LOG, &path)
        .env(CHILD_ID, "forever")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it write for a while, then SIGKILL it (possibly mid-write).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&path).map_or(0, |m| m.len()) < 2_000_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert!(report.records > 0);
    let before = report.records;
    if let Some(t) = &report.torn_tail {
        eprintln!("killed writer left a torn line of {} bytes", t.bytes);
    }

    let log = AuditLog::open(&path).unwrap();
    let call = Call::new("after-kill", "s", Target::command(["true"]), Decision::Allow);
    assert_eq!(log.append_durable(&call.start()).unwrap().seq, before + 1);
    drop(log);
    let report = verify(&path).unwrap();
    assert!(report.is_intact() && report.torn_tail.is_none(), "{report}");
    assert_eq!(report.records, before + 1);
}
