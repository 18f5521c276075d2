//! End-to-end: questions to a person (`ask` entries), answered from another process
//! (`paddock approve`/`deny`, `POST /v1/approvals/ID`), kept "always" in
//! `$STATE/approved.toml`, and `paddock policy suggest`. Loopback only: an HTTP server on
//! 127.0.0.1, names pinned with `[network.hosts]`. Each scenario runs as root and as uid
//! 65534; questions are polled for, never slept on.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// An HTTP server on 127.0.0.1 answering `hello` to every request; its port.
fn upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

/// The policy tail: `asked.test` and `denied.test` pinned to 127.0.0.1; `asked.test` asks.
fn tail(timeout: &str, more: &str) -> String {
    format!(
        "[sandbox]\nask_timeout = \"{timeout}\"\n\n[network]\nask = [\"asked.test\"]\nallow_private = [\"127.0.0.1/32\"]\n\n[network.hosts]\n\"asked.test\" = \"127.0.0.1\"\n\"denied.test\" = \"127.0.0.1\"\n\"other.test\" = \"127.0.0.1\"\n\n{more}\n"
    )
}

/// A shell line that connects to `host:port` through the proxy (CONNECT) and prints
/// `TAG ok` or `TAG no`.
fn connect(tag: &str, host: &str, port: u16) -> String {
    format!(
        "if curl -sS -p --max-time 50 -o /dev/null http://{host}:{port}/; then echo {tag} ok; else echo {tag} no; fi; "
    )
}

fn need_curl() {
    assert!(Path::new("/usr/bin/curl").exists(), "these tests need /usr/bin/curl");
}

/// Starts `paddock run --policy POLICY -- argv` as the fixture's user, in the background.
fn start(f: &Fixture, policy: &Path, argv: &[&str]) -> Child {
    let mut full: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--policy".into(), policy.into()];
    full.extend(["--workspace".into(), f.ws.clone().into(), "--".into()]);
    full.extend(argv.iter().map(OsString::from));
    let mut cmd = f.command(&full);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    spawn(&mut cmd).expect("spawn paddock run")
}

/// Waits for a background run; its output.
fn finish(mut child: Child) -> Out {
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let _ = out.read_to_end(&mut o);
        let _ = err.read_to_end(&mut e);
        let _ = tx.send((o, e));
    });
    let (stdout, stderr) = rx.recv_timeout(HANG).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("paddock run did not end within {HANG:?}")
    });
    let status = child.wait().unwrap();
    Out { code: status.code(), stdout, stderr }
}

/// `paddock ARGS` as the fixture's user.
fn paddock(f: &Fixture, args: &[&str]) -> Out {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
    argv.extend(args.iter().map(OsString::from));
    f.launch(&argv, &[], None)
}

/// Polls `paddock approvals --json` until a question other than those in `seen` is open.
fn next_question(f: &Fixture, seen: &[String]) -> Value {
    let start = Instant::now();
    loop {
        let o = paddock(f, &["approvals", "--json"]);
        assert_eq!(o.code(), 0, "{o}");
        let v: Value = serde_json::from_str(&o.out()).unwrap_or_else(|e| panic!("{e}: {o}"));
        if let Some(q) =
            v["approvals"].as_array().unwrap().iter().find(|q| !seen.contains(&q["id"].as_str().unwrap().to_string()))
        {
            return q.clone();
        }
        assert!(start.elapsed() < HANG, "no question was asked within {HANG:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn records(f: &Fixture, event: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(f.root.join("state/audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|r| r["event"] == event).collect()
}

fn id(q: &Value) -> String {
    q["id"].as_str().unwrap().to_string()
}

/// A held CONNECT goes through once `paddock approve` (another process) says so; the next
/// connection asks again, and `deny` refuses it.
fn once_then_ask_again(user: User) {
    need_curl();
    let f = Fixture::new(user);
    let port = upstream();
    let pol = f.policy(&Pol { tail: &tail("50s", ""), ..Pol::default() });
    let script = format!("{}{}", connect("first", "asked.test", port), connect("second", "asked.test", port));
    let run = start(&f, &pol, &["sh", "-c", &script]);
    let q1 = next_question(&f, &[]);
    assert_eq!(q1["kind"], "network", "{q1}");
    assert_eq!(q1["subject"], format!("asked.test:{port}"), "{q1}");
    assert_eq!(q1["proposed"], format!("[network] allow = [\"asked.test:{port}\"]"), "{q1}");
    assert_eq!(q1["workspace"], f.ws.to_str().unwrap(), "{q1}");
    assert!(q1["pid"].as_u64().unwrap() > 0 && q1["session"].as_str().unwrap().starts_with("run-"), "{q1}");
    let keys: Vec<&String> = q1.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["asked_at", "id", "kind", "pid", "proposed", "session", "subject", "workspace"], "{q1}");
    let o = paddock(&f, &["approve", &id(&q1)]);
    assert_eq!(o.code(), 0, "{o}");
    let q2 = next_question(&f, &[id(&q1)]);
    assert_ne!(id(&q1), id(&q2));
    let o = paddock(&f, &["deny", &id(&q2)]);
    assert_eq!(o.code(), 0, "{o}");
    let o = finish(run);
    assert!(o.out().contains("first ok") && o.out().contains("second no"), "{o}");
    // Answered questions are gone: a second answer names an unknown id.
    assert_eq!(paddock(&f, &["approve", &id(&q1)]).code(), 64);
    let asks = records(&f, "approval.ask");
    let answers = records(&f, "approval.answer");
    assert_eq!(asks.len(), 2, "{asks:?}");
    assert_eq!(
        (answers[0]["answer"].as_str(), answers[0]["scope"].as_str()),
        (Some("allow"), Some("once")),
        "{answers:?}"
    );
    assert_eq!(
        (answers[1]["answer"].as_str(), answers[1]["scope"].as_str()),
        (Some("deny"), Some("once")),
        "{answers:?}"
    );
    let uid = user.uid().to_string();
    assert!(answers[0]["by"].as_str().unwrap().starts_with(&format!("uid {uid} pid ")), "{answers:?}");
    let review = paddock(&f, &["audit", "review"]);
    assert!(review.out().contains("Questions (2, 0 open):"), "{review}");
    assert!(
        review.out().contains(&format!(
            "{} network `asked.test:{port}` (network.ask[0]): allow once by uid {uid} pid ",
            id(&q1)
        )),
        "{review}"
    );
    assert!(
        review.out().contains(&format!(
            "{} network `asked.test:{port}` (network.ask[0]): deny once by uid {uid} pid ",
            id(&q2)
        )),
        "{review}"
    );
    let conns = records(&f, "net.connect");
    assert!(conns.iter().any(|c| c["verdict"] == "allow" && c["rule"] == "network.ask[0]"), "{conns:?}");
    assert!(conns.iter().any(|c| c["verdict"] == "deny" && c["rule"] == "network.ask[0]"), "{conns:?}");
}

