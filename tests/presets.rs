//! End-to-end: the embedded presets do the work they are named for, offline. Each workflow
//! builds its inputs on the host (a vendored crate, a wheel, an npm cache, a C file, a git
//! repository) and runs the real tools inside `paddock run --policy PRESET`, as root and
//! as uid 65534 where the tools allow it. No network at all: every registry is a local
//! directory or cache.
//!
//! `--policy NAME` names an embedded preset, so these runs work from any directory; the
//! examples of `examples/mcp/` rely on it.

#[macro_use]
mod common;

use common::*;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

both_users!(
    presets_load_by_name_from_any_directory,
    mcp_examples_work_copied_into_a_project,
    git_workflow_under_coding_agent,
    pip_workflow_under_coding_agent,
    npm_workflow_under_coding_agent_and_ci,
    make_gcc_workflow_under_coding_agent_and_ci,
    read_only_reads_greps_and_logs_but_cannot_write,
    program_outside_the_view_is_named_with_the_entry_to_add,
    mcp_read_file_of_binary_is_base64_and_a_call_running_at_sigterm_is_answered,
);

/// `paddock run --policy PRESET --workspace WS -- sh -c SCRIPT` as the fixture's user,
/// with the clean environment of `Fixture::launch` plus `env`.
fn preset_sh(f: &Fixture, preset: &str, env: &[(&str, &str)], script: &str) -> Out {
    let argv: Vec<OsString> = vec![
        f.bin.clone().into(),
        "run".into(),
        "--policy".into(),
        preset.into(),
        "--workspace".into(),
        f.ws.clone().into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
    ];
    f.launch(&argv, env, None)
}

/// `paddock ARGS...` as the fixture's user, in the workspace.
fn paddock(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
    argv.extend(args.iter().map(OsString::from));
    f.launch(&argv, env, None)
}

fn mkdir(p: &Path, user: User) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    chown(p, user.uid());
}

/// Writes `text` into `p`, owned by the fixture's user.
fn put(f: &Fixture, p: &Path, text: &str) {
    write(p, text, 0o644);
    chown(p, f.user.uid());
}

fn presets_load_by_name_from_any_directory(user: User) {
    let f = Fixture::new(user);
    // The workspace has no `policies/` directory: the names are the embedded presets.
    for name in ["default", "coding-agent", "ci", "read-only"] {
        let o = paddock(&f, &["policy", "show", "--policy", name], &[]);
        assert_eq!(o.code(), 0, "{name}\n{o}");
        assert!(o.out().contains(&format!("<embedded {name}>")), "{name}\n{o}");
    }
    // A preset that extends the default gets the embedded default, not a file.
    let o = paddock(&f, &["policy", "show", "--policy", "coding-agent"], &[]);
    assert!(o.out().contains("merged from: <embedded default>, <embedded coding-agent>"), "{o}");
    let o = paddock(&f, &["policy", "lint", "coding-agent", "ci", "read-only", "default"], &[]);
    assert_eq!(o.code(), 0, "{o}");
    // An unknown name: 78, naming the presets.
    let o = paddock(&f, &["policy", "show", "--policy", "coding-agnet"], &[]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("--policy coding-agnet"), "{o}");
    assert!(o.err().contains("default, coding-agent, ci, read-only"), "{o}");
    let o = paddock(&f, &["run", "--policy", "nope", "--", "true"], &[]);
    assert_eq!(o.code(), 78, "{o}");
    // A path is a path: `./coding-agent` is a file, missing here.
    let o = paddock(&f, &["policy", "show", "--policy", "./coding-agent"], &[]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("cannot read policy"), "{o}");
    // A preset's name means the preset even with a file of that name in the current
    // directory (often the workspace, which the agent writes); `./ci` names the file.
    put(&f, &f.ws.join("ci"), "version = 1\n[filesystem]\nread = [\"/opt/own-file\"]\n");
    let o = paddock(&f, &["policy", "show", "--policy", "ci"], &[]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.out().contains("/opt/own-file"), "{o}");
    let o = paddock(&f, &["policy", "show", "--policy", "./ci"], &[]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("/opt/own-file"), "{o}");
}

