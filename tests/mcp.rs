//! End-to-end: `paddock mcp`, driven over stdio with raw JSON-RPC lines, as an MCP client
//! (Claude Code, Codex, ...) would: initialize, notifications/initialized, tools/list,
//! tools/call. Each test has its own state dir and workspace; nothing touches the network.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_paddock");
const HANG: Duration = Duration::from_secs(60);

struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
    next_id: u64,
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mcp {
    fn start(policy: Option<&str>) -> Mcp {
        Mcp::start_with(policy, Stdio::null())
    }

    /// [`Mcp::start`] with paddock's stderr going to `stderr`.
    fn start_with(policy: Option<&str>, stderr: Stdio) -> Mcp {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ws")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("mcp").arg("--workspace").arg(dir.path().join("ws"));
        if let Some(p) = policy {
            std::fs::write(dir.path().join("policy.toml"), p).unwrap();
            cmd.arg("--policy").arg(dir.path().join("policy.toml"));
        }
        let mut child = cmd
            .env("PADDOCK_STATE_DIR", dir.path().join("state"))
            .env_remove("PADDOCK_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn paddock mcp");
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Mcp { child, stdin, lines, dir, next_id: 1 }
    }

    fn send(&mut self, msg: &Value) {
        let w = self.stdin.as_mut().expect("stdin open");
        writeln!(w, "{msg}").unwrap();
        w.flush().unwrap();
    }

    /// Sends a request and returns its response; every stdout line must be a JSON-RPC frame.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + HANG;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no response to {method}"));
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout carries only MCP frames, got {line:?}: {e}"));
            assert_eq!(v["jsonrpc"], "2.0", "{v}");
            if v["id"] == id {
                return v;
            }
        }
    }

    fn initialize(&mut self) -> Value {
        let r = self.request("initialize", json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "paddock-test", "version": "0" } }));
        self.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        r
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({ "name": tool, "arguments": args }));
        assert!(r.get("error").is_none(), "{r}");
        r["result"].clone()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("state/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The outcome JSON carried by a tools/call result (text content and structuredContent agree).
fn outcome(result: &Value) -> Value {
    let text = result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("text content: {result}"));
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("the text is the outcome JSON ({e}): {text}"));
    assert_eq!(result["structuredContent"], v, "{result}");
    v
}

fn policy_text(tail: &str) -> String {
    let read = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("version = 1\n\n[filesystem]\nread = [{read}]\nwrite = [\"${{WORKSPACE}}\"]\ndeny = [\"${{WORKSPACE}}/.env\"]\n\n[env]\nset = {{ PATH = \"/usr/local/bin:/usr/bin:/bin\" }}\n\n{tail}\n")
}

