//! Unit tests of loading, every class of bad policy, and the decisions.

use std::path::{Path, PathBuf};

use super::*;

fn vars(ws: &str) -> Vars {
    Vars { workspace: ws.into(), home: Some("/home/u".into()), tmpdir: "/tmp".into(), caller_path: None }
}

fn policy(text: &str) -> Policy {
    Policy::from_toml_str("p.toml", text, &vars("/nonexistent-ws")).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    Policy::from_toml_str("p.toml", text, &vars("/nonexistent-ws")).expect_err("policy should be invalid").to_string()
}

fn rule(d: &Decision) -> (&'static str, &str) {
    (d.verdict.as_str(), &d.rule)
}

#[test]
fn embedded_default_loads_and_is_sane() {
    let p = Policy::embedded_default(&vars("/nonexistent-ws")).unwrap();
    assert_eq!(p.enforcement, Enforcement::Strict);
    assert!(p.commands.is_none());
    assert!(!p.network.any_allowed());
    assert!(p.decide_write(Path::new("/nonexistent-ws/src/main.rs")).is_allow());
    assert!(p.decide_read(Path::new("/usr/bin/git")).is_allow());
    assert!(!p.decide_write(Path::new("/usr/bin/git")).is_allow());
    assert!(!p.decide_read(Path::new("/home/u/.ssh/id_ed25519")).is_allow());
    assert!(!p.decide_read(Path::new("/nonexistent-ws/.env")).is_allow());
    assert!(!p.decide_read(Path::new("/nonexistent-ws/deep/x/cert.pem")).is_allow());
    assert!(!p.decide_connect("github.com", 443).is_allow());
    assert_eq!(p.hash().len(), 64);
}

// ---------- bad input: every class gives FILE:LINE:COL and a hint ----------

#[test]
fn bad_syntax() {
    let e = error("version = 1\n[filesystem\n");
    assert!(e.starts_with("p.toml:2:"), "{e}");
}

#[test]
fn missing_and_wrong_version() {
    let e = error("[filesystem]\nread = [\"/usr\"]\n");
    assert!(e.starts_with("p.toml:1:1: error: missing `version`"), "{e}");
    assert!(e.contains("hint: put `version = 1`"), "{e}");
    let e = error("version = 2\n");
    assert!(e.starts_with("p.toml:1:11: error: unsupported policy version 2"), "{e}");
    let e = error("version = \"1\"\n");
    assert!(e.starts_with("p.toml:1:11: error: invalid type"), "{e}");
}

#[test]
fn unknown_keys_in_every_section() {
    for (text, key) in [
        ("version = 1\n[sandbox]\nenforce = \"strict\"\n", "enforce"),
        ("version = 1\n[commands]\nallowed = []\n", "allowed"),
        ("version = 1\n[network]\nalow = []\n", "alow"),
        ("version = 1\n[env]\npas = []\n", "pas"),
        ("version = 1\n[limits]\ntimout = \"1s\"\n", "timout"),
        ("version = 1\n[netwrk]\n", "netwrk"),
    ] {
        let e = error(text);
        assert!(e.contains(&format!("unknown key `{key}`")), "{e}");
        assert!(e.contains("hint: did you mean"), "{e}");
        assert!(e.starts_with("p.toml:"), "{e}");
    }
}

#[test]
fn bad_paths() {
    let e = error("version = 1\n[filesystem]\nread = [\"/usr\", \"src\"]\n");
    assert!(e.starts_with("p.toml:3:17: error: relative path `src`"), "{e}");
    assert!(e.contains("hint: paths must be absolute"), "{e}");
    let e = error("version = 1\n[filesystem]\nwrite = [\"${WORKSPAC}/x\"]\n");
    assert!(e.starts_with("p.toml:3:10: error: unknown variable `${WORKSPAC}`"), "{e}");
    let e = error("version = 1\n[filesystem]\ndeny = [\"${WORKSPACE}/[a\"]\n");
    assert!(e.starts_with("p.toml:3:9: error: bad glob"), "{e}");
    let e = error("version = 1\n[filesystem]\nread = [\"/usr/*\"]\n");
    assert!(e.contains("glob in `filesystem.read`"), "{e}");
}

#[test]
fn bad_commands() {
    for (pattern, msg) in [
        ("", "empty command pattern"),
        ("   ", "empty command pattern"),
        ("git 'log", "malformed command pattern"),
        ("./git status", "relative program path"),
        ("git ** status", "`**` must be the last token"),
        ("git a**", "`**` inside the argument"),
        ("g*t status", "bad program"),
        ("git [z", "bad glob"),
    ] {
        let e = error(&format!("version = 1\n[commands]\nallow = [\"ls\", {pattern:?}]\n"));
        assert!(e.starts_with("p.toml:3:16: error: "), "{pattern}: {e}");
        assert!(e.contains(msg), "{pattern}: {e}");
        assert!(e.contains("hint:"), "{pattern}: {e}");
    }
}

#[test]
fn bad_hosts_ports_cidrs() {
    for (entry, msg) in [
        ("git*hub.com", "wildcard may only be the whole first label"),
        ("api.*.com", "wildcard may only be the whole first label"),
        ("*", "wildcard"),
        ("github.com:0", "bad port"),
        ("github.com:99999", "bad port"),
        ("github.com:https", "bad port"),
        ("a..b", "empty label"),
        ("bad host.com", "cannot have"),
        ("*.10.0.0.1", "IP"),
    ] {
        let e = error(&format!("version = 1\n[network]\nallow = [{entry:?}]\n"));
        assert!(e.starts_with("p.toml:3:10: error: bad host pattern"), "{entry}: {e}");
        assert!(e.contains(msg), "{entry}: {e}");
    }
    let e = error("version = 1\n[network]\nallow_private = [\"10.0.0.0/33\"]\n");
    assert!(e.starts_with("p.toml:3:18: error: bad CIDR"), "{e}");
    let e = error("version = 1\n[network.hosts]\n\"a.test\" = \"localhost\"\n");
    assert!(e.starts_with("p.toml:3:12: error: bad address"), "{e}");
}

#[test]
fn bad_limits() {
    for (line, msg) in [
        ("timeout = \"12 parsecs\"", "bad duration"),
        ("timeout = 120", "has no unit"),
        ("timeout = \"0s\"", "longer than zero"),
        ("max_output = \"8 MeB\"", "unknown size unit"),
        ("max_memory = -1", "must be positive"),
        ("max_memory = \"1B\"", "max_memory = 1B is too small to start a process"),
        ("max_memory = \"7MiB\"", "max_memory = 7MiB is too small to start a process"),
        ("max_processes = 0", "positive integer"),
        ("max_open_files = \"many\"", "invalid type"),
        ("max_file_size = \"1 furlong\"", "unknown size unit"),
        ("max_file_size = 0", "must be positive"),
        ("max_file_size = \"0MiB\"", "must be positive"),
        ("max_file_size = true", "expected an integer or a string"),
    ] {
        let e = error(&format!("version = 1\n[limits]\n{line}\n"));
        assert!(e.starts_with("p.toml:3:"), "{line}: {e}");
        assert!(e.contains(msg), "{line}: {e}");
    }
}

