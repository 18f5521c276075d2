//! Integration tests of the confinement, each run as root and as uid 65534.

mod common;

use std::time::Duration;

use common::{Scratch, User};
use paddock_sandbox::{NetworkMode, StdioMode};

// A helper forked ahead (`paddock_sandbox::prestart`, as `paddock run` does before it
// loads its policy) that is never given a spec exits once dropped, and the reaper it forked
// ahead with it: the harness (a subreaper, so an orphan would be its child) checks that it
// had one child, which had one, and then none.
#[test]
fn an_unused_helper_forked_ahead_exits() {
    for user in [User::Root, User::Nobody] {
        let o = common::harness_as(user, &["ahead-unused"]);
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && out == "gone\n", "{user:?}: {:?}\n{out}{err}", o.status);
    }
}

// A helper forked ahead that died before it got its spec: the spawn starts another one
// (forked as usual) and the run goes on.
both_users!(a_helper_forked_ahead_that_died_is_replaced, |user, name| {
    let mut s = Scratch::new(name, user);
    s.ahead = true;
    s.ahead_killed = true;
    s.threaded = false;
    let r = s.run(&s.sh("echo replaced; exit 3"));
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.stdout, "replaced\n", "{r:#?}");
    let session = r.ok()["report"]["layers"].as_array().unwrap().iter().find(|l| l["name"] == "session").unwrap();
    let launch = session["detail"].as_str().unwrap();
    assert!(launch.contains("forked from the single-threaded caller (no re-exec)"), "{launch}");
});

// Root with supplementary groups: a user namespace entered by a clone would keep them, so
// the start ahead forks a helper, which drops them before it enters one; the command sees
// none. Without them (every other test here, as root) the sandbox's pid 1 is cloned with no
// helper, and says so.
#[test]
fn root_with_supplementary_groups_starts_through_a_helper_that_drops_them() {
    for groups in [Some("100,4"), None] {
        let mut s = Scratch::new(&format!("root_groups_{}-ahead", groups.is_some()), User::Root);
        s.root_groups = groups;
        let r = s.run(&s.sh("grep '^Groups:' /proc/self/status"));
        assert_eq!(r.code, 0, "{groups:?}: {r:#?}");
        assert_eq!(r.stdout.trim_end(), "Groups:", "{groups:?}: {r:#?}");
        let layers = r.ok()["report"]["layers"].as_array().unwrap();
        let detail = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap()["detail"].as_str().unwrap();
        let (launch, user_ns) = (detail("session"), detail("user_ns"));
        if groups.is_some() {
            assert!(launch.contains("helper forked from the single-threaded caller before its spec"), "{launch}");
            assert!(user_ns.contains("supplementary groups dropped"), "{user_ns}");
        } else {
            assert!(launch.contains("the sandbox's pid 1 forked from the single-threaded caller"), "{launch}");
            assert!(user_ns.contains("no supplementary groups"), "{user_ns}");
        }
    }
}

both_users!(exit_code_and_output_pass_through, |user, name| {
    let s = Scratch::new(name, user);
    let r = s.run(&s.sh("echo hello; echo oops >&2; exit 7"));
    assert_eq!(r.code, 7, "{r:#?}");
    assert_eq!(r.stdout, "hello\n");
    assert_eq!(r.stderr, "oops\n");
    assert_eq!(r.ok()["status"]["Exited"], 7);
    assert_eq!(r.ok()["stdout_bytes"], 6);
    assert_eq!(r.ok()["stderr_bytes"], 5);
    // How the helper started, as the session layer says it.
    let session = r.ok()["report"]["layers"].as_array().unwrap().iter().find(|l| l["name"] == "session").unwrap();
    let launch = session["detail"].as_str().unwrap();
    let want = if s.ahead {
        "forked from the single-threaded caller before its spec was known"
    } else if s.threaded {
        "re-executed"
    } else {
        "forked from the single-threaded caller (no re-exec)"
    };
    assert!(launch.contains(want), "{launch}");
});

both_users!(signal_gives_128_plus_n, |user, name| {
    let s = Scratch::new(name, user);
    let r = s.run(&s.sh("kill -TERM $$; sleep 5"));
    assert_eq!(r.code, 143, "{r:#?}");
    assert_eq!(r.ok()["status"]["Signaled"], 15);
});

both_users!(reading_outside_read_paths_fails, |user, name| {
    let s = Scratch::new(name, user);
    // The host lets this user read it; the sandbox must not.
    let r =
        s.run(&s.sh(&format!("cat {0}/secret.txt; ls {0}; cat /root/.bashrc; ls /home; exit 0", s.outside.display())));
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!r.stdout.contains("OUTSIDE-SECRET"), "{r:#?}");
    assert!(r.stderr.contains("secret.txt"), "{r:#?}");
    assert!(std::fs::read_to_string(s.outside.join("secret.txt")).unwrap().contains("OUTSIDE-SECRET"));
});

