//! Process and memory limits of the whole tree: a pids/memory cgroup as root (the kernel
//! exempts root from RLIMIT_NPROC, and RLIMIT_AS is per process), rlimits as uid 65534.

mod common;

use common::{Scratch, User};

fn layer<'a>(r: &'a common::Run, name: &str) -> (&'a str, &'a str) {
    let l = r.ok()["report"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no {name} layer: {r:#?}"));
    (l["state"].as_str().unwrap(), l["detail"].as_str().unwrap())
}

both_users!(a_fork_loop_stops_at_max_processes, |user, name| {
    assert_a_fork_loop_stops_at_32(&Scratch::new(name, user), user);
});

// A session's calls: their cgroups are made by the caller (one call ahead where it is
// multi-threaded, as in the re-exec variants) and entered by each call's reaper itself;
// three calls at once, each forking as much as it can.
both_users!(a_fork_loop_in_a_zygote_call_stops_at_max_processes, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 3;
    assert_a_fork_loop_stops_at_32(&s, user);
});

/// Runs `testprobe forks 200` under `max_processes = 32` and checks that the forks stopped
/// with EAGAIN: as root by the cgroup, at 32; as uid 65534 by RLIMIT_NPROC.
fn assert_a_fork_loop_stops_at_32(s: &Scratch, user: User) {
    let mut spec = s.sh("");
    spec.program = s.ws.join("testprobe");
    spec.argv = vec!["testprobe".into(), "forks".into(), "200".into()];
    spec.limits.max_processes = Some(32);
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let line = r.stdout.lines().find(|l| l.starts_with("forked=")).unwrap_or_else(|| panic!("{r:#?}"));
    let forked: usize = line["forked=".len()..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(forked < 100, "{forked} processes forked under max_processes = 32: {r:#?}");
    assert!(line.ends_with("errno=11"), "fork did not fail with EAGAIN: {line}");
    let (state, detail) = layer(&r, "cgroup");
    if user == User::Root {
        // Root is exempt from RLIMIT_NPROC: only the cgroup can have stopped it.
        assert_eq!(state, "enforced", "{detail}");
        assert!(detail.contains("pids.max=32"), "{detail}");
        assert!(forked <= 32, "{forked}");
        // The cgroup was there, and is gone once the run is torn down (`Scratch::finish`
        // checks that none of them is left).
        assert_ne!(r.outcome["left"]["cgroups"], serde_json::json!([]), "{r:#?}");
    } else {
        assert!(layer(&r, "rlimits").1.contains("RLIMIT_NPROC=32 (per uid)"), "{r:#?}");
    }
}

const LIMIT: u64 = 256 << 20;

both_users!(memory_beyond_max_memory_fails, |user, name| {
    let s = Scratch::new(name, user);
    let each = LIMIT * 6 / 10;
    let p = s.probe_bin();
    // Two processes of 60% each, both holding their memory at the same time; then one
    // process asking for 120% at once.
    let mut spec = s.sh(&format!(
        "{p} alloc {each} 2000 & {p} alloc {each} 2000; wait; echo single; {p} alloc {} 0",
        LIMIT * 12 / 10
    ));
    spec.limits.max_memory = Some(LIMIT);
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let (tree, single) = r.stdout.split_once("single\n").unwrap_or_else(|| panic!("{r:#?}"));
    // One process beyond the limit: RLIMIT_AS refuses it, as root and as nobody.
    assert_eq!(single.trim(), "alloc=ERR", "{r:#?}");
    let held = tree.matches("alloc=HELD").count();
    let (state, detail) = layer(&r, "cgroup");
    if user == User::Root {
        // The cgroup bounds the tree: one of the two is killed before it holds its share.
        assert_eq!(state, "enforced", "{detail}");
        assert!(
            detail.contains(&format!("memory.limit_in_bytes={LIMIT}")) || detail.contains("memory.max"),
            "{detail}"
        );
        assert!(held <= 1, "the tree went past max_memory: {r:#?}");
    } else {
        // Unprivileged here: no cgroup, RLIMIT_AS is per process, so a tree of two fits.
        assert_eq!(state, "unavailable", "{detail}");
        assert!(detail.contains("RLIMIT_AS (per process)"), "{detail}");
        assert_eq!(held, 2, "{r:#?}");
    }
});