#[test]
fn an_mcp_session_over_stdio() {
    let mut mcp = Mcp::start(Some(&policy_text("[commands]\nallow = [\"echo *\", \"cat *\"]")));
    let init = mcp.initialize();
    let res = &init["result"];
    assert_eq!(res["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(res["serverInfo"]["name"], "paddock", "{init}");
    assert!(res["capabilities"]["tools"].is_object(), "{init}");

    let list = mcp.request("tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap_or_else(|| panic!("{list}"));
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in ["command", "read_file", "write_file", "http_request"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let schema = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap()["inputSchema"].clone();
    assert_eq!(schema("command")["type"], "object");
    assert_eq!(schema("command")["properties"]["argv"]["type"], "array");
    assert_eq!(schema("command")["required"], json!(["argv"]));
    assert_eq!(schema("read_file")["required"], json!(["path"]));
    assert_eq!(schema("write_file")["required"], json!(["path", "content"]));
    assert_eq!(schema("http_request")["required"], json!(["url"]));

    // An allowed command: its output.
    let r = mcp.call("command", json!({ "argv": ["echo", "hello from mcp"] }));
    let o = outcome(&r);
    assert_eq!(o["decision"], "allow", "{o}");
    assert_eq!(o["stdout"], "hello from mcp\n", "{o}");
    assert_eq!(o["exit_code"], 0);
    assert_eq!(r["isError"], false, "{r}");

    // A denied command: a normal result naming the rule, not a protocol error.
    let r = mcp.call("command", json!({ "argv": ["ls", "/"] }));
    let o = outcome(&r);
    assert_eq!(o["decision"], "deny", "{o}");
    assert!(!o["rule"].as_str().unwrap().is_empty(), "{o}");
    assert!(o["reason"].as_str().unwrap().contains("ls"), "{o}");
    assert_eq!(r["isError"], true, "{r}");

    // Files.
    let r = mcp.call("write_file", json!({ "path": "note.txt", "content": "written over mcp" }));
    assert_eq!(outcome(&r)["decision"], "allow", "{r}");
    let r = mcp.call("read_file", json!({ "path": "note.txt" }));
    assert_eq!(outcome(&r)["content"], "written over mcp", "{r}");
    std::fs::write(mcp.dir.path().join("ws/.env"), "SECRET=1").unwrap();
    let r = mcp.call("read_file", json!({ "path": ".env" }));
    let o = outcome(&r);
    assert_eq!(o["decision"], "deny", "{o}");
    assert!(o["rule"].as_str().unwrap().starts_with("filesystem.deny"), "{o}");

    // check decides without running.
    let r = mcp.call("check", json!({ "tool": "command", "argv": ["rm", "-rf", "/"] }));
    assert_eq!(r["structuredContent"]["decision"], "deny", "{r}");

    // Bad arguments: an isError result saying what is wrong; an unknown tool: a JSON-RPC error.
    let r = mcp.call("command", json!({ "argv": "echo hi" }));
    assert_eq!(r["isError"], true, "{r}");
    assert!(r["content"][0]["text"].as_str().unwrap().contains("invalid arguments"), "{r}");
    let r = mcp.request("tools/call", json!({ "name": "launch_missiles", "arguments": {} }));
    assert!(r["error"].is_object(), "{r}");

    // Every call is audited with the mcp session's id; closing stdin ends the session.
    drop(mcp.stdin.take());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = mcp.child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < HANG, "paddock mcp did not exit when stdin closed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let log = mcp.audit();
    let start = log.iter().find(|r| r["event"] == "session.start").expect("session.start");
    assert_eq!(start["mode"], "mcp", "{start}");
    let session = start["session"].clone();
    let calls = log.iter().filter(|r| r["event"] == "call.start").collect::<Vec<_>>();
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert!(calls.iter().all(|r| r["session"] == session));
    assert_eq!(log.last().unwrap()["event"], "session.end");
}

#[test]
fn sigterm_ends_an_mcp_session() {
    let mut mcp = Mcp::start(None);
    mcp.initialize();
    let r = mcp.call("command", json!({ "argv": ["true"] }));
    assert_eq!(outcome(&r)["exit_code"], 0);
    assert!(Command::new("kill").arg("-TERM").arg(mcp.child.id().to_string()).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = mcp.child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < HANG, "paddock mcp did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(mcp.audit().last().unwrap()["event"], "session.end");
}

impl Mcp {
    /// Sends `bytes` as they are, then a newline.
    fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(bytes).unwrap();
        w.write_all(b"\n").unwrap();
        w.flush().unwrap();
    }

    /// The next frame whose `id` is `id` (`null` only when the frame has an `"id": null`).
    fn reply_to(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no reply with id {id}"));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a frame ({e}): {line:?}"));
            if v.get("id") == Some(id) {
                return v;
            }
        }
    }

    /// Closes stdin and waits for the exit code.
    fn close(&mut self) -> Option<i32> {
        drop(self.stdin.take());
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(t.elapsed() < HANG, "paddock mcp did not exit when stdin closed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A message longer than 16 MiB, and a line that is not UTF-8, are answered with a JSON-RPC
/// error (with the id when it comes early enough to read, else `"id": null`), and the
/// session goes on (rtC M8: no reply at all, so the client waited forever).
#[test]
fn an_oversized_or_invalid_utf8_message_is_answered() {
    let mut mcp = Mcp::start(None);
    mcp.initialize();
    let big = "x".repeat(17 << 20);
    let id_first = format!(
        r#"{{"jsonrpc":"2.0","id":"big-1","method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"big","content":"{big}"}}}}}}"#
    );
    mcp.send_raw(id_first.as_bytes());
    let r = mcp.reply_to(&json!("big-1"));
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let says = r["error"]["message"].as_str().unwrap();
    assert!(says.contains("16 MiB") && says.contains("16777216 bytes"), "{r}");
    let id_last = format!(
        r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"big","content":"{big}"}}}},"id":2}}"#
    );
    mcp.send_raw(id_last.as_bytes());
    let r = mcp.reply_to(&Value::Null);
    assert!(r["error"]["message"].as_str().unwrap().contains("16 MiB"), "{r}");
    mcp.send_raw(b"\xff\xfe");
    let r = mcp.reply_to(&Value::Null);
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("not UTF-8"), "{r}");
    // The session goes on, and nothing was written.
    let r = mcp.request("ping", json!({}));
    assert!(r["result"].is_object(), "{r}");
    assert!(!mcp.dir.path().join("ws/big").exists());
    assert_eq!(mcp.close(), Some(0));
}

/// Requests that are not understood get the JSON-RPC error that says why: an unknown method
/// -32601 naming it, `tools/call` without params -32602, a line that is not JSON -32700 with
/// `"id": null`; and stderr holds no Rust debug notation (rtC L8).
#[test]
fn requests_not_understood_get_errors_that_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut mcp = Mcp::start_with(None, Stdio::from(std::fs::File::create(&log).unwrap()));
    mcp.initialize();
    let r = mcp.request("nope", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().starts_with("unknown method `nope`"), "{r}");
    mcp.send(&json!({ "jsonrpc": "2.0", "id": "no-params", "method": "tools/call" }));
    let r = mcp.reply_to(&json!("no-params"));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("invalid params for `tools/call`"), "{r}");
    mcp.send_raw(b"{this is not json");
    let r = mcp.reply_to(&Value::Null);
    assert_eq!(r["error"]["code"], -32700, "{r}");
    let r = mcp.request("tools/call", json!({ "name": "launch_missiles", "arguments": {} }));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(mcp.close(), Some(0));
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!err.contains("ErrorData {") && !err.contains("ErrorCode("), "{err}");
}
