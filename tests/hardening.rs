//! End-to-end: the hardening of issues 9 and 10. Each scenario runs the built binary as
//! root (`as_root::*`) and as uid 65534 (`as_nobody::*`), in its own fixture.
//!
//! - A revocation list that cannot be read or parsed denies every call in every process
//!   (`check`, `run`, `serve`, `mcp`) until it is fixed, then is picked up again.
//! - `[env] pass` globs never pass a credential-looking variable; `set` expands the path
//!   variables.
//! - paddock's own state (`$STATE`, an `--audit` file, a `--token-file`, a serve socket) is
//!   never in a view, even when the workspace contains it.
//! - The system's secrets (`/etc/shadow`, ...) are denied by the default policy.
//! - `rule:` revocations of filesystem grants leave every later view, for `run` and `serve`.
//!
//! Tests dial only loopback.

#[macro_use]
mod common;

use common::*;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

both_users!(
    corrupt_revocation_list_stops_check_and_run,
    corrupt_revocation_list_denies_every_serve_call_until_fixed,
    corrupt_revocation_list_denies_every_mcp_call_until_fixed,
    serve_started_on_a_corrupt_list_warns_and_denies_until_fixed,
    credential_variables_never_pass_through_preset_globs,
    exact_pass_passes_and_lint_warns_and_set_expands,
    state_in_the_workspace_is_out_of_the_view,
    audit_file_in_the_workspace_is_out_of_the_view,
    serve_token_and_socket_are_out_of_the_view,
    run_from_home_warns_and_protects_shell_rc_files,
    system_secrets_are_denied,
    rule_revocation_of_a_read_grant_leaves_the_run_view,
    rule_revocation_of_a_read_grant_leaves_the_serve_view,
    revoking_a_restriction_is_refused,
    revoking_a_rule_no_policy_has_is_refused,
    a_nested_grant_a_call_re_points_is_refused,
);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `paddock ARGS...` as the fixture's user, in the workspace, with `env` on top.
fn paddock(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
    argv.extend(args.iter().map(OsString::from));
    f.launch(&argv, env, None)
}

fn state_dir(f: &Fixture) -> PathBuf {
    f.root.join("state")
}

/// Replaces the revocation list the way `paddock revoke` does (a rename), as root or the
/// user alike (the test process is root or owns the file's directory).
fn write_list(f: &Fixture, text: &str) {
    let tmp = state_dir(f).join("revocations.toml.test");
    std::fs::write(&tmp, text).unwrap();
    chown(&tmp, f.user.uid());
    std::fs::rename(&tmp, state_dir(f).join("revocations.toml")).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `paddock serve` of the fixture's user on 127.0.0.1 (port 0) or a unix socket. Killed
/// by pid on drop.
struct Serve {
    child: Child,
    addr: String,
    socket: Option<PathBuf>,
    token_file: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// `policy` None: the embedded default. `token_file` and `socket` as given.
    fn start(f: &Fixture, policy: Option<&Path>, token_file: &Path, socket: Option<&Path>) -> Serve {
        let mut argv = f.user.prefix();
        argv.extend([f.bin.clone().into(), "serve".into(), "--workspace".into(), f.ws.clone().into()]);
        if let Some(p) = policy {
            argv.extend(["--policy".into(), p.into()]);
        }
        argv.extend(["--token-file".into(), token_file.into()]);
        match socket {
            Some(p) => argv.extend(["--socket".into(), p.into()]),
            None => argv.extend(["--listen".into(), "127.0.0.1:0".into()]),
        }
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &f.home)
            .env("PADDOCK_STATE_DIR", state_dir(f))
            .current_dir(&f.ws)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paddock serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("paddock: listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
                let mut s = log.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = rx.recv_timeout(HANG).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("paddock serve did not start:\n{}", stderr.lock().unwrap())
        });
        Serve { child, addr, socket: socket.map(Path::to_path_buf), token_file: token_file.to_path_buf(), stderr }
    }

    /// POSTs `body` to `path`; the JSON reply (status 200 required).
    fn post(&self, path: &str, body: &Value) -> Value {
        let token = read(&self.token_file).trim().to_string();
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut buf = Vec::new();
        match &self.socket {
            Some(p) => {
                let mut c = std::os::unix::net::UnixStream::connect(p).expect("connect the socket");
                c.set_read_timeout(Some(HANG)).unwrap();
                c.write_all(req.as_bytes()).unwrap();
                c.read_to_end(&mut buf).unwrap();
            }
            None => {
                let mut c = std::net::TcpStream::connect(&self.addr).expect("connect");
                c.set_read_timeout(Some(HANG)).unwrap();
                c.write_all(req.as_bytes()).unwrap();
                c.read_to_end(&mut buf).unwrap();
            }
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}\n{}", self.stderr.lock().unwrap());
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    fn call(&self, call: Value) -> Value {
        self.post("/v1/calls", &call)
    }

    fn check(&self, call: Value) -> Value {
        self.post("/v1/check", &call)
    }
}

