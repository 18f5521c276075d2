//! End-to-end: `paddock check`, `paddock policy lint` and `paddock policy show`, driving
//! the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn paddock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paddock"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run paddock");
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

fn write_policy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn readme_command_works_on_the_embedded_default() {
    let (code, out, err) = run(paddock().args(["check", "--", "git", "status"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("allow: "), "{out}");
}

#[test]
fn json_decisions_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let pol = write_policy(
        t.path(),
        "p.toml",
        "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\ndeny = [\"${WORKSPACE}/.env\"]\n[commands]\nallow = [\"git status\", \"git log **\"]\ndeny = [\"git log -p **\"]\n[network]\nallow = [\"github.com\", \"*.crates.io\"]\ndeny = [\"gist.github.com\"]\nallow_private = [\"127.0.0.0/8\"]\n[network.hosts]\n\"github.com\" = \"127.0.0.1\"\n\"index.crates.io\" = \"127.0.0.1\"\n",
    );
    let check = |extra: &[&str]| {
        let mut c = paddock();
        c.arg("check").arg("--policy").arg(&pol).arg("--workspace").arg(&ws).arg("--json").args(extra).current_dir(&ws);
        let (code, out, err) = run(&mut c);
        let v = json(&out);
        assert!(err.is_empty(), "{err}");
        assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
        (
            code,
            v["decision"].as_str().unwrap().to_string(),
            v["rule"].as_str().unwrap().to_string(),
            v["reason"].as_str().unwrap().to_string(),
        )
    };
    let (code, d, rule, _) = check(&["--", "git", "status"]);
    assert_eq!((code, d.as_str(), rule.as_str()), (0, "allow", "commands.allow[0]"));
    let (code, d, rule, _) = check(&["--", "git", "log", "-n", "1"]);
    assert_eq!((code, d.as_str(), rule.as_str()), (0, "allow", "commands.allow[1]"));
    let (code, d, rule, reason) = check(&["--", "git", "log", "-p", "x"]);
    assert_eq!((code, d.as_str(), rule.as_str()), (77, "deny", "commands.deny[0]"));
    assert!(reason.contains("git log -p **"), "{reason}");
    let (code, d, rule, _) = check(&["--", "git", "push"]);
    assert_eq!((code, d.as_str(), rule.as_str()), (77, "deny", "default"));
    let (code, _, rule, _) = check(&["--write", "src/main.rs"]);
    assert_eq!((code, rule.as_str()), (0, "filesystem.write[0]"));
    let (code, _, rule, _) = check(&["--read", ".env"]);
    assert_eq!((code, rule.as_str()), (77, "filesystem.deny[0]"));
    let (code, _, rule, _) = check(&["--read", "../../../../etc/passwd"]);
    assert_eq!((code, rule.as_str()), (77, "default"));
    let (code, _, rule, _) = check(&["--write", "/usr/bin/x"]);
    assert_eq!((code, rule.as_str()), (77, "default"));
    let (code, _, rule, _) = check(&["--connect", "GitHub.com.:443"]);
    assert_eq!((code, rule.as_str()), (0, "network.allow[0]"));
    let (code, _, rule, _) = check(&["--connect", "github.com:22"]);
    assert_eq!((code, rule.as_str()), (77, "default"));
    let (code, _, rule, _) = check(&["--connect", "gist.github.com"]);
    assert_eq!((code, rule.as_str()), (77, "network.deny[0]"));
    let (code, _, rule, _) = check(&["--connect", "index.crates.io"]);
    assert_eq!((code, rule.as_str()), (0, "network.allow[1]"));
    let (code, _, rule, _) = check(&["--connect", "crates.io"]);
    assert_eq!((code, rule.as_str()), (77, "default"));
}

#[test]
fn human_output_names_rule_and_reason() {
    let (code, out, _) = run(paddock().args(["check", "--connect", "example.com"]));
    assert_eq!(code, 77);
    assert!(out.starts_with("deny: ") && out.contains("(default)") && out.contains("[network] allow"), "{out}");
}

#[test]
fn every_bad_input_class_is_located() {
    let t = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("syntax", "version = 1\n[filesystem\n", ":2:"),
        ("unknown key", "version = 1\n[filesystem]\nreed = []\n", ":3:1: error: unknown key `reed`"),
        ("wrong type", "version = 1\n[limits]\nmax_processes = \"many\"\n", ":3:17: error: invalid type"),
        ("relative path", "version = 1\n[filesystem]\nread = [\"usr\"]\n", ":3:9: error: relative path"),
        ("unknown variable", "version = 1\n[filesystem]\nread = [\"${HOMEDIR}/x\"]\n", ":3:9: error: unknown variable"),
        ("bad glob", "version = 1\n[filesystem]\ndeny = [\"/a/[b\"]\n", ":3:9: error: bad glob"),
        ("wildcard in the middle", "version = 1\n[network]\nallow = [\"a.*.com\"]\n", ":3:10: error: bad host pattern"),
        ("bad port", "version = 1\n[network]\nallow = [\"a.com:70000\"]\n", ":3:10: error: bad host pattern"),
        ("bad cidr", "version = 1\n[network]\nallow_private = [\"300.0.0.0/8\"]\n", ":3:18: error: bad CIDR"),
        ("bad duration", "version = 1\n[limits]\ntimeout = \"soon\"\n", ":3:11: error: bad duration"),
        ("bad size", "version = 1\n[limits]\nmax_memory = \"2 jiggabytes\"\n", ":3:14: error: bad size"),
        ("empty command", "version = 1\n[commands]\nallow = [\"\"]\n", ":3:10: error: empty command pattern"),
        (
            "malformed command",
            "version = 1\n[commands]\nallow = [\"git 'x\"]\n",
            ":3:10: error: malformed command pattern",
        ),
        ("missing extends", "version = 1\nextends = [\"nope.toml\"]\n", ":2:12: error: cannot read policy"),
        ("cyclic extends", "version = 1\nextends = [\"cyclic extends.toml\"]\n", ":2:12: error: `extends` cycle"),
        ("missing version", "[env]\npass = []\n", ":1:1: error: missing `version`"),
    ];
    for (name, text, want) in cases {
        let p = write_policy(t.path(), &format!("{name}.toml"), text);
        for args in [vec!["policy", "lint"], vec!["check", "--connect", "a.com", "--policy"]] {
            let mut c = paddock();
            c.args(&args).arg(&p);
            let (code, out, err) = run(&mut c);
            assert_eq!(code, 78, "{name}: {out}{err}");
            let located = format!("{}{want}", p.display());
            assert!(err.contains(&located), "{name}: expected `{located}` in:\n{err}");
            assert!(err.contains("hint:") || *name == "syntax", "{name}: no hint in:\n{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn missing_policy_file_and_usage_errors() {
    let (code, _, err) = run(paddock().args(["check", "--policy", "/nonexistent/p.toml", "--", "ls"]));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("cannot read policy /nonexistent/p.toml: No such file or directory"), "{err}");
    assert!(!err.contains(":1:1") && !err.contains("extends"), "{err}");
    let (code, _, _) = run(paddock().args(["check"]));
    assert_eq!(code, 64);
    let (code, _, _) = run(paddock().args(["check", "--read", "a", "--write", "b"]));
    assert_eq!(code, 64);
    let (code, _, _) = run(paddock().args(["frobnicate"]));
    assert_eq!(code, 64);
    let (code, _, err) = run(paddock().args(["check", "--workspace", "/nonexistent-ws", "--", "ls"]));
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = run(paddock().args(["check", "--connect", "a.com:x"]));
    assert_eq!(code, 64, "{err}");
    let (code, out, _) = run(paddock().args(["--help"]));
    assert_eq!(code, 0);
    assert!(out.contains("check"));
}

#[test]
fn presets_lint_clean() {
    let dir = repo().join("policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into()).collect();
    for want in ["default.toml", "read-only.toml", "coding-agent.toml", "ci.toml"] {
        assert!(names.contains(&want.to_string()), "missing preset {want}");
    }
    let (code, out, err) = run(paddock().args(["policy", "lint"]).args(&files));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("error"), "{err}");
    assert_eq!(out.matches(": ok").count(), files.len(), "{out}");
}

#[test]
fn embedded_default_is_policies_default_toml() {
    let t = tempfile::tempdir().unwrap();
    let show = |extra: &[&std::ffi::OsStr]| {
        let mut c = paddock();
        c.args(["policy", "show", "--workspace"]).arg(t.path()).args(extra);
        let (code, out, err) = run(&mut c);
        assert_eq!(code, 0, "{err}");
        out.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
    };
    let preset = repo().join("policies/default.toml");
    // Read from disk, the file is protected too (the policy's own file): the one difference.
    let from_file = show(&["--policy".as_ref(), preset.as_os_str()]);
    let own = format!(", \"{}\"]", preset.canonicalize().unwrap().display());
    assert!(from_file.contains(&own), "{from_file}");
    assert_eq!(show(&[]), from_file.replace(&own, "]"));
}

#[test]
fn show_prints_a_policy_that_lints_and_merges_extends() {
    let t = tempfile::tempdir().unwrap();
    write_policy(t.path(), "base.toml", "version = 1\n[network]\nallow = [\"a.com\"]\n[limits]\ntimeout = \"1m\"\n");
    let child = write_policy(
        t.path(),
        "child.toml",
        "version = 1\nextends = [\"base.toml\"]\n[network]\nallow = [\"b.com\"]\nallow_private = [\"127.0.0.1/32\"]\n[network.hosts]\n\"b.com\" = \"127.0.0.1\"\n[limits]\ntimeout = \"2m\"\n",
    );
    let (code, out, err) = run(paddock().args(["policy", "show", "--policy"]).arg(&child));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("allow = [\"a.com\", \"b.com\"]"), "{out}");
    assert!(out.contains("timeout = \"2m\""), "{out}");
    let shown = write_policy(t.path(), "shown.toml", &out);
    let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&shown));
    assert_eq!(code, 0, "{err}");
    // the merged list keeps the base's rule ids first
    let (code, out, _) = run(paddock().args(["check", "--json", "--connect", "b.com", "--policy"]).arg(&child));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["rule"], "network.allow[1]");
}

