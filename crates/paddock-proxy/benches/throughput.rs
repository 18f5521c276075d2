//! Proxy overhead over loopback: bulk throughput through a CONNECT tunnel
//! against the same transfer direct, and the latency a tunnel adds to a new
//! connection.
//!
//! `cargo bench -p paddock-proxy` runs the full measurement after a warm-up: 7
//! rounds, each a direct and a tunnelled transfer of the same size (the order
//! swapped every round), printing the median of the per-round ratios and their
//! range and the CPU time per GiB (whole process, and the proxy's runtime threads
//! alone: a figure a busy machine disturbs less than wall time); then 1000 new
//! connections direct and 1000 tunnelled, alternately, printing the median of the
//! per-pair differences.
//! Built as a test (`cargo test --benches`) it runs a tiny smoke version. Overrides:
//! `PADDOCK_BENCH_MIB` (transfer size, 1024), `PADDOCK_BENCH_CONNS` (pairs of
//! new connections, 1000), `PADDOCK_BENCH_ROUNDS` (7), `PADDOCK_BENCH_BUF` (relay buffer),
//! `PADDOCK_BENCH_WORKERS` (the proxy runtime's worker threads; 1, as in `paddock run`);
//! `PADDOCK_BENCH_NO_SPLICE=1` measures the user-space copy instead of `splice(2)`;
//! `PADDOCK_BENCH_VERBOSE=1` prints each round.
//!
//! Only loopback is dialled: the policy pins `bench.test` to 127.0.0.1.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_proxy::{serve, HostDecision, HostPolicy, ProxyConfig};

struct BenchPolicy;

impl HostPolicy for BenchPolicy {
    fn decide(&self, _host: &str, _port: u16) -> HostDecision {
        HostDecision::allow("network.allow[0]", "bench")
    }
    fn pinned(&self, _host: &str) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        addr.is_loopback()
    }
}

const CHUNK: usize = 256 * 1024;

