//! The body of `POST /v1/calls` / `/v1/check` (and MCP tool arguments): parsing into a
//! `ToolCall` never panics, what parses encodes and reads back the same, and the
//! session decides it (`check`) without panicking, naming a rule and a reason.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use paddock::policy::{Policy, Vars};
use paddock::{Session, SessionConfig, ToolCall};

fn session() -> &'static Session {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static S: OnceLock<Session> = OnceLock::new();
    S.get_or_init(|| {
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir"));
        let vars = Vars { workspace: dir.path().into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let text = "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"${WORKSPACE}\"]\n\
                    [commands]\nallow = [\"ls\", \"git status\"]\n[network]\nallow = [\"allowed.test\"]\n";
        let policy = Policy::from_toml_str("fuzz.toml", text, &vars).expect("policy");
        Session::new(SessionConfig::new(policy, dir.path().join("audit.jsonl"))).expect("session")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(call) = serde_json::from_slice::<ToolCall>(data) else { return };
    let again = serde_json::to_vec(&call).expect("a call encodes");
    assert_eq!(serde_json::from_slice::<ToolCall>(&again).expect("reads back"), call);
    let d = session().check(&call);
    assert!(!d.rule.is_empty() && !d.reason.is_empty(), "{d:?}");
    if let ToolCall::Command { timeout: Some(t), .. } = &call {
        let _ = t.duration();
    }
});
