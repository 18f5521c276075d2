//! End-to-end through the library (`paddock::Session`), issue 10 items 5 and 6: an
//! `http_request` refused by the proxy for its address is a denial with the proxy's rule
//! (and `Session::check` predicts it), an allowed one carries the response's status,
//! headers and body; each call's `call.start` names the grants its view held.
//!
//! `harness = false`: the sandbox re-executes this binary as its helper, so `main` must
//! call the hook before anything else (as every embedding does). Loopback only: the name
//! is pinned to 127.0.0.1 and the upstream is this test's own server.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use paddock::{Session, SessionConfig, ToolCall};
use paddock_policy::{Policy, Vars};

fn main() {
    paddock::sandbox::helper_main_if_requested();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(http_request_is_the_proxy_verdict_and_the_response());
    println!("truth_library: ok");
}

/// A loopback HTTP server answering `hello` with an `X-Truth` header; its port.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let (mut head, mut b) = (Vec::new(), [0u8; 1]);
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nX-Truth: yes\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
            });
        }
    });
    port
}

fn session(dir: &Path, port: u16, allow_private: &str) -> Session {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let read: Vec<String> = ["/usr", "/bin", "/lib", "/lib64", "/etc"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p:?}"))
        .collect();
    let text = format!(
        "version = 1\n[filesystem]\nread = [{}]\nwrite = [\"${{WORKSPACE}}\"]\n[env]\nset = {{ PATH = \"/usr/bin:/bin\" }}\n[network]\nallow = [\"mirror.test:{port}\"]\nallow_private = [{allow_private}]\n[network.hosts]\n\"mirror.test\" = \"127.0.0.1\"\n",
        read.join(", ")
    );
    let path = dir.join(format!("policy-{}.toml", allow_private.len()));
    std::fs::write(&path, text).unwrap();
    let policy = Policy::load(&path, &Vars::from_env(&ws)).unwrap_or_else(|e| panic!("{e}"));
    Session::new(SessionConfig::new(policy, dir.join("audit.jsonl"))).unwrap()
}

async fn http_request_is_the_proxy_verdict_and_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let port = http_server();
    let call = || ToolCall::HttpRequest {
        url: format!("http://mirror.test:{port}/simple/"),
        method: None,
        headers: None,
        body: None,
    };

    // Allowed by name, refused for its address: a denial with the proxy's rule.
    let s = session(dir.path(), port, "");
    let d = s.check(&call());
    assert_eq!((d.verdict.as_str(), &*d.rule), ("deny", "network.allow_private"), "{d:?}");
    let o = s.call(call()).await.unwrap();
    assert_eq!((o.decision.as_str(), o.rule.as_str()), ("deny", "network.allow_private"), "{o:?}");
    assert!(o.reason.contains("add \"127.0.0.1/32\" to [network] allow_private"), "{o:?}");
    assert_eq!((o.status, o.exit_code), (None, None), "{o:?}");
    assert!(!o.stdout.contains("403"), "{o:?}");
    s.close().unwrap();

    // Control: covered by allow_private, the response itself.
    let s = session(dir.path(), port, "\"127.0.0.0/8\"");
    assert_eq!(s.check(&call()).verdict.as_str(), "allow");
    let o = s.call(call()).await.unwrap();
    assert_eq!((o.decision.as_str(), o.status, o.body.as_deref()), ("allow", Some(200), Some("hello")), "{o:?}");
    assert_eq!(o.headers.as_ref().unwrap()["x-truth"], "yes", "{o:?}");
    s.close().unwrap();

    // Each call that ran names the grants its view held; the review counts them in use.
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let starts: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "call.start")
        .collect();
    assert_eq!(starts.len(), 2, "{log}");
    for r in &starts {
        assert!(r["view"].as_array().unwrap().contains(&serde_json::json!("filesystem.write[0]")), "{r}");
    }
    let rules: Vec<String> = vec!["filesystem.write[0]".into(), "filesystem.read[0]".into()];
    let review = paddock::audit::review(dir.path().join("audit.jsonl"), None, &rules).unwrap();
    assert!(review.unused_grants.is_empty(), "{:?}", review.unused_grants);
    assert_eq!(review.denied_connections, 1, "{review:?}");
}
