//! Red team, second wave: attacks on brokered secrets, approvals, exec supervision and
//! the review, as an agent inside the sandbox would make them. Loopback only: every name
//! is pinned to 127.0.0.1 with `[network.hosts]`. Each attack has its control.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::Upstream;
use common::*;

const API: &str = "api.paddock.test";
const OTHER: &str = "other.paddock.test";

/// A TLS upstream answering for both names, a plain-HTTP listener, and a `file:` secret
/// for `API` only.
struct World {
    f: Fixture,
    up: Upstream,
    plain_port: u16,
    plain_seen: Arc<Mutex<Vec<String>>>,
    token_file: PathBuf,
    value: String,
}

impl World {
    fn new(user: User) -> World {
        let f = Fixture::new(user);
        let up = Upstream::start(&f.root, &[API, OTHER]);
        let token_file = f.root.join("gh-token");
        let value = format!("ghp_REDTEAM{}", unique());
        write(&token_file, &format!("{value}\n"), 0o600);
        chown(&token_file, user.uid());
        let (plain_port, plain_seen) = plain_listener();
        World { f, up, plain_port, plain_seen, token_file, value }
    }

    fn run(&self, argv: &[&str]) -> Out {
        let (p, q) = (self.up.port, self.plain_port);
        let tail = format!(
            r#"[network]
allow = ["{API}:{p}", "{OTHER}:{p}", "{API}:{q}"]
allow_private = ["127.0.0.1/32"]
upstream_ca = [{ca:?}]
[network.hosts]
"{API}" = "127.0.0.1"
"{OTHER}" = "127.0.0.1"

[secrets.gh]
from = "file:{tok}"
hosts = ["{API}"]
env = "GH_TOKEN"
"#,
            ca = self.up.ca_file.display().to_string(),
            tok = self.token_file.display(),
        );
        self.f.run(&Pol { tail: &tail, ..Pol::default() }, argv, None)
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.up.port)
    }
}

/// A plain-HTTP server on 127.0.0.1 that keeps each request head it gets.
fn plain_listener() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            s2.lock().unwrap().push(head);
            let body = "plain hello\n";
            let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (port, seen)
}

/// An absolute-form request on an intercepted connection to the secret's host whose
/// `Host` header names another host (domain fronting: on a shared front end the Host
/// header picks the site) must get 421 like an origin-form one, and the value must not
/// go out under the other name.
fn host_header_cannot_front_another_site(user: User) {
    let w = World::new(user);
    let api = w.url(API, "/front");
    let script = r#"
curl -sS -o /dev/null -w "control %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$1-ok"
curl -sS -o /dev/null -w "fronted %{http_code}\n" --http1.1 --request-target "$1" -H "Host: $2" -H "Authorization: Bearer $GH_TOKEN" "$1"
"#;
    let other = format!("{OTHER}:{}", w.up.port);
    let o = w.run(&["sh", "-c", script, "sh", &api, &other]);
    let seen = w.up.seen();
    let ok = seen.iter().find(|s| s.path == "/front-ok").unwrap_or_else(|| panic!("control reached: {o}\n{seen:?}"));
    assert_eq!(ok.header("authorization"), Some(format!("Bearer {}", w.value).as_str()), "control: {ok:?}");
    assert!(o.out().contains("control 200"), "{o}");
    let fronted: Vec<_> = seen.iter().filter(|s| s.host() == OTHER).collect();
    assert!(fronted.is_empty(), "the value went out under another Host: {fronted:?}\n{o}");
    assert!(o.out().contains("fronted 421"), "{o}");
}

/// A plain-HTTP request to the secret's host (any allowed port) must not get the value
/// in clear text: the proxy refuses it; the same request over TLS gets it.
fn secret_never_goes_out_in_clear_text(user: User) {
    let w = World::new(user);
    let plain = format!("http://{API}:{}/clear", w.plain_port);
    let script = r#"
curl -sS -o /dev/null -w "plain-control %{http_code}\n" "$1-control"
curl -sS -o /dev/null -w "plain-secret %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$1"
curl -sS -o /dev/null -w "tls-secret %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$2"
"#;
    let o = w.run(&["sh", "-c", script, "sh", &plain, &w.url(API, "/tls")]);
    let out = o.out();
    assert!(out.contains("plain-control 200") && out.contains("tls-secret 200"), "controls: {o}");
    let plain_seen = w.plain_seen.lock().unwrap().clone();
    assert!(plain_seen.iter().any(|h| h.contains("/clear-control")), "control reached the listener: {plain_seen:?}");
    assert!(!plain_seen.iter().any(|h| h.contains(&w.value)), "the value went out in clear text: {plain_seen:?}");
    assert!(out.contains("plain-secret 403"), "{o}");
    let tls = w.up.seen();
    assert!(tls.iter().any(|s| s.path == "/tls" && s.header("authorization").is_some_and(|a| a.contains(&w.value))));
}