/// The `--policy` argument of an example's `args`.
fn policy_arg(args: &[String]) -> Option<String> {
    args.iter().position(|a| a == "--policy").map(|i| args[i + 1].clone())
}

fn mcp_examples_work_copied_into_a_project(user: User) {
    let f = Fixture::new(user);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mcp");
    let json: serde_json::Value = serde_json::from_str(&read(&dir.join("claude-code.json"))).unwrap();
    let codex = read(&dir.join("codex.toml"));
    let codex_args = codex
        .lines()
        .find_map(|l| l.strip_prefix("args = "))
        .map(|a| serde_json::from_str::<Vec<String>>(a).expect("codex args"))
        .expect("codex.toml has args");
    let claude_args: Vec<String> = serde_json::from_value(json["mcpServers"]["paddock"]["args"].clone()).unwrap();
    for args in [claude_args, codex_args] {
        let policy = policy_arg(&args).expect("the examples name a policy");
        assert!(
            Path::new(&policy).is_absolute() || !policy.contains('/'),
            "`--policy {policy}` depends on the directory the client starts paddock in"
        );
        // Started in the copied-into project (the workspace, with no `policies/`): the
        // policy loads and the server runs until the client closes stdin.
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = paddock(&f, &args, &[]);
        assert_eq!(o.code(), 0, "paddock {args:?}\n{o}");
        assert!(!o.err().contains("cannot read policy"), "{o}");
    }
}

fn git_workflow_under_coding_agent(user: User) {
    let f = Fixture::new(user);
    let log = "git log --format='%an <%ae> %s'";
    // The author from GIT_AUTHOR_* / GIT_COMMITTER_* (no git config anywhere).
    let ident = [
        ("GIT_AUTHOR_NAME", "Env Author"),
        ("GIT_AUTHOR_EMAIL", "env@example.test"),
        ("GIT_COMMITTER_NAME", "Env Committer"),
        ("GIT_COMMITTER_EMAIL", "committer@example.test"),
    ];
    let script = format!(
        "git init -q -b main && echo one > a.txt && git add a.txt && git commit -qm first && {log} && git checkout -qb feature && echo two >> a.txt && git commit -qam second && git branch --show-current && {log}"
    );
    // Control: under the default preset the identity is dropped and git cannot commit.
    let o = preset_sh(&f, "default", &ident, &script);
    assert_ne!(o.code(), 0, "{o}");
    assert!(o.err().contains("Author identity unknown"), "{o}");
    std::fs::remove_dir_all(f.ws.join(".git")).unwrap();
    let o = preset_sh(&f, "coding-agent", &ident, &script);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "Env Author <env@example.test> first\nfeature\nEnv Author <env@example.test> second\nEnv Author <env@example.test> first\n", "{o}");
    // The author from ~/.gitconfig, readable (and only readable) under coding-agent.
    std::fs::remove_dir_all(f.ws.join(".git")).unwrap();
    let gitconfig = f.home.join(".gitconfig");
    put(&f, &gitconfig, "[user]\n\tname = Config Author\n\temail = config@example.test\n");
    let o = preset_sh(&f, "coding-agent", &[], &script);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().starts_with("Config Author <config@example.test> first\nfeature\n"), "{o}");
    // ~/.config/git's settings are read (a global ignore file), its credential store not.
    let xdg_git = f.home.join(".config/git");
    mkdir(&xdg_git, f.user);
    mkdir(&f.home.join(".config"), f.user);
    put(&f, &xdg_git.join("ignore"), "*.scratch\n");
    put(&f, &xdg_git.join("credentials"), "https://u:git-cred-must-stay-out@example.test\n");
    let o = preset_sh(
        &f,
        "coding-agent",
        &[],
        "touch x.scratch y.txt && git status --porcelain && cat ~/.config/git/credentials",
    );
    assert_ne!(o.code(), 0, "the credential store must not be readable\n{o}");
    assert_eq!(o.out(), "?? y.txt\n", "{o}");
    o.assert_absent("git-cred-must-stay-out", "~/.config/git/credentials");
    let o = f.host(&["cat", xdg_git.join("credentials").to_str().unwrap()]);
    assert!(o.out().contains("git-cred-must-stay-out"), "control: the host reads it\n{o}");
    let o = preset_sh(&f, "coding-agent", &[], "git config --global user.name Agent");
    assert_ne!(o.code(), 0, "~/.gitconfig is protected\n{o}");
    assert!(read(&gitconfig).contains("Config Author"), "~/.gitconfig unchanged");
}

