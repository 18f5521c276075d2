//! End-to-end: paddock's proxy behind an upstream HTTP proxy (`HTTPS_PROXY` in the caller's
//! environment, or `[network] upstream_proxy`), and the hint for private mirrors.
//!
//! Loopback only: the upstream proxy is a small thread-based proxy written here, on
//! 127.0.0.1:0, that records what it was asked and maps every name to a loopback origin
//! (so no name is ever looked up in DNS); the origins listen on 127.0.0.1 / 127.0.0.2.

#[macro_use]
mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

both_users!(
    allowed_names_go_through_the_env_upstream_and_denied_never_reach_it,
    none_ignores_the_env_and_no_proxy_exempts,
    an_explicit_url_overrides_the_env,
    upstream_failures_are_502_with_the_reason_on_record,
    credentials_reach_the_upstream_only,
    private_mirror_refusal_names_the_exact_entry,
);

// ---------------------------------------------------------------------------------------
// Loopback servers
// ---------------------------------------------------------------------------------------

/// An origin on `ip`:0 that answers every request with `hello from <port>`.
struct Origin {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Origin {
    fn start(ip: &str) -> Origin {
        let l = TcpListener::bind((ip, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                h.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || answer_hello(s, port));
            }
        });
        Origin { port, hits }
    }
}

/// Reads a request head; returns its lines (without line ends), or `None` at EOF.
fn read_head(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            return Some(lines);
        }
        lines.push(line);
    }
}

fn answer_hello(s: TcpStream, port: u16) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    while read_head(&mut r).is_some() {
        let body = format!("hello from {port}");
        if w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).is_err() {
            return;
        }
    }
}

/// How the test upstream answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Tunnels CONNECT to 127.0.0.1:PORT (whatever the name), answers plain requests itself.
    Open,
    /// Like `Open`, but only with `Proxy-Authorization: Basic <this>`; 407 otherwise.
    Auth(&'static str),
    /// Answers every request with this status.
    Status(u16),
}

/// One request the upstream saw: its request line and its Proxy-Authorization value.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    auth: Option<String>,
}

struct UpProxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl UpProxy {
    fn start(mode: Mode) -> UpProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let seen = Arc::clone(&s2);
                std::thread::spawn(move || proxy_one(s, mode, &seen));
            }
        });
        UpProxy { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.line.clone()).collect()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn proxy_one(s: TcpStream, mode: Mode, seen: &Mutex<Vec<Seen>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let Some(head) = read_head(&mut r) else { return };
    let line = head[0].clone();
    let auth = head.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case("proxy-authorization").then(|| v.trim().to_string())
    });
    seen.lock().unwrap().push(Seen { line: line.clone(), auth: auth.clone() });
    let reply = |w: &mut TcpStream, status: &str| {
        let _ = w.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
    };
    match mode {
        Mode::Status(code) => return reply(&mut w, &format!("{code} Test Says No")),
        Mode::Auth(want) if auth.as_deref() != Some(&format!("Basic {want}")) => {
            return reply(&mut w, "407 Proxy Authentication Required")
        }
        _ => {}
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        // Any name is this machine's loopback origin on the asked port: no DNS.
        let port: u16 = target.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let Ok(origin) = TcpStream::connect(("127.0.0.1", port)) else {
            return reply(&mut w, "502 Bad Gateway");
        };
        if w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
            return;
        }
        let (mut o_r, mut o_w) = (origin.try_clone().unwrap(), origin);
        let mut c_w = w.try_clone().unwrap();
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut r, &mut o_w);
            let _ = o_w.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut o_r, &mut c_w);
        let _ = c_w.shutdown(Shutdown::Write);
        let _ = up.join();
    } else {
        let body = format!("upstream saw {line}");
        let _ = w.write_all(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        );
    }
}

/// A loopback port with nothing listening, and the socket that holds it: bound, never
/// listened on, so a connection to it is refused and no other socket takes the port while
/// the socket is kept.
fn closed_port() -> (u16, tokio::net::TcpSocket) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (s.local_addr().unwrap().port(), s)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn need_curl() {
    assert!(Path::new("/usr/bin/curl").exists(), "these tests need /usr/bin/curl (.ci/run installs it)");
}

