//! Review of a known log, field by field.

mod common;

use std::path::Path;

use common::write_chained;
use paddock_audit::{
    review, verify, Call, CallOutcome, Decision, Event, NetConnect, Revocations, Selector, SessionEnd, SessionStart,
    Since, Target, Tool,
};

fn known_log(path: &Path) {
    let status = |id: &str| {
        Call::new(id, "s1", Target::command(["git", "status"]), Decision::Allow)
            .with_rule("commands.allow[0]")
            .with_cwd("/w")
            .with_view(vec!["filesystem.read[0]".into(), "filesystem.read[1]".into()])
    };
    let log1 =
        Call::new("c3", "s1", Target::command(["git", "log", "-1"]), Decision::Allow).with_rule("commands.allow[0]");
    let read =
        Call::new("c4", "s1", Target::read_file("/w/README.md"), Decision::Allow).with_rule("filesystem.read[0]");
    let push = |id: &str| {
        Call::new(id, "s1", Target::command(["git", "push", "origin", "main"]), Decision::Deny)
            .with_rule("commands.deny[0]")
            .with_reason("denied by commands.deny[0] \"git push **\"")
    };
    let ssh = Call::new("c7", "s1", Target::read_file("/home/me/.ssh/id_rsa"), Decision::Deny)
        .with_rule("filesystem.deny[0]");
    let revoked = Call::new("c8", "s1", Target::command(["git", "status"]), Decision::Deny)
        .with_rule("commands.allow[0]")
        .with_reason("revoked: rule:commands.allow[0]");
    let events: Vec<(&str, Event)> = vec![
        ("2026-03-01T10:00:00.000Z", Event::SessionStart(SessionStart::new("s1").with_mode("run"))), // 1
        ("2026-03-01T10:00:01.000Z", status("c1").start()),                                          // 2
        ("2026-03-01T10:00:01.500Z", status("c1").end(CallOutcome::exited(0))),                      // 3
        ("2026-03-01T10:00:02.000Z", status("c2").start()),                                          // 4
        ("2026-03-01T10:00:02.100Z", status("c2").end(CallOutcome::exited(1))),                      // 5
        ("2026-03-01T10:00:03.000Z", log1.start()),                                                  // 6
        ("2026-03-01T10:00:03.100Z", log1.end(CallOutcome::exited(0))),                              // 7
        ("2026-03-01T10:00:04.000Z", read.start()),                                                  // 8
        ("2026-03-01T10:00:04.100Z", read.end(CallOutcome::default())),                              // 9
        ("2026-03-01T11:00:00.000Z", push("c5").start()),                                            // 10
        ("2026-03-01T11:00:01.000Z", push("c6").start()),                                            // 11
        ("2026-03-01T11:00:02.000Z", ssh.start()),                                                   // 12
        (
            "2026-03-01T11:00:03.000Z",
            Event::NetConnect(
                NetConnect::new("github.com", 443, Decision::Allow)
                    .with_rule("network.allow[0]")
                    .with_bytes(100, 2048)
                    .with_call_id("c3"),
            ),
        ), // 13
        (
            "2026-03-01T11:00:04.000Z",
            Event::NetConnect(
                NetConnect::new("github.com", 80, Decision::Allow).with_rule("network.allow[0]").with_bytes(10, 20),
            ),
        ), // 14
        (
            "2026-03-01T11:00:05.000Z",
            Event::NetConnect(NetConnect::new("evil.test", 443, Decision::Deny).with_reason("not allowed")),
        ), // 15
        (
            "2026-03-01T12:00:00.000Z",
            Event::revoke("rule:commands.allow[0]".parse().unwrap(), Some("too broad".into())),
        ), // 16
        ("2026-03-01T12:00:01.000Z", Event::revoke("network:evil.test".parse().unwrap(), None)),     // 17
        ("2026-03-01T12:00:02.000Z", Event::unrevoke("network:evil.test".parse().unwrap(), None)),   // 18
        ("2026-03-01T12:00:03.000Z", revoked.start()),                                               // 19
        ("2026-03-01T12:00:04.000Z", Event::SessionEnd(SessionEnd::new("s1").with_totals(8, 7_000))), // 20
    ];
    write_chained(path, &events);
}

