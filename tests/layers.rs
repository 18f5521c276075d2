//! End-to-end: the confinement layers hold where the issues found them open. Each scenario
//! runs the built binary as root (`as_root::*`) and as uid 65534 (`as_nobody::*`).
//!
//! - seccomp refuses `kcmp`, `pidfd_getfd` and (x86_64) `modify_ldt`;
//! - Landlock: strict requires only the rights nothing else covers (a run: ABI 1); the
//!   report comes from the status the kernel returned; `run --explain` lists the levels;
//! - the private `/tmp` and `/dev/shm` are tmpfs sized from `max_memory` (ENOSPC when full);
//! - `max_file_size` bounds one file (EFBIG, not a silent SIGXFSZ).

#[macro_use]
mod common;

use common::*;

both_users!(
    without_a_mount_view_landlock_keeps_the_globs_matches,
    seccomp_refuses_kcmp_pidfd_getfd_modify_ldt,
    landlock_reports_the_kernel_status,
    explain_lists_what_strict_requires_of_landlock,
    strict_runs_on_an_older_landlock_reported_partial,
    landlock_missing_stops_strict_with_71,
    full_tmp_answers_enospc,
    full_dev_shm_answers_enospc,
    max_file_size_answers_efbig,
);

// ---------------------------------------------------------------------------------------
// seccomp
// ---------------------------------------------------------------------------------------

/// The system call numbers the probe needs, for this architecture: `kcmp`, `pidfd_open`,
/// `pidfd_getfd`, `modify_ldt` (x86 only: 0 where the call does not exist), `getppid`.
fn syscall_numbers() -> [i64; 5] {
    if cfg!(target_arch = "x86_64") {
        [312, 434, 438, 154, 110]
    } else if cfg!(target_arch = "aarch64") {
        [272, 434, 438, 0, 173]
    } else {
        panic!("the seccomp probe knows x86_64 and aarch64 system call numbers only: add this architecture's")
    }
}

/// Calls each probe on itself with arguments that succeed on a host: `kcmp` of its own
/// stdout with itself, `pidfd_getfd` of its own stdout through its own pidfd, `modify_ldt`
/// reading its (empty) LDT, and `getppid` (harmless); prints `name ret errno` per call.
const SECCOMP_PY: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
kcmp, pidfd_open, pidfd_getfd, modify_ldt, getppid = (int(a) for a in sys.argv[1:6])
buf = ctypes.create_string_buffer(64)
def call(name, nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(L(nr), *args)
    print(name, r, ctypes.get_errno() if r < 0 else 0, flush=True)
    return r
p = os.getpid()
call("kcmp", kcmp, L(p), L(p), L(0), L(1), L(1))
pidfd = call("pidfd_open", pidfd_open, L(p), L(0))
call("pidfd_getfd", pidfd_getfd, L(pidfd), L(1), L(0))
if modify_ldt:
    call("modify_ldt", modify_ldt, L(0), buf, L(16))
call("getppid", getppid)
"#;

/// `name -> (ret, errno)` from the probe's output.
fn parse_calls(o: &Out) -> std::collections::BTreeMap<String, (i64, i32)> {
    let calls: std::collections::BTreeMap<String, (i64, i32)> = o
        .out()
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((w.first()?.to_string(), (w.get(1)?.parse().ok()?, w.get(2)?.parse().ok()?)))
        })
        .collect();
    assert!(calls.contains_key("getppid"), "the probe did not finish\n{o}");
    calls
}

