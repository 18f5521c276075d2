//! End-to-end: the fleet and CI features. Audit records shipped to a loopback OTLP
//! collector (exactly once across a collector outage and a paddock restart), the export
//! status, OCSF and OTLP JSON output, the HTML review page (escaped, rendered in a real
//! headless Chromium) and the GitHub Action (its steps run by a script that mimics the
//! runner).

#[macro_use]
mod common;
use common::*;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// A loopback OTLP/HTTP collector
// ---------------------------------------------------------------------------------------

/// Accepts `POST /v1/logs` on 127.0.0.1 and keeps every body; answers 503 while `down`.
struct Collector {
    port: u16,
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = Collector {
            port,
            down: Arc::new(AtomicBool::new(false)),
            attempts: Arc::new(AtomicUsize::new(0)),
            bodies: Arc::new(Mutex::new(Vec::new())),
        };
        let (down, attempts, bodies) = (c.down.clone(), c.attempts.clone(), c.bodies.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (down, attempts, bodies) = (down.clone(), attempts.clone(), bodies.clone());
                std::thread::spawn(move || serve_one(conn, &down, &attempts, &bodies));
            }
        });
        c
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every log record received, in arrival order.
    fn records(&self) -> Vec<Got> {
        let mut out = Vec::new();
        for body in self.bodies.lock().unwrap().iter() {
            for rl in body["resourceLogs"].as_array().expect("resourceLogs") {
                let res = attrs(&rl["resource"]["attributes"]);
                for sl in rl["scopeLogs"].as_array().unwrap() {
                    assert_eq!(sl["scope"]["name"], "paddock.audit");
                    for r in sl["logRecords"].as_array().unwrap() {
                        let a = attrs(&r["attributes"]);
                        out.push(Got {
                            seq: a["paddock.seq"].parse().expect("paddock.seq"),
                            prev: a["paddock.prev"].clone(),
                            hash: a["paddock.hash"].clone(),
                            body: r["body"]["stringValue"].as_str().unwrap().to_owned(),
                            time: r["timeUnixNano"].as_str().unwrap_or("").to_owned(),
                            res: res.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

fn serve_one(conn: TcpStream, down: &AtomicBool, attempts: &AtomicUsize, bodies: &Mutex<Vec<Value>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("POST /v1/logs HTTP/1.1"), "{line}");
    let (mut len, mut json) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        json |= l == "content-type: application/json";
    }
    assert!(json, "OTLP/HTTP JSON is sent as application/json");
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    attempts.fetch_add(1, Ordering::SeqCst);
    let mut w = conn;
    if down.load(Ordering::SeqCst) {
        let _ = w.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown");
        return;
    }
    bodies.lock().unwrap().push(serde_json::from_slice(&body).expect("the body is JSON"));
    let _ = w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
}

/// OTLP attributes as strings (`intValue`s are strings already).
fn attrs(list: &Value) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for kv in list.as_array().expect("attributes") {
        let v = &kv["value"];
        let s =
            v["stringValue"].as_str().or(v["intValue"].as_str()).map(str::to_owned).unwrap_or_else(|| v.to_string());
        m.insert(kv["key"].as_str().unwrap().to_owned(), s);
    }
    m
}

#[derive(Debug, Clone)]
struct Got {
    seq: u64,
    prev: String,
    hash: String,
    body: String,
    time: String,
    res: HashMap<String, String>,
}

/// Polls `cond` every 20 ms until it holds or `limit` passes (then fails with `what`).
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_lines(f: &Fixture) -> Vec<String> {
    read(&f.root.join("state/audit.jsonl")).lines().map(str::to_owned).collect()
}

fn paddock(f: &Fixture, args: &[&str]) -> Out {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
    argv.extend(args.iter().map(OsString::from));
    f.launch(&argv, &[], None)
}

fn status_json(f: &Fixture) -> Value {
    let o = paddock(f, &["audit", "export", "--status", "--json"]);
    assert_eq!(o.code(), 0, "{o}");
    let v: Value = serde_json::from_str(&o.out()).unwrap_or_else(|e| panic!("{e}: {o}"));
    assert_eq!(v.as_array().map(Vec::len), Some(1), "one cursor: {v}");
    v[0].clone()
}

// ---------------------------------------------------------------------------------------
// OTLP export
// ---------------------------------------------------------------------------------------

/// Live shipping from `run` with `[audit] export`: while the collector answers 503 the
/// records wait in the log (status says so, and a one-shot export fails with 75); the
/// next run (a paddock restart) ships the backlog and its own records; each record
/// arrives once, with its seq, prev, body and resource.
fn otlp_export_survives_outage_and_restart(user: User) {
    let f = Fixture::new(user);
    let c = Collector::start();
    c.down.store(true, Ordering::SeqCst);
    let tail = format!("[audit]\nexport = \"{}\"\n", c.url());
    let pol = Pol { tail: &tail, ..Default::default() };
    for word in ["one", "two"] {
        let o = f.run(&pol, &["echo", word], None);
        assert_eq!((o.code(), o.out()), (0, format!("{word}\n")), "{o}");
    }
    // The shipper tried (the collector saw requests) and delivered nothing.
    assert!(c.attempts.load(Ordering::SeqCst) > 0, "no delivery was attempted");
    assert!(c.records().is_empty());
    let pending = log_lines(&f).len() as u64;
    assert!(pending >= 4, "two runs write at least two call.start and two call.end");
    let s = status_json(&f);
    assert_eq!(s["pending_records"], pending, "{s}");
    assert_eq!(s["delivered"], 0, "{s}");
    assert!(s["last_error"].as_str().unwrap().contains("503"), "{s}");
    assert_eq!(s["last_success"], Value::Null, "{s}");
    let human = paddock(&f, &["audit", "export", "--status"]);
    assert!(human.out().contains(&format!("pending (spooled in the log): {pending} record(s)")), "{human}");

    // A one-shot export while the collector is down: retried, then 75, nothing lost.
    let o = paddock(&f, &["audit", "export", "--otlp", &c.url(), "--retry-for", "1s"]);
    assert_eq!(o.code(), 75, "{o}");
    assert!(o.err().contains("503") && o.err().contains("pending"), "{o}");
    assert_eq!(status_json(&f)["pending_records"], pending);

    // The collector comes back; a new paddock process ships the backlog and its own.
    c.down.store(false, Ordering::SeqCst);
    let o = f.run(&pol, &["echo", "three"], None);
    assert_eq!(o.code(), 0, "{o}");
    let lines = log_lines(&f);
    let n = lines.len() as u64;
    wait_for(Duration::from_secs(30), "every record at the collector", || c.records().len() as u64 >= n);
    // Nothing is pending: a one-shot export delivers nothing more.
    let o = paddock(&f, &["audit", "export", "--otlp", &c.url()]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(
        o.out().contains(&format!(
            "0 record(s) delivered to {}/v1/logs; the collector has the log through seq {n}",
            c.url()
        )),
        "{o}"
    );

    let got = c.records();
    let seqs: Vec<u64> = got.iter().map(|g| g.seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "every record exactly once, in order");
    let ws = f.ws.canonicalize().unwrap();
    let user_name = if user == User::Root { "root" } else { "nobody" };
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.body, lines[i], "the body is the line as stored");
        if i > 0 {
            assert_eq!(g.prev, got[i - 1].hash, "seq {}: prev chains to the previous record", g.seq);
        }
        assert!(!g.time.is_empty());
        let rec: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(g.prev, rec["prev"].as_str().unwrap());
        assert_eq!(g.res["service.name"], "paddock");
        assert!(!g.res["host.name"].is_empty());
        assert_eq!(g.res["user.name"], user_name);
        assert_eq!(g.res["paddock.workspace"], ws.to_str().unwrap(), "{:?}", g.res);
        if let Some(s) = rec["session"].as_str() {
            assert_eq!(g.res["session.id"], s);
        }
    }
    let s = status_json(&f);
    assert_eq!(
        (s["pending_records"].as_u64(), s["delivered"].as_u64(), s["seq"].as_u64()),
        (Some(0), Some(n), Some(n)),
        "{s}"
    );
    assert!(s["last_success"].is_string(), "{s}");
}

/// A policy whose `[audit] export` is not a usable collector URL is refused, located.
fn bad_export_url_is_refused(user: User) {
    let f = Fixture::new(user);
    let pol = Pol { tail: "[audit]\nexport = \"https://collector.example:4318\"\n", ..Default::default() };
    let o = f.run(&pol, &["echo", "x"], None);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("bad [audit] export: https is not supported"), "{o}");
    assert!(!o.out().contains('x'), "nothing ran: {o}");
}

both_users!(otlp_export_survives_outage_and_restart, bad_export_url_is_refused);

/// A long-lived session (`paddock mcp`) ships while it runs, not only when it ends: its
/// `session.start` reaches the collector while the process is alive, its `session.end`
/// after stdin closes.
#[test]
fn mcp_session_ships_live() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("version = 1\n[audit]\nexport = \"{}\"\n", c.url())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("mcp")
        .arg("--policy")
        .arg(&policy)
        .arg("--workspace")
        .arg(&ws)
        .env("PADDOCK_STATE_DIR", dir.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let event = |g: &Got| serde_json::from_str::<Value>(&g.body).unwrap()["event"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), "session.start at the collector", || {
        c.records().iter().any(|g| event(g) == "session.start")
    });
    assert!(child.try_wait().unwrap().is_none(), "shipped while the session runs");
    let start = c.records().into_iter().find(|g| event(g) == "session.start").unwrap();
    assert_eq!(start.res["paddock.workspace"], ws.canonicalize().unwrap().to_str().unwrap());
    let rec: Value = serde_json::from_str(&start.body).unwrap();
    assert_eq!((rec["mode"].as_str(), Some(start.res["session.id"].as_str())), (Some("mcp"), rec["session"].as_str()));
    drop(child.stdin.take());
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < HANG, "paddock mcp did not end when stdin closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for(Duration::from_secs(30), "session.end at the collector", || {
        c.records().iter().any(|g| event(g) == "session.end")
    });
    let seqs: Vec<u64> = c.records().iter().map(|g| g.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "each record once, in order");
}

