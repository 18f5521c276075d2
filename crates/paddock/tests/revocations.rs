//! A library session and its revocation list: a list that cannot be read, parsed or
//! compiled denies every call (rule `revocations`) for as long as it stays broken, and a
//! fixed list is picked up at the next call. paddock's own files are never decided allow.
//!
//! Only decisions and denied calls here (no child runs): the end-to-end tests
//! (`tests/hardening.rs`) run allowed calls through `serve`, `mcp` and `run`.

use std::path::{Path, PathBuf};

use paddock::{Session, SessionConfig, ToolCall};
use paddock_policy::{Policy, Vars};

struct Fx {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    state: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (ws, state) = (root.join("ws"), root.join("state"));
        std::fs::create_dir(&ws).unwrap();
        std::fs::create_dir(&state).unwrap();
        Fx { _dir: dir, ws, state }
    }

    fn list(&self) -> PathBuf {
        self.state.join("revocations.toml")
    }

    fn session(&self) -> Session {
        let vars = Vars { workspace: self.ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let text = "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/etc\"]\nwrite = [\"${WORKSPACE}\"]\n[network]\nallow = [\"example.test\"]\n";
        let policy = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let mut cfg = SessionConfig::new(policy, self.state.join("audit.jsonl"));
        cfg.revocations = Some(self.list());
        Session::new(cfg).expect("a broken list never stops a session from starting: it denies instead")
    }

    fn write_list(&self, text: &str) {
        // A new inode each time, as `paddock revoke` writes it (rename), so the change is seen.
        let tmp = self.state.join("revocations.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.list()).unwrap();
    }
}

fn calls(ws: &Path) -> Vec<ToolCall> {
    vec![
        ToolCall::Command { argv: vec!["ls".into()], cwd: None, stdin: None, timeout: None },
        ToolCall::ReadFile { path: "/etc/hostname".into() },
        ToolCall::WriteFile { path: ws.join("a.txt").to_string_lossy().into_owned(), content: "x".into() },
        ToolCall::HttpRequest { url: "https://example.test/".into(), method: None, headers: None, body: None },
    ]
}

/// Asserts every kind of call is denied by the broken list, `n` times over.
fn assert_all_denied(s: &Session, fx: &Fx, n: usize) {
    for _ in 0..n {
        for c in calls(&fx.ws) {
            let d = s.check(&c);
            assert_eq!((d.verdict.as_str(), &*d.rule), ("deny", "revocations"), "{c:?}: {}", d.reason);
            assert!(d.reason.contains(&fx.list().display().to_string()), "{}", d.reason);
        }
    }
}

fn assert_all_allowed(s: &Session, fx: &Fx) {
    for c in calls(&fx.ws) {
        let d = s.check(&c);
        assert!(d.is_allow(), "{c:?}: {} ({})", d.reason, d.rule);
    }
}

const REVOKE_LS: &str = "[[revoked]]\nselector = \"command:ls **\"\nts = \"2026-03-01T12:00:00.000Z\"\n";

#[test]
fn a_corrupt_list_denies_every_call_until_it_is_fixed() {
    let fx = Fx::new();
    fx.write_list(REVOKE_LS);
    let s = fx.session();
    let ls = &calls(&fx.ws)[0];
    assert!(s.check(ls).reason.contains("revoked"), "the list is in force");
    assert!(s.check(&calls(&fx.ws)[1]).is_allow());

    fx.write_list("this is [[ not toml");
    assert_all_denied(&s, &fx, 3);
    assert!(s.check(ls).reason.contains("cannot be used"), "{}", s.check(ls).reason);
    // a denied call is an outcome, recorded with the rule, and runs nothing
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(s.call(calls(&fx.ws)[2].clone())).unwrap();
    assert_eq!((out.decision.as_str(), out.rule.as_str(), out.exit_code), ("deny", "revocations", None));
    assert!(!fx.ws.join("a.txt").exists());

    fx.write_list(REVOKE_LS);
    assert!(s.check(ls).reason.contains("revoked by `command:ls **`"), "{}", s.check(ls).reason);
    assert!(s.check(&calls(&fx.ws)[1]).is_allow(), "fixed: picked up again");
    std::fs::remove_file(fx.list()).unwrap();
    assert_all_allowed(&s, &fx);
}

#[test]
fn a_list_that_does_not_compile_stays_denying_on_every_later_call() {
    let fx = Fx::new();
    let s = fx.session();
    assert_all_allowed(&s, &fx);
    // Good TOML, but revoking a restriction does not compile: still fail closed, and the
    // session must not drift back to the old policy once the file stops changing.
    fx.write_list("[[revoked]]\nselector = \"rule:filesystem.deny[0]\"\nts = \"2026-03-01T12:00:00.000Z\"\n");
    assert_all_denied(&s, &fx, 3);
    assert!(s.policy().denies_all().unwrap().contains("names a restriction"));
    fx.write_list("");
    assert_all_allowed(&s, &fx);
}

#[test]
fn a_session_started_on_a_broken_list_denies_then_recovers() {
    let fx = Fx::new();
    fx.write_list("[[revoked]\n");
    let s = fx.session();
    assert_all_denied(&s, &fx, 2);
    fx.write_list(REVOKE_LS);
    assert!(s.check(&calls(&fx.ws)[0]).reason.contains("revoked"));
    assert!(s.check(&calls(&fx.ws)[3]).is_allow());
}

#[test]
fn an_unreadable_list_denies() {
    let fx = Fx::new();
    let s = fx.session();
    // a directory where the file should be: it cannot be read, whoever runs the test
    std::fs::create_dir(fx.list()).unwrap();
    assert_all_denied(&s, &fx, 2);
    std::fs::remove_dir(fx.list()).unwrap();
    assert_all_allowed(&s, &fx);
}

#[test]
fn the_sessions_own_files_are_never_granted() {
    let fx = Fx::new();
    let vars = Vars { workspace: fx.ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    let policy =
        Policy::from_toml_str("p.toml", "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\n", &vars).unwrap();
    // the log and the list inside the writable workspace
    let mut cfg = SessionConfig::new(policy, fx.ws.join("audit.jsonl"));
    cfg.revocations = Some(fx.ws.join("revocations.toml"));
    let s = Session::new(cfg).unwrap();
    for name in ["audit.jsonl", "revocations.toml", "revocations.toml.lock"] {
        let path = fx.ws.join(name).to_string_lossy().into_owned();
        for c in [ToolCall::ReadFile { path: path.clone() }, ToolCall::WriteFile { path, content: String::new() }] {
            let d = s.check(&c);
            assert_eq!((d.verdict.as_str(), &*d.rule), ("deny", "paddock.state"), "{c:?}: {}", d.reason);
        }
    }
    assert!(s
        .check(&ToolCall::WriteFile { path: fx.ws.join("x").to_string_lossy().into_owned(), content: String::new() })
        .is_allow());
    let hidden = s.policy().hidden_paths().to_vec();
    assert!(
        hidden.contains(&fx.ws.join("audit.jsonl")) && hidden.contains(&fx.ws.join("revocations.toml")),
        "{hidden:?}"
    );
}
