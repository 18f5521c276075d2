//! `paddock run -- /bin/true` on the embedded default policy (its `${WORKSPACE}/**` deny
//! globs make the whole workspace relevant) in an empty workspace, one of 100,000 files
//! and one of 1,000,000 files (in directories of 1,000, made of hard links so setting up
//! is quick), interleaved so the noise of a shared machine falls on all alike. The view
//! cache lives in a fresh `$STATE`; warm-up runs fill it, as a user's earlier runs would.
//!
//! Run: `cargo bench -p paddock-cli --bench view` (`PADDOCK_BENCH_N` rounds, default 30;
//! `PADDOCK_BENCH_BIG=0` skips the 1,000,000-file workspace).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time(paddock: &str, state: &Path, ws: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new(paddock)
        .args(["run", "--workspace"])
        .arg(ws)
        .args(["--", "/bin/true"])
        .env("PADDOCK_STATE_DIR", state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let d = t.elapsed();
    assert!(status.success(), "paddock run failed: {status}");
    d
}

/// `n` files in directories of 1,000, as hard links of one file per directory.
fn fill(ws: &Path, n: usize) {
    for d in 0..n.div_ceil(1000) {
        let dir = ws.join(format!("d{d}"));
        std::fs::create_dir(&dir).expect("mkdir");
        let first = dir.join("f0");
        std::fs::write(&first, b"x").expect("file");
        for i in 1..1000.min(n - d * 1000) {
            std::fs::hard_link(&first, dir.join(format!("f{i}"))).expect("link");
        }
    }
}

fn median(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (p(0.5), p(0.1), p(0.9))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe the harness
    }
    let n: usize = std::env::var("PADDOCK_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let big = std::env::var("PADDOCK_BENCH_BIG").map(|v| v != "0").unwrap_or(true);
    let paddock = env!("CARGO_BIN_EXE_paddock");
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let mut sizes = vec![0usize, 100_000];
    if big {
        sizes.push(1_000_000);
    }
    let mut cases = Vec::new();
    for &size in &sizes {
        let ws = tmp.path().join(format!("ws-{size}"));
        std::fs::create_dir(&ws).expect("workspace");
        let t = Instant::now();
        fill(&ws, size);
        eprintln!("workspace of {size} files made in {:.1} s", t.elapsed().as_secs_f64());
        cases.push((size, ws, Vec::with_capacity(n)));
    }
    // Warm-up: the first start walks everything and fills the cache; a listing is kept
    // once its directory is 2 s older than the read.
    std::thread::sleep(Duration::from_secs(3));
    for (_, ws, _) in &cases {
        for _ in 0..3 {
            time(paddock, &state, ws);
        }
    }
    for _ in 0..n {
        for (_, ws, v) in &mut cases {
            v.push(time(paddock, &state, ws));
        }
    }
    println!("{n} rounds, interleaved; ratio = median / median of the empty workspace");
    let mut base = None;
    for (size, _, v) in cases {
        let (m, p10, p90) = median(v);
        let b = *base.get_or_insert(m);
        println!(
            "paddock run -- /bin/true, {size:>9} files   median {m:>8.2} ms   p10 {p10:>8.2} ms   p90 {p90:>8.2} ms   {:>5.2}x",
            m / b
        );
    }
}
