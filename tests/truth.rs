//! End-to-end: paddock fails closed and tells the truth (issue 10, items 4–7).
//!
//! 4. What a person reads cannot be forged by the agent: argv with terminal escapes, C1
//!    controls, bidi overrides, NUL and a lone CR is shown escaped by `audit review`, by
//!    `run`'s denial message and by `check`; `--json` carries it exactly.
//! 5. A refused connection is said: one line on `run`'s stderr (`--quiet` silences it), a
//!    denied attempt in `audit review`, the proxy's own verdict in `check --connect` and in
//!    `serve`'s and `mcp`'s `http_request` (a deny with the rule, not an allow carrying a
//!    403; an allowed one carries `status`, `headers`, `body`).
//! 6. A filesystem grant in a call's sandbox view is never listed as unused.
//! 7. Exit codes and messages: a closed stdout pipe ends quietly, `check --connect` of a
//!    bad host is 64, a missing `--policy` file says so, `run --explain` reports on the
//!    policy given, a corrupt revocation list is a revocation-list error (78).
//!
//! Network: loopback only. "A host refused for its address" is a name pinned to 127.0.0.1
//! by `[network.hosts]` and allowed without `allow_private`: the proxy refuses it for its
//! address class, which is the case of a registry mirror on a private address. Controls
//! use a one-line HTTP server of the test's own on 127.0.0.1.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_paddock");

/// The forged argument of the issue: it erases a line and draws a fake, green section.
const FORGED: &str = "x\x1b[1A\x1b[2K\r\x1b[32m  (nothing denied)";
/// How a person must see it.
const FORGED_SHOWN: &str = r"x\x1b[1A\x1b[2K\r\x1b[32m  (nothing denied)";

/// Variants: an OSC title sequence, a one-byte C1 CSI, a right-to-left override, a lone
/// CR; each with the form a person must see.
const VARIANTS: &[(&str, &str)] = &[
    ("osc\x1b]0;owned\x07", r"osc\x1b]0;owned\x07"),
    ("c1\u{9b}2J", r"c1\u{9b}2J"),
    ("invoice\u{202e}gpj.exe", r"invoice\u{202e}gpj.exe"),
    ("ok\rFAKE", r"ok\rFAKE"),
    ("iso\u{2066}late\u{2069}", r"iso\u{2066}late\u{2069}"),
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs `paddock ARGS` as the fixture's user, in the workspace.
fn pd(f: &Fixture, args: &[&str]) -> Out {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
    argv.extend(args.iter().map(OsString::from));
    f.launch(&argv, &[], None)
}

/// `paddock run [FLAGS] --policy P --workspace WS -- ARGV`.
fn run_with(f: &Fixture, flags: &[&str], policy: &Path, argv: &[&str]) -> Out {
    let mut v: Vec<&str> = vec!["run"];
    v.extend_from_slice(flags);
    let p = policy.to_str().unwrap();
    let ws = f.ws.to_str().unwrap();
    v.extend(["--policy", p, "--workspace", ws, "--"]);
    v.extend_from_slice(argv);
    pd(f, &v)
}

fn review_json(f: &Fixture, policy: &Path) -> Value {
    let o = pd(f, &["audit", "review", "--json", "--policy", policy.to_str().unwrap()]);
    assert_eq!(o.code(), 0, "{o}");
    serde_json::from_str(&o.out()).unwrap_or_else(|e| panic!("review --json is JSON ({e})\n{o}"))
}

/// Characters that must never reach a person's terminal unescaped: controls other than
/// the newline, DEL, C1, bidi embeddings/overrides/isolates and invisible formats.
fn is_forgery(c: char) -> bool {
    let u = c as u32;
    (c.is_control() && c != '\n') || matches!(u, 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff | 0xad)
}

fn assert_clean(text: &str, what: &str) {
    if let Some(c) = text.chars().find(|&c| is_forgery(c)) {
        panic!("{what} shows {c:?} raw:\n{}", text.escape_debug());
    }
}

/// A loopback HTTP server answering every request with `hello` and an `X-Truth` header;
/// lives as long as the test process. Its port.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Truth: yes\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
            });
        }
    });
    port
}

