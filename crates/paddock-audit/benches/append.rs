//! Append throughput: records/s for one writer and for four (threads and
//! processes), batched (`append`) and durable (`append_durable`), plus the
//! speed of `verify`. Run with `cargo bench -p paddock-audit`.
//!
//! A plain `harness = false` binary: it reports records/s directly. Set
//! `PADDOCK_BENCH_DIR` to measure on a particular filesystem (default: the
//! system temporary directory).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use paddock_audit::{verify, AuditLog, Call, Decision, Event, Target};
use serde_json::json;

const BATCHED: usize = 200_000;
const DURABLE: usize = 5_000;

fn event(i: usize) -> Event {
    Call::new(
        format!("call-{i}"),
        "session-0123456789abcdef",
        Target::command(["cargo", "test", "--workspace", "--", "--nocapture"]),
        Decision::Allow,
    )
    .with_cwd("/home/user/src/project")
    .with_rule("commands.allow[3]")
    .with_reason("allowed by commands.allow[3] \"cargo test **\"")
    .with_policy_hash("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    .with_enforcement(
        json!({"namespaces": "enforced", "landlock": "enforced", "seccomp": "enforced", "cgroup": "unavailable"}),
    )
    .start()
}

fn write(path: &Path, n: usize, durable: bool, offset: usize) {
    let log = AuditLog::open(path).unwrap();
    for i in 0..n {
        let ev = event(offset + i);
        if durable {
            log.append_durable(&ev).unwrap();
        } else {
            log.append(&ev).unwrap();
        }
    }
}

fn run_threads(path: &Path, threads: usize, n: usize, durable: bool) -> Duration {
    let log = Arc::new(AuditLog::open(path).unwrap());
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..n {
                    let ev = event(t * n + i);
                    if durable {
                        log.append_durable(&ev).unwrap();
                    } else {
                        log.append(&ev).unwrap();
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    log.sync().unwrap();
    start.elapsed()
}

fn run_processes(path: &Path, procs: usize, n: usize, durable: bool) -> Duration {
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|p| {
            Command::new(&exe)
                .args([
                    "--child",
                    path.to_str().unwrap(),
                    &n.to_string(),
                    if durable { "durable" } else { "batched" },
                    &(p * n).to_string(),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    start.elapsed()
}

fn report(name: &str, records: usize, took: Duration, path: &Path) {
    let rate = records as f64 / took.as_secs_f64();
    let v = verify(path).unwrap();
    assert!(v.is_intact(), "{v}");
    assert_eq!(v.records, records as u64);
    println!("{name:<34} {records:>8} records in {:>8.3} s = {rate:>10.0} records/s", took.as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let n: usize = args[3].parse().unwrap();
        let offset: usize = args[5].parse().unwrap();
        write(Path::new(&args[2]), n, args[4] == "durable", offset);
        return;
    }

    let base: PathBuf = std::env::var_os("PADDOCK_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    println!(
        "paddock-audit append benchmark in {} ({} cores)",
        base.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let line_len = paddock_audit::Record {
        seq: 1,
        ts: paddock_audit::record::now_ts(),
        prev: paddock_audit::GENESIS_PREV.into(),
        event: event(0),
    }
    .to_line()
    .unwrap()
    .len();
    println!("record size: {line_len} bytes\n");

    let mut k = 0;
    let mut fresh = || {
        k += 1;
        dir.path().join(format!("audit-{k}.jsonl"))
    };

    // One writer.
    let p = fresh();
    let t = Instant::now();
    write(&p, BATCHED, false, 0);
    report("1 writer, batched (append)", BATCHED, t.elapsed(), &p);

    let p = fresh();
    let t = Instant::now();
    write(&p, DURABLE, true, 0);
    report("1 writer, durable (append_durable)", DURABLE, t.elapsed(), &p);

    // Four threads sharing one AuditLog.
    let p = fresh();
    let took = run_threads(&p, 4, BATCHED / 4, false);
    report("4 threads, batched", BATCHED, took, &p);

    let p = fresh();
    let took = run_threads(&p, 4, DURABLE / 4, true);
    report("4 threads, durable", DURABLE, took, &p);

    // Four processes, each with its own AuditLog.
    let p = fresh();
    let took = run_processes(&p, 4, BATCHED / 4, false);
    report("4 processes, batched", BATCHED, took, &p);

    let p = fresh();
    let took = run_processes(&p, 4, DURABLE / 4, true);
    report("4 processes, durable", DURABLE, took, &p);

    // Verification speed on the first log.
    let p = dir.path().join("audit-1.jsonl");
    let t = Instant::now();
    let v = verify(&p).unwrap();
    let took = t.elapsed();
    println!(
        "\nverify: {} records ({:.1} MiB) in {:.3} s = {:.0} records/s",
        v.records,
        v.bytes as f64 / (1024.0 * 1024.0),
        took.as_secs_f64(),
        v.records as f64 / took.as_secs_f64()
    );
}