fn seccomp_refuses_kcmp_pidfd_getfd_modify_ldt(u: User) {
    const EPERM: i32 = 1;
    let nrs = syscall_numbers().map(|n| n.to_string());
    let args: Vec<&str> = nrs.iter().map(String::as_str).collect();
    let mut probes = vec!["kcmp", "pidfd_getfd"];
    if cfg!(target_arch = "x86_64") {
        probes.push("modify_ldt");
    } else {
        eprintln!("note: modify_ldt exists only on x86: nothing to refuse on this architecture");
    }
    let f = Fixture::new(u);
    // The control: on the host, the same user's calls succeed, so a refusal inside is the
    // sandbox's doing.
    let ctl = f.host(&py(SECCOMP_PY, &args));
    let host = parse_calls(&ctl);
    for name in probes.iter().chain(&["pidfd_open", "getppid"]) {
        let (ret, errno) = host.get(*name).copied().unwrap_or_else(|| panic!("control: no {name}\n{ctl}"));
        assert!(ret >= 0, "control: {name} fails on the host already (errno {errno})\n{ctl}");
    }
    let o = f.run(&Pol::default(), &py(SECCOMP_PY, &args), None);
    assert_eq!(o.code(), 0, "{o}");
    let inside = parse_calls(&o);
    for name in &probes {
        assert_eq!(inside.get(*name), Some(&(-1, EPERM)), "{name} was not refused with EPERM\n{o}");
    }
    // What the filter leaves alone still works inside: a pidfd of one's own, getppid.
    for name in ["pidfd_open", "getppid"] {
        let (ret, errno) = inside[name];
        assert!(ret >= 0, "{name} fails inside (errno {errno})\n{o}");
    }
}

// ---------------------------------------------------------------------------------------
// Landlock
// ---------------------------------------------------------------------------------------

/// The running kernel's Landlock ABI, asked on the host (`landlock_create_ruleset` with the
/// VERSION flag; 0 when Landlock is off).
fn host_landlock_abi(f: &Fixture) -> i64 {
    let src = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print(max(libc.syscall(ctypes.c_long(444), None, ctypes.c_long(0), ctypes.c_long(1)), 0))
"#;
    let o = f.host(&py(src, &[]));
    o.out().trim().parse().unwrap_or_else(|_| panic!("the ABI probe failed\n{o}"))
}

/// `paddock -v run` of `true` under `enforcement`; the run and its landlock report line.
fn landlock_line(f: &Fixture, enforcement: &str) -> (Out, Option<String>) {
    let tail = format!("[sandbox]\nenforcement = {enforcement:?}\n");
    let pol = f.policy(&Pol { tail: &tail, ..Pol::default() });
    let argv: Vec<std::ffi::OsString> = vec![
        f.bin.clone().into(),
        "-v".into(),
        "run".into(),
        "--policy".into(),
        pol.into(),
        "--workspace".into(),
        f.ws.clone().into(),
        "--".into(),
        "true".into(),
    ];
    let o = f.launch(&argv, &[], None);
    let line = o.err().lines().find(|l| l.trim_start().starts_with("landlock ")).map(|l| l.trim().to_string());
    (o, line)
}

/// A one-shot run requires of Landlock only the filesystem rights (ABI 1): it runs under
/// strict on any kernel with Landlock, and the report says what the kernel lacks and what
/// covers it.
fn landlock_reports_the_kernel_status(u: User) {
    let f = Fixture::new(u);
    let abi = host_landlock_abi(&f);
    let (strict, strict_line) = landlock_line(&f, "strict");
    let (best, best_line) = landlock_line(&f, "best-effort");
    if abi == 0 {
        // No Landlock at all: strict stops with 71 naming it, best-effort runs without it.
        assert_eq!(strict.code(), 71, "{strict}");
        assert!(strict.err().contains("`landlock` is unavailable"), "{strict}");
        assert_eq!(best.code(), 0, "{best}");
        let l = best_line.unwrap_or_else(|| panic!("no landlock line in the report\n{best}"));
        assert_eq!(l.split_whitespace().nth(1), Some("unavailable"), "{l}");
        return;
    }
    assert_eq!(strict.code(), 0, "ABI {abi}: {strict}");
    assert_eq!(best.code(), 0, "ABI {abi}: {best}");
    let strict_l = strict_line.unwrap_or_else(|| panic!("no landlock line in the report\n{strict}"));
    let best_l = best_line.unwrap_or_else(|| panic!("no landlock line in the report\n{best}"));
    assert!(strict_l.contains("; required: filesystem rights (ABI 1, Linux 5.13)"), "{strict_l}");
    assert!(best_l.contains("; best-effort: nothing required"), "{best_l}");
    if abi >= 6 {
        // Everything paddock asks of Landlock is there: the kernel says fully enforced.
        for l in [&strict_l, &best_l] {
            assert_eq!(l.split_whitespace().nth(1), Some("enforced"), "{l}");
        }
        assert!(strict_l.ends_with("; fully enforced; required: filesystem rights (ABI 1, Linux 5.13)"), "{strict_l}");
        assert!(best_l.ends_with("; fully enforced; best-effort: nothing required"), "{best_l}");
    } else {
        // An older kernel: partial, each missing right named with what covers it.
        for l in [&strict_l, &best_l] {
            assert_eq!(l.split_whitespace().nth(1), Some("partial"), "ABI {abi}: {l}");
            assert!(l.contains("this kernel lacks") && l.contains("(covered: "), "ABI {abi}: {l}");
            assert!(!l.contains("not covered"), "ABI {abi}: {l}");
        }
    }
}