/// `curl ARGS`, printing `CODE BODY` (the body written to the workspace).
fn curl(args: &str) -> String {
    format!("curl -sS --max-time 20 -o body.out -w '%{{http_code}}' {args}; echo \" $(cat body.out 2>/dev/null)\"")
}

/// The `[network]` table (and more) appended to the fixture's base policy.
fn net(allow: &[String], extra: &str) -> String {
    let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    format!("[network]\nallow = [{}]\n{extra}\n", allow.join(", "))
}

/// `paddock -v run` of `sh -c script` with the caller's environment plus `env`.
fn run_sh(f: &Fixture, tail: &str, script: &str, env: &[(&str, &str)]) -> Out {
    let pol = Pol { tail, ..Pol::default() };
    let mut argv = f.paddock_argv(&pol);
    argv.insert(1, "-v".into());
    argv.extend(["sh", "-c", script].map(std::ffi::OsString::from));
    f.launch(&argv, env, None)
}

fn records(f: &Fixture, host: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(f.root.join("state/audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "net.connect" && r["host"] == host)
        .collect()
}

fn audit_text(f: &Fixture) -> String {
    std::fs::read_to_string(f.root.join("state/audit.jsonl")).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

fn allowed_names_go_through_the_env_upstream_and_denied_never_reach_it(u: User) {
    need_curl();
    let f = Fixture::new(u);
    let origin = Origin::start("127.0.0.1");
    let up = UpProxy::start(Mode::Open);
    let o = origin.port;
    let tail = net(&[format!("registry.test:{o}"), format!("10.1.2.3:{o}")], "");
    let env = [("HTTPS_PROXY", up.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // CONNECT (-p), plain HTTP (absolute URI) and SOCKS5 through paddock, then the upstream.
    let script = format!(
        "{}; {}; {}; {}",
        curl(&format!("-p http://registry.test:{o}/tunnel")),
        curl(&format!("http://registry.test:{o}/plain")),
        curl(&format!("--socks5-hostname \"${{HTTP_PROXY#http://}}\" http://registry.test:{o}/socks")),
        curl(&format!("-p http://other.test:{o}/denied")),
    );
    // An IP literal's address is known: it is vetted here before it could go upstream
    // (nothing is dialled: refused before any connection).
    let script = format!("{script}; {}", curl(&format!("http://10.1.2.3:{o}/literal")));
    let out = run_sh(&f, &tail, &script, &env);
    let stdout = out.out();
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[4].starts_with("403 "), "{out}");
    assert!(lines[4].contains("add \"10.1.2.3/32\" to [network] allow_private"), "{out}");
    assert_eq!(lines[0], format!("200 hello from {o}"), "CONNECT through the upstream: {out}");
    assert_eq!(lines[1], format!("200 upstream saw GET http://registry.test:{o}/plain HTTP/1.1"), "{out}");
    assert_eq!(lines[2], format!("200 hello from {o}"), "SOCKS5 through the upstream's CONNECT: {out}");
    assert!(lines[3].starts_with("403") || lines[3].starts_with("000"), "denied by name: {out}");
    let seen = up.lines();
    assert_eq!(
        seen.iter().filter(|l| **l == format!("CONNECT registry.test:{o} HTTP/1.1")).count(),
        2,
        "the upstream saw the name, not an address: {seen:?}"
    );
    assert!(seen.iter().all(|l| !l.contains("other.test")), "a denied name never reaches the upstream: {seen:?}");
    assert!(seen.iter().all(|l| !l.contains("10.1.2.3")), "a refused literal never reaches the upstream: {seen:?}");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 2, "the two tunnels reached the origin through the upstream");

    let recs = records(&f, "registry.test");
    assert_eq!(recs.len(), 3, "{recs:?}");
    for r in &recs {
        assert_eq!(r["verdict"], "allow", "{r}");
        assert_eq!(r["address"], format!("127.0.0.1:{}", up.port), "the address dialled is the upstream's: {r}");
        assert!(r["reason"].as_str().unwrap().contains(&format!("via upstream proxy {}", up.url())), "{r}");
    }
    let denied = records(&f, "other.test");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["verdict"], "deny");
    assert!(denied[0].get("address").is_none(), "nothing was dialled for it: {}", denied[0]);
}

fn none_ignores_the_env_and_no_proxy_exempts(u: User) {
    need_curl();
    let f = Fixture::new(u);
    let origin = Origin::start("127.0.0.1");
    let up = UpProxy::start(Mode::Open);
    let o = origin.port;
    // `localhost` resolves from /etc/hosts, without DNS; it is a name like any other, so
    // with the env's upstream and no exemption it goes there.
    let allow = [format!("localhost:{o}")];
    let private = "allow_private = [\"127.0.0.0/8\", \"::1/128\"]\n";
    let url = up.url();
    let script = curl(&format!("-p http://localhost:{o}/x"));

    let out = run_sh(&f, &net(&allow, private), &script, &[("HTTPS_PROXY", &url)]);
    assert_eq!(out.out().trim(), format!("200 hello from {o}"), "{out}");
    assert_eq!(up.lines(), vec![format!("CONNECT localhost:{o} HTTP/1.1")], "control: the env's upstream is used");

    let out =
        run_sh(&f, &net(&allow, &format!("{private}upstream_proxy = \"none\"")), &script, &[("HTTPS_PROXY", &url)]);
    assert_eq!(out.out().trim(), format!("200 hello from {o}"), "{out}");
    assert_eq!(up.lines().len(), 1, "`none` ignores the caller's HTTPS_PROXY: {:?}", up.lines());

    for no_proxy in ["localhost", ".localhost", "*", "example.com,localhost:{o}"] {
        let no_proxy = no_proxy.replace("{o}", &o.to_string());
        let out = run_sh(&f, &net(&allow, private), &script, &[("HTTPS_PROXY", &url), ("no_proxy", &no_proxy)]);
        assert_eq!(out.out().trim(), format!("200 hello from {o}"), "NO_PROXY={no_proxy}: {out}");
        assert_eq!(up.lines().len(), 1, "NO_PROXY={no_proxy} goes direct: {:?}", up.lines());
    }
    let out = run_sh(&f, &net(&allow, private), &script, &[("HTTPS_PROXY", &url), ("NO_PROXY", "other.test")]);
    assert_eq!(out.out().trim(), format!("200 hello from {o}"), "{out}");
    assert_eq!(up.lines().len(), 2, "an exemption of another name changes nothing: {:?}", up.lines());
}

fn an_explicit_url_overrides_the_env(u: User) {
    need_curl();
    let f = Fixture::new(u);
    let origin = Origin::start("127.0.0.1");
    let (env_up, policy_up) = (UpProxy::start(Mode::Open), UpProxy::start(Mode::Open));
    let o = origin.port;
    let tail = net(&[format!("registry.test:{o}")], &format!("upstream_proxy = \"{}\"", policy_up.url()));
    let out = run_sh(
        &f,
        &tail,
        &curl(&format!("-p http://registry.test:{o}/x")),
        &[("HTTPS_PROXY", &env_up.url()), ("NO_PROXY", "registry.test")],
    );
    assert_eq!(out.out().trim(), format!("200 hello from {o}"), "{out}");
    assert_eq!(policy_up.lines(), vec![format!("CONNECT registry.test:{o} HTTP/1.1")]);
    assert!(env_up.lines().is_empty(), "the env's proxy (and its NO_PROXY) are ignored: {:?}", env_up.lines());

    // `check --connect` answers as the proxy would, and dials nothing.
    let pol = f.policy(&Pol { tail: &tail, ..Pol::default() });
    let argv: Vec<std::ffi::OsString> = vec![
        f.bin.clone().into(),
        "check".into(),
        "--connect".into(),
        format!("registry.test:{o}").into(),
        "--policy".into(),
        pol.into(),
    ];
    let check = f.launch(&argv, &[("HTTPS_PROXY", &env_up.url())], None);
    assert_eq!(check.code(), 0, "{check}");
    assert!(
        check.out().contains(&format!("through the upstream proxy {}, which resolves the name", policy_up.url())),
        "{check}"
    );
    assert_eq!(policy_up.lines().len(), 1, "check dials nothing: {:?}", policy_up.lines());
}

fn upstream_failures_are_502_with_the_reason_on_record(u: User) {
    need_curl();
    let f = Fixture::new(u);
    let origin = Origin::start("127.0.0.1");
    let o = origin.port;
    let tail = net(&[format!("registry.test:{o}")], "");
    let wants_auth = UpProxy::start(Mode::Auth("dTpw"));
    let broken = UpProxy::start(Mode::Status(503));
    let (refused_port, _held) = closed_port();
    let refused = format!("http://127.0.0.1:{refused_port}");
    // (case, upstream, why, what plain HTTP gets: an upstream's 5xx to a plain request is
    // an answer like any other and is relayed; to CONNECT it is a failure, 502)
    let cases: [(&str, String, &str, &str); 3] = [
        ("407", wants_auth.url(), "407 Proxy Authentication Required", "502 paddock: GET registry.test:"),
        ("503", broken.url(), "503 Test Says No", "503"),
        ("refused", refused.clone(), "cannot connect", "502 paddock: GET registry.test:"),
    ];
    for (name, url, why, plain) in cases {
        let script = format!(
            "{}; {}",
            curl(&format!("-p http://registry.test:{o}/t")),
            curl(&format!("http://registry.test:{o}/p"))
        );
        let before = records(&f, "registry.test").len();
        let out = run_sh(&f, &tail, &script, &[("HTTPS_PROXY", &url)]);
        let stdout = out.out();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{name}: {out}");
        assert!(out.err().contains("CONNECT tunnel failed, response 502"), "{name}: the tunnel gets 502: {out}");
        assert!(
            out.err().contains(&format!("paddock: connect registry.test:{o} failed: upstream proxy"))
                && out.err().contains(why),
            "{name}: the person is told why: {out}"
        );
        assert!(lines[1].starts_with(plain), "{name}: plain HTTP gets {plain}: {out}");
        if plain.starts_with("502") {
            assert!(lines[1].contains(why), "{name}: the child is told why: {out}");
        }
        let recs = records(&f, "registry.test");
        assert_eq!(recs.len(), before + 2, "{name}: {recs:?}");
        let failed = if plain.starts_with("502") { &recs[before..] } else { &recs[before..before + 1] };
        for r in failed {
            let reason = r["reason"].as_str().unwrap();
            assert!(reason.contains(why) && reason.contains("upstream proxy"), "{name}: the record says why: {r}");
        }
    }
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "no failure fell back to a direct connection");
    assert!(wants_auth.seen().iter().all(|s| s.auth.is_none()), "no credentials were invented");
}

fn credentials_reach_the_upstream_only(u: User) {
    need_curl();
    let f = Fixture::new(u);
    let origin = Origin::start("127.0.0.1");
    let o = origin.port;
    let password = format!("pw-{}", unique());
    let basic = {
        // base64("alice:" + password), computed by the host's coreutils (not the code under test).
        let out = std::process::Command::new("sh")
            .args(["-c", "printf '%s' \"alice:$1\" | base64 -w0", "sh", &password])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let basic: &'static str = Box::leak(basic.into_boxed_str());
    let up = UpProxy::start(Mode::Auth(basic));
    let with_creds = format!("http://alice:{password}@127.0.0.1:{}", up.port);
    let script = format!(
        "{}; {}; env; cat /proc/self/environ | tr '\\0' '\\n'",
        curl(&format!("-p http://registry.test:{o}/t")),
        curl(&format!("http://registry.test:{o}/p"))
    );
    // From the policy, and from the caller's environment.
    for (tail, env) in [
        (net(&[format!("registry.test:{o}")], &format!("upstream_proxy = \"{with_creds}\"")), vec![]),
        (net(&[format!("registry.test:{o}")], ""), vec![("HTTPS_PROXY", with_creds.as_str())]),
    ] {
        let before = up.seen().len();
        let out = run_sh(&f, &tail, &script, &env);
        let stdout = out.out();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], format!("200 hello from {o}"), "{out}");
        assert_eq!(lines[1], format!("200 upstream saw GET http://registry.test:{o}/p HTTP/1.1"), "{out}");
        let seen = up.seen();
        assert_eq!(seen.len(), before + 2, "{seen:?}");
        for s in &seen[before..] {
            assert_eq!(s.auth.as_deref(), Some(format!("Basic {basic}").as_str()), "{s:?}");
        }
        for (what, text) in
            [("the child's view", out.out()), ("paddock's stderr", out.err()), ("the audit log", audit_text(&f))]
        {
            assert!(!text.contains(&password), "{what} holds the password:\n{text}");
            assert!(!text.contains(basic), "{what} holds the Basic credentials:\n{text}");
            assert!(!text.contains("alice:"), "{what} holds the user name of the upstream:\n{text}");
        }
        assert!(out.out().contains("HTTPS_PROXY=http://127.0.0.1:"), "control: the child's env was printed: {out}");
    }
}

