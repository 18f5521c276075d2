//! Property tests of the serve/MCP request parser: the JSON body of `POST /v1/calls` and
//! `/v1/check` (and MCP tool arguments) into a [`ToolCall`], and the session's decision
//! on it ([`Session::check`]). Generated calls, mutated JSON and raw bytes: nothing
//! panics, a call reads back as it was written, and an `http_request` is allowed only
//! when a real URI parser (hyper's) finds an allowed host in its URL. `fuzz/` has a
//! cargo-fuzz target for the same entry point.

use std::collections::BTreeMap;

use paddock::policy::{normalize_host, Host, Policy, Vars};
use paddock::{Session, SessionConfig, Timeout, ToolCall};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES scales every property (for a longer hunt); CI runs the default.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A session whose policy allows `allowed.test` (ports 80 and 443) and nothing else on
/// the network; nothing is ever run, only checked.
fn session() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let vars = Vars { workspace: dir.path().into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    let text = "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\n\
                [commands]\nallow = [\"ls\", \"git status\"]\n[network]\nallow = [\"allowed.test\"]\n";
    let policy = Policy::from_toml_str("prop.toml", text, &vars).expect("the test policy");
    let session = Session::new(SessionConfig::new(policy, dir.path().join("audit.jsonl"))).expect("a session");
    (dir, session)
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![3 => "[a-z0-9 ./_-]{0,12}", 1 => "\\PC{0,12}", 1 => "[\"\\\\\n\u{0}]{0,3}"].boxed()
}

fn url() -> BoxedStrategy<String> {
    (
        prop::sample::select(vec!["http", "https", "HTTP", "ftp", ""]),
        prop::sample::select(vec!["://", ":/", ""]),
        prop::option::of("[a-z.:@]{0,12}@"),
        prop::sample::select(vec![
            "allowed.test",
            "ALLOWED.test.",
            "evil.test",
            "allowed.test.evil",
            "[::1]",
            "127.0.0.1",
            "allowed.test\\",
            "ａllowed.test",
        ]),
        prop::option::of(prop::sample::select(vec![":80", ":443", ":8080", ":", ":0", ":99999"])),
        prop::sample::select(vec!["", "/", "/x?y", "#@evil.test", "?@evil.test/", "/@evil.test", "\\@evil.test"]),
    )
        .prop_map(|(scheme, sep, user, host, port, rest)| {
            format!("{scheme}{sep}{}{host}{}{rest}", user.unwrap_or_default(), port.unwrap_or_default())
        })
        .boxed()
}

fn timeout() -> BoxedStrategy<Timeout> {
    prop_oneof![any::<u64>().prop_map(Timeout::Seconds), "[0-9]{0,4}(ms|s|m|h|x)?".prop_map(Timeout::Text)].boxed()
}

fn call() -> BoxedStrategy<ToolCall> {
    prop_oneof![
        (
            prop::collection::vec(prop_oneof![Just("ls".to_string()), Just("git".to_string()), text()], 0..4),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(timeout()),
        )
            .prop_map(|(argv, cwd, stdin, timeout)| ToolCall::Command { argv, cwd, stdin, timeout }),
        text().prop_map(|path| ToolCall::ReadFile { path }),
        (text(), text()).prop_map(|(path, content)| ToolCall::WriteFile { path, content }),
        (
            url(),
            prop::option::of(text()),
            prop::option::of(prop::collection::btree_map(text(), text(), 0..3)),
            prop::option::of(text())
        )
            .prop_map(|(url, method, headers, body): (_, _, Option<BTreeMap<_, _>>, _)| {
                ToolCall::HttpRequest { url, method, headers, body }
            }),
    ]
    .boxed()
}

/// Bytes with a few edits: flips, inserts of JSON punctuation, deletions, truncation.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![any::<u8>(), prop::sample::select(b"\"{}[]:,\\0123456789 tfn".to_vec())];
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

/// The host and port hyper's URI parser reads from `url`, if it is an http(s) URL.
fn uri_host(url: &str) -> Option<(Host, u16)> {
    let uri: hyper::Uri = url.parse().ok()?;
    let default = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let auth = uri.authority()?;
    if auth.as_str().contains('@') {
        return None;
    }
    Some((normalize_host(auth.host()).ok()?, auth.port_u16().unwrap_or(default)))
}

/// What every decision must be: named and explained; and an allowed `http_request` goes
/// where the policy allows, as a real URI parser reads the URL.
fn check(session: &Session, call: &ToolCall) -> Result<(), TestCaseError> {
    let d = session.check(call);
    prop_assert!(!d.rule.is_empty() && !d.reason.is_empty(), "{:?}", d);
    // (hyper reads ASCII URIs only; an IDN such as `ａllowed.test` is allowed.test by UTS 46.)
    if let (ToolCall::HttpRequest { url, .. }, true, true) = (call, d.is_allow(), call_is_ascii(call)) {
        let allowed = Host::Name("allowed.test".into());
        prop_assert!(
            matches!(uri_host(url), Some((h, 80 | 443)) if h == allowed),
            "{:?} allowed, but it does not go to allowed.test:80/443 ({:?})",
            url,
            uri_host(url)
        );
    }
    if let ToolCall::Command { timeout: Some(t), .. } = call {
        let _ = t.duration();
    }
    Ok(())
}

fn call_is_ascii(call: &ToolCall) -> bool {
    matches!(call, ToolCall::HttpRequest { url, .. } if url.is_ascii())
}

#[test]
fn tool_calls_read_back_as_written() {
    let (_dir, session) = session();
    TestRunner::new(config(2000))
        .run(&call(), |c| {
            let bytes = serde_json::to_vec(&c).expect("a call encodes");
            let value = serde_json::to_value(&c).expect("a call encodes");
            // A timeout paddock does not take (zero, not a duration, over ten years) is
            // refused as the call is read, with the reason; any other call reads back as it
            // was written, from bytes and (MCP: the same fields as tool arguments) a value.
            if let ToolCall::Command { timeout: Some(t), .. } = &c {
                if let Err(why) = t.duration() {
                    let e = serde_json::from_slice::<ToolCall>(&bytes).expect_err("a bad timeout is refused");
                    prop_assert!(e.to_string().contains(&why), "{} does not say {}", e, why);
                    prop_assert!(serde_json::from_value::<ToolCall>(value).is_err());
                    return Ok(());
                }
            }
            prop_assert_eq!(serde_json::from_slice::<ToolCall>(&bytes).expect("reads back"), c.clone());
            prop_assert_eq!(serde_json::from_value::<ToolCall>(value).expect("reads back"), c.clone());
            check(&session, &c)
        })
        .unwrap();
}

#[test]
fn request_bodies_never_panic() {
    let (_dir, session) = session();
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80),
        mutated(call().prop_map(|c| serde_json::to_vec(&c).expect("a call encodes"))),
        "\\{(\"(tool|argv|path|url|cwd|timeout|content|x)\": ?(\"[a-z_ ]{0,10}\"|\\[\\]|[0-9]{1,25}|-1|1e99|null|true|\\{\\}), ?){0,4}\\}"
            .prop_map(String::into_bytes),
    ];
    TestRunner::new(config(2000))
        .run(&bodies, |bytes| {
            if let Ok(c) = serde_json::from_slice::<ToolCall>(&bytes) {
                let again = serde_json::to_vec(&c).expect("a call encodes");
                prop_assert_eq!(serde_json::from_slice::<ToolCall>(&again).expect("reads back"), c.clone());
                check(&session, &c)?;
            }
            Ok(())
        })
        .unwrap();
}