/// A wheel of the pure-Python package `tinypkg` written by hand (a wheel is a zip).
fn make_wheel(f: &Fixture, dir: &Path) {
    mkdir(dir, f.user);
    let src = r#"
import sys, zipfile
files = {
    "tinypkg/__init__.py": "def hello():\n    return 'hi from tinypkg'\n",
    "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
    "tinypkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: paddock-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join(f"{n},,\n" for n in files) + "tinypkg-0.1.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1] + "/tinypkg-0.1-py3-none-any.whl", "w") as z:
    for n, t in files.items():
        z.writestr(n, t)
    z.writestr("tinypkg-0.1.dist-info/RECORD", record)
"#;
    let o = f.host(&py(src, &[dir.to_str().unwrap()]));
    assert_eq!(o.code(), 0, "building the wheel\n{o}");
}

fn pip_workflow_under_coding_agent(user: User) {
    let f = Fixture::new(user);
    let wheels = f.ws.join("wheels");
    make_wheel(&f, &wheels);
    // pip's settings come as PIP_* variables (no index: the wheel directory only); a
    // credential-looking PIP_ name stays behind.
    let env = [
        ("PIP_NO_INDEX", "1"),
        ("PIP_FIND_LINKS", wheels.to_str().unwrap()),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ("PIP_INDEX_TOKEN", "pip-token-must-stay-out"),
    ];
    let o = preset_sh(
        &f,
        "coding-agent",
        &env,
        "python3 -m venv v && v/bin/pip install -q tinypkg && v/bin/python -c 'import os, tinypkg; print(tinypkg.hello(), os.environ.get(\"PIP_INDEX_TOKEN\"))'",
    );
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "hi from tinypkg None\n", "{o}");
    o.assert_absent("pip-token-must-stay-out", "a credential-looking PIP_ variable");
}