both_users!(deny_paths_are_masked, |user, name| {
    let s = Scratch::new(name, user);
    std::fs::write(s.ws.join(".env"), "DENIED-FILE-SECRET\n").unwrap();
    std::fs::create_dir_all(s.ws.join(".ssh")).unwrap();
    std::fs::write(s.ws.join(".ssh/id_ed25519"), "DENIED-DIR-SECRET\n").unwrap();
    std::fs::write(s.ws.join("visible.txt"), "VISIBLE\n").unwrap();
    if user == User::Nobody {
        for p in [".env", ".ssh", ".ssh/id_ed25519", "visible.txt"] {
            common::chown(&s.ws.join(p));
        }
    }
    let mut spec = s.sh("cat .env; cat .ssh/id_ed25519; ls .ssh; cat visible.txt; rm -f .env; echo x > .env; exit 0");
    spec.deny_paths = vec![s.ws.join(".env"), s.ws.join(".ssh")];
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("VISIBLE"), "{r:#?}");
    assert!(!r.stdout.contains("DENIED"), "{r:#?}");
    assert!(r.stderr.contains(".env") && r.stderr.contains(".ssh"), "{r:#?}");
    // Nothing got through to the host either.
    assert_eq!(std::fs::read_to_string(s.ws.join(".env")).unwrap(), "DENIED-FILE-SECRET\n");
});

both_users!(writes_only_inside_write_paths, |user, name| {
    let s = Scratch::new(name, user);
    let script = format!(
        "echo inside > {ws}/made-inside && echo wrote-inside; \
         echo outside > {out}/made-outside || echo outside-refused; \
         touch /usr/paddock-test || echo usr-refused; \
         touch /paddock-root-test || echo root-refused; \
         echo t > /tmp/t && cat /tmp/t",
        ws = s.ws.display(),
        out = s.outside.display()
    );
    let r = s.run(&s.sh(&script));
    assert_eq!(r.code, 0, "{r:#?}");
    for w in ["wrote-inside", "outside-refused", "usr-refused", "root-refused", "t\n"] {
        assert!(r.stdout.contains(w), "missing {w:?}: {r:#?}");
    }
    assert_eq!(std::fs::read_to_string(s.ws.join("made-inside")).unwrap(), "inside\n");
    assert!(!s.outside.join("made-outside").exists());
    assert!(!std::path::Path::new("/usr/paddock-test").exists());
    // The sandbox's /tmp was private.
    assert!(!std::path::Path::new("/tmp/t").exists() || std::fs::read_to_string("/tmp/t").unwrap() != "t\n");
});

both_users!(callers_environment_is_not_visible, |user, name| {
    let s = Scratch::new(name, user);
    let r = s.run(&s.sh("env; echo; tr '\\0' '\\n' < /proc/self/environ"));
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("FOO=bar"), "{r:#?}");
    assert!(!r.stdout.contains("caller-env-must-not-leak"), "{r:#?}");
    assert!(!r.stdout.contains("PADDOCK_TEST_CANARY"), "{r:#?}");
});

