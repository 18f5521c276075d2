//! End-to-end: egress through paddock's proxy inside `paddock run`. Loopback only: local
//! HTTP servers on 127.0.0.1, names pinned with `[network.hosts]`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A tiny HTTP server on 127.0.0.1 that answers every request with `hello from <port>`
/// and counts the connections it accepted.
struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                h.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(s, port));
            }
        });
        Upstream { port, hits }
    }
}

fn serve(s: TcpStream, port: u16) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    loop {
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        let body = format!("hello from {port}");
        if w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).is_err() {
            return;
        }
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    up: Upstream,
    other: Upstream,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ws")).unwrap();
        let (up, other) = (Upstream::start(), Upstream::start());
        let policy = format!(
            r#"version = 1
[filesystem]
read = ["/usr", "/bin", "/lib", "/lib64", "/etc"]
write = ["${{WORKSPACE}}"]
[network]
allow = ["allowed.test:{p}", "*.wild.test:{p}", "127.0.0.1:{o}", "unpinned-private.test:{p}"]
deny = ["denied.test"]
allow_private = ["127.0.0.1/32"]
[network.hosts]
"allowed.test" = "127.0.0.1"
"a.wild.test" = "127.0.0.1"
"denied.test" = "127.0.0.1"
"notallowed.test" = "127.0.0.1"
"unpinned-private.test" = "127.0.0.2"
[env]
set = {{ PATH = "/usr/bin:/bin" }}
"#,
            p = up.port,
            o = other.port
        );
        std::fs::write(root.join("policy.toml"), policy).unwrap();
        Fx { _dir: dir, root, up, other }
    }

    /// Runs `sh -c script` under the policy; returns exit code, stdout, stderr.
    fn sh(&self, script: &str) -> (i32, String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["-v", "run", "--policy"])
            .arg(self.root.join("policy.toml"))
            .arg("--workspace")
            .arg(self.root.join("ws"))
            .args(["--", "sh", "-c", script])
            .env("PADDOCK_STATE_DIR", self.root.join("state"))
            .current_dir(self.root.join("ws"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }

    fn records(&self, event: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.root.join("state/audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["event"] == event)
            .collect()
    }
}

fn curl(args: &str) -> String {
    format!("curl -sS --max-time 10 -o /tmp/body -w '%{{http_code}}' {args}; echo \" $(cat /tmp/body 2>/dev/null)\"")
}

fn need_curl() {
    assert!(Path::new("/usr/bin/curl").exists(), "these tests need /usr/bin/curl (.ci/run installs it)");
}

#[test]
fn allowed_name_works_over_plain_http_and_connect() {
    need_curl();
    let fx = Fx::new();
    let p = fx.up.port;
    let (code, out, err) = fx.sh(&curl(&format!("http://allowed.test:{p}/x")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("200 hello from {p}"), "{err}");
    // CONNECT tunnel (-p), and a wildcard entry
    let (code, out, err) = fx.sh(&curl(&format!("-p http://a.wild.test:{p}/y")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("200 hello from {p}"), "{err}");
    assert!(err.contains(&format!("connect a.wild.test:{p} -> 127.0.0.1:{p} allowed by network.allow[1]")), "{err}");
    let conns = fx.records("net.connect");
    assert!(
        conns.iter().any(|c| c["host"] == "allowed.test"
            && c["verdict"] == "allow"
            && c["rule"] == "network.allow[0]"
            && c["bytes_down"].as_u64() > Some(0)),
        "{conns:?}"
    );
    assert!(fx.up.hits.load(Ordering::SeqCst) >= 2);
}

#[test]
fn everything_else_is_refused() {
    need_curl();
    let fx = Fx::new();
    let (p, o) = (fx.up.port, fx.other.port);
    let cases = [
        ("name not allowed", curl(&format!("http://notallowed.test:{p}/")), "403", "default"),
        ("allowed name, port not allowed", curl(&format!("http://allowed.test:{o}/")), "403", "default"),
        ("denied name", curl(&format!("http://denied.test:{p}/")), "403", "network.deny[0]"),
        ("IP literal without an entry", curl(&format!("http://127.0.0.1:{p}/")), "403", "default"),
        (
            "allowed name pinned to a private address not in allow_private",
            curl(&format!("http://unpinned-private.test:{p}/")),
            "403",
            "private",
        ),
        ("userinfo trick", curl(&format!("'http://allowed.test:{p}@denied.test:{p}/'")), "403", ""),
    ];
    let before = fx.up.hits.load(Ordering::SeqCst) + fx.other.hits.load(Ordering::SeqCst);
    for (name, script, status, needle) in cases {
        let (_, out, err) = fx.sh(&script);
        assert!(out.trim().starts_with(status), "{name}: {out} {err}");
        assert!(out.contains(needle), "{name}: the refusal names `{needle}`: {out}");
    }
    // through CONNECT: the tunnel is refused with 403 and the refusal is reported
    let (_, _, err) = fx.sh(&curl(&format!("-p http://denied.test:{p}/")));
    assert!(err.contains("CONNECT tunnel failed, response 403"), "{err}");
    assert!(err.contains(&format!("connect denied.test:{p} -> - denied by network.deny[0]")), "{err}");
    // bypassing the proxy, UDP, direct connections: no route at all
    let (code, out, err) = fx.sh(&format!(
        "curl -sS --max-time 5 --noproxy '*' http://allowed.test:{p}/ ; echo rc=$?; curl -sS --max-time 5 --noproxy '*' http://127.0.0.1:{p}/ ; echo rc=$?; \
         python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.sendto(b'x', ('127.0.0.53', 53)); print(s.recv(10))\"; echo rc=$?"
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("rc=0").count(), 0, "{out}\n{err}");
    assert_eq!(
        fx.up.hits.load(Ordering::SeqCst) + fx.other.hits.load(Ordering::SeqCst),
        before,
        "an upstream saw a connection"
    );
    let denied = fx.records("net.connect").into_iter().filter(|c| c["verdict"] == "deny").count();
    assert!(denied >= 6, "every refusal is on the audit log ({denied})");
}

#[test]
fn no_network_allow_means_no_proxy_and_no_network() {
    need_curl();
    let fx = Fx::new();
    let p = fx.up.port;
    std::fs::write(fx.root.join("policy.toml"), "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\", \"/etc\"]\n[env]\nset = { PATH = \"/usr/bin:/bin\" }\n").unwrap();
    let (_, out, _) = fx.sh(&format!("env | grep -i _proxy; curl -sS --max-time 5 http://127.0.0.1:{p}/; echo rc=$?"));
    assert!(!out.to_lowercase().contains("_proxy="), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    assert_eq!(fx.up.hits.load(Ordering::SeqCst), 0);
}

#[allow(dead_code)]
fn read_all(mut s: TcpStream) -> String {
    let mut v = String::new();
    let _ = s.read_to_string(&mut v);
    v
}

/// `paddock revoke network:HOST` cuts the tunnels already open to HOST, not only new ones:
/// the child holds a keep-alive tunnel, the revocation comes from outside, and the
/// tunnel ends without the child sending anything more.
#[test]
fn a_revocation_cuts_an_open_tunnel() {
    let fx = Fx::new();
    let p = fx.up.port;
    let script = format!(
        r#"
import os, socket, time, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
s = socket.create_connection((proxy.hostname, proxy.port))
s.sendall(b"CONNECT allowed.test:{p} HTTP/1.1\r\n\r\n")
f = s.makefile("rb")
print("connect", f.readline().decode().strip())
while f.readline() not in (b"\r\n", b""):
    pass
s.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n")
print("first", f.readline().decode().strip())
while f.readline() not in (b"\r\n", b""):
    pass
print("body", f.read(len("hello from {p}")).decode())
open("step1", "w").close()
s.settimeout(20)
try:
    print("after the revocation:", "closed" if f.read(1) == b"" else "data")
except socket.timeout:
    print("after the revocation: still open")
"#
    );
    let (code, out, err) = std::thread::scope(|s| {
        let run = s.spawn(|| fx.sh(&format!("python3 -c '{}'", script.replace('\'', "'\\''"))));
        let step = fx.root.join("ws/step1");
        let start = std::time::Instant::now();
        while !step.exists() {
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "the child never got its first answer");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let o = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["revoke", "network:allowed.test"])
            .env("PADDOCK_STATE_DIR", fx.root.join("state"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        run.join().unwrap()
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("connect HTTP/1.1 200") && out.contains(&format!("body hello from {p}")), "{out}{err}");
    assert!(out.contains("after the revocation: closed"), "{out}{err}");
    let conns = fx.records("net.connect");
    let cut = conns.iter().find(|c| c["host"] == "allowed.test").expect("the tunnel's record");
    let text = cut.to_string();
    assert!(text.contains("cut while open") && text.contains("revoked by"), "{text}");
}