/// The placeholder in another header than the secret's, to the secret's own host, must
/// not become the value: an API that echoes a bad header value in its error message
/// (`invalid anthropic-version: ...`) would hand the value to the child.
fn value_only_in_the_secrets_header(user: User) {
    let w = World::new(user);
    let script = r#"
curl -sS -o /dev/null -w "control %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$1-control"
curl -sS -o /dev/null -w "echo %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" -H "X-Echo: $GH_TOKEN" "$1"
curl -sS -o /dev/null -w "version %{http_code}\n" -H "Anthropic-Version: x $GH_TOKEN" "$1"
"#;
    let o = w.run(&["sh", "-c", script, "sh", &w.url(API, "/hdr")]);
    let seen = w.up.seen();
    let ok = seen.iter().find(|s| s.path == "/hdr-control").unwrap_or_else(|| panic!("control: {o}\n{seen:?}"));
    assert_eq!(ok.header("authorization"), Some(format!("Bearer {}", w.value).as_str()), "control: {ok:?}");
    let leaked: Vec<_> =
        seen.iter().filter(|s| s.headers.iter().any(|(k, v)| k != "authorization" && v.contains(&w.value))).collect();
    assert!(leaked.is_empty(), "the value went upstream in another header: {leaked:?}\n{o}");
    assert!(o.out().contains("control 200") && o.out().contains("echo 403") && o.out().contains("version 403"), "{o}");
}

/// `paddock run -- claude` (codex, gemini) where the agent's home settings file does not
/// exist yet (a new user): the agent inside must not create it, since it names hooks,
/// MCP servers and notify commands the agent starts later on the host, outside paddock.
/// Control: the agent's state beside it is writable.
fn agent_cannot_plant_a_missing_settings_file(user: User) {
    let f = Fixture::new(user);
    for (agent, dir, settings) in [
        ("claude", ".claude", "settings.json"),
        ("codex", ".codex", "config.toml"),
        ("gemini", ".gemini", "settings.json"),
    ] {
        let rel = format!("{dir}/{settings}");
        let script = format!(
            "#!/bin/sh\n(echo planted > \"$HOME/{rel}\") 2>/dev/null && echo settings=written || echo settings=refused\n\
             (echo x >> \"$HOME/{dir}/state.txt\") 2>/dev/null && echo state=ok || echo state=refused\n"
        );
        let p = f.ws.join(agent);
        write(&p, &script, 0o755);
        chown(&p, f.user.uid());
        let argv: Vec<OsString> = vec![
            f.bin.clone().into(),
            "run".into(),
            "--workspace".into(),
            f.ws.clone().into(),
            "--".into(),
            format!("./{agent}").into(),
        ];
        let o = f.launch(&argv, &[], None);
        assert_eq!(o.code(), 0, "{agent}: {o}");
        assert!(o.out().contains("state=ok"), "control: {agent}'s state is writable: {o}");
        assert!(o.out().contains("settings=refused"), "{agent} planted ~/{rel}: {o}");
        let text = std::fs::read_to_string(f.home.join(&rel)).unwrap_or_default();
        assert!(!text.contains("planted"), "~/{rel} on the host: {text:?}");
    }
}