// ---------------------------------------------------------------------------------------
// OCSF and OTLP JSON files
// ---------------------------------------------------------------------------------------

/// Commands, and a network table (so the egress proxy runs) with its one name pinned to
/// loopback.
const CMDS: &str = "[commands]\nallow = [\"echo **\", \"curl **\"]\n\n[network]\nallow = [\"allowed.test\"]\n\n[network.hosts]\n\"allowed.test\" = \"127.0.0.1\"\n";

/// An allowed call, a denied call and a refused connection (to loopback: the proxy
/// refuses it before dialling anything).
fn some_activity(f: &Fixture, evil: &[&str]) {
    let pol = Pol { tail: CMDS, ..Default::default() };
    let mut argv = vec!["echo"];
    argv.extend_from_slice(evil);
    assert_eq!(f.run(&pol, &argv, None).code(), 0);
    let o = f.run(&pol, &["cat", "/etc/hostname"], None);
    assert_eq!(o.code(), 77, "{o}");
    let o = f.run(&pol, &["curl", "-s", "-m", "10", "http://127.0.0.1:9/"], None);
    assert!(o.err().contains("refused"), "{o}");
}

#[test]
fn ocsf_and_otlp_files() {
    let f = Fixture::new(User::Root);
    some_activity(&f, &["hello"]);
    let lines = log_lines(&f);
    let o = paddock(&f, &["audit", "export", "--format", "ocsf"]);
    assert_eq!(o.code(), 0, "{o}");
    let events: Vec<Value> = o.out().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), lines.len(), "one event per record");
    for (e, line) in events.iter().zip(&lines) {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["raw_data"], line.as_str());
        assert_eq!(e["metadata"]["sequence"], rec["seq"]);
        assert_eq!(e["metadata"]["version"], "1.1.0");
        let (class, activity) = (e["class_uid"].as_u64().unwrap(), e["activity_id"].as_u64().unwrap());
        assert_eq!(e["type_uid"].as_u64(), Some(class * 100 + activity));
        assert!(e["time"].as_u64().unwrap() > 1_600_000_000_000, "time in ms");
        let want = match rec["event"].as_str().unwrap() {
            "call.start" => (1007, 1),
            "call.end" => (1007, 2),
            "net.connect" => (4001, if rec["verdict"] == "deny" { 5 } else { 1 }),
            _ => (0, 99),
        };
        assert_eq!((class, activity), want, "{line}");
    }
    let denied_cat =
        events.iter().find(|e| e["class_uid"] == 1007 && e["action"] == "Denied").expect("the denied call");
    assert!(denied_cat["process"]["cmd_line"].as_str().unwrap().contains("cat /etc/hostname"));
    assert_eq!((denied_cat["severity"].as_str(), denied_cat["disposition_id"].as_u64()), (Some("Medium"), Some(2)));
    let refused = events.iter().find(|e| e["class_uid"] == 4001).expect("the refused connection");
    assert_eq!((refused["action"].as_str(), refused["dst_endpoint"]["port"].as_u64()), (Some("Denied"), Some(9)));

    // --output writes the same; --format otlp writes request bodies.
    let file = f.root.join("ocsf.jsonl");
    let o = paddock(&f, &["audit", "export", "--format", "ocsf", "--output", file.to_str().unwrap()]);
    assert_eq!((o.code(), o.out().as_str()), (0, ""), "{o}");
    assert_eq!(read(&file).lines().count(), lines.len());
    let o = paddock(&f, &["audit", "export", "--format", "otlp"]);
    assert_eq!(o.code(), 0, "{o}");
    let body: Value = serde_json::from_str(o.out().trim()).unwrap();
    let n: usize = body["resourceLogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rl| rl["scopeLogs"][0]["logRecords"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, lines.len());
    // Usage errors are located and exit 64.
    let o = paddock(&f, &["audit", "export", "--otlp", "https://x"]);
    assert_eq!(o.code(), 64, "{o}");
    assert!(o.err().contains("https is not supported"), "{o}");
}

