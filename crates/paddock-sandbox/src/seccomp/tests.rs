//! The compiled filters, evaluated by a small classic-BPF interpreter here (no kernel), and
//! what the kernel answers when a filter is installed.

use super::*;
use crate::sys::in_child;
use seccompiler::sock_filter;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

fn errno(e: i32) -> u32 {
    0x0005_0000 | e as u32
}

/// Interprets one program for one system call (the classic-BPF instructions seccompiler
/// emits: absolute word loads, AND with a constant, jumps, constant returns; and the
/// x32 guard's bit test).
fn eval(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = &prog[pc];
        let cond = |c: bool| 1 + if c { ins.jt } else { ins.jf } as usize;
        pc += match ins.code {
            0x20 => {
                // BPF_LD | BPF_W | BPF_ABS
                let k = ins.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                1
            }
            0x54 => {
                // BPF_ALU | BPF_AND | BPF_K
                acc &= ins.k;
                1
            }
            0x05 => 1 + ins.k as usize,     // BPF_JMP | BPF_JA
            0x15 => cond(acc == ins.k),     // BPF_JMP | BPF_JEQ | BPF_K
            0x25 => cond(acc > ins.k),      // BPF_JMP | BPF_JGT | BPF_K
            0x35 => cond(acc >= ins.k),     // BPF_JMP | BPF_JGE | BPF_K
            0x45 => cond(acc & ins.k != 0), // BPF_JMP | BPF_JSET | BPF_K
            0x06 => return ins.k,           // BPF_RET | BPF_K
            c => panic!("unexpected opcode {c:#x}"),
        };
    }
}

/// What the kernel makes of the stacked filters: it runs them newest first and keeps an
/// answer unless a later one has a strictly lower action (compared as `s32`, so a kill
/// is lowest); `seccomp_run_filters` in kernel/seccomp.c.
fn eval_stack(progs: &[BpfProgram], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let action = |r: u32| (r & 0xffff_0000) as i32;
    let mut ret = RET_ALLOW;
    for p in progs.iter().rev() {
        let cur = eval(p, arch, nr, args);
        if action(cur) < action(ret) {
            ret = cur;
        }
    }
    ret
}

/// The rules of the filter that fails with `EPERM`, by system call number: every call of
/// [`DENIED`] whatever its arguments, and the argument rules of `clone`, `ioctl`, `socket`
/// and `personality`.
fn eperm_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    rules.append(&mut argument_rules()?);
    Ok(rules)
}

/// The filter programs with their names, in the order of installation, each whole: the
/// reference the installed filter answers as. With `supervised`,
/// the exec notification first, as when it was a filter of its own installed before them.
fn programs(supervised: bool) -> Result<Vec<(&'static str, BpfProgram)>, BackendError> {
    stack(supervised, ("EPERM", filter(eperm_rules()?, SeccompAction::Errno(libc::EPERM as u32))?))
}

/// The programs in the order of installation (with the exec notification when
/// `supervised`), each whole: what the installed filter must answer as.
fn progs_of(supervised: bool) -> &'static [BpfProgram] {
    static PROGS: std::sync::OnceLock<[Vec<BpfProgram>; 2]> = std::sync::OnceLock::new();
    let all = PROGS.get_or_init(|| [false, true].map(|s| programs(s).unwrap().into_iter().map(|(_, p)| p).collect()));
    &all[usize::from(supervised)]
}

/// The programs of the rules alone.
fn progs() -> &'static [BpfProgram] {
    progs_of(false)
}

const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const NEW_LISTENER: u64 = 1 << 3;

fn call(nr: libc::c_long, args: [u64; 6]) -> u32 {
    eval_stack(progs(), AUDIT_ARCH, nr as u32, args)
}