fn command(argv: &[&str]) -> Value {
    json!({ "tool": "command", "argv": argv })
}

/// A `paddock mcp` of the fixture's user, initialised. Killed by pid on drop.
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
    fn start(f: &Fixture, policy: &Path) -> Mcp {
        let mut argv = f.user.prefix();
        argv.extend([
            f.bin.clone().into(),
            "mcp".into(),
            "--workspace".into(),
            f.ws.clone().into(),
            "--policy".into(),
            policy.into(),
        ]);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &f.home)
            .env("PADDOCK_STATE_DIR", state_dir(f))
            .current_dir(&f.ws)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn paddock mcp");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut m = Mcp { child, stdin, lines, next: 1 };
        m.request("initialize", json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } }));
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
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no response to {method}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }

    /// A tool call's outcome JSON.
    fn tool(&mut self, name: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({ "name": name, "arguments": args }));
        let text = r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

const CORRUPT: &str = "this is [[ not toml\n";

fn assert_revocations_deny(v: &Value, what: &str) {
    assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("deny"), Some("revocations")), "{what}: {v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("revocations.toml"), "{what}: {v}");
}

// ---------------------------------------------------------------------------------------
// A: a corrupt revocation list fails closed everywhere
// ---------------------------------------------------------------------------------------

fn corrupt_revocation_list_stops_check_and_run(u: User) {
    let f = Fixture::new(u);
    let pol = f.policy(&Pol::default());
    let p = s(&pol);
    assert_eq!(paddock(&f, &["revoke", "command:ls"], &[]).code(), 0);
    let o = paddock(&f, &["check", "--policy", p, "--", "ls"], &[]);
    assert_eq!(o.code(), 77, "revoked: {o}");
    write_list(&f, CORRUPT);
    for args in [&["check", "--policy", p, "--", "ls"][..], &["check", "--policy", p, "--", "true"]] {
        let o = paddock(&f, args, &[]);
        assert_eq!(o.code(), 78, "{args:?}: {o}");
        assert!(o.err().contains("revocation"), "{o}");
    }
    let o = f.run(&Pol::default(), &["sh", "-c", "echo RAN"], None);
    assert_eq!(o.code(), 78, "{o}");
    assert!(!o.out().contains("RAN") && o.err().contains("revocations.toml"), "{o}");
    // fixed: picked up again
    write_list(&f, "");
    assert_eq!(paddock(&f, &["check", "--policy", p, "--", "ls"], &[]).code(), 0);
    let o = f.run(&Pol::default(), &["sh", "-c", "echo RAN"], None);
    assert_eq!((o.code(), o.out().as_str()), (0, "RAN\n"), "{o}");
}