fn rules() -> Vec<String> {
    [
        "commands.allow[0]",
        "commands.allow[1]",
        "filesystem.read[0]",
        "filesystem.read[1]",
        "network.allow[0]",
        "network.allow[1]",
        "commands.allow[1]",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn review_of_a_known_log() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    known_log(&path);
    assert!(verify(&path).unwrap().is_intact());

    let r = review(&path, None, &rules()).unwrap();
    assert_eq!(r.since, None);
    assert_eq!(r.records, 20);
    assert_eq!(r.first_ts.as_deref(), Some("2026-03-01T10:00:00.000Z"));
    assert_eq!(r.last_ts.as_deref(), Some("2026-03-01T12:00:04.000Z"));
    assert_eq!((r.calls, r.allowed_calls, r.denied_calls, r.connections), (8, 4, 4, 3));
    assert!(r.unreadable_lines.is_empty() && !r.torn_tail);

    // Grants, most used first.
    let names: Vec<&str> = r.grants.iter().map(|g| g.rule.as_str()).collect();
    assert_eq!(names, ["commands.allow[0]", "network.allow[0]", "filesystem.read[0]"]);

    let g = &r.grants[0];
    assert_eq!(g.uses, 3);
    assert_eq!(g.first_use, "2026-03-01T10:00:01.000Z");
    assert_eq!(g.last_use, "2026-03-01T10:00:03.000Z");
    assert_eq!(g.revoked.as_deref(), Some("rule:commands.allow[0]"));
    let uses: Vec<(u64, &str, Option<&str>, Option<i32>)> =
        g.used_by.iter().map(|u| (u.seq, u.summary.as_str(), u.call_id.as_deref(), u.exit_code)).collect();
    assert_eq!(
        uses,
        [
            (2, "git status", Some("c1"), Some(0)),
            (4, "git status", Some("c2"), Some(1)),
            (6, "git log -1", Some("c3"), Some(0))
        ]
    );
    assert_eq!(g.used_by[0].target, Some(Target::command(["git", "status"])));
    assert_eq!(g.used_by[0].connection, None);

    let n = &r.grants[1];
    assert_eq!(
        (n.uses, n.first_use.as_str(), n.last_use.as_str()),
        (2, "2026-03-01T11:00:03.000Z", "2026-03-01T11:00:04.000Z")
    );
    assert_eq!(n.revoked, None);
    assert_eq!(n.used_by[0].connection.as_deref(), Some("github.com:443"));
    assert_eq!(n.used_by[0].call_id.as_deref(), Some("c3"));
    assert_eq!(n.used_by[1].summary, "connect github.com:80");
    assert_eq!(n.used_by[1].seq, 14);

    let f = &r.grants[2];
    assert_eq!((f.uses, f.used_by[0].seq, f.used_by[0].summary.as_str()), (1, 8, "/w/README.md"));
    assert_eq!(f.used_by[0].exit_code, None);

    // Filesystem grants held in a call's view are in use, whether or not a decision named them.
    let v: Vec<(&str, u64, u64, u64)> =
        r.in_view.iter().map(|v| (v.rule.as_str(), v.calls, v.decided_uses, v.last_seq)).collect();
    assert_eq!(v, [("filesystem.read[0]", 2, 1, 4), ("filesystem.read[1]", 2, 0, 4)]);
    assert_eq!(r.unused_grants, ["commands.allow[1]", "network.allow[1]"]);

    // Denied attempts grouped by what was tried, refused connections included.
    assert_eq!(r.denied.len(), 4);
    assert_eq!(r.denied_connections, 1);
    let d = &r.denied[0];
    assert_eq!((d.tool, d.summary.as_str(), d.count), (Tool::Command, "git push origin main", 2));
    assert_eq!(d.rules, ["commands.deny[0]"]);
    assert_eq!(d.reason.as_deref(), Some("denied by commands.deny[0] \"git push **\""));
    assert_eq!((d.first.as_str(), d.last.as_str()), ("2026-03-01T11:00:00.000Z", "2026-03-01T11:00:01.000Z"));
    assert_eq!(d.seqs, [10, 11]);
    let d = &r.denied[1];
    assert_eq!((d.tool, d.summary.as_str(), d.count, d.seqs.as_slice()), (Tool::Command, "git status", 1, &[19][..]));
    assert_eq!(d.reason.as_deref(), Some("revoked: rule:commands.allow[0]"));
    let d = &r.denied[2];
    assert_eq!((d.tool, d.summary.as_str(), d.count), (Tool::ReadFile, "/home/me/.ssh/id_rsa", 1));
    assert_eq!((d.rules.as_slice(), d.reason.as_deref()), (&["filesystem.deny[0]".to_string()][..], None));
    let d = &r.denied[3];
    assert_eq!(
        (d.tool, d.summary.as_str(), d.count, d.seqs.as_slice()),
        (Tool::Connect, "evil.test:443", 1, &[15][..])
    );
    assert_eq!(d.reason.as_deref(), Some("not allowed"));

    // Connections by host, busiest first.
    assert_eq!(r.hosts.len(), 2);
    let h = &r.hosts[0];
    assert_eq!((h.host.as_str(), h.ports.as_slice(), h.allowed, h.denied), ("github.com", &[80, 443][..], 2, 0));
    assert_eq!((h.bytes_up, h.bytes_down, h.rules.as_slice()), (110, 2068, &["network.allow[0]".to_string()][..]));
    let h = &r.hosts[1];
    assert_eq!((h.host.as_str(), h.allowed, h.denied, h.bytes_up), ("evil.test", 0, 1, 0));

    // Revocations replayed from the log: the unrevoked one is gone.
    assert_eq!(r.revocations.len(), 1);
    assert_eq!(r.revocations[0].selector, Selector::Rule("commands.allow[0]".into()));
    assert_eq!(r.revocations[0].reason.as_deref(), Some("too broad"));
    assert_eq!(r.revocations[0].ts, "2026-03-01T12:00:00.000Z");
}

#[test]
fn human_form_is_readable_at_a_glance() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    known_log(&path);
    let text = review(&path, None, &rules()).unwrap().to_string();
    for want in [
        "20 records, 2026-03-01T10:00:00.000Z .. 2026-03-01T12:00:04.000Z",
        "8 calls (4 allowed, 4 denied), 3 connections (1 refused)",
        "Grants in a call's sandbox view (2):\n  filesystem.read[0]: in the view of 2 calls (1 use decided)",
        "filesystem.read[0]: 1 use, first 2026-03-01T10:00:04.000Z, last 2026-03-01T10:00:04.000Z; in the view of 2 calls",
        "1x  connect evil.test:443  [no rule]: not allowed",
        "Grants used (3):",
        "commands.allow[0]  [REVOKED]: 3 uses, first 2026-03-01T10:00:01.000Z, last 2026-03-01T10:00:03.000Z",
        "2x  git status  (last seq 4)",
        "1x  git log -1  (last seq 6)",
        "Grants never used (2):\n  commands.allow[1]\n  network.allow[1]\n",
        "2x  command git push origin main  [commands.deny[0]]: denied by",
        "github.com (port 80,443): 2 allowed, 0 denied, 110 B up, 2.0 KiB down",
        "Revocations in force (1):\n  rule:commands.allow[0]  (since 2026-03-01T12:00:00.000Z): too broad",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn json_form() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    known_log(&path);
    let v = serde_json::to_value(review(&path, None, &rules()).unwrap()).unwrap();
    let u = &v["grants"][0]["used_by"][0];
    assert_eq!(u["seq"], 2);
    assert_eq!(u["tool"], "command");
    assert_eq!(u["argv"], serde_json::json!(["git", "status"]));
    assert_eq!(u["exit_code"], 0);
    assert!(u.get("connection").is_none());
    let c = &v["grants"][1]["used_by"][0];
    assert_eq!(c["connection"], "github.com:443");
    assert!(c.get("tool").is_none());
    assert_eq!(v["grants"][2]["used_by"][0]["path"], "/w/README.md");
    assert_eq!(v["denied"][0]["tool"], "command");
    assert_eq!(v["unused_grants"], serde_json::json!(["commands.allow[1]", "network.allow[1]"]));
    assert_eq!(v["revocations"][0]["selector"], "rule:commands.allow[0]");
    assert_eq!(v["hosts"][0]["bytes_down"], 2068);
}

#[test]
fn since_limits_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    known_log(&path);
    let since = Since::parse("2026-03-01T11:00:00Z").unwrap();
    let r = review(&path, Some(since), &rules()).unwrap();
    assert_eq!(r.since.as_deref(), Some("2026-03-01T11:00:00.000Z"));
    assert_eq!(r.records, 11);
    assert_eq!((r.calls, r.allowed_calls, r.denied_calls), (4, 0, 4));
    let names: Vec<&str> = r.grants.iter().map(|g| g.rule.as_str()).collect();
    assert_eq!(names, ["network.allow[0]"]);
    assert_eq!(
        r.unused_grants,
        ["commands.allow[0]", "commands.allow[1]", "filesystem.read[0]", "filesystem.read[1]", "network.allow[1]"]
    );
    // Revocations come from the whole log, whatever the window.
    assert_eq!(r.revocations.len(), 1);

    // A relative window that excludes everything (the log is in 2026-03-01).
    let r = review(&path, Some(Since::Ago(std::time::Duration::from_secs(1))), &[]).unwrap();
    assert_eq!((r.records, r.calls), (0, 0));
    assert!(r.to_string().contains("no records"));
}