// ---------------------------------------------------------------------------------------
// The review page
// ---------------------------------------------------------------------------------------

const IMG: &str = "<img src=x onerror=alert(1)>";

#[test]
fn review_page_is_escaped_and_renders_in_chromium() {
    let f = Fixture::new(User::Root);
    some_activity(&f, &[IMG, "</style>", "<script>alert(2)</script>", "bidi\u{202e}txt"]);
    let policy = f.policy(&Pol { tail: CMDS, ..Default::default() });
    let page = f.root.join("review.html");
    let review = |extra: &[&str]| {
        let mut a =
            vec!["audit", "review", "--policy", policy.to_str().unwrap(), "--workspace", f.ws.to_str().unwrap()];
        a.extend_from_slice(extra);
        paddock(&f, &a)
    };
    let o = review(&["--html", page.to_str().unwrap()]);
    assert_eq!(o.code(), 0, "{o}");
    // --fail-on-deny: 77 when anything was denied (CI's signal), the page written anyway.
    std::fs::remove_file(&page).unwrap();
    let o = review(&["--html", page.to_str().unwrap(), "--fail-on-deny"]);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.err().contains("1 call(s) and 1 connection(s) were denied"), "{o}");
    let html = read(&page);

    // Self-contained, no script, nothing to fetch; the agent's text is text.
    // (URLs the agent asked for appear as text; nothing in the markup points anywhere.)
    for bad in ["<script", "<img", "<a ", "<link", "<iframe", "<object", "<embed", "src=\"", "href=", "@import", "url("]
    {
        assert!(!html.contains(bad), "page holds {bad:?}");
    }
    assert_eq!(html.matches("</style>").count(), 1, "the agent's </style> closed nothing");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;/style&gt;"));
    assert!(html.contains(r"bidi\u{202e}txt"), "bidi override shown, not applied");
    assert!(html.contains("default-src &#39;none&#39;") || html.contains("default-src 'none'"));
    assert!(html.contains("paddock revoke &#39;rule:commands.allow[0]&#39;"), "copy-ready revoke command");

    // A real browser: renders it (screenshot), and its DOM has the sections and no element
    // the agent wrote.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(&page, out.join("review.html")).unwrap();
    let png = out.join("review.png");
    let _ = std::fs::remove_file(&png);
    let url = format!("file://{}", out.join("review.html").display());
    let o = chromium(&[&format!("--screenshot={}", png.display()), "--window-size=1280,2000", &url]);
    assert_eq!(o.status, Some(0), "chromium --screenshot: {}", o.stderr);
    let meta = std::fs::metadata(&png).expect("the screenshot");
    assert!(meta.len() > 10_000, "a screenshot of a page, not of nothing ({} bytes)", meta.len());
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let o = chromium(&["--dump-dom", &url]);
    assert_eq!(o.status, Some(0), "chromium --dump-dom: {}", o.stderr);
    let dom = o.stdout;
    for id in ["summary", "denials", "grants", "hosts", "secrets", "timeline"] {
        assert!(dom.contains(&format!("<section id=\"{id}\">")), "section {id} in the DOM");
    }
    assert!(dom.contains("Timeline of calls (3)") && dom.contains("Denials (2)"), "{dom}");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "the argv is a text node");
    assert!(!dom.contains("<img") && !dom.contains("<script"), "no element from the log");
}