fn corrupt_revocation_list_denies_every_serve_call_until_fixed(u: User) {
    let f = Fixture::new(u);
    let pol = f.policy(&Pol::default());
    let srv = Serve::start(&f, Some(&pol), &state_dir(&f).join("token"), None);
    let target = f.ws.join("out.txt");
    let calls = || {
        vec![
            command(&["sh", "-c", "echo RAN"]),
            json!({ "tool": "read_file", "path": "/etc/hostname" }),
            json!({ "tool": "write_file", "path": s(&target), "content": "WROTE" }),
        ]
    };
    // control: everything runs
    assert_eq!(srv.call(calls()[0].clone())["stdout"], "RAN\n");
    assert_eq!(paddock(&f, &["revoke", "command:ls"], &[]).code(), 0);
    assert_eq!(srv.check(command(&["ls"]))["decision"], "deny");
    write_list(&f, CORRUPT);
    for _ in 0..2 {
        assert_revocations_deny(&srv.check(command(&["ls"])), "check ls");
        for c in calls() {
            let v = srv.call(c.clone());
            assert_revocations_deny(&v, &c.to_string());
            assert!(v["exit_code"].is_null() && !v["stdout"].as_str().unwrap_or("").contains("RAN"), "{v}");
        }
    }
    assert!(!target.exists(), "a write ran under a corrupt list");
    // fixed: picked up again, the revocation of ls in force
    write_list(&f, "[[revoked]]\nselector = \"command:ls\"\nts = \"2026-03-01T12:00:00.000Z\"\n");
    assert!(srv.check(command(&["ls"]))["reason"].as_str().unwrap().contains("revoked"));
    assert_eq!(srv.call(calls()[0].clone())["stdout"], "RAN\n");
    let host = read(Path::new("/etc/hostname"));
    assert_eq!(srv.call(calls()[1].clone())["content"].as_str(), Some(host.as_str()));
    assert_eq!(srv.call(calls()[2].clone())["decision"], "allow");
    assert_eq!(read(&target), "WROTE");
}

fn corrupt_revocation_list_denies_every_mcp_call_until_fixed(u: User) {
    let f = Fixture::new(u);
    let pol = f.policy(&Pol::default());
    let mut m = Mcp::start(&f, &pol);
    assert_eq!(m.tool("command", json!({ "argv": ["sh", "-c", "echo RAN"] }))["stdout"], "RAN\n");
    write_list(&f, CORRUPT);
    for _ in 0..2 {
        assert_revocations_deny(&m.tool("check", json!({ "tool": "command", "argv": ["ls"] })), "check");
        assert_revocations_deny(&m.tool("command", json!({ "argv": ["sh", "-c", "echo RAN"] })), "command");
        assert_revocations_deny(&m.tool("read_file", json!({ "path": "/etc/hostname" })), "read_file");
        let target = f.ws.join("m.txt");
        assert_revocations_deny(&m.tool("write_file", json!({ "path": s(&target), "content": "x" })), "write_file");
        assert!(!target.exists());
    }
    write_list(&f, "");
    assert_eq!(m.tool("command", json!({ "argv": ["sh", "-c", "echo RAN"] }))["stdout"], "RAN\n");
}

fn serve_started_on_a_corrupt_list_warns_and_denies_until_fixed(u: User) {
    let f = Fixture::new(u);
    let pol = f.policy(&Pol::default());
    write_list(&f, CORRUPT);
    let srv = Serve::start(&f, Some(&pol), &state_dir(&f).join("token"), None);
    let echo = command(&["sh", "-c", "echo RAN"]);
    assert_revocations_deny(&srv.call(echo.clone()), "command");
    let warned = srv.stderr.lock().unwrap().contains("paddock: warning: the revocation list");
    assert!(warned, "{}", srv.stderr.lock().unwrap());
    write_list(&f, "");
    assert_eq!(srv.call(echo)["stdout"], "RAN\n");
}

