use super::*;
use crate::payload::{CallOutcome, Decision, Target};
use serde_json::json;

fn sample_call() -> Call {
    Call::new("c1", "s1", Target::command(["git", "status"]), Decision::Allow)
        .with_cwd("/work")
        .with_rule("commands.allow[0]")
        .with_policy_hash("ab12")
}

#[test]
fn key_order_is_stable() {
    let line = encode_line(1, "2026-03-01T12:00:00.123Z", GENESIS_PREV, &sample_call().start()).unwrap();
    assert_eq!(
        line,
        r#"{"seq":1,"ts":"2026-03-01T12:00:00.123Z","event":"call.start","prev":"0000000000000000000000000000000000000000000000000000000000000000","call_id":"c1","session":"s1","tool":"command","argv":["git","status"],"cwd":"/work","decision":"allow","rule":"commands.allow[0]","policy_hash":"ab12"}"#
    );
}

#[test]
fn call_end_always_has_exit_code_and_signal() {
    let ev = sample_call().end(CallOutcome::signaled(9).with_duration_ms(5));
    let line = encode_line(2, "t", GENESIS_PREV, &ev).unwrap();
    assert!(line.contains(r#""exit_code":null,"signal":9,"timed_out":false,"duration_ms":5"#), "{line}");
}

#[test]
fn every_event_round_trips() {
    let events = vec![
        sample_call().with_enforcement(json!({"landlock": "enforced"})).start(),
        sample_call().end(CallOutcome::exited(3).with_output(10, 20, true).with_timed_out(true)),
        Call::new("c2", "s1", Target::read_file("/etc/hosts"), Decision::Deny).with_reason("no").start(),
        Call::new("c3", "s1", Target::write_file("/w/a"), Decision::Allow).start(),
        Call::new("c4", "s1", Target::http_request("https://u:p@example.com/x", Some("GET")), Decision::Allow).start(),
        Event::NetConnect(
            NetConnect::new("example.com", 443, Decision::Allow).with_address("93.184.216.34:443").with_bytes(1, 2),
        ),
        Event::revoke("rule:commands.allow[0]".parse().unwrap(), Some("too broad".into())),
        Event::unrevoke("network:example.com:443".parse().unwrap(), None),
        Event::SessionStart(SessionStart::new("s1").with_mode("run").with_workspace("/w")),
        Event::SessionEnd(SessionEnd::new("s1").with_totals(4, 100)),
        Event::HttpRequest(
            HttpRequest::new("GET", "api.test", 443, "/a?q=1", Decision::Allow)
                .with_call("s1", "c4")
                .with_rule("network.http[0].allow[0]", None)
                .with_response(Some(200), 0, 12)
                .with_secret(Some("gh".into())),
        ),
        Event::Exfiltration(
            Exfiltration::new("gh", "evil.test", 443, "secrets.gh", "placeholder in a header")
                .with_request("POST", "/x"),
        ),
        Event::revoke("secret:gh".parse().unwrap(), None),
    ];
    for (i, ev) in events.into_iter().enumerate() {
        let rec = Record { seq: i as u64 + 1, ts: now_ts(), prev: GENESIS_PREV.into(), event: ev };
        let line = rec.to_line().unwrap();
        let back = Record::from_line(line.as_bytes()).unwrap();
        assert_eq!(back, rec, "{line}");
        assert_eq!(serde_json::to_string(&rec).unwrap(), line);
    }
}

#[test]
fn unknown_event_and_missing_fields_are_rejected() {
    assert!(Record::from_line(br#"{"seq":1,"ts":"t","event":"boom","prev":"0"}"#).is_err());
    assert!(Record::from_line(br#"{"seq":1,"ts":"t","event":"call.start","prev":"0"}"#).is_err());
    assert!(Record::from_line(br#"{"ts":"t","event":"session.end","prev":"0","session":"s"}"#).is_err());
}

#[test]
fn hashes_and_timestamps() {
    assert_eq!(line_hash(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(to_hex(&[0u8; 32]), GENESIS_PREV);
    let ts = now_ts();
    assert_eq!(ts.len(), "2026-03-01T12:00:00.123Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));
    assert!(parse_ts(&ts).is_some());
}
