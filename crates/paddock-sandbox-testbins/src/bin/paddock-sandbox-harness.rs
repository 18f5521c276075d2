//! Test harness for paddock-sandbox's integration tests (not the paddock CLI).
//!
//! `paddock-sandbox-harness run SPEC.json OUTCOME.json`: runs the spec, writes the outcome
//! (or the error) as JSON, exits with the outcome's exit code (71/125/126/127 on errors).
//! In proxy mode it answers each connection to the proxy port with `proxied`.
//! `paddock-sandbox-harness probe`: prints the probe report as JSON.
//! `paddock-sandbox-harness time SPEC.json N`: p50 latency of N sequential calls, one-shot
//! and in a zygote. With `PADDOCK_HARNESS_ZYGOTE=N`, `run` starts a zygote from the spec
//! and runs N calls of it at once (each on its own proxy port); the first one is reported.
//! With `PADDOCK_HARNESS_THREADED=1` it starts a second (idle) thread first, so the sandbox
//! takes its re-exec path, as for a multi-threaded caller; otherwise it forks the helper.
//! With `PADDOCK_HARNESS_AHEAD=1` (and no zygote) it forks the helper before it reads the
//! spec (`paddock_sandbox::prestart`); with `PADDOCK_HARNESS_AHEAD=killed` it then kills
//! that helper before the spawn. `paddock-sandbox-harness ahead-unused` forks a
//! helper ahead, waits for the reaper it forks ahead, drops it unused and checks that
//! both are gone.

use std::process::exit;