// ---------------------------------------------------------------------------------------
// B: [env]
// ---------------------------------------------------------------------------------------

/// The presets, copied where the user under test can read them.
fn presets(f: &Fixture) -> PathBuf {
    let dir = f.root.join("presets");
    std::fs::create_dir_all(&dir).unwrap();
    chmod(&dir, 0o755);
    for name in ["default.toml", "ci.toml", "coding-agent.toml"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies").join(name);
        write(&dir.join(name), &read(&src), 0o644);
    }
    dir
}

const CREDENTIALS: &[(&str, &str)] = &[
    ("CARGO_REGISTRY_TOKEN", "cred-cargo-token"),
    ("npm_config__authToken", "cred-npm-auth"),
    ("NPM_TOKEN", "cred-npm-token"),
    ("GH_TOKEN", "cred-gh-token"),
    ("AWS_SECRET_ACCESS_KEY", "cred-aws-secret"),
    ("CARGO_SIGNING_KEY", "cred-signing-key"),
];

fn credential_variables_never_pass_through_preset_globs(u: User) {
    let f = Fixture::new(u);
    let dir = presets(&f);
    let mut env: Vec<(&str, &str)> = CREDENTIALS.to_vec();
    env.extend([("CARGO_HOME", "/cargo-home-visible"), ("npm_config_registry", "http://registry.test/visible")]);
    for (preset, visible) in [
        ("ci.toml", &["CARGO_HOME=/cargo-home-visible"][..]),
        ("coding-agent.toml", &["CARGO_HOME=/cargo-home-visible", "npm_config_registry=http://registry.test/visible"]),
    ] {
        let pol = dir.join(preset);
        let o = paddock(&f, &["run", "--policy", s(&pol), "--workspace", s(&f.ws), "--", "env"], &env);
        assert_eq!(o.code(), 0, "{preset}: {o}");
        for (name, value) in CREDENTIALS {
            assert!(!o.out().contains(value), "{preset}: {name} reached the child\n{o}");
        }
        for v in visible {
            assert!(o.out().lines().any(|l| l == *v), "{preset}: {v} is missing\n{o}");
        }
    }
    // control: the caller does hold them
    let o = f.launch(&[OsString::from("env")], &env, None);
    assert!(CREDENTIALS.iter().all(|(_, v)| o.out().contains(v)), "{o}");
}

fn exact_pass_passes_and_lint_warns_and_set_expands(u: User) {
    let f = Fixture::new(u);
    let pol = f.root.join("env.toml");
    write(
        &pol,
        "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\", \"/etc\"]\nwrite = [\"${WORKSPACE}\"]\n[env]\npass = [\"PATH\", \"GH_TOKEN\", \"CARGO_*\", \"*_TOKEN\"]\nset = { HOME = \"${WORKSPACE}\", CACHE = \"${TMPDIR}/cache\" }\n",
        0o644,
    );
    let env =
        [("GH_TOKEN", "cred-gh-exact"), ("NPM_TOKEN", "cred-npm-glob"), ("CARGO_REGISTRY_TOKEN", "cred-cargo-glob")];
    let o = paddock(&f, &["run", "--policy", s(&pol), "--", "env"], &env);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().lines().any(|l| l == "GH_TOKEN=cred-gh-exact"), "{o}");
    assert!(!o.out().contains("cred-npm-glob") && !o.out().contains("cred-cargo-glob"), "{o}");
    assert!(o.out().lines().any(|l| l == format!("HOME={}", f.ws.display())), "{o}");
    assert!(o.out().lines().any(|l| l == "CACHE=/tmp/cache"), "{o}");
    let o = paddock(&f, &["policy", "lint", s(&pol)], &[]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.err().contains("env.toml:6:17: warning: `GH_TOKEN` looks like a credential"), "{o}");
    assert!(o.err().contains("warning: `*_TOKEN` matches only credential-looking names"), "{o}");
    // any other ${...} in a value is a located error
    write(&pol, "version = 1\n[env]\nset = { A = \"${GITHUB_TOKEN}\" }\n", 0o644);
    let o = paddock(&f, &["policy", "lint", s(&pol)], &[]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("env.toml:3:13: error: unknown variable `${GITHUB_TOKEN}`"), "{o}");
    assert!(o.err().contains("hint:"), "{o}");
}

