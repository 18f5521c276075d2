//! Property tests of what paddock-audit reads back: audit lines ([`Record::from_line`]),
//! the chain ([`verify`]), selectors and the revocation list. Generated records with
//! arbitrary text (agents choose argv, paths and URLs), mutated lines and raw bytes:
//! nothing panics; a record reads back as written; an untouched chain verifies and any
//! one changed byte is caught; a revocation list reads back as saved. `fuzz/` has
//! cargo-fuzz targets for the same entry points.

use paddock_audit::{
    line_hash, records, redact_url, verify, AuditLog, Call, CallOutcome, Decision, Event, NetConnect, Record,
    Revocations, Selector, SessionEnd, SessionStart, SyncPolicy, Target, GENESIS_PREV,
};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES scales every property (for a longer hunt); CI runs the default.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text an agent could choose: anything, including quotes, controls and newlines.
fn text() -> BoxedStrategy<String> {
    prop_oneof![3 => "[a-z0-9 ./_-]{0,12}", 2 => "\\PC{0,16}", 1 => ".{0,8}", 1 => "[\"\\\\\n\r\t\u{0}\u{2028}]{0,4}"]
        .boxed()
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![Just(Decision::Allow), Just(Decision::Deny)]
}

fn target() -> BoxedStrategy<Target> {
    prop_oneof![
        prop::collection::vec(text(), 0..4).prop_map(Target::command),
        text().prop_map(|p| Target::ReadFile { path: p }),
        text().prop_map(|p| Target::WriteFile { path: p }),
        (text(), "(http|https)://([a-z:]{0,5}@)?[a-z.]{1,8}(:[0-9]{1,4})?(/[a-z@]{0,5})?", prop::option::of(text()))
            .prop_map(|(_, url, m)| Target::http_request(&url, m.as_deref())),
    ]
    .boxed()
}

fn call() -> BoxedStrategy<Call> {
    (text(), text(), target(), decision(), prop::option::of(text()), prop::option::of(text()), any::<bool>())
        .prop_map(|(id, session, target, d, rule, reason, enforced)| {
            let mut c = Call::new(id, session, target, d).with_cwd("/work");
            if let Some(r) = rule {
                c = c.with_rule(r);
            }
            if let Some(r) = reason {
                c = c.with_reason(r);
            }
            if enforced {
                c = c.with_enforcement(serde_json::json!({ "landlock": "enforced", "abi": 4, "ok": true }));
            }
            c
        })
        .boxed()
}

fn selector() -> BoxedStrategy<Selector> {
    prop_oneof![
        "(command|path|rule):[a-z*. /\\[\\]-]{1,12}",
        "network:(\\*\\.)?[a-z.-]{1,12}(:[1-9][0-9]{0,3})?",
        "network:\\[[0-9a-f:]{2,12}\\](:[1-9][0-9]{0,3})?",
    ]
    .prop_filter_map("parses", |s| s.parse().ok())
    .boxed()
}

fn event() -> BoxedStrategy<Event> {
    prop_oneof![
        call().prop_map(|c| c.start()),
        (call(), any::<i32>(), any::<u64>(), any::<bool>())
            .prop_map(|(c, code, ms, t)| c.end(CallOutcome::exited(code).with_duration_ms(ms).with_timed_out(t))),
        (text(), any::<u16>(), decision(), prop::option::of(text()), any::<u64>()).prop_map(|(h, p, v, r, n)| {
            let mut e = NetConnect::new(h, p, v).with_bytes(n, n / 2);
            if let Some(r) = r {
                e = e.with_reason(r);
            }
            Event::NetConnect(e)
        }),
        (selector(), prop::option::of(text())).prop_map(|(s, r)| Event::revoke(s, r)),
        (selector(), prop::option::of(text())).prop_map(|(s, r)| Event::unrevoke(s, r)),
        (text(), text()).prop_map(|(s, m)| Event::SessionStart(SessionStart::new(s).with_mode(m))),
        (text(), any::<u64>()).prop_map(|(s, n)| Event::SessionEnd(SessionEnd::new(s).with_totals(n, n))),
    ]
    .boxed()
}