#[test]
fn bad_enforcement_and_env() {
    let e = error("version = 1\n[sandbox]\nenforcement = \"lax\"\n");
    assert!(e.starts_with("p.toml:3:15: error: unknown enforcement `lax`"), "{e}");
    let e = error("version = 1\n[env]\npass = [\"BAD-NAME\"]\n");
    assert!(e.contains("bad variable pattern"), "{e}");
    let e = error("version = 1\n[env]\nset = { \"1X\" = \"y\" }\n");
    assert!(e.contains("bad variable name"), "{e}");
}

#[test]
fn all_problems_are_reported() {
    let e = error("version = 1\n[filesystem]\nread = [\"a\", \"b\"]\n");
    assert_eq!(e.matches("error:").count(), 2, "{e}");
}

// ---------- extends ----------

#[test]
fn extends_merges_and_detects_cycles() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(
        d.join("base.toml"),
        "version = 1\n[filesystem]\nread = [\"/usr\"]\n[limits]\ntimeout = \"10s\"\n[network]\nallow = [\"a.com\"]\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(
        d.join("sub/child.toml"),
        "version = 1\nextends = [\"../base.toml\"]\n[filesystem]\nread = [\"/etc\"]\n[limits]\ntimeout = \"20s\"\n",
    )
    .unwrap();
    let p = Policy::load(&d.join("sub/child.toml"), &vars("/w")).unwrap();
    let reads: Vec<_> = p.filesystem.read.iter().map(|r| r.path.clone()).collect();
    assert_eq!(reads, vec![PathBuf::from("/usr"), PathBuf::from("/etc")]);
    assert_eq!(p.limits.timeout, Some(std::time::Duration::from_secs(20)));
    assert_eq!(rule(&p.decide_connect("a.com", 443)), ("allow", "network.allow[0]"));
    assert_eq!(rule(&p.decide_read(Path::new("/etc/hosts"))), ("allow", "filesystem.read[1]"));

    std::fs::write(d.join("a.toml"), "version = 1\nextends = [\"b.toml\"]\n").unwrap();
    std::fs::write(d.join("b.toml"), "version = 1\nextends = [\"a.toml\"]\n").unwrap();
    let e = Policy::load(&d.join("a.toml"), &vars("/w")).unwrap_err().to_string();
    assert!(e.contains("b.toml:2:12: error: `extends` cycle: a.toml -> b.toml -> a.toml"), "{e}");
    std::fs::write(d.join("self.toml"), "version = 1\nextends = [\"self.toml\"]\n").unwrap();
    assert!(Policy::load(&d.join("self.toml"), &vars("/w")).unwrap_err().to_string().contains("cycle"));

    std::fs::write(d.join("missing.toml"), "version = 1\nextends = [\"nope.toml\"]\n").unwrap();
    let e = Policy::load(&d.join("missing.toml"), &vars("/w")).unwrap_err().to_string();
    assert!(e.contains("missing.toml:2:12: error: cannot read policy"), "{e}");

    std::fs::write(d.join("badbase.toml"), "version = 1\n[filesystem]\nread = [\"rel\"]\n").unwrap();
    std::fs::write(d.join("usesbad.toml"), "version = 1\nextends = [\"badbase.toml\"]\n").unwrap();
    let e = Policy::load(&d.join("usesbad.toml"), &vars("/w")).unwrap_err().to_string();
    assert!(e.contains("badbase.toml:3:9: error: relative path"), "{e}");
}

/// `extends = ["nosuchpreset"]`: neither a file nor a preset; the error lists the presets.
#[test]
fn extends_of_an_unknown_bare_name_lists_the_presets() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("p.toml");
    std::fs::write(&f, "version = 1\nextends = [\"nosuchpreset\"]\n").unwrap();
    let e = Policy::load(&f, &vars("/w")).unwrap_err().to_string();
    assert!(
        e.contains("p.toml:2:12: error: `extends` names `nosuchpreset`: no such file, and not an embedded preset"),
        "{e}"
    );
    for name in preset_names() {
        assert!(e.contains(name), "{name} not listed: {e}");
    }
    // A file of that name beside the policy is still read.
    std::fs::write(t.path().join("nosuchpreset"), "version = 1\n").unwrap();
    Policy::load(&f, &vars("/w")).unwrap();
}

/// A byte that is not UTF-8 is located where it is, with no hint about paths.
#[test]
fn invalid_utf8_is_located_at_the_bad_byte() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("p.toml");
    std::fs::write(&f, b"version = 1\n[filesystem]\nread = [\"/tmp/\xe9t\xff\"]\n").unwrap();
    let e = Policy::load(&f, &vars("/w")).unwrap_err().to_string();
    assert!(e.contains("p.toml:3:15: error: byte 0xe9 is not UTF-8 text"), "{e}");
    assert!(!e.contains("extends"), "{e}");
    // In a file that `extends` names, too.
    std::fs::write(t.path().join("top.toml"), "version = 1\nextends = [\"p.toml\"]\n").unwrap();
    let e = Policy::load(&t.path().join("top.toml"), &vars("/w")).unwrap_err().to_string();
    assert!(e.contains("p.toml:3:15: error: byte 0xe9"), "{e}");
}

// ---------- commands ----------