/// `session` holds for the rest of the run only; `always` survives a new run, is listed by
/// `policy show`, and `revoke rule:approved[0]` cuts it.
fn session_and_always(user: User) {
    need_curl();
    let f = Fixture::new(user);
    let port = upstream();
    let pol = f.policy(&Pol { tail: &tail("50s", ""), ..Pol::default() });
    let twice = format!("{}{}", connect("a", "asked.test", port), connect("b", "asked.test", port));
    let run = start(&f, &pol, &["sh", "-c", &twice]);
    let q = next_question(&f, &[]);
    assert_eq!(paddock(&f, &["approve", &id(&q), "--scope", "session"]).code(), 0);
    let o = finish(run);
    assert!(o.out().contains("a ok") && o.out().contains("b ok"), "{o}");
    assert_eq!(records(&f, "approval.ask").len(), 1, "the session's answer covers the second connection");

    // A new run is a new session: it asks again. `always` keeps the answer.
    let once = connect("c", "asked.test", port);
    let run = start(&f, &pol, &["sh", "-c", &once]);
    let q = next_question(&f, &[id(&q)]);
    assert_eq!(paddock(&f, &["approve", &id(&q), "--always"]).code(), 0);
    let o = finish(run);
    assert!(o.out().contains("c ok"), "{o}");
    let answers = records(&f, "approval.answer");
    assert_eq!(answers.last().unwrap()["approved_rule"], "approved[0]", "{answers:?}");

    let o = f.run(
        &Pol { tail: &tail("50s", ""), ..Pol::default() },
        &["sh", "-c", &connect("d", "asked.test", port)],
        None,
    );
    assert!(o.out().contains("d ok"), "{o}");
    assert_eq!(records(&f, "approval.ask").len(), 2, "an `always` answer is not asked again");
    let show = paddock(&f, &["policy", "show", "--policy", pol.to_str().unwrap()]);
    assert!(show.out().contains(&format!("# approved[0]: [network] allow = [\"asked.test:{port}\"]")), "{show}");
    let check = paddock(
        &f,
        &["check", "--policy", pol.to_str().unwrap(), "--json", "--connect", &format!("asked.test:{port}")],
    );
    assert!(check.out().contains("\"rule\":\"approved[0]\"") && check.code() == 0, "{check}");

    let o = paddock(&f, &["revoke", "rule:approved[0]"]);
    assert_eq!(o.code(), 0, "{o}");
    let o = f.run(
        &Pol { tail: &tail("50s", ""), ..Pol::default() },
        &["sh", "-c", &connect("e", "asked.test", port)],
        None,
    );
    assert!(o.out().contains("e no"), "{o}");
    assert_eq!(records(&f, "approval.ask").len(), 2, "a revoked answer is a denial, not a new question");
    let conns = records(&f, "net.connect");
    let last = conns.last().unwrap();
    assert!(last["verdict"] == "deny" && last["reason"].as_str().unwrap().contains("revoked"), "{last}");
}

/// No answer within `ask_timeout`: denied, and recorded as a timeout.
fn no_answer_is_a_denial(user: User) {
    need_curl();
    let f = Fixture::new(user);
    let port = upstream();
    let t0 = Instant::now();
    let o =
        f.run(&Pol { tail: &tail("1s", ""), ..Pol::default() }, &["sh", "-c", &connect("t", "asked.test", port)], None);
    assert!(o.out().contains("t no"), "{o}");
    assert!(t0.elapsed() >= Duration::from_secs(1), "it waited for the answer");
    let answers = records(&f, "approval.answer");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0]["answer"].as_str(), answers[0]["scope"].as_str()), (Some("deny"), Some("timeout")));
    assert_eq!(paddock(&f, &["approvals", "--json"]).out().trim(), "{\"approvals\":[]}", "nothing left open");
}

/// `check` says ask without waiting; an unknown id is 64 for approve and deny.
fn check_says_ask_and_unknown_ids(user: User) {
    let f = Fixture::new(user);
    let pol = f.policy(&Pol {
        tail: &tail("50s", "[commands]\nallow = [\"sh **\"]\nask = [\"echo **\"]\n"),
        ..Pol::default()
    });
    let p = pol.to_str().unwrap();
    let o = paddock(&f, &["check", "--policy", p, "--json", "--connect", "asked.test:8080"]);
    assert_eq!(o.code(), 77, "{o}");
    let v: Value = serde_json::from_str(&o.out()).unwrap();
    assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("ask"), Some("network.ask[0]")), "{o}");
    let o = paddock(&f, &["check", "--policy", p, "--json", "--", "echo", "hi"]);
    let v: Value = serde_json::from_str(&o.out()).unwrap();
    assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("ask"), Some("commands.ask[0]")), "{o}");
    // Control: what no ask entry covers is a plain denial.
    let o = paddock(&f, &["check", "--policy", p, "--json", "--connect", "other.test:8080"]);
    assert!(o.out().contains("\"decision\":\"deny\""), "{o}");
    assert!(records(&f, "approval.ask").is_empty(), "check asks nobody");
    for verb in ["approve", "deny"] {
        let o = paddock(&f, &[verb, "no-such-question"]);
        assert_eq!(o.code(), 64, "{verb}: {o}");
        assert!(o.err().contains("no open question"), "{o}");
    }
    assert_eq!(paddock(&f, &["deny", "x", "--scope", "session"]).code(), 64, "deny takes once or always");
}

/// A command that asks waits before it starts; approved, it runs; denied, it does not.
fn command_waits(user: User) {
    let f = Fixture::new(user);
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"echo **\"]\n"), ..Pol::default() });
    let run = start(&f, &pol, &["echo", "ran", "here"]);
    let q = next_question(&f, &[]);
    assert_eq!((q["kind"].as_str(), q["subject"].as_str()), (Some("command"), Some("echo ran here")), "{q}");
    assert_eq!(q["proposed"], "[commands] allow = [\"echo ran here\"]", "{q}");
    // Nothing ran yet: no call.start, which is written before the child starts.
    assert!(records(&f, "call.start").is_empty(), "the call waits before its sandbox starts");
    assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
    let o = finish(run);
    assert_eq!((o.code(), o.out().as_str()), (0, "ran here\n"), "{o}");

    let run = start(&f, &pol, &["echo", "never"]);
    let q2 = next_question(&f, &[id(&q)]);
    assert_eq!(paddock(&f, &["deny", &id(&q2)]).code(), 0);
    let o = finish(run);
    assert_eq!(o.code(), 77, "{o}");
    assert!(!o.out().contains("never"), "{o}");
}