fn npm_workflow_under_coding_agent_and_ci(user: User) {
    let f = Fixture::new(user);
    if !Command::new("sh").args(["-c", "command -v npm"]).stdout(Stdio::null()).status().unwrap().success() {
        eprintln!("skipped: npm is not installed on this machine");
        return;
    }
    // A package, packed and put into the user's npm cache on the host (the "registry").
    let pkg = f.root.join("tinynpm");
    mkdir(&pkg, f.user);
    put(&f, &pkg.join("package.json"), r#"{"name":"tinynpm","version":"1.0.0","main":"index.js"}"#);
    put(&f, &pkg.join("index.js"), "module.exports = () => 'hi from tinynpm';\n");
    let npm_home = [("HOME", f.home.to_str().unwrap())];
    let packed = f.launch(
        &["sh", "-c", "cd \"$0\" && npm pack -q >/dev/null && npm cache add ./tinynpm-1.0.0.tgz && node -e 'const c=require(\"crypto\"),fs=require(\"fs\");process.stdout.write(\"sha512-\"+c.createHash(\"sha512\").update(fs.readFileSync(\"tinynpm-1.0.0.tgz\")).digest(\"base64\"))'", pkg.to_str().unwrap()].map(OsString::from),
        &npm_home,
        None,
    );
    assert_eq!(packed.code(), 0, "npm pack / cache add on the host\n{packed}");
    let integrity = packed.out();
    put(&f, &f.ws.join("package.json"), r#"{"name":"app","version":"1.0.0","dependencies":{"tinynpm":"1.0.0"}}"#);
    put(
        &f,
        &f.ws.join("package-lock.json"),
        &format!(
            r#"{{"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{{"":{{"name":"app","version":"1.0.0","dependencies":{{"tinynpm":"1.0.0"}}}},"node_modules/tinynpm":{{"version":"1.0.0","resolved":"https://registry.npmjs.org/tinynpm/-/tinynpm-1.0.0.tgz","integrity":"{integrity}"}}}}}}"#
        ),
    );
    let script = "npm ci --offline --no-audit --no-fund 1>&2 && node -e 'console.log(require(\"tinynpm\")())'";
    // coding-agent: the cache is ~/.npm (writable); ~/.npmrc stays denied, and npm takes
    // its settings from npm_config_* instead.
    put(&f, &f.home.join(".npmrc"), "//registry.example.test/:_authToken=npmrc-token-must-stay-out\n");
    let env = [("npm_config_registry", "http://registry.example.test/")];
    let o = preset_sh(&f, "coding-agent", &env, &format!("{script} && npm config get registry && cat ~/.npmrc"));
    assert_ne!(o.code(), 0, "~/.npmrc must not be readable\n{o}");
    assert_eq!(o.out(), "hi from tinynpm\nhttp://registry.example.test/\n", "{o}");
    o.assert_absent("npmrc-token-must-stay-out", "~/.npmrc");
    // ci: HOME is the sandbox's /tmp; the cache comes through npm_config_cache.
    std::fs::remove_dir_all(f.ws.join("node_modules")).unwrap();
    let cache = f.ws.join(".npm-cache");
    let o = f.launch(
        &["sh", "-c", "cp -R \"$HOME/.npm/.\" \"$0\"", cache.to_str().unwrap()].map(OsString::from),
        &npm_home,
        None,
    );
    assert_eq!(o.code(), 0, "{o}");
    let o = preset_sh(&f, "ci", &[("npm_config_cache", cache.to_str().unwrap())], script);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "hi from tinynpm\n", "{o}");
}

fn make_gcc_workflow_under_coding_agent_and_ci(user: User) {
    let f = Fixture::new(user);
    put(&f, &f.ws.join("hello.c"), "#include <stdio.h>\nint main(void) { puts(\"hello from gcc\"); return 0; }\n");
    put(&f, &f.ws.join("Makefile"), "hello: hello.c\n\tgcc -O1 -o $@ $<\n");
    for preset in ["coding-agent", "ci"] {
        let o = preset_sh(&f, preset, &[], "make -s && ./hello && rm hello");
        assert_eq!((o.code(), o.out()), (0, "hello from gcc\n".to_string()), "{preset}\n{o}");
        assert!(!f.ws.join("hello").exists(), "{preset}: the build ran in the workspace");
    }
}

fn read_only_reads_greps_and_logs_but_cannot_write(user: User) {
    let f = Fixture::new(user);
    put(&f, &f.ws.join("notes.txt"), "alpha\nneedle here\nomega\n");
    let git = "git -c user.name=Host -c user.email=host@example.test";
    let o = f.host(&["sh", "-c", &format!("git init -q && git add notes.txt && {git} commit -qm 'host commit'")]);
    assert_eq!(o.code(), 0, "{o}");
    let run = |argv: &[&str]| {
        let mut v: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--policy".into(), "read-only".into()];
        v.extend(["--workspace".into(), f.ws.clone().into(), "--".into()]);
        v.extend(argv.iter().map(OsString::from));
        f.launch(&v, &[], None)
    };
    let o = run(&["cat", "notes.txt"]);
    assert_eq!((o.code(), o.out()), (0, "alpha\nneedle here\nomega\n".to_string()), "{o}");
    let o = run(&["grep", "-n", "needle", "notes.txt"]);
    assert_eq!((o.code(), o.out()), (0, "2:needle here\n".to_string()), "{o}");
    let o = run(&["git", "log", "--format=%s"]);
    assert_eq!((o.code(), o.out()), (0, "host commit\n".to_string()), "{o}");
    // Writes fail: a program the list does not admit is denied, and an admitted one
    // that tries to write cannot.
    let o = run(&["touch", "new.txt"]);
    assert_eq!(o.code(), 77, "{o}");
    let o = run(&["find", ".", "-maxdepth", "0", "-fprint", "written.txt"]);
    assert_ne!(o.code(), 0, "{o}");
    let o = run(&["git", "log", "--output=written.txt"]);
    assert_ne!(o.code(), 0, "{o}");
    assert!(!f.ws.join("new.txt").exists() && !f.ws.join("written.txt").exists(), "nothing was written");
    // Control: the same write works on the host.
    let o = f.host(&["find", ".", "-maxdepth", "0", "-fprint", "written.txt"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(f.ws.join("written.txt").exists());
}

fn program_outside_the_view_is_named_with_the_entry_to_add(user: User) {
    let f = Fixture::new(user);
    // `tool` resolves on PATH (a link in the workspace) to a program in a directory the
    // default policy does not grant, as cargo in ~/.cargo/bin resolves to rustup.
    let bin = f.outside.join("bin");
    mkdir(&bin, f.user);
    let real = bin.join("real-tool");
    write(&real, "#!/bin/sh\necho tool ran\n", 0o755);
    let links = f.ws.join("bin");
    mkdir(&links, f.user);
    std::os::unix::fs::symlink(&real, links.join("tool")).unwrap();
    let path = format!("{}:{PATH}", links.display());
    let env = [("PATH", path.as_str())];
    // Control: on the host it runs.
    let o = f.launch(&["tool".into()], &env, None);
    assert_eq!((o.code(), o.out()), (0, "tool ran\n".to_string()), "{o}");
    let o = f.launch(&[f.bin.clone().into(), "run".into(), "--".into(), "tool".into()], &env, None);
    assert_eq!(o.code(), 77, "{o}");
    let err = o.err();
    assert!(err.contains(&format!("`tool` resolves to {}", real.display())), "{o}");
    assert!(err.contains(&format!("add \"{}\" to [filesystem] read", bin.display())), "{o}");
    // `check` says the same.
    let o = f.launch(&[f.bin.clone().into(), "check".into(), "--".into(), "tool".into()], &env, None);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.out().contains("outside the sandbox view"), "{o}");
}

fn mcp_read_file_of_binary_is_base64_and_a_call_running_at_sigterm_is_answered(user: User) {
    let f = Fixture::new(user);
    let bytes: &[u8] = &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];
    std::fs::write(f.ws.join("image.png"), bytes).unwrap();
    chown(&f.ws.join("image.png"), f.user.uid());
    put(&f, &f.ws.join("text.txt"), "caf\u{e9}\n");
    let mut child = spawn(
        f.command(&[f.bin.clone().into(), "mcp".into(), "--workspace".into(), f.ws.clone().into()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .unwrap();
    // A server that stops answering fails the test instead of hanging it.
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        if watch.recv_timeout(HANG) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |v: serde_json::Value| writeln!(stdin, "{v}").unwrap();
    send(
        serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"presets-test","version":"1"}}}),
    );
    let _ = lines.next().expect("initialize answered").unwrap();
    send(serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    let mut read_file = |id: u32, path: &str| -> serde_json::Value {
        send(
            serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"read_file","arguments":{"path":path}}}),
        );
        let line = lines.next().expect("an answer").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["result"]["structuredContent"].clone()
    };
    let bin = read_file(2, "image.png");
    assert_eq!(bin["content"], "iVBORw0KGgoA/w==", "{bin}");
    assert_eq!(bin["encoding"], "base64", "{bin}");
    let text = read_file(3, "text.txt");
    assert_eq!(text["content"], "caf\u{e9}\n", "{text}");
    assert!(text.get("encoding").is_none(), "{text}");
    // A call still running at SIGTERM gets its outcome before the server exits.
    send(
        serde_json::json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"command","arguments":{"argv":["sh","-c","sleep 1; echo done"]}}}),
    );
    let audit = f.root.join("state/audit.jsonl");
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&audit).unwrap_or_default().contains("sleep 1; echo done") {
        assert!(t.elapsed() < HANG, "the call never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = f.host(&["kill", "-TERM", &child.id().to_string()]);
    assert_eq!(o.code(), 0, "{o}");
    let line = lines.next().expect("the running call is answered").unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["id"], 4, "{v}");
    assert_eq!(v["result"]["structuredContent"]["stdout"], "done\n", "{v}");
    assert!(child.wait().unwrap().success());
    let _ = done.send(());
    drop(stdin);
}