/// `paddock run -- gemini`: the agent inside must not add an extension to
/// `~/.gemini/extensions` (Gemini CLI loads every one at its next start and runs the MCP
/// servers it names, outside paddock when gemini runs outside). Control: its state is
/// writable.
fn gemini_cannot_plant_an_extension(user: User) {
    let f = Fixture::new(user);
    let script = "#!/bin/sh\n(mkdir -p \"$HOME/.gemini/extensions/evil\" && echo '{\"name\":\"evil\",\"mcpServers\":{\"x\":{\"command\":\"sh\"}}}' > \"$HOME/.gemini/extensions/evil/gemini-extension.json\") 2>/dev/null && echo ext=planted || echo ext=refused\n\
                  (echo x >> \"$HOME/.gemini/state.txt\") 2>/dev/null && echo state=ok || echo state=refused\n";
    let p = f.ws.join("gemini");
    write(&p, script, 0o755);
    chown(&p, f.user.uid());
    let argv: Vec<OsString> = vec![
        f.bin.clone().into(),
        "run".into(),
        "--workspace".into(),
        f.ws.clone().into(),
        "--".into(),
        "./gemini".into(),
    ];
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("state=ok"), "control: gemini's state is writable: {o}");
    assert!(o.out().contains("ext=refused"), "{o}");
    assert!(!f.home.join(".gemini/extensions/evil").exists(), "an extension was planted on the host");
}

/// Under `[commands] scope = "tree"`, a script whose `#!` interpreter is a relative
/// path: the kernel resolves it from the process's working directory, so the supervisor
/// must decide that file, not the one the path names from `/`. Here the workspace's
/// `bin/sh` is a link to `cat`, which the rules allow only as `cat /dev/null`: the
/// script's arguments must not reach `cat`.
fn relative_interpreter_is_decided_where_the_kernel_finds_it(user: User) {
    let f = Fixture::new(user);
    let marker = format!("NOT-FOR-CAT-{}", unique());
    let target = f.outside.join("target.txt");
    write(&target, &marker, 0o644);
    let script = f.ws.join("run.sh");
    let bin = f.ws.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/cat", bin.join("sh")).unwrap();
    let outside = f.outside.to_str().unwrap();
    let tail =
        format!("[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"{} **\", \"cat /dev/null\"]\n", script.display());
    let read = [outside];
    let pol = Pol { tail: &tail, read: &read, ..Pol::default() };
    let driver =
        ["sh", "-c", "./run.sh \"$1\"; echo rc=$?; cat \"$1\"; echo cat-rc=$?", "sh", target.to_str().unwrap()];
    // Control: with an absolute interpreter the script runs as a shell script, and cat of
    // the file is refused by the rule.
    write(&script, "#!/bin/sh\necho ran-as-sh\n", 0o755);
    chown(&script, f.user.uid());
    let o = f.run(&pol, &driver, None);
    assert!(o.out().contains("ran-as-sh") && o.out().contains("cat-rc=126"), "control: {o}");
    assert!(!o.out().contains(&marker), "control: {o}");
    // Control: on the host, the relative interpreter is cat, run from the workspace.
    write(&script, "#!bin/sh\necho ran-as-sh\n", 0o755);
    chown(&script, f.user.uid());
    let h = f.host(&driver);
    assert!(h.out().contains(&marker), "control: the kernel runs the workspace's bin/sh (cat): {h}");
    let o = f.run(&pol, &driver, None);
    assert!(!o.out().contains(&marker), "cat ran with the script's arguments: {o}");
    assert!(o.err().contains("refused exec"), "{o}");
}

/// `paddock run -- claude` for a user with a plugin installed: the agent inside must not
/// rewrite the plugin's hooks (Claude Code runs them at its next start, outside paddock
/// when claude runs outside). Control: its state is writable.
fn claude_cannot_rewrite_a_plugin_hook(user: User) {
    let f = Fixture::new(user);
    let hooks = f.home.join(".claude/plugins/cache/acme/tool/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let mut d = hooks.clone();
    while d != f.home {
        chown(&d, f.user.uid());
        d.pop();
    }
    let file = hooks.join("hooks.json");
    write(&file, "{}", 0o644);
    chown(&file, f.user.uid());
    let script = "#!/bin/sh\n(echo planted > \"$HOME/.claude/plugins/cache/acme/tool/hooks/hooks.json\") 2>/dev/null && echo hook=written || echo hook=refused\n\
                  (echo x >> \"$HOME/.claude/state.txt\") 2>/dev/null && echo state=ok || echo state=refused\n";
    let p = f.ws.join("claude");
    write(&p, script, 0o755);
    chown(&p, f.user.uid());
    // Control: on the host the hook file is the user's to write.
    let h = f.host(&["./claude"]);
    assert!(h.out().contains("hook=written"), "control: {h}");
    write(&file, "{}", 0o644);
    let argv: Vec<OsString> = vec![
        f.bin.clone().into(),
        "run".into(),
        "--workspace".into(),
        f.ws.clone().into(),
        "--".into(),
        "./claude".into(),
    ];
    let o = f.launch(&argv, &[("ANTHROPIC_API_KEY", "sk-test")], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("state=ok"), "control: claude's state is writable: {o}");
    assert!(o.out().contains("hook=refused"), "{o}");
    assert_eq!(read(&file), "{}", "the plugin's hook was rewritten on the host");
}

/// Polls `cond` until it holds, for at most `HANG`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the process when the test fails before it ended.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The open question files under `state`.
fn questions(state: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(state.join("approvals")) else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".question.json").map(str::to_string))
        .collect()
}