/// Under `[commands] scope = "tree"`, an exec in the tree that an `ask` entry matches waits
/// in the kernel for a person: approved it runs (Landlock lets the asked program execute),
/// denied it fails with EACCES. Control: the allowed shell runs throughout.
fn an_exec_in_the_tree_asks(user: User) {
    let f = Fixture::new(user);
    let cmds = "[commands]\nscope = \"tree\"\nallow = [\"sh **\"]\nask = [\"id -u\"]\n";
    let pol = f.policy(&Pol { tail: &tail("50s", cmds), ..Pol::default() });
    let script = "id -u; echo first=$?; id -u; echo second=$?";
    let run = start(&f, &pol, &["sh", "-c", script]);
    let q = next_question(&f, &[]);
    assert_eq!((q["kind"].as_str(), q["subject"].as_str()), (Some("command"), Some("id -u")), "{q}");
    assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
    let q2 = next_question(&f, &[id(&q)]);
    assert_eq!(paddock(&f, &["deny", &id(&q2)]).code(), 0);
    let o = finish(run);
    assert_eq!(o.code(), 0, "{o}");
    let out = o.out();
    assert!(out.starts_with(&format!("{}\nfirst=0\n", user.uid())), "approved: it ran\n{o}");
    assert!(out.contains("second=126") || out.contains("second=1"), "denied: it did not run\n{o}");
    let uid = user.uid().to_string();
    assert_eq!(out.lines().filter(|l| *l == uid).count(), 1, "{o}");
    // The shell's retry in the next PATH directory got the same answer, not a question.
    assert_eq!(records(&f, "approval.ask").len(), 2, "{o}");
}

