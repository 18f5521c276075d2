//! paddock's own memory during a `paddock run`: the resident set of every paddock process
//! (the caller, the sandbox's pid 1, the sandbox helper when there is one) summed while `sleep 2` runs, under the
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

// `both_users!` has no `#[ignore]`: the tests are spelled out below.
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

    #[test]
    fn a_waiting_run_hands_back_its_start_up_code() {
        super::a_waiting_run_hands_back_its_start_up_code(super::User::Root)
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

    #[test]
    fn a_waiting_run_hands_back_its_start_up_code() {
        super::a_waiting_run_hands_back_its_start_up_code(super::User::Nobody)
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

/// Once a run's command has started and only runs, every paddock process of the run (the
/// caller and the reaper, and the helper where one was forked, each after its first 100 ms
/// of waiting) has handed back the code it ran to get there: what stays resident of the
/// binary's code is what the waiting runs, well under an eighth of it (the caller had most
/// of it resident before, the helper and the reaper about a sixth).
///
/// The binary runs from a tmpfs of single pages ([`SmallPages`]): a page the waiting
/// process touches again maps back in with its neighbours, and from a file system that
/// caches large folios (ext4 since Linux 6.16) more of them can, so that what is resident
/// after a release would depend on how the file came into the page cache.
fn a_waiting_run_hands_back_its_start_up_code(u: User) {
    let f = Fixture::new(u);
    let small = SmallPages::copy(&f);
    let mut argv = default_argv(&f, &f.ws, &["sleep", "30"]);
    argv[0] = small.bin.clone().into();
    let mut cmd = f.command(&argv);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
    let start = Instant::now();
    let mut last = Vec::new();
    let handed_back = loop {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("({u:?}) the run ended ({s}) before its code was handed back: resident code (KiB, of the mapping's KiB): {last:?}");
        }
        if start.elapsed() > HANG {
            break false;
        }
        if let Some(procs) = sample(child.id()) {
            last = procs.iter().map(|m| (m.comm.clone(), code_pages(m.pid))).collect::<Vec<_>>();
            let small = |c: &Option<(u64, u64)>| c.is_some_and(|(resident, size)| resident * 8 < size);
            // The caller and the reaper at least (a run started with no helper has two).
            if last.len() >= 2 && last.iter().all(|(_, c)| small(c)) {
                break true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(handed_back, "({u:?}) resident code of the binary (KiB, of the mapping's KiB) stayed: {last:?}");
}

/// A copy of the fixture's binary on a tmpfs of its own mounted with `huge=never`: its page
/// cache holds single pages only. Unmounted when dropped.
struct SmallPages {
    mount: PathBuf,
    bin: PathBuf,
}

impl SmallPages {
    fn copy(f: &Fixture) -> SmallPages {
        let mount = f.root.join("small-pages");
        std::fs::create_dir(&mount).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755,huge=never,size=512m", "paddock-footprint"])
            .arg(&mount)
            .status()
            .unwrap_or_else(|e| panic!("mount: {e}"));
        assert!(status.success(), "mount a tmpfs on {}: {status}", mount.display());
        let small = SmallPages { bin: mount.join("paddock"), mount };
        copy_executable(&f.bin, &small.bin);
        small
    }
}

impl Drop for SmallPages {
    fn drop(&mut self) {
        // Lazily: a process of a failed run may still hold the binary.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// The KiB of `pid`'s mappings of its own binary's code (`r-xp`) that are resident, and
/// their size.
fn code_pages(pid: u32) -> Option<(u64, u64)> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let smaps = read_proc(pid, "smaps")?;
    let (mut ours, mut resident, mut size) = (false, 0, 0);
    for line in smaps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().is_some_and(|a| a.contains('-') && !a.ends_with(':')) {
            ours = f.get(1) == Some(&"r-xp") && f.get(5).map(Path::new) == Some(exe.as_path());
        } else if ours {
            match (f.first(), f.get(1).and_then(|n| n.parse::<u64>().ok())) {
                (Some(&"Rss:"), Some(n)) => resident += n,
                (Some(&"Size:"), Some(n)) => size += n,
                _ => {}
            }
        }
    }
    (size > 0).then_some((resident, size))
}

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
            copy_executable(Path::new(&b), &copy);
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
    // The peak of the summed RSS while the run starts (the first `SETTLED` after the
    // command shows up: the caller hands back its start-up code after 100 ms) and after.
    let (mut starting, mut settled): (Option<Vec<Mem>>, Option<Vec<Mem>>) = (None, None);
    let mut seen: Option<Instant> = None;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < HANG, "{argv:?} ({u:?}) did not end within {HANG:?}");
        if let Some(procs) = sample(child.id()) {
            let seen = *seen.get_or_insert_with(Instant::now);
            let peak = if seen.elapsed() < SETTLED { &mut starting } else { &mut settled };
            let sum = |v: &[Mem]| v.iter().map(|m| m.rss).sum::<u64>();
            if peak.as_deref().is_none_or(|p| sum(&procs) > sum(p)) {
                *peak = Some(procs);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{argv:?} ({u:?}) failed: {status}\n{stderr}");
    let which = if policy.is_some() { "default policy + one host (proxy running)" } else { "default policy" };
    for (when, peak) in [("while it starts (the first 0.5 s)", starting), ("once started (after 0.5 s)", settled)] {
        let peak = peak.unwrap_or_else(|| panic!("({u:?}) the command never showed up as `sleep` {when}"));
        assert!(peak.len() >= 2, "({u:?}) expected the caller and the sandbox's processes, saw {peak:?}");
        println!(
            "paddock run -- sleep 2 ({u:?}, {which}, {}), {when}: paddock's processes at the peak of their summed RSS",
            bin.display()
        );
        print_peak(&peak);
    }
}

/// How long after the command shows up the run counts as started.
const SETTLED: Duration = Duration::from_millis(500);

/// One table of [`run_memory`]: each process, then the sums.
fn print_peak(peak: &[Mem]) {
    println!(
        "  {:>7}  {:<16} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "pid", "process", "VmRSS", "anon", "file", "Pss", "threads"
    );
    for m in peak {
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