/// Network tail: `mirror.test` (pinned to 127.0.0.1) allowed on 80, 443 and `port`;
/// `other.test` pinned too but not allowed; `private` the `allow_private` list.
fn net_tail(port: u16, private: &str) -> String {
    format!(
        "[network]\nallow = [\"mirror.test\", \"mirror.test:{port}\"]\nallow_private = [{private}]\n\n[network.hosts]\n\"mirror.test\" = \"127.0.0.1\"\n\"other.test\" = \"127.0.0.1\"\n\"lan.test\" = \"10.0.0.7\"\n"
    )
}

// ---------------------------------------------------------------------------------------
// 4. Agent-chosen text is escaped wherever a person reads it
// ---------------------------------------------------------------------------------------

fn forged_argv_is_shown_escaped(user: User) {
    let f = Fixture::new(user);
    let open = f.policy(&Pol::default()); // no [commands]: any program may start
    let o = run_with(&f, &[], &open, &["echo", FORGED]);
    assert_eq!(o.code(), 0, "{o}");
    for (raw, _) in VARIANTS {
        let o = run_with(&f, &[], &open, &["echo", raw]);
        assert_eq!(o.code(), 0, "{o}");
    }
    // A NUL cannot be in an argv; it can be in a log line (a path through the API): one
    // crafted record, a copy of a real call.start with a new argv.
    let log = f.root.join("state/audit.jsonl");
    let text = read(&log);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let start = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|v| v["event"] == "call.start");
    let mut crafted = start.expect("a call.start");
    crafted["seq"] = json!(last["seq"].as_u64().unwrap() + 1);
    crafted["call_id"] = json!("c-crafted");
    crafted["argv"] = json!(["nul\0byte", "del\x7f"]);
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(format!("{crafted}\n").as_bytes()).unwrap();

    let o = pd(&f, &["audit", "review", "--policy", open.to_str().unwrap()]);
    assert_eq!(o.code(), 0, "{o}");
    let shown = o.out();
    assert_clean(&shown, "audit review");
    assert!(shown.contains(FORGED_SHOWN), "the forged argv is shown escaped:\n{shown}");
    for (_, want) in VARIANTS {
        assert!(shown.contains(want), "{want} in\n{shown}");
    }
    assert!(shown.contains(r"'nul\x00byte' 'del\x7f'"), "{shown}");
    assert!(shown.contains("Denied attempts (0)"), "{shown}");

    // --json carries the text exactly (JSON's own escaping is enough).
    let v = review_json(&f, &open);
    let argvs: Vec<Value> = v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["used_by"].as_array().unwrap().clone())
        .map(|u| u["argv"].clone())
        .collect();
    assert!(argvs.contains(&json!(["echo", FORGED])), "{argvs:?}");
    for (raw, _) in VARIANTS {
        assert!(argvs.contains(&json!(["echo", raw])), "{raw:?} in {argvs:?}");
    }
    assert!(argvs.contains(&json!(["nul\0byte", "del\x7f"])), "{argvs:?}");

    // A denial on run's stderr, and check's answer, show it escaped too.
    let strict = f.policy(&Pol { tail: "[commands]\nallow = [\"true\"]\n", ..Default::default() });
    let o = run_with(&f, &[], &strict, &["echo", FORGED]);
    assert_eq!(o.code(), 77, "{o}");
    assert_clean(&o.err(), "run's denial");
    assert!(o.err().contains("paddock: denied:") && o.err().contains(FORGED_SHOWN), "{o}");
    let o = pd(&f, &["check", "--policy", strict.to_str().unwrap(), "--", "echo", FORGED]);
    assert_eq!(o.code(), 77, "{o}");
    assert_clean(&o.out(), "check");
    let o = pd(&f, &["check", "--policy", strict.to_str().unwrap(), "--read", &format!("/tmp/{}", VARIANTS[2].0)]);
    assert_clean(&o.out(), "check --read");
    assert!(o.out().contains(VARIANTS[2].1), "{o}");
    // Control: the raw bytes do reach a terminal when nothing escapes them (the child's
    // own output is the child's, passed through).
    let o = run_with(&f, &[], &open, &["echo", FORGED]);
    assert!(o.out().contains(FORGED), "{o}");
}