// ---------------------------------------------------------------------------------------
// C: paddock's own state is never in a view
// ---------------------------------------------------------------------------------------

/// Reads and then writes each of `files` (relative to the workspace) from inside; prints
/// `READ name` / `WROTE name` for each that worked.
const TAMPER: &str = r#"for f in "$@"; do cat "$f" >/dev/null 2>&1 && echo "READ $f"; cat "$f" 2>/dev/null; done
for f in "$@"; do (: > "$f") 2>/dev/null && echo "WROTE $f"; done; true"#;

fn tamper(files: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["sh".into(), "-c".into(), TAMPER.into(), "sh".into()];
    v.extend(files.iter().map(|s| s.to_string()));
    v
}

fn state_in_the_workspace_is_out_of_the_view(u: User) {
    let f = Fixture::new(u);
    // Run from a directory that holds the state (as `run` from ~ holds ~/.local/state).
    let state = f.ws.join(".local-state");
    std::fs::create_dir(&state).unwrap();
    chown(&state, u.uid());
    chmod(&state, 0o700);
    let env = [("PADDOCK_STATE_DIR", s(&state))];
    assert_eq!(paddock(&f, &["revoke", "command:ls"], &env).code(), 0);
    let token = format!("TOKEN-{}", unique());
    write(&state.join("token"), &token, 0o600);
    chown(&state.join("token"), u.uid());
    let files = [".local-state/audit.jsonl", ".local-state/revocations.toml", ".local-state/token"];
    // control: the user reads and could write them on the host
    let o = f.host(&["sh", "-c", "cat \"$@\" && test -w .local-state/audit.jsonl", "sh", files[0], files[1], files[2]]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains(&token) && o.out().contains("command:ls"), "{o}");

    // the embedded default, workspace = the current directory
    let mut argv: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--".into()];
    argv.extend(tamper(&files).into_iter().map(OsString::from));
    let o = f.launch(&argv, &env, None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.out().contains("READ") && !o.out().contains("WROTE"), "the state was reachable\n{o}");
    o.assert_absent(&token, "the serve token");
    assert!(!o.out().contains("command:ls"), "{o}");
    // nothing was cut: the revocation holds, the token is whole, the chain verifies
    assert_eq!(read(&state.join("token")), token);
    assert!(read(&state.join("revocations.toml")).contains("command:ls"));
    let o = paddock(&f, &["check", "--", "ls"], &env);
    assert_eq!(o.code(), 77, "{o}");
    let o = paddock(&f, &["audit", "verify"], &env);
    assert_eq!(o.code(), 0, "{o}");
    assert!(read(&state.join("audit.jsonl")).lines().count() >= 3, "revoke + call.start + call.end");
    // and the decisions say why
    for flag in ["--read", "--write"] {
        let o = paddock(&f, &["check", "--json", flag, files[2]], &env);
        assert_eq!(o.code(), 77, "{o}");
        assert!(o.out().contains("\"rule\":\"paddock.state\""), "{o}");
    }
}