/// Bytes with a few edits: flips, inserts, deletions, truncation.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![any::<u8>(), prop::sample::select(b"\"{}[]:,\\0123456789\n ".to_vec())];
    (base, prop::collection::vec((0u8..4, any::<prop::sample::Index>(), byte), 1..4)).prop_map(|(mut b, edits)| {
        for (op, at, byte) in edits {
            let i = at.index(b.len() + 1);
            match op {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i, byte),
                2 if i < b.len() => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        b
    })
}

/// Writes `events` through the real writer; returns the directory and the log's path.
fn chain(events: &[Event]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open_with(&path, SyncPolicy::default()).expect("open the log");
    for e in events {
        log.append(e).expect("append");
    }
    drop(log);
    (dir, path)
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn records_read_back_as_written(seq in 1u64.., ts in text(), prev in "[0-9a-f]{64}", event in event()) {
        let r = Record { seq, ts, prev, event };
        let line = r.to_line().expect("a record encodes");
        prop_assert!(!line.contains('\n'), "a record is one line: {:?}", line);
        prop_assert_eq!(&serde_json::to_string(&r).expect("serialize"), &line);
        let want = Record { event: redacted(&r.event), ..r };
        prop_assert_eq!(Record::from_line(line.as_bytes()).expect("reads back"), want);
    }

    #[test]
    fn redaction_is_idempotent(url in "[a-z]{0,5}(://)?[a-z:@./?#]{0,20}") {
        let once = redact_url(&url);
        prop_assert_eq!(redact_url(&once), once.clone());
        if let Some((_, rest)) = url.split_once("://") {
            let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
            if auth.contains('@') {
                prop_assert!(once.contains("REDACTED@"), "{}", once);
                prop_assert!(!once.split("REDACTED@").nth(1).unwrap_or("").split(['/', '?', '#']).next().unwrap_or("").contains('@'));
            }
        }
    }

    #[test]
    fn lines_never_panic(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..100),
        mutated((1u64..5, event()).prop_map(|(seq, event)| {
            Record { seq, ts: "2026-03-01T12:00:00.123Z".into(), prev: GENESIS_PREV.into(), event }
                .to_line().expect("a record encodes").into_bytes()
        })),
    ]) {
        if let Ok(r) = Record::from_line(&bytes) {
            // What reads is a record: it encodes again (URLs redacted), and that reads back.
            let again = r.to_line().expect("encodes");
            let want = Record { event: redacted(&r.event), ..r };
            prop_assert_eq!(Record::from_line(again.as_bytes()).expect("reads back"), want);
        }
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn untouched_chains_verify_and_any_changed_byte_is_caught(
        events in prop::collection::vec(event(), 1..5),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let (_dir, path) = chain(&events);
        let report = verify(&path).expect("verify");
        prop_assert!(report.is_intact(), "{}", report);
        prop_assert_eq!(report.records, events.len() as u64);
        prop_assert!(report.torn_tail.is_none());
        let read: Vec<Event> = records(&path).expect("records").map(|r| r.expect("a record").event).collect();
        let redacted: Vec<Event> = events.iter().map(redacted).collect();
        prop_assert_eq!(read, redacted);

        // Change one byte of one record's content (not a line's `\n`).
        let mut bytes = std::fs::read(&path).expect("read the log");
        let content: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != b'\n').collect();
        let i = content[at.index(content.len())];
        let line = bytes[..i].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        bytes[i] ^= xor;
        std::fs::write(&path, &bytes).expect("write the log");
        let after = verify(&path).expect("verify");
        if line < events.len() as u64 {
            let b = after.broken.as_ref();
            prop_assert!(b.is_some_and(|b| b.line <= line + 1), "a change in line {} went unnoticed: {}", line, after);
        } else {
            // The last line: no later line vouches for it, but the head hash changes.
            prop_assert!(!after.is_intact() || after.head != report.head, "{}", after);
        }
    }

    #[test]
    fn verify_never_panics_and_counts_lines(
        bytes in mutated(prop::collection::vec(event(), 1..4).prop_map(|events| {
            let (_dir, path) = chain(&events);
            std::fs::read(path).expect("read the log")
        })),
    ) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, &bytes).expect("write");
        let report = verify(&path).expect("verify");
        let complete = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        prop_assert!(report.records <= complete);
        if report.is_intact() {
            prop_assert_eq!(report.records, complete);
            prop_assert_eq!(report.torn_tail.is_some(), !bytes.is_empty() && bytes.last() != Some(&b'\n'));
            if let Some(h) = &report.head {
                let last = bytes[..bytes.len() - report.torn_tail.as_ref().map_or(0, |t| t.bytes as usize)]
                    .strip_suffix(b"\n").expect("ends with a line");
                let last = last.rsplit(|&b| b == b'\n').next().unwrap_or_default();
                prop_assert_eq!(&h.hash, &line_hash(last));
            }
        } else {
            let b = report.broken.as_ref().expect("broken");
            prop_assert_eq!(b.line, report.records + 1);
        }
    }
}

