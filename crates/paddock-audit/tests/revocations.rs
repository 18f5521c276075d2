//! The revocation list: round trips, concurrency, errors.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use paddock_audit::{AuditError, Revocations, Selector};

fn sel(s: &str) -> Selector {
    s.parse().unwrap()
}

#[test]
fn round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/revocations.toml");
    let mut list = Revocations::load(&path).unwrap();
    assert!(list.entries().is_empty());
    assert!(list.add(sel("rule:commands.allow[2]"), Some("too broad".into())));
    assert!(list.add(sel("command:git push **"), None));
    assert!(list.add(sel("network:[::1]:8080"), Some("local \"admin\" port".into())));
    assert!(list.add(sel("path:/home/me/.aws"), None));
    assert!(!list.add(sel("rule:commands.allow[2]"), Some("again".into())), "already revoked");
    list.save().unwrap();

    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);

    let loaded = Revocations::load(&path).unwrap();
    assert_eq!(loaded.entries(), list.entries());
    let e = &loaded.entries()[0];
    assert_eq!(e.selector, Selector::Rule("commands.allow[2]".into()));
    assert_eq!(e.reason.as_deref(), Some("too broad"));
    assert!(paddock_audit::record::parse_ts(&e.ts).is_some(), "{}", e.ts);
    assert_eq!(loaded.entries()[2].selector, Selector::Network { host: "::1".into(), port: Some(8080) });
    assert_eq!(loaded.entries()[2].reason.as_deref(), Some("local \"admin\" port"));

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[[revoked]]") && text.contains(r#"selector = "rule:commands.allow[2]""#), "{text}");

    let mut again = Revocations::load(&path).unwrap();
    assert!(again.remove(&sel("command:git push **")));
    assert!(!again.remove(&sel("command:ls")));
    again.save().unwrap();
    let loaded = Revocations::load(&path).unwrap();
    assert_eq!(loaded.entries().len(), 3);
    assert!(!loaded.contains(&sel("command:git push **")));
    assert!(loaded.contains(&sel("network:[::1]:8080")));
}

#[test]
fn concurrent_revokers_do_not_lose_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("revocations.toml");
    // Two revokers load the same (empty) list, then both save.
    let mut a = Revocations::load(&path).unwrap();
    let mut b = Revocations::load(&path).unwrap();
    a.add(sel("rule:a"), None);
    b.add(sel("rule:b"), None);
    a.save().unwrap();
    b.save().unwrap();
    assert_eq!(b.entries().len(), 2, "save leaves the merged list in memory");
    assert_eq!(Revocations::load(&path).unwrap().entries().len(), 2);

    // Many threads at once.
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut list = Revocations::load(&path).unwrap();
                list.add(sel(&format!("command:tool{i} **")), Some(format!("thread {i}")));
                barrier.wait();
                list.save().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let list = Revocations::load(&path).unwrap();
    assert_eq!(list.entries().len(), 10);
    for i in 0..8 {
        assert!(list.contains(&sel(&format!("command:tool{i} **"))));
    }
    // No temporary files left behind.
    let names: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| n == "revocations.toml" || n == "revocations.toml.lock"), "{names:?}");
}

#[test]
fn reload_if_changed_sees_other_revokers() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("revocations.toml");
    let mut watcher = Revocations::load(&path).unwrap();
    assert!(!watcher.reload_if_changed().unwrap());
    let mut other = Revocations::load(&path).unwrap();
    other.add(sel("rule:x"), None);
    other.save().unwrap();
    assert!(watcher.reload_if_changed().unwrap());
    assert!(watcher.contains(&sel("rule:x")));
    assert!(!watcher.reload_if_changed().unwrap());
}

#[test]
fn malformed_files_are_errors_with_a_location() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("revocations.toml");

    std::fs::write(&path, "[[revoked]]\nselector = \"cmd:git\"\nts = \"2026-03-01T00:00:00Z\"\n").unwrap();
    let err = Revocations::load(&path).unwrap_err();
    assert!(matches!(err, AuditError::RevocationsParse { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("unknown kind `cmd`") && msg.contains("revocations.toml:2:12: "), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg:?}");

    std::fs::write(&path, "[[revokd]]\nselector = \"rule:x\"\n").unwrap();
    let msg = Revocations::load(&path).unwrap_err().to_string();
    assert!(msg.contains("revokd"), "{msg}");

    std::fs::write(&path, "[[revoked]]\nselector = \"rule:x\"\n").unwrap();
    let msg = Revocations::load(&path).unwrap_err().to_string();
    assert!(msg.contains("ts"), "{msg}");
}

#[test]
fn selector_errors_convert_into_audit_errors() {
    fn parse(s: &str) -> Result<Selector, AuditError> {
        Ok(s.parse::<Selector>()?)
    }
    let msg = parse("network:").unwrap_err().to_string();
    assert!(msg.contains("invalid selector `network:`") && msg.contains("nothing follows"), "{msg}");
    let msg = parse("host:example.com").unwrap_err().to_string();
    assert!(msg.contains("unknown kind `host`"), "{msg}");
}
