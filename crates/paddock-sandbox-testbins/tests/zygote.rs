//! A zygote's calls: each confined as a one-shot sandbox would be, each with its own pid
//! namespace, /proc, /tmp, /dev/shm and proxy port, while several run at once. Run as
//! root and as uid 65534, with the zygote forked and re-executed.

mod common;

use std::time::Duration;

use common::{Scratch, User};
use paddock_sandbox::{NetworkMode, StdioMode};

fn capture(s: &Scratch, script: &str) -> paddock_sandbox::SandboxSpec {
    let mut spec = s.sh(script);
    spec.stdio = StdioMode::Capture { stdin: None };
    spec
}

fn text(v: &serde_json::Value) -> String {
    let bytes: Vec<u8> = v.as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect();
    String::from_utf8(bytes).unwrap()
}

fn layer<'a>(o: &'a serde_json::Value, name: &str) -> (&'a str, &'a str) {
    let l = o["report"]["layers"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap();
    (l["state"].as_str().unwrap(), l["detail"].as_str().unwrap())
}

both_users!(zygote_calls_have_their_own_pid_namespace_proc_and_tmp, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 3;
    // Each call leaves a file in /tmp and /dev/shm and waits, so the three overlap.
    let spec = capture(
        &s,
        "id=$(cat /proc/sys/kernel/random/uuid); touch /tmp/zmark-$id /dev/shm/zmark-$id; sleep 0.3; \
         cat /proc/1/comm; echo pid=$$; ls /proc | grep -c '^[0-9]'; ls /tmp | grep -c zmark; \
         ls /dev/shm | grep -c zmark; hostname; echo in-ws > out-$id; ls | grep -c out-",
    );
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let o = r.ok();
    let out = text(&o["stdout"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "paddock-reaper", "{r:#?}");
    assert_eq!(lines[1], "pid=2", "{r:#?}");
    let nprocs: u32 = lines[2].parse().unwrap();
    assert!(nprocs <= 5, "other calls' or the host's processes are visible: {r:#?}");
    assert_eq!(lines[3], "1", "another call's /tmp is visible: {r:#?}");
    assert_eq!(lines[4], "1", "another call's /dev/shm is visible: {r:#?}");
    assert_eq!(lines[5], "paddock", "{r:#?}");
    // The write path is shared: the calls that ran before or beside this one wrote there.
    assert!(lines[6].parse::<u32>().unwrap() >= 1, "{r:#?}");
    for l in [
        "user_ns",
        "mount_ns",
        "pid_ns",
        "net_ns",
        "ipc_ns",
        "mounts",
        "landlock",
        "caps",
        "no_new_privs",
        "seccomp",
        "fds",
    ] {
        assert_eq!(layer(o, l).0, "enforced", "{l}: {r:#?}");
    }
    assert!(layer(o, "mounts").1.contains("per call: fresh /proc"), "{r:#?}");
    // Strict, in a network namespace shared with the other calls: TCP rules and the abstract
    // socket scope are required, the signal scope is not (the call's own pid namespace).
    assert!(
        layer(o, "landlock").1.contains(
            "fully enforced; required: filesystem rights (ABI 1, Linux 5.13), TCP bind and connect rules (ABI 4, Linux 6.7), abstract unix socket scope (ABI 6, Linux 6.12)"
        ),
        "{r:#?}"
    );
});

both_users!(zygote_calls_keep_the_deny_masks_and_write_rules, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 2;
    let mut spec = capture(
        &s,
        &format!("cat {}/secret.txt; echo rc=$?; echo x > /etc/zygote-probe; echo rc=$?", s.outside.display()),
    );
    spec.read_paths.push(s.outside.clone());
    spec.deny_paths = vec![s.outside.join("secret.txt")];
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let out = text(&r.ok()["stdout"]);
    assert!(!out.contains("OUTSIDE-SECRET"), "{r:#?}");
    assert!(!out.contains("rc=0"), "{r:#?}");
});