// ---------------------------------------------------------------------------------------
// 5. Refused connections are said, counted and predicted
// ---------------------------------------------------------------------------------------

fn a_refused_connection_is_one_line_and_a_denied_attempt(user: User) {
    let f = Fixture::new(user);
    let port = http_server();
    let refusing = f.policy(&Pol { tail: &net_tail(port, ""), ..Default::default() });
    let url = format!("http://mirror.test:{port}/simple/");
    let curl = ["curl", "-sS", "--max-time", "30", url.as_str()];

    let o = run_with(&f, &[], &refusing, &curl);
    let lines: Vec<String> = o.err().lines().filter(|l| l.starts_with("paddock: refused")).map(String::from).collect();
    assert_eq!(lines.len(), 1, "one line per refused connection:\n{o}");
    let l = &lines[0];
    for want in [
        &format!("mirror.test:{port}") as &str,
        "(address 127.0.0.1)",
        "network.allow_private",
        "loopback",
        "add \"127.0.0.1/32\" to [network] allow_private",
    ] {
        assert!(l.contains(want), "{want:?} in {l}");
    }
    assert!(!o.out().contains("hello"), "the upstream was not reached: {o}");

    // --quiet silences it; the refusal stands.
    let o = run_with(&f, &["--quiet"], &refusing, &curl);
    assert!(!o.err().contains("paddock: refused"), "{o}");
    assert!(!o.out().contains("hello"), "{o}");

    // A name the policy does not allow: the line names the allow entry that would.
    let other = format!("http://other.test:{port}/");
    let o = run_with(&f, &[], &refusing, &["curl", "-sS", "--max-time", "30", &other]);
    assert!(o.err().contains(&format!("add \"other.test:{port}\" to [network] allow")), "{o}");

    // Control: with allow_private covering loopback the same call reaches the server,
    // and nothing is said.
    let covering = f.policy(&Pol { tail: &net_tail(port, "\"127.0.0.0/8\""), ..Default::default() });
    let o = run_with(&f, &[], &covering, &curl);
    assert_eq!((o.code(), o.out().as_str()), (0, "hello"), "{o}");
    assert!(!o.err().contains("paddock: refused"), "{o}");

    // The review counts the refusals among the denied attempts (human and JSON).
    let v = review_json(&f, &refusing);
    assert_eq!(v["denied_connections"], 3, "{v:#}");
    let denied = v["denied"].as_array().unwrap();
    let mirror = denied
        .iter()
        .find(|d| d["tool"] == "connect" && d["summary"] == format!("mirror.test:{port}"))
        .unwrap_or_else(|| panic!("{denied:?}"));
    assert_eq!((mirror["count"].clone(), mirror["rules"].clone()), (json!(2), json!(["network.allow_private"])));
    assert!(denied.iter().any(|d| d["summary"] == format!("other.test:{port}")), "{denied:?}");
    let o = pd(&f, &["audit", "review", "--policy", refusing.to_str().unwrap()]);
    let shown = o.out();
    assert!(shown.contains("Denied attempts (2):"), "{shown}");
    assert!(shown.contains(&format!("2x  connect mirror.test:{port}  [network.allow_private]")), "{shown}");
    assert!(shown.contains("(3 refused)"), "{shown}");
}

