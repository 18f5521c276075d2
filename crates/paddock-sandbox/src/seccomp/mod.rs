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
//! written out here (naming every x32 number in a seccompiler filter instead takes some
//! 2,750 instructions, about 2 ms at each installation and 1 µs on each call that runs the
//! filters). Where the tree's execs are supervised, a fourth: the exec notification
//! ([`crate::exec_notify`]'s twelve instructions, `execve`/`execveat` wait for the
//! supervisor). Every program checks the architecture first and kills the process on a
//! foreign one.
//!
//! The programs are linked into one filter ([`link`]) that answers as the kernel would for
//! them installed one after the other (it runs the filters newest first and keeps the most
//! restrictive action; between two `ERRNO` answers the newest wins): the x32 guard runs
//! first, then the `clone3` program, then the `EPERM` one, then the exec notification, each
//! `ALLOW` but the last a jump to the next program. No call gets an answer other than
//! `ALLOW` from two programs (a test checks it, and another that the linked filter answers
//! as the stack for every number, with and without the notification), so `clone3` and x32
//! calls answer `ENOSYS` whatever is added to [`DENIED`]. One filter rather than four: the
//! kernel translates the filter, builds its action cache and compiles its JIT image once
//! (about 0.05 ms a filter, whatever its length), and installs the exec notification's
//! listener with it ([`install_supervised`]). The kernel's action cache lets the calls that
//! the filter allows whatever their arguments (`read`, `write`, ...) skip it altogether.
//!
//! In front of the linked programs, a [`dispatch`] (written out too, generated from the
//! numbers the rules name): a binary search that answers `EPERM` at once for every call of
//! [`DENIED`] (what the `EPERM` program answers for it whatever its arguments, so that
//! program keeps only the rules on arguments), allows at once every number no rule names
//! (what the programs answer for it), and sends the rest (and every x32 one) on to the
//! programs. The kernel builds the action cache by running the filter for each system call
//! number, and a seccompiler program compares a number with every named one in turn; and
//! the kernel's translation and JIT of a filter go with its length. With the search first
//! and the outright denials in it, the filter is 199 instructions instead of 386 (the
//! notification a filter of its own before), and installing it takes 83–114 µs instead of
//! 147–195 µs (`seccomp_cost` in the tests); what it answers is unchanged (a test compares
//! it with the programs stacked for every number).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

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

/// The `EPERM` rules that look at arguments: `clone`, `ioctl`, `socket`, `personality`.
fn argument_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
    let mut rules = BTreeMap::new();
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

/// The numbers of [`DENIED`], ascending: the [`dispatch`] answers them itself.
fn denied_numbers() -> Vec<u32> {
    let mut nrs: Vec<u32> = DENIED.iter().map(|(_, nr)| *nr as u32).collect();
    nrs.sort_unstable();
    nrs.dedup();
    nrs
}

/// The numbers the [`dispatch`] sends on to the linked programs, ascending: those whose
/// answer depends on their arguments or is not `EPERM` (`clone3`), and, with the exec
/// notification, `execve`, `execveat` and `seccomp`. Every other number below the x32 bit
/// every program allows whatever its arguments, or answers `EPERM` whatever they are.
fn passed_on(supervised: bool) -> Result<Vec<u32>, BackendError> {
    let mut nrs: Vec<u32> = argument_rules()?.keys().chain(clone3_rules().keys()).map(|nr| *nr as u32).collect();
    if supervised {
        nrs.extend(crate::exec_notify::filter::NOTIFIED.iter().map(|nr| *nr as u32));
    }
    nrs.sort_unstable();
    nrs.dedup();
    Ok(nrs)
}

