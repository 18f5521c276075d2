//! `POST /v1/calls` of `{"tool":"command","argv":["/bin/true"]}` through `paddock serve`,
//! with 1 and 8 concurrent keep-alive HTTP/1.1 clients over TCP loopback, against a plain
//! spawn of `/bin/true` in the same run; and the server's idle RSS (VmRSS).
//!
//! Targets (issue 6): p50 overhead ≤ 1 ms above a plain spawn, ≥ 300 calls/s, idle RSS
//! ≤ 20 MiB. The figures are printed as measured, with the verdict for each target.
//!
//! Run: `cargo bench -p paddock-cli --bench serve` (`PADDOCK_BENCH_N` calls per series,
//! default 400). The state dir (audit log, token) is a temp dir under `$TMPDIR`, or under
//! `PADDOCK_BENCH_STATE_DIR`: every call's `call.start` is fsync'd there, so the file system
//! under it counts. `PADDOCK_BENCH_MATCHES=N` puts N files that the default policy's
//! `**/*.pem` deny glob matches in the workspace (each a mask in the session's view).
//! `PADDOCK_BENCH_STATE_IN_WORKSPACE=1` puts the state dir inside the workspace
//! (`ws/.paddock-state`, as with a workspace that is the home): every call changes it.
//!
//! `PADDOCK_BENCH_BASELINE=PATH` (another build's `paddock`) then starts that build's
//! server too, beside this one's (each with its own workspace and state directory), and
//! compares them: one client alternating its calls between the two (both orders, round by
//! round), with the median of the paired differences; then 8 clients against each in turn,
//! alternated over 4 rounds.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BODY: &str = r#"{"tool":"command","argv":["/bin/true"]}"#;

/// One keep-alive connection.
struct Client {
    s: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Client {
    fn new(addr: &str, token: &str) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let request = format!("POST /v1/calls HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}", BODY.len()).into_bytes();
        Client { s: BufReader::new(s), request }
    }

    /// One call; its latency. Panics unless the answer is 200 with exit code 0.
    fn call(&mut self) -> Duration {
        self.call_expect("\"exit_code\":0")
    }

    /// One request; its latency. Panics unless the answer is 200 and holds `want`.
    fn call_expect(&mut self, want: &str) -> Duration {
        let t = Instant::now();
        self.s.get_mut().write_all(&self.request).expect("send");
        let mut line = String::new();
        self.s.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0usize;
        loop {
            line.clear();
            self.s.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; len];
        self.s.read_exact(&mut body).expect("body");
        let d = t.elapsed();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(want), "{body}");
        d
    }
}

