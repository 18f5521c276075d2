//! End-to-end through the library (`paddock::Session::call`): a file created on the host
//! beneath a deny glob, or a socket bound there, after the session's zygote started is out
//! of the next call's view. Controls: before it exists the read fails with not-found, and an
//! ordinary file created the same way at the same time is readable. Runs as the test's user.
//!
//! `harness = false`: the sandbox re-executes this binary as its helper, so `main` must
//! call the hook before anything else (as every embedding does).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paddock::{CallOutcome, Session, SessionConfig, ToolCall};
use paddock_policy::{Policy, Vars};

fn main() {
    paddock::sandbox::helper_main_if_requested();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(late_secrets_and_sockets_are_out_of_later_calls());
    println!("fresh_library: ok");
}

const PROBE: &str = "cat sub/late.txt; echo; cat sub/late.pem; echo; if test -S sub/late.sock; then echo SOCKET; fi";

fn probe() -> ToolCall {
    ToolCall::Command { argv: vec!["sh".into(), "-c".into(), PROBE.into()], cwd: None, stdin: None, timeout: None }
}

/// Waits until every directory under `dir` last changed more than three seconds ago (past
/// the racily-clean margin), so the next zygote's stamp vouches for its view.
fn settle(dir: &Path) {
    let newest = || -> i64 {
        let mut max = std::fs::symlink_metadata(dir).unwrap().ctime();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap().map(Result::unwrap) {
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    max = max.max(m.ctime());
                    stack.push(e.path());
                }
            }
        }
        max
    };
    let t = Instant::now();
    while SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 <= newest() + 3 {
        assert!(t.elapsed() < Duration::from_secs(60), "the workspace never settled");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn unique() -> String {
    format!("{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos())
}

async fn late_secrets_and_sockets_are_out_of_later_calls() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let ws = root.join("ws");
    let sub = ws.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let read: Vec<String> = ["/usr", "/bin", "/lib", "/lib64", "/etc"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p:?}"))
        .collect();
    let text = format!(
        "version = 1\n[filesystem]\nread = [{}]\nwrite = [\"${{WORKSPACE}}\"]\ndeny = [\"${{WORKSPACE}}/**/*.pem\"]\n[env]\nset = {{ PATH = \"/usr/bin:/bin\" }}\n",
        read.join(", ")
    );
    let path = root.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    let vars = Vars { workspace: ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    let policy = Policy::load(&path, &vars).unwrap_or_else(|e| panic!("{e}"));
    let s = Session::new(SessionConfig::new(policy, root.join("audit.jsonl"))).unwrap();

    // Control: neither exists yet, and the call says so (the probe reaches the path).
    let o: CallOutcome = s.call(probe()).await.unwrap();
    assert!(o.stderr.contains("sub/late.pem: No such file"), "{o:?}");
    assert!(!o.stdout.contains("SOCKET"), "{o:?}");
    // Once the workspace is past the racy margin, a call (and its zygote) sees it unchanged.
    settle(&ws);
    let o =
        s.call(ToolCall::Command { argv: vec!["true".into()], cwd: None, stdin: None, timeout: None }).await.unwrap();
    assert_eq!(o.exit_code, Some(0), "{o:?}");

    // Created on the host after the session's zygote started.
    let (secret, plain) = (format!("SECRET-late-{}", unique()), format!("plain-late-{}", unique()));
    std::fs::write(sub.join("late.pem"), &secret).unwrap();
    std::fs::write(sub.join("late.txt"), &plain).unwrap();
    let sock = sub.join("late.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket(), "control: a socket on the host");
    assert_eq!(std::fs::read_to_string(sub.join("late.pem")).unwrap(), secret, "control: the host reads it");

    let o = s.call(probe()).await.unwrap();
    assert!(o.stdout.contains(&plain), "control: a late ordinary file is readable\n{o:?}");
    let leaks: Vec<&str> = [
        (o.stdout.contains(&secret), "a late file beneath a deny glob is readable"),
        (o.stdout.contains("SOCKET"), "a late socket is in the view"),
    ]
    .into_iter()
    .filter_map(|(leak, what)| leak.then_some(what))
    .collect();
    assert!(leaks.is_empty(), "{leaks:?}\n{o:?}");
}