/// Lint's words about pins and addresses: "an unspecified address", no `allow_private`
/// entry suggested for 0.0.0.0, and an octet out of range said as such.
#[test]
fn pin_and_address_wording() {
    let t = tempfile::tempdir().unwrap();
    let p = write_policy(
        t.path(),
        "p.toml",
        "version = 1\n[network]\nallow = [\"a.test\"]\n[network.hosts]\n\"a.test\" = \"0.0.0.0\"\n",
    );
    let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&p));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("pinned to 0.0.0.0, an unspecified address"), "{err}");
    assert!(
        err.contains("pin the name to the address of the server it should reach") && !err.contains("0.0.0.0/32"),
        "{err}"
    );
    let (code, _, err) = run(paddock().args(["check", "--connect", "999.1.1.1"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("each of its four numbers must be from 0 to 255") && !err.contains("dotted quad"), "{err}");
    let p = write_policy(t.path(), "q.toml", "version = 1\n[network]\nallow = [\"999.1.1.1\"]\n");
    let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&p));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("must be from 0 to 255"), "{err}");
}

/// Lints a policy of `text` written as `name`; it must fail with 78: stderr.
fn lint_78(dir: &Path, name: &str, text: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&p));
    assert_eq!(code, 78, "{name}: {err}");
    assert!(!err.contains("--policy") && !err.contains("panicked"), "{err}");
    err
}

