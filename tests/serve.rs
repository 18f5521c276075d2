//! End-to-end: `paddock serve`, driven over raw HTTP/1.1 on loopback TCP and a unix socket.
//!
//! Each test starts its own server with its own state dir (`PADDOCK_STATE_DIR`), its own
//! workspace and port 0 (the chosen address is read from stderr), and kills it by pid at the
//! end. Tests dial only loopback: the refused listen addresses (0.0.0.0, [::], a LAN address)
//! are only handed to `paddock serve`, which must exit 64 before binding; nothing ever
//! connects to them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(unused_macros)]
mod common;

const BIN: &str = env!("CARGO_BIN_EXE_paddock");
/// How long anything may take before the test calls it hung.
const HANG: Duration = Duration::from_secs(60);

fn system_reads() -> String {
    ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A policy: the system read-only, the workspace writable, `.env` denied, plus `tail`.
fn policy_text(tail: &str) -> String {
    format!("version = 1\n\n[filesystem]\nread = [{}]\nwrite = [\"${{WORKSPACE}}\"]\ndeny = [\"${{WORKSPACE}}/.env\"]\n\n[env]\nset = {{ PATH = \"/usr/local/bin:/usr/bin:/bin\" }}\n\n{tail}\n", system_reads())
}

/// One server under test, with its temp state dir and workspace. Killed on drop.
struct Server {
    child: Option<Child>,
    addr: String,
    dir: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
    socket: Option<PathBuf>,
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {} {}", self.status, self.body))
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.head, self.body)
    }
}

impl Server {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.state().join("token")).expect("token file").trim().to_string()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// A raw request; `Host`, the bearer token and `Connection: close` are added unless
    /// `extra` starts with `!` lines that replace them (see callers).
    fn raw(&self, request: &[u8]) -> Reply {
        let mut buf = Vec::new();
        match &self.socket {
            Some(path) => {
                let mut s = UnixStream::connect(path).expect("connect unix socket");
                s.set_read_timeout(Some(HANG)).unwrap();
                s.write_all(request).unwrap();
                s.read_to_end(&mut buf).expect("read reply");
            }
            None => {
                let mut s = TcpStream::connect(&self.addr).expect("connect");
                s.set_read_timeout(Some(HANG)).unwrap();
                s.write_all(request).unwrap();
                s.read_to_end(&mut buf).expect("read reply");
            }
        }
        parse_reply(&buf)
    }

    /// `METHOD PATH` with `headers` (each `Name: value`) and a body. A `Host` header and
    /// the bearer token are sent unless `headers` has its own (`Host:` / `Authorization:`),
    /// or names `-Host` / `-Authorization` to leave them out.
    fn request(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Reply {
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        let has = |name: &str| headers.iter().any(|h| h.to_ascii_lowercase().starts_with(&name.to_ascii_lowercase()));
        if !has("Host:") && !has("-Host") {
            req.push_str(&format!("Host: 127.0.0.1:{}\r\n", if self.socket.is_some() { 0 } else { self.port() }));
        }
        if !has("Authorization:") && !has("-Authorization") {
            req.push_str(&format!("Authorization: Bearer {}\r\n", self.token()));
        }
        for h in headers.iter().filter(|h| !h.starts_with('-')) {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()));
        } else {
            req.push_str("\r\n");
        }
        self.raw(req.as_bytes())
    }

    fn call(&self, json: &str) -> Reply {
        self.request("POST", "/v1/calls", &[], Some(json))
    }

    fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    fn session_id(&self) -> String {
        let r = self.request("GET", "/v1/health", &[], None);
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["session"].as_str().expect("session id").to_string()
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(st.success());
    }

    /// Waits for the server to exit; its exit code.
    fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let t = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if t.elapsed() > HANG {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not exit; stderr:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn paddock(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("PADDOCK_STATE_DIR", self.state())
            .stdin(Stdio::null())
            .output()
            .expect("run paddock")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    Reply { status, head: head.to_string(), body: body.to_string() }
}

/// Starts `paddock serve` with `policy` (or the embedded default) and `extra` arguments
/// (`--listen 127.0.0.1:0` unless `extra` says `--socket`), and waits for its address.
fn start(policy: Option<&str>, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("ws")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg("--workspace").arg(dir.path().join("ws"));
    if let Some(p) = policy {
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, p).unwrap();
        cmd.arg("--policy").arg(path);
    }
    let socket = extra.iter().position(|a| *a == "--socket").map(|i| PathBuf::from(extra[i + 1]));
    if socket.is_none() {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.args(extra).env("PADDOCK_STATE_DIR", dir.path().join("state")).env_remove("PADDOCK_LOG");
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn paddock serve");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    {
        let out = BufReader::new(child.stderr.take().unwrap());
        let stderr = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("paddock: listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
                let mut s = stderr.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let addr = match rx.recv_timeout(HANG) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("paddock serve did not report its address; stderr:\n{}", stderr.lock().unwrap());
        }
    };
    Server { child: Some(child), addr, dir, stderr, socket }
}

// ---------------------------------------------------------------------------------------
// Listen addresses
// ---------------------------------------------------------------------------------------