/// The cargo workflow needs the rustup toolchain of this machine, which lives under
/// /root (mode 0700): it runs as root only, with root's own home, as a user's layout is.
#[test]
fn cargo_workflow_under_coding_agent_and_ci_as_root() {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else { return };
    let cargo = home.join(".cargo/bin/cargo");
    if !cargo.exists() || !home.join(".rustup").is_dir() {
        eprintln!("skipped: no rustup toolchain under {}", home.display());
        return;
    }
    let f = Fixture::new(User::Root);
    // A crate with a dependency from a vendored directory source (what `cargo vendor`
    // makes), replacing crates.io: no network.
    let dep = f.ws.join("vendor/tinydep");
    mkdir(&dep.join("src"), f.user);
    put(&f, &dep.join("Cargo.toml"), "[package]\nname = \"tinydep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    put(&f, &dep.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n");
    put(&f, &dep.join(".cargo-checksum.json"), "{\"files\":{},\"package\":null}");
    put(
        &f,
        &f.ws.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ntinydep = \"0.1\"\n",
    );
    mkdir(&f.ws.join("src"), f.user);
    put(
        &f,
        &f.ws.join("src/main.rs"),
        "fn main() { println!(\"answer {}\", tinydep::answer()); }\n#[test]\nfn answers() { assert_eq!(tinydep::answer(), 42); }\n",
    );
    mkdir(&f.ws.join(".cargo"), f.user);
    put(
        &f,
        &f.ws.join(".cargo/config.toml"),
        "[source.crates-io]\nreplace-with = \"vendored\"\n\n[source.vendored]\ndirectory = \"vendor\"\n",
    );
    let path = format!("{}:{PATH}", home.join(".cargo/bin").display());
    let home = home.to_str().unwrap();
    let script =
        "cargo build --offline -q && cargo test --offline -q 2>&1 | grep -c 'test result: ok' && ./target/debug/app";
    // The default preset grants no ~/.cargo/bin: the message says which entry to add.
    let o = f.launch(
        &[f.bin.clone().into(), "run".into(), "--".into(), "cargo".into(), "--version".into()],
        &[("HOME", home), ("PATH", &path)],
        None,
    );
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.err().contains("add \"~/.cargo/bin\" to [filesystem] read"), "{o}");
    // coding-agent: the toolchain under the home is readable.
    let o = preset_sh(&f, "coding-agent", &[("HOME", home), ("PATH", &path)], script);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "1\nanswer 42\n", "{o}");
    // ci: HOME is the sandbox's /tmp, so RUSTUP_HOME (passed, as CI images set it) says
    // where the toolchains are.
    std::fs::remove_dir_all(f.ws.join("target")).unwrap();
    let rustup_home = format!("{home}/.rustup");
    let o = preset_sh(&f, "ci", &[("HOME", home), ("PATH", &path), ("RUSTUP_HOME", &rustup_home)], script);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "1\nanswer 42\n", "{o}");
}