fn check_connect_gives_the_proxy_verdict(user: User) {
    let f = Fixture::new(user);
    let refusing = f.policy(&Pol { tail: &net_tail(1, ""), ..Default::default() });
    let covering = f.policy(&Pol { tail: &net_tail(1, "\"127.0.0.0/8\""), ..Default::default() });
    let check = |pol: &Path, host: &str| {
        let o = pd(&f, &["check", "--json", "--policy", pol.to_str().unwrap(), "--connect", host]);
        let v: Value = serde_json::from_str(&o.out()).unwrap_or_else(|e| panic!("{e}\n{o}"));
        (o.code(), v)
    };
    // Allowed by name, refused for its address: deny with the proxy's rule.
    let (code, v) = check(&refusing, "mirror.test");
    assert_eq!(
        (code, v["decision"].as_str(), v["rule"].as_str()),
        (77, Some("deny"), Some("network.allow_private")),
        "{v}"
    );
    assert_eq!(v.as_object().unwrap().len(), 3, "--json is decision, rule, reason: {v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("127.0.0.1") && reason.contains("loopback"), "{v}");
    assert!(reason.contains("add \"127.0.0.1/32\" to [network] allow_private"), "{v}");
    // Control: covered by allow_private, it is allowed by its allow entry.
    let (code, v) = check(&covering, "mirror.test");
    assert_eq!((code, v["decision"].as_str(), v["rule"].as_str()), (0, Some("allow"), Some("network.allow[0]")), "{v}");
    // A class that allow_private does not cover (private, 10.0.0.7) stays refused.
    let (code, v) = check(&covering, "lan.test");
    assert_eq!((code, v["rule"].as_str()), (77, Some("default")), "lan.test is not allowed by name: {v}");
    let lan = f.policy(&Pol {
        tail: "[network]\nallow = [\"lan.test\"]\nallow_private = [\"127.0.0.0/8\"]\n[network.hosts]\n\"lan.test\" = \"10.0.0.7\"\n",
        ..Default::default()
    });
    let (code, v) = check(&lan, "lan.test");
    assert_eq!((code, v["rule"].as_str()), (77, Some("network.allow_private")), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("private"), "{v}");
    // Not allowed by name: the policy's rule and the allow entry that would.
    let (code, v) = check(&refusing, "other.test:8080");
    assert_eq!((code, v["rule"].as_str()), (77, Some("default")), "{v}");
    // The human form says the same, with the address, and the hint for a denial by name.
    let o = pd(&f, &["check", "--policy", refusing.to_str().unwrap(), "--connect", "mirror.test"]);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.out().starts_with("deny: ") && o.out().contains("(network.allow_private); address 127.0.0.1:443"), "{o}");
    assert!(o.out().contains("add \"127.0.0.1/32\" to [network] allow_private"), "{o}");
    let o = pd(&f, &["check", "--policy", covering.to_str().unwrap(), "--connect", "mirror.test"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("(network.allow[0]); address 127.0.0.1:443"), "{o}");
    let o = pd(&f, &["check", "--policy", refusing.to_str().unwrap(), "--connect", "other.test:8080"]);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.out().contains("\"other.test:8080\" to [network] allow"), "the line that would allow it: {o}");
}

// ---------------------------------------------------------------------------------------
// 6. A grant in a call's view is in use
// ---------------------------------------------------------------------------------------