/// Upload sink: reads to EOF, answers the byte count (8 bytes), closes.
/// Download source: after the one-byte command `d` + 8-byte length, sends that many bytes.
/// Echo: anything else is echoed byte for byte until EOF.
fn start_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut cmd = [0u8; 1];
                if s.read_exact(&mut cmd).is_err() {
                    return;
                }
                match cmd[0] {
                    b'u' => {
                        let mut buf = vec![0u8; CHUNK];
                        let mut n = 0u64;
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => n += k as u64,
                            }
                        }
                        let _ = s.write_all(&n.to_le_bytes());
                    }
                    b'd' => {
                        let mut len = [0u8; 8];
                        if s.read_exact(&mut len).is_err() {
                            return;
                        }
                        let mut left = u64::from_le_bytes(len);
                        let buf = vec![7u8; CHUNK];
                        while left > 0 {
                            let k = left.min(CHUNK as u64) as usize;
                            if s.write_all(&buf[..k]).is_err() {
                                return;
                            }
                            left -= k as u64;
                        }
                    }
                    other => {
                        let _ = s.write_all(&[other]);
                        let mut buf = [0u8; 512];
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => {
                                    if s.write_all(&buf[..k]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Opens a stream to the upstream, directly or through a CONNECT tunnel.
fn open(upstream: SocketAddr, proxy: Option<SocketAddr>) -> TcpStream {
    match proxy {
        None => {
            let s = TcpStream::connect(upstream).unwrap();
            s.set_nodelay(true).unwrap();
            s
        }
        Some(p) => {
            let mut s = TcpStream::connect(p).unwrap();
            s.set_nodelay(true).unwrap();
            write!(
                s,
                "CONNECT bench.test:{} HTTP/1.1\r\nHost: bench.test:{}\r\n\r\n",
                upstream.port(),
                upstream.port()
            )
            .unwrap();
            let mut head = Vec::with_capacity(64);
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).unwrap();
                head.push(b[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
            s
        }
    }
}

fn upload(upstream: SocketAddr, proxy: Option<SocketAddr>, bytes: u64) -> Duration {
    let buf = vec![1u8; CHUNK];
    let t = Instant::now();
    let mut s = open(upstream, proxy);
    s.write_all(b"u").unwrap();
    let mut left = bytes;
    while left > 0 {
        let k = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..k]).unwrap();
        left -= k as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut n = [0u8; 8];
    s.read_exact(&mut n).unwrap();
    let el = t.elapsed();
    assert_eq!(u64::from_le_bytes(n), bytes);
    el
}

fn download(upstream: SocketAddr, proxy: Option<SocketAddr>, bytes: u64) -> Duration {
    let mut buf = vec![0u8; CHUNK];
    let t = Instant::now();
    let mut s = open(upstream, proxy);
    s.write_all(b"d").unwrap();
    s.write_all(&bytes.to_le_bytes()).unwrap();
    let mut got = 0u64;
    while got < bytes {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "early EOF at {got}");
        got += k as u64;
    }
    t.elapsed()
}

/// A new connection doing a one-byte round trip: how long it took.
fn connection(upstream: SocketAddr, proxy: Option<SocketAddr>) -> Duration {
    let t = Instant::now();
    let mut s = open(upstream, proxy);
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    t.elapsed()
}

/// CPU seconds (user + system) from a /proc stat line.
fn stat_cpu(stat: &str) -> f64 {
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    f.get(11).zip(f.get(12)).map(|(u, s)| (u + s) / 100.0).unwrap_or(0.0)
}

/// CPU seconds used by this process so far.
fn cpu_seconds() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU seconds used so far by the proxy's runtime threads (tokio-rt-worker).
fn proxy_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter(|s| s.contains("(tokio-rt-worker)"))
        .map(|s| stat_cpu(&s))
        .sum()
}

/// One timed run: wall time, CPU seconds of the whole process and of the proxy's threads.
struct Sample {
    wall: Duration,
    cpu: f64,
    proxy_cpu: f64,
}

fn sample(f: impl FnOnce() -> Duration) -> Sample {
    let (c, p) = (cpu_seconds(), proxy_cpu_seconds());
    let wall = f();
    Sample { wall, cpu: cpu_seconds() - c, proxy_cpu: proxy_cpu_seconds() - p }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// `rounds` pairs of (direct, tunnel) runs of `f`, interleaved, the order swapped every
/// round so that neither side always runs on a warmer (or busier) machine.
fn pairs(rounds: usize, mut f: impl FnMut(bool) -> Sample) -> Vec<(Sample, Sample)> {
    (0..rounds)
        .map(|r| {
            if r % 2 == 0 {
                let d = f(false);
                (d, f(true))
            } else {
                let t = f(true);
                (f(false), t)
            }
        })
        .collect()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let mib = env("PADDOCK_BENCH_MIB", if full { 1024 } else { 8 });
    let conns = env("PADDOCK_BENCH_CONNS", if full { 1000 } else { 20 }) as usize;
    let rounds = env("PADDOCK_BENCH_ROUNDS", if full { 7 } else { 1 }) as usize;
    // `paddock run` serves its proxy on a runtime of one worker thread.
    let workers = env("PADDOCK_BENCH_WORKERS", 1) as usize;
    let verbose = std::env::var_os("PADDOCK_BENCH_VERBOSE").is_some();
    let bytes = mib * 1024 * 1024;

    let upstream = start_upstream();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy = listener.local_addr().unwrap();
    let events = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = events.clone();
    rt.spawn(serve(
        listener,
        Arc::new(BenchPolicy),
        Arc::new(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }),
        ProxyConfig {
            buffer_size: env("PADDOCK_BENCH_BUF", ProxyConfig::default().buffer_size as u64) as usize,
            zero_copy: std::env::var_os("PADDOCK_BENCH_NO_SPLICE").is_none(),
            ..ProxyConfig::default()
        },
        std::future::pending(),
    ));
    let via = |tunnel: bool| tunnel.then_some(proxy);

    // Warm up both paths (connections, pages, the runtime's threads).
    upload(upstream, None, bytes / 16 + 1);
    upload(upstream, Some(proxy), bytes / 16 + 1);
    for _ in 0..conns / 4 + 1 {
        connection(upstream, None);
        connection(upstream, Some(proxy));
    }

    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "paddock-proxy bench: {mib} MiB transfers in {rounds} rounds of direct and tunnel interleaved, \
         {conns} pairs of new connections; proxy runtime: {workers} worker thread(s); medians, [min–max]"
    );
    for (name, f) in [("upload", upload as fn(SocketAddr, Option<SocketAddr>, u64) -> Duration), ("download", download)]
    {
        let runs = pairs(rounds, |tunnel| sample(|| f(upstream, via(tunnel), bytes)));
        if verbose {
            for (d, t) in &runs {
                println!(
                    "    direct {:.3}s ({:.2} CPU-s), tunnel {:.3}s ({:.2} CPU-s, proxy {:.2})",
                    d.wall.as_secs_f64(),
                    d.cpu,
                    t.wall.as_secs_f64(),
                    t.cpu,
                    t.proxy_cpu
                );
            }
        }
        let ratios: Vec<f64> = runs.iter().map(|(d, t)| 100.0 * d.wall.as_secs_f64() / t.wall.as_secs_f64()).collect();
        let (lo, hi) = range(&ratios);
        let rate = |s: &Sample| gib / s.wall.as_secs_f64();
        println!(
            "{name:>8}: ratio {:.0}% [{lo:.0}–{hi:.0}%]; direct {:.2} GiB/s, tunnel {:.2} GiB/s; CPU-s per GiB: direct {:.2}, tunnel {:.2} (proxy {:.2})",
            median(ratios.clone()),
            median(runs.iter().map(|(d, _)| rate(d)).collect()),
            median(runs.iter().map(|(_, t)| rate(t)).collect()),
            median(runs.iter().map(|(d, _)| d.cpu / gib).collect()),
            median(runs.iter().map(|(_, t)| t.cpu / gib).collect()),
            median(runs.iter().map(|(_, t)| t.proxy_cpu / gib).collect()),
        );
    }
    // Connections one at a time, direct and tunnelled alternately, so that both sides
    // see the same moments of the machine.
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let conn_pairs: Vec<(f64, f64)> =
        (0..conns).map(|_| (us(connection(upstream, None)), us(connection(upstream, Some(proxy))))).collect();
    let added: Vec<f64> = conn_pairs.iter().map(|(d, t)| t - d).collect();
    let mut sorted = added.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        " connect: added {:.0} us per new connection (median of {} pairs; p10 {:.0} us, p90 {:.0} us); direct {:.0} us, tunnel {:.0} us",
        median(added),
        sorted.len(),
        sorted[sorted.len() / 10],
        sorted[sorted.len() * 9 / 10],
        median(conn_pairs.iter().map(|(d, _)| *d).collect()),
        median(conn_pairs.iter().map(|(_, t)| *t).collect()),
    );
    std::thread::sleep(Duration::from_millis(100));
    println!("events reported: {}", events.load(std::sync::atomic::Ordering::Relaxed));
}