#[test]
fn non_loopback_listen_addresses_are_refused_before_binding() {
    let state = tempfile::tempdir().unwrap();
    // Never connected to: only handed to `paddock serve`, which must refuse them.
    for addr in ["0.0.0.0:7878", "[::]:7878", "192.168.1.10:7878", "localhost.example:7878", "10.1.2.3:0"] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", addr])
            .env("PADDOCK_STATE_DIR", state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{addr}: {err}");
        assert!(err.contains("ssh -L"), "{addr}: the message points to an SSH tunnel: {err}");
        assert!(!err.contains("listening on"), "{addr}: {err}");
    }
    assert!(!state.path().join("token").exists(), "nothing was set up for a refused address");
}

#[test]
fn loopback_port_zero_prints_the_chosen_port() {
    let srv = start(None, &[]);
    assert!(srv.addr.starts_with("127.0.0.1:"), "{}", srv.addr);
    assert_ne!(srv.port(), 0);
    let r = srv.request("GET", "/v1/health", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["status"], "ok");
    assert!(r.json()["session"].as_str().unwrap().starts_with("serve-"));
    // The token file: created 0600 with 256 random bits.
    let meta = std::fs::metadata(srv.state().join("token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(srv.token().len(), 64);
}

// ---------------------------------------------------------------------------------------
// Who may ask
// ---------------------------------------------------------------------------------------

#[test]
fn token_origin_and_host_are_checked() {
    let srv = start(None, &[]);
    let call = r#"{"tool":"command","argv":["echo","hi"]}"#;
    let r = srv.request("POST", "/v1/calls", &["-Authorization"], Some(call));
    assert_eq!(r.status, 401, "no token: {r:?}");
    assert!(r.head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{r:?}");
    let r = srv.request("POST", "/v1/calls", &["Authorization: Bearer 0000"], Some(call));
    assert_eq!(r.status, 401, "wrong token: {r:?}");
    let wrong_same_length = "f".repeat(64);
    let r = srv.request("GET", "/v1/health", &[&format!("Authorization: Bearer {wrong_same_length}")], None);
    assert_eq!(r.status, 401, "wrong token: {r:?}");
    let r = srv.request("GET", "/v1/health", &[&format!("Authorization: Basic {}", srv.token())], None);
    assert_eq!(r.status, 401, "not a bearer token: {r:?}");
    // Origin: refused even with the right token, and before the token is looked at.
    let r = srv.request("POST", "/v1/calls", &["Origin: http://evil.example"], Some(call));
    assert_eq!(r.status, 403, "Origin: {r:?}");
    let r = srv.request("POST", "/v1/calls", &["Origin: null", "-Authorization"], Some(call));
    assert_eq!(r.status, 403, "Origin without a token: {r:?}");
    let r = srv.request("GET", "/v1/health", &[&format!("Origin: http://127.0.0.1:{}", srv.port())], None);
    assert_eq!(r.status, 403, "same-host Origin: {r:?}");
    // Host: DNS rebinding.
    let r = srv.request("POST", "/v1/calls", &["Host: evil.example"], Some(call));
    assert_eq!(r.status, 403, "Host: evil.example: {r:?}");
    let r = srv.request("GET", "/v1/health", &[&format!("Host: evil.example:{}", srv.port()), "-Authorization"], None);
    assert_eq!(r.status, 403, "{r:?}");
    for host in ["localhost", &format!("localhost:{}", srv.port()), "127.0.0.1", "[::1]:80"] {
        let r = srv.request("GET", "/v1/health", &[&format!("Host: {host}")], None);
        assert_eq!(r.status, 200, "Host: {host}: {r:?}");
    }
    // Nothing of that ran a call.
    assert!(srv.audit().iter().all(|r| r["event"] != "call.start"), "refused requests run nothing");
}

#[test]
fn routes_methods_and_bodies() {
    let srv = start(None, &["--max-body", "4KiB"]);
    assert_eq!(srv.request("GET", "/v1/nope", &[], None).status, 404);
    assert_eq!(srv.request("GET", "/", &[], None).status, 404);
    let r = srv.request("GET", "/v1/calls", &[], None);
    assert_eq!(r.status, 405, "{r:?}");
    assert!(r.head.to_ascii_lowercase().contains("allow: post"), "{r:?}");
    assert_eq!(srv.request("POST", "/v1/health", &[], Some("{}")).status, 405);
    // Malformed JSON, and JSON that is not a tool call: 400 saying what is wrong.
    let r = srv.call(r#"{"tool":"command","argv":"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("malformed JSON"), "{r:?}");
    let r = srv.call(r#"{"tool":"launch_missiles"}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("launch_missiles"), "{r:?}");
    let r = srv.call(r#"{"tool":"command","argv":["true"],"shell":true}"#);
    assert_eq!(r.status, 400, "unknown fields are errors: {r:?}");
    // Oversized: declared by Content-Length (refused before the body is read) ...
    let req = format!(
        "POST /v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 2000000\r\n\r\n",
        srv.token()
    );
    let r = srv.raw(req.as_bytes());
    assert_eq!(r.status, 413, "{r:?}");
    // ... or only found while reading a chunked body.
    let big = format!(r#"{{"tool":"command","argv":["echo","{}"]}}"#, "x".repeat(5000));
    let req = format!("POST /v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n", srv.token(), big.len());
    let r = srv.raw(req.as_bytes());
    assert_eq!(r.status, 413, "{r:?}");
    // Within the limit: fine.
    let r = srv.call(r#"{"tool":"command","argv":["echo","small"]}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["stdout"], "small\n");
    // A timeout paddock does not take (beyond what a clock holds, zero, not a duration):
    // 400 saying why, and nothing runs.
    let before = srv.call(r#"{"tool":"command","argv":["echo","x"]}"#).json()["audit_seq"].as_u64().unwrap();
    for t in
        ["9223372036854775807", "18446744073709551615", "\"300000000000s\"", "\"99999y\"", "0", "\"0s\"", "\"soon\""]
    {
        let r = srv.call(&format!(r#"{{"tool":"command","argv":["echo","x"],"timeout":{t}}}"#));
        assert_eq!(r.status, 400, "timeout {t}: {r:?}");
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains("duration") || e.contains("timeout"), "timeout {t}: {e}");
    }
    let r = srv.call(r#"{"tool":"command","argv":["echo","x"],"timeout":"2s"}"#);
    assert_eq!((r.status, r.json()["stdout"].as_str()), (200, Some("x\n")), "{r:?}");
    let after = r.json()["audit_seq"].as_u64().unwrap();
    assert!(after - before <= 4, "the refused calls wrote nothing: {before} -> {after}");
}

// ---------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------

/// A call that was recorded but whose sandbox could not start (its `cwd` is gone) still
/// names its `call.start` in the answer, as a call that ran does: a reviewer finds it.
#[test]
fn a_call_whose_sandbox_cannot_start_names_its_record() {
    let srv = start(None, &[]);
    let r = srv.call(r#"{"tool":"command","argv":["/bin/true"],"cwd":"gone"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let o = r.json();
    assert_eq!((o["decision"].as_str(), o["exit_code"].as_i64()), (Some("allow"), Some(125)), "{o}");
    assert!(o["stderr"].as_str().unwrap_or("").contains("could not start the sandbox"), "{o}");
    let seq = o["audit_seq"].as_u64().expect("audit_seq");
    assert_ne!(seq, 0, "{o}");
    let log = srv.audit();
    let start = log.iter().find(|r| r["seq"] == seq).expect("the record at audit_seq");
    assert_eq!(start["event"], "call.start", "{start}");
    assert!(start["cwd"].as_str().unwrap_or("").ends_with("/gone"), "{start}");
    assert!(
        log.iter().any(|r| r["event"] == "call.end" && r["call_id"] == start["call_id"] && r["exit_code"] == 125),
        "call.end recorded"
    );
}

/// A `cwd` the sandbox cannot see is refused, never swapped for another directory (found by
/// a test: a call asking for `/root`, a denied directory or one that does not exist ran in
/// the workspace, and its record named the workspace), and the refusal's record names the
/// directory asked for. An empty `cwd` is refused too; none at all is the workspace, and a
/// relative one is taken from it.
#[test]
fn a_cwd_the_sandbox_cannot_see_is_refused_not_swapped() {
    let srv = start(Some(&policy_text("")), &[]);
    let ws = srv.ws().canonicalize().unwrap();
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::create_dir_all(ws.join(".env")).unwrap();
    let call = |cwd: Option<&str>| {
        let mut body = serde_json::json!({"tool": "command", "argv": ["pwd"]});
        if let Some(c) = cwd {
            body["cwd"] = c.into();
        }
        srv.call(&body.to_string()).json()
    };
    let denied_dir = ws.join(".env");
    for cwd in ["/nonexistent-paddock-cwd", "/root", denied_dir.to_str().unwrap(), ""] {
        let o = call(Some(cwd));
        assert_eq!(
            (&o["decision"], &o["stdout"], &o["exit_code"]),
            (&"deny".into(), &"".into(), &Value::Null),
            "{cwd:?}: {o}"
        );
        assert!(o["reason"].as_str().unwrap().contains("cwd"), "{o}");
        let seq = o["audit_seq"].as_u64().expect("audit_seq");
        let start = srv.audit().into_iter().find(|r| r["seq"] == seq).expect("the record at audit_seq");
        assert_eq!(start["decision"], "deny", "{start}");
        if !cwd.is_empty() {
            assert_eq!(start["cwd"], cwd, "the record names the directory asked for: {start}");
        }
    }
    assert_eq!(call(None)["stdout"], format!("{}\n", ws.display()));
    assert_eq!(call(Some("sub"))["stdout"], format!("{}\n", ws.join("sub").display()));
}

#[test]
fn a_good_call_returns_output_exit_code_and_its_audit_seq() {
    let srv = start(None, &[]);
    let session = srv.session_id();
    let r = srv.call(r#"{"tool":"command","argv":["sh","-c","echo out; echo err >&2; exit 3"]}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let o = r.json();
    assert_eq!(o["decision"], "allow", "{o}");
    assert_eq!(o["stdout"], "out\n");
    assert_eq!(o["stderr"], "err\n");
    assert_eq!(o["exit_code"], 3);
    assert_eq!(o["truncated"], false);
    assert!(o["duration_ms"].is_u64());
    let seq = o["audit_seq"].as_u64().expect("audit_seq");
    let log = srv.audit();
    let start = log.iter().find(|r| r["seq"] == seq).expect("the record at audit_seq");
    assert_eq!(start["event"], "call.start", "{start}");
    assert_eq!(start["session"], session.as_str(), "{start}");
    assert_eq!(start["tool"], "command");
    assert!(
        log.iter().any(|r| r["event"] == "call.end" && r["call_id"] == start["call_id"] && r["exit_code"] == 3),
        "call.end recorded"
    );
    assert!(
        log.iter().any(|r| r["event"] == "session.start" && r["session"] == session.as_str() && r["mode"] == "serve"),
        "session.start with mode serve"
    );
    // stdin and a cwd relative to the workspace.
    std::fs::create_dir(srv.ws().join("sub")).unwrap();
    let r = srv.call(r#"{"tool":"command","argv":["sh","-c","pwd; cat"],"cwd":"sub","stdin":"fed"}"#);
    assert_eq!(r.json()["stdout"], format!("{}\nfed", srv.ws().join("sub").canonicalize().unwrap().display()), "{r:?}");
    // /v1/check decides without running.
    let before = srv.audit().len();
    let r = srv.request("POST", "/v1/check", &[], Some(r#"{"tool":"read_file","path":".env"}"#));
    assert_eq!(r.status, 200, "{r:?}");
    let d = r.json();
    assert_eq!(d["decision"], "deny");
    assert!(d["rule"].as_str().unwrap().starts_with("filesystem.deny"), "{d}");
    assert!(d["reason"].is_string());
    assert_eq!(srv.audit().len(), before, "check runs nothing");
}

#[test]
fn denied_calls_are_outcomes_with_the_rule() {
    let srv = start(Some(&policy_text("[commands]\nallow = [\"echo *\"]")), &[]);
    let r = srv.call(r#"{"tool":"command","argv":["echo","yes"]}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["stdout"], "yes\n", "{r:?}");
    let r = srv.call(r#"{"tool":"command","argv":["ls"]}"#);
    assert_eq!(r.status, 200, "a denial is an outcome: {r:?}");
    let o = r.json();
    assert_eq!(o["decision"], "deny", "{o}");
    assert!(!o["rule"].as_str().unwrap().is_empty(), "{o}");
    assert!(o["reason"].as_str().unwrap().contains("ls"), "{o}");
    assert!(o["exit_code"].is_null(), "{o}");
    let seq = o["audit_seq"].as_u64().unwrap();
    let rec = srv.audit().into_iter().find(|r| r["seq"] == seq).unwrap();
    assert_eq!(rec["event"], "call.start");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], o["rule"]);
}

#[test]
fn file_calls_follow_the_filesystem_rules() {
    let srv = start(Some(&policy_text("")), &[]);
    std::fs::write(srv.ws().join("notes.txt"), "allowed content\n").unwrap();
    std::fs::write(srv.ws().join(".env"), "SECRET=hunter2\n").unwrap();
    let r = srv.call(r#"{"tool":"read_file","path":"notes.txt"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let o = r.json();
    assert_eq!(o["decision"], "allow", "{o}");
    assert_eq!(o["content"], "allowed content\n", "{o}");
    // A denied path: refused, and nothing of it comes back.
    let env = srv.ws().join(".env");
    let r = srv.call(&serde_json::json!({ "tool": "read_file", "path": env }).to_string());
    let o = r.json();
    assert_eq!(o["decision"], "deny", "{o}");
    assert!(o["rule"].as_str().unwrap().starts_with("filesystem.deny"), "{o}");
    assert!(!r.body.contains("hunter2"), "{r:?}");
    // A write outside the workspace: refused, nothing written.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted.txt");
    let r = srv.call(&serde_json::json!({ "tool": "write_file", "path": target, "content": "x" }).to_string());
    let o = r.json();
    assert_eq!(o["decision"], "deny", "{o}");
    assert!(!target.exists());
    // A write inside: done by a confined child.
    let r = srv.call(r#"{"tool":"write_file","path":"out/../made.txt","content":"made by paddock"}"#);
    assert_eq!(r.json()["decision"], "allow", "{r:?}");
    assert_eq!(r.json()["exit_code"], 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(srv.ws().join("made.txt")).unwrap(), "made by paddock");
}

#[test]
fn a_hundred_concurrent_calls_are_all_answered_and_audited() {
    let srv = Arc::new(start(None, &[]));
    let session = srv.session_id();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let srv = Arc::clone(&srv);
            std::thread::spawn(move || srv.call(&format!(r#"{{"tool":"command","argv":["echo","n{i}"]}}"#)))
        })
        .collect();
    let mut seqs = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().expect("client thread");
        assert_eq!(r.status, 200, "call {i}: {r:?}");
        let o = r.json();
        assert_eq!(o["stdout"], format!("n{i}\n"), "call {i}: {o}");
        seqs.push(o["audit_seq"].as_u64().unwrap());
    }
    assert!(t0.elapsed() < HANG, "100 calls took {:?}", t0.elapsed());
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 100, "each call has its own call.start");
    let log = srv.audit();
    let count = |event: &str| log.iter().filter(|r| r["event"] == event && r["session"] == session.as_str()).count();
    assert_eq!(count("call.start"), 100);
    assert_eq!(count("call.end"), 100);
    let out = srv.paddock(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_revocation_applies_to_the_next_call_without_a_restart() {
    let srv = start(None, &[]);
    let r = srv.call(r#"{"tool":"command","argv":["echo","before"]}"#);
    assert_eq!(r.json()["decision"], "allow", "{r:?}");
    let out = srv.paddock(&["revoke", "command:echo **", "--reason", "test"]);
    assert_eq!(out.status.code(), Some(0), "revoke: {}", String::from_utf8_lossy(&out.stderr));
    let r = srv.call(r#"{"tool":"command","argv":["echo","after"]}"#);
    let o = r.json();
    assert_eq!(o["decision"], "deny", "{o}");
    assert!(o["reason"].as_str().unwrap().contains("revoked"), "{o}");
    assert_eq!(o["stdout"], "");
    // Other calls still run.
    assert_eq!(srv.call(r#"{"tool":"command","argv":["true"]}"#).json()["decision"], "allow");
}

#[test]
fn a_rotated_token_takes_effect_without_a_restart() {
    let srv = start(None, &[]);
    let old = srv.token();
    let auth = |t: &str| format!("Authorization: Bearer {t}");
    assert_eq!(srv.request("GET", "/v1/health", &[&auth(&old)], None).status, 200);
    let new = "9".repeat(64);
    std::fs::write(srv.state().join("token"), format!("{new}\n")).unwrap();
    assert_eq!(srv.request("GET", "/v1/health", &[&auth(&old)], None).status, 401, "the old token no longer works");
    assert_eq!(srv.request("GET", "/v1/health", &[&auth(&new)], None).status, 200, "the new one does");
}

#[test]
fn a_token_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "abc\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token)
        .env("PADDOCK_STATE_DIR", dir.path().join("state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn sigterm_finishes_running_calls_then_closes_the_session() {
    let mut srv = start(None, &[]);
    let session = srv.session_id();
    let srv_addr = srv.addr.clone();
    let token = srv.token();
    // A call that is running when SIGTERM comes: it finishes and is answered.
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&srv_addr).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        let body = r#"{"tool":"command","argv":["sh","-c","sleep 1; echo done"]}"#;
        let req = format!("POST /v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        parse_reply(&buf)
    });
    // Wait until it runs.
    let t = Instant::now();
    while srv.request("GET", "/v1/health", &[], None).json()["running"] != 1 {
        assert!(t.elapsed() < HANG, "the slow call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.signal("TERM");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["stdout"], "done\n");
    assert_eq!(srv.wait(), Some(0), "stderr:\n{}", srv.stderr.lock().unwrap());
    let log = srv.audit();
    let end = log.last().expect("records");
    assert_eq!(end["event"], "session.end", "{end}");
    assert_eq!(end["session"], session.as_str());
    assert!(TcpStream::connect(&srv.addr).is_err(), "no longer listening");
}

#[test]
fn sigint_stops_an_idle_server() {
    let mut srv = start(None, &[]);
    // An idle keep-alive connection does not hold the shutdown up.
    let mut idle = TcpStream::connect(&srv.addr).unwrap();
    let req = format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n", srv.token());
    idle.write_all(req.as_bytes()).unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    srv.signal("INT");
    assert_eq!(srv.wait(), Some(0));
    assert_eq!(srv.audit().last().unwrap()["event"], "session.end");
}

#[test]
fn unix_socket_mode() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("paddock.sock");
    let mut srv = start(None, &["--socket", sock.to_str().unwrap()]);
    assert_eq!(srv.addr, format!("unix:{}", sock.display()));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is 0600");
    let r = srv.call(r#"{"tool":"command","argv":["echo","over a socket"]}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["stdout"], "over a socket\n");
    // The same checks apply.
    assert_eq!(srv.request("GET", "/v1/health", &["-Authorization"], None).status, 401);
    assert_eq!(srv.request("GET", "/v1/health", &["Origin: http://x.example"], None).status, 403);
    assert_eq!(srv.request("GET", "/v1/health", &["Host: evil.example"], None).status, 403);
    assert_eq!(srv.request("GET", "/v1/health", &["Host: localhost"], None).status, 200);
    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0));
    assert!(!sock.exists(), "the socket is removed on shutdown");
}

/// Waits until `/v1/health` shows `field` equal to `want`.
fn wait_health(srv: &Server, field: &str, want: u64) {
    let t = Instant::now();
    while srv.request("GET", "/v1/health", &[], None).json()[field] != want {
        assert!(t.elapsed() < HANG, "health {field} never reached {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// POSTs `body` from another thread; `None` when the connection closed without a reply.
fn post_in_thread(srv: &Server, body: impl Into<String>) -> std::thread::JoinHandle<Option<Reply>> {
    let (addr, token, body) = (srv.addr.clone(), srv.token(), body.into());
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        let req = format!("POST /v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        (!buf.is_empty()).then(|| parse_reply(&buf))
    })
}

#[test]
fn calls_beyond_the_concurrency_limit_wait_and_a_full_queue_gets_503() {
    let srv = start(None, &["--max-concurrent", "1", "--max-queue", "1"]);
    // The first call holds the only slot until the test lets it go: however slow the
    // machine, the queue is full when the third call comes.
    let running = post_in_thread(
        &srv,
        r#"{"tool":"command","argv":["sh","-c","while [ ! -e go ]; do sleep 0.02; done; echo first"]}"#,
    );
    wait_health(&srv, "running", 1);
    let queued = post_in_thread(&srv, r#"{"tool":"command","argv":["echo","second"]}"#);
    wait_health(&srv, "waiting", 1);
    let r = srv.call(r#"{"tool":"command","argv":["echo","third"]}"#);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.head.to_ascii_lowercase().contains("retry-after"), "{r:?}");
    std::fs::write(srv.ws().join("go"), "").unwrap();
    let r = running.join().unwrap().expect("a reply");
    assert_eq!(r.json()["stdout"], "first\n", "{r:?}");
    let r = queued.join().unwrap().expect("a reply");
    assert_eq!(r.status, 200, "the waiting call runs once a slot is free: {r:?}");
    assert_eq!(r.json()["stdout"], "second\n");
}

/// Whether a process whose command line holds `marker` is alive.
fn process_with(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).map(|c| String::from_utf8_lossy(&c).contains(marker)).unwrap_or(false)
    })
}

#[test]
fn calls_still_running_after_the_grace_period_are_killed() {
    let mut srv = start(None, &["--shutdown-grace", "1s"]);
    let session = srv.session_id();
    // A unique sleep argument, to find the process on the host.
    let marker = format!("3599.{}", std::process::id());
    let body: &'static str = Box::leak(format!(r#"{{"tool":"command","argv":["sleep","{marker}"]}}"#).into_boxed_str());
    let stuck = post_in_thread(&srv, body);
    let t = Instant::now();
    while !process_with(&marker) {
        assert!(t.elapsed() < HANG, "the call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0), "stderr:\n{}", srv.stderr.lock().unwrap());
    assert!(t.elapsed() < Duration::from_secs(20), "stopped after the grace period: {:?}", t.elapsed());
    // The call is killed at the end of the grace period and answered with that outcome.
    let r = stuck.join().unwrap_or_else(|_| panic!("client thread")).expect("the killed call is answered");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["exit_code"], 137, "{r:?}");
    assert!(r.json()["stderr"].as_str().unwrap().contains("the supervisor stopped"), "{r:?}");
    let t = Instant::now();
    while process_with(&marker) {
        assert!(t.elapsed() < Duration::from_secs(10), "the call's process tree was not killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = srv.audit();
    assert_eq!(log.last().unwrap()["event"], "session.end");
    assert_eq!(log.last().unwrap()["session"], session.as_str());
    assert!(
        log.iter().any(|r| r["event"] == "call.start" && r["session"] == session.as_str()),
        "the killed call was recorded"
    );
    assert!(
        log.iter().any(|r| r["event"] == "call.end" && r["session"] == session.as_str()),
        "the killed call's end was recorded"
    );
}

// ---------------------------------------------------------------------------------------
// Exec supervision in a session (issue 16)
// ---------------------------------------------------------------------------------------

#[test]
fn session_calls_record_and_decide_every_exec_of_their_tree() {
    let pol = policy_text("[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"seq **\"]\n");
    let srv = start(Some(&pol), &[]);
    let session = srv.session_id();
    // Twice: the second call runs in the session's zygote.
    for _ in 0..2 {
        let r = srv.call(r#"{"tool":"command","argv":["sh","-c","seq 2; /usr/bin/id; echo rc=$?"]}"#);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["stdout"], "1\n2\nrc=126\n", "{r:?}");
    }
    let execs: Vec<Value> =
        srv.audit().into_iter().filter(|r| r["event"] == "exec" && r["session"] == session.as_str()).collect();
    let count = |argv0: &str, decision: &str| {
        execs.iter().filter(|r| r["argv"][0] == argv0 && r["decision"] == decision).count()
    };
    assert_eq!((count("sh", "allow"), count("seq", "allow"), count("/usr/bin/id", "deny")), (2, 2, 2), "{execs:#?}");
}

/// A call that floods the inotify queue of the zygote's view stamp until it overflows, then
/// plants a `protect` match, is still held to it when another call's check consumes the
/// overflow first: the change that check found by comparing statuses stays a change, so the
/// planting call's own check after it is not vouched for by the empty queue it reads.
#[test]
fn a_call_that_floods_the_view_stamp_still_has_what_it_planted_moved_aside() {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").unwrap().trim().parse().unwrap();
    if max > 200_000 {
        return; // too many events to make in a test
    }
    let text = format!(
        "version = 1\n\n[filesystem]\nread = [{}]\nwrite = [\"${{WORKSPACE}}\"]\nprotect = [\"${{WORKSPACE}}/**/.envrc\"]\n",
        system_reads()
    );
    let srv = start(Some(&text), &[]);
    let ws = srv.ws();
    std::fs::write(ws.join("go"), "wait").unwrap();
    for f in ["f0", "f1"] {
        std::fs::write(ws.join(f), "").unwrap();
    }
    // The stamp vouches only for directories past its margin.
    common::wait_past_ctime_margin(std::slice::from_ref(&ws));
    // The first call starts the zygote (its stamp), the second sets the watch up.
    for _ in 0..2 {
        assert_eq!(srv.call(r#"{"tool":"command","argv":["true"]}"#).json()["exit_code"], 0);
    }
    // Events that count for nothing (two files' times, in turn: the kernel merges an event
    // with the one before it when they are the same) until the queue overflows, then the
    // plant, whose event is lost; it waits for `go` to say so (a content change: no event
    // that counts either).
    let flood = format!(
        "import os, time\nfor i in range({}): os.utime('f%d' % (i % 2))\nos.makedirs('sub')\nopen('sub/.envrc', 'w').write('touch /tmp/pwned')\nwhile open('go').read() != 'go': time.sleep(0.01)\n",
        max + 1000
    );
    let body = serde_json::json!({"tool": "command", "argv": ["python3", "-c", flood]}).to_string();
    let planting = post_in_thread(&srv, body);
    let t = Instant::now();
    while !ws.join("sub/.envrc").exists() {
        assert!(t.elapsed() < HANG, "the plant never showed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Another call's check reads the overflow and finds the change (it then fails to start:
    // its cwd is not there, so it runs no scan of its own).
    let other = srv.call(r#"{"tool":"command","argv":["true"],"cwd":"nope/x"}"#);
    assert_eq!(other.json()["exit_code"], 125, "{other:?}");
    std::fs::write(ws.join("go"), "go").unwrap();
    let r = planting.join().unwrap().expect("a reply");
    let o = r.json();
    assert_eq!(o["exit_code"], 0, "{r:?}");
    assert!(!ws.join("sub/.envrc").exists(), "the planted .envrc was left: {r:?}");
    assert!(o["stderr"].as_str().unwrap().contains("moved aside to"), "{r:?}");
}

/// A server's policy names programs that do not exist yet when it starts, or that become
/// other files: made during the session (a build's output, a script the agent writes), each
/// pattern decides as `paddock check`, a fresh load, does. A program made later runs, also
/// as an exec inside a call's tree (its Landlock execute right); a denied name made later as
/// a link to an allowed program denies it, as the load of now would.
#[test]
fn programs_made_after_the_server_started_are_matched_by_their_patterns() {
    let bin = tempfile::tempdir().unwrap();
    let [tool, alias, made] = ["tool", "alias", "made"].map(|n| bin.path().join(n));
    common::write(&tool, "#!/bin/sh\necho tool ran \"$@\"\n", 0o755);
    let pol = policy_text(&format!(
        "[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"{} **\", \"{} **\"]\ndeny = [\"{} **\"]\n",
        tool.display(),
        made.display(),
        alias.display()
    ))
    .replace("read = [", &format!("read = [{:?}, ", bin.path()));
    let srv = start(Some(&pol), &[]);
    let call = |argv: &[&str]| srv.call(&serde_json::json!({"tool": "command", "argv": argv}).to_string()).json();
    let checked = |argv: &[&str]| {
        let out = srv.paddock(
            &[&["check", "--json", "--policy", srv.dir.path().join("policy.toml").to_str().unwrap(), "--"], argv]
                .concat(),
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("check --json");
        v["decision"].clone()
    };
    let r = call(&[made.to_str().unwrap(), "x"]);
    assert_eq!(r["decision"], "deny", "not made yet: {r}");

    common::write(&made, "#!/bin/sh\necho made ran \"$@\"\n", 0o755);
    let r = call(&[made.to_str().unwrap(), "x"]);
    assert_eq!((&r["decision"], &r["stdout"]), (&"allow".into(), &"made ran x\n".into()), "{r}");
    let r = call(&["sh", "-c", &format!("{} y", made.display())]);
    assert_eq!((&r["decision"], &r["stdout"]), (&"allow".into(), &"made ran y\n".into()), "{r}");

    let r = call(&[tool.to_str().unwrap(), "x"]);
    assert_eq!((&r["decision"], &r["stdout"]), (&"allow".into(), &"tool ran x\n".into()), "{r}");
    std::os::unix::fs::symlink(&tool, &alias).unwrap();
    for argv in [[alias.to_str().unwrap(), "z"], [tool.to_str().unwrap(), "z"]] {
        let r = call(&argv);
        assert_eq!(
            (&r["decision"], &r["rule"], &r["stdout"]),
            (&"deny".into(), &"commands.deny[0]".into(), &"".into()),
            "{argv:?}: {r}"
        );
        assert_eq!(checked(&argv), "deny", "{argv:?}");
    }
}

/// A token file replaced where calls can read it makes the server take no token: a client
/// is told so with 503 and nothing about the file (its path is for the server's log, which
/// says why), whether or not it sent the old token.
#[test]
fn a_token_file_replaced_in_reach_takes_no_token_and_names_nothing_to_clients() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    let pol = policy_text("").replace("read = [", &format!("read = [{:?}, ", dir.path()));
    let srv = start(Some(&pol), &["--token-file", tok.to_str().unwrap()]);
    let old = std::fs::read_to_string(&tok).unwrap().trim().to_string();
    let auth = format!("Authorization: Bearer {old}");
    assert_eq!(srv.request("GET", "/v1/health", &[&auth], None).status, 200);
    common::write(&dir.path().join("new"), &format!("{}\n", "7".repeat(64)), 0o600);
    std::fs::rename(dir.path().join("new"), &tok).unwrap();
    for (headers, status) in [(auth.as_str(), 503), ("-Authorization", 401), ("Authorization: Bearer 7777", 503)] {
        let r = srv.request("GET", "/v1/health", &[headers], None);
        assert_eq!(r.status, status, "{headers:?}: {r:?}");
        assert!(!r.body.contains(dir.path().to_str().unwrap()), "{r:?}");
    }
    let t = Instant::now();
    while !srv.stderr.lock().unwrap().contains("replaced by another file") {
        assert!(t.elapsed() < HANG, "the server's log does not say why: {}", srv.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(srv.stderr.lock().unwrap().contains(tok.to_str().unwrap()));
}

/// Runs `paddock serve ARGS` with its own state dir; its exit code and stderr. One that
/// starts serving instead of refusing is killed and gets `None`.
fn serve_refusal(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("PADDOCK_STATE_DIR", dir.path().join("state"))
        .env_remove("PADDOCK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if std::fs::read_to_string(&err_path).unwrap().contains("listening on") || t.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.is_none() || !dir.path().join("state/token").exists(), "{args:?}: a token was made before refusing");
    (code, std::fs::read_to_string(&err_path).unwrap())
}

/// A token far too short to be secret, and limits of 0, are usage errors naming what is
/// wrong (rtC M12: they were served, or changed to 1 without a word).
#[test]
fn a_short_token_and_zero_limits_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    common::write(&short, "short\n", 0o600);
    let (code, err) = serve_refusal(&["--listen", "127.0.0.1:0", "--token-file", short.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains(short.to_str().unwrap()) && err.contains("5 characters, fewer than the 32"), "{err}");
    let enough = dir.path().join("enough");
    common::write(&enough, &format!("{}\n", "k".repeat(32)), 0o600);
    let (code, err) = serve_refusal(&["--listen", "127.0.0.1:0", "--token-file", enough.to_str().unwrap()]);
    assert_eq!(code, None, "32 characters are enough: {err}");
    for (flag, more) in [("--max-concurrent", "must be at least 1"), ("--max-body", "must be at least 1 byte")] {
        let (code, err) = serve_refusal(&["--listen", "127.0.0.1:0", flag, "0"]);
        assert_eq!(code, Some(64), "{flag} 0: {err}");
        assert!(err.contains(flag) && err.contains(more), "{flag} 0: {err}");
    }
}

/// Two `Host` headers, or two `Authorization` headers, are a bad request whatever their
/// order (rtC L9: a loopback Host first let an `evil.test` one through).
#[test]
fn more_than_one_host_or_authorization_header_is_a_bad_request() {
    let srv = start(None, &[]);
    let right = format!("Authorization: Bearer {}", srv.token());
    let wrong = format!("Authorization: Bearer {}", "0".repeat(64));
    for headers in [
        ["Host: 127.0.0.1", "Host: evil.test"],
        ["Host: evil.test", "Host: 127.0.0.1"],
        ["Host: 127.0.0.1", "Host: 127.0.0.1"],
        [right.as_str(), wrong.as_str()],
        [wrong.as_str(), right.as_str()],
    ] {
        let r = srv.request("GET", "/v1/health", &headers, None);
        assert_eq!(r.status, 400, "{headers:?}: {r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("headers: send exactly one"), "{r:?}");
    }
    assert_eq!(srv.request("GET", "/v1/health", &["Host: 127.0.0.1", &right], None).status, 200);
}

/// A `--socket` path in a missing directory, on a file that is not a socket, or longer than
/// `sun_path` is a usage error naming the path (and the limit), before anything is set up
/// (rtC L11: exit 125, and "path must be shorter" without the limit).
#[test]
fn a_bad_socket_path_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let long = dir.path().join("l".repeat(110));
    for (path, says) in [
        (dir.path().join("missing/api.sock"), "No such file"),
        (file.clone(), "exists and is not a socket"),
        (long, "longer than the 107 bytes"),
    ] {
        let (code, err) = serve_refusal(&["--socket", path.to_str().unwrap()]);
        assert_eq!(code, Some(64), "{path:?}: {err}");
        assert!(err.contains(path.to_str().unwrap()) && err.contains(says), "{path:?}: {err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"", "the file is left alone");
}

/// An address another server holds is the user's to change: 64 and a message saying so,
/// not paddock's own failure (125). Loopback only: the port is one this test holds.
#[test]
fn an_address_in_use_is_a_usage_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr])
        .env("PADDOCK_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .output()
        .expect("run paddock serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("another server listens there"), "{err}");
}

/// A socket whose directory another user could change is refused before anything listens
/// (64): in a directory anyone may write, a socket renamed away and one bound in its place
/// was sent every client's token (found by an attack). So is a path ending with a slash.
/// Control: the same directory made private takes the socket.
#[test]
fn a_socket_others_could_replace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let serve = |socket: &str| {
        Command::new(BIN)
            .args(["serve", "--socket", socket])
            .env("PADDOCK_STATE_DIR", dir.path().join("state"))
            .stdin(Stdio::null())
            .output()
            .expect("run paddock serve")
    };
    let sock = open.join("s");
    let out = serve(sock.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("writable by its group or others") && err.contains("token"), "{err}");
    assert!(!sock.exists(), "nothing bound");
    let out = serve(&format!("{}/", sock.display()));
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    // Through a symlink another user owns, in a sticky directory: theirs to re-point.
    let sticky = dir.path().join("sticky");
    let private = dir.path().join("private");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&private, sticky.join("link")).unwrap();
    std::os::unix::fs::lchown(sticky.join("link"), Some(65534), Some(65534)).unwrap();
    let out = serve(sticky.join("link/s").to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("symlink owned by uid 65534"), "{err}");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
    let srv = start(None, &["--socket", sock.to_str().unwrap()]);
    assert_eq!(srv.request("GET", "/v1/health", &[], None).status, 200);
}