#[test]
fn command_matching() {
    let p = policy(
        "version = 1\n[env]\nset = { PATH = \"/usr/bin:/bin\" }\n[commands]\nallow = [\"git status\", \"git log **\", \"ls *\", \"/bin/echo hi*\", \"sh -c 'echo a b'\"]\ndeny = [\"git log --all **\"]\n",
    );
    let d = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let d = p.check_command(&argv, Path::new("/"));
        (d.verdict.as_str(), d.rule.to_string())
    };
    assert_eq!(d(&["git", "status"]), ("allow", "commands.allow[0]".into()));
    assert_eq!(d(&["git", "status", "-s"]), ("deny", "default".into()));
    assert_eq!(d(&["git", "log"]), ("allow", "commands.allow[1]".into()));
    assert_eq!(d(&["git", "log", "-n", "3"]), ("allow", "commands.allow[1]".into()));
    assert_eq!(d(&["git", "log", "--all"]), ("deny", "commands.deny[0]".into()));
    assert_eq!(d(&["ls", "/etc"]), ("allow", "commands.allow[2]".into()));
    assert_eq!(d(&["ls"]), ("deny", "default".into()));
    assert_eq!(d(&["ls", "a", "b"]), ("deny", "default".into()));
    // bare name and absolute path resolve to the same program
    assert_eq!(d(&["/usr/bin/git", "status"]), ("allow", "commands.allow[0]".into()));
    assert_eq!(d(&["echo", "hiya"]), ("allow", "commands.allow[3]".into()));
    assert_eq!(d(&["sh", "-c", "echo a b"]), ("allow", "commands.allow[4]".into()));
    assert_eq!(d(&["sh", "-c", "echo a"]), ("deny", "default".into()));
    // ./git never matches git
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("git"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(t.path().join("git")).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(t.path().join("git"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let argv = vec!["./git".to_string(), "status".to_string()];
    assert_eq!(rule(&p.check_command(&argv, t.path())), ("deny", "default"));
    // unknown programs match nothing
    assert_eq!(d(&["no-such-program-paddock"]), ("deny", "default".into()));
}

#[test]
fn first_matching_pattern_wins_across_index_buckets() {
    let p = policy("version = 1\n[commands]\nallow = [\"git * x\", \"git status **\", \"git [s]tatus\"]\ndeny = [\"git status --porcelain\", \"git * --porcelain\"]\n");
    let d = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        p.check_command(&argv, Path::new("/")).rule.to_string()
    };
    assert_eq!(d(&["git", "status", "x"]), "commands.allow[0]");
    assert_eq!(d(&["git", "status"]), "commands.allow[1]");
    assert_eq!(d(&["git", "log", "x"]), "commands.allow[0]");
    assert_eq!(d(&["git", "status", "--porcelain"]), "commands.deny[0]");
    assert_eq!(d(&["git", "log", "--porcelain"]), "commands.deny[1]");
}

#[test]
fn no_commands_table_allows_any_program() {
    let p = policy("version = 1\n");
    let d = p.check_command(&["anything".to_string()], Path::new("/"));
    assert_eq!(rule(&d), ("allow", "default"));
    let p = policy("version = 1\n[commands]\n");
    let d = p.check_command(&["ls".to_string()], Path::new("/"));
    assert_eq!(rule(&d), ("deny", "default"));
}

#[test]
fn sandbox_path_follows_env() {
    let mut v = vars("/w");
    v.caller_path = Some("/opt/x/bin:/usr/bin".into());
    let p = Policy::from_toml_str("p", "version = 1\n[env]\npass = [\"PATH\"]\n", &v).unwrap();
    assert_eq!(p.sandbox_path(), "/opt/x/bin:/usr/bin");
    let p = Policy::from_toml_str("p", "version = 1\n", &v).unwrap();
    assert_eq!(p.sandbox_path(), DEFAULT_PATH);
    let p =
        Policy::from_toml_str("p", "version = 1\n[env]\npass = [\"PATH\"]\nset = { PATH = \"/bin\" }\n", &v).unwrap();
    assert_eq!(p.sandbox_path(), "/bin");
    let env = p.env.child_env([("PATH", "/x"), ("SECRET", "s")]);
    assert_eq!(env, vec![("PATH".to_string(), "/bin".to_string())]);
}

// ---------- paths ----------

#[test]
fn path_decisions_with_dotdot_and_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let ws = root.join("ws");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::create_dir_all(root.join("secret")).unwrap();
    std::os::unix::fs::symlink(root.join("secret"), ws.join("escape")).unwrap();
    let p = Policy::from_toml_str(
        "p",
        "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\ndeny = [\"${WORKSPACE}/.env\", \"${WORKSPACE}/**/*.pem\", \"~/.ssh\"]\n",
        &vars(ws.to_str().unwrap()),
    )
    .unwrap();
    let cwd = ws.as_path();
    assert_eq!(rule(&p.check_write(Path::new("src/main.rs"), cwd)), ("allow", "filesystem.write[0]"));
    assert_eq!(rule(&p.check_read(Path::new("/usr/lib/x"), cwd)), ("allow", "filesystem.read[0]"));
    assert_eq!(rule(&p.check_write(Path::new("/usr/lib/x"), cwd)), ("deny", "default"));
    // `..` out of the workspace
    assert_eq!(rule(&p.check_read(Path::new("../secret/k"), cwd)), ("deny", "default"));
    assert_eq!(rule(&p.check_write(Path::new("src/../../secret/k"), cwd)), ("deny", "default"));
    // a symlink in the workspace pointing out of it
    assert_eq!(rule(&p.check_read(Path::new("escape/k"), cwd)), ("deny", "default"));
    // deny beats write, covers what is below, globs cross directories with **
    assert_eq!(rule(&p.check_read(Path::new(".env"), cwd)), ("deny", "filesystem.deny[0]"));
    assert_eq!(rule(&p.check_read(Path::new("src/./../.env"), cwd)), ("deny", "filesystem.deny[0]"));
    assert_eq!(rule(&p.check_read(Path::new("a/b/c/key.pem"), cwd)), ("deny", "filesystem.deny[1]"));
    assert_eq!(rule(&p.check_read(Path::new("key.pem"), cwd)), ("deny", "filesystem.deny[1]"));
    assert_eq!(rule(&p.check_read(Path::new("key.pem.txt"), cwd)), ("allow", "filesystem.write[0]"));
    assert_eq!(rule(&p.check_read(Path::new("dir.pem/inside"), cwd)), ("deny", "filesystem.deny[1]"));
    assert_eq!(rule(&p.check_read(Path::new("/home/u/.ssh/id_rsa"), cwd)), ("deny", "filesystem.deny[2]"));
    // a symlink in the workspace pointing at a denied file is denied too
    std::fs::write(ws.join(".env"), "K=V").unwrap();
    std::os::unix::fs::symlink(ws.join(".env"), ws.join("innocent")).unwrap();
    assert_eq!(rule(&p.check_read(Path::new("innocent"), cwd)), ("deny", "filesystem.deny[0]"));
    // prefix of a name is not a parent
    assert_eq!(rule(&p.check_read(Path::new("/usrx/y"), cwd)), ("deny", "default"));
}

// ---------- network ----------

#[test]
fn host_matching() {
    let p = policy(
        "version = 1\n[network]\nallow = [\"github.com\", \"*.crates.io\", \"pypi.org:443\", \"api.test:8080\", \"127.0.0.1:9000\", \"[::1]:9001\", \"bücher.example\"]\ndeny = [\"gist.github.com\", \"bad.crates.io:443\"]\n",
    );
    let d = |h: &str, port: u16| {
        let d = p.decide_connect(h, port);
        (d.verdict.as_str(), d.rule.to_string())
    };
    assert_eq!(d("github.com", 443), ("allow", "network.allow[0]".into()));
    assert_eq!(d("github.com", 80), ("allow", "network.allow[0]".into()));
    assert_eq!(d("github.com", 22), ("deny", "default".into()));
    assert_eq!(d("GitHub.COM.", 443), ("allow", "network.allow[0]".into()));
    assert_eq!(d("api.github.com", 443), ("deny", "default".into()));
    assert_eq!(d("index.crates.io", 443), ("allow", "network.allow[1]".into()));
    assert_eq!(d("a.b.crates.io", 443), ("allow", "network.allow[1]".into()));
    assert_eq!(d("crates.io", 443), ("deny", "default".into()));
    assert_eq!(d("evilcrates.io", 443), ("deny", "default".into()));
    assert_eq!(d("pypi.org", 443), ("allow", "network.allow[2]".into()));
    assert_eq!(d("pypi.org", 80), ("deny", "default".into()));
    assert_eq!(d("api.test", 8080), ("allow", "network.allow[3]".into()));
    assert_eq!(d("api.test", 443), ("deny", "default".into()));
    assert_eq!(d("127.0.0.1", 9000), ("allow", "network.allow[4]".into()));
    assert_eq!(d("127.0.0.1", 80), ("deny", "default".into()));
    assert_eq!(d("[::1]", 9001), ("allow", "network.allow[5]".into()));
    assert_eq!(d("::1", 9001), ("allow", "network.allow[5]".into()));
    assert_eq!(d("xn--bcher-kva.example", 443), ("allow", "network.allow[6]".into()));
    assert_eq!(d("BÜCHER.example", 443), ("allow", "network.allow[6]".into()));
    // deny: portless covers every port, beats allow
    assert_eq!(d("gist.github.com", 443), ("deny", "network.deny[0]".into()));
    assert_eq!(d("gist.github.com", 8443), ("deny", "network.deny[0]".into()));
    assert_eq!(d("bad.crates.io", 443), ("deny", "network.deny[1]".into()));
    assert_eq!(d("bad.crates.io", 80), ("allow", "network.allow[1]".into()));
    // odd forms are refused
    assert_eq!(d("github.com@evil.com", 443).0, "deny");
    assert_eq!(d("127.1", 9000).0, "deny");
    assert_eq!(d("", 443).0, "deny");
}

