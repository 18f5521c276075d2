//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use paddock_audit::{
    line_hash, AuditLog, Call, CallOutcome, Decision, Event, NetConnect, Record, SessionStart, Target, GENESIS_PREV,
};

/// Writes `events` as a correctly chained log with the given timestamps.
pub fn write_chained(path: &Path, events: &[(&str, Event)]) {
    let mut out = String::new();
    let mut prev = GENESIS_PREV.to_owned();
    for (i, (ts, event)) in events.iter().enumerate() {
        let line = Record { seq: i as u64 + 1, ts: ts.to_string(), prev: prev.clone(), event: event.clone() }
            .to_line()
            .unwrap();
        prev = line_hash(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// A log of ten assorted records written by the real writer; returns its lines.
pub fn ten_record_log(path: &Path) -> Vec<String> {
    let log = AuditLog::open(path).unwrap();
    log.append(&Event::SessionStart(SessionStart::new("s1").with_mode("run"))).unwrap();
    for i in 0..4 {
        let call = Call::new(format!("c{i}"), "s1", Target::command(["git", "status"]), Decision::Allow)
            .with_rule("commands.allow[0]")
            .with_policy_hash("ph");
        log.append_durable(&call.start()).unwrap();
        log.append(&call.end(CallOutcome::exited(0).with_duration_ms(3))).unwrap();
    }
    log.append(&Event::NetConnect(NetConnect::new("github.com", 443, Decision::Allow).with_bytes(10, 20))).unwrap();
    drop(log);
    lines(path)
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}
