//! Step 8 of the order (in the target, after `no_new_privs`, before the descriptors are
//! closed): seccomp-BPF filters, compiled by the `seccompiler` crate from the rules below.
//!
//! A foreign architecture (e.g. i386 `int 0x80` on x86_64) kills the process; the calls in
//! [`DENIED`] fail with `EPERM` (ptrace, process_vm_*, kcmp, pidfd_getfd, io_uring_*, bpf,
//! perf_event_open, keyrings, module loading, the mount family, unshare/setns, on x86_64
//! modify_ldt, ...); `clone` with any
//! `CLONE_NEW*` flag fails with `EPERM`; `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` fail with
//! `EPERM` (only the low 32 bits of the request count, as in the kernel); `personality`
//! with a value other than those in [`PERSONALITIES`] fails with `EPERM`; `socket` with a
//! family other than `AF_UNIX`, `AF_INET`, `AF_INET6` fails with `EPERM`; `clone3` fails with
//! `ENOSYS` (its flags live in memory the filter cannot read, so libc falls back to
//! `clone`); x32 system calls (x86_64 numbers with bit 30 set, which would otherwise reach
//! the same kernel code under numbers no rule names) fail with `ENOSYS`. Everything else is
//! allowed.
//!
//! A seccompiler filter has one action for the calls its rules match and one for the rest,
//! so the rules make two programs: the `EPERM` one and the `clone3` `ENOSYS` one.
//! seccompiler compares system call numbers for equality only, so on x86_64 a third
//! program, the x32 guard, tests the x32 bit itself: seven straight-line instructions
//! written out here, the only hand-written BPF (naming every x32 number in a seccompiler
//! filter instead takes some 2,750 instructions, about 2 ms at each installation and 1 µs
//! on each call that runs the filters). Every program checks the architecture first and
//! kills the process on a foreign one.
//!
//! The programs are linked into one filter ([`link`]) that answers as the kernel would for
//! them installed one after the other (it runs the filters newest first and keeps the most
//! restrictive action; between two `ERRNO` answers the newest wins): the x32 guard runs
//! first, then the `clone3` program, then the `EPERM` one, each `ALLOW` but the last a jump
//! to the next program. No two programs answer `ERRNO` for the same call (a test checks
//! it, and another that the linked filter answers as the stack for every number), so
//! `clone3` and x32 calls answer `ENOSYS` whatever is added to [`DENIED`]. One filter
//! rather than three: the kernel builds its action cache and JIT image once. The kernel's
//! action cache lets the calls that the filter allows whatever their arguments (`read`,
//! `write`, ...) skip it altogether.
//!
//! In front of the linked programs, a [`dispatch`] (hand-written too, generated from the
//! numbers the rules name): a binary search that allows at once every number no rule
//! names, which is what the programs answer for it, and sends the named ones (and every
//! x32 one) on to them. The kernel builds the action cache by running the filter for each
//! system call number, and the seccompiler program compares a number with every named one
//! in turn: with the search first, installing the filter takes about half as long (0.19
//! → 0.09 ms, `seccomp_cost` in the tests), and what it answers is unchanged (a test
//! compares it with the programs stacked for every number).

use std::collections::BTreeMap;

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
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `AUDIT_ARCH_AARCH64`: `EM_AARCH64` (183), 64-bit, little-endian.
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// Numbers at or above this always go on past the [`dispatch`] (on x86_64 the x32 bit:
/// every x32 call; on any architecture, numbers no table has).
const DISPATCH_BELOW: u32 = 0x4000_0000;

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

/// The `personality` values that stay allowed (as Docker's default profile): `PER_LINUX`,
/// `PER_LINUX32`, `UNAME26` alone or with `PER_LINUX32`, and the query `0xffffffff`. Any
/// other (`READ_IMPLIES_EXEC`, `ADDR_NO_RANDOMIZE`, ...) fails with `EPERM`: no tool call
/// needs its readable mappings executable or its layout fixed.
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

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

/// The rules of the filter that fails with `EPERM`, by system call number.
fn eperm_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
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
    let other_persona: Vec<_> = PERSONALITIES.iter().map(|p| (0, SeccompCmpOp::Ne, *p)).collect();
    rules.insert(libc::SYS_personality, vec![rule(&other_persona)?]);
    Ok(rules)
}

/// The rules of the filter that fails with `ENOSYS`: `clone3`.
fn clone3_rules() -> BTreeMap<i64, Vec<SeccompRule>> {
    BTreeMap::from([(libc::SYS_clone3, Vec::new())])
}

