//! Step 8 of the order (in the target, after `no_new_privs`, before the descriptors are
//! closed): seccomp-BPF filters, compiled by the `seccompiler` crate from the rules below.
//!
//! A foreign architecture (e.g. i386 `int 0x80` on x86_64) kills the process; the calls in
//! [`DENIED`] fail with `EPERM` (ptrace, process_vm_*, kcmp, pidfd_getfd, io_uring_*, bpf,
//! perf_event_open, keyrings, module loading, the mount family, unshare/setns, on x86_64
//! modify_ldt, ...); `clone` with any
//! `CLONE_NEW*` flag fails with `EPERM`; `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` fail with
//! `EPERM` (only the low 32 bits of the request count, as in the kernel); `socket` with a
//! family other than `AF_UNIX`, `AF_INET`, `AF_INET6` fails with `EPERM`; `clone3` fails with
//! `ENOSYS` (its flags live in memory the filter cannot read, so libc falls back to
//! `clone`); x32 system calls (x86_64 numbers with bit 30 set, which would otherwise reach
//! the same kernel code under numbers no rule names) fail with `ENOSYS`. Everything else is
//! allowed.
//!
//! A seccompiler filter has one action for the calls its rules match and one for the rest,
//! so the rules make two filters, installed one after the other: the `EPERM` filter, then
//! the `clone3` `ENOSYS` filter. seccompiler compares system call numbers for equality only,
//! so on x86_64 a third filter, the x32 guard, tests the x32 bit itself: seven
//! straight-line instructions written out here, the only hand-written BPF (naming every
//! x32 number in a seccompiler filter instead takes some 2,750 instructions, about 2 ms at
//! each installation and 1 µs on each call that runs the filters). Every filter checks the
//! architecture first and kills the process on a foreign one.
//!
//! The kernel runs every installed filter on every call and keeps the most restrictive
//! action; between two `ERRNO` answers the filter installed last wins (the kernel walks the
//! filters newest first and replaces its answer only with a strictly lower action). The
//! filters answer `ERRNO` for disjoint calls, and the `ENOSYS` ones go last, so `clone3` and
//! x32 calls answer `ENOSYS` whatever is added to [`DENIED`]. The kernel's action cache lets
//! the calls that every filter allows whatever their arguments (`read`, `write`, ...) skip
//! the filters altogether.

use std::collections::BTreeMap;

#[cfg(target_arch = "x86_64")]
use seccompiler::sock_filter;
use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::layer::{Applied, LayerState};

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// The x32 ABI's marker bit in an x86_64 system call number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_X86_64`: `EM_X86_64` (62), 64-bit, little-endian.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// `open_tree_attr(2)` (Linux 6.15), the same number on every architecture.
const SYS_OPEN_TREE_ATTR: libc::c_long = 467;

/// System calls that fail with `EPERM`.
pub(crate) const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    // Compares kernel objects of other processes (an oracle on their descriptors and memory).
    ("kcmp", libc::SYS_kcmp),
    // Copies a descriptor out of another process.
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    // Code segments of one's own making: an old route into kernel bugs, which no tool needs.
    #[cfg(target_arch = "x86_64")]
    ("modify_ldt", libc::SYS_modify_ldt),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("open_tree_attr", SYS_OPEN_TREE_ATTR),
    ("fsopen", libc::SYS_fsopen),
    ("fsmount", libc::SYS_fsmount),
    ("fsconfig", libc::SYS_fsconfig),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
];

/// The namespace flags of `clone`; any one of them makes the call fail.
const CLONE_NS_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The socket families that stay allowed.
const SOCKET_FAMILIES: &[libc::c_int] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// A rule whose conditions `(argument, operator, value)` must all hold, each on the low 32
/// bits of the argument (all the arguments tested here are `int`, or compared by the kernel
/// as 32 bits).
fn rule(conditions: &[(u8, SeccompCmpOp, u64)]) -> Result<SeccompRule, BackendError> {
    let conditions = conditions
        .iter()
        .map(|(arg, op, value)| SeccompCondition::new(*arg, SeccompCmpArgLen::Dword, op.clone(), *value))
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions)
}

/// The filter whose rules fail with `EPERM`.
fn eperm_filter() -> Result<SeccompFilter, BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    // clone: the flags are argument 0 on x86_64 and aarch64; one rule per flag, any matches.
    let clone = CLONE_NS_FLAGS
        .iter()
        .map(|f| rule(&[(0, SeccompCmpOp::MaskedEq(*f as u64), *f as u64)]))
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_clone, clone);
    let ioctl =
        [TIOCSTI, TIOCLINUX].iter().map(|req| rule(&[(1, SeccompCmpOp::Eq, *req)])).collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl);
    let other_family: Vec<_> = SOCKET_FAMILIES.iter().map(|f| (0, SeccompCmpOp::Ne, *f as u64)).collect();
    rules.insert(libc::SYS_socket, vec![rule(&other_family)?]);
    SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), ARCH)
}

/// The filter whose rule fails with `ENOSYS`: `clone3`.
fn clone3_filter() -> Result<SeccompFilter, BackendError> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), ARCH)
}