#[test]
fn denies_and_allows() {
    let eperm = errno(libc::EPERM);
    for (_, n) in DENIED {
        assert_eq!(call(*n, [0; 6]), eperm);
    }
    assert_eq!(call(libc::SYS_read, [0; 6]), RET_ALLOW);
    assert_eq!(call(libc::SYS_execve, [0; 6]), RET_ALLOW);
    assert_eq!(call(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(call(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), RET_ALLOW);
    let thread = libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD;
    assert_eq!(call(libc::SYS_clone, [thread as u64, 0, 0, 0, 0, 0]), RET_ALLOW);
    // Every CLONE_NEW* flag that clone takes (CLONE_NEWTIME shares its bit with the exit
    // signal there), alone or with others, in the low 32 bits.
    for bit in 0..32 {
        let f = 1u64 << bit;
        let want = if f & 0x7E02_0000 != 0 { eperm } else { RET_ALLOW };
        assert_eq!(call(libc::SYS_clone, [f, 0, 0, 0, 0, 0]), want, "clone flag {f:#x}");
        assert_eq!(call(libc::SYS_clone, [f | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), want);
    }
    assert_eq!(call(libc::SYS_clone, [(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64, 0, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_clone, [(thread | libc::CLONE_NEWNET) as u64, 0, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_ioctl, [0, TIOCSTI, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_ioctl, [0, (1u64 << 32) | TIOCSTI, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_ioctl, [0, TIOCLINUX, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_ioctl, [0, (0xffff_ffffu64 << 32) | TIOCLINUX, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_ioctl, [0, libc::TIOCGWINSZ, 0, 0, 0, 0]), RET_ALLOW);
    for fam in SOCKET_FAMILIES {
        assert_eq!(call(libc::SYS_socket, [*fam as u64, 1, 0, 0, 0, 0]), RET_ALLOW);
    }
    assert_eq!(call(libc::SYS_socket, [libc::AF_NETLINK as u64, 1, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_socket, [libc::AF_PACKET as u64, 1, 0, 0, 0, 0]), eperm);
    assert_eq!(call(libc::SYS_socket, [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]), eperm);
    for p in PERSONALITIES {
        assert_eq!(call(libc::SYS_personality, [*p, 0, 0, 0, 0, 0]), RET_ALLOW, "personality {p:#x}");
    }
    // READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, and a flag beside PER_LINUX.
    for p in [0x0040_0000u64, 0x0004_0000, 0x0040_0008] {
        assert_eq!(call(libc::SYS_personality, [p, 0, 0, 0, 0, 0]), eperm, "personality {p:#x}");
    }
    // A foreign architecture is killed whatever the call.
    for nr in [1, libc::SYS_clone3 as u32, libc::SYS_mount as u32] {
        assert_eq!(eval_stack(progs(), 0x4000_0003, nr, [0; 6]), RET_KILL_PROCESS);
    }
}

/// Every program, the x32 guard too, starts with seccompiler's architecture check: load
/// `arch`, compare with ours, kill on a mismatch.
#[test]
fn checks_the_architecture_first() {
    assert_eq!(progs().len(), if cfg!(target_arch = "x86_64") { 3 } else { 2 });
    assert_eq!(progs_of(true).len(), progs().len() + 1);
    for p in progs_of(true) {
        assert_eq!((p[0].code, p[0].k), (0x20, 4));
        assert_eq!((p[1].code, p[1].k, p[1].jt, p[1].jf), (0x15, AUDIT_ARCH, 1, 0));
        assert_eq!((p[2].code, p[2].k), (0x06, RET_KILL_PROCESS));
        assert!(p.len() < 4096);
    }
}

/// No call gets an answer other than `ALLOW` from two programs (the exec notification
/// included), so which answer wins never depends on the order of installation, and a
/// linked program may answer without asking the programs after it.
#[test]
fn answers_are_disjoint() {
    let mut nrs: Vec<u32> = (0..1024).collect();
    nrs.extend((0..1024).map(|n| 0x4000_0000 | n));
    for nr in nrs {
        for args in
            [[0; 6], [u64::MAX; 6], [libc::CLONE_NEWNS as u64, TIOCSTI, 0, 0, 0, 0], [1, NEW_LISTENER, 0, 0, 0, 0]]
        {
            let answers: Vec<u32> = progs_of(true).iter().map(|p| eval(p, AUDIT_ARCH, nr, args)).collect();
            let errnos = answers.iter().filter(|r| **r != RET_ALLOW).count();
            assert!(errnos <= 1, "nr {nr:#x}: {answers:x?}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_calls_fail_with_enosys() {
    let enosys = errno(libc::ENOSYS);
    let x32 = |n: u32| (X32_SYSCALL_BIT | n) as libc::c_long;
    // Every number with the x32 bit: the whole table (x32's own ioctl 514, ptrace 521,
    // kexec_load 528, process_vm_readv 539, ... included), the twins of the denied calls,
    // and beyond, with the top bit too.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u32
    };
    let mut nrs: Vec<u32> = (0..4096).collect();
    nrs.extend((0..4096).map(|_| rnd()));
    nrs.extend((0..64).map(|_| rnd() | 0x8000_0000));
    for n in nrs {
        assert_eq!(call(x32(n), [0; 6]), enosys, "x32 {n:#x}");
    }
    for (_, n) in DENIED {
        assert_eq!(call(x32(*n as u32), [0; 6]), enosys);
    }
    assert_eq!(call(x32(libc::SYS_clone as u32), [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]), enosys);
    assert_eq!(call(x32(libc::SYS_socket as u32), [libc::AF_NETLINK as u64, 0, 0, 0, 0, 0]), enosys);
    // And no native number is taken for one.
    for n in 0..4096 {
        let r = call(n, [0; 6]);
        assert!(r != enosys || n == libc::SYS_clone3, "native {n}: {r:#x}");
    }
}

/// The one linked filter that is installed answers every call as the programs stacked
/// one after the other would, with and without the exec notification: each system call
/// number of both arguments' sets, native, x32 and random, on our architecture and a
/// foreign one.
#[test]
fn the_linked_filter_answers_as_the_stack() {
    for supervised in [false, true] {
        let linked = build(supervised).unwrap().prog;
        let dispatch = dispatch(&denied_numbers(), &passed_on(supervised).unwrap()).unwrap();
        let parts = linked_programs(supervised).unwrap();
        assert_eq!(linked.len(), dispatch.len() + parts.iter().map(|(_, p)| p.len()).sum::<usize>());
        // Half as long as the programs whole: the calls denied outright are answered by the
        // dispatch.
        let whole: usize = progs_of(supervised).iter().map(|p| p.len()).sum();
        assert!(linked.len() < whole * 2 / 3, "{} instructions, the programs whole {whole}", linked.len());
        let mut nrs: Vec<u32> = (0..1024).collect();
        nrs.extend((0..1024).map(|n| 0x4000_0000 | n));
        nrs.extend([u32::MAX, 0x8000_0000, 0x7fff_ffff]);
        let mut argsets = vec![[0; 6], [u64::MAX; 6], [0, TIOCSTI, 0, 0, 0, 0], [0, TIOCLINUX | (1 << 32), 0, 0, 0, 0]];
        argsets.extend(CLONE_NS_FLAGS.iter().map(|f| [*f as u64 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]));
        argsets.extend(PERSONALITIES.iter().map(|p| [*p, 0, 0, 0, 0, 0]));
        argsets.extend([[0x0040_0000, 0, 0, 0, 0, 0], [libc::AF_NETLINK as u64, 0, 0, 0, 0, 0]]);
        argsets.extend(SOCKET_FAMILIES.iter().map(|f| [*f as u64, 1, 0, 0, 0, 0]));
        argsets.extend([[1, NEW_LISTENER, 0, 0, 0, 0], [1, NEW_LISTENER | 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]]);
        for arch in [AUDIT_ARCH, 0x4000_0003] {
            for &nr in &nrs {
                for args in &argsets {
                    assert_eq!(
                        eval(&linked, arch, nr, *args),
                        eval_stack(progs_of(supervised), arch, nr, *args),
                        "supervised {supervised}: nr {nr:#x} {args:x?}"
                    );
                }
            }
        }
    }
}

/// With the exec notification, `execve` and `execveat` wait for the supervisor and a
/// listener of the tree's own is refused; without it, they are allowed like any call
/// no rule names.
#[test]
fn the_exec_notification_is_linked_in_when_supervised() {
    let (plain, supervised) = (build(false).unwrap().prog, build(true).unwrap().prog);
    for nr in [libc::SYS_execve, libc::SYS_execveat] {
        assert_eq!(eval(&supervised, AUDIT_ARCH, nr as u32, [0; 6]), RET_USER_NOTIF);
        assert_eq!(eval(&plain, AUDIT_ARCH, nr as u32, [0; 6]), RET_ALLOW);
    }
    let listener = [1, NEW_LISTENER, 0, 0, 0, 0];
    assert_eq!(eval(&supervised, AUDIT_ARCH, libc::SYS_seccomp as u32, listener), errno(libc::EPERM));
    assert_eq!(eval(&supervised, AUDIT_ARCH, libc::SYS_seccomp as u32, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(eval(&plain, AUDIT_ARCH, libc::SYS_seccomp as u32, listener), RET_ALLOW);
    // The rules hold in both.
    for prog in [&plain, &supervised] {
        assert_eq!(eval(prog, AUDIT_ARCH, libc::SYS_mount as u32, [0; 6]), errno(libc::EPERM));
        assert_eq!(eval(prog, AUDIT_ARCH, libc::SYS_clone3 as u32, [0; 6]), errno(libc::ENOSYS));
    }
}

/// The real kernel agrees with the interpreter: a forked child installs the linked filter
/// (as [`install`] does) and reports what a few calls answer.
#[test]
fn kernel_answers() {
    let progs = vec![("linked", build(false).unwrap().prog)];
    let code = in_child(|| {
        for (_, p) in &progs {
            if seccompiler::apply_filter(p).is_err() {
                return 10;
            }
        }
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: clone3 with a null argument of size 0 fails before reading memory
        // (or is refused by the filter); the other calls take no pointers.
        unsafe {
            if libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) != -1 || errno() != libc::ENOSYS {
                return 11;
            }
            if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                return 12;
            }
            if libc::syscall(libc::SYS_socket, libc::AF_NETLINK, libc::SOCK_RAW, 0) != -1 || errno() != libc::EPERM {
                return 13;
            }
            let me = libc::getpid() as libc::c_long;
            if libc::syscall(libc::SYS_kcmp, me, me, 0 as libc::c_long, 1 as libc::c_long, 1 as libc::c_long) != -1
                || errno() != libc::EPERM
            {
                return 16;
            }
            if libc::syscall(libc::SYS_personality, 0x0040_0000 as libc::c_long) != -1 || errno() != libc::EPERM {
                return 17;
            }
            if libc::syscall(libc::SYS_personality, 0xffff_ffff as libc::c_long) == -1 {
                return 18;
            }
            if libc::syscall(libc::SYS_getppid) <= 0 {
                return 14;
            }
            #[cfg(target_arch = "x86_64")]
            if libc::syscall(X32_SYSCALL_BIT as libc::c_long | libc::SYS_getpid) != -1 || errno() != libc::ENOSYS {
                return 15;
            }
        }
        0
    });
    assert_eq!(code, 0);
}

/// The dispatch answers `EPERM` for every denied number, allows at once every number below
/// the x32 bit that no rule names, sends the others (and every higher one) on to the
/// programs, and kills a foreign architecture; it is a search (a few comparisons), not a
/// list.
#[test]
fn the_dispatch_denies_allows_and_passes_on() {
    const ON: u32 = 0x1234_5678; // past the end: "on to the programs"
    let (denied, on) = (denied_numbers(), passed_on(true).unwrap());
    assert!(denied.contains(&(libc::SYS_mount as u32)) && on.contains(&(libc::SYS_clone3 as u32)));
    assert!(on.contains(&(libc::SYS_ioctl as u32)) && on.contains(&(libc::SYS_execve as u32)));
    assert!(!denied.contains(&(libc::SYS_read as u32)) && !on.contains(&(libc::SYS_read as u32)));
    assert!(!passed_on(false).unwrap().contains(&(libc::SYS_execve as u32)));
    let mut d = dispatch(&denied, &on).unwrap();
    d.push(sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: ON });
    let mut nrs: Vec<u32> = (0..1024).collect();
    nrs.extend([DISPATCH_BELOW - 1, DISPATCH_BELOW, DISPATCH_BELOW | 39, u32::MAX]);
    for nr in nrs {
        let want = if denied.contains(&nr) {
            errno(libc::EPERM)
        } else if on.contains(&nr) || nr >= DISPATCH_BELOW {
            ON
        } else {
            RET_ALLOW
        };
        assert_eq!(eval(&d, AUDIT_ARCH, nr, [0; 6]), want, "nr {nr:#x}");
        assert_eq!(eval(&d, 0x4000_0003, nr, [0; 6]), RET_KILL_PROCESS, "nr {nr:#x}, i386");
    }
    // A number both denied and passed on is refused.
    assert!(dispatch(&[1, 2], &[2, 3]).is_err());
    // Instructions run for an allowed number: the architecture check, the bound, the search.
    let steps = |nr: u32| {
        let (mut pc, mut n) = (0usize, 0);
        while d[pc].code != (libc::BPF_RET | libc::BPF_K) as u16 {
            let taken = match d[pc].code {
                0x15 => nr == d[pc].k || (pc == 1 && AUDIT_ARCH == d[pc].k),
                0x35 => nr >= d[pc].k,
                _ => false,
            };
            pc += 1 + if d[pc].code == 0x20 {
                0
            } else if taken {
                d[pc].jt
            } else {
                d[pc].jf
            } as usize;
            n += 1;
        }
        n
    };
    let most = (0..512).filter(|nr| !denied.contains(nr) && !on.contains(nr)).map(steps).max().unwrap();
    assert!(most <= 5 + LEAF + 8, "{most} instructions for an allowed number");
}

/// The real kernel and the filter with the exec notification: installed with a listener
/// (as [`install_supervised`] does), a listener of the child's own is refused and the rules
/// hold; and where a listener is there already (an enclosing sandbox's), the filter of
/// the rules alone is installed instead, and the error names the refusal.
#[test]
fn kernel_answers_with_the_exec_notification() {
    prepare(true);
    prepare(false);
    let code = in_child(|| {
        // SAFETY: no_new_privs, as the install requires.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        let (applied, listener) = install_supervised();
        if applied.state != LayerState::Enforced || listener.is_err() {
            return 20;
        }
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: seccomp with a null program fails before reading it (or is refused by
        // the filter); unshare takes no pointer.
        unsafe {
            let own = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                std::ptr::null::<u8>(),
            );
            if own != -1 || errno() != libc::EPERM {
                return 21;
            }
            if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                return 22;
            }
        }
        // A second one: the kernel refuses its listener (one per process tree), and
        // the rules alone go in.
        let (applied, listener) = install_supervised();
        match listener {
            Err(e) if e.contains("refused") => {}
            _ => return 23,
        }
        if applied.state != LayerState::Enforced || applied.detail.contains("exec supervisor") {
            return 24;
        }
        0
    });
    assert_eq!(code, 0);
}

/// What installing the filter costs with the exec notification, each in a fresh forked
/// child, interleaved (`cargo test -p paddock-sandbox --release --lib seccomp_cost --
/// --ignored --nocapture`): the one filter installed now, against the layout before it
/// (the notification a filter of its own, then the rules, the calls denied outright among
/// them, behind a dispatch that passes every named number on). A measurement, not a
/// check.
#[test]
#[ignore]
fn seccomp_cost() {
    let now = build(true).unwrap().prog;
    let mut named: Vec<u32> = denied_numbers();
    named.extend(passed_on(false).unwrap());
    named.sort_unstable();
    let mut before = dispatch(&[], &named).unwrap();
    before.extend(link(&programs(false).unwrap()));
    let notification = crate::exec_notify::filter::program();
    let (now, before) = (to_libc(&now), to_libc(&before));
    let time = |progs: &[&[libc::sock_filter]]| -> u64 {
        let (r, w) = crate::stdio::pipe().unwrap();
        let mut copies: Vec<Vec<libc::sock_filter>> = progs.iter().map(|p| p.to_vec()).collect();
        // SAFETY: the child makes system calls only (no allocation: the programs were
        // copied before the fork) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: no_new_privs, as the install requires.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let t = crate::timing::now_ns();
            let (first, rest) = copies.split_first_mut().unwrap();
            let mut ok = crate::exec_notify::filter::install(first).is_ok();
            for p in rest {
                let fprog = libc::sock_fprog { len: p.len() as u16, filter: p.as_mut_ptr() };
                // SAFETY: `fprog` points to `p`, alive for the call.
                ok &= unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) } == 0;
            }
            let ns = if ok { crate::timing::now_ns() - t } else { u64::MAX };
            let _ = crate::sys::write_all(std::os::fd::AsRawFd::as_raw_fd(&w), &ns.to_le_bytes());
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        drop(w);
        let mut b = [0u8; 8];
        assert_eq!(crate::sys::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut b).unwrap(), 8);
        crate::sys::reap(pid);
        u64::from_le_bytes(b)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..400 {
        if i % 2 == 0 {
            a.push(time(&[&now]));
            b.push(time(&[&notification, &before]));
        } else {
            b.push(time(&[&notification, &before]));
            a.push(time(&[&now]));
        }
    }
    a.sort_unstable();
    b.sort_unstable();
    println!(
        "install, median of 400: one filter ({} instructions) {:.1} µs; before, the notification ({}) and the rules ({}) {:.1} µs",
        now.len(),
        a[200] as f64 / 1e3,
        notification.len(),
        before.len(),
        b[200] as f64 / 1e3
    );
}