struct Browser {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs Debian's `chromium` headless (as root it needs --no-sandbox), with a profile
/// of its own, bounded by a generous limit (it never needs a sleep: it exits when done).
fn chromium(args: &[&str]) -> Browser {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--hide-scrollbars",
        &format!("--user-data-dir={}", profile.path().display()),
    ])
    .args(args)
    .env("HOME", profile.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("chromium (Debian's `chromium` package; .ci/run installs it)");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Browser { status: status.code(), stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

// ---------------------------------------------------------------------------------------
// The GitHub Action
// ---------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Runs action.yml's steps with tests/action_runner.py (a GitHub runner's environment:
/// inputs, expressions, GITHUB_OUTPUT/ENV/PATH, upload-artifact as a copy).
fn run_action(dir: &Path, inputs: Value) -> Value {
    let mut full = inputs;
    full["install"] = "binary".into();
    full["binary"] = env!("CARGO_BIN_EXE_paddock").into();
    let o = Command::new("python3")
        .arg(repo().join("tests/action_runner.py"))
        .arg(repo().join("action.yml"))
        .arg(dir)
        .arg(full.to_string())
        .env_remove("PADDOCK_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the runner itself failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}:\n{stdout}\n{stderr}"))
}

fn outcomes(r: &Value) -> Vec<(String, Option<i64>)> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["outcome"].as_str().unwrap().to_owned(), s["code"].as_i64()))
        .collect()
}

