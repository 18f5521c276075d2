//! `paddock run -- claude` (and codex, gemini): the agent's own preset is picked by the
//! program's name and said in one line; its state is writable, its login file denied, its
//! settings read-only; codex starts without its inner sandbox; a missing API key is named
//! with its fix; `--no-agent-preset` and `--policy` turn the picking off. Each as root and
//! as uid 65534, with controls.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;

both_users!(
    claude_gets_its_preset,
    claude_s_key_reaches_its_api_only_through_the_proxy,
    codex_starts_without_its_inner_sandbox,
    picking_is_off_when_asked
);

/// A stand-in for the agent: a script named like it in the workspace, which reports its
/// arguments and what it can do with its state.
fn fake_agent(f: &Fixture, name: &str, state: &str, login: &str) {
    let script = format!(
        "#!/bin/sh\necho \"args: $*\"\necho \"telemetry=$DISABLE_TELEMETRY\"\necho \"key=$ANTHROPIC_API_KEY$OPENAI_API_KEY\"\n\
         (echo x >> \"$HOME/{state}/session.txt\") 2>/dev/null && echo state=ok || echo state=refused\n\
         (cat \"$HOME/{state}/{login}\") 2>/dev/null || echo login=refused\n\
         (echo x >> \"$HOME/{state}/settings.json\") 2>/dev/null && echo settings=written || echo settings=refused\n"
    );
    let p = f.ws.join(name);
    write(&p, &script, 0o755);
    chown(&p, f.user.uid());
}

/// `paddock run --workspace WS [extra...] -- argv`, with no `--policy` unless `extra` has one.
fn run_agent(f: &Fixture, extra: &[&str], argv: &[&str], env: &[(&str, &str)]) -> Out {
    let mut full: Vec<OsString> = vec![f.bin.clone().into(), "run".into()];
    full.extend(extra.iter().map(OsString::from));
    full.extend(["--workspace".into(), f.ws.clone().into(), "--".into()]);
    full.extend(argv.iter().map(OsString::from));
    f.launch(&full, env, None)
}

/// `~/DIR` with a login file holding a secret and a settings file, owned by the user.
fn agent_home(f: &Fixture, dir: &str, login: &str) -> String {
    let d = f.home.join(dir);
    std::fs::create_dir(&d).unwrap();
    chown(&d, f.user.uid());
    let secret = format!("SECRET-login-{}", unique());
    for (name, text) in [(login, secret.as_str()), ("settings.json", "{}")] {
        write(&d.join(name), text, 0o600);
        chown(&d.join(name), f.user.uid());
    }
    secret
}

fn claude_gets_its_preset(user: User) {
    let f = Fixture::new(user);
    let secret = agent_home(&f, ".claude", ".credentials.json");
    fake_agent(&f, "claude", ".claude", ".credentials.json");
    // Control: on the host the agent reaches its login and settings.
    let o = f.host(&["./claude"]);
    assert!(o.out().contains(&secret) && o.out().contains("settings=written"), "control\n{o}");
    write(&f.home.join(".claude/settings.json"), "{}", 0o600);
    std::fs::remove_file(f.home.join(".claude/session.txt")).unwrap();

    let o = run_agent(&f, &[], &["./claude", "hi"], &[("ANTHROPIC_API_KEY", "sk-test-not-a-key")]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.err().contains("using the claude preset"), "the pick is said\n{o}");
    assert_eq!(o.err().matches("claude preset").count(), 1, "in one line\n{o}");
    assert!(!o.err().contains("is not set"), "the key is set\n{o}");
    let out = o.out();
    assert!(out.contains("args: hi\n"), "{o}");
    assert!(out.contains("telemetry=1\n"), "the preset's [env] applies\n{o}");
    assert!(out.contains("state=ok\n"), "~/.claude is writable\n{o}");
    o.assert_absent(&secret, "claude's login file");
    // The key is brokered: a placeholder, the same in the next run (an agent that
    // remembers the key it approved is not asked again), never the value.
    o.assert_absent("sk-test-not-a-key", "the API key");
    let key = out.lines().find_map(|l| l.strip_prefix("key=")).unwrap_or_default().to_string();
    assert!(key.starts_with("paddock-secret-anthropic-"), "{o}");
    assert!(out.contains("settings=refused\n"), "its settings are read-only\n{o}");
    assert_eq!(read(&f.home.join(".claude/session.txt")), "x\n");
    assert_eq!(read(&f.home.join(".claude/settings.json")), "{}");
    let again = run_agent(&f, &[], &["./claude"], &[("ANTHROPIC_API_KEY", "sk-test-not-a-key")]);
    assert!(again.out().contains(&format!("key={key}\n")), "the same placeholder\n{again}");

    // The login file itself, named as the preset names it, is denied.
    let o = run_agent(&f, &[], &["sh", "-c", "cat ~/.claude/.credentials.json || echo refused"], &[]);
    o.assert_absent(&secret, "~/.claude/.credentials.json");

    // Without the key, the line that names the fix.
    let o = run_agent(&f, &[], &["./claude"], &[]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.err().contains("ANTHROPIC_API_KEY is not set") && o.err().contains("Set ANTHROPIC_API_KEY"), "{o}");
    assert!(o.out().contains("key=\n"), "no placeholder for a key that is not there\n{o}");
}