/// `run --explain` says, per Landlock right, whether strict requires it of a run and of a
/// session's calls, whatever this kernel has.
fn explain_lists_what_strict_requires_of_landlock(u: User) {
    let f = Fixture::new(u);
    let pol = f.policy(&Pol::default());
    let argv: Vec<std::ffi::OsString> =
        vec![f.bin.clone().into(), "run".into(), "--explain".into(), "--policy".into(), pol.into()];
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    let out = o.out();
    assert!(out.contains("Landlock rights under strict (this kernel: ABI "), "{o}");
    for want in [
        "  filesystem rights (ABI 1, Linux 5.13): required; ",
        "  file reparenting (ABI 2, Linux 5.19): best effort; ",
        "  truncate (ABI 3, Linux 6.2): best effort; ",
        "  TCP bind and connect rules (ABI 4, Linux 6.7): best effort for a run, required for a session's calls; ",
        "  device ioctl (ABI 5, Linux 6.10): best effort; ",
        "  abstract unix socket scope (ABI 6, Linux 6.12): best effort for a run, required for a session's calls; ",
        "  signal scope (ABI 6, Linux 6.12): best effort; ",
    ] {
        assert!(out.lines().any(|l| l.starts_with(want)), "missing {want:?}\n{o}");
    }
}

/// Runs `argv[2:]` on a Landlock that says it is ABI `argv[1]`: a seccomp filter hands the
/// version query (`landlock_create_ruleset`, 444 on every architecture, with flags 1) to this
/// process, which answers the number; every other call, the ruleset's creation included,
/// reaches the real kernel, which then enforces exactly what a ruleset of that ABI asks.
const FAKE_ABI_PY: &str = r#"
import ctypes, os, select, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
abi = int(sys.argv[1])
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}[os.uname().machine]
def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
# nr == landlock_create_ruleset (444) with flags (args[2], low half at offset 32) ==
# VERSION (1): ask the supervisor; anything else: allow.
prog = (ins(0x20, 0, 0, 0) + ins(0x15, 0, 3, 444) + ins(0x20, 0, 0, 32) + ins(0x15, 0, 1, 1)
        + ins(0x06, 0, 0, 0x7fc00000) + ins(0x06, 0, 0, 0x7fff0000))
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close()
    buf = ctypes.create_string_buffer(prog)
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fp = Fprog(len(prog) // 8, ctypes.addressof(buf))
    assert libc.prctl(38, 1, 0, 0, 0) == 0, "no_new_privs"
    fd = libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_long(1), ctypes.c_long(8), ctypes.byref(fp))
    assert fd >= 0, "seccomp: %d" % ctypes.get_errno()
    socket.send_fds(b, [b"x"], [fd])
    os.close(fd)
    b.close()
    os.execvp(sys.argv[2], sys.argv[2:])