/// The system call numbers a rule of either seccompiler filter names, ascending: every
/// other number (below the x32 bit) both filters allow whatever its arguments.
fn named() -> Result<Vec<u32>, BackendError> {
    let mut nrs: Vec<u32> = eperm_rules()?.keys().chain(clone3_rules().keys()).map(|nr| *nr as u32).collect();
    nrs.sort_unstable();
    nrs.dedup();
    Ok(nrs)
}

/// The filter whose rules fail with `EPERM`.
fn eperm_filter() -> Result<SeccompFilter, BackendError> {
    SeccompFilter::new(eperm_rules()?, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), ARCH)
}

/// The filter whose rule fails with `ENOSYS`: `clone3`.
fn clone3_filter() -> Result<SeccompFilter, BackendError> {
    SeccompFilter::new(clone3_rules(), SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), ARCH)
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
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 1, 0, AUDIT_ARCH),
        ins(ret, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(ld, 0, 0, at(std::mem::offset_of!(libc::seccomp_data, nr))),
        // x32 bit set: ENOSYS, else allow.
        ins(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 0, 1, X32_SYSCALL_BIT),
        ins(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Where a [`dispatch`] instruction jumps: to the next one, to one of its own, or past
/// its end (on to the programs).
#[derive(Clone, Copy)]
enum To {
    Next,
    At(usize),
    End,
}

/// A classic-BPF instruction whose jumps are not resolved yet.
struct Ins {
    code: u32,
    jt: To,
    jf: To,
    k: u32,
}

/// Numbers compared one by one at a leaf of the [`dispatch`]'s search.
const LEAF: usize = 4;

/// The search of [`dispatch`] over `keys` (ascending): a key jumps past the end, a number
/// between keys returns `ALLOW`.
fn search(keys: &[u32], out: &mut Vec<Ins>) {
    let jmp = |op: u32, k: u32, jt: To| Ins { code: libc::BPF_JMP | op | libc::BPF_K, jt, jf: To::Next, k };
    if keys.len() <= LEAF {
        out.extend(keys.iter().map(|k| jmp(libc::BPF_JEQ, *k, To::End)));
        out.push(Ins { code: libc::BPF_RET | libc::BPF_K, jt: To::Next, jf: To::Next, k: libc::SECCOMP_RET_ALLOW });
        return;
    }
    let (low, high) = keys.split_at(keys.len() / 2);
    let at = out.len();
    out.push(jmp(libc::BPF_JGE, high[0], To::Next));
    search(low, out);
    out[at].jt = To::At(out.len());
    search(high, out);
}

/// The dispatch that the linked filter begins with: a binary search over `named` (the
/// numbers some rule names, ascending). A foreign architecture is killed, as every program
/// does first; a number that no rule names, below [`DISPATCH_BELOW`], is allowed at once,
/// which is what the programs answer for it; any other number goes on to them. Why: the
/// kernel builds a filter's action cache by running it for every number of the
/// architecture, and the seccompiler program compares the number with each named one in
/// turn (some 300 instructions for an allowed number); with the search first, about ten.
fn dispatch(named: &[u32]) -> Result<BpfProgram, String> {
    let ld =
        |k: usize| Ins { code: libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, jt: To::Next, jf: To::Next, k: k as u32 };
    let mut out = vec![
        ld(std::mem::offset_of!(libc::seccomp_data, arch)),
        Ins { code: libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, jt: To::At(3), jf: To::Next, k: AUDIT_ARCH },
        Ins { code: libc::BPF_RET | libc::BPF_K, jt: To::Next, jf: To::Next, k: libc::SECCOMP_RET_KILL_PROCESS },
        ld(std::mem::offset_of!(libc::seccomp_data, nr)),
        Ins { code: libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, jt: To::End, jf: To::Next, k: DISPATCH_BELOW },
    ];
    search(named, &mut out);
    let end = out.len();
    let offset = |pc: usize, to: To| -> Result<u8, String> {
        let target = match to {
            To::Next => return Ok(0),
            To::At(t) => t,
            To::End => end,
        };
        u8::try_from(target - pc - 1).map_err(|_| format!("the dispatch's jump from {pc} to {target} is too long"))
    };
    out.iter()
        .enumerate()
        .map(|(pc, i)| Ok(sock_filter { code: i.code as u16, jt: offset(pc, i.jt)?, jf: offset(pc, i.jf)?, k: i.k }))
        .collect()
}

/// The filter programs with their names, in the order of installation.
pub(crate) fn programs() -> Result<Vec<(&'static str, BpfProgram)>, BackendError> {
    let mut progs = vec![("EPERM", eperm_filter()?.try_into()?), ("clone3 ENOSYS", clone3_filter()?.try_into()?)];
    #[cfg(target_arch = "x86_64")]
    progs.push(("x32 guard", x32_guard()));
    Ok(progs)
}

/// Links `progs` (in the order of installation) into one program that answers as the
/// kernel answers for them installed one after the other, given that no two of them answer
/// `ERRNO` for the same call and all begin with the same architecture check (both tested):
/// the programs run newest first, and a program's `ALLOW` becomes a jump to the start of
/// the next one, its other answers stay answers. One filter instead of three: the kernel
/// builds its per-filter action cache (every system call number of both architectures run
/// through the filter) and JIT image once, about 0.2 ms less at each start.
fn link(progs: &[(&'static str, BpfProgram)]) -> BpfProgram {
    let allow = libc::SECCOMP_RET_ALLOW;
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut out: BpfProgram = Vec::new();
    let newest_first: Vec<&BpfProgram> = progs.iter().rev().map(|(_, p)| p).collect();
    for (n, prog) in newest_first.iter().enumerate() {
        let last = n + 1 == newest_first.len();
        for (i, ins) in prog.iter().enumerate() {
            let ins = if !last && ins.code == ret_k && ins.k == allow {
                // To the first instruction after this program.
                sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                    jt: 0,
                    jf: 0,
                    k: (prog.len() - 1 - i) as u32,
                }
            } else {
                sock_filter { code: ins.code, jt: ins.jt, jf: ins.jf, k: ins.k }
            };
            out.push(ins);
        }
    }
    out
}

/// The filter installed: the programs linked ([`link`]), and their names and sizes.
struct Linked {
    prog: BpfProgram,
    parts: Vec<(&'static str, usize)>,
}

/// The linked filter, once per process: the zygote compiles it before its first fork, so
/// every call it starts installs it without compiling again.
static COMPILED: std::sync::OnceLock<Result<Linked, String>> = std::sync::OnceLock::new();

/// Compiles the filter now (idempotent). Called by the zygote at start.
pub(crate) fn prepare() {
    let _ = compiled();
}

fn compiled() -> &'static Result<Linked, String> {
    COMPILED.get_or_init(build)
}

/// The filter: the [`dispatch`], then the [`programs`] linked.
fn build() -> Result<Linked, String> {
    let progs = programs().map_err(|e| e.to_string())?;
    let mut prog = dispatch(&named().map_err(|e| e.to_string())?)?;
    let mut parts: Vec<(&'static str, usize)> = vec![("number dispatch", prog.len())];
    parts.extend(progs.iter().rev().map(|(n, p)| (*n, p.len())));
    prog.extend(link(&progs));
    // BPF_MAXINSNS: the kernel refuses a longer program.
    if prog.len() > 4096 {
        return Err(format!("the filter has {} instructions (at most 4096)", prog.len()));
    }
    Ok(Linked { prog, parts })
}

/// Installs the filter (no_new_privs must already be set); returns the layer state and
/// detail.
pub(crate) fn install() -> Applied {
    let linked = match compiled() {
        Ok(l) => l,
        Err(e) => return Applied::new(LayerState::Unavailable, format!("seccomp filter not built: {e}")),
    };
    if let Err(e) = seccompiler::apply_filter(&linked.prog) {
        return Applied::new(LayerState::Unavailable, format!("seccomp filter refused: {e}"));
    }
    let parts: Vec<String> = linked.parts.iter().map(|(n, len)| format!("{n} {len}")).collect();
    Applied::new(
        LayerState::Enforced,
        format!(
            "one seccomp filter of {} instructions, linked from {} (by seccompiler{}): {} calls denied, namespace clone flags, TIOCSTI/TIOCLINUX, personality flags, socket families other than unix/inet/inet6 (EPERM); clone3{} (ENOSYS)",
            linked.prog.len(),
            parts.join(" + "),
            if cfg!(target_arch = "x86_64") { ", the x32 guard written out" } else { "" },
            DENIED.len(),
            if cfg!(target_arch = "x86_64") { " and x32 calls" } else { "" },
        ),
    )
}

#[cfg(test)]
mod tests;