fn grants_in_a_view_are_never_unused(user: User) {
    let f = Fixture::new(user);
    write(&f.ws.join("data.txt"), "data", 0o644);
    let pol = f.policy(&Pol { tail: "[commands]\nallow = [\"cat **\"]\n", ..Default::default() });
    // A denied call has no view: control, the grant shows as never used.
    let o = run_with(&f, &[], &pol, &["ls"]);
    assert_eq!(o.code(), 77, "{o}");
    let v = review_json(&f, &pol);
    let unused = |v: &Value| -> Vec<String> {
        v["unused_grants"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    assert!(unused(&v).contains(&"filesystem.write[0]".to_string()), "{v:#}");
    // `cat data.txt` reads through the workspace grant that no decision names.
    let o = run_with(&f, &[], &pol, &["cat", "data.txt"]);
    assert_eq!((o.code(), o.out().as_str()), (0, "data"), "{o}");
    let v = review_json(&f, &pol);
    let u = unused(&v);
    assert!(!u.iter().any(|g| g.starts_with("filesystem.")), "no filesystem grant of the view is unused: {u:?}");
    let w = v["in_view"].as_array().unwrap().iter().find(|g| g["rule"] == "filesystem.write[0]").cloned();
    let w = w.unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!((w["calls"].clone(), w["decided_uses"].clone()), (json!(1), json!(0)), "{w}");
    let records: Vec<Value> =
        read(&f.root.join("state/audit.jsonl")).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let start = records.iter().rev().find(|r| r["event"] == "call.start").unwrap();
    assert!(start["view"].as_array().unwrap().contains(&json!("filesystem.write[0]")), "{start}");
    let o = pd(&f, &["audit", "review", "--policy", pol.to_str().unwrap()]);
    let shown = o.out();
    let never = &shown[shown.find("Grants never used").unwrap()..shown.find("Denied attempts").unwrap()];
    assert!(!never.contains("filesystem."), "{shown}");
    assert!(shown.contains("filesystem.write[0]: in the view of 1 call (0 uses decided)"), "{shown}");
}

// ---------------------------------------------------------------------------------------
// 7. Exit codes and messages
// ---------------------------------------------------------------------------------------

/// Runs `paddock ARGS` with its stdout a pipe whose reader is already gone.
fn with_closed_stdout(f: &Fixture, args: &[&str]) -> Out {
    let mut full: Vec<OsString> = vec![f.bin.clone().into()];
    full.extend(args.iter().map(OsString::from));
    let (r, w) = std::io::pipe().expect("pipe");
    drop(r);
    let mut cmd = f.command(&full);
    cmd.stdin(Stdio::null()).stdout(w).stderr(Stdio::piped());
    let child = spawn(&mut cmd).unwrap();
    let o = child.wait_with_output().unwrap();
    Out { code: o.status.code(), stdout: Vec::new(), stderr: o.stderr }
}

fn a_closed_pipe_ends_quietly(user: User) {
    let f = Fixture::new(user);
    let pol = f.policy(&Pol::default());
    for _ in 0..3 {
        assert_eq!(run_with(&f, &[], &pol, &["true"]).code(), 0);
    }
    let p = pol.to_str().unwrap();
    let ws = f.ws.to_str().unwrap();
    for (args, code) in [
        (&["audit", "review"][..], 0),
        (&["audit", "review", "--json"], 0),
        (&["audit", "verify"], 0),
        (&["policy", "show", "--policy", p], 0),
        (&["revoke", "--list"], 0),
        (&["check", "--policy", p, "--read", ws], 0),
        (&["run", "--explain"], 0),
    ] {
        let o = with_closed_stdout(&f, args);
        assert!(!o.err().contains("panicked") && !o.err().contains("Broken pipe"), "{args:?}: {o}");
        assert_eq!(o.code, Some(code), "{args:?}: {o}");
    }
    // Control: with a reader, each of them prints.
    let o = pd(&f, &["audit", "review"]);
    assert!(o.out().starts_with("Audit review of "), "{o}");
}

fn usage_and_config_errors_say_what_is_wrong(user: User) {
    let f = Fixture::new(user);
    // A host that can never be one is a usage error, not a denial.
    for bad in ["bad host!", "a b", "x:0", "x:99999", ""] {
        let o = pd(&f, &["check", "--connect", bad]);
        assert_eq!(o.code(), 64, "{bad:?}: {o}");
        assert!(o.err().contains("--connect") && o.err().contains("hint:"), "{o}");
    }
    // Control: a good host is decided (deny under the default, which allows no network).
    assert_eq!(pd(&f, &["check", "--connect", "example.com"]).code(), 77);

    // A missing policy file is named as such, for every command that takes one.
    let missing = f.root.join("no-such-policy.toml");
    let m = missing.to_str().unwrap();
    for args in [
        &["run", "--policy", m, "--", "true"][..],
        &["check", "--policy", m, "--read", "/etc"],
        &["policy", "show", "--policy", m],
        &["policy", "lint", m],
        &["audit", "review", "--policy", m],
    ] {
        let o = pd(&f, args);
        assert_eq!(o.code(), 78, "{args:?}: {o}");
        let err = o.err();
        assert!(err.contains(&format!("cannot read policy {m}: No such file or directory")), "{args:?}: {err}");
        assert!(!err.contains(":1:1") && !err.contains("extends"), "{args:?}: {err}");
        assert!(err.contains("hint:"), "{err}");
    }
}

fn explain_reports_on_the_policy_given(user: User) {
    let f = Fixture::new(user);
    // The embedded default sets max_processes: a run creates a cgroup.
    let o = pd(&f, &["run", "--explain"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("cgroup: needed by this policy (max_processes = "), "{o}");
    assert!(!o.out().contains("not needed: no memory or process limit requested"), "{o}");
    // Control: a policy with no process or memory limit does not need one.
    let pol = f.policy(&Pol::default());
    let o = pd(&f, &["run", "--explain", "--policy", pol.to_str().unwrap()]);
    assert!(o.out().contains("cgroup: not needed by this policy"), "{o}");
    let pol = f.policy(&Pol { tail: "[limits]\nmax_memory = \"512MiB\"\n", ..Default::default() });
    let o = pd(&f, &["run", "--explain", "--policy", pol.to_str().unwrap()]);
    assert!(o.out().contains("cgroup: needed by this policy (max_memory = 512MiB)"), "{o}");
}

fn a_corrupt_revocation_list_is_named(user: User) {
    let f = Fixture::new(user);
    let list = f.root.join("state/revocations.toml");
    write(&list, "[[revoked]\nselector = ", 0o644);
    let o = pd(&f, &["run", "--", "true"]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("revocation list"), "{o}");
    assert!(!o.err().contains("audit log"), "{o}");
    assert!(o.err().contains("hint:"), "{o}");
    // Control: without it, the same run runs.
    std::fs::remove_file(&list).unwrap();
    assert_eq!(pd(&f, &["run", "--", "true"]).code(), 0);
}

both_users!(
    forged_argv_is_shown_escaped,
    a_refused_connection_is_one_line_and_a_denied_attempt,
    check_connect_gives_the_proxy_verdict,
    grants_in_a_view_are_never_unused,
    a_closed_pipe_ends_quietly,
    usage_and_config_errors_say_what_is_wrong,
    explain_reports_on_the_policy_given,
    a_corrupt_revocation_list_is_named,
);

// ---------------------------------------------------------------------------------------
// 5 (cont.). http_request through serve and mcp: the proxy's verdict, and the response
// ---------------------------------------------------------------------------------------

/// A policy for the supervisor: the system read-only, the workspace writable, plus `tail`.
fn supervisor_policy(dir: &Path, tail: &str) -> std::path::PathBuf {
    let read: Vec<String> = ["/usr", "/bin", "/lib", "/lib64", "/etc"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p:?}"))
        .collect();
    let text = format!(
        "version = 1\n[filesystem]\nread = [{}]\nwrite = [\"${{WORKSPACE}}\"]\n[env]\nset = {{ PATH = {PATH:?} }}\n\n{tail}\n",
        read.join(", ")
    );
    let p = dir.join(format!("policy-{}.toml", unique()));
    std::fs::write(&p, text).unwrap();
    p
}

/// `paddock serve` on 127.0.0.1:0 with `policy`; killed on drop.
struct Serve {
    child: Child,
    addr: String,
    state: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &Path, policy: &Path) -> Serve {
        let (state, ws) = (dir.join(format!("state-{}", unique())), dir.join("ws"));
        std::fs::create_dir_all(&ws).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
            .arg(policy)
            .arg("--workspace")
            .arg(&ws)
            .env("PADDOCK_STATE_DIR", &state)
            .env_remove("PADDOCK_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("paddock: listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(HANG).expect("serve reports its address");
        Serve { child, addr, state }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let token = std::fs::read_to_string(self.state.join("token")).unwrap();
        let body = body.to_string();
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        let port = self.addr.rsplit(':').next().unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            token.trim(),
            body.len()
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let (head, body) = buf.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{buf}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

#[test]
fn serve_http_request_is_the_proxy_verdict_and_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let port = http_server();
    let url = format!("http://mirror.test:{port}/simple/");
    let refusing = supervisor_policy(dir.path(), &net_tail(port, ""));
    let s = Serve::start(dir.path(), &refusing);
    let o = s.post("/v1/calls", &json!({ "tool": "http_request", "url": url }));
    assert_eq!((o["decision"].as_str(), o["rule"].as_str()), (Some("deny"), Some("network.allow_private")), "{o:#}");
    assert!(o["reason"].as_str().unwrap().contains("\"127.0.0.1/32\" to [network] allow_private"), "{o:#}");
    assert!(o.get("status").is_none() && !o["stdout"].as_str().unwrap().contains("403"), "{o:#}");
    // Through CONNECT (https) the same.
    let o = s.post("/v1/calls", &json!({ "tool": "http_request", "url": "https://mirror.test/" }));
    assert_eq!((o["decision"].as_str(), o["rule"].as_str()), (Some("deny"), Some("network.allow_private")), "{o:#}");
    // /v1/check predicts it with the proxy's own code.
    let c = s.post("/v1/check", &json!({ "tool": "http_request", "url": url }));
    assert_eq!((c["decision"].as_str(), c["rule"].as_str()), (Some("deny"), Some("network.allow_private")), "{c:#}");
    drop(s);

    // Control: covered by allow_private, the response comes back as status, headers, body.
    let covering = supervisor_policy(dir.path(), &net_tail(port, "\"127.0.0.0/8\""));
    let s = Serve::start(dir.path(), &covering);
    let o = s.post("/v1/calls", &json!({ "tool": "http_request", "url": url }));
    assert_eq!(o["decision"], "allow", "{o:#}");
    assert_eq!((o["status"].clone(), o["body"].clone()), (json!(200), json!("hello")), "{o:#}");
    assert_eq!(o["headers"]["x-truth"], "yes", "{o:#}");
    let c = s.post("/v1/check", &json!({ "tool": "http_request", "url": url }));
    assert_eq!(c["decision"], "allow", "{c:#}");
}

/// `paddock mcp` with `policy`; killed on drop.
struct Mcp {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next: u64,
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mcp {
    fn start(dir: &Path, policy: &Path) -> Mcp {
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        let mut child = Command::new(BIN)
            .arg("mcp")
            .arg("--policy")
            .arg(policy)
            .arg("--workspace")
            .arg(&ws)
            .env("PADDOCK_STATE_DIR", dir.join(format!("state-{}", unique())))
            .env_remove("PADDOCK_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut m = Mcp { child, stdin, lines, next: 1 };
        m.request("initialize", json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "truth", "version": "0" } }));
        m.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        m
    }

    fn send(&mut self, v: &Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + HANG;
        loop {
            let line = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("an answer");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }

    /// The outcome JSON of a tools/call.
    fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({ "name": tool, "arguments": args }));
        r["result"]["structuredContent"].clone()
    }
}

#[test]
fn mcp_http_request_is_the_proxy_verdict_and_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let port = http_server();
    let url = format!("http://mirror.test:{port}/");
    let mut m = Mcp::start(dir.path(), &supervisor_policy(dir.path(), &net_tail(port, "")));
    let o = m.call("http_request", json!({ "url": url }));
    assert_eq!((o["decision"].as_str(), o["rule"].as_str()), (Some("deny"), Some("network.allow_private")), "{o:#}");
    let c = m.call("check", json!({ "tool": "http_request", "url": url }));
    assert_eq!((c["decision"].as_str(), c["rule"].as_str()), (Some("deny"), Some("network.allow_private")), "{c:#}");
    drop(m);
    // Control.
    let mut m = Mcp::start(dir.path(), &supervisor_policy(dir.path(), &net_tail(port, "\"127.0.0.0/8\"")));
    let o = m.call("http_request", json!({ "url": url }));
    assert_eq!(
        (o["decision"].as_str(), o["status"].clone(), o["body"].clone()),
        (Some("allow"), json!(200), json!("hello")),
        "{o:#}"
    );
}