#[test]
fn pins_and_private_ranges() {
    let p = policy("version = 1\n[network]\nallow = [\"api.internal.test\"]\nallow_private = [\"127.0.0.0/8\", \"fd00::1\"]\n[network.hosts]\n\"API.internal.test\" = \"127.0.0.1\"\n");
    assert_eq!(p.network.pinned("api.internal.test."), Some("127.0.0.1".parse().unwrap()));
    assert_eq!(p.network.pinned("other.test"), None);
    assert!(p.network.private_allowed("127.0.0.5".parse().unwrap()));
    assert!(p.network.private_allowed("::ffff:127.0.0.1".parse().unwrap()));
    assert!(p.network.private_allowed("fd00::1".parse().unwrap()));
    assert!(!p.network.private_allowed("10.0.0.1".parse().unwrap()));
}

/// Two pins of one file for the same name (case, a trailing dot) are an error naming
/// both; a later file's pin replaces a base's however it spells the name.
#[test]
fn pins_for_the_same_name() {
    let e = error("version = 1\n[network.hosts]\n\"a.test\" = \"127.0.0.2\"\n\"A.TEST.\" = \"127.0.0.1\"\n");
    assert!(
        e.starts_with("p.toml:4:1: error: `A.TEST.` in [network.hosts] names the same host as `a.test` (at 3:1)"),
        "{e}"
    );
    assert!(e.contains("hint: "), "{e}");
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("base.toml"), "version = 1\n[network.hosts]\n\"a.test.\" = \"127.0.0.2\"\n").unwrap();
    let child = t.path().join("child.toml");
    std::fs::write(&child, "version = 1\nextends = [\"base.toml\"]\n[network.hosts]\n\"A.test\" = \"127.0.0.1\"\n")
        .unwrap();
    let p = Policy::load(&child, &vars("/w")).unwrap();
    assert_eq!(p.network.pinned("a.test"), Some("127.0.0.1".parse().unwrap()));
}

#[test]
fn effective_policy_round_trips() {
    let p = policy("version = 1\n[filesystem]\nread = [\"/usr\"]\n[commands]\nallow = [\"ls *\"]\n[network]\nallow = [\"a.com\"]\n[limits]\ntimeout = \"2m\"\nmax_output = \"8MiB\"\n");
    let shown = p.effective_toml().to_string();
    let again =
        Policy::from_toml_str("shown", &shown, &vars("/nonexistent-ws")).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    let body = |s: &str| s.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    assert_eq!(body(again.effective_toml()), body(&shown));
    assert_eq!(again.hash(), p.hash());
}

#[test]
fn max_file_size_is_a_size_and_shown() {
    let p = policy("version = 1\n[limits]\nmax_file_size = \"64MiB\"\n");
    assert_eq!(p.limits.max_file_size, Some(64 << 20));
    assert!(p.effective_toml().contains("max_file_size = \"64MiB\""), "{}", p.effective_toml());
    assert_eq!(policy("version = 1\n[limits]\nmax_file_size = 4096\n").limits.max_file_size, Some(4096));
    assert_eq!(policy("version = 1\n").limits.max_file_size, None);
    let e = error("version = 1\n[limits]\nmax_filesize = \"1MiB\"\n");
    assert!(e.contains("max_file_size"), "a typo gets a hint: {e}");
}

// ---------- revocations ----------

#[test]
fn revocations_of_each_kind_deny_with_revoked() {
    let mut p = policy(
        "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\n[commands]\nallow = [\"git status\", \"git log **\", \"ls *\"]\n[network]\nallow = [\"github.com\", \"*.crates.io\"]\n",
    );
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let before = (
        p.check_command(&argv(&["git", "status"]), Path::new("/")),
        p.decide_write(Path::new("/nonexistent-ws/src/a.rs")),
        p.decide_connect("index.crates.io", 443),
    );
    assert!(before.0.is_allow() && before.1.is_allow() && before.2.is_allow());
    let list = vec![
        (Revocation::Rule("commands.allow[0]".into()), Some("too broad".into())),
        (Revocation::Command("ls **".into()), None),
        (Revocation::Path("${WORKSPACE}/src".into()), None),
        (Revocation::Network("*.crates.io:443".into()), None),
        (Revocation::Network("github.com".into()), None),
    ];
    p.set_revocations(&list, Path::new("revocations.toml")).unwrap();
    let d = p.check_command(&argv(&["git", "status"]), Path::new("/"));
    assert_eq!(rule(&d), ("deny", "commands.allow[0]"));
    assert!(d.reason.contains("revoked by `rule:commands.allow[0]` (too broad)"), "{}", d.reason);
    let d = p.check_command(&argv(&["ls", "/tmp"]), Path::new("/"));
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(d.reason.contains("revoked by `command:ls **`"), "{}", d.reason);
    assert!(p.check_command(&argv(&["git", "log"]), Path::new("/")).is_allow());
    let d = p.decide_write(Path::new("/nonexistent-ws/src/a.rs"));
    assert!(d.reason.contains("revoked") && !d.is_allow(), "{}", d.reason);
    assert!(p.decide_write(Path::new("/nonexistent-ws/docs/a.md")).is_allow());
    assert!(p.decide_read(Path::new("/nonexistent-ws/srcx")).is_allow());
    let d = p.decide_connect("index.crates.io", 443);
    assert!(!d.is_allow() && d.reason.contains("revoked"), "{}", d.reason);
    assert!(p.decide_connect("index.crates.io", 80).is_allow());
    assert!(!p.decide_connect("github.com", 80).is_allow());
    // what was denied stays denied with its own reason
    let d = p.decide_connect("example.com", 443);
    assert!(!d.reason.contains("revoked"), "{}", d.reason);
    // a host the policy asks about is, once revoked, refused without a question
    let mut asks = policy("version = 1\n[network]\nask = [\"asked.test\", \"other.test\"]\n");
    assert_eq!(asks.decide_connect("asked.test", 443).verdict, Verdict::Ask);
    asks.set_revocations(&[(Revocation::Network("asked.test".into()), None)], Path::new("r")).unwrap();
    let d = asks.decide_connect("asked.test", 443);
    assert!(d.verdict == Verdict::Deny && d.reason.contains("revoked by `network:asked.test`"), "{d:?}");
    assert_eq!(asks.decide_connect("other.test", 443).verdict, Verdict::Ask);
    // no [commands] table: a command revocation still applies
    let mut open = policy("version = 1\n");
    open.set_revocations(&[(Revocation::Command("ls **".into()), None)], Path::new("r")).unwrap();
    assert!(!open.check_command(&argv(&["ls", "-l"]), Path::new("/")).is_allow());
    // a revocation that cannot be compiled is an error, never ignored
    let e = open.set_revocations(&[(Revocation::Network("a.*.com".into()), None)], Path::new("r.toml")).unwrap_err();
    assert!(e.to_string().starts_with("r.toml:1:1: error: bad host pattern"), "{e}");
}