/// A duplicate key is named.
#[test]
fn a_duplicate_key_is_named() {
    let t = tempfile::tempdir().unwrap();
    let err = lint_78(t.path(), "dup.toml", b"version = 1\n[commands]\nallow = []\nallow = [\"ls\"]\n");
    assert!(err.contains("dup.toml:4:1: error: duplicate key `allow`"), "{err}");
    assert!(err.contains("hint: "), "{err}");
}

/// Two `[network.hosts]` pins of one file for one name are an error naming both.
#[test]
fn two_pins_for_one_name_are_located() {
    let t = tempfile::tempdir().unwrap();
    let err = lint_78(
        t.path(),
        "pins.toml",
        b"version = 1\n[network]\nallow = [\"a.test\"]\n[network.hosts]\n\"a.test\" = \"127.0.0.2\"\n\"A.TEST.\" = \"127.0.0.1\"\n",
    );
    assert!(
        err.contains("pins.toml:6:1: error: `A.TEST.` in [network.hosts] names the same host as `a.test` (at 5:1)"),
        "{err}"
    );
}

/// `extends` of a bare name that is neither a file nor a preset lists the presets.
#[test]
fn extends_of_an_unknown_bare_name_lists_the_presets() {
    let t = tempfile::tempdir().unwrap();
    let err = lint_78(t.path(), "ext.toml", b"version = 1\nextends = [\"nosuchpreset\"]\n");
    assert!(
        err.contains("ext.toml:2:12: error: `extends` names `nosuchpreset`: no such file, and not an embedded preset"),
        "{err}"
    );
    assert!(err.contains("claude") && err.contains("gemini"), "{err}");
}