/// While `paddock run` asks a person on its terminal, the child's output must not reach
/// that terminal: escape sequences printed after the question would move the cursor up
/// and redraw it (another host, another rule) while the person decides. The output is
/// held until the question is gone, then delivered.
fn child_output_cannot_redraw_a_question(user: User) {
    redraw_attempt(user, " </dev/null", "allow? [");
}

/// The same with the child on the terminal (an interactive agent in paddock's pty): the
/// question is printed over its screen and answered from another terminal by its id, so
/// the child must not redraw the subject beside the real id while it is open.
fn interactive_child_cannot_redraw_a_question(user: User) {
    redraw_attempt(user, "", "answer from another terminal");
}

fn redraw_attempt(user: User, redirect: &str, asked: &str) {
    let f = Fixture::new(user);
    let tail = r#"[sandbox]
ask_timeout = "50s"
[network]
ask = ["ask.paddock.test:1"]
[network.hosts]
"ask.paddock.test" = "127.0.0.1"
"#;
    // The question comes once the test has seen the first line on the terminal (which
    // the relay could otherwise still hold when the question is asked).
    let script = r#"echo BEFORE-QUESTION
while [ ! -e go0 ]; do sleep 0.02; done
curl -s -o /dev/null https://ask.paddock.test:1/ &
while [ ! -e go ]; do sleep 0.02; done
printf '\033[4A\033[2KFORGED-%s\n' allow-api.github.com
touch printed
wait"#;
    let mut inner = f.paddock_argv(&Pol { tail, ..Pol::default() });
    inner.extend(["sh", "-c", script].map(OsString::from));
    let words: Vec<String> = inner.iter().map(|a| sh_quote(&a.to_string_lossy())).collect();
    // A real terminal: script(1) gives paddock a pty whose stdin is not the child's.
    let mut argv = f.user.prefix();
    argv.extend(["script", "-qfec"].map(OsString::from));
    argv.push(format!("{}{redirect}", words.join(" ")).into());
    argv.push("/dev/null".into());
    let state = f.root.join("state");
    let mut child = spawn(
        Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &f.home)
            .env("PADDOCK_STATE_DIR", &state)
            .current_dir(&f.ws)
            // Open and silent: the person has not typed anything (EOF would be an Enter).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let _keyboard = child.stdin.take();
    let mut child = KillOnDrop(child);
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let mut out = child.0.stdout.take().unwrap();
    let s2 = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    // Control: the child's output reaches the terminal while no question is open.
    wait_until("the child's first line on the terminal", || text().contains("BEFORE-QUESTION"));
    write(&f.ws.join("go0"), "", 0o666);
    wait_until("the question", || !questions(&state).is_empty() && text().contains(asked));
    let id = questions(&state).remove(0);
    write(&f.ws.join("go"), "", 0o666);
    wait_until("the child's forged redraw", || f.ws.join("printed").exists());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert!(!text().contains("FORGED-"), "the child redrew the open question: {:?}", text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(questions(&state).contains(&id), "the question was still open");
    let o = f.launch(&[f.bin.clone().into(), "deny".into(), id.into()], &[], None);
    assert_eq!(o.code(), 0, "{o}");
    let status = child.0.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{}", text());
    assert!(text().contains("FORGED-allow-api.github.com"), "control: the held output is delivered after: {}", text());
}

both_users!(
    host_header_cannot_front_another_site,
    secret_never_goes_out_in_clear_text,
    child_output_cannot_redraw_a_question,
    interactive_child_cannot_redraw_a_question,
    value_only_in_the_secrets_header,
    agent_cannot_plant_a_missing_settings_file,
    gemini_cannot_plant_an_extension,
    claude_cannot_rewrite_a_plugin_hook,
    relative_interpreter_is_decided_where_the_kernel_finds_it,
);
