//! The real agent CLIs (Claude Code, Codex) under their presets, each pointed at a fake of
//! its model API on loopback (TLS from a test CA given as `upstream_ca`, the API's real
//! host name pinned to 127.0.0.1): the fake receives the real key, the agent's output is
//! the fake's answer, the command the fake makes the agent run sees only the placeholder,
//! and the audit log has the agent, its API requests and its commands. Claude Code's TUI
//! starts under a real pty. The CLIs come from the npm registry (`.ci/run` installs them);
//! a missing one fails the test.

#[macro_use]
mod common;
use common::tls::{Reply, Seen, Upstream};
use common::*;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

both_users!(
    claude_runs_a_command_with_only_the_placeholder,
    codex_runs_a_command_with_only_the_placeholder,
    claude_s_tui_starts_and_exits
);

/// How long one run of a real agent may take (its own start, under load, and Codex's
/// retries of a WebSocket before it falls back to HTTPS, ~6 s) before the test calls it hung.
const AGENT_HANG: Duration = Duration::from_secs(240);

/// Where a developer's machine may keep the CLIs when they are not on PATH (a local
/// `npm install`): `PADDOCK_TEST_AGENTS_BIN`, or this.
const LOCAL_BIN: &str = "/work/agents/node_modules/.bin";

/// The CLI `name`: on PATH or in `LOCAL_BIN`, resolved to its file; fails the test when
/// absent. Returns the program and the directories the sandbox must read to run it.
fn cli(name: &str) -> (PathBuf, Vec<PathBuf>) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let local = std::env::var_os("PADDOCK_TEST_AGENTS_BIN").unwrap_or_else(|| LOCAL_BIN.into());
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from(local)])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the real `{name}` CLI is not installed (not on PATH, not in {LOCAL_BIN} or \
                 $PADDOCK_TEST_AGENTS_BIN): run .ci/run's install step \
                 (`npm install -g @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0`)"
            )
        });
    let real = std::fs::canonicalize(&found).unwrap();
    // The npm package it belongs to: its whole node_modules tree (a launcher script
    // starts a binary from a sibling package).
    let reads = real.ancestors().find(|a| a.file_name().is_some_and(|n| n == "node_modules")).into_iter();
    (found, reads.map(Path::to_path_buf).collect())
}

/// The hosts the coding-agent preset allows that an agent dials on its own (GitHub for
/// plugins, registries): denied in the tests' policies (deny beats allow), so that nothing
/// leaves loopback even where DNS works; their refusals are on the record.
const REAL_HOSTS: &str = "\"github.com\", \"*.github.com\", \"*.githubusercontent.com\", \"crates.io\", \
    \"*.crates.io\", \"static.rust-lang.org\", \"registry.npmjs.org\", \"registry.yarnpkg.com\", \"pypi.org\", \
    \"files.pythonhosted.org\", \"chatgpt.com\", \"*.chatgpt.com\", \"*.claude.ai\", \"claude.ai\", \
    \"platform.claude.com\"";

/// A policy file extending `preset` that allows `host` on the fake's port, pins it to
/// `ip` (the fake's address), trusts the fake's CA, lets the agent read its install
/// (`reads`) and denies the other real hosts.
fn local_policy(f: &Fixture, preset: &str, host: &str, up: &Upstream, ip: &str, reads: &[PathBuf]) -> PathBuf {
    let p = f.root.join(format!("{preset}-local.toml"));
    let reads = reads.iter().map(|r| format!("{:?}", r.to_str().unwrap())).collect::<Vec<_>>().join(", ");
    write(
        &p,
        &format!(
            "version = 1\nextends = [{preset:?}]\n\n[filesystem]\nread = [{reads}]\n\n[network]\n\
             allow = [\"{host}:{port}\"]\ndeny = [{REAL_HOSTS}]\nallow_private = [\"127.0.0.0/8\"]\nupstream_ca = [{ca:?}]\n\n\
             [network.hosts]\n{host:?} = {ip:?}\n",
            port = up.port,
            ca = up.ca_file,
        ),
        0o644,
    );
    p
}

fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A fake of `host` on 443 of a loopback address of its own (the API's real URL, for an
/// agent that has no base-URL setting): 127.0.0.N, the first N from 2 free to bind.
fn on_443(f: &Fixture, host: &str, handler: common::tls::Handler) -> (Upstream, String) {
    for n in 2..255 {
        let ip = format!("127.0.0.{n}");
        if let Ok(l) = TcpListener::bind(format!("{ip}:443")) {
            return (Upstream::serve(&f.root, &[host], l, handler), ip);
        }
    }
    panic!("no loopback address with 443 free");
}

/// The fixture's audit log, one JSON value per record.
fn audit(f: &Fixture) -> Vec<Value> {
    read(&f.root.join("state/audit.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

/// A terminal's output as text: each escape sequence (CSI, OSC, or a single character
/// after ESC) a space, runs of spaces one.
fn plain(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            if !(c == ' ' && out.ends_with(' ')) {
                out.push(c);
            }
            continue;
        }
        match chars.next() {
            Some('[') => while chars.next().is_some_and(|c| !('\x40'..='\x7e').contains(&c)) {},
            Some(']') => while chars.next().is_some_and(|c| c != '\x07' && c != '\x1b') {},
            _ => {}
        }
        if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out
}

fn body_json(s: &Seen) -> Value {
    serde_json::from_slice(&s.body).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------
// Claude Code and a fake Messages API
// ---------------------------------------------------------------------------------------

const CLAUDE_ANSWER: &str = "The fake model says: done.";

/// Server-sent events from a list of (event, data).
fn sse(events: &[(&str, Value)]) -> Vec<u8> {
    events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect::<String>().into_bytes()
}

/// One assistant message with `block` as its only content, streamed or whole.
fn anthropic_message(stream: bool, block: Value, stop: &str) -> Reply {
    let usage = json!({"input_tokens": 10, "output_tokens": 5});
    let id = format!("msg_{}", unique());
    if !stream {
        let body = json!({"id": id, "type": "message", "role": "assistant", "model": "claude-fake",
            "content": [block], "stop_reason": stop, "stop_sequence": null, "usage": usage});
        return Reply { status: "200 OK", ctype: "application/json", body: body.to_string().into_bytes() };
    }
    let (start, delta) = match block["type"].as_str() {
        Some("tool_use") => (
            json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
        ),
        _ => (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": block["text"]})),
    };
    let body = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": "claude-fake", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": start})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    Reply { status: "200 OK", ctype: "text/event-stream", body }
}

/// The fake Messages API: a request that offers the Bash tool and carries no tool result
/// yet gets a call of it running `command`; one with the result gets the final answer;
/// any other message request a short text; anything else 404.
fn fake_anthropic(command: String) -> common::tls::Handler {
    Arc::new(move |s: &Seen| {
        if s.method != "POST" || !s.path.starts_with("/v1/messages") || s.path.starts_with("/v1/messages/") {
            return Reply { status: "404 Not Found", ctype: "application/json", body: b"{}".to_vec() };
        }
        let b = body_json(s);
        let stream = b["stream"].as_bool().unwrap_or(false);
        let blocks = b["messages"].as_array().into_iter().flatten().filter_map(|m| m["content"].as_array()).flatten();
        let has_result = blocks.into_iter().any(|c| c["type"] == "tool_result");
        let offers_bash = b["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
        if has_result {
            anthropic_message(stream, json!({"type": "text", "text": CLAUDE_ANSWER}), "end_turn")
        } else if offers_bash {
            let call = json!({"type": "tool_use", "id": "toolu_fake_1", "name": "Bash",
                "input": {"command": command, "description": "Write the key"}});
            anthropic_message(stream, call, "tool_use")
        } else {
            anthropic_message(stream, json!({"type": "text", "text": "ok"}), "end_turn")
        }
    })
}

/// `paddock run --policy POL --workspace WS -- argv` as the fixture's user.
fn run_under(f: &Fixture, pol: &Path, argv: &[OsString], env: &[(&str, &str)]) -> Out {
    let mut full: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--policy".into(), pol.into()];
    full.extend(["--workspace".into(), f.ws.clone().into(), "--".into()]);
    full.extend_from_slice(argv);
    f.launch_within(&full, env, None, AGENT_HANG)
}

/// What paddock makes in the home directory when it picks the agent's preset by the
/// program's name (`agents::Agent`; a policy file that extends the preset does not get
/// it): its state directory, its settings file empty, its protected directories, all
/// owned by the fixture's user.
fn agent_home(f: &Fixture, state: &str, settings: (&str, &str), protected: &[&str]) {
    for d in std::iter::once(state).chain(protected.iter().copied()) {
        let d = f.home.join(d);
        std::fs::create_dir_all(&d).unwrap();
        chmod(&d, 0o700);
        chown(&d, f.user.uid());
    }
    let p = f.home.join(settings.0);
    write(&p, settings.1, 0o600);
    chown(&p, f.user.uid());
}

fn claude_home(f: &Fixture) {
    agent_home(f, ".claude", (".claude/settings.json", "{}\n"), &[".claude/plugins"]);
}

fn claude_runs_a_command_with_only_the_placeholder(user: User) {
    let f = Fixture::new(user);
    let (claude, reads) = cli("claude");
    let key = format!("sk-ant-api03-test-{}", unique());
    let marker = format!("key-file-{}", unique());
    let command = format!("printf '%s' \"$ANTHROPIC_API_KEY\" > {marker}.txt");
    let up = Upstream::serve(&f.root, &["api.anthropic.com"], loopback(), fake_anthropic(command.clone()));
    let pol = local_policy(&f, "claude", "api.anthropic.com", &up, "127.0.0.1", &reads);
    claude_home(&f);
    let base = format!("https://api.anthropic.com:{}", up.port);
    let argv: Vec<OsString> = [
        claude.as_os_str(),
        "-p".as_ref(),
        "Write the key to a file.".as_ref(),
        "--allowedTools".as_ref(),
        "Bash".as_ref(),
    ]
    .map(OsString::from)
    .to_vec();
    let o = run_under(&f, &pol, &argv, &[("ANTHROPIC_API_KEY", &key), ("ANTHROPIC_BASE_URL", &base)]);
    assert_eq!(o.code(), 0, "{o}");
    // The agent's output is the fake's answer.
    assert_eq!(o.out().trim_end(), CLAUDE_ANSWER, "{o}");
    o.assert_absent(&key, "the API key");
    // The fake got the real key on every request, the tool call and the final turn among them.
    let seen = up.seen();
    let messages: Vec<&Seen> = seen.iter().filter(|s| s.path.starts_with("/v1/messages")).collect();
    assert!(messages.len() >= 2, "a tool call and its result: {seen:?}");
    for s in &messages {
        assert_eq!(s.header("x-api-key"), Some(key.as_str()), "the fake API got the real key: {s:?}");
    }
    assert!(
        messages.iter().any(|s| body_json(s)["messages"].to_string().contains("toolu_fake_1")),
        "the tool's result came back to the fake"
    );
    // The command the agent ran saw the placeholder, never the key.
    let written = read(&f.ws.join(format!("{marker}.txt")));
    assert!(written.starts_with("paddock-secret-anthropic-"), "the command saw {written:?}");
    assert!(!written.contains(&key));
    assert_agent_on_record(&f, "claude", "api.anthropic.com", "anthropic", &marker, &key);
}

/// The audit log has the agent's call, its API requests naming the secret, an `exec`
/// record of the command it ran (carrying `marker`), every connection allowed only to its
/// API host, and nowhere the key.
fn assert_agent_on_record(f: &Fixture, program: &str, host: &str, secret: &str, marker: &str, key: &str) {
    let raw = read(&f.root.join("state/audit.jsonl"));
    assert!(!raw.contains(key), "the key is in the audit log");
    let log = audit(f);
    let calls: Vec<&Value> = log.iter().filter(|r| r["event"] == "call.start").collect();
    assert!(
        calls.iter().any(|r| r["argv"][0].as_str().is_some_and(|a| a.ends_with(&format!("/{program}")))),
        "the agent's call: {calls:?}"
    );
    let requests: Vec<&Value> = log.iter().filter(|r| r["event"] == "http.request").collect();
    assert!(requests.len() >= 2, "its API requests: {raw}");
    for r in &requests {
        assert_eq!((r["host"].as_str(), r["secret"].as_str()), (Some(host), Some(secret)), "{r}");
    }
    assert!(
        log.iter().any(|r| r["event"] == "exec" && r["argv"].to_string().contains(marker)),
        "the command it ran: {raw}"
    );
    // Anything else the agent dialed was refused, never let out.
    for r in log.iter().filter(|r| r["event"] == "net.connect" && r["verdict"] == "allow") {
        assert_eq!(r["host"].as_str(), Some(host), "an allowed connection elsewhere: {r}");
    }
}

// ---------------------------------------------------------------------------------------
// Codex and a fake Responses API
// ---------------------------------------------------------------------------------------

const CODEX_ANSWER: &str = "The fake model says: codex done.";

fn openai_events(items: &[Value]) -> Reply {
    let id = format!("resp_{}", unique());
    let mut ev = vec![("response.created", json!({"type": "response.created", "response": {"id": id}}))];
    for (i, it) in items.iter().enumerate() {
        ev.push((
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": i, "item": it}),
        ));
        ev.push((
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": i, "item": it}),
        ));
    }
    ev.push((
        "response.completed",
        json!({"type": "response.completed", "response": {"id": id, "usage": {"input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}}}),
    ));
    Reply { status: "200 OK", ctype: "text/event-stream", body: sse(&ev) }
}

/// The fake Responses API: a request without a tool's output yet gets a call of
/// `exec_command` running `command`; one with the output gets the final answer; the
/// WebSocket upgrade Codex tries first and anything else, 404 (Codex then falls back to
/// HTTPS and server-sent events).
fn fake_openai(command: String) -> common::tls::Handler {
    Arc::new(move |s: &Seen| {
        if s.method != "POST" || !s.path.starts_with("/v1/responses") {
            return Reply { status: "404 Not Found", ctype: "application/json", body: b"{}".to_vec() };
        }
        let b = body_json(s);
        let items = b["input"].as_array().cloned().unwrap_or_default();
        if items.iter().any(|i| i["type"].as_str().is_some_and(|t| t.ends_with("call_output"))) {
            let msg = json!({"type": "message", "role": "assistant", "id": "msg_fake_1",
                "content": [{"type": "output_text", "text": CODEX_ANSWER, "annotations": []}]});
            return openai_events(&[msg]);
        }
        let call = json!({"type": "function_call", "id": "fc_fake_1", "call_id": "call_fake_1", "name": "exec_command",
            "arguments": json!({"cmd": command}).to_string()});
        openai_events(&[call])
    })
}

fn codex_runs_a_command_with_only_the_placeholder(user: User) {
    let f = Fixture::new(user);
    let (codex, reads) = cli("codex");
    let key = format!("sk-proj-test-{}", unique());
    let marker = format!("key-file-{}", unique());
    let command = format!("printf '%s\\n%s' \"$OPENAI_API_KEY\" \"$CODEX_API_KEY\" > {marker}.txt");
    // Codex 0.171 has no base-URL setting it honours for its built-in provider: the fake
    // is the API's real URL, https://api.openai.com/v1, on a loopback address of its own.
    let (up, ip) = on_443(&f, "api.openai.com", fake_openai(command));
    let pol = local_policy(&f, "codex", "api.openai.com", &up, &ip, &reads);
    // The policy extends the preset: paddock makes ~/.codex and its settings file, and
    // starts codex with its inner sandbox off (`codex exec` authenticates with
    // CODEX_API_KEY, which the preset brokers like OPENAI_API_KEY).
    let argv: Vec<OsString> =
        [codex.as_os_str(), "exec".as_ref(), "--skip-git-repo-check".as_ref(), "Write the key to a file.".as_ref()]
            .map(OsString::from)
            .to_vec();
    let o = run_under(&f, &pol, &argv, &[("OPENAI_API_KEY", &key), ("CODEX_API_KEY", &key)]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out().trim_end(), CODEX_ANSWER, "{o}");
    assert!(o.err().contains("sandbox_mode=\"danger-full-access\""), "the inner sandbox is turned off, and said\n{o}");
    assert!(f.home.join(".codex/config.toml").is_file(), "its settings file is made\n{o}");
    o.assert_absent(&key, "the API key");
    let seen = up.seen();
    let posts: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
    assert!(posts.len() >= 2, "a tool call and its output: {seen:?}");
    for s in &posts {
        assert_eq!(s.header("authorization"), Some(format!("Bearer {key}").as_str()), "the real key: {s:?}");
    }
    assert!(
        posts.iter().any(|s| body_json(s)["input"].to_string().contains("call_fake_1")),
        "the command's output came back to the fake"
    );
    let written = read(&f.ws.join(format!("{marker}.txt")));
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 2, "{written:?}");
    assert!(lines[0].starts_with("paddock-secret-openai-"), "the command saw {written:?}");
    assert!(lines[1].starts_with("paddock-secret-codex-"), "the command saw {written:?}");
    assert!(!written.contains(&key));
    assert_agent_on_record(&f, "codex", "api.openai.com", "codex", &marker, &key);
}

/// Claude Code's TUI under a real pty (`script`): it draws, reaches its prompt, and ends on
/// `/exit`, with no paddock error on the screen. Its state says onboarding is done, the
/// workspace trusted and the key it sees (the placeholder) approved, as after a first run.
fn claude_s_tui_starts_and_exits(user: User) {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::Mutex;
    use std::time::Instant;
    let f = Fixture::new(user);
    let (claude, reads) = cli("claude");
    let key = format!("sk-ant-api03-test-{}", unique());
    let up = Upstream::serve(&f.root, &["api.anthropic.com"], loopback(), fake_anthropic("true".into()));
    let pol = local_policy(&f, "claude", "api.anthropic.com", &up, "127.0.0.1", &reads);
    claude_home(&f);
    let base = format!("https://api.anthropic.com:{}", up.port);
    let env = [("ANTHROPIC_API_KEY", key.as_str()), ("ANTHROPIC_BASE_URL", base.as_str())];
    let o = run_under(&f, &pol, &["sh", "-c", "printf %s \"$ANTHROPIC_API_KEY\""].map(OsString::from), &env);
    let placeholder = o.out();
    assert!(placeholder.starts_with("paddock-secret-anthropic-"), "{o}");
    let state = json!({"hasCompletedOnboarding": true, "theme": "dark", "numStartups": 1,
        "customApiKeyResponses": {"approved": [&placeholder[placeholder.len() - 20..]], "rejected": []},
        "projects": {f.ws.to_str().unwrap(): {"hasTrustDialogAccepted": true, "allowedTools": []}}});
    let state_file = f.home.join(".claude.json");
    write(&state_file, &state.to_string(), 0o600);
    chown(&state_file, f.user.uid());

    let inner = format!(
        "stty cols 120 rows 40; exec {} run --policy {} --workspace {} -- {}",
        sh_quote(f.bin.to_str().unwrap()),
        sh_quote(pol.to_str().unwrap()),
        sh_quote(f.ws.to_str().unwrap()),
        sh_quote(claude.to_str().unwrap())
    );
    let mut full = f.user.prefix();
    full.extend(["script".into(), "-qfc".into(), inner.into(), "/dev/null".into()]);
    let mut child = spawn(
        Command::new(&full[0])
            .args(&full[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &f.home)
            .env("TERM", "xterm-256color")
            .env("PADDOCK_STATE_DIR", f.root.join("state"))
            .envs(env)
            .current_dir(&f.ws)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let screen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (s2, mut r) = (Arc::clone(&screen), child.stdout.take().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || plain(&String::from_utf8_lossy(&screen.lock().unwrap()));
    let start = Instant::now();
    // Its prompt: the input box and, under it, "? for shortcuts".
    while !text().contains("? for shortcuts") {
        if start.elapsed() > AGENT_HANG || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("claude's prompt never came\n--- screen ---\n{}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut w = child.stdin.take().unwrap();
    // Typed, then Enter once the box shows it (all at once, it would be a paste).
    // Counted, not sliced at a length: a character or escape sequence cut by a read is
    // decoded differently once its end has come, and the text before it changes length.
    let before = text().matches("/exit").count();
    w.write_all(b"/exit").unwrap();
    let start = Instant::now();
    while text().matches("/exit").count() <= before {
        assert!(start.elapsed() < AGENT_HANG, "claude never echoed /exit\n--- screen ---\n{}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    let mut enter = start - Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // Enter again if an earlier one came while the box was still settling.
        if enter.elapsed() >= Duration::from_secs(10) {
            w.write_all(b"\r").unwrap();
            enter = Instant::now();
        }
        if start.elapsed() > AGENT_HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("claude did not end on /exit\n--- screen ---\n{}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = text();
    assert!(text.contains("Claude Code v"), "its banner\n{text}");
    // paddock says nothing but the refusals of hosts the agent tried on its own.
    for line in text.lines().filter(|l| l.contains("paddock:")) {
        assert!(line.contains("paddock: refused connect "), "a paddock error on the screen: {line}\n{text}");
    }
    assert!(status.success(), "{status:?}\n{text}");
    assert!(!read(&f.root.join("state/audit.jsonl")).contains(&key), "the key is in the audit log");
}