/// A byte that is not UTF-8 is located where it is, without the hint about paths.
#[test]
fn invalid_utf8_is_located_at_the_bad_byte() {
    let t = tempfile::tempdir().unwrap();
    let err = lint_78(t.path(), "utf8.toml", b"version = 1\n# caf\xe9\n");
    assert!(err.contains("utf8.toml:2:6: error: byte 0xe9 is not UTF-8 text"), "{err}");
    assert!(!err.contains("extends"), "{err}");
}

/// `[filesystem]` paths the kernel cannot take (a NUL, over PATH_MAX, a name over
/// NAME_MAX) are policy errors, located, from lint and from every command that loads.
#[test]
fn paths_the_kernel_cannot_take_are_located_policy_errors() {
    let t = tempfile::tempdir().unwrap();
    let long = format!("/{}", "a/".repeat(2100));
    let name = format!("/tmp/{}", "n".repeat(256));
    for (file, entry, want) in [
        ("nul.toml", "/tmp/a\\u0000b".to_string(), "contains a NUL byte"),
        ("long.toml", long, "longer than a path can be"),
        ("name.toml", name, "a name of 256 bytes"),
    ] {
        let p = write_policy(t.path(), file, &format!("version = 1\n[filesystem]\nread = [\"{entry}\"]\n"));
        for args in [vec!["policy", "lint"], vec!["check", "--read", "/tmp/x", "--policy"]] {
            let (code, out, err) = run(paddock().args(&args).arg(&p));
            assert_eq!(code, 78, "{file}: {out}{err}");
            assert!(
                err.contains(&format!("{}:3:9: error: path `", p.display())) && err.contains(want),
                "{file}: {err}"
            );
            assert!(err.contains("hint: ") && err.len() < 1000, "{file}: {err}");
        }
    }
}

/// A `max_memory` no process can start under is refused, naming the floor.
#[test]
fn a_max_memory_too_small_to_start_anything_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = write_policy(t.path(), "p.toml", "version = 1\n[limits]\nmax_memory = \"1B\"\n");
    let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&p));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(":3:14: error: max_memory = 1B is too small to start a process"), "{err}");
    assert!(err.contains("max_memory is at least 8MiB"), "{err}");
    let p = write_policy(t.path(), "ok.toml", "version = 1\n[limits]\nmax_memory = \"8MiB\"\n");
    let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&p));
    assert_eq!(code, 0, "{err}");
}

/// `policy lint` warns of an `ask` entry an allow or deny entry of the same pattern
/// decides first, naming both.
#[test]
fn lint_warns_of_an_ask_entry_never_asked() {
    let t = tempfile::tempdir().unwrap();
    let p = write_policy(
        t.path(),
        "p.toml",
        "version = 1\n[network]\ndeny = [\"a.test\"]\nask = [\"a.test\"]\n[commands]\nallow = [\"ls **\"]\nask = [\"ls **\"]\n",
    );
    let (code, out, err) = run(paddock().args(["policy", "lint"]).arg(&p));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");
    let at = p.display();
    assert!(
        err.contains(&format!(
            "{at}:4:8: warning: network.ask[0] `a.test` is never asked: network.deny[0] `a.test` (at 3:9)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{at}:7:8: warning: commands.ask[0] `ls **` is never asked: commands.allow[0] `ls **` (at 6:10)"
        )),
        "{err}"
    );
}

