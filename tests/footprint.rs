//! paddock's own memory during a `paddock run`: the resident set of every paddock process
//! (the caller, the sandbox helper, the reaper) summed while `sleep 2` runs, under the
//! default policy and under one that allows a host (so the egress proxy runs), as root and
//! as uid 65534. A measurement, not a test of a size (a size assertion would flake with
//! the kernel, the libc and the build): each run prints its figures and asserts only that
//! the run succeeded and that its processes were seen.
//!
//! `cargo test -p paddock-cli --test footprint -- --ignored --nocapture --test-threads=1`
//! measures the debug binary; with `PADDOCK_FOOTPRINT_BIN=$PWD/target/release/paddock` it
//! measures that build instead (the figure README quotes).
//!
//! Figures per process, from `/proc`: `VmRSS` (what the issue's table sums: pages of the
//! binary and of libc shared by the three processes count once in each), `RssAnon`
//! (heap, stacks, relocated data: the part each process really holds; after the fork it is
//! shared copy-on-write until written), `RssFile`, and `Pss` (each shared page divided
//! among the processes that map it: the sum is what the run costs the machine).

// `both_users!` has no `#[ignore]`: the two measurements are spelled out below.
#[allow(unused_macros)]
#[macro_use]
mod common;

use common::*;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod as_root {
    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn run_memory() {
        super::run_memory(super::User::Root, None)
    }

    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn run_memory_with_proxy() {
        super::run_memory(super::User::Root, Some(super::WITH_PROXY))
    }
}

mod as_nobody {
    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn run_memory() {
        super::run_memory(super::User::Nobody, None)
    }

    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn run_memory_with_proxy() {
        super::run_memory(super::User::Nobody, Some(super::WITH_PROXY))
    }
}

/// The default policy plus one host: the run then starts its egress proxy (nothing dials
/// it; the name is pinned to loopback all the same).
const WITH_PROXY: &str = r#"version = 1
extends = ["default"]

[network]
allow = ["footprint.test:443"]

[network.hosts]
"footprint.test" = "127.0.0.1"
"#;

/// One process's figures, in KiB.
#[derive(Clone, Debug, Default)]
struct Mem {
    pid: u32,
    comm: String,
    rss: u64,
    anon: u64,
    file: u64,
    pss: u64,
    threads: u64,
}

/// A field of `/proc/PID/status` or `smaps_rollup` (`Name:   123 kB`), in KiB.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
}

fn read_proc(pid: u32, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()
}

/// Every process's parent, from `/proc/*/stat`.
fn parents() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some(stat) = read_proc(pid, "stat") else { continue };
        // After the command name (which may hold spaces): state, then the parent's pid.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            map.insert(pid, ppid);
        }
    }
    map
}

/// `root` and its descendants.
fn tree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut found = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (&pid, ppid) in &parents {
            if found.contains(ppid) && !found.contains(&pid) {
                found.push(pid);
                grew = true;
            }
        }
    }
    found
}

fn measure(pid: u32) -> Option<Mem> {
    let status = read_proc(pid, "status")?;
    let rollup = read_proc(pid, "smaps_rollup").unwrap_or_default();
    Some(Mem {
        pid,
        comm: read_proc(pid, "comm")?.trim().to_string(),
        rss: field(&status, "VmRSS")?,
        anon: field(&status, "RssAnon").unwrap_or(0),
        file: field(&status, "RssFile").unwrap_or(0),
        pss: field(&rollup, "Pss").unwrap_or(0),
        threads: field(&status, "Threads").unwrap_or(0),
    })
}

/// The paddock processes of the run started as `root`, once its command runs (a
/// descendant named `sleep`); `None` before that.
fn sample(root: u32) -> Option<Vec<Mem>> {
    let procs: Vec<Mem> = tree(root).into_iter().filter_map(measure).collect();
    procs
        .iter()
        .any(|m| m.comm == "sleep")
        .then(|| procs.into_iter().filter(|m| m.comm.starts_with("paddock")).collect())
}

fn run_memory(u: User, policy: Option<&str>) {
    let f = Fixture::new(u);
    let bin: PathBuf = match std::env::var_os("PADDOCK_FOOTPRINT_BIN") {
        Some(b) => {
            let copy = f.root.join("paddock-measured");
            std::fs::copy(&b, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", Path::new(&b).display()));
            chmod(&copy, 0o755);
            copy
        }
        None => f.bin.clone(),
    };
    let mut argv: Vec<OsString> = vec![bin.clone().into(), "run".into()];
    if let Some(text) = policy {
        let path = f.root.join("policy.toml");
        write(&path, text, 0o644);
        argv.extend(["--policy".into(), path.into()]);
    }
    argv.extend(["--workspace".into(), f.ws.clone().into(), "--".into()]);
    argv.extend(["sleep", "2"].map(OsString::from));
    let mut cmd = f.command(&argv);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
    let start = Instant::now();
    let mut peak: Option<Vec<Mem>> = None;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < HANG, "{argv:?} ({u:?}) did not end within {HANG:?}");
        if let Some(procs) = sample(child.id()) {
            let sum = |v: &[Mem]| v.iter().map(|m| m.rss).sum::<u64>();
            if peak.as_deref().is_none_or(|p| sum(&procs) > sum(p)) {
                peak = Some(procs);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{argv:?} ({u:?}) failed: {status}\n{stderr}");
    let peak = peak.unwrap_or_else(|| panic!("({u:?}) the command never showed up as `sleep` in the run's tree"));
    assert!(peak.len() >= 2, "({u:?}) expected the caller and the sandbox's processes, saw {peak:?}");

    let which = if policy.is_some() { "default policy + one host (proxy running)" } else { "default policy" };
    println!(
        "paddock run -- sleep 2 ({u:?}, {which}, {}): paddock's processes at the peak of their summed RSS",
        bin.display()
    );
    println!(
        "  {:>7}  {:<16} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "pid", "process", "VmRSS", "anon", "file", "Pss", "threads"
    );
    for m in &peak {
        println!(
            "  {:>7}  {:<16} {:>8} {:>8} {:>8} {:>8} {:>7}",
            m.pid, m.comm, m.rss, m.anon, m.file, m.pss, m.threads
        );
    }
    let total = |get: fn(&Mem) -> u64| peak.iter().map(get).sum::<u64>();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "  sum: VmRSS {:.1} MiB (anon {:.1} MiB, file {:.1} MiB), Pss {:.1} MiB",
        mib(total(|m| m.rss)),
        mib(total(|m| m.anon)),
        mib(total(|m| m.file)),
        mib(total(|m| m.pss))
    );
}