fn main() {
    paddock_sandbox::helper_main_if_requested();
    if std::env::var_os("PADDOCK_HARNESS_THREADED").is_some() {
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("probe") => {
            let report = paddock_sandbox::probe();
            println!("{}", serde_json::to_string_pretty(&report).unwrap());
        }
        Some("time") if args.len() == 4 => {
            // `time SPEC.json N`: p50 of N sequential calls, one-shot and in a zygote.
            let spec: paddock_sandbox::SandboxSpec =
                serde_json::from_slice(&std::fs::read(&args[2]).expect("read spec")).expect("parse spec");
            let n: usize = args[3].parse().expect("N");
            let p50 = |f: &dyn Fn() -> paddock_sandbox::Running| {
                let mut ready = Vec::new();
                let mut total = Vec::new();
                for _ in 0..n {
                    let t = std::time::Instant::now();
                    let r = f();
                    ready.push(t.elapsed());
                    r.wait().expect("wait");
                    total.push(t.elapsed());
                }
                ready.sort();
                total.sort();
                (ready[n / 2], total[n / 2])
            };
            println!("one-shot (ready, total): {:?}", p50(&|| paddock_sandbox::spawn(&spec).expect("spawn")));
            let z = paddock_sandbox::Zygote::start(&spec).expect("zygote");
            println!("zygote   (ready, total): {:?}", p50(&|| z.spawn(&spec).expect("spawn")));
        }
        Some("ahead-unused") => {
            // A helper forked ahead and dropped unused: it exits and is reaped, leaving no
            // process behind, nor the reaper it forked ahead (an orphan of the helper's
            // tree would come to this process, a subreaper).
            // SAFETY: a plain prctl(2) on this process.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }, 0);
            let helper = paddock_sandbox::prestart().expect("a single-threaded process forks its helper ahead");
            let [pid] = children("self")[..] else { panic!("one helper: {:?}", children("self")) };
            // Its namespaces made, the helper forks the reaper ahead (a pid 1 forked ahead,
            // straight into its namespaces, is the reaper itself: it mounts its `/proc`).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while reaper_of(pid).is_none_or(|r| !proc_made(r)) {
                assert!(std::time::Instant::now() < deadline, "no reaper forked ahead in 30 s");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(helper);
            assert_eq!(children("self"), Vec::<i32>::new(), "the unused helper is gone");
            println!("gone");
        }
        Some("run") if args.len() == 4 => {
            let zygote_calls: usize =
                std::env::var("PADDOCK_HARNESS_ZYGOTE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
            // PADDOCK_HARNESS_AHEAD=1: the helper is forked before the spec is read, as
            // `paddock run` forks it before it loads its policy.
            let ahead = std::cell::Cell::new(None);
            if let (Some(how), 0) = (std::env::var_os("PADDOCK_HARNESS_AHEAD"), zygote_calls) {
                ahead.set(Some(paddock_sandbox::prestart().expect("a single-threaded process forks its helper ahead")));
                // `killed`: the helper dies before it gets its spec (the spawn starts another).
                if how == "killed" {
                    let [helper] = children("self")[..] else { panic!("one helper: {:?}", children("self")) };
                    // SAFETY: a plain kill(2) of our own child, not yet reaped.
                    assert_eq!(unsafe { libc::kill(helper, libc::SIGKILL) }, 0);
                    let stat = format!("/proc/{helper}/stat");
                    while !std::fs::read_to_string(&stat).unwrap_or_default().contains(") Z ") {
                        std::thread::yield_now();
                    }
                }
                // `made`: the spec is sent only once the reaper forked ahead has made all of
                // `/dev` ahead (its `/dev/shm` mounted in the scratch root).
                if how == "made" {
                    let [helper] = children("self")[..] else { panic!("one helper: {:?}", children("self")) };
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    let made = |reaper: i32| {
                        let mounts = std::fs::read_to_string(format!("/proc/{reaper}/mountinfo")).unwrap_or_default();
                        mounts.lines().any(|l| l.split(' ').nth(4) == Some("/dev-ahead/shm"))
                    };
                    while !reaper_of(helper).is_some_and(made) {
                        assert!(std::time::Instant::now() < deadline, "no /dev made ahead in 30 s");
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            }
            let spec: paddock_sandbox::SandboxSpec =
                serde_json::from_slice(&std::fs::read(&args[2]).expect("read spec")).expect("parse spec");
            // With PADDOCK_HARNESS_ZYGOTE=N, the spec runs in a zygote started from it: N
            // calls at once (each on its own proxy port), the first one's outcome written.
            let start = |spec: &paddock_sandbox::SandboxSpec| -> Result<paddock_sandbox::Running, paddock_sandbox::SandboxError> {
                if let Some(helper) = ahead.take() {
                    return helper.spawn_meanwhile(spec, &mut || ()).0;
                }
                if zygote_calls == 0 {
                    return paddock_sandbox::spawn(spec);
                }
                // PADDOCK_HARNESS_TEMPLATE_LIMITS=default: the zygote's template has the
                // default limits (the calls keep the spec's).
                let mut template = spec.clone();
                if std::env::var_os("PADDOCK_HARNESS_TEMPLATE_LIMITS").is_some() {
                    template.limits = paddock_sandbox::Limits { timeout: spec.limits.timeout, ..Default::default() };
                }
                let zygote = paddock_sandbox::Zygote::start(&template)?;
                // PADDOCK_HARNESS_KILL_SPARE=1: the spare call helper the zygote forked ahead
                // is killed before the first call.
                if std::env::var_os("PADDOCK_HARNESS_KILL_SPARE").is_some() {
                    kill_spare();
                }
                let mut others = Vec::new();
                for i in 1..zygote_calls {
                    let mut s = spec.clone();
                    if let paddock_sandbox::NetworkMode::Proxy { port } = s.network {
                        s.network = paddock_sandbox::NetworkMode::Proxy { port: port + i as u16 };
                    }
                    others.push(zygote.spawn(&s)?);
                }
                let first = zygote.spawn(spec)?;
                // The zygote's processes now (its spares, the calls' pid 1 or helpers):
                // once the zygote is dropped and the calls have ended, none may be left.
                let z = children("self");
                ZYGOTE_CHILDREN.lock().unwrap().extend(z.iter().flat_map(|z| children(&z.to_string())));
                let handles: Vec<_> = others
                    .into_iter()
                    .map(|mut r| {
                        if let Some(l) = r.take_proxy_listener() {
                            serve_proxy(l);
                        }
                        std::thread::spawn(move || r.wait())
                    })
                    .collect();
                for h in handles {
                    h.join().expect("a concurrent call")?;
                }
                Ok(first)
            };
            let result = start(&spec).and_then(|mut running| {
                if let Some(listener) = running.take_proxy_listener() {
                    serve_proxy(listener);
                }
                running.wait()
            });
            // What is left of the run once its teardown is done: no process, no cgroup.
            paddock_sandbox::finish_teardowns();
            let left = |o: &paddock_sandbox::RunOutcome| {
                let detail = o.report.get(paddock_sandbox::Layer::Cgroup).map(|l| l.detail.clone()).unwrap_or_default();
                let cgroups: Vec<&str> = detail
                    .split('(')
                    .filter_map(|p| p.split(')').next())
                    .filter(|p| p.starts_with("/sys/fs/cgroup/"))
                    .collect();
                let there: Vec<&str> = cgroups.iter().copied().filter(|p| std::path::Path::new(p).exists()).collect();
                let mut zygote_left = ZYGOTE_CHILDREN.lock().unwrap().clone();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                // A spare dies of a signal sent when the zygote ends: polled until handled.
                while !zygote_left.is_empty() && std::time::Instant::now() < deadline {
                    zygote_left.retain(|p| !ended(*p));
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                serde_json::json!({
                    "children": children("self"),
                    "cgroups": cgroups,
                    "cgroups_there": there,
                    "zygote_children": zygote_left,
                })
            };
            let (json, code) = match result {
                Ok(o) => (serde_json::json!({ "ok": o, "left": left(&o) }), o.exit_code()),
                Err(e) => (serde_json::json!({ "err": e.to_string(), "code": e.exit_code() }), e.exit_code()),
            };
            std::fs::write(&args[3], serde_json::to_vec_pretty(&json).unwrap()).expect("write outcome");
            exit(code);
        }
        _ => {
            eprintln!("usage: paddock-sandbox-harness (probe | run SPEC.json OUTCOME.json)");
            exit(64);
        }
    }
}

/// What the zygote had forked when its last call started ([`children`] of it).
static ZYGOTE_CHILDREN: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The reaper of what `prestart` forked (`pid`): the process itself when it is the
/// sandbox's pid 1, cloned straight into its namespaces (named `paddock-reaper`), else the
/// helper's first child, once it has one.
fn reaper_of(pid: i32) -> Option<i32> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim_end() == "paddock-reaper" {
        return Some(pid);
    }
    children(&pid.to_string()).first().copied()
}

/// Whether the reaper `pid` mounted its `/proc` ahead (in the scratch root).
fn proc_made(pid: i32) -> bool {
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some("/proc-ahead"))
}

/// The pids `/proc` lists as children of `pid` (of each of its threads).
fn children(pid: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    out
}

/// The spares a zygote keeps ready (`zygote::spare::SPARES`).
const SPARES: usize = 2;

/// Kills the zygote's spares (the zygote is this process's only child; the spares, each
/// its call's pid 1, are its only children while no call runs) and waits until they are
/// gone (a zombie has closed its descriptors: it can take no message from the zygote's
/// socket any more).
fn kill_spare() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let spares = loop {
        let z = children("self");
        assert_eq!(z.len(), 1, "one zygote: {z:?}");
        let s = children(&z[0].to_string());
        assert!(s.len() <= SPARES, "more children than spares: {s:?}");
        if s.len() == SPARES {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no spares forked: {s:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    for spare in &spares {
        // SAFETY: a plain kill(2) of a pid just read (a zygote's child, which the zygote
        // does not reap before it ends).
        assert_eq!(unsafe { libc::kill(*spare, libc::SIGKILL) }, 0);
    }
    for pid in &spares {
        while !ended(*pid) {
            assert!(std::time::Instant::now() < deadline, "spare {pid} did not end");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Whether `pid` has ended: reaped, or a zombie (its descriptors are closed then).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// A stand-in for paddock-proxy: answers every connection with one line.
fn serve_proxy(listener: std::os::fd::OwnedFd) {
    let listener = std::net::TcpListener::from(listener);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let _ = std::io::Write::write_all(&mut conn, b"proxied\n");
        }
    });
}