fn audit_file_in_the_workspace_is_out_of_the_view(u: User) {
    let f = Fixture::new(u);
    let log = f.ws.join("my-audit.jsonl");
    let mut argv = f.paddock_argv(&Pol::default());
    argv.insert(2, "--audit".into());
    argv.insert(3, log.clone().into());
    assert_eq!(f.launch(&[argv.clone(), vec!["true".into()]].concat(), &[], None).code(), 0);
    let before = read(&log);
    assert!(before.contains("call.start"), "{before}");
    argv.extend(tamper(&["my-audit.jsonl"]).into_iter().map(OsString::from));
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.out().contains("READ") && !o.out().contains("WROTE") && !o.out().contains("call.start"), "{o}");
    let after = read(&log);
    // One call.start and one call.end more (and the exec records of its tree).
    let calls = |t: &str| t.lines().filter(|l| !l.contains("\"event\":\"exec\"")).count();
    assert!(after.starts_with(&before) && calls(&after) == calls(&before) + 2, "{after}");
    let o = paddock(&f, &["audit", "verify", "--audit", s(&log)], &[]);
    assert_eq!(o.code(), 0, "{o}");
}

fn serve_token_and_socket_are_out_of_the_view(u: User) {
    let f = Fixture::new(u);
    let pol = f.policy(&Pol::default());
    let (token_file, socket) = (f.ws.join("api.token"), f.ws.join("api.sock"));
    let srv = Serve::start(&f, Some(&pol), &token_file, Some(&socket));
    let token = read(&token_file).trim().to_string();
    assert!(token.len() >= 32);
    // the serve's own requests are the control: the host reaches both
    let v = srv.call(json!({ "tool": "command", "argv": tamper(&["api.token", "api.sock"]) }));
    assert_eq!(v["exit_code"], 0, "{v}");
    let out = v["stdout"].as_str().unwrap();
    assert!(!out.contains("READ") && !out.contains("WROTE") && !out.contains(&token), "{v}");
    // connecting to the socket from inside fails
    let v = srv.call(command(&py(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('CONNECTED')\nexcept OSError as e: print('refused', e)",
        &[s(&socket)],
    )));
    assert!(v["stdout"].as_str().unwrap().contains("refused"), "{v}");
    for call in [
        json!({ "tool": "read_file", "path": s(&token_file) }),
        json!({ "tool": "write_file", "path": s(&token_file), "content": "x" }),
    ] {
        let v = srv.call(call);
        assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("deny"), Some("paddock.state")), "{v}");
    }
    assert_eq!(read(&token_file).trim(), token);
}

fn run_from_home_warns_and_protects_shell_rc_files(u: User) {
    let f = Fixture::new(u);
    let rc = f.ws.join(".bashrc");
    write(&rc, "# rc\n", 0o644);
    chown(&rc, u.uid());
    let home = [("HOME", s(&f.ws))];
    let o = paddock(&f, &["run", "--", "true"], &home);
    assert_eq!(o.code(), 0, "{o}");
    let warnings = o.err().lines().filter(|l| l.contains("warning: the workspace is")).count();
    assert_eq!(warnings, 1, "one warning line\n{o}");
    assert!(o.err().contains("the whole home"), "{o}");
    // not from a project directory
    let o = paddock(&f, &["run", "--", "true"], &[]);
    assert!(!o.err().contains("warning"), "{o}");
    // the default policy keeps the shell's start-up files read-only
    for rcfile in [".bashrc", ".profile", ".zshrc", ".config/fish/config.fish"] {
        let o = paddock(&f, &["check", "--json", "--write", rcfile], &home);
        assert_eq!(o.code(), 77, "{rcfile}: {o}");
        assert!(o.out().contains("filesystem.protect["), "{o}");
    }
}

// ---------------------------------------------------------------------------------------
// D: system secrets
// ---------------------------------------------------------------------------------------