/// A seccompiler filter of `rules`: `action` for a call a rule matches, else allowed.
fn filter(rules: BTreeMap<i64, Vec<SeccompRule>>, action: SeccompAction) -> Result<BpfProgram, BackendError> {
    SeccompFilter::new(rules, SeccompAction::Allow, action, ARCH)?.try_into()
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

/// The exec notification ([`crate::exec_notify`]) as a program to link: `execve` and
/// `execveat` wait for the supervisor, a listener of the tree's own is refused.
fn notification() -> BpfProgram {
    crate::exec_notify::filter::program()
        .into_iter()
        .map(|f| sock_filter { code: f.code, jt: f.jt, jf: f.jf, k: f.k })
        .collect()
}

/// Where a [`dispatch`] instruction jumps: to the next one, to one of its own, to its
/// `EPERM` answer, or past its end (on to the programs).
#[derive(Clone, Copy)]
enum To {
    Next,
    At(usize),
    Deny,
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

/// The search of [`dispatch`] over `keys` (ascending, each with where it jumps: past the
/// end or to the `EPERM` answer); a number between keys returns `ALLOW`.
fn search(keys: &[(u32, To)], out: &mut Vec<Ins>) {
    let jmp = |op: u32, k: u32, jt: To| Ins { code: libc::BPF_JMP | op | libc::BPF_K, jt, jf: To::Next, k };
    if keys.len() <= LEAF {
        out.extend(keys.iter().map(|(k, to)| jmp(libc::BPF_JEQ, *k, *to)));
        out.push(Ins { code: libc::BPF_RET | libc::BPF_K, jt: To::Next, jf: To::Next, k: libc::SECCOMP_RET_ALLOW });
        return;
    }
    let (low, high) = keys.split_at(keys.len() / 2);
    let at = out.len();
    out.push(jmp(libc::BPF_JGE, high[0].0, To::Next));
    search(low, out);
    out[at].jt = To::At(out.len());
    search(high, out);
}

/// The dispatch that the linked filter begins with: a binary search over `denied` (the
/// numbers of [`DENIED`]) and `on` (those [`passed_on`]), both ascending. A foreign
/// architecture is killed, as every program does first; a denied number fails with `EPERM`
/// here, which is what the programs answer for it whatever its arguments; a number that
/// is in neither list, below [`DISPATCH_BELOW`], is allowed at once, which is what the
/// programs answer for it; any other number goes on to them. Why: the kernel builds a
/// filter's action cache by running it for every number of the architecture, and a
/// seccompiler program compares the number with each named one in turn (some 300
/// instructions for an allowed number); with the search first, about ten. And a call
/// denied outright costs one comparison here instead of a rule of its own in the program
/// after it: the filter is about half as long, and the kernel's work to install it (its
/// translation and JIT) goes with its length.
fn dispatch(denied: &[u32], on: &[u32]) -> Result<BpfProgram, String> {
    let ld =
        |k: usize| Ins { code: libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, jt: To::Next, jf: To::Next, k: k as u32 };
    let mut out = vec![
        ld(std::mem::offset_of!(libc::seccomp_data, arch)),
        Ins { code: libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, jt: To::At(3), jf: To::Next, k: AUDIT_ARCH },
        Ins { code: libc::BPF_RET | libc::BPF_K, jt: To::Next, jf: To::Next, k: libc::SECCOMP_RET_KILL_PROCESS },
        ld(std::mem::offset_of!(libc::seccomp_data, nr)),
        Ins { code: libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, jt: To::End, jf: To::Next, k: DISPATCH_BELOW },
    ];
    let mut keys: Vec<(u32, To)> =
        denied.iter().map(|k| (*k, To::Deny)).chain(on.iter().map(|k| (*k, To::End))).collect();
    keys.sort_unstable_by_key(|(k, _)| *k);
    if keys.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("a system call number is both denied outright and passed on".into());
    }
    search(&keys, &mut out);
    // The answer of the denied numbers, last: the programs begin right after it.
    let deny = out.len();
    out.push(Ins {
        code: libc::BPF_RET | libc::BPF_K,
        jt: To::Next,
        jf: To::Next,
        k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
    });
    let end = out.len();
    let offset = |pc: usize, to: To| -> Result<u8, String> {
        let target = match to {
            To::Next => return Ok(0),
            To::At(t) => t,
            To::Deny => deny,
            To::End => end,
        };
        u8::try_from(target - pc - 1).map_err(|_| format!("the dispatch's jump from {pc} to {target} is too long"))
    };
    out.iter()
        .enumerate()
        .map(|(pc, i)| Ok(sock_filter { code: i.code as u16, jt: offset(pc, i.jt)?, jf: offset(pc, i.jf)?, k: i.k }))
        .collect()
}

/// The programs linked behind the [`dispatch`], in the order of installation: with
/// `supervised`, the exec notification first (as when it was a filter of its own installed
/// before them); the `EPERM` one has only the argument rules (the dispatch answers the calls
/// denied outright). The tests compare the linked filter with the programs whole.
fn linked_programs(supervised: bool) -> Result<Vec<(&'static str, BpfProgram)>, BackendError> {
    stack(supervised, ("EPERM by argument", filter(argument_rules()?, SeccompAction::Errno(libc::EPERM as u32))?))
}

/// The programs in the order of installation, with `eperm` as the `EPERM` one.
fn stack(supervised: bool, eperm: (&'static str, BpfProgram)) -> Result<Vec<(&'static str, BpfProgram)>, BackendError> {
    let mut progs = Vec::new();
    if supervised {
        progs.push(("exec notification", notification()));
    }
    progs.push(eperm);
    progs.push(("clone3 ENOSYS", filter(clone3_rules(), SeccompAction::Errno(libc::ENOSYS as u32))?));
    #[cfg(target_arch = "x86_64")]
    progs.push(("x32 guard", x32_guard()));
    Ok(progs)
}

/// Links `progs` (in the order of installation) into one program that answers as the
/// kernel answers for them installed one after the other, given that no call gets an
/// answer other than `ALLOW` from two of them and all begin with the same architecture
/// check (both tested): the programs run newest first, and a program's `ALLOW` becomes a
/// jump to the start of the next one, its other answers stay answers. One filter instead
/// of four: the kernel builds its per-filter action cache (every system call number of
/// both architectures run through the filter) and JIT image once, about 0.05 ms less for
/// each filter at each start.
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

/// A filter to install: the programs linked ([`link`]) behind the [`dispatch`], and the
/// names and sizes of its parts.
struct Linked {
    prog: BpfProgram,
    /// `prog` in the kernel's own type, which the install with a listener takes (converted
    /// once, when compiled, not at every install).
    raw: Vec<libc::sock_filter>,
    parts: Vec<(&'static str, usize)>,
}

/// `prog` in the kernel's type (seccompiler's `sock_filter` is a type of its own).
fn to_libc(prog: &[sock_filter]) -> Vec<libc::sock_filter> {
    prog.iter().map(|f| libc::sock_filter { code: f.code, jt: f.jt, jf: f.jf, k: f.k }).collect()
}

/// The filters, each compiled once per process when first needed: the rules alone, and
/// the rules with the exec notification. The zygote and a run's helper compile the one
/// their calls install before they fork, so no call compiles it again.
static PLAIN: std::sync::OnceLock<Result<Linked, String>> = std::sync::OnceLock::new();
static SUPERVISED: std::sync::OnceLock<Result<Linked, String>> = std::sync::OnceLock::new();

/// Compiles the filter with the exec notification when `supervised`, else the rules alone,
/// now (idempotent).
pub(crate) fn prepare(supervised: bool) {
    let _ = compiled(supervised);
}

fn compiled(supervised: bool) -> &'static Result<Linked, String> {
    if supervised {
        SUPERVISED.get_or_init(|| build(true))
    } else {
        PLAIN.get_or_init(|| build(false))
    }
}

/// The filter: the [`dispatch`], then the [`linked_programs`].
fn build(supervised: bool) -> Result<Linked, String> {
    let progs = linked_programs(supervised).map_err(|e| e.to_string())?;
    let mut prog = dispatch(&denied_numbers(), &passed_on(supervised).map_err(|e| e.to_string())?)?;
    let mut parts: Vec<(&'static str, usize)> = vec![("number dispatch", prog.len())];
    parts.extend(progs.iter().rev().map(|(n, p)| (*n, p.len())));
    prog.extend(link(&progs));
    // BPF_MAXINSNS: the kernel refuses a longer program.
    if prog.len() > 4096 {
        return Err(format!("the filter has {} instructions (at most 4096)", prog.len()));
    }
    Ok(Linked { raw: to_libc(&prog), prog, parts })
}

/// Installs the filter of the rules alone (no_new_privs must already be set); returns the
/// layer state and detail.
pub(crate) fn install() -> Applied {
    let linked = match compiled(false) {
        Ok(l) => l,
        Err(e) => return Applied::new(LayerState::Unavailable, format!("seccomp filter not built: {e}")),
    };
    if let Err(e) = seccompiler::apply_filter(&linked.prog) {
        return Applied::new(LayerState::Unavailable, format!("seccomp filter refused: {e}"));
    }
    Applied::new(LayerState::Enforced, detail(linked, false))
}

/// Installs the filter of the rules with the exec notification linked in, with a listener
/// ([`crate::exec_notify`]); returns the seccomp layer's state and detail, and the listener
/// (which the target hands to the supervisor and closes). Where the kernel refuses the
/// listener (one per process tree: an enclosing sandbox may hold it), the filter of the
/// rules alone is installed instead, and the error says why there is no listener.
pub(crate) fn install_supervised() -> (Applied, Result<OwnedFd, String>) {
    let linked = match compiled(true) {
        Ok(l) => l,
        Err(e) => {
            let e = format!("seccomp filter not built: {e}");
            return (Applied::new(LayerState::Unavailable, e.clone()), Err(e));
        }
    };
    match crate::exec_notify::filter::install(&linked.raw) {
        Ok(listener) => (Applied::new(LayerState::Enforced, detail(linked, true)), Ok(listener)),
        Err(e) => (install(), Err(e)),
    }
}

/// The seccomp layer's detail for `linked`.
fn detail(linked: &Linked, supervised: bool) -> String {
    let parts: Vec<String> = linked.parts.iter().map(|(n, len)| format!("{n} {len}")).collect();
    let mut written = vec!["the dispatch"];
    if cfg!(target_arch = "x86_64") {
        written.push("the x32 guard");
    }
    if supervised {
        written.push("the exec notification");
    }
    format!(
        "one seccomp filter of {} instructions, linked from {} (the rules by seccompiler; {} written out): {} calls denied, namespace clone flags, TIOCSTI/TIOCLINUX, personality flags, socket families other than unix/inet/inet6 (EPERM); clone3{} (ENOSYS){}",
        linked.prog.len(),
        parts.join(" + "),
        written.join(", "),
        DENIED.len(),
        if cfg!(target_arch = "x86_64") { " and x32 calls" } else { "" },
        if supervised { "; execve/execveat wait for the exec supervisor (user notification, in this filter)" } else { "" },
    )
}

#[cfg(test)]
mod tests;
