use super::*;
use crate::{AuditLog, Call, Decision, Target};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A collector that answers 503 to its first `fail` requests, then 200; returns the
/// `paddock.seq` of every record it accepted.
fn collector(fail: usize) -> (u16, Arc<Mutex<Vec<u64>>>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (seqs, tries) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)));
    let (s, t) = (seqs.clone(), tries.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let c = c.unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let (mut line, mut len) = (String::new(), 0);
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut w = c;
            if t.fetch_add(1, Ordering::SeqCst) < fail {
                w.write_all(b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n").unwrap();
                continue;
            }
            let v: Value = serde_json::from_slice(&body).unwrap();
            for rl in v["resourceLogs"].as_array().unwrap() {
                for r in rl["scopeLogs"][0]["logRecords"].as_array().unwrap() {
                    let a = r["attributes"].as_array().unwrap();
                    let seq = a.iter().find(|kv| kv["key"] == "paddock.seq").unwrap();
                    s.lock().unwrap().push(seq["value"]["intValue"].as_str().unwrap().parse().unwrap());
                }
            }
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        }
    });
    (port, seqs, tries)
}

fn config(dir: &std::path::Path, port: u16) -> ShipConfig {
    let mut cfg = ShipConfig::new(
        Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        dir.join("audit.jsonl"),
        dir.to_path_buf(),
        Resource::default(),
    );
    cfg.backoff_min = Duration::from_millis(10);
    cfg.batch_records = 3;
    cfg
}

fn append(log: &AuditLog, n: usize) {
    for i in 0..n {
        log.append(&Call::new(format!("c{i}"), "s", Target::command(["ls"]), Decision::Allow).start()).unwrap();
    }
}

#[test]
fn one_shot_retries_then_delivers_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path().join("audit.jsonl")).unwrap();
    append(&log, 7);
    let (port, seqs, _) = collector(2);
    let cfg = config(dir.path(), port);
    let r = export_pending(&cfg, Duration::from_secs(30)).unwrap();
    assert_eq!((r.delivered, r.last_seq, r.retries), (7, 7, 2));
    append(&log, 2);
    assert_eq!(export_pending(&cfg, Duration::from_secs(30)).unwrap().delivered, 2);
    assert_eq!(*seqs.lock().unwrap(), (1..=9).collect::<Vec<u64>>());
}

#[test]
fn one_shot_gives_up_within_its_time() {
    let dir = tempfile::tempdir().unwrap();
    append(&AuditLog::open(dir.path().join("audit.jsonl")).unwrap(), 1);
    let (port, seqs, tries) = collector(usize::MAX);
    // Long enough that a slow first try (its spool's fsync on a busy disk) leaves room for
    // a second: the backoff starts at 10 ms.
    let e = export_pending(&config(dir.path(), port), Duration::from_secs(2)).unwrap_err();
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert!(tries.load(Ordering::SeqCst) >= 2, "retried");
    assert!(seqs.lock().unwrap().is_empty());
}

#[test]
fn live_shipper_follows_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path().join("audit.jsonl")).unwrap();
    let (port, seqs, _) = collector(1);
    let mut cfg = config(dir.path(), port);
    cfg.poll = Duration::from_millis(10);
    let shipper = LiveShipper::start(cfg).unwrap();
    append(&log, 4);
    let start = Instant::now();
    while seqs.lock().unwrap().len() < 4 {
        assert!(start.elapsed() < Duration::from_secs(30), "shipped while running");
        std::thread::sleep(Duration::from_millis(10));
    }
    append(&log, 2);
    shipper.finish(Duration::from_secs(10));
    assert_eq!(*seqs.lock().unwrap(), (1..=6).collect::<Vec<u64>>(), "the last ones on finish, none twice");
}
