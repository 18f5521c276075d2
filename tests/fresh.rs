//! End-to-end through `paddock serve`: a session's calls run in one zygote, whose view is
//! made when it starts; a file created on the host beneath a deny glob, or a socket bound
//! there, after that must still be out of the next call's view ("deny and protect hold for
//! what exists when the call starts"). Controls: before it exists the read fails with
//! not-found, and an ordinary file created the same way at the same time is readable.

#[macro_use]
mod common;

use common::*;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

both_users!(late_secrets_and_sockets_are_out_of_later_serve_calls);

/// A `paddock serve` of the fixture's user on 127.0.0.1 (port 0). Killed by pid on drop.
struct Serve {
    child: Child,
    addr: String,
    token_file: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(f: &Fixture, policy: &Path) -> Serve {
        let state = f.root.join("state");
        let token_file = state.join("api.token");
        let mut argv = f.user.prefix();
        argv.extend([f.bin.clone().into(), "serve".into(), "--workspace".into(), f.ws.clone().into()]);
        argv.extend(["--policy".into(), policy.into(), "--token-file".into(), OsString::from(&token_file)]);
        argv.extend(["--listen".into(), "127.0.0.1:0".into()]);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &f.home)
            .env("PADDOCK_STATE_DIR", &state)
            .current_dir(&f.ws)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paddock serve");
        let (tx, rx) = mpsc::channel();
        let out = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let addr = line.strip_prefix("paddock: listening on ").map(|a| a.trim().to_string());
                if tx.send(addr.ok_or(line)).is_err() {
                    return;
                }
            }
        });
        let mut log = String::new();
        loop {
            match rx.recv_timeout(HANG) {
                Ok(Ok(addr)) => return Serve { child, addr, token_file },
                Ok(Err(line)) => log.push_str(&line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("paddock serve did not start:\n{log}")
                }
            }
        }
    }

    fn call(&self, call: Value) -> Value {
        let token = read(&self.token_file).trim().to_string();
        let body = call.to_string();
        let req = format!(
            "POST /v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut c = std::net::TcpStream::connect(&self.addr).expect("connect");
        c.set_read_timeout(Some(HANG)).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }
}

/// Waits until every directory under `dir` last changed more than three seconds ago (past
/// the racily-clean margin), so the next zygote's stamp vouches for its view.
fn settle(dir: &Path) {
    let newest = |d: &Path| -> i64 {
        let mut max = std::fs::symlink_metadata(d).unwrap().ctime();
        let mut stack = vec![d.to_path_buf()];
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
    let t = std::time::Instant::now();
    while SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 <= newest(dir) + 3 {
        assert!(t.elapsed() < HANG, "the workspace never settled");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const PROBE: &str = "cat sub/late.txt; echo; cat sub/late.pem; echo; if test -S sub/late.sock; then echo SOCKET; fi";

fn late_secrets_and_sockets_are_out_of_later_serve_calls(u: User) {
    let f = Fixture::new(u);
    let sub = f.ws.join("sub");
    std::fs::create_dir(&sub).unwrap();
    chown(&sub, u.uid());
    let pol = f.policy(&Pol { deny: &["${WORKSPACE}/**/*.pem"], ..Pol::default() });
    let srv = Serve::start(&f, &pol);
    // Control: neither exists yet, and the call says so (the probe reaches the path).
    let v = srv.call(json!({ "tool": "command", "argv": ["sh", "-c", PROBE] }));
    assert!(v["stderr"].as_str().unwrap().contains("sub/late.pem: No such file"), "{v}");
    assert!(!v["stdout"].as_str().unwrap().contains("SOCKET"), "{v}");
    // Once the workspace is past the racy margin, a call (and its zygote) sees it unchanged.
    settle(&f.ws);
    let v = srv.call(json!({ "tool": "command", "argv": ["true"] }));
    assert_eq!(v["exit_code"], 0, "{v}");

    // Created on the host after the session's zygote started.
    let secret = format!("SECRET-late-{}", unique());
    let plain = format!("plain-late-{}", unique());
    write(&sub.join("late.pem"), &secret, 0o644);
    write(&sub.join("late.txt"), &plain, 0o644);
    let sock = sub.join("late.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket(), "control: a socket on the host");
    assert_eq!(f.host(&["cat", sub.join("late.pem").to_str().unwrap()]).out(), secret, "control: the host reads it");

    let v = srv.call(json!({ "tool": "command", "argv": ["sh", "-c", PROBE] }));
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains(&plain), "control: a late ordinary file is readable\n{v}");
    let leaks: Vec<&str> = [
        (out.contains(&secret), "a late file beneath a deny glob is readable"),
        (out.contains("SOCKET"), "a late socket is in the view"),
    ]
    .into_iter()
    .filter_map(|(leak, what)| leak.then_some(what))
    .collect();
    assert!(leaks.is_empty(), "{leaks:?}\n{v}");
}