#[test]
fn protect_keeps_a_path_read_only_under_write() {
    let vars = vars("/ws");
    let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nprotect = [\"${WORKSPACE}/.git/config\", \"${WORKSPACE}/**/.envrc\"]\n";
    let p = Policy::from_toml_str("p.toml", text, &vars).unwrap();
    let w = p.decide_write(Path::new("/ws/.git/config"));
    assert_eq!((w.verdict, &*w.rule), (Verdict::Deny, "filesystem.protect[0]"));
    let w = p.decide_write(Path::new("/ws/sub/.envrc"));
    assert_eq!((w.verdict, &*w.rule), (Verdict::Deny, "filesystem.protect[1]"));
    assert!(p.decide_read(Path::new("/ws/.git/config")).is_allow());
    assert!(p.decide_write(Path::new("/ws/.git/HEAD")).is_allow());
}

#[test]
fn a_gitfile_in_the_workspace_protects_the_directory_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = crate::paths::normalize(tmp.path(), Path::new("/"));
    std::fs::create_dir_all(ws.join(".bare/hooks")).unwrap();
    std::fs::write(ws.join(".git"), "gitdir: ./.bare\n").unwrap();
    std::fs::create_dir_all(ws.join("wt")).unwrap();
    std::fs::create_dir_all(ws.join(".bare/worktrees/wt")).unwrap();
    std::fs::write(ws.join("wt/.git"), "gitdir: ../.bare/worktrees/wt\n").unwrap();
    std::fs::write(ws.join(".bare/worktrees/wt/commondir"), "../..\n").unwrap();
    let p = Policy::embedded_default(&vars(ws.to_str().unwrap())).unwrap();
    for f in [".bare/config", ".bare/hooks/pre-commit", ".bare/config.worktree", ".bare/commondir"] {
        let w = p.decide_write(&ws.join(f));
        assert_eq!(w.verdict, Verdict::Deny, "{f}: {w:?}");
    }
    assert!(p.decide_write(&ws.join(".bare/HEAD")).is_allow());
    assert!(p.decide_write(&ws.join("wt/src.rs")).is_allow());
    // The `.git` file itself (moved away, the next call would not find `.bare`), and what
    // a `.git` directory's submodules and worktrees have protected.
    for f in [
        ".git",
        ".bare/modules/lib/config",
        ".bare/modules/a/b/hooks/post-checkout",
        ".bare/worktrees/wt/modules/lib/config",
    ] {
        assert_eq!(p.decide_write(&ws.join(f)).verdict, Verdict::Deny, "{f}");
    }
    // Only the workspace's own `.git` is read (a subdirectory's is not looked for: that
    // would walk the workspace at every load), so a worktree can still be removed.
    assert!(p.decide_write(&ws.join(".bare/worktrees/wt/commondir")).is_allow());
    assert_eq!(p.decide_write(&ws.join(".bare/worktrees/wt/config.worktree")).verdict, Verdict::Deny);
    // The same workspace without the `.git` files gets no such rules.
    std::fs::remove_file(ws.join(".git")).unwrap();
    std::fs::remove_file(ws.join("wt/.git")).unwrap();
    let p = Policy::embedded_default(&vars(ws.to_str().unwrap())).unwrap();
    assert!(p.decide_write(&ws.join(".bare/config")).is_allow());
}

#[test]
fn drift_names_a_changed_way_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = crate::paths::normalize(tmp.path(), Path::new("/"));
    let load = || Policy::embedded_default(&vars(ws.to_str().unwrap())).unwrap();
    // A `.git` file naming a directory called `.git` elsewhere in the workspace: some of the
    // entries found for it are globs the written rules cover already (`**/.git/...`), which
    // the check must leave out as the load did.
    std::fs::create_dir_all(ws.join("sub/.git/modules")).unwrap();
    std::fs::create_dir_all(ws.join("other")).unwrap();
    std::fs::write(ws.join(".git"), "gitdir: ./sub/.git\n").unwrap();
    std::fs::create_dir_all(ws.join("real")).unwrap();
    std::fs::write(ws.join("real/settings.json"), "{}").unwrap();
    std::os::unix::fs::symlink("real", ws.join(".claude")).unwrap();
    let p = load();
    assert_eq!(p.filesystem.drift(), None);
    assert_eq!(p.decide_write(&ws.join("real/settings.json")).verdict, Verdict::Deny);
    // The `.git` file names another directory now.
    std::fs::write(ws.join(".git"), "gitdir: ./other\n").unwrap();
    let d = p.filesystem.drift().expect("the git directory changed");
    assert!(d.rule.contains(".git"), "{d:?}");
    assert_eq!(load().filesystem.drift(), None);
    // The symlink a protect rule resolves through is gone.
    let p = load();
    std::fs::remove_file(ws.join(".claude")).unwrap();
    let d = p.filesystem.drift().expect("the link is gone");
    assert!(d.rule.starts_with("filesystem.protect["), "{d:?}");
    assert_eq!(load().filesystem.drift(), None);
}

#[test]
fn the_presets_protect_what_host_tools_run_in_subprojects_and_worktrees() {
    for preset in ["default", "ci", "read-only"] {
        let mut v = vars("/ws");
        v.home = Some(PathBuf::from("/home/u"));
        let p = Policy::preset(preset, &v).unwrap().unwrap();
        for f in [
            "/ws/.git/worktrees/w/modules/lib/config",
            "/ws/.git/worktrees/w/modules/lib/hooks/pre-commit",
            "/ws/sub/.git/worktrees/w/modules/lib/config",
            "/ws/pkg/.claude/settings.json",
            "/ws/pkg/.mcp.json",
            "/ws/pkg/.vscode/tasks.json",
            "/ws/.vscode/mcp.json",
            "/ws/.devcontainer/devcontainer.json",
            "/ws/pkg/.devcontainer.json",
            "/home/u/.bash_aliases",
            "/home/u/.config/fish/conf.d/x.fish",
        ] {
            let d = p.filesystem.protected(Path::new(f));
            assert!(d.is_some(), "{preset}: {f} is not protected");
        }
    }
}

