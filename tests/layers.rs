//! End-to-end: the confinement layers hold where the issues found them open. Each scenario
//! runs the built binary as root (`as_root::*`) and as uid 65534 (`as_nobody::*`).
//!
//! - seccomp refuses `kcmp`, `pidfd_getfd` and (x86_64) `modify_ldt`;
//! - the Landlock layer's report comes from the status the kernel returned;
//! - the private `/tmp` and `/dev/shm` are tmpfs sized from `max_memory` (ENOSPC when full);
//! - `max_file_size` bounds one file (EFBIG, not a silent SIGXFSZ).

#[macro_use]
mod common;

use common::*;

both_users!(
    seccomp_refuses_kcmp_pidfd_getfd_modify_ldt,
    landlock_reports_the_kernel_status,
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

fn landlock_reports_the_kernel_status(u: User) {
    let f = Fixture::new(u);
    let abi = host_landlock_abi(&f);
    let (strict, strict_line) = landlock_line(&f, "strict");
    let (best, best_line) = landlock_line(&f, "best-effort");
    if abi >= 6 {
        // Everything paddock asks of Landlock is there: the kernel says fully enforced, under
        // strict as a hard requirement.
        assert_eq!(strict.code(), 0, "{strict}");
        let l = strict_line.unwrap_or_else(|| panic!("no landlock line in the report\n{strict}"));
        assert!(l.split_whitespace().nth(1) == Some("enforced"), "{l}");
        assert!(l.contains("fully enforced (strict: every right a hard requirement)"), "{l}");
        assert_eq!(best.code(), 0, "{best}");
        let l = best_line.unwrap_or_else(|| panic!("no landlock line in the report\n{best}"));
        assert!(l.split_whitespace().nth(1) == Some("enforced"), "{l}");
        assert!(l.contains("fully enforced (best effort)"), "{l}");
    } else {
        // An older kernel: strict stops with 71 naming Landlock and what it lacks; best-effort
        // runs and reports partial (or unavailable without Landlock at all).
        assert_eq!(strict.code(), 71, "{strict}");
        assert!(strict.err().contains("landlock"), "{strict}");
        assert_eq!(best.code(), 0, "{best}");
        let l = best_line.unwrap_or_else(|| panic!("no landlock line in the report\n{best}"));
        let want = if abi == 0 { "unavailable" } else { "partial" };
        assert!(l.split_whitespace().nth(1) == Some(want), "ABI {abi}: {l}");
    }
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