fn private_mirror_refusal_names_the_exact_entry(u: User) {
    need_curl();
    let f = Fixture::new(u);
    let mirror = Origin::start("127.0.0.2");
    let m = mirror.port;
    let pins = "[network.hosts]\n\"mirror.test\" = \"127.0.0.2\"\n";
    let refused_tail = format!("{}{pins}", net(&[format!("mirror.test:{m}")], "allow_private = [\"127.0.0.1/32\"]"));
    // Even with an upstream in the env: a pinned name goes direct, checked here.
    let up = UpProxy::start(Mode::Open);
    let script = curl(&format!("http://mirror.test:{m}/simple/"));
    let out = run_sh(&f, &refused_tail, &script, &[("HTTPS_PROXY", &up.url())]);
    assert!(out.out().trim().starts_with("403"), "{out}");
    assert!(
        out.out().contains("add \"127.0.0.2/32\" to [network] allow_private"),
        "the child is told the entry: {out}"
    );
    assert!(out.err().contains("add \"127.0.0.2/32\" to [network] allow_private"), "so is the person: {out}");
    assert_eq!(mirror.hits.load(Ordering::SeqCst), 0);
    assert!(up.lines().is_empty(), "a pin bypasses the upstream: {:?}", up.lines());

    // `policy lint` says it before any install fails, located at the pin.
    let pol = f.policy(&Pol { tail: &refused_tail, ..Pol::default() });
    let lint = f.launch(&[f.bin.clone().into(), "policy".into(), "lint".into(), pol.clone().into()], &[], None);
    assert_eq!(lint.code(), 0, "{lint}");
    let pin_line =
        std::fs::read_to_string(&pol).unwrap().lines().position(|l| l.starts_with("\"mirror.test\"")).unwrap() + 1;
    assert!(
        lint.err().contains(&format!(
            "{}:{pin_line}:1: warning: `mirror.test` is allowed but pinned to 127.0.0.2",
            pol.display()
        )),
        "{lint}"
    );
    assert!(lint.err().contains("add \"127.0.0.2/32\" to [network] allow_private"), "{lint}");

    // The entry it names is the one that works (and silences the lint).
    let fixed_tail = refused_tail.replace("\"127.0.0.1/32\"", "\"127.0.0.1/32\", \"127.0.0.2/32\"");
    let out = run_sh(&f, &fixed_tail, &script, &[("HTTPS_PROXY", &up.url())]);
    assert_eq!(out.out().trim(), format!("200 hello from {m}"), "{out}");
    assert_eq!(mirror.hits.load(Ordering::SeqCst), 1);
    let pol = f.policy(&Pol { tail: &fixed_tail, ..Pol::default() });
    let lint = f.launch(&[f.bin.clone().into(), "policy".into(), "lint".into(), pol.into()], &[], None);
    assert_eq!(lint.code(), 0, "{lint}");
    assert!(!lint.err().contains("warning"), "{lint}");
    assert!(up.lines().is_empty(), "{:?}", up.lines());

    // Names that resolve to a private range: only with `--resolve` (lint is offline without
    // it). `localhost` resolves from /etc/hosts, no DNS query leaves the machine.
    let pol = f.policy(&Pol { tail: &net(&["localhost:8080".into()], ""), ..Pol::default() });
    let offline = f.launch(&[f.bin.clone().into(), "policy".into(), "lint".into(), pol.clone().into()], &[], None);
    assert_eq!(offline.code(), 0, "{offline}");
    assert!(!offline.err().contains("warning"), "no lookup without --resolve: {offline}");
    let resolved =
        f.launch(&[f.bin.clone().into(), "policy".into(), "lint".into(), "--resolve".into(), pol.into()], &[], None);
    assert_eq!(resolved.code(), 0, "{resolved}");
    assert!(
        resolved.err().contains("`localhost` is allowed but resolves (here, now) to 127.0.0.1")
            || resolved.err().contains("`localhost` is allowed but resolves (here, now) to ::1"),
        "{resolved}"
    );
    assert!(
        resolved.err().contains("/32\" to [network] allow_private")
            || resolved.err().contains("/128\" to [network] allow_private"),
        "{resolved}"
    );
}