b.close()
_, fds, _, _ = socket.recv_fds(a, 1, 1)
listener = fds[0]
a.close()
notif = ctypes.create_string_buffer(80)
p = select.poll()
p.register(listener, select.POLLIN)
status = None
while status is None:
    for _, ev in p.poll(50):
        if ev & select.POLLIN:
            ctypes.memset(notif, 0, 80)
            # SECCOMP_IOCTL_NOTIF_RECV; it fails when the caller went away meanwhile.
            if libc.ioctl(listener, 0xc0502100, notif) == 0:
                nid = struct.unpack_from("Q", notif, 0)[0]
                resp = ctypes.create_string_buffer(struct.pack("QqiI", nid, abi, 0, 0))
                libc.ioctl(listener, 0xc0182101, resp)  # SECCOMP_IOCTL_NOTIF_SEND
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// `paddock ARGS` under a Landlock that says it is ABI `abi` ([`FAKE_ABI_PY`]).
fn with_abi(f: &Fixture, abi: i64, args: &[std::ffi::OsString]) -> Out {
    let mut argv: Vec<std::ffi::OsString> = ["python3", "-c", FAKE_ABI_PY].map(Into::into).to_vec();
    argv.push(abi.to_string().into());
    argv.push(f.bin.clone().into());
    argv.extend_from_slice(args);
    f.launch(&argv, &[], None)
}

/// The `landlock` line of a `-v` report.
fn report_line(o: &Out) -> String {
    let line = o.err().lines().find(|l| l.trim_start().starts_with("landlock ")).map(|l| l.trim().to_string());
    line.unwrap_or_else(|| panic!("no landlock line in the report\n{o}"))
}

/// The `landlock` layer of the last audit record with an enforcement report: (state, detail).
fn audited_landlock(f: &Fixture) -> (String, String) {
    let log = std::fs::read_to_string(f.root.join("state").join("audit.jsonl")).expect("the audit log");
    let rec = log
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an audit record"))
        .find(|r| r.get("enforcement").is_some())
        .expect("a record with the enforcement report");
    let layers = rec["enforcement"]["layers"].as_array().expect("layers").clone();
    let l = layers.iter().find(|l| l["name"] == "landlock").expect("a landlock layer");
    (l["state"].as_str().unwrap_or_default().to_string(), l["detail"].as_str().unwrap_or_default().to_string())
}

/// On kernels older than Linux 6.12 (ABI 4: Ubuntu 24.04's 6.8; ABI 1), a strict `run` goes
/// ahead: it requires only the filesystem rights, and the report and the audit record say
/// `partial`, naming each missing right and what covers it. Control: the same wrapper
/// answering the real ABI changes nothing.
fn strict_runs_on_an_older_landlock_reported_partial(u: User) {
    let f = Fixture::new(u);
    let host = host_landlock_abi(&f);
    assert!(host >= 4, "this test needs Landlock ABI >= 4 (the kernel enforces what an ABI-4 ruleset asks): {host}");
    let tail = "[sandbox]\nenforcement = \"strict\"\n";
    let pol = f.policy(&Pol { tail, ..Pol::default() });
    let args: Vec<std::ffi::OsString> = vec![
        "-v".into(),
        "run".into(),
        "--policy".into(),
        pol.clone().into(),
        "--workspace".into(),
        f.ws.clone().into(),
        "--".into(),
        "true".into(),
    ];

    let ctl = with_abi(&f, host, &args);
    assert_eq!(ctl.code(), 0, "control\n{ctl}");
    let l = report_line(&ctl);
    assert!(l.contains(&format!("landlock ABI {host}: ")), "the wrapper's answer is not what paddock saw: {l}");
    if host >= 6 {
        assert_eq!(l.split_whitespace().nth(1), Some("enforced"), "{l}");
    }

    let o = with_abi(&f, 4, &args);
    assert_eq!(o.code(), 0, "strict stopped on ABI 4\n{o}");
    let l = report_line(&o);
    assert_eq!(l.split_whitespace().nth(1), Some("partial"), "{l}");
    assert!(l.contains("landlock ABI 4: ") && l.contains("; no TCP connect or bind;"), "{l}");
    assert!(
        l.contains("; partially enforced; required: filesystem rights (ABI 1, Linux 5.13); this kernel lacks device ioctl (ABI 5, Linux 6.10) (covered: "),
        "{l}"
    );
    assert!(l.contains("; abstract unix socket scope (ABI 6, Linux 6.12) (covered: "), "{l}");
    assert!(l.contains("; signal scope (ABI 6, Linux 6.12) (covered: "), "{l}");
    // Nothing is claimed that the kernel was not asked for.
    assert!(!l.contains("scopes: ") && !l.contains("not covered"), "{l}");
    let (state, detail) = audited_landlock(&f);
    assert_eq!(state, "partial", "{detail}");
    assert!(detail.contains("this kernel lacks device ioctl"), "{detail}");

    let o = with_abi(&f, 1, &args);
    assert_eq!(o.code(), 0, "strict stopped on ABI 1\n{o}");
    let l = report_line(&o);
    assert_eq!(l.split_whitespace().nth(1), Some("partial"), "{l}");
    assert!(l.contains("this kernel lacks file reparenting (ABI 2, Linux 5.19) (covered: "), "{l}");
    assert!(l.contains("; truncate (ABI 3, Linux 6.2) (covered: "), "{l}");
    assert!(l.contains("; TCP bind and connect rules (ABI 4, Linux 6.7) (covered: "), "{l}");
    assert!(!l.contains("TCP connect") && !l.contains("not covered"), "{l}");

    // --explain on ABI 4: what is missing, what covers it, and no zygote for sessions.
    let explain: Vec<std::ffi::OsString> = vec!["run".into(), "--explain".into(), "--policy".into(), pol.into()];
    let o = with_abi(&f, 4, &explain);
    assert_eq!(o.code(), 0, "{o}");
    let out = o.out();
    assert!(out.contains("Landlock rights under strict (this kernel: ABI 4):"), "{o}");
    assert!(out.contains("  device ioctl (ABI 5, Linux 6.10): best effort; missing, covered in a run: "), "{o}");
    assert!(out.contains("  filesystem rights (ABI 1, Linux 5.13): required; available"), "{o}");
    assert!(out.contains("share a network namespace only from ABI 6 on; here each gets a sandbox of its own"), "{o}");
    assert!(out.contains("Policy enforcement: strict (a run goes ahead"), "{o}");
}