#[test]
fn the_policys_own_files_in_a_write_path_are_protected() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = crate::paths::normalize(tmp.path(), Path::new("/"));
    std::fs::create_dir_all(ws.join("conf")).unwrap();
    std::fs::write(ws.join("conf/base.toml"), "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\n").unwrap();
    std::fs::write(ws.join("mine.toml"), "version = 1\nextends = [\"conf/base.toml\", \"default\"]\n").unwrap();
    let p = Policy::load(&ws.join("mine.toml"), &vars(ws.to_str().unwrap())).unwrap();
    for f in ["mine.toml", "conf/base.toml"] {
        let w = p.decide_write(&ws.join(f));
        assert_eq!(w.verdict, Verdict::Deny, "{f}: {w:?}");
        assert!(w.reason.contains("policy's own file"), "{}", w.reason);
        assert!(p.decide_read(&ws.join(f)).is_allow(), "{f} stays readable");
    }
    assert!(p.decide_write(&ws.join("conf/other.toml")).is_allow());
    // Outside every write path too (read-only already, but the way there, a symlink of
    // the workspace, is the user's: found by an attack); a name with glob characters is
    // taken literally (found by an attack: `p[1].toml` was a pattern matching `p1.toml`).
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("p[1].toml");
    std::fs::write(&outside, "version = 1\nextends = [\"default\"]\n").unwrap();
    let p = Policy::load(&outside, &vars(ws.to_str().unwrap())).unwrap();
    let rule = p.filesystem.protect.iter().find(|r| r.raw.contains("p[1].toml")).expect("protected");
    assert!(!rule.is_glob && rule.expanded == outside, "{rule:?}");
}

// ---------- [env]: credentials and expansion ----------

#[test]
fn env_globs_never_pass_credential_looking_names() {
    let p = policy("version = 1\n[env]\npass = [\"CARGO_*\", \"npm_config_*\", \"*\", \"GH_TOKEN\"]\n");
    for name in [
        "CARGO_REGISTRY_TOKEN",
        "npm_config__authToken",
        "NPM_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "DEPLOY_KEY",
        "api_key",
        "DB_PASSWORD",
        "MYSQL_PASSWD",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SSH_AUTH_SOCK",
        "HTTP_AUTHORIZATION",
        "PROXY_AUTHORISATION",
        "GIT_AUTHOR_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "DB_PASS",
        "MYSQL_PWD",
        "GH_PAT",
        "SENTRY_DSN",
        "SESSION_COOKIE",
        "SIGNING_KEY_FILE",
        "OPENAI_APIKEY",
        "GPG_PASSPHRASE",
    ] {
        assert!(is_credential_name(name), "{name}");
        assert!(!p.env.passes(name), "{name} passed through a glob");
    }
    for name in ["CARGO_HOME", "npm_config_registry", "PATH", "KEYBOARD", "MONKEYS", "PWD", "OLDPWD", "PASSAGE_DIR"] {
        assert!(p.env.passes(name), "{name}");
    }
    // AUTHOR is a person, not a credential.
    for name in ["GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "git_author_date"] {
        assert!(!is_credential_name(name), "{name}");
    }
    // A password in a URL value stays behind under a glob, whatever the name.
    let env = p.env.child_env([("CARGO_URL", "postgres://app:hunter2@db/x"), ("CARGO_MIRROR", "https://m.test/x")]);
    assert_eq!(env, vec![("CARGO_MIRROR".to_string(), "https://m.test/x".to_string())]);
    for v in ["postgres://app:hunter2@db/x", "https://u:t@h", "redis://:pw@127.0.0.1:6379"] {
        assert!(crate::is_credential_value(v), "{v}");
    }
    for v in ["https://example.test/a@b", "git@github.com:a/b", "https://user@host/x", "plain", "mailto:a@b"] {
        assert!(!crate::is_credential_value(v), "{v}");
    }
    // the exact name passes it
    assert!(p.env.passes("GH_TOKEN"));
    let env = p.env.child_env([("GH_TOKEN", "t"), ("NPM_TOKEN", "n"), ("CARGO_HOME", "/c")]);
    assert_eq!(env, vec![("CARGO_HOME".to_string(), "/c".to_string()), ("GH_TOKEN".into(), "t".into())]);
}

#[test]
fn env_lint_warns_on_credentials() {
    let p = policy("version = 1\n[env]\npass = [\"PATH\",\n  \"GH_TOKEN\", \"*_TOKEN\", \"CARGO_*\"]\n");
    let w: Vec<String> = p.env.warnings().iter().map(|(o, m)| format!("{o}: {m}")).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("p.toml:4:3: `GH_TOKEN` looks like a credential"), "{w:?}");
    assert!(w[1].starts_with("p.toml:4:15: `*_TOKEN` matches only credential-looking names"), "{w:?}");
}

#[test]
fn env_set_expands_path_variables() {
    let p = policy(
        "version = 1\n[env]\nset = { HOME = \"${WORKSPACE}\", CACHE = \"${TMPDIR}/c:${HOME}/x\", PS = \"$ \" }\n",
    );
    let get = |k: &str| p.env.set.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("HOME"), "/nonexistent-ws");
    assert_eq!(get("CACHE"), "/tmp/c:/home/u/x");
    assert_eq!(get("PS"), "$ ");
    let e = error("version = 1\n[env]\nset = { A = \"x\", TOKEN_DIR = \"${GITHUB_TOKEN}\" }\n");
    assert!(e.starts_with("p.toml:3:30: error: unknown variable `${GITHUB_TOKEN}` in the value of `TOKEN_DIR`"), "{e}");
    assert!(e.contains("hint: `set` values may use ${WORKSPACE}, ${HOME} and ${TMPDIR}"), "{e}");
    let e = error("version = 1\n[env]\nset = { A = \"${WORKSPACE\" }\n");
    assert!(e.starts_with("p.toml:3:13: error: an unterminated `${`"), "{e}");
    // an expanded PATH is the sandbox PATH
    let p = policy("version = 1\n[env]\nset = { PATH = \"${WORKSPACE}/bin:/usr/bin\" }\n");
    assert_eq!(p.sandbox_path(), "/nonexistent-ws/bin:/usr/bin");
}

// ---------- deny-all, hidden state, views ----------