fn spawn_true() -> Duration {
    let t = Instant::now();
    let st = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let d = t.elapsed();
    assert!(st.success());
    d
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(name: &str, mut v: Vec<Duration>, wall: Duration) -> Stats {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let s = Stats { p50: p(0.5), p99: p(0.99) };
    println!(
        "{name:<46} {:>8.1} calls/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} calls)",
        v.len() as f64 / wall.as_secs_f64(),
        ms(s.p50),
        ms(s.p99),
        v.len()
    );
    s
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The state dir of a server in `dir`: `dir/state`, or with
/// `PADDOCK_BENCH_STATE_IN_WORKSPACE=1` `dir/ws/.paddock-state`, made now (before the
/// workspace's wait to age in [`start_server`]).
fn state_dir(dir: &std::path::Path) -> std::path::PathBuf {
    if std::env::var_os("PADDOCK_BENCH_STATE_IN_WORKSPACE").is_some_and(|v| v == "1") {
        let state = dir.join("ws").join(".paddock-state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        state
    } else {
        dir.join("state")
    }
}

fn start_server(bin: &std::path::Path, dir: &std::path::Path, state: &std::path::Path) -> (Child, String) {
    std::fs::create_dir_all(dir.join("ws")).unwrap();
    // PADDOCK_BENCH_MATCHES=N: N files the default policy's `**/*.pem` deny glob matches,
    // each a mask in the session's view.
    let matches: usize = std::env::var("PADDOCK_BENCH_MATCHES").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for i in 0..matches {
        let d = dir.join("ws").join(format!("m{}", i / 20));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("k{i}.pem")), b"secret").unwrap();
    }
    // A session starts a new zygote for a call while a directory of its view changed less
    // than 2 s before its zygote started (a change within the file system's timestamp
    // granularity could go unseen): with a workspace made just now, every call of the first
    // two seconds would start one (compared in whole seconds: up to three). This measures
    // the steady state: a workspace older than that, as a real one is.
    std::thread::sleep(Duration::from_millis(3_100));
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--workspace"])
        .arg(dir.join("ws"))
        .env("PADDOCK_STATE_DIR", state)
        .env_remove("PADDOCK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn paddock serve");
    let (tx, rx) = mpsc::channel();
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("paddock: listening on ") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("paddock serve reports its address");
    (child, addr)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe the harness
    }
    let n: usize = std::env::var("PADDOCK_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let dir = tempfile::tempdir().expect("temp dir");
    // The audit log's file system matters (each call.start is fsync'd):
    // PADDOCK_BENCH_STATE_DIR puts the state dir elsewhere (e.g. on a tmpfs).
    let state = match std::env::var_os("PADDOCK_BENCH_STATE_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("state dir").keep(),
        None => state_dir(dir.path()),
    };
    let (mut server, addr) = start_server(std::path::Path::new(env!("CARGO_BIN_EXE_paddock")), dir.path(), &state);
    let pid = server.id();
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = vm_rss_kib(pid);
    let token = std::fs::read_to_string(state.join("token")).unwrap().trim().to_string();

    // Warm-up (page cache, the helper binary, the runtime's threads).
    let mut c = Client::new(&addr, &token);
    for _ in 0..20 {
        c.call();
        spawn_true();
    }

    // 1 client, interleaved with plain spawns so that the machine's noise falls on both.
    let mut plain = Vec::with_capacity(n);
    let mut one = Vec::with_capacity(n);
    let (mut plain_wall, mut one_wall) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let d = spawn_true();
        plain_wall += d;
        plain.push(d);
        let d = c.call();
        one_wall += d;
        one.push(d);
    }

    // 8 clients, each on its own keep-alive connection.
    let clients = 8;
    let per = n.div_ceil(clients);
    let t = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, token) = (addr.clone(), token.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(&addr, &token);
                (0..per).map(|_| c.call()).collect::<Vec<_>>()
            })
        })
        .collect();
    let eight: Vec<Duration> = threads.into_iter().flat_map(|h| h.join().expect("client")).collect();
    let eight_wall = t.elapsed();

    // Plain spawns from 8 threads at once, for the same comparison.
    let t = Instant::now();
    let threads: Vec<_> =
        (0..clients).map(|_| std::thread::spawn(move || (0..per).map(|_| spawn_true()).collect::<Vec<_>>())).collect();
    let plain8: Vec<Duration> = threads.into_iter().flat_map(|h| h.join().expect("spawner")).collect();
    let plain8_wall = t.elapsed();

    std::thread::sleep(Duration::from_millis(300));
    let after_rss = vm_rss_kib(pid);

    // The API alone, without a sandbox or an audit record: POST /v1/check of the same call.
    let mut check = Client::new(&addr, &token);
    check.request = String::from_utf8(check.request).unwrap().replacen("/v1/calls", "/v1/check", 1).into_bytes();
    let t = Instant::now();
    let api_only: Vec<Duration> = (0..n).map(|_| check.call_expect("\"decision\":\"allow\"")).collect();
    let api_wall = t.elapsed();

    // Idle again, past the runtime's blocking-thread keep-alive (10 s).
    std::thread::sleep(Duration::from_secs(12));
    let later_rss = vm_rss_kib(pid);

    println!("paddock serve: POST /v1/calls {BODY}, keep-alive HTTP/1.1 over TCP loopback");
    println!(
        "machine: {} cores; state dir {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        state.display()
    );
    let p = stats("plain spawn of /bin/true, 1 thread", plain, plain_wall);
    let s1 = stats("paddock serve, 1 client", one, one_wall);
    stats("plain spawn of /bin/true, 8 threads", plain8, plain8_wall);
    let s8 = stats("paddock serve, 8 clients", eight.clone(), eight_wall);
    stats("POST /v1/check (the API alone, no sandbox)", api_only, api_wall);
    let overhead = s1.p50.saturating_sub(p.p50);
    let rate1 = n as f64 / one_wall.as_secs_f64();
    let rate8 = eight.len() as f64 / eight_wall.as_secs_f64();
    println!(
        "p50 overhead above a plain spawn (1 client): {:.3} ms; p99 with 8 clients {:.3} ms",
        ms(overhead),
        ms(s8.p99)
    );
    println!(
        "server VmRSS: idle after start {:.1} MiB, right after the run {:.1} MiB, idle 12 s later {:.1} MiB",
        idle_rss as f64 / 1024.0,
        after_rss as f64 / 1024.0,
        later_rss as f64 / 1024.0
    );
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("target p50 overhead <= 1 ms: {} ({:.3} ms)", verdict(overhead <= Duration::from_millis(1)), ms(overhead));
    println!(
        "target >= 300 calls/s: {} (1 client {rate1:.0}/s, 8 clients {rate8:.0}/s)",
        verdict(rate8.max(rate1) >= 300.0)
    );
    println!(
        "target idle RSS <= 20 MiB: {} ({:.1} MiB)",
        verdict(idle_rss.max(later_rss) <= 20 * 1024),
        idle_rss.max(later_rss) as f64 / 1024.0
    );

    if let Some(bin) = std::env::var_os("PADDOCK_BENCH_BASELINE") {
        against_baseline(std::path::Path::new(&bin), n, (&addr, &token));
    }
    stop(&mut server);
}