/// Runs `argv[2:]` with Landlock gone: with `argv[1] == "hide"`, a seccomp filter makes
/// `landlock_create_ruleset` (444 on every architecture) fail with ENOSYS, as on a kernel
/// without Landlock, then execs the rest; with `keep`, execs it as is (the control).
const NO_LANDLOCK_PY: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
if sys.argv[1] == "hide":
    def ins(code, jt, jf, k):
        return struct.pack("HBBI", code, jt, jf, k)
    # ld [nr]; jeq 444 ? errno(ENOSYS) : allow
    prog = ins(0x20, 0, 0, 0) + ins(0x15, 0, 1, 444) + ins(0x06, 0, 0, 0x00050000 | 38) + ins(0x06, 0, 0, 0x7fff0000)
    buf = ctypes.create_string_buffer(prog)
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fp = Fprog(len(prog) // 8, ctypes.addressof(buf))
    assert libc.prctl(38, 1, 0, 0, 0) == 0, "no_new_privs"
    assert libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0, "seccomp: %d" % ctypes.get_errno()
os.execv(sys.argv[2], sys.argv[2:])
"#;

/// Without a mount view (best-effort where no namespace can be made: here paddock inside
/// paddock, whose seccomp refuses them), Landlock alone still keeps the deny globs' and the
/// protect rules' matches of the start as the view would: a `**/*.pem` unread, `.git/config`
/// and the policy file unwritten; and what it does not cover is said (found by an attack:
/// they were not looked at, and the report said Landlock was fully enforced). Control:
/// a file no rule names is read and written.
fn without_a_mount_view_landlock_keeps_the_globs_matches(u: User) {
    let f = Fixture::new(u);
    std::fs::create_dir_all(f.ws.join("deep")).unwrap();
    std::fs::create_dir_all(f.ws.join(".git")).unwrap();
    let pem = format!("PEM-{}", unique());
    write(&f.ws.join("deep/c.pem"), &pem, 0o644);
    write(&f.ws.join(".git/config"), "[core]\n", 0o644);
    write(&f.ws.join("plain.txt"), "plain\n", 0o666);
    write(
        &f.ws.join("inner.toml"),
        "version = 1\nextends = [\"default\"]\n[sandbox]\nenforcement = \"best-effort\"\n",
        0o666,
    );
    for p in ["deep", ".git", "deep/c.pem", ".git/config", "plain.txt", "inner.toml"] {
        chown(&f.ws.join(p), u.uid());
    }
    // Symlinks beside the match, whose siblings get rules one by one: to a directory no
    // grant covers, and to a protected file (found by an attack: each rule was made on
    // the link's target).
    std::os::unix::fs::symlink(&f.outside, f.ws.join("deep/l")).unwrap();
    std::os::unix::fs::symlink(f.ws.join(".git/config"), f.ws.join("deep/alias")).unwrap();
    // The outer sandbox shows `outside`; the inner policy grants nothing there.
    let outer = f.policy(&Pol { read: &[f.bin.to_str().unwrap(), f.outside.to_str().unwrap()], ..Pol::default() });
    let inner = format!(
        "mkdir -p /tmp/h /tmp/st && HOME=/tmp/h PADDOCK_STATE_DIR=/tmp/st {} run --policy inner.toml -- sh -c \
         'cat deep/c.pem; cat plain.txt; cat deep/l/secret.txt; echo evil >> .git/config; echo evil >> deep/alias; echo evil >> inner.toml; echo more >> plain.txt'",
        f.bin.display()
    );
    let mut argv = f.paddock_argv(&Pol::default());
    argv[3] = outer.into();
    argv.extend(["sh", "-c", &inner].map(Into::into));
    let o = f.launch(&argv, &[], None);
    assert!(o.err().contains("best-effort: the mounts layer is unavailable"), "not Landlock only\n{o}");
    assert!(o.err().contains("unix sockets outside the grants are reachable"), "{o}");
    assert!(o.out().contains("plain\n") && !o.out().contains(&pem) && !o.out().contains(&f.secret), "{o}");
    assert_eq!(read(&f.ws.join(".git/config")), "[core]\n", "{o}");
    assert!(!read(&f.ws.join("inner.toml")).contains("evil"), "{o}");
    assert_eq!(read(&f.ws.join("plain.txt")), "plain\nmore\n", "{o}");
}

/// Without Landlock on the machine, strict stops with 71 naming it; best-effort runs and
/// reports it unavailable; the same wrapper without the filter runs under strict.
fn landlock_missing_stops_strict_with_71(u: User) {
    let f = Fixture::new(u);
    let launch = |mode: &str, enforcement: &str| {
        let tail = format!("[sandbox]\nenforcement = {enforcement:?}\n");
        let pol = f.policy(&Pol { tail: &tail, ..Pol::default() });
        let mut argv: Vec<std::ffi::OsString> = ["python3", "-c", NO_LANDLOCK_PY, mode].map(Into::into).to_vec();
        argv.extend([f.bin.clone().into(), "-v".into(), "run".into(), "--policy".into(), pol.into()]);
        argv.extend(["--workspace".into(), f.ws.clone().into(), "--".into(), "true".into()]);
        f.launch(&argv, &[], None)
    };
    let ctl = launch("keep", "strict");
    assert_eq!(ctl.code(), 0, "control: strict with Landlock\n{ctl}");
    let strict = launch("hide", "strict");
    assert_eq!(strict.code(), 71, "strict ran without Landlock\n{strict}");
    assert!(strict.err().contains("`landlock` is unavailable"), "{strict}");
    let best = launch("hide", "best-effort");
    assert_eq!(best.code(), 0, "{best}");
    let line = best.err().lines().find(|l| l.trim_start().starts_with("landlock ")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no landlock line in the report\n{best}"));
    assert_eq!(line.split_whitespace().nth(1), Some("unavailable"), "{best}");
}

// ---------------------------------------------------------------------------------------
// Sized tmpfs and max_file_size
// ---------------------------------------------------------------------------------------

const MIB: u64 = 1 << 20;

/// Writes 1 MiB to `DIR/small` (the control), then 100 MiB to `DIR/big`; prints each dd's
/// exit code and the size `big` reached. dd's own error message goes to stderr.
const FILL_SH: &str = r#"
dd if=/dev/zero of="$1/small" bs=1M count=1 2>/dev/null; echo "small $?"
dd if=/dev/zero of="$1/big" bs=1M count=100; echo "big $?"
echo "size $(stat -c %s "$1/big")"
"#;

/// `key value` lines of a probe's stdout.
fn field(o: &Out, key: &str) -> String {
    o.out()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no `{key}` in the probe's output\n{o}"))
        .to_string()
}

/// With `max_memory = "64MiB"`, the private `dir` is a tmpfs of 32 MiB: a 1 MiB file is
/// written, a 100 MiB one stops at 32 MiB with ENOSPC, and the writer lives to say so.
fn fills_with_enospc(u: User, dir: &str) {
    let f = Fixture::new(u);
    let pol = Pol { tail: "[limits]\nmax_memory = \"64MiB\"\n", ..Pol::default() };
    let o = f.run(&pol, &["sh", "-c", FILL_SH, "sh", dir], None);
    assert_eq!(o.code(), 0, "the probe did not run to its end\n{o}");
    assert_eq!(field(&o, "small"), "0", "the control: a 1 MiB file in {dir} failed\n{o}");
    assert_ne!(field(&o, "big"), "0", "100 MiB fit in {dir} with max_memory = 64MiB\n{o}");
    assert!(o.err().contains("No space left on device"), "{dir} did not answer ENOSPC\n{o}");
    let size: u64 = field(&o, "size").parse().unwrap();
    assert!((30 * MIB..=32 * MIB).contains(&size), "{dir}/big reached {size} bytes, not about 32 MiB\n{o}");
    // Without paddock the same write goes through (the host's /dev/shm and /tmp are not
    // this small), so the limit is the sandbox's.
    let scratch = f.ws.join("host-scratch");
    std::fs::create_dir(&scratch).unwrap();
    chown(&scratch, u.uid());
    let ctl = f.host(&["sh", "-c", FILL_SH, "sh", scratch.to_str().unwrap()]);
    assert_eq!(field(&ctl, "big"), "0", "control: 100 MiB on the host failed\n{ctl}");
}

fn full_tmp_answers_enospc(u: User) {
    fills_with_enospc(u, "/tmp");
}

fn full_dev_shm_answers_enospc(u: User) {
    fills_with_enospc(u, "/dev/shm");
}

/// Writes `N` bytes to `PATH` with os.write; prints `wrote N` or `error ERRNO AFTER`.
const WRITE_PY: &str = r#"
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
done = 0
try:
    while done < n:
        done += os.write(fd, b"x" * min(65536, n - done))
    print("wrote", done)
except OSError as e:
    print("error", e.errno, done)
"#;

fn max_file_size_answers_efbig(u: User) {
    const EFBIG: i32 = 27;
    let f = Fixture::new(u);
    let pol = Pol { tail: "[limits]\nmax_file_size = \"1MiB\"\n", ..Pol::default() };
    let small = (MIB / 2).to_string();
    let big = (3 * MIB).to_string();
    let ok = f.run(&pol, &py(WRITE_PY, &["small", &small]), None);
    assert_eq!(ok.code(), 0, "{ok}");
    assert_eq!(field(&ok, "wrote"), small, "the control: a file under max_file_size failed\n{ok}");
    let o = f.run(&pol, &py(WRITE_PY, &["big", &big]), None);
    // The writer is told (EFBIG) and goes on: not killed by SIGXFSZ (exit 128 + 25).
    assert_eq!(o.code(), 0, "the writer did not survive the limit\n{o}");
    assert_eq!(field(&o, "error"), format!("{EFBIG} {MIB}"), "a write past max_file_size\n{o}");
    assert_eq!(std::fs::metadata(f.ws.join("big")).unwrap().len(), MIB);
    // Without the limit, the same write goes through.
    let free = f.run(&Pol::default(), &py(WRITE_PY, &["free", &big]), None);
    assert_eq!(field(&free, "wrote"), big, "{free}");
    // A shell's redirection past it: the shell reports the error, nothing dies of a signal.
    let sh = f.run(&pol, &["sh", "-c", "head -c 3145728 /dev/zero > big2; echo rc=$?"], None);
    assert_eq!(sh.code(), 0, "{sh}");
    assert!(sh.out().contains("rc=1"), "{sh}");
    assert!(sh.err().contains("File too large"), "{sh}");
}
