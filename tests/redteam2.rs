//! Red team, second wave: attacks on brokered secrets, approvals, exec supervision and
//! the review, as an agent inside the sandbox would make them. Loopback only: every name
//! is pinned to 127.0.0.1 with `[network.hosts]`. Each attack has its control.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::tls::Upstream;
use common::*;

const API: &str = "api.paddock.test";
const OTHER: &str = "other.paddock.test";

/// A TLS upstream answering for both names, a plain-HTTP listener, and a `file:` secret
/// for `API` only.
struct World {
    f: Fixture,
    up: Upstream,
    plain_port: u16,
    plain_seen: Arc<Mutex<Vec<String>>>,
    token_file: PathBuf,
    value: String,
}

impl World {
    fn new(user: User) -> World {
        let f = Fixture::new(user);
        let up = Upstream::start(&f.root, &[API, OTHER]);
        let token_file = f.root.join("gh-token");
        let value = format!("ghp_REDTEAM{}", unique());
        write(&token_file, &format!("{value}\n"), 0o600);
        chown(&token_file, user.uid());
        let (plain_port, plain_seen) = plain_listener();
        World { f, up, plain_port, plain_seen, token_file, value }
    }

    fn run(&self, argv: &[&str]) -> Out {
        let (p, q) = (self.up.port, self.plain_port);
        let tail = format!(
            r#"[network]
allow = ["{API}:{p}", "{OTHER}:{p}", "{API}:{q}"]
allow_private = ["127.0.0.1/32"]
upstream_ca = [{ca:?}]
[network.hosts]
"{API}" = "127.0.0.1"
"{OTHER}" = "127.0.0.1"

[secrets.gh]
from = "file:{tok}"
hosts = ["{API}"]
env = "GH_TOKEN"
"#,
            ca = self.up.ca_file.display().to_string(),
            tok = self.token_file.display(),
        );
        self.f.run(&Pol { tail: &tail, ..Pol::default() }, argv, None)
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.up.port)
    }
}

/// A plain-HTTP server on 127.0.0.1 that keeps each request head it gets.
fn plain_listener() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            s2.lock().unwrap().push(head);
            let body = "plain hello\n";
            let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (port, seen)
}

/// An absolute-form request on an intercepted connection to the secret's host whose
/// `Host` header names another host (domain fronting: on a shared front end the Host
/// header picks the site) must get 421 like an origin-form one, and the value must not
/// go out under the other name.
fn host_header_cannot_front_another_site(user: User) {
    let w = World::new(user);
    let api = w.url(API, "/front");
    let script = r#"
curl -sS -o /dev/null -w "control %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$1-ok"
curl -sS -o /dev/null -w "fronted %{http_code}\n" --http1.1 --request-target "$1" -H "Host: $2" -H "Authorization: Bearer $GH_TOKEN" "$1"
"#;
    let other = format!("{OTHER}:{}", w.up.port);
    let o = w.run(&["sh", "-c", script, "sh", &api, &other]);
    let seen = w.up.seen();
    let ok = seen.iter().find(|s| s.path == "/front-ok").unwrap_or_else(|| panic!("control reached: {o}\n{seen:?}"));
    assert_eq!(ok.header("authorization"), Some(format!("Bearer {}", w.value).as_str()), "control: {ok:?}");
    assert!(o.out().contains("control 200"), "{o}");
    let fronted: Vec<_> = seen.iter().filter(|s| s.host() == OTHER).collect();
    assert!(fronted.is_empty(), "the value went out under another Host: {fronted:?}\n{o}");
    assert!(o.out().contains("fronted 421"), "{o}");
}

/// A plain-HTTP request to the secret's host (any allowed port) must not get the value
/// in clear text: the proxy refuses it; the same request over TLS gets it.
fn secret_never_goes_out_in_clear_text(user: User) {
    let w = World::new(user);
    let plain = format!("http://{API}:{}/clear", w.plain_port);
    let script = r#"
curl -sS -o /dev/null -w "plain-control %{http_code}\n" "$1-control"
curl -sS -o /dev/null -w "plain-secret %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$1"
curl -sS -o /dev/null -w "tls-secret %{http_code}\n" -H "Authorization: Bearer $GH_TOKEN" "$2"
"#;
    let o = w.run(&["sh", "-c", script, "sh", &plain, &w.url(API, "/tls")]);
    let out = o.out();
    assert!(out.contains("plain-control 200") && out.contains("tls-secret 200"), "controls: {o}");
    let plain_seen = w.plain_seen.lock().unwrap().clone();
    assert!(plain_seen.iter().any(|h| h.contains("/clear-control")), "control reached the listener: {plain_seen:?}");
    assert!(!plain_seen.iter().any(|h| h.contains(&w.value)), "the value went out in clear text: {plain_seen:?}");
    assert!(out.contains("plain-secret 403"), "{o}");
    let tls = w.up.seen();
    assert!(tls.iter().any(|s| s.path == "/tls" && s.header("authorization").is_some_and(|a| a.contains(&w.value))));
}

both_users!(host_header_cannot_front_another_site, secret_never_goes_out_in_clear_text);