/// How `e` reads back: URLs lose their credentials when written.
fn redacted(e: &Event) -> Event {
    let fix = |c: &Call| {
        let mut c = c.clone();
        if let Target::HttpRequest { url, .. } = &mut c.target {
            *url = redact_url(url);
        }
        c
    };
    match e {
        Event::CallStart(c) => Event::CallStart(fix(c)),
        Event::CallEnd(end) => {
            let mut end = end.clone();
            end.call = fix(&end.call);
            Event::CallEnd(end)
        }
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn selectors_display_and_parse_back(s in prop_oneof![
        "(command|path|rule|network|cmd| network ):\\PC{0,16}",
        "network:\\[?[0-9a-fA-Z:.*_-]{0,12}\\]?(:[0-9]{0,6})?",
        "\\PC{0,20}",
    ]) {
        if let Ok(sel) = s.parse::<Selector>() {
            let shown = sel.to_string();
            prop_assert_eq!(shown.parse::<Selector>(), Ok(sel), "{:?} shown as {:?}", s, shown);
        }
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn revocation_lists_read_back_as_saved(entries in prop::collection::vec((selector(), prop::option::of(text())), 0..5)) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("revocations.toml");
        let mut list = Revocations::load(&path).expect("a missing list is empty");
        for (s, r) in &entries {
            list.add(s.clone(), r.clone());
        }
        list.save().expect("save");
        let again = Revocations::load(&path).expect("load");
        prop_assert_eq!(again.entries(), list.entries());
        let mut want: Vec<&Selector> = Vec::new();
        for (s, _) in &entries {
            if !want.contains(&s) {
                want.push(s);
            }
        }
        prop_assert_eq!(again.entries().iter().map(|e| &e.selector).collect::<Vec<_>>(), want);
    }

    #[test]
    fn revocation_files_never_panic(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        mutated(Just(b"[[revoked]]\nselector = \"network:a.test:443\"\nreason = \"x\"\nts = \"2026-03-01T12:00:00.123Z\"\n".to_vec())),
    ]) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("revocations.toml");
        std::fs::write(&path, &bytes).expect("write");
        if let Ok(list) = Revocations::load(&path) {
            for e in list.entries() {
                prop_assert_eq!(e.selector.to_string().parse::<Selector>(), Ok(e.selector.clone()));
            }
        }
    }
}

/// Found by `selectors_display_and_parse_back` and `lines_never_panic`: these parsed, but
/// showed as text that reads back as another selector or not at all, so a `revoke`
/// record or a saved list with them could not be read again.
#[test]
fn selectors_that_would_not_read_back_are_refused() {
    for s in ["network:[:a]", "network:[a:b]:80", "network:[:]", "network:a..", "network:a..:443"] {
        assert!(s.parse::<Selector>().is_err(), "{s}");
    }
    for s in ["network:[::1]", "network:a.", "network:.", "network:[a]:80"] {
        let sel: Selector = s.parse().expect(s);
        assert_eq!(sel.to_string().parse::<Selector>(), Ok(sel), "{s}");
    }
}