both_users!(proc_1_is_the_reaper_of_a_new_pid_namespace, |user, name| {
    let s = Scratch::new(name, user);
    let r = s.run(&s.sh("cat /proc/1/comm; echo pid=$$; ls /proc | grep -c '^[0-9]'; hostname"));
    assert_eq!(r.code, 0, "{r:#?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "paddock-reaper", "{r:#?}");
    assert_eq!(lines[1], "pid=2", "{r:#?}");
    let nprocs: u32 = lines[2].parse().unwrap();
    assert!(nprocs <= 5, "the host's processes are visible: {r:#?}");
});

// `/proc/sys` and `/dev` are read-only in the view, however the view was made (a one-shot
// run's reaper forked ahead mounts `/proc` and `/dev` before its spec and moves them into
// the view with their read-only binds): each write fails (`/proc/sysrq-trigger` too, which
// a kernel may not have), and the mount table says `ro` for both.
both_users!(proc_sys_and_dev_are_read_only, |user, name| {
    let s = Scratch::new(name, user);
    let r = s.run(&s.sh("for f in /proc/sys/kernel/hostname /proc/sysrq-trigger /dev/paddock-made-here; do \
           if echo x > $f 2>/dev/null; then echo \"$f written\"; else echo \"$f refused\"; fi; done; \
         awk '$5 == \"/proc/sys\" || $5 == \"/dev\" { split($6, o, \",\"); print $5, o[1] }' \
           /proc/self/mountinfo | sort"));
    assert_eq!(r.code, 0, "{r:#?}");
    let want = "/proc/sys/kernel/hostname refused\n/proc/sysrq-trigger refused\n/dev/paddock-made-here refused\n\
                /dev ro\n/proc/sys ro\n";
    assert_eq!(r.stdout, want, "{r:#?}");
});

// `/dev/shm` and `/tmp` are tmpfs of half of `max_memory`, with the default size without
// it, however `/dev` was made: in place, or by a reaper forked ahead before the spec (its
// `/dev/shm` of the default size, resized for the spec). Each variant also runs once with
// the spec held until the reaper has made `/dev` ahead, so the resize is always taken.
both_users!(tmpfs_sizes_follow_max_memory, |user, name| {
    let mut s = Scratch::new(name, user);
    let sizes = "df -k /dev/shm /tmp | awk 'NR > 1 { print $6, $2 }'";
    let mut spec = s.sh(sizes);
    spec.limits.max_memory = Some(512 << 20);
    let want = "/dev/shm 262144\n/tmp 262144\n";
    let r = s.run(&spec);
    assert_eq!((r.code, r.stdout.as_str()), (0, want), "{r:#?}");
    let r = s.run(&s.sh(sizes));
    assert_eq!((r.code, r.stdout.as_str()), (0, "/dev/shm 1048576\n/tmp 1048576\n"), "{r:#?}");
    if s.ahead {
        s.ahead_made = true;
        let r = s.run(&spec);
        assert_eq!((r.code, r.stdout.as_str()), (0, want), "{r:#?}");
    }
});

both_users!(timeout_kills_a_double_forked_daemon, |user, name| {
    let s = Scratch::new(name, user);
    // One name per variant (comm keeps 15 bytes): the variants run side by side.
    let variant = s.variant();
    let marker = format!("pdkm{}{variant}", std::process::id() % 100000);
    common::copy_executable(std::path::Path::new("/bin/sleep"), &s.ws.join(&marker));
    if user == User::Nobody {
        common::chown(&s.ws.join(&marker));
    }
    let script = format!(
        "( ( setsid ./{marker} 300 </dev/null >/dev/null 2>&1 & ) & ); \
         ( ./{marker} 301 & ); echo started > started; exec ./{marker} 302"
    );
    let mut spec = s.sh(&script);
    // Room for the start and the forks on a loaded machine: the daemons must be running
    // when the time is up.
    spec.limits.timeout = Some(Duration::from_secs(5));
    let t = std::time::Instant::now();
    let r = s.run(&spec);
    assert_eq!(r.code, 124, "{r:#?}");
    assert_eq!(r.ok()["status"], "TimedOut");
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(s.ws.join("started").exists(), "the daemons never started: {r:#?}");
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.trim() == marker)
        .collect();
    assert!(left.is_empty(), "{} marker processes survived the timeout", left.len());
});

both_users!(max_output_truncates, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh("head -c 100000 /dev/zero | tr '\\0' a; echo done >&2");
    spec.limits.max_output = Some(1000);
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.stdout.len(), 1000);
    assert_eq!(r.stderr, "done\n");
    assert_eq!(r.ok()["stdout_truncated"], true);
    assert_eq!(r.ok()["stderr_truncated"], false);
    assert_eq!(r.ok()["stdout_bytes"], 100000);
});

both_users!(capture_mode_collects_output_and_feeds_stdin, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh("tr a-z A-Z; echo err >&2");
    spec.stdio = StdioMode::Capture { stdin: Some(b"hello sandbox\n".to_vec()) };
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.stdout, "");
    let o = r.ok();
    let bytes =
        |v: &serde_json::Value| v.as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect::<Vec<u8>>();
    assert_eq!(bytes(&o["stdout"]), b"HELLO SANDBOX\n");
    assert_eq!(bytes(&o["stderr"]), b"err\n");
});

both_users!(host_descriptors_are_not_inherited, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh("");
    spec.program = "/bin/ls".into();
    spec.argv = vec!["ls".into(), "/proc/self/fd".into()];
    // fd 9 is open, without close-on-exec, in the harness (and so in the helper).
    let r = s.run_with(&spec, "exec 9</etc/hostname;");
    assert_eq!(r.code, 0, "{r:#?}");
    let fds: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{r:#?}");
});

both_users!(dangerous_syscalls_fail_inside, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh("");
    spec.program = s.ws.join("testprobe");
    spec.argv = vec!["testprobe".into(), "syscalls".into()];
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let get = |k: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {r:#?}"))
            .to_string()
    };
    for k in [
        "unshare_user",
        "unshare_mount",
        "clone_newuser",
        "mount",
        "io_uring_setup",
        "bpf",
        "keyctl",
        "add_key",
        "ptrace",
        "perf_event_open",
        "setns",
        "init_module",
        "tiocsti",
        "socket_netlink",
        "socket_packet",
    ] {
        assert_eq!(get(k), "EPERM", "{k}: {r:#?}");
    }
    assert_eq!(get("clone3"), "ENOSYS");
    assert_eq!(get("socket_inet"), "OK");
    assert_eq!(get("socket_unix"), "OK");
    assert_eq!(get("fork"), "OK");
    // And the unshare(1) tool agrees.
    let r =
        s.run(&s.sh("unshare -U true && echo unshare-worked; mount -t tmpfs none /tmp && echo mount-worked; exit 0"));
    assert!(!r.stdout.contains("worked"), "{r:#?}");
});