both_users!(zygote_calls_each_have_their_own_proxy_port, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 3; // the other calls listen on 18181 and 18182
    let mut spec = capture(&s, &format!("{p} connect 18180; {p} connect 18181", p = s.probe_bin()));
    spec.network = NetworkMode::Proxy { port: 18180 };
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let out = text(&r.ok()["stdout"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "connect=OK proxied", "{r:#?}");
    // Landlock: another call's listener in the shared namespace is out of reach.
    assert!(lines[1].starts_with("connect=ERR") && lines[1].contains("Some(13)"), "{r:#?}");
});

both_users!(zygote_call_timeout_kills_its_tree, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 2;
    let mut spec = capture(&s, "sleep 1000 & sleep 1000");
    spec.limits.timeout = Some(Duration::from_millis(300));
    let t = std::time::Instant::now();
    let r = s.run(&spec);
    assert!(t.elapsed() < Duration::from_secs(10), "{r:#?}");
    assert_eq!(r.ok()["status"], "TimedOut", "{r:#?}");
});

both_users!(zygote_calls_get_a_sized_tmp_and_dev_shm, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 1;
    assert_tmpfs_of_32_mib(&s);
});

/// Fills /tmp and /dev/shm in turn in a call with 64 MiB of max_memory: 100 MiB stop at
/// the tmpfs size, half of it.
fn assert_tmpfs_of_32_mib(s: &Scratch) {
    let mut spec = capture(
        s,
        "for d in /tmp /dev/shm; do dd if=/dev/zero of=$d/big bs=1M count=100 2>/dev/null; \
         echo \"$d $? $(stat -c %s $d/big)\"; rm $d/big; done",
    );
    spec.limits.max_memory = Some(64 << 20);
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let o = r.ok();
    let out = text(&o["stdout"]);
    let want = format!("/tmp 1 {}\n/dev/shm 1 {}\n", 32 << 20, 32 << 20);
    assert_eq!(out, want, "{r:#?}");
    assert!(layer(o, "mounts").1.contains("tmpfs of 32 MiB (half of max_memory) each"), "{r:#?}");
}

both_users!(zygote_calls_resize_the_tmpfs_made_ahead_for_the_template, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 2;
    s.zygote_template_default_limits = true;
    // The spare call helpers mount /tmp and /dev/shm at the template's size (1 GiB) before
    // the calls come; each call's own max_memory makes them 32 MiB.
    assert_tmpfs_of_32_mib(&s);
});

both_users!(zygote_calls_run_after_the_spare_call_helper_is_killed, |user, name| {
    let mut s = Scratch::new(name, user);
    // The spare is gone before the call: the zygote starts the call's helper itself.
    s.zygote_calls = 1;
    s.kill_spare = true;
    let r = s.run(&capture(&s, "cat /proc/1/comm; echo pid=$$; ls /proc | grep -c '^[0-9]'"));
    assert_eq!(r.code, 0, "{r:#?}");
    let o = r.ok();
    let out = text(&o["stdout"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["paddock-reaper", "pid=2"], "{r:#?}");
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "{r:#?}");
    assert_eq!(layer(o, "pid_ns").0, "enforced", "{r:#?}");
    assert_eq!(layer(o, "mounts").0, "enforced", "{r:#?}");
});

// A zygote's spare empties the capability bounding set before its call comes, while it
// keeps its own capabilities for the call's mounts; the call holds none at all, as a
// one-shot sandbox's does (`confinement.rs`), and the report says so.
both_users!(zygote_calls_have_no_capabilities, |user, name| {
    let mut s = Scratch::new(name, user);
    s.zygote_calls = 2;
    let r = s.run(&capture(&s, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status"));
    assert_eq!(r.code, 0, "{r:#?}");
    let o = r.ok();
    let out = text(&o["stdout"]);
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = out.lines().find(|l| l.starts_with(cap)).unwrap_or_else(|| panic!("{cap}: {out}"));
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    let (state, detail) = layer(o, "caps");
    assert_eq!(
        (state, detail),
        ("enforced", "no capabilities: bounding, ambient, inheritable, effective and permitted sets empty")
    );
});