#[test]
fn revocations_file_overrides_the_replayed_list() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    known_log(&path);
    let mut list = Revocations::load(tmp.path().join("revocations.toml")).unwrap();
    list.add("rule:network.allow[0]".parse().unwrap(), Some("exfil risk".into()));
    let r = review(&path, None, &rules()).unwrap().with_revocations(list.entries());
    assert_eq!(r.revocations.len(), 1);
    assert_eq!(r.grants[0].revoked, None);
    assert_eq!(r.grants[1].revoked.as_deref(), Some("rule:network.allow[0]"));
}

#[test]
fn unreadable_lines_and_torn_tail_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    known_log(&path);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(0, "garbage\n");
    text.push_str("{\"seq\":21");
    std::fs::write(&path, text).unwrap();
    let r = review(&path, None, &[]).unwrap();
    assert_eq!(r.unreadable_lines, [1]);
    assert!(r.torn_tail);
    assert_eq!(r.calls, 8);
    let text = r.to_string();
    assert!(text.contains("1 lines are not records") && text.contains("torn line"), "{text}");
}

#[test]
fn allowed_calls_without_a_rule_are_listed_under_no_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let call = Call::new("c1", "s1", Target::write_file("/w/out.txt"), Decision::Allow);
    write_chained(&path, &[("2026-03-01T10:00:00.000Z", call.start())]);
    let r = review(&path, None, &[]).unwrap();
    assert_eq!(r.grants.len(), 1);
    assert_eq!(r.grants[0].rule, paddock_audit::NO_RULE);
    assert_eq!(r.grants[0].used_by[0].summary, "/w/out.txt");
}
