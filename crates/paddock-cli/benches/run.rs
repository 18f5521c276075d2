//! `paddock run -- /bin/true` against a plain spawn of `/bin/true` and, where bubblewrap
//! is installed, `bwrap --unshare-all --ro-bind / / true`, interleaved in one run so that
//! the noise of a shared machine falls on all three alike.
//!
//! Run: `cargo bench -p paddock-cli --bench run` (set `PADDOCK_BENCH_N` for more rounds).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).status().expect("spawn");
    let d = t.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    d
}

fn stats(name: &str, mut v: Vec<Duration>, base: Option<Duration>) -> Duration {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    let median = p(0.5);
    let ratio =
        base.map(|b| format!("{:>6.2}x", median.as_secs_f64() / b.as_secs_f64())).unwrap_or_else(|| "     -".into());
    println!(
        "{name:<44} median {:>8.3} ms   p10 {:>8.3} ms   p90 {:>8.3} ms   {ratio}",
        ms(median),
        ms(p(0.1)),
        ms(p(0.9))
    );
    median
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe the harness
    }
    let n: usize = std::env::var("PADDOCK_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let paddock = env!("CARGO_BIN_EXE_paddock");
    let ws = tempfile::tempdir().expect("workspace");
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"].into_iter().find(|p| Path::new(p).exists());
    let mut plain = Vec::with_capacity(n);
    let mut confined = Vec::with_capacity(n);
    let mut bw = Vec::with_capacity(n);
    // warm-up
    for _ in 0..5 {
        time(Command::new(paddock).args(["run", "--workspace"]).arg(ws.path()).args(["--", "/bin/true"]));
    }
    for _ in 0..n {
        plain.push(time(&mut Command::new("/bin/true")));
        confined
            .push(time(Command::new(paddock).args(["run", "--workspace"]).arg(ws.path()).args(["--", "/bin/true"])));
        if let Some(b) = bwrap {
            bw.push(time(Command::new(b).args(["--unshare-all", "--ro-bind", "/", "/", "true"])));
        }
    }
    println!("{n} rounds, interleaved; ratio = median / median of the reference");
    let base = stats("plain spawn of /bin/true", plain, None);
    if bw.is_empty() {
        println!("bubblewrap not installed: no comparison");
        stats("paddock run -- /bin/true (all layers)", confined, Some(base));
    } else {
        let b = stats("bwrap --unshare-all --ro-bind / / true", bw, Some(base));
        let p = stats("paddock run -- /bin/true (all layers)", confined, Some(base));
        println!("paddock / bubblewrap = {:.2}", p.as_secs_f64() / b.as_secs_f64());
    }
    audit_cost(n, ws.path());
}

/// What auditing adds to one `run`: a `call.start` appended durably (fsync'd before the
/// child runs) and a `call.end` appended batched, as `paddock run` writes them.
fn audit_cost(n: usize, dir: &Path) {
    use paddock_audit::{AuditLog, Call, CallOutcome, Decision, Target};
    let log = AuditLog::open(dir.join("bench-audit.jsonl")).expect("audit log");
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let call = Call::new(format!("c-{i}"), "bench", Target::command(["/bin/true"]), Decision::Allow)
            .with_cwd(dir)
            .with_rule("default")
            .with_policy_hash("0".repeat(64));
        let t = Instant::now();
        log.append_durable(&call.start()).expect("append");
        log.append(&call.end(CallOutcome::exited(0).with_duration_ms(1))).expect("append");
        pairs.push(t.elapsed());
    }
    stats("audit: call.start (fsync) + call.end (batched)", pairs, None);
}