#[test]
fn deny_all_denies_every_decision_and_grants_no_view() {
    let p = policy(
        "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\n[network]\nallow = [\"a.com\"]\n",
    );
    let argv = vec!["ls".to_string()];
    assert!(p.check_command(&argv, Path::new("/")).is_allow());
    let d = p.deny_all("revocation list /s/revocations.toml: bad TOML at line 1");
    assert!(p.denies_all().is_none());
    assert_eq!(d.denies_all(), Some("revocation list /s/revocations.toml: bad TOML at line 1"));
    for dec in [
        d.check_command(&argv, Path::new("/")),
        d.decide_read(Path::new("/usr/bin/ls")),
        d.decide_write(Path::new("/nonexistent-ws/a")),
        d.decide_connect("a.com", 443),
    ] {
        assert_eq!(rule(&dec), ("deny", DENY_ALL_RULE));
        assert!(dec.reason.contains("revocations.toml"), "{}", dec.reason);
    }
    assert!(d.view_read_rules().is_empty() && d.view_write_rules().is_empty());
    assert_eq!(d.hash(), p.hash());
}

#[test]
fn hidden_paths_are_denied_whatever_the_rules_grant() {
    let mut p = policy("version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\n");
    p.hide_paths([PathBuf::from("/nonexistent-ws/state"), PathBuf::from("/nonexistent-ws/t/../token")]);
    assert_eq!(p.hidden_paths(), &[PathBuf::from("/nonexistent-ws/state"), PathBuf::from("/nonexistent-ws/token")]);
    for path in ["/nonexistent-ws/state", "/nonexistent-ws/state/audit.jsonl", "/nonexistent-ws/token"] {
        let (r, w) = (p.decide_read(Path::new(path)), p.decide_write(Path::new(path)));
        assert_eq!((rule(&r), rule(&w)), (("deny", HIDDEN_RULE), ("deny", HIDDEN_RULE)), "{path}");
        assert!(r.reason.contains("paddock's own state"), "{}", r.reason);
    }
    assert!(p.decide_write(Path::new("/nonexistent-ws/statex")).is_allow());
    assert!(p.effective_toml().contains("# paddock's own state, masked in every view"), "{}", p.effective_toml());
}

#[test]
fn rule_revocations_leave_the_grant_out_of_views() {
    let mut p =
        policy("version = 1\n[filesystem]\nread = [\"/usr\", \"/etc\"]\nwrite = [\"${WORKSPACE}\", \"/tmp/x\"]\n");
    p.set_revocations(
        &[
            (Revocation::Rule("filesystem.read[1]".into()), None),
            (Revocation::Rule("filesystem.write[0]".into()), None),
        ],
        Path::new("r.toml"),
    )
    .unwrap();
    let ids = |v: Vec<&PathRule>| v.iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(p.view_read_rules()), ["filesystem.read[0]"]);
    assert_eq!(ids(p.view_write_rules()), ["filesystem.write[1]"]);
    let d = p.decide_read(Path::new("/etc/hostname"));
    assert!(!d.is_allow() && d.reason.contains("revoked"), "{}", d.reason);
}

#[test]
fn a_revoked_command_or_ask_entry_is_not_asked_about() {
    let mut p = policy(
        "version = 1\n[commands]\nask = [\"cat **\", \"ls **\"]\n[network]\nask = [\"asked.test\", \"other.test\"]\n",
    );
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(p.check_command(&argv(&["cat", "x"]), Path::new("/")).verdict, Verdict::Ask);
    assert_eq!(p.decide_connect("other.test", 8080).verdict, Verdict::Ask);
    let list = vec![
        (Revocation::Command("cat **".into()), None),
        (Revocation::Rule("commands.ask[1]".into()), None),
        (Revocation::Rule("network.ask[1]".into()), None),
    ];
    p.set_revocations(&list, Path::new("revocations.toml")).unwrap();
    for a in [&["cat", "x"][..], &["ls", "-l"][..]] {
        let d = p.check_command(&argv(a), Path::new("/"));
        assert_eq!(d.verdict, Verdict::Deny, "{a:?}: {d:?}");
        assert!(d.reason.contains("revoked by") && d.reason.contains("asked about by"), "{}", d.reason);
    }
    let d = p.decide_connect("other.test", 8080);
    assert!(d.verdict == Verdict::Deny && d.reason.contains("revoked"), "{d:?}");
    assert_eq!(p.decide_connect("asked.test", 443).verdict, Verdict::Ask, "what was not revoked still asks");
}

#[test]
fn revoking_a_restriction_is_refused() {
    for id in [
        "filesystem.deny[0]",
        "filesystem.protect[2]",
        "commands.deny[1]",
        "network.deny[0]",
        "revocations",
        "paddock.state",
    ] {
        let mut p = policy("version = 1\n[filesystem]\ndeny = [\"/x\"]\n");
        let e = p.set_revocations(&[(Revocation::Rule(id.into()), None)], Path::new("r.toml")).unwrap_err().to_string();
        assert!(e.starts_with(&format!("r.toml:1:1: error: `rule:{id}` names a restriction")), "{e}");
        assert!(e.contains("hint: revocations only withdraw grants"), "{e}");
    }
}

// ---------- presets ----------

#[test]
fn every_preset_denies_system_secrets_and_protects_what_the_host_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for name in ["default.toml", "ci.toml", "coding-agent.toml", "read-only.toml"] {
        let p = Policy::load(&dir.join(name), &vars("/ws")).unwrap_or_else(|e| panic!("{name}: {e}"));
        for secret in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/sudoers.d/x",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssl/private/k.pem",
        ] {
            let d = p.decide_read(Path::new(secret));
            assert!(!d.is_allow() && d.rule.starts_with("filesystem.deny["), "{name}: {secret}: {d:?}");
        }
        assert!(p.decide_read(Path::new("/etc/ssh/ssh_host_ed25519_key.pub")).is_allow(), "{name}");
        assert!(p.decide_read(Path::new("/etc/hostname")).is_allow(), "{name}");
        for file in [
            "/ws/.git/config",
            "/ws/.git/hooks/pre-commit",
            "/ws/.git/modules/sub/config",
            "/ws/.git/modules/a/b/hooks/post-checkout",
            "/ws/.envrc",
            "/ws/sub/.envrc",
            "/ws/.vscode/tasks.json",
            "/home/u/.bashrc",
            "/home/u/.profile",
            "/home/u/.zshrc",
            "/home/u/.config/fish/config.fish",
        ] {
            assert!(p.filesystem.protected(Path::new(file)).is_some(), "{name}: {file} is not protected");
        }
        assert!(p.effective_toml().contains("/etc/shadow") && p.effective_toml().contains("/ws/.git/hooks"), "{name}");
        if name != "read-only.toml" {
            assert!(p.decide_write(Path::new("/ws/.git/HEAD")).is_allow(), "{name}");
        }
    }
}

// ---------- embedded presets ----------

