//! Signals sent to the caller (the harness, standing in for `paddock run`) reach the
//! sandboxed command; if the caller is killed outright, the whole tree dies with it.

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, User};

/// Starts `script` in the sandbox, waits until it wrote `started`, and returns the harness.
fn start(s: &Scratch, script: &str) -> std::process::Child {
    let mut spec = s.sh(script);
    spec.limits.timeout = Some(Duration::from_secs(60));
    let child = s.start_with(&spec, "");
    let t = Instant::now();
    while !s.ws.join("started").exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn marker(s: &Scratch, user: User) -> String {
    // One name per test and variant (comm keeps 15 bytes): tests run side by side, and
    // one may still be ending its processes while another counts its own.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let variant = s.variant();
    let marker = format!("pdks{}{variant}{n}", std::process::id() % 10000);
    assert!(marker.len() <= 15, "{marker}: longer than comm keeps");
    common::copy_executable(std::path::Path::new("/bin/sleep"), &s.ws.join(&marker));
    if user == User::Nobody {
        common::chown(&s.ws.join(&marker));
    }
    marker
}

fn survivors(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.trim() == marker)
        .count()
}

fn kill(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

both_users!(sigterm_to_the_caller_ends_the_command, |user, name| {
    let s = Scratch::new(name, user);
    let m = marker(&s, user);
    // A shell with a child of its own: the whole foreground group gets the signal.
    let child = start(&s, &format!("touch started; ./{m} 30; echo after-sleep"));
    let t = Instant::now();
    kill(&child, libc::SIGTERM);
    let r = s.finish(child);
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert_eq!(r.code, 143, "{r:#?}");
    assert_eq!(r.ok()["status"]["Signaled"], 15, "{r:#?}");
    assert!(!r.stdout.contains("after-sleep"), "{r:#?}");
    let t = Instant::now();
    while survivors(&m) > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the command's child outlived the run");
        std::thread::sleep(Duration::from_millis(20));
    }
});

both_users!(sigint_and_sighup_are_forwarded_too, |user, name| {
    let s = Scratch::new(name, user);
    let m = marker(&s, user);
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGHUP, 129)] {
        let _ = std::fs::remove_file(s.ws.join("started"));
        let child = start(&s, &format!("touch started; exec ./{m} 30"));
        kill(&child, sig);
        let r = s.finish(child);
        assert_eq!(r.code, code, "signal {sig}: {r:#?}");
    }
});

both_users!(a_command_that_handles_the_signal_decides, |user, name| {
    let s = Scratch::new(name, user);
    let child = start(&s, "trap 'echo caught; exit 3' TERM; touch started; while :; do sleep 0.05; done");
    kill(&child, libc::SIGTERM);
    let r = s.finish(child);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.stdout.contains("caught"), "{r:#?}");
});

/// Kills the caller outright once the command and a process of its that left the group
/// (`setsid`) run: both must end.
fn assert_sigkill_of_the_caller_kills_the_tree(s: &Scratch, user: User) {
    let m = marker(s, user);
    let child = start(s, &format!("( setsid ./{m} 300 & ); touch started; exec ./{m} 301"));
    while survivors(&m) < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(&child, libc::SIGKILL);
    let _ = s.finish(child);
    let t = Instant::now();
    while survivors(&m) > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the tree outlived the caller");
        std::thread::sleep(Duration::from_millis(20));
    }
}

both_users!(sigkill_of_the_caller_kills_the_tree, |user, name| {
    assert_sigkill_of_the_caller_kills_the_tree(&Scratch::new(name, user), user);
});

both_users!(sigkill_of_the_caller_kills_a_zygote_calls_tree, |user, name| {
    // A zygote's spare is the call's pid 1 and its own helper: the caller's end of the
    // call's socket closing (the caller killed outright) must end it, and the tree with it.
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 1;
    assert_sigkill_of_the_caller_kills_the_tree(&s, user);
});

/// The sandbox's pid 1 among the harness's descendants (`paddock-reaper`): the harness's
/// child when it was cloned ahead with no helper, the helper's child otherwise.
fn sandbox_pid1(harness: &std::process::Child) -> libc::pid_t {
    let children = |pid: libc::pid_t| -> Vec<libc::pid_t> {
        let mut out = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(list.split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()));
        }
        out
    };
    let comm = |pid: libc::pid_t| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let mut todo = vec![harness.id() as libc::pid_t];
    while let Some(pid) = todo.pop() {
        for c in children(pid) {
            if comm(c).trim_end() == "paddock-reaper" {
                return c;
            }
            todo.push(c);
        }
    }
    panic!("no paddock-reaper under the harness");
}

// The sandbox's pid 1 killed outright while the command runs (the OOM killer, another
// root process): the run ends as killed by SIGKILL (128 + 9), whichever process started
// it (a helper that reports the reaper's end, or the caller that reaps a pid 1 it cloned
// ahead itself), never as an unknown end.
both_users!(a_killed_sandbox_pid1_ends_the_run_as_killed, |user, name| {
    let s = Scratch::new(name, user);
    let child = start(&s, "touch started; sleep 30");
    let pid1 = sandbox_pid1(&child);
    // SAFETY: kill(2) of a process of this test's own tree, found just above.
    assert_eq!(unsafe { libc::kill(pid1, libc::SIGKILL) }, 0);
    let r = s.finish(child);
    assert_eq!(r.code, 137, "{r:#?}");
    assert_eq!(r.ok()["status"]["Signaled"], 9, "{r:#?}");
});