both_users!(no_capabilities_and_no_new_privs, |user, name| {
    let s = Scratch::new(name, user);
    let r = s.run(&s.sh("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"));
    assert_eq!(r.code, 0, "{r:#?}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = r.stdout.lines().find(|l| l.starts_with(cap)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(r.stdout.contains("NoNewPrivs:\t1"), "{r:#?}");
    assert!(r.stdout.contains("Seccomp:\t2"), "{r:#?}");
});

both_users!(tcp_to_the_hosts_loopback_fails, |user, name| {
    let s = Scratch::new(name, user);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut spec = s.sh("");
    spec.program = s.ws.join("testprobe");
    spec.argv = vec!["testprobe".into(), "connect".into(), port.to_string()];
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("connect=ERR"), "{r:#?}");
    assert!(listener.accept().is_err(), "the host listener got a connection");
});

both_users!(proxy_mode_passes_the_listener_and_only_its_port, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh(&format!("{p} connect 18080; {p} connect 18081", p = s.probe_bin()));
    spec.network = NetworkMode::Proxy { port: 18080 };
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "connect=OK proxied", "{r:#?}");
    // Landlock: connect only to the proxy port (EACCES = 13), not merely refused.
    assert!(lines[1].starts_with("connect=ERR") && lines[1].contains("Some(13)"), "{r:#?}");
});

both_users!(pty_mode_gives_a_terminal_of_its_own, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh("tty; test -t 0 && echo stdin-is-a-tty; ps -o stat= -p $$; exit 5");
    spec.stdio = StdioMode::Pty;
    let spec_path = s.root.join("spec.json");
    let out_path = s.root.join("outcome.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    std::fs::write(&out_path, b"").unwrap();
    if user == User::Nobody {
        common::chown(&out_path);
    }
    let harness = format!("{}/harness", s.root.parent().unwrap().display());
    let mut inner = format!("{harness} run {} {}", spec_path.display(), out_path.display());
    if user == User::Nobody {
        inner = format!("setpriv --reuid=65534 --regid=65534 --clear-groups {inner}");
    }
    // script(1) gives the harness a terminal on stdin.
    let mut script = std::process::Command::new("script");
    if s.threaded {
        script.env("PADDOCK_HARNESS_THREADED", "1");
    }
    // script(1)'s stdin stays open until it has exited: at the end of its stdin, script
    // "types" an end-of-file into the terminal, which is a NUL byte once the harness has
    // made that terminal raw (util-linux sends VEOF only in canonical mode); the harness
    // relays it, as it must any keystroke, and the child's terminal echoes it as `^@`
    // into the output, before whichever line it lands on.
    let mut child = script
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) is needed for the pty test");
    let stdin = child.stdin.take();
    let out = child.wait_with_output().expect("script(1) output");
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The terminal is one of the sandbox's own devpts, as the child sees it; nothing was
    // typed into it, so nothing else is on the lines.
    assert_eq!(lines[0], "/dev/pts/0", "{text}");
    assert_eq!(lines[1], "stdin-is-a-tty", "{text}");
    // Session leader (s) in the terminal's foreground process group (+): job control works.
    assert!(lines[2].contains('s') && lines[2].contains('+'), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
});

both_users!(rlimits_apply, |user, name| {
    let s = Scratch::new(name, user);
    let mut spec = s.sh("grep -E '^Max (processes|open files|address space|core file size)' /proc/self/limits");
    spec.limits.max_open_files = Some(64);
    spec.limits.max_processes = Some(50);
    spec.limits.max_memory = Some(1 << 30);
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    let soft = |what: &str| -> String {
        let line = r.stdout.lines().find(|l| l.starts_with(what)).unwrap_or_else(|| panic!("{what}: {r:#?}"));
        line[what.len()..].split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(soft("Max open files"), "64");
    assert_eq!(soft("Max processes"), "50");
    assert_eq!(soft("Max address space"), (1u64 << 30).to_string());
    assert_eq!(soft("Max core file size"), "0");
    let report = &r.ok()["report"]["layers"];
    let cgroup = report.as_array().unwrap().iter().find(|l| l["name"] == "cgroup").unwrap();
    assert!(cgroup["detail"].as_str().unwrap().contains("RLIMIT_AS"), "{cgroup}");
});
