//! End-to-end: the audit log written by `paddock run`, `paddock audit verify|review`,
//! `paddock revoke|unrevoke`, driving the built binary.

#[allow(unused_macros)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn paddock(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_paddock"));
    c.env("PADDOCK_STATE_DIR", state).stdin(Stdio::null());
    c
}

fn out(mut c: impl std::borrow::BorrowMut<Command>) -> (i32, String, String) {
    let o = c.borrow_mut().output().expect("run paddock");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    ws: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (state, ws) = (root.join("state"), root.join("ws"));
        std::fs::create_dir_all(&ws).unwrap();
        Fx { _dir: dir, root, state, ws }
    }
    fn log(&self) -> PathBuf {
        self.state.join("audit.jsonl")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = paddock(&self.state);
        c.args(args).current_dir(&self.ws);
        c
    }
    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
            .collect()
    }
    fn policy(&self, text: &str) -> PathBuf {
        let p = self.root.join("policy.toml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

#[test]
fn run_writes_start_and_end_and_verify_passes() {
    let fx = Fx::new();
    let (code, stdout, err) = out(&mut fx.cmd(&["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!(code, 3, "{err}");
    assert_eq!(stdout, "out\n");
    let recs = fx.records();
    // call.start, the exec of sh (issue 16), call.end
    assert_eq!(recs.len(), 3);
    assert_eq!((recs[1]["event"].as_str(), recs[1]["argv"][0].as_str()), (Some("exec"), Some("sh")));
    let (s, e) = (&recs[0], &recs[2]);
    assert_eq!((s["seq"].as_u64(), s["event"].as_str()), (Some(1), Some("call.start")));
    assert_eq!(s["prev"], "0".repeat(64));
    assert_eq!(s["argv"], serde_json::json!(["sh", "-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!(s["decision"], "allow");
    assert_eq!(s["rule"], "default");
    assert_eq!(s["policy_hash"].as_str().unwrap().len(), 64);
    assert_eq!(
        s["enforcement"]["layers"].as_array().unwrap().iter().find(|l| l["name"] == "seccomp").unwrap()["state"],
        "enforced"
    );
    assert_eq!((e["seq"].as_u64(), e["event"].as_str()), (Some(3), Some("call.end")));
    assert_eq!(e["call_id"], s["call_id"]);
    assert_eq!(
        (e["exit_code"].as_i64(), e["stdout_bytes"].as_u64(), e["stderr_bytes"].as_u64()),
        (Some(3), Some(4), Some(4))
    );
    assert_eq!(e["truncated"], false);
    // no environment values reach the log
    let text = std::fs::read_to_string(fx.log()).unwrap();
    assert!(!text.contains(&std::env::var("PATH").unwrap()));
    let (code, stdout, _) = out(&mut fx.cmd(&["audit", "verify"]));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("intact"), "{stdout}");
}

#[test]
fn denied_calls_are_recorded_and_audit_flag_moves_the_log() {
    let fx = Fx::new();
    let pol = fx.policy("version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\"]\n[commands]\nallow = [\"true\"]\n");
    let log = fx.root.join("elsewhere.jsonl");
    let (code, _, err) =
        out(fx.cmd(&["run", "--policy", pol.to_str().unwrap(), "--audit", log.to_str().unwrap(), "--", "ls"]));
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("not in [commands] allow"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let rec: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (rec["event"].as_str(), rec["decision"].as_str(), rec["rule"].as_str()),
        (Some("call.start"), Some("deny"), Some("default"))
    );
    assert!(!fx.log().exists(), "--audit must move the log");
}

#[test]
fn unwritable_log_means_the_call_does_not_run() {
    let fx = Fx::new();
    let marker = fx.ws.join("ran");
    let (code, _, err) =
        out(fx.cmd(&["run", "--audit", "/proc/version/x.jsonl", "--", "touch", marker.to_str().unwrap()]));
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("does not run unaudited"), "{err}");
    assert!(!marker.exists());
}

#[test]
fn concurrent_runs_keep_the_chain() {
    let fx = Fx::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            // A failed run prints its exit code and stderr, and the loop stops.
            let script = format!(
                "for i in $(seq 50); do e=$({} run -- /bin/true 2>&1) || {{ echo \"run $i failed ($?): $e\"; exit 1; }}; done",
                env!("CARGO_BIN_EXE_paddock")
            );
            let mut c = Command::new("sh");
            c.args(["-c", &script]).env("PADDOCK_STATE_DIR", &fx.state).current_dir(&fx.ws).stdin(Stdio::null());
            c.stdout(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
    let recs = fx.records();
    assert_eq!(recs.len(), 600); // per run: call.start, exec, call.end
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1));
    }
    let starts: std::collections::HashSet<_> = recs
        .iter()
        .filter(|r| r["event"] == "call.start")
        .map(|r| r["call_id"].as_str().unwrap().to_string())
        .collect();
    let ends: std::collections::HashSet<_> =
        recs.iter().filter(|r| r["event"] == "call.end").map(|r| r["call_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(starts.len(), 200);
    assert_eq!(starts, ends);
    let (code, stdout, _) = out(&mut fx.cmd(&["audit", "verify"]));
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn tampering_is_detected_and_named() {
    let fx = Fx::new();
    for _ in 0..3 {
        assert_eq!(out(&mut fx.cmd(&["run", "--", "/bin/true"])).0, 0);
    }
    let good = std::fs::read_to_string(fx.log()).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let cases: Vec<(&str, String)> = vec![
        ("edit", good.replacen("\"exit_code\":0", "\"exit_code\":1", 1)),
        ("delete", lines.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, l)| format!("{l}\n")).collect()),
        (
            "swap",
            [lines[0], lines[2], lines[1], lines[3], lines[4], lines[5]].iter().map(|l| format!("{l}\n")).collect(),
        ),
        (
            "insert",
            [lines[0], lines[1], lines[1], lines[2], lines[3], lines[4], lines[5]]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect(),
        ),
    ];
    for (name, text) in cases {
        std::fs::write(fx.log(), text).unwrap();
        let (code, stdout, err) = out(&mut fx.cmd(&["audit", "verify"]));
        assert_eq!(code, 1, "{name}: {stdout}{err}");
        assert!(stdout.contains("line "), "{name}: the first bad line is named: {stdout}");
        // A review of it says so before anything else.
        let (_, stdout, err) = out(&mut fx.cmd(&["audit", "review"]));
        assert!(err.contains("hash chain is broken"), "{name}: review of a tampered log: {stdout}{err}");
    }
    std::fs::write(fx.log(), &good).unwrap();
    let (code, stdout, err) = out(&mut fx.cmd(&["audit", "review"]));
    assert!(code == 0 && !err.contains("broken"), "an intact log reviews quietly: {stdout}{err}");
    // a torn last line (a crash mid-write) is a warning, and the next writer chains on
    std::fs::write(fx.log(), format!("{good}{{\"seq\":7,\"ts\":\"2026")).unwrap();
    let (code, stdout, _) = out(&mut fx.cmd(&["audit", "verify"]));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.to_lowercase().contains("torn"), "{stdout}");
    assert_eq!(out(&mut fx.cmd(&["run", "--", "/bin/true"])).0, 0);
    let (code, stdout, _) = out(&mut fx.cmd(&["audit", "verify"]));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(fx.records().len(), 12); // 3 runs before, 1 after, 3 records each (with exec)
}

#[test]
fn sigkill_mid_call_leaves_a_valid_log_with_the_start() {
    let fx = Fx::new();
    let mut child = fx.cmd(&["run", "--", "sleep", "30"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !fx.log().exists() || fx.records().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no call.start within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The exec record of sleep may or may not be written before the kill.
    let recs: Vec<_> = fx.records().into_iter().filter(|r| r["event"] != "exec").collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["event"], "call.start");
    assert_eq!(recs[0]["argv"], serde_json::json!(["sleep", "30"]));
    assert_eq!(out(&mut fx.cmd(&["audit", "verify"])).0, 0);
}

#[test]
fn revocation_of_each_kind_changes_the_next_decision() {
    let fx = Fx::new();
    let pol = fx.policy(
        "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\n[commands]\nallow = [\"git status\", \"ls **\"]\n[network]\nallow = [\"github.com\", \"*.crates.io\"]\nallow_private = [\"127.0.0.0/8\"]\n[network.hosts]\n\"github.com\" = \"127.0.0.1\"\n\"index.crates.io\" = \"127.0.0.1\"\n",
    );
    // The names are pinned to loopback (and that allowed): `check --connect` resolves a
    // name as the proxy would, and a test never looks a name up in DNS.
    let p = pol.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut c = fx.cmd(&["check", "--json", "--policy", p]);
        c.args(extra);
        let (code, stdout, err) = out(&mut c);
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}{err}"));
        (code, v["reason"].as_str().unwrap().to_string())
    };
    let cases: &[(&str, &[&str])] = &[
        ("rule:commands.allow[0]", &["--", "git", "status"]),
        ("command:ls **", &["--", "ls", "-l"]),
        ("path:${WORKSPACE}/src", &["--write", "src/main.rs"]),
        ("network:index.crates.io:443", &["--connect", "index.crates.io:443"]),
        ("network:github.com", &["--connect", "github.com:80"]),
    ];
    for (sel, call) in cases {
        assert_eq!(check(call).0, 0, "{sel}: allowed before");
        let (code, stdout, err) = out(fx.cmd(&["revoke", sel, "--reason", "review 2026-11"]));
        assert_eq!(code, 0, "{sel}: {stdout}{err}");
        let (code, reason) = check(call);
        assert_eq!(code, 77, "{sel}: denied after");
        assert!(reason.contains("revoked"), "{sel}: {reason}");
    }
    // the list, the log, and unrevoke
    let (code, listing, _) = out(&mut fx.cmd(&["revoke", "--list"]));
    assert_eq!(code, 0);
    for (sel, _) in cases {
        assert!(listing.contains(sel), "{listing}");
    }
    let revokes = fx.records().iter().filter(|r| r["event"] == "revoke").count();
    assert_eq!(revokes, cases.len());
    assert_eq!(out(&mut fx.cmd(&["unrevoke", "rule:commands.allow[0]"])).0, 0);
    assert_eq!(check(&["--", "git", "status"]).0, 0);
    assert_eq!(fx.records().last().unwrap()["event"], "unrevoke");
    // bad selectors are usage errors with a hint
    for bad in ["bogus:x", "network:a.*.b", "command:"] {
        let (code, _, err) = out(&mut fx.cmd(&["revoke", bad]));
        assert_eq!(code, 64, "{bad}: {err}");
        assert!(err.contains("hint:"), "{err}");
    }
}

#[test]
fn review_reports_grants_unused_grants_and_denials() {
    let fx = Fx::new();
    let pol = fx.policy("version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\", \"/etc\"]\n[commands]\nallow = [\"true\", \"echo **\", \"git status\"]\n");
    let p = pol.to_str().unwrap();
    for argv in [&["true"][..], &["echo", "a"], &["echo", "b"], &["ls"], &["ls"]] {
        let mut c = fx.cmd(&["run", "--policy", p, "--"]);
        c.args(argv);
        out(&mut c);
    }
    let (code, stdout, err) = out(&mut fx.cmd(&["audit", "review", "--json", "--policy", p]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let grant = |rule: &str| v["grants"].as_array().unwrap().iter().find(|g| g["rule"] == rule).cloned();
    assert_eq!(grant("commands.allow[0]").unwrap()["uses"], 1);
    assert_eq!(grant("commands.allow[1]").unwrap()["uses"], 2);
    assert!(grant("commands.allow[2]").is_none());
    let unused: Vec<&str> = v["unused_grants"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(unused.contains(&"commands.allow[2]"), "{unused:?}");
    assert!(!unused.contains(&"commands.allow[1]"), "{unused:?}");
    let denied = v["denied"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["count"], 2);
    let (code, human, _) = out(&mut fx.cmd(&["audit", "review", "--policy", p]));
    assert_eq!(code, 0);
    assert!(human.contains("commands.allow[1]") && human.contains("2 uses"), "{human}");
    let (code, _, err) = out(&mut fx.cmd(&["audit", "review", "--since", "yesterday-ish"]));
    assert_eq!(code, 64, "{err}");
}

#[test]
fn a_revoked_path_is_gone_for_commands_too() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.ws.join("sec")).unwrap();
    std::fs::write(fx.ws.join("sec/x"), "topsecret").unwrap();
    let (code, stdout, err) = out(&mut fx.cmd(&["run", "--", "cat", "sec/x"]));
    assert_eq!((code, stdout.as_str()), (0, "topsecret"), "{err}");
    let sel = format!("path:{}", fx.ws.join("sec").display());
    assert_eq!(out(&mut fx.cmd(&["revoke", &sel])).0, 0);
    let (code, stdout, _) = out(&mut fx.cmd(&["run", "--", "cat", "sec/x"]));
    assert_ne!(code, 0);
    assert!(!stdout.contains("topsecret"));
}

#[test]
fn an_unwritable_home_falls_back_to_a_private_state_dir() {
    // `setpriv --reuid=65534` keeps root's HOME=/root, where uid 65534 cannot write: the
    // call must still run, audited, with the log in $TMPDIR/paddock-65534/state.
    let me = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        me.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
        "this test drops to uid 65534 and must run as root (CI does)"
    );
    let dir = tempfile::Builder::new().prefix("paddock-e2e-").tempdir_in("/tmp").unwrap();
    let root = dir.path();
    let bin = root.join("paddock");
    common::copy_executable(Path::new(env!("CARGO_BIN_EXE_paddock")), &bin);
    let (tmp, ws) = (root.join("tmp"), root.join("ws"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&ws).unwrap();
    for (p, mode) in [(root, 0o755), (bin.as_path(), 0o755), (tmp.as_path(), 0o1777)] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::chown(&ws, Some(65534), Some(65534)).unwrap();
    // `paddock run -- true` as uid 65534, root's HOME, and TMPDIR=`tmpdir`
    let run_as_nobody = |tmpdir: &Path| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["run", "--", "true"])
            .env("HOME", "/root")
            .env("TMPDIR", tmpdir)
            .env_remove("PADDOCK_STATE_DIR")
            .env_remove("XDG_STATE_HOME")
            .current_dir(&ws)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run_as_nobody(&tmp);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("fallback"), "the fallback is announced: {err}");
    let log = std::fs::read_to_string(tmp.join("paddock-65534/state/audit.jsonl")).unwrap();
    assert!(log.lines().next().unwrap().contains("\"event\":\"call.start\""), "{log}");
    // a directory of someone else's under that name is refused, never used
    let other_tmp = root.join("tmp2");
    std::fs::create_dir_all(other_tmp.join("paddock-65534")).unwrap();
    std::fs::set_permissions(&other_tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let o = run_as_nobody(&other_tmp);
    assert_eq!(o.status.code(), Some(125), "{}", String::from_utf8_lossy(&o.stderr));
}