#[test]
fn github_action_confines_a_step_and_fails_on_deny() {
    // The file parses, and names only commands and flags paddock has.
    let action: String = read(&repo().join("action.yml"));
    for flag in ["--fail-on-deny", "--html", "--policy", "--workspace", "--audit"] {
        assert!(action.contains(flag));
    }

    // A clean step: passes; the artifact holds the log and the page; the step's write landed.
    let dir = tempfile::tempdir().unwrap();
    let r =
        run_action(dir.path(), serde_json::json!({"run": "echo built > out.txt\ncat out.txt", "fail-on-deny": "true"}));
    let ok = |n| ("success".to_owned(), Some(n));
    assert_eq!(outcomes(&r), [ok(0), ok(0), ok(0), ok(0), ok(0), ok(0)], "{r}");
    assert_eq!(
        (r["outputs"]["exit-code"].as_str(), r["outputs"]["denied"].as_str()),
        (Some("0"), Some("false")),
        "{r}"
    );
    assert_eq!(read(&dir.path().join("workspace/out.txt")), "built\n");
    let art = dir.path().join("artifacts/paddock-audit");
    assert!(read(&art.join("audit.jsonl")).contains("\"argv\":[\"bash\",\"-e\",\"-c\""));
    assert!(read(&art.join("review.html")).contains("<section id=\"timeline\">"));
    assert!(read(&art.join("review.txt")).contains("Grants used"));

    // A step that passes but had a connection refused: the job fails with 77 only under
    // fail-on-deny, after the artifact was uploaded.
    let step = "curl -s -m 10 http://127.0.0.1:9/ || true\necho done";
    let dir = tempfile::tempdir().unwrap();
    let r = run_action(dir.path(), serde_json::json!({"run": step, "fail-on-deny": "true"}));
    assert_eq!(outcomes(&r), [ok(0), ok(0), ok(0), ok(0), ok(0), ("failure".to_owned(), Some(77))], "{r}");
    assert_eq!((r["outputs"]["exit-code"].as_str(), r["outputs"]["denied"].as_str()), (Some("0"), Some("true")), "{r}");
    assert!(read(&dir.path().join("artifacts/paddock-audit/review.html")).contains("127.0.0.1:9"));
    let dir = tempfile::tempdir().unwrap();
    let r = run_action(dir.path(), serde_json::json!({"run": step}));
    assert_eq!(r["failed"], false, "without fail-on-deny a denial alone passes: {r}");

    // A failing step fails the job with its code, the artifact uploaded all the same.
    let dir = tempfile::tempdir().unwrap();
    let r = run_action(dir.path(), serde_json::json!({"run": "exit 3", "upload": "true"}));
    assert_eq!(outcomes(&r)[5], ("failure".to_owned(), Some(3)), "{r}");
    assert_eq!(outcomes(&r)[4], ok(0), "uploaded before the verdict: {r}");
    assert!(dir.path().join("artifacts/paddock-audit/audit.jsonl").exists());
}