fn codex_starts_without_its_inner_sandbox(user: User) {
    let f = Fixture::new(user);
    fake_agent(&f, "codex", ".codex", "auth.json");
    // ~/.codex does not exist yet: made for it, since a write grant covers what exists.
    let o = run_agent(&f, &[], &["./codex", "exec", "hi"], &[("OPENAI_API_KEY", "sk-test")]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.err().contains("using the codex preset"), "{o}");
    assert!(o.out().contains("args: -c sandbox_mode=\"danger-full-access\" exec hi\n"), "{o}");
    assert!(
        o.err().contains("sandbox_mode=\\\"danger-full-access\\\"") || o.err().contains("danger-full-access"),
        "{o}"
    );
    assert!(o.err().contains("made ") && f.home.join(".codex").is_dir(), "{o}");
    assert!(o.out().contains("state=ok\n"), "~/.codex is writable\n{o}");
    // Named explicitly, the same.
    let o = run_agent(&f, &["--policy", "codex"], &["./codex", "x"], &[("OPENAI_API_KEY", "sk-test")]);
    assert!(o.out().contains("args: -c sandbox_mode=\"danger-full-access\" x\n"), "{o}");
    assert!(!o.err().contains("using the codex preset"), "no pick to announce\n{o}");
    // Under another policy codex is a program like any other: nothing added.
    let o = run_agent(&f, &["--policy", "default"], &["./codex", "x"], &[]);
    assert!(o.out().contains("args: x\n"), "{o}");
    assert!(!o.err().contains("danger-full-access"), "{o}");
}

fn picking_is_off_when_asked(user: User) {
    let f = Fixture::new(user);
    agent_home(&f, ".claude", ".credentials.json");
    fake_agent(&f, "claude", ".claude", ".credentials.json");
    let o = run_agent(&f, &["--no-agent-preset"], &["./claude"], &[]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("preset"), "{o}");
    assert!(o.out().contains("state=refused\n") && o.out().contains("telemetry=\n"), "the embedded default\n{o}");
    // A program that is not an agent gets no preset.
    let o = run_agent(&f, &[], &["sh", "-c", "echo \"telemetry=$DISABLE_TELEMETRY\""], &[]);
    assert_eq!(o.out(), "telemetry=\n", "{o}");
    assert!(!o.err().contains("preset"), "{o}");
}

/// The claude preset's `[secrets]`: the key the agent sends to api.anthropic.com (pinned
/// to a loopback TLS upstream with a CA of its own) arrives as the real value in
/// `x-api-key`, though the agent only ever held the placeholder.
fn claude_s_key_reaches_its_api_only_through_the_proxy(user: User) {
    let f = Fixture::new(user);
    let up = common::tls::Upstream::start(&f.root, &["api.anthropic.com"]);
    let key = format!("sk-ant-test-{}", unique());
    let pol = f.root.join("claude-local.toml");
    write(
        &pol,
        &format!(
            "version = 1\nextends = [\"claude\"]\n[network]\nallow = [\"api.anthropic.com:{port}\"]\nallow_private = [\"127.0.0.0/8\"]\nupstream_ca = [{ca:?}]\n[network.hosts]\n\"api.anthropic.com\" = \"127.0.0.1\"\n",
            port = up.port,
            ca = up.ca_file
        ),
        0o644,
    );
    let script = format!(
        "#!/bin/sh\ncurl -sS --max-time 30 -H \"x-api-key: $ANTHROPIC_API_KEY\" https://api.anthropic.com:{}/v1/messages\n",
        up.port
    );
    write(&f.ws.join("claude"), &script, 0o755);
    chown(&f.ws.join("claude"), f.user.uid());
    let o = run_agent(&f, &["--policy", pol.to_str().unwrap()], &["./claude"], &[("ANTHROPIC_API_KEY", &key)]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "hello from upstream\n", "{o}");
    o.assert_absent(&key, "the API key");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("x-api-key"), Some(key.as_str()), "the upstream got the real key");
}