fn system_secrets_are_denied(u: User) {
    let f = Fixture::new(u);
    let o = paddock(&f, &["check", "--json", "--read", "/etc/shadow"], &[]);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.out().contains("filesystem.deny["), "{o}");
    assert!(paddock(&f, &["policy", "show"], &[]).out().contains("/etc/shadow"), "visible in policy show");
    if u == User::Root {
        // control: root reads it on the host
        let host = f.host(&["head", "-c", "40", "/etc/shadow"]);
        assert_eq!(host.code(), 0, "{host}");
        assert!(!host.out().is_empty());
        let first = host.out().lines().next().unwrap_or_default().to_string();
        let o = paddock(&f, &["run", "--", "head", "-c", "40", "/etc/shadow"], &[]);
        assert!(!o.out().contains(&first) && o.out().trim().is_empty(), "/etc/shadow was read\n{o}");
    }
    let srv = Serve::start(&f, None, &state_dir(&f).join("token"), None);
    let v = srv.call(json!({ "tool": "read_file", "path": "/etc/shadow" }));
    assert_eq!(v["decision"], "deny", "{v}");
    assert!(v["rule"].as_str().unwrap().starts_with("filesystem.deny["), "{v}");
    assert!(v["content"].is_null(), "{v}");
}

// ---------------------------------------------------------------------------------------
// E: rule: revocations of filesystem grants leave the view
// ---------------------------------------------------------------------------------------

/// The rule id that grants reading `path` under `pol`.
fn read_rule(f: &Fixture, pol: &Path, path: &Path) -> String {
    let o = paddock(f, &["check", "--policy", s(pol), "--json", "--read", s(path)], &[]);
    assert_eq!(o.code(), 0, "{o}");
    let v: Value = serde_json::from_str(o.out().trim()).unwrap();
    v["rule"].as_str().unwrap().to_string()
}

fn rule_revocation_of_a_read_grant_leaves_the_run_view(u: User) {
    let f = Fixture::new(u);
    let shelf = s(&f.shelf).to_string();
    let extra = Pol { read: &[&shelf], ..Pol::default() };
    let pol = f.policy(&extra);
    let rule = read_rule(&f, &pol, &f.shelf_file);
    let run = |f: &Fixture| {
        let mut argv = f.paddock_argv(&extra);
        argv[3] = pol.clone().into();
        argv.extend(["cat".into(), f.shelf_file.clone().into()]);
        f.launch(&argv, &[], None)
    };
    let o = run(&f);
    assert_eq!((o.code(), o.out()), (0, f.shelf_text.clone()), "control: granted, it reads\n{o}");
    assert_eq!(paddock(&f, &["revoke", &format!("rule:{rule}")], &[]).code(), 0);
    let o = paddock(&f, &["check", "--policy", s(&pol), "--read", s(&f.shelf_file)], &[]);
    assert!(o.code() == 77 && o.out().contains("revoked"), "{o}");
    let o = run(&f);
    assert_ne!(o.code(), 0, "{o}");
    o.assert_absent(&f.shelf_text, "a file under a revoked read grant");
}

fn rule_revocation_of_a_read_grant_leaves_the_serve_view(u: User) {
    let f = Fixture::new(u);
    let shelf = s(&f.shelf).to_string();
    let pol = f.policy(&Pol { read: &[&shelf], ..Pol::default() });
    let rule = read_rule(&f, &pol, &f.shelf_file);
    let srv = Serve::start(&f, Some(&pol), &state_dir(&f).join("token"), None);
    let cat = command(&["cat", s(&f.shelf_file)]);
    let v = srv.call(cat.clone());
    assert_eq!(v["stdout"].as_str(), Some(f.shelf_text.as_str()), "control: {v}");
    assert_eq!(paddock(&f, &["revoke", &format!("rule:{rule}")], &[]).code(), 0);
    let v = srv.call(cat.clone());
    assert_eq!(v["decision"], "allow", "{v}");
    assert_ne!(v["exit_code"], 0, "{v}");
    assert!(!v["stdout"].as_str().unwrap().contains(&f.shelf_text), "the revoked grant is still in the view: {v}");
    let v = srv.call(json!({ "tool": "read_file", "path": s(&f.shelf_file) }));
    assert_eq!(v["decision"], "deny", "{v}");
    // unrevoked: back in the view
    assert_eq!(paddock(&f, &["unrevoke", &format!("rule:{rule}")], &[]).code(), 0);
    assert_eq!(srv.call(cat)["stdout"].as_str(), Some(f.shelf_text.as_str()));
}