#[test]
fn embedded_presets_load_by_name_and_extend_the_embedded_default() {
    for name in crate::preset_names() {
        let p = Policy::preset(name, &vars("/w")).expect("a preset").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.files.last().unwrap(), Path::new(&format!("<embedded {name}>")));
    }
    let p = Policy::preset("coding-agent", &vars("/w")).unwrap().unwrap();
    assert_eq!(p.files, [PathBuf::from("<embedded default>"), PathBuf::from("<embedded coding-agent>")]);
    assert!(Policy::preset("nope", &vars("/w")).is_none());
    assert_eq!(crate::preset_text("default"), Some(crate::DEFAULT_POLICY));
    // A file extends a preset by its bare name, even with a file of that name beside it
    // (`./coding-agent` names the file).
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("mine.toml"), "version = 1\nextends = [\"coding-agent\"]\n").unwrap();
    let p = Policy::load(&d.join("mine.toml"), &vars("/w")).unwrap();
    assert_eq!(p.files.len(), 3, "{:?}", p.files);
    std::fs::write(d.join("coding-agent"), "version = 1\n").unwrap();
    let p = Policy::load(&d.join("mine.toml"), &vars("/w")).unwrap();
    assert_eq!(p.files.len(), 3, "{:?}", p.files);
    std::fs::write(d.join("mine.toml"), "version = 1\nextends = [\"./coding-agent\"]\n").unwrap();
    let p = Policy::load(&d.join("mine.toml"), &vars("/w")).unwrap();
    assert_eq!(p.files, [d.join("coding-agent"), d.join("mine.toml")]);
}

#[test]
fn a_program_outside_the_view_is_named_with_the_entry_to_add() {
    let p = policy("version = 1\n[filesystem]\nread = [\"/usr\"]\ndeny = [\"/usr/bin/env\"]\n");
    assert!(p.program_outside_view("ls", Path::new("/usr/bin/ls")).is_none());
    let d = p.program_outside_view("tool", Path::new("/home/u/.cargo/bin/rustup")).expect("a denial");
    assert_eq!((d.verdict, &*d.rule), (Verdict::Deny, "default"));
    assert!(d.reason.contains("`tool` resolves to /home/u/.cargo/bin/rustup"), "{}", d.reason);
    assert!(d.reason.contains("add \"~/.cargo/bin\" to [filesystem] read"), "{}", d.reason);
    let d = p.program_outside_view("/opt/x/y", Path::new("/opt/x/y")).expect("a denial");
    assert!(d.reason.contains("`/opt/x/y` is outside") && d.reason.contains("add \"/opt/x\""), "{}", d.reason);
    let d = p.program_outside_view("env", Path::new("/usr/bin/env")).expect("a denial");
    assert_eq!(&*d.rule, "filesystem.deny[0]");
}

#[test]
fn commands_scope_is_call_by_default_tree_when_asked_and_checked() {
    assert_eq!(policy("version = 1\n").command_scope, CommandScope::Call);
    // A table with only `scope` sets no command rules: any program may still start.
    let p = policy("version = 1\n[commands]\nscope = \"tree\"\n");
    assert_eq!((p.command_scope, p.commands.is_none()), (CommandScope::Tree, true));
    // An empty table still means "nothing is allowed", as before.
    assert!(policy("version = 1\n[commands]\n").commands.is_some());
    let p = policy("version = 1\n[commands]\nscope = \"tree\"\nallow = [\"ls **\"]\n");
    assert_eq!((p.command_scope, p.commands.as_ref().map(|c| c.allow.len())), (CommandScope::Tree, Some(1)));
    let e = error("version = 1\n[commands]\nscope = \"everything\"\n");
    assert!(
        e.contains("p.toml:3") && e.contains("unknown [commands] scope `everything`") && e.contains("\"tree\""),
        "{e}"
    );
    // A later file's scope wins; the presets for agents and CI decide the whole tree.
    for preset in ["coding-agent", "ci"] {
        let p = Policy::preset(preset, &vars("/nonexistent-ws")).unwrap().unwrap();
        assert_eq!(p.command_scope, CommandScope::Tree, "{preset}");
    }
}

#[test]
fn the_effective_policy_shows_the_scope_and_reloads_the_same() {
    for text in [
        "version = 1\n[commands]\nscope = \"tree\"\n",
        "version = 1\n[commands]\nscope = \"tree\"\nallow = [\"ls **\"]\n",
        "version = 1\n[commands]\nallow = [\"ls **\"]\n",
    ] {
        let p = policy(text);
        let shown = p.effective_toml().to_string();
        assert_eq!(shown.contains("scope = \"tree\""), text.contains("tree"), "{shown}");
        let again = policy(&shown);
        assert_eq!((again.command_scope, again.commands.is_some()), (p.command_scope, p.commands.is_some()), "{shown}");
    }
}

/// The sandbox's `/tmp` is private unless a write path covers it: a grant of `/` or `/tmp`
/// does not show the host's files there, so no decision says it does; a grant beneath
/// `/tmp` does (it is bound over the private tmpfs).
#[test]
fn a_grant_from_tmp_or_above_does_not_reach_into_the_private_tmp() {
    let p = policy("version = 1\n[filesystem]\nread = [\"/\", \"/tmp/shown\"]\n");
    let d = p.decide_read(Path::new("/tmp/x/y"));
    assert_eq!(rule(&d), ("deny", "default"));
    assert!(d.reason.contains("private /tmp"), "{}", d.reason);
    assert_eq!(rule(&p.decide_read(Path::new("/tmp/shown/y"))), ("allow", "filesystem.read[1]"));
    assert_eq!(rule(&p.decide_read(Path::new("/tmp"))), ("allow", "filesystem.read[0]"));
    assert_eq!(rule(&p.decide_read(Path::new("/etc/hosts"))), ("allow", "filesystem.read[0]"));
    let p = policy("version = 1\n[filesystem]\nread = [\"/tmp\"]\n");
    assert_eq!(rule(&p.decide_read(Path::new("/tmp/x"))), ("deny", "default"));
    let p = policy("version = 1\n[filesystem]\nread = [\"/\"]\nwrite = [\"/tmp\"]\n");
    assert_eq!(rule(&p.decide_read(Path::new("/tmp/x"))), ("allow", "filesystem.write[0]"));
    // `/dev/shm` is private whatever a grant says.
    let p = policy("version = 1\n[filesystem]\nread = [\"/\"]\nwrite = [\"/dev/shm\"]\n");
    assert_eq!(rule(&p.decide_read(Path::new("/dev/shm/x"))), ("deny", "default"));
    assert_eq!(rule(&p.decide_write(Path::new("/dev/shm/x"))), ("deny", "default"));
}

/// A program outside the view that is a version manager's front gets a hint for the
/// manager's own directory too (found by a test: following the bare hint for `cargo`, a
/// rustup proxy, still failed).
#[test]
fn a_version_managers_front_outside_the_view_names_its_directory() {
    let p = policy("version = 1\n[filesystem]\nread = [\"/usr\"]\n");
    let hint = |name: &str, program: &str| p.program_outside_view(name, Path::new(program)).unwrap().reason;
    let r = hint("cargo", "/h/.cargo/bin/rustup");
    assert!(r.contains("add \"/h/.cargo/bin\" to [filesystem] read") && r.contains("~/.rustup"), "{r}");
    let r = hint("python3", "/h/.pyenv/shims/python3");
    assert!(r.contains("~/.pyenv"), "{r}");
    let r = hint("tool", "/opt/tool/bin/tool");
    assert!(r.ends_with("add \"/opt/tool/bin\" to [filesystem] read to run it"), "{r}");
}