/// The x32 guard: any call whose number has [`X32_SYSCALL_BIT`] fails with `ENOSYS` (x32
/// calls reach the same kernel code as x86_64 ones under other numbers, which no rule of
/// the other filters names). seccompiler has no bit test on the number, hence these seven
/// instructions, which begin with the architecture check seccompiler emits.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    let ins = |code: u32, jt: u8, jf: u8, k: u32| sock_filter { code: code as u16, jt, jf, k };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let at = |off: usize| off as u32;
    vec![
        ins(ld, 0, 0, at(std::mem::offset_of!(libc::seccomp_data, arch))),
        // x86_64: skip the kill.
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(ret, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(ld, 0, 0, at(std::mem::offset_of!(libc::seccomp_data, nr))),
        // x32 bit set: ENOSYS, else allow.
        ins(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 0, 1, X32_SYSCALL_BIT),
        ins(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The filter programs with their names, in the order of installation.
pub(crate) fn programs() -> Result<Vec<(&'static str, BpfProgram)>, BackendError> {
    let mut progs = vec![("EPERM", eperm_filter()?.try_into()?), ("clone3 ENOSYS", clone3_filter()?.try_into()?)];
    #[cfg(target_arch = "x86_64")]
    progs.push(("x32 guard", x32_guard()));
    Ok(progs)
}

/// The compiled filters, once per process: the zygote compiles them before its first
/// fork, so every call it starts installs them without compiling again.
static COMPILED: std::sync::OnceLock<Result<Vec<(&'static str, BpfProgram)>, String>> = std::sync::OnceLock::new();

/// Compiles the filters now (idempotent). Called by the zygote at start.
pub(crate) fn prepare() {
    let _ = compiled();
}

fn compiled() -> &'static Result<Vec<(&'static str, BpfProgram)>, String> {
    COMPILED.get_or_init(|| programs().map_err(|e| e.to_string()))
}

/// Installs the filters (no_new_privs must already be set); returns the layer state and
/// detail.
pub(crate) fn install() -> Applied {
    let progs = match compiled() {
        Ok(p) => p,
        Err(e) => return Applied::new(LayerState::Unavailable, format!("seccomp filter not built: {e}")),
    };
    for (i, (name, prog)) in progs.iter().enumerate() {
        if let Err(e) = seccompiler::apply_filter(prog) {
            // Without the later filters, clone3 (namespace flags the first cannot see) or x32
            // calls get through: not a layer a strict run may count on.
            let done: Vec<&str> = progs[..i].iter().map(|(n, _)| *n).collect();
            return Applied::new(
                LayerState::Unavailable,
                format!("seccomp {name} filter refused: {e} (installed before it: {done:?})"),
            );
        }
    }
    let sizes: Vec<String> = progs.iter().map(|(_, p)| p.len().to_string()).collect();
    let names: Vec<&str> = progs.iter().map(|(n, _)| *n).collect();
    Applied::new(
        LayerState::Enforced,
        format!(
            "{} seccomp filters, {} instructions ({}; by seccompiler{}): {} calls denied, namespace clone flags, TIOCSTI/TIOCLINUX, socket families other than unix/inet/inet6 (EPERM); clone3{} (ENOSYS)",
            progs.len(),
            sizes.join(" + "),
            names.join(" + "),
            if cfg!(target_arch = "x86_64") { ", the x32 guard written out" } else { "" },
            DENIED.len(),
            if cfg!(target_arch = "x86_64") { " and x32 calls" } else { "" },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// The programs in the order of installation.
    fn progs() -> &'static [BpfProgram] {
        static PROGS: std::sync::OnceLock<Vec<BpfProgram>> = std::sync::OnceLock::new();
        PROGS.get_or_init(|| programs().unwrap().into_iter().map(|(_, p)| p).collect())
    }

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
        for p in progs() {
            assert_eq!((p[0].code, p[0].k), (0x20, 4));
            assert_eq!((p[1].code, p[1].k, p[1].jt, p[1].jf), (0x15, AUDIT_ARCH, 1, 0));
            assert_eq!((p[2].code, p[2].k), (0x06, RET_KILL_PROCESS));
            assert!(p.len() < 4096);
        }
    }

    /// No call gets `ERRNO` from two filters, so which errno wins never depends on the order
    /// of installation.
    #[test]
    fn errno_answers_are_disjoint() {
        let mut nrs: Vec<u32> = (0..1024).collect();
        nrs.extend((0..1024).map(|n| 0x4000_0000 | n));
        for nr in nrs {
            for args in [[0; 6], [u64::MAX; 6], [libc::CLONE_NEWNS as u64, TIOCSTI, 0, 0, 0, 0]] {
                let answers: Vec<u32> = progs().iter().map(|p| eval(p, AUDIT_ARCH, nr, args)).collect();
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

    /// The real kernel agrees with the interpreter: a forked child installs the filters and
    /// reports what a few calls answer.
    #[test]
    fn kernel_answers() {
        let progs = programs().unwrap();
        // SAFETY: the child makes only system calls (no allocation, no locks: the programs
        // were built before the fork) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                for (_, p) in &progs {
                    if seccompiler::apply_filter(p).is_err() {
                        return 10;
                    }
                }
                let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                // SAFETY: clone3 with a null argument of size 0 fails before reading memory
                // (or is refused by the filter); the other calls take no pointers.
                unsafe {
                    if libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) != -1 || errno() != libc::ENOSYS
                    {
                        return 11;
                    }
                    if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                        return 12;
                    }
                    if libc::syscall(libc::SYS_socket, libc::AF_NETLINK, libc::SOCK_RAW, 0) != -1
                        || errno() != libc::EPERM
                    {
                        return 13;
                    }
                    let me = libc::getpid() as libc::c_long;
                    if libc::syscall(libc::SYS_kcmp, me, me, 0 as libc::c_long, 1 as libc::c_long, 1 as libc::c_long)
                        != -1
                        || errno() != libc::EPERM
                    {
                        return 16;
                    }
                    if libc::syscall(libc::SYS_getppid) <= 0 {
                        return 14;
                    }
                    #[cfg(target_arch = "x86_64")]
                    if libc::syscall(X32_SYSCALL_BIT as libc::c_long | libc::SYS_getpid) != -1
                        || errno() != libc::ENOSYS
                    {
                        return 15;
                    }
                }
                0
            })();
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