fn revoking_a_restriction_is_refused(u: User) {
    let f = Fixture::new(u);
    for rule in ["rule:filesystem.deny[0]", "rule:filesystem.protect[1]", "rule:commands.deny[0]"] {
        let o = paddock(&f, &["revoke", rule], &[]);
        assert_eq!(o.code(), 64, "{o}");
        assert!(o.err().contains("names a restriction") && o.err().contains("hint:"), "{o}");
    }
    let o = paddock(&f, &["revoke", "--list"], &[]);
    assert!(o.out().contains("no revocations in force"), "{o}");
    // control: a grant of the same kind is revoked
    assert_eq!(paddock(&f, &["revoke", "rule:filesystem.read[0]"], &[]).code(), 0);
}

/// A grant nested in a write path cannot be re-pointed by a call: one call swaps the
/// granted directory for a symlink to `outside` (its parent renamed away, a link in its
/// place), and the next load refuses the grant (78, naming the link) rather than grant
/// `outside` (found by an attack: the next call read and wrote the link's target).
/// Control: before the swap the same policy runs.
fn a_nested_grant_a_call_re_points_is_refused(u: User) {
    let f = Fixture::new(u);
    std::fs::create_dir_all(f.ws.join("out/build")).unwrap();
    for p in ["out", "out/build"] {
        chown(&f.ws.join(p), u.uid());
    }
    let pol = Pol { tail: "", ..Pol::default() };
    let policy = f.policy(&pol);
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("write = [\"${WORKSPACE}\"]", "write = [\"${WORKSPACE}\", \"${WORKSPACE}/out/build\"]");
    std::fs::write(&policy, text).unwrap();
    let run = |script: &str| {
        let mut argv = f.paddock_argv(&pol);
        argv[3] = policy.clone().into();
        argv.extend(["sh", "-c", script].map(OsString::from));
        f.launch(&argv, &[], None)
    };
    let o = run("echo ok > out/build/f && cat out/build/f");
    assert_eq!((o.code(), o.out().as_str()), (0, "ok\n"), "control: {o}");
    let swap = format!("mv out out2 && mkdir out && ln -s {} out/build", f.outside.display());
    let o = run(&swap);
    assert_eq!(o.code(), 0, "{o}");
    let o = run(&format!("cat out/build/secret.txt; echo x > {}/planted", f.outside.display()));
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("reached through the symlink"), "{o}");
    assert!(!o.out().contains(&f.secret) && !f.outside.join("planted").exists(), "{o}");
}

/// A `rule:` selector no policy's rule can have is refused (64), not said to be in force
/// while it can never match (found by a test: a section misspelt, a negative index, one
/// past any number). Control: the same forms spelt right are taken.
fn revoking_a_rule_no_policy_has_is_refused(u: User) {
    let f = Fixture::new(u);
    for rule in [
        "rule:command.allow[0]",
        "rule:network.alow[0]",
        "rule:nope[1]",
        "rule:commands.allow[-1]",
        "rule:commands.allow[99999999999999999999]",
    ] {
        let o = paddock(&f, &["revoke", rule], &[]);
        assert_eq!(o.code(), 64, "{rule}: {o}");
        assert!(o.err().contains("bad selector") && o.err().contains("commands.allow[N]"), "{o}");
        assert!(!o.out().contains("revoked"), "{o}");
    }
    let o = paddock(&f, &["revoke", "--list"], &[]);
    assert!(o.out().contains("no revocations in force"), "{o}");
    for rule in ["rule:commands.allow[0]", "rule:network.allow[1]", "rule:network.http[0].allow[2]", "rule:secrets.gh"]
    {
        assert_eq!(paddock(&f, &["revoke", rule], &[]).code(), 0, "{rule}");
    }
}