/// The denials of a log become a policy under which exactly those calls pass.
fn suggest_allows_exactly_what_was_denied(user: User) {
    need_curl();
    let f = Fixture::new(user);
    let port = upstream();
    let more = "[commands]\nallow = [\"sh **\"]\n";
    let pol = f.policy(&Pol { tail: &tail("1s", more), ..Pol::default() });
    let p = pol.to_str().unwrap();
    let o = f.run(&Pol { tail: &tail("1s", more), ..Pol::default() }, &["echo", "a*b", "c d"], None);
    assert_eq!(o.code(), 77, "{o}");
    let o = f.run(
        &Pol { tail: &tail("1s", more), ..Pol::default() },
        &["sh", "-c", &connect("x", "denied.test", port)],
        None,
    );
    assert!(o.out().contains("x no"), "{o}");
    // Denied reads and writes come from tool calls: through serve.
    let (server, request) = serve(&f, &pol);
    let want = f.shelf_file.to_str().unwrap();
    let (status, body) =
        request("POST", "/v1/calls", true, Some(&format!(r#"{{"tool":"read_file","path":{want:?}}}"#)));
    assert!(status == 200 && body.contains("\"decision\":\"deny\""), "{body}");
    let put = f.outside.join("new.txt");
    let put = put.to_str().unwrap();
    let (status, body) =
        request("POST", "/v1/calls", true, Some(&format!(r#"{{"tool":"write_file","path":{put:?},"content":"x"}}"#)));
    assert!(status == 200 && body.contains("\"decision\":\"deny\""), "{body}");
    drop(server);
    let o = paddock(&f, &["policy", "suggest", "--since", "1h"]);
    assert_eq!(o.code(), 0, "{o}");
    let text = o.out();
    assert!(text.contains(&format!("\"denied.test:{port}\",  # 1 denied connection")), "{text}");
    assert!(text.contains("\"echo 'a\\\\*b' 'c d'\",  # 1 denied call"), "{text}");
    let suggested = f.root.join("suggested.toml");
    write(&suggested, &text, 0o644);
    let lint = paddock(&f, &["policy", "lint", suggested.to_str().unwrap()]);
    assert_eq!(lint.code(), 0, "{lint}");
    let both = f.root.join("both.toml");
    write(&both, &format!("version = 1\nextends = [{p:?}, {:?}]\n", suggested.to_str().unwrap()), 0o644);
    let b = both.to_str().unwrap();
    let check = |args: &[&str]| {
        let mut v = vec!["check", "--policy", b, "--json"];
        v.extend_from_slice(args);
        let o = paddock(&f, &v);
        serde_json::from_str::<Value>(&o.out()).unwrap_or_else(|e| panic!("{e}: {o}"))["decision"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(check(&["--connect", &format!("denied.test:{port}")]), "allow");
    assert_eq!(check(&["--", "echo", "a*b", "c d"]), "allow");
    // Nothing else: another host, the same host on another port, other arguments.
    assert_eq!(check(&["--connect", &format!("other.test:{port}")]), "deny");
    assert_eq!(check(&["--connect", &format!("denied.test:{}", port.wrapping_add(1).max(1))]), "deny");
    assert_eq!(check(&["--", "echo", "axb", "c d"]), "deny");
    assert_eq!(check(&["--", "echo", "a*b"]), "deny");
    assert_eq!(check(&["--read", want]), "allow");
    assert_eq!(check(&["--write", put]), "allow");
    // Never a directory above what was denied, nor a sibling.
    assert_eq!(check(&["--read", f.shelf.to_str().unwrap()]), "deny");
    assert_eq!(check(&["--read", f.secret_path.to_str().unwrap()]), "deny");
    assert_eq!(check(&["--write", f.outside.join("other.txt").to_str().unwrap()]), "deny");
}

/// A running `paddock serve` (killed when dropped).
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A request to a serve: `(method, path, with the token, body)` → `(status, body)`.
type Request = dyn Fn(&str, &str, bool, Option<&str>) -> (u16, String) + Send + Sync;

/// Starts `paddock serve --policy POLICY` as the fixture's user; it and its requester.
fn serve(f: &Fixture, pol: &Path) -> (Kill, std::sync::Arc<Request>) {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into(), "serve".into(), "--policy".into(), pol.into()];
    argv.extend(["--workspace".into(), f.ws.clone().into(), "--listen".into(), "127.0.0.1:0".into()]);
    let mut cmd = f.command(&argv);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).expect("spawn paddock serve");
    let (tx, rx) = mpsc::channel();
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("paddock: listening on ") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let server = Kill(child);
    let addr = rx.recv_timeout(HANG).expect("serve's address");
    let token = std::fs::read_to_string(f.root.join("state/token")).unwrap().trim().to_string();
    let request = move |method: &str, path: &str, auth: bool, body: Option<&str>| -> (u16, String) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if auth {
            req += &format!("Authorization: Bearer {token}\r\n");
        }
        let body = body.unwrap_or("");
        req += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let mut s = TcpStream::connect(addr.as_str()).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let (head, body) = buf.split_once("\r\n\r\n").unwrap();
        (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_string())
    };
    (server, std::sync::Arc::new(request))
}

/// `GET /v1/approvals` and `POST /v1/approvals/ID` of `serve`: the token rules of every
/// endpoint, DESIGN's shapes, and a command call that waits for the answer.
fn serve_endpoints(user: User) {
    let f = Fixture::new(user);
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"echo **\"]\n"), ..Pol::default() });
    let (_server, request) = serve(&f, &pol);
    assert_eq!(request("GET", "/v1/approvals", false, None).0, 401);
    assert_eq!(request("GET", "/v1/approvals", true, None), (200, "{\"approvals\":[]}".to_string()));
    let call = std::thread::spawn({
        let request = std::sync::Arc::clone(&request);
        move || request("POST", "/v1/calls", true, Some(r#"{"tool":"command","argv":["echo","from","serve"]}"#))
    });
    let q = loop {
        let (status, body) = request("GET", "/v1/approvals", true, None);
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(q) = v["approvals"].as_array().unwrap().first() {
            break q.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((q["kind"].as_str(), q["subject"].as_str()), (Some("command"), Some("echo from serve")), "{q}");
    assert!(q["session"].as_str().unwrap().starts_with("serve-"), "{q}");
    let path = format!("/v1/approvals/{}", id(&q));
    let answer = r#"{"answer":"allow","scope":"once"}"#;
    assert_eq!(request("POST", &path, false, Some(answer)).0, 401, "no token, no answer");
    assert_eq!(request("POST", &path, true, Some(r#"{"answer":"maybe","scope":"once"}"#)).0, 400);
    assert_eq!(request("POST", "/v1/approvals/no-such-id", true, Some(answer)).0, 404);
    let (status, body) = request("POST", &path, true, Some(answer));
    assert_eq!(status, 200, "{body}");
    let (status, body) = call.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["decision"].as_str(), v["stdout"].as_str()), (Some("allow"), Some("from serve\n")), "{v}");
    let answers = records(&f, "approval.answer");
    assert!(answers[0]["by"].as_str().unwrap().starts_with("serve token holder"), "{answers:?}");
}

/// Fifty connections asking at once: every question is listed, answered in the order it
/// was asked, and none is lost.
fn storm_of_fifty(user: User) {
    need_curl();
    let f = Fixture::new(user);
    let port = upstream();
    let pol = f.policy(&Pol { tail: &tail("50s", ""), ..Pol::default() });
    let script = format!(
        "for i in $(seq 50); do ( {} ) & done; wait",
        connect("conn$i", "asked.test", port).trim_end().trim_end_matches(';')
    );
    let run = start(&f, &pol, &["sh", "-c", &script]);
    let mut answered: Vec<String> = Vec::new();
    let start = Instant::now();
    while answered.len() < 50 {
        assert!(start.elapsed() < HANG, "only {} of 50 questions came", answered.len());
        let o = paddock(&f, &["approvals", "--json"]);
        let v: Value = serde_json::from_str(&o.out()).unwrap_or_else(|e| panic!("{e}: {o}"));
        let open: Vec<Value> = v["approvals"].as_array().unwrap().clone();
        let times: Vec<&str> = open.iter().map(|q| q["asked_at"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "listed oldest first: {times:?}");
        let new: Vec<&Value> = open.iter().filter(|q| !answered.contains(&id(q))).collect();
        for q in new {
            let o = paddock(&f, &["approve", &id(q)]);
            assert_eq!(o.code(), 0, "{o}");
            answered.push(id(q));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = finish(run);
    assert_eq!(o.out().matches(" ok").count(), 50, "{o}");
    let asks = records(&f, "approval.ask");
    let answers = records(&f, "approval.answer");
    assert_eq!((asks.len(), answers.len()), (50, 50));
    let mut ids: Vec<String> = answers.iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    let mut expected = answered.clone();
    expected.sort();
    assert_eq!(ids, expected, "every question answered, each once");
    assert!(answers.iter().all(|a| a["answer"] == "allow"), "{answers:?}");
}

/// The question on the terminal of `paddock run` (a real pty, from `script`): answered
/// there when the child does not read the terminal; printed, and answered from another
/// terminal, when it does.
fn terminal_prompt(user: User) {
    need_curl();
    let f = Fixture::new(user);
    let port = upstream();
    let pol = f.policy(&Pol { tail: &tail("50s", ""), ..Pol::default() });
    let under_script = |redirect: &str, tag: &str, prefix: (&str, &str)| -> Child {
        let run = format!(
            "{} run --policy {} --workspace {} -- sh -c {}{redirect}",
            sh_quote(f.bin.to_str().unwrap()),
            sh_quote(pol.to_str().unwrap()),
            sh_quote(f.ws.to_str().unwrap()),
            sh_quote(&format!("{}{}{}", prefix.0, connect(tag, "asked.test", port), prefix.1))
        );
        let mut cmd = f.command(&["/usr/bin/script".into(), "-qfec".into(), run.into(), "/dev/null".into()]);
        cmd.env("TERM", "dumb").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        spawn(&mut cmd).expect("spawn script")
    };
    // The child's stdin is not the terminal: the question is asked and answered on it.
    let mut run = under_script(" < /dev/null", "tty", ("", ""));
    let q = next_question(&f, &[]);
    let mut keys = run.stdin.take().unwrap();
    keys.write_all(b"o\n").unwrap();
    let o = finish(run);
    drop(keys);
    let screen = o.out();
    assert!(screen.contains(&format!("asks for network `asked.test:{port}`")), "{o}");
    assert!(screen.contains(&format!("would add: [network] allow = [\"asked.test:{port}\"]")), "{o}");
    assert!(screen.contains(&format!("paddock: {}: allowed (once)", id(&q))), "{o}");
    assert!(screen.contains("tty ok"), "{o}");
    let answers = records(&f, "approval.answer");
    assert!(answers[0]["by"].as_str().unwrap().ends_with("(the terminal of paddock run)"), "{answers:?}");

    // The child has the terminal (an interactive agent): printed, answered elsewhere; then
    // the child gets SIGWINCH, so a full-screen program redraws what the question covered.
    // (It waits for the signal for at most 20 s, leaving at once when it comes. The trap
    // only notes the signal: it can come while curl still runs, and the shell runs a trap
    // as soon as curl ends, before the line that says how curl ended.)
    let wait_winch = "i=0; while [ -z \"$w\" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
                      if [ -n \"$w\" ]; then echo redraw asked; else echo no redraw; fi";
    let mut run = under_script("", "pty", ("w=; trap 'w=1' WINCH; ", wait_winch));
    let keys = run.stdin.take().unwrap();
    let q2 = next_question(&f, &[id(&q)]);
    assert_eq!(paddock(&f, &["approve", &id(&q2)]).code(), 0);
    let o = finish(run);
    drop(keys);
    assert!(o.out().contains("answer from another terminal"), "{o}");
    assert!(o.out().contains("pty ok"), "{o}");
    assert!(o.out().contains("redraw asked"), "the child was not told to redraw\n{o}");
}

/// `paddock mcp`: a client that declared form elicitation is asked there, and its answer
/// lets the call run; a client that did not is asked through the other channels.
fn mcp_elicitation(user: User) {
    let f = Fixture::new(user);
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"echo **\"]\n"), ..Pol::default() });
    for elicits in [true, false] {
        let mut argv: Vec<OsString> = vec![f.bin.clone().into(), "mcp".into(), "--policy".into(), pol.clone().into()];
        argv.extend(["--workspace".into(), f.ws.clone().into()]);
        let mut cmd = f.command(&argv);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = spawn(&mut cmd).expect("spawn paddock mcp");
        let mut stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a frame: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut send = |v: Value| {
            writeln!(stdin, "{v}").unwrap();
            stdin.flush().unwrap();
        };
        let caps = if elicits { serde_json::json!({ "elicitation": {} }) } else { serde_json::json!({}) };
        send(
            serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-06-18", "capabilities": caps, "clientInfo": { "name": "t", "version": "0" } } }),
        );
        let init = lines.recv_timeout(HANG).expect("initialize answered");
        assert_eq!(init["id"], 1, "{init}");
        send(serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        let word = if elicits { "elicited" } else { "elsewhere" };
        // The questions asked before this call (read before it is sent: its own question
        // may be on the record by the time the request is written).
        let seen: Vec<String> =
            records(&f, "approval.ask").iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
        send(
            serde_json::json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "command", "arguments": { "argv": ["echo", word] } } }),
        );
        let result = if elicits {
            let req = lines.recv_timeout(HANG).expect("an elicitation request");
            assert_eq!(req["method"], "elicitation/create", "{req}");
            let message = req["params"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("asks for command `echo {word}`")), "{req}");
            let choices = &req["params"]["requestedSchema"]["properties"]["answer"]["enum"];
            assert!(choices.as_array().unwrap().contains(&Value::from("allow once")), "{req}");
            send(
                serde_json::json!({ "jsonrpc": "2.0", "id": req["id"], "result": { "action": "accept", "content": { "answer": "allow once" } } }),
            );
            lines.recv_timeout(HANG).expect("the call's result")
        } else {
            let q = next_question(&f, &seen);
            assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
            let r = lines.recv_timeout(HANG).expect("the call's result");
            assert_ne!(r["method"], "elicitation/create", "no elicitation to a client without it: {r}");
            r
        };
        assert_eq!(result["id"], 2, "{result}");
        let text = result["result"]["content"][0]["text"].as_str().unwrap();
        let outcome: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            (outcome["decision"].as_str(), outcome["stdout"].as_str()),
            (Some("allow"), Some(format!("{word}\n").as_str())),
            "{outcome}"
        );
        let answers = records(&f, "approval.answer");
        let by = answers.last().unwrap()["by"].as_str().unwrap().to_string();
        assert_eq!(by.starts_with("MCP client (elicitation"), elicits, "{by}");
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An answer that came after a wait is decided under the revocations saved meanwhile: a
/// path revoked while `cat` waited is not in the view the approved call runs with.
fn an_answer_is_decided_under_what_was_revoked_while_it_waited(user: User) {
    let f = Fixture::new(user);
    let shelf = f.shelf.to_str().unwrap();
    let pol = f.policy(&Pol {
        read: &[shelf],
        tail: &tail("50s", "[commands]\nallow = []\nask = [\"cat **\"]\n"),
        ..Pol::default()
    });
    // Control: approved without a revocation, it reads the file.
    let run = start(&f, &pol, &["cat", f.shelf_file.to_str().unwrap()]);
    let q = next_question(&f, &[]);
    assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
    let o = finish(run);
    assert_eq!((o.code(), o.out()), (0, f.shelf_text.clone()), "{o}");
    // The same call, with the path revoked while it waits for its answer.
    let run = start(&f, &pol, &["cat", f.shelf_file.to_str().unwrap()]);
    let q2 = next_question(&f, &[id(&q)]);
    let revoked = paddock(&f, &["revoke", &format!("path:{shelf}")]);
    assert_eq!(revoked.code(), 0, "{revoked}");
    assert_eq!(paddock(&f, &["approve", &id(&q2)]).code(), 0);
    let o = finish(run);
    assert_ne!(o.code(), 0, "{o}");
    assert!(!o.out().contains(&f.shelf_text), "the revoked path was read after the answer\n{o}");
    let starts = records(&f, "call.start");
    let last = starts.last().unwrap();
    let view = last["view"].to_string();
    assert!(!view.contains(shelf), "call.start names the revoked grant in its view: {last}");
}

/// An answer for the session holds for the very same call only: the same argv split
/// otherwise, another directory or other standard input are asked about again; the
/// question shows the directory and the input; an argument holding NUL is refused unasked.
fn a_session_answer_holds_for_the_same_call_only(user: User) {
    let f = Fixture::new(user);
    std::fs::create_dir_all(f.ws.join("a")).unwrap();
    std::fs::create_dir_all(f.ws.join("b")).unwrap();
    chown(&f.ws.join("a"), user.uid());
    chown(&f.ws.join("b"), user.uid());
    let pol = f
        .policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"cat **\", \"pwd\"]\n"), ..Pol::default() });
    let (_server, request) = serve(&f, &pol);
    let call = |body: String| {
        let request = std::sync::Arc::clone(&request);
        std::thread::spawn(move || request("POST", "/v1/calls", true, Some(&body)))
    };
    let answer = |q: &Value, how: &str| {
        let path = format!("/v1/approvals/{}", id(q));
        let scope = if how == "allow" { "session" } else { "once" };
        let (status, body) = request("POST", &path, true, Some(&format!(r#"{{"answer":"{how}","scope":"{scope}"}}"#)));
        assert_eq!(status, 200, "{body}");
    };
    let mut seen = Vec::new();
    // `cat` with no argument, approved for the session, with its input shown.
    let first = call(r#"{"tool":"command","argv":["cat"],"cwd":"a","stdin":"one"}"#.into());
    let q = next_question(&f, &seen);
    seen.push(id(&q));
    assert_eq!(q["cwd"].as_str(), Some(f.ws.join("a").to_str().unwrap()), "{q}");
    assert_eq!(q["stdin"].as_str(), Some("3 bytes: one"), "{q}");
    answer(&q, "allow");
    let (status, body) = first.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""stdout":"one""#), "{body}");
    // The same again: not asked.
    let (status, body) =
        request("POST", "/v1/calls", true, Some(r#"{"tool":"command","argv":["cat"],"cwd":"a","stdin":"one"}"#));
    assert!(status == 200 && body.contains(r#""stdout":"one""#), "{body}");
    // Each of these differs from it in one thing, so each is asked about (and denied).
    for other in [
        r#"{"tool":"command","argv":["cat",""],"cwd":"a","stdin":"one"}"#,
        r#"{"tool":"command","argv":["cat"],"cwd":"b","stdin":"one"}"#,
        r#"{"tool":"command","argv":["cat"],"cwd":"a","stdin":"two"}"#,
        r#"{"tool":"command","argv":["cat"],"cwd":"a"}"#,
    ] {
        let pending = call(other.to_string());
        let q = next_question(&f, &seen);
        seen.push(id(&q));
        answer(&q, "deny");
        let (status, body) = pending.join().unwrap();
        assert!(status == 200 && body.contains(r#""decision":"deny""#), "{other}: {body}");
    }
    // A NUL in an argument: refused before anyone is asked.
    let asked = records(&f, "approval.ask").len();
    let (status, body) = request("POST", "/v1/calls", true, Some(r#"{"tool":"command","argv":["cat","-\u0000x"]}"#));
    assert!(status == 200 && body.contains(r#""decision":"deny""#) && body.contains("NUL"), "{body}");
    assert_eq!(records(&f, "approval.ask").len(), asked, "nobody is asked about a call that cannot run");
}

/// "Always" for a program whose name holds a glob character (no entry can name it) holds
/// for the session and writes nothing, so later runs still load; the question says so.
fn always_for_a_program_no_entry_can_name(user: User) {
    let f = Fixture::new(user);
    let odd = f.ws.join("a*b");
    copy_executable(Path::new("/bin/true"), &odd);
    chown(&odd, user.uid());
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"*\"]\n"), ..Pol::default() });
    let run = start(&f, &pol, &["./a*b", "x"]);
    let q = next_question(&f, &[]);
    assert!(q["proposed"].as_str().unwrap().starts_with("nothing: no entry can name it"), "{q}");
    assert_eq!(paddock(&f, &["approve", &id(&q), "--scope", "always"]).code(), 0);
    let o = finish(run);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!f.root.join("state/approved.toml").exists(), "nothing was written");
    let o = paddock(&f, &["run", "--workspace", f.ws.to_str().unwrap(), "--", "true"]);
    assert_eq!(o.code(), 0, "the state still loads: {o}");
}

/// A command is asked about, and runs, in one directory: the one it will run in (a cwd
/// the sandbox cannot see is the workspace, and the question says so), and the very
/// directory that was there when it was asked (a symlink re-pointed during the wait
/// fails the start instead of running elsewhere).
fn a_call_runs_in_the_directory_it_was_asked_about(user: User) {
    let f = Fixture::new(user);
    let scratch = f.ws.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    chown(&scratch, user.uid());
    std::os::unix::fs::symlink(&scratch, f.ws.join("link")).unwrap();
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"pwd **\"]\n"), ..Pol::default() });
    let (_server, request) = serve(&f, &pol);
    let call = |body: &'static str| {
        let request = std::sync::Arc::clone(&request);
        std::thread::spawn(move || request("POST", "/v1/calls", true, Some(body)))
    };
    let answer = |q: &Value| {
        let path = format!("/v1/approvals/{}", id(q));
        let (status, body) = request("POST", &path, true, Some(r#"{"answer":"allow","scope":"once"}"#));
        assert_eq!(status, 200, "{body}");
    };
    // Outside the view: refused, nobody asked.
    let (status, body) = call(r#"{"tool":"command","argv":["pwd"],"cwd":"/nonexistent-outside/dir"}"#).join().unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["decision"].as_str(), v["stdout"].as_str()), (200, Some("deny"), Some("")), "{body}");
    assert!(records(&f, "approval.ask").is_empty(), "{body}");
    // In the workspace: asked about, and run, there.
    let pending = call(r#"{"tool":"command","argv":["pwd"]}"#);
    let q = next_question(&f, &[]);
    assert_eq!(q["cwd"].as_str(), Some(f.ws.to_str().unwrap()), "{q}");
    answer(&q);
    let (status, body) = pending.join().unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["stdout"].as_str()), (200, Some(format!("{}\n", f.ws.display()).as_str())), "{body}");
    // Through a symlink: asked about, and run, where it pointed when asked, though it is
    // re-pointed during the wait.
    let pending = call(r#"{"tool":"command","argv":["pwd","-P"],"cwd":"link"}"#);
    let q2 = next_question(&f, &[id(&q)]);
    assert_eq!(q2["cwd"].as_str(), Some(scratch.to_str().unwrap()), "{q2}");
    std::fs::remove_file(f.ws.join("link")).unwrap();
    std::os::unix::fs::symlink(&f.ws, f.ws.join("link")).unwrap();
    answer(&q2);
    let (status, body) = pending.join().unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["stdout"].as_str()), (200, Some(format!("{}\n", scratch.display()).as_str())), "{body}");
    // The directory itself swapped for a symlink to the workspace during the wait: the
    // start fails rather than run in another directory than was asked about.
    let pending = call(r#"{"tool":"command","argv":["pwd","-P"],"cwd":"scratch"}"#);
    let q3 = next_question(&f, &[id(&q), id(&q2)]);
    assert_eq!(q3["cwd"].as_str(), Some(scratch.to_str().unwrap()), "{q3}");
    std::fs::rename(&scratch, f.ws.join("scratch-old")).unwrap();
    std::os::unix::fs::symlink(&f.ws, &scratch).unwrap();
    answer(&q3);
    let (status, body) = pending.join().unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_ne!(v["exit_code"].as_i64(), Some(0), "it ran where the path pointed after the question: {body}");
    assert!(!v["stdout"].as_str().unwrap_or("").contains(f.ws.to_str().unwrap()), "{body}");
}

/// Under `scope = "tree"`: the call's own program, approved, is not asked about again as
/// an exec; an exec whose question waits while its command is revoked does not run
/// (the answer is decided under the revocations in force once it came).
fn tree_questions_once_and_under_what_is_revoked_meanwhile(user: User) {
    let f = Fixture::new(user);
    let shelf = f.shelf.to_str().unwrap();
    let cmds = "[commands]\nscope = \"tree\"\nallow = []\nask = [\"sh **\", \"cat **\"]\n";
    let pol = f.policy(&Pol { read: &[shelf], tail: &tail("50s", cmds), ..Pol::default() });
    let script = format!("cat {}; echo rc=$?", f.shelf_file.display());
    let run = start(&f, &pol, &["sh", "-c", &script]);
    let q = next_question(&f, &[]);
    assert_eq!(q["subject"].as_str(), Some(format!("sh -c '{script}'").as_str()), "{q}");
    assert!(q["program"].as_str().is_some_and(|p| p.starts_with('/')), "the question names the program that runs: {q}");
    assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
    // The next question is cat's, not the shell's own exec again.
    let q2 = next_question(&f, &[id(&q)]);
    assert!(q2["subject"].as_str().unwrap().starts_with("cat "), "{q2}");
    let revoked = paddock(&f, &["revoke", "command:cat **"]);
    assert_eq!(revoked.code(), 0, "{revoked}");
    assert_eq!(paddock(&f, &["approve", &id(&q2)]).code(), 0);
    let o = finish(run);
    assert!(!o.out().contains(&f.shelf_text), "cat ran after its command was revoked\n{o}");
    assert!(o.out().contains("rc=") && !o.out().contains("rc=0"), "{o}");
    assert_eq!(records(&f, "approval.ask").len(), 2, "{o}");
}

/// Python: asks to exec `/usr/bin/head -n1 README` with an environment too large for the
/// kernel (the answer comes first; then the kernel fails it, `E2BIG`), makes `failed`,
/// waits for `go`, then execs `sys.argv[1]` under the same argv.
const RETRY: &str = r#"
import os, sys, time
argv = ["head", "-n1", "README"]
try:
    os.execve("/usr/bin/head", argv, {"PAD": "x" * 300000})
except OSError as e:
    print("first failed", e.errno, flush=True)
open("failed", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
os.execve(sys.argv[1], argv, {"PATH": "/usr/bin:/bin"})
"#;

/// An answer about an exec stands for a retry of that very exec only (found by an attack:
/// an exec allowed once that the kernel then failed was followed by the agent's own
/// `./head` under the same argv, which ran on that answer, recorded as the person's), and
/// is decided again against the revocations (an "always" answer revoked meanwhile let the
/// same process's retry run).
fn an_exec_answer_holds_for_that_program_and_until_revoked(user: User) {
    let f = Fixture::new(user);
    write(&f.ws.join("README"), "hello\n", 0o644);
    write(&f.ws.join("head"), "#!/bin/sh\necho PWNED\n", 0o755);
    let cmds = "[commands]\nscope = \"tree\"\nallow = [\"/usr/bin/python3 **\", \"sh **\"]\nask = [\"*\"]\n";
    let pol = f.policy(&Pol { tail: &tail("50s", cmds), ..Pol::default() });
    // Allowed once, failed by the kernel, then another program under the same argv: asked
    // about on its own, and denied.
    let run = start(&f, &pol, &["/usr/bin/python3", "-c", RETRY, "./head"]);
    let q = next_question(&f, &[]);
    assert_eq!(q["program"].as_str(), Some("/usr/bin/head"), "{q}");
    assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
    wait_for_path(&f.ws.join("failed"));
    write(&f.ws.join("go"), "", 0o666);
    let q2 = next_question(&f, &[id(&q)]);
    assert_eq!(q2["program"].as_str(), Some(f.ws.join("head").to_str().unwrap()), "asked about ./head: {q2}");
    assert_eq!(paddock(&f, &["deny", &id(&q2)]).code(), 0);
    let o = finish(run);
    assert!(o.out().contains("first failed 7"), "{o}");
    assert!(!o.out().contains("PWNED"), "the agent's program ran on the answer about /usr/bin/head\n{o}");
    assert!(o.err().contains("Permission denied"), "{o}");
    let execs = records(&f, "exec");
    let last = execs.last().unwrap();
    assert_eq!(last["decision"].as_str(), Some("deny"), "{last}");
    assert!(!last["reason"].as_str().unwrap().contains("allowed once"), "{last}");
    for name in ["failed", "go"] {
        std::fs::remove_file(f.ws.join(name)).unwrap();
    }
    // Allowed always, failed by the kernel, revoked, then the same exec again.
    let run = start(&f, &pol, &["/usr/bin/python3", "-c", RETRY, "/usr/bin/head"]);
    let q = next_question(&f, &[]);
    assert_eq!(paddock(&f, &["approve", &id(&q), "--scope", "always"]).code(), 0);
    wait_for_path(&f.ws.join("failed"));
    let r = paddock(&f, &["revoke", "rule:approved[0]"]);
    assert_eq!(r.code(), 0, "{r}");
    write(&f.ws.join("go"), "", 0o666);
    let o = finish(run);
    assert!(o.out().contains("first failed 7"), "{o}");
    assert!(!o.out().contains("hello"), "the revoked answer let the retry run\n{o}");
    let execs = records(&f, "exec");
    let last = execs.last().unwrap();
    assert_eq!((last["decision"].as_str(), last["program"].as_str()), (Some("deny"), Some("/usr/bin/head")), "{last}");
}

/// A call whose program is named through a symlink (`./tool` → `/usr/bin/head`): the
/// person is shown what runs; a link re-pointed while the question waits (by another call,
/// here by the host) made the answer run the agent's script instead (found by an attack).
/// The call now runs the file the person was asked about, or not at all.
fn a_call_runs_the_program_it_was_asked_about(user: User) {
    let f = Fixture::new(user);
    write(&f.ws.join("README"), "hello\n", 0o644);
    write(&f.ws.join("evil.sh"), "#!/bin/sh\necho PWNED\n", 0o755);
    let tool = f.ws.join("tool");
    std::os::unix::fs::symlink("/usr/bin/head", &tool).unwrap();
    let cmds = "[commands]\nallow = [\"sh **\"]\nask = [\"*\"]\n";
    let pol = f.policy(&Pol { tail: &tail("50s", cmds), ..Pol::default() });
    for repoint in [false, true] {
        let run = start(&f, &pol, &["./tool", "-n1", "README"]);
        let q = next_question(&f, &[]);
        assert_eq!(q["program"].as_str(), Some("/usr/bin/head"), "{q}");
        if repoint {
            std::fs::remove_file(&tool).unwrap();
            std::os::unix::fs::symlink("evil.sh", &tool).unwrap();
        }
        assert_eq!(paddock(&f, &["approve", &id(&q)]).code(), 0);
        let o = finish(run);
        assert!(!o.out().contains("PWNED"), "the agent's script ran on the answer about /usr/bin/head\n{o}");
        if repoint {
            assert_ne!(o.code(), 0, "{o}");
            assert!(o.err().contains("changed while the question waited"), "{o}");
        } else {
            assert_eq!((o.code(), o.out().as_str()), (0, "hello\n"), "control: the answer runs head\n{o}");
        }
    }
}

/// A session answer about a call given no input (it reads nothing: a no-op for `cat`)
/// stands for that only, never for an exec in a call's tree fed input paddock does not
/// know (found by an attack: `echo CODE | python3` ran on an answer about `python3`).
fn a_session_answer_about_no_input_does_not_cover_piped_input(user: User) {
    let f = Fixture::new(user);
    let cmds = "[commands]\nscope = \"tree\"\nallow = [\"sh **\"]\nask = [\"cat\"]\n";
    let pol = f.policy(&Pol { tail: &tail("50s", cmds), ..Pol::default() });
    let (_server, request) = serve(&f, &pol);
    let call = |body: &str| {
        let (request, body) = (std::sync::Arc::clone(&request), body.to_string());
        std::thread::spawn(move || request("POST", "/v1/calls", true, Some(&body)))
    };
    let answer = |q: &Value, how: &str, scope: &str| {
        let body = format!(r#"{{"answer":"{how}","scope":"{scope}"}}"#);
        let (status, body) = request("POST", &format!("/v1/approvals/{}", id(q)), true, Some(&body));
        assert_eq!(status, 200, "{body}");
    };
    let first = call(r#"{"tool":"command","argv":["cat"]}"#);
    let q = next_question(&f, &[]);
    assert_eq!(q["stdin"].as_str(), Some("0 bytes: "), "the question says the call reads nothing: {q}");
    answer(&q, "allow", "session");
    let (status, body) = first.join().unwrap();
    assert!(status == 200 && body.contains(r#""exit_code":0"#), "{body}");
    let piped = call(r#"{"tool":"command","argv":["sh","-c","echo CODE | cat"]}"#);
    let q2 = next_question(&f, &[id(&q)]);
    assert_eq!(q2["subject"].as_str(), Some("cat"), "asked again, about the piped cat: {q2}");
    answer(&q2, "deny", "once");
    let (status, body) = piped.join().unwrap();
    assert!(status == 200 && !body.contains(r#""stdout":"CODE"#), "{body}");
}

/// A session answer about a program in the workspace stands for that very file: another
/// renamed over its path (new content) is asked about again (found by a test: a later call
/// ran it on the session's answer, matched by path alone).
fn a_session_answer_holds_for_that_very_file(user: User) {
    let f = Fixture::new(user);
    let prog = f.ws.join("prog");
    std::fs::copy("/bin/echo", &prog).unwrap();
    chown(&prog, user.uid());
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"*\"]\n"), ..Pol::default() });
    let (_server, request) = serve(&f, &pol);
    let call = || {
        let request = std::sync::Arc::clone(&request);
        std::thread::spawn(move || {
            request("POST", "/v1/calls", true, Some(r#"{"tool":"command","argv":["./prog","hi"]}"#))
        })
    };
    let answer = |q: &Value, how: &str, scope: &str| {
        let body = format!(r#"{{"answer":"{how}","scope":"{scope}"}}"#);
        let (status, body) = request("POST", &format!("/v1/approvals/{}", id(q)), true, Some(&body));
        assert_eq!(status, 200, "{body}");
    };
    let first = call();
    let q = next_question(&f, &[]);
    answer(&q, "allow", "session");
    let (status, body) = first.join().unwrap();
    assert!(status == 200 && body.contains(r#""stdout":"hi\n""#), "{body}");
    let (status, body) = request("POST", "/v1/calls", true, Some(r#"{"tool":"command","argv":["./prog","hi"]}"#));
    assert!(status == 200 && body.contains(r#""stdout":"hi\n""#), "the same file again: not asked\n{body}");
    let other = f.ws.join("prog.new");
    std::fs::copy("/bin/true", &other).unwrap();
    chown(&other, user.uid());
    std::fs::rename(&other, &prog).unwrap();
    let again = call();
    let q2 = next_question(&f, &[id(&q)]);
    answer(&q2, "deny", "once");
    let (status, body) = again.join().unwrap();
    assert!(status == 200 && body.contains(r#""decision":"deny""#), "{body}");
}

/// A question left by a run that was killed while it waited is taken down: not listed, and
/// an answer to it is refused (exit 64), not reported as kept while nothing keeps it.
/// Control: the same answer to a live run's question is carried out and said so.
fn a_question_of_a_killed_run_takes_no_answer(user: User) {
    let f = Fixture::new(user);
    let pol = f.policy(&Pol { tail: &tail("50s", "[commands]\nallow = []\nask = [\"echo **\"]\n"), ..Pol::default() });
    let approved = f.root.join("state/approved.toml");
    let mut run = start(&f, &pol, &["echo", "killed"]);
    let q = next_question(&f, &[]);
    run.kill().unwrap();
    run.wait().unwrap();
    let o = paddock(&f, &["approve", &id(&q), "--scope", "always"]);
    assert_eq!(o.code(), 64, "{o}");
    assert!(o.err().contains("has ended") && !o.out().contains("allowed"), "{o}");
    assert!(!approved.exists(), "nothing kept");
    let o = paddock(&f, &["approvals", "--json"]);
    assert_eq!(o.out().trim(), r#"{"approvals":[]}"#, "{o}");

    // Listed first: taken down by the listing.
    let mut run = start(&f, &pol, &["echo", "killed", "again"]);
    let q = next_question(&f, &[id(&q)]);
    run.kill().unwrap();
    run.wait().unwrap();
    let o = paddock(&f, &["approvals", "--json"]);
    assert_eq!(o.out().trim(), r#"{"approvals":[]}"#, "{o}");
    let o = paddock(&f, &["deny", &id(&q), "--scope", "always"]);
    assert_eq!(o.code(), 64, "{o}");
    assert!(o.err().contains("no open question"), "{o}");
    assert!(!approved.exists(), "nothing kept");

    let run = start(&f, &pol, &["echo", "live"]);
    let q = next_question(&f, &[id(&q)]);
    let o = paddock(&f, &["approve", &id(&q), "--scope", "always"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("command `echo live` allowed (always)"), "{o}");
    assert!(read(&approved).contains("echo live"), "kept before the answer was said taken");
    assert_eq!(finish(run).out(), "live\n");
}

both_users!(
    a_question_of_a_killed_run_takes_no_answer,
    a_session_answer_holds_for_that_very_file,
    a_session_answer_about_no_input_does_not_cover_piped_input,
    a_call_runs_the_program_it_was_asked_about,
    an_exec_answer_holds_for_that_program_and_until_revoked,
    once_then_ask_again,
    session_and_always,
    no_answer_is_a_denial,
    check_says_ask_and_unknown_ids,
    command_waits,
    an_exec_in_the_tree_asks,
    suggest_allows_exactly_what_was_denied,
    serve_endpoints,
    storm_of_fifty,
    terminal_prompt,
    mcp_elicitation,
    an_answer_is_decided_under_what_was_revoked_while_it_waited,
    a_session_answer_holds_for_the_same_call_only,
    always_for_a_program_no_entry_can_name,
    a_call_runs_in_the_directory_it_was_asked_about,
    tree_questions_once_and_under_what_is_revoked_meanwhile,
);