/// `check --http` does not promise a secret whose `env:` source variable is unset.
#[test]
fn check_http_says_when_a_secret_source_is_unset() {
    let t = tempfile::tempdir().unwrap();
    let p = write_policy(
        t.path(),
        "p.toml",
        "version = 1\n[network]\nallow = [\"a.test\"]\n[secrets.s]\nfrom = \"env:PADDOCK_TEST_NOPE_TOK\"\nhosts = [\"a.test\"]\nenv = \"S_TOK\"\n",
    );
    let check = |value: Option<&str>| {
        let mut c = paddock();
        c.args(["check", "--http", "GET https://a.test/x", "--policy"]).arg(&p).current_dir(t.path());
        match value {
            Some(v) => c.env("PADDOCK_TEST_NOPE_TOK", v),
            None => c.env_remove("PADDOCK_TEST_NOPE_TOK"),
        };
        run(&mut c)
    };
    for value in [None, Some("")] {
        let (code, out, err) = check(value);
        assert_eq!(code, 0, "{out}{err}");
        assert!(!out.contains("would be injected"), "{out}");
        assert!(
            out.contains("secret `s` would not be injected: its source variable PADDOCK_TEST_NOPE_TOK is unset"),
            "{out}"
        );
    }
    let (_, out, _) = check(Some("tok"));
    assert!(out.contains("secret `s` would be injected"), "{out}");
}

/// `policy suggest` on a log whose hash chain is broken says so, as `audit review` does.
#[test]
fn suggest_warns_of_a_broken_chain() {
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("audit.jsonl");
    for verb in ["revoke", "unrevoke"] {
        let (code, _, err) =
            run(paddock().env("PADDOCK_STATE_DIR", t.path()).args([verb, "network:a.test", "--audit"]).arg(&log));
        assert_eq!(code, 0, "{err}");
    }
    let suggest = || run(paddock().env("PADDOCK_STATE_DIR", t.path()).args(["policy", "suggest", "--audit"]).arg(&log));
    let (code, _, err) = suggest();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("broken"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap().replacen("a.test", "b.test", 1);
    std::fs::write(&log, text).unwrap();
    let (code, _, err) = suggest();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: this log's hash chain is broken, so what follows may not be what was recorded"),
        "{err}"
    );
    let (_, _, review) =
        run(paddock().env("PADDOCK_STATE_DIR", t.path()).args(["audit", "review", "--audit"]).arg(&log));
    assert_eq!(err.lines().next(), review.lines().next(), "the same warning");
}

/// Every `--help` that lists the presets lists all of them.
#[test]
fn help_lists_every_preset() {
    for cmd in [&["run"][..], &["check"], &["serve"], &["mcp"], &["policy", "show"], &["audit", "review"]] {
        let (code, out, err) = run(paddock().args(cmd).arg("--help"));
        assert_eq!(code, 0, "{cmd:?}: {err}");
        let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
        let listed = format!("embedded preset: {}", paddock_policy::preset_names().collect::<Vec<_>>().join(", "));
        assert!(flat.contains(&listed), "{cmd:?}: expected `{listed}` in:\n{out}");
    }
}

/// `policy lint FILE` of a file it cannot read says so without a word about `--policy`.
#[test]
fn lint_of_an_unreadable_file_has_no_policy_flag_hint() {
    let t = tempfile::tempdir().unwrap();
    for f in [t.path().join("missing.toml"), t.path().to_path_buf()] {
        let (code, _, err) = run(paddock().args(["policy", "lint"]).arg(&f));
        assert_eq!(code, 78, "{err}");
        assert!(err.contains("cannot read policy"), "{err}");
        assert!(!err.contains("--policy"), "{err}");
    }
    // `--policy` still gets its hint.
    let (code, _, err) = run(paddock().args(["check", "--connect", "a.test", "--policy"]).arg(t.path()));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("hint: --policy takes"), "{err}");
}

/// A state directory that cannot be made (PADDOCK_STATE_DIR names a regular file) stops
/// every command the same way: the same code and words, naming the variable that names it
/// (found by a test: 125 from some, 78 from others, and a hint to set the variable that was
/// set).
#[test]
fn an_unusable_state_directory_is_said_alike_by_every_command() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    for args in [
        &["check", "--", "ls"][..],
        &["approvals"],
        &["run", "--", "true"],
        &["audit", "verify"],
        &["revoke", "--list"],
    ] {
        let (code, _, err) = run(paddock().args(args).env("PADDOCK_STATE_DIR", &file).current_dir(t.path()));
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.contains("cannot create the state directory") && err.contains("PADDOCK_STATE_DIR names it"),
            "{args:?}: {err}"
        );
    }
}