/// The fallback `$STATE` (a home this user cannot write) is announced once per state
/// directory, not on every command. Only uid 65534 meets it (root writes any home).
#[test]
fn state_fallback_warning_once_per_state_dir_as_nobody() {
    let f = Fixture::new(User::Nobody);
    let home = f.root.join("root-owned-home");
    std::fs::create_dir(&home).unwrap();
    chmod(&home, 0o755);
    let [tmp_a, tmp_b] = ["tmp-a", "tmp-b"].map(|d| f.root.join(d));
    for d in [&tmp_a, &tmp_b] {
        mkdir(d, f.user);
    }
    let run = |tmp: &Path| {
        let env = [("HOME", home.to_str().unwrap()), ("PADDOCK_STATE_DIR", ""), ("TMPDIR", tmp.to_str().unwrap())];
        let o = f.launch(&[f.bin.clone().into(), "run".into(), "--".into(), "true".into()], &env, None);
        assert_eq!(o.code(), 0, "{o}");
        o.err().contains("fallback directory")
    };
    assert!(run(&tmp_a), "the first command in the fallback says so");
    assert!(!run(&tmp_a), "the second is quiet");
    assert!(tmp_a.join("paddock-65534/state/audit.jsonl").exists());
    assert!(run(&tmp_b), "another state directory is announced once too");
}
