//! End-to-end: a session whose `$STATE` lies inside its workspace (`PADDOCK_STATE_DIR` in
//! the project, or a workspace that is the home, holding `~/.local/state/paddock`) keeps
//! its zygote from call to call. Every call changes `$STATE` (its record in
//! `$STATE/running`), which every view masks whole; the zygote's view stamp holds a
//! directory masked whole by its parent's entries only (`paddock_sandbox::view_stamp`), and
//! the scan for glob matches does not look in paddock's own state (nothing there is ever
//! moved aside), so the last start's scan stands for the next. Until 2026-12-04 every call
//! of such a session started a new zygote, about ten times a call's own time. The calls
//! still see nothing of `$STATE`; a directory masked whole (a deny glob's match) that the
//! host fills between two calls stays masked in the same zygote; and one whose name the
//! host gives to another directory gets a new zygote, whose view masks the new one.

#[macro_use]
mod common;
use common::*;

use std::path::Path;

both_users!(
    a_session_with_its_state_in_the_workspace_keeps_its_zygote,
    a_directory_masked_whole_and_replaced_on_the_host_stays_masked,
);

/// The debug line of each zygote a session starts.
const STARTED: &str = "zygote started";

/// The debug line of a call whose scan for glob matches the last start's stood for.
const KEPT_SCAN: &str = "glob matches before the call: unchanged since the last scan";

/// A directory of the workspace owned by the fixture's user, with `mode`.
fn own_dir(f: &Fixture, p: &Path, mode: u32) {
    std::fs::create_dir(p).unwrap();
    chown(p, f.user.uid());
    chmod(p, mode);
}

fn a_session_with_its_state_in_the_workspace_keeps_its_zygote(user: User) {
    let f = Fixture::new(user);
    let state = f.ws.join(".paddock-state");
    own_dir(&f, &state, 0o700);
    wait_past_ctime_margin(&[f.ws.clone(), state.clone()]);
    let log = f.root.join("mcp.log");
    let mut s = McpSession::start_with_state(&f, Some(&log), &state);
    for i in 0..4 {
        let a = s.call(&format!("echo call-{i}"));
        assert!(a.contains(r#"\"exit_code\":0"#) && a.contains(&format!("call-{i}")), "{a}");
    }
    // The calls were recorded in `$STATE`, which no call sees.
    let audit = state.join("audit.jsonl");
    let a = s.call(&format!("ls -A {q}; cat {q}/audit.jsonl; echo probed", q = sh_quote(&state.to_string_lossy())));
    s.end();
    assert!(a.contains("probed"), "{a}");
    assert!(!a.contains("call.start") && !a.contains("running"), "a call saw `$STATE`: {a}");
    assert!(read(&audit).matches(r#""event":"call.start""#).count() >= 5, "control: the calls are on the log");
    let log = read(&log);
    assert_eq!(log.matches(STARTED).count(), 1, "one zygote for the session's five calls:\n{log}");
    assert!(!log.contains("new zygote"), "{log}");
    // Nor does the scan for glob matches look in `$STATE`: the stamp stands for it.
    assert!(log.contains(KEPT_SCAN), "later calls took the kept scan:\n{log}");
}

fn a_directory_masked_whole_and_replaced_on_the_host_stays_masked(user: User) {
    let f = Fixture::new(user);
    // A directory the embedded default's `**/*.pem` deny glob masks whole.
    let keys = f.ws.join("keys.pem");
    own_dir(&f, &keys, 0o755);
    let first = format!("SECRET-first-{}", unique());
    write(&keys.join("a.txt"), &first, 0o644);
    wait_past_ctime_margin(&[f.ws.clone(), keys.clone()]);
    let log = f.root.join("mcp.log");
    let mut s = McpSession::start(&f, Some(&log));
    let probe = |s: &mut McpSession, name: &str| s.call(&format!("cat keys.pem/{name}; ls -A keys.pem; echo probed"));
    let a = probe(&mut s, "a.txt");
    assert!(a.contains("probed") && !a.contains(&first) && !a.contains("a.txt\\n"), "{a}");
    // Filled on the host: the same zygote, the new file masked with the directory.
    let second = format!("SECRET-second-{}", unique());
    write(&keys.join("b.txt"), &second, 0o644);
    let a = probe(&mut s, "b.txt");
    assert!(a.contains("probed") && !a.contains(&second), "{a}");
    assert_eq!(read(&log).matches(STARTED).count(), 1, "a change inside a directory masked whole");
    // The name given to another directory on the host: a new zygote, which masks it.
    std::fs::rename(&keys, f.ws.join("keys.old")).unwrap();
    own_dir(&f, &keys, 0o755);
    let third = format!("SECRET-third-{}", unique());
    write(&keys.join("c.txt"), &third, 0o644);
    assert_eq!(f.host(&["cat", keys.join("c.txt").to_str().unwrap()]).out(), third, "control: the host reads it");
    let a = probe(&mut s, "c.txt");
    s.end();
    assert!(a.contains("probed") && !a.contains(&third), "the new directory is masked: {a}");
    let log = read(&log);
    assert!(log.contains("view is out of date"), "{log}");
    assert_eq!(log.matches(STARTED).count(), 2, "{log}");
}