/// Stops a server: `SIGTERM`, then `SIGKILL` after 15 s.
fn stop(server: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    let t = Instant::now();
    while server.try_wait().ok().flatten().is_none() {
        if t.elapsed() > Duration::from_secs(15) {
            let _ = server.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.wait();
}

/// `n` calls of this build's server (at `this`: address, token) and of the baseline
/// build's, alternated call by call in both orders; then 8 clients against each in turn.
fn against_baseline(bin: &std::path::Path, n: usize, this: (&str, &str)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state_dir(dir.path());
    let (mut server, addr) = start_server(bin, dir.path(), &state);
    let token = std::fs::read_to_string(state.join("token")).unwrap().trim().to_string();
    let (mut a, mut b) = (Client::new(this.0, this.1), Client::new(&addr, &token));
    for _ in 0..20 {
        a.call();
        b.call();
    }
    let (mut ours, mut theirs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for round in 0..n {
        common::alternated(round, &mut || ours.push(a.call()), &mut || theirs.push(b.call()));
    }
    let line = common::paired(&ours, &theirs);
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        ms(v[(v.len() - 1) / 2])
    };
    println!("against the baseline build {} ({n} calls each, alternated)", bin.display());
    println!("  1 client, {line}   (p50 {:.3} / {:.3} ms)", median(&mut ours), median(&mut theirs));
    let eight = |addr: &str, token: &str| {
        let per = n.div_ceil(8);
        let t = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (addr, token) = (addr.to_string(), token.to_string());
                std::thread::spawn(move || {
                    let mut c = Client::new(&addr, &token);
                    (0..per).for_each(|_| {
                        c.call();
                    })
                })
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().expect("client"));
        (per * 8) as f64 / t.elapsed().as_secs_f64()
    };
    let (mut r_ours, mut r_theirs) = (Vec::new(), Vec::new());
    for round in 0..4 {
        common::alternated(round, &mut || r_ours.push(eight(this.0, this.1)), &mut || {
            r_theirs.push(eight(&addr, &token))
        });
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    println!(
        "  8 clients, calls/s in 4 alternated rounds: this build {} / baseline {}",
        show(&r_ours),
        show(&r_theirs)
    );
    stop(&mut server);
}
