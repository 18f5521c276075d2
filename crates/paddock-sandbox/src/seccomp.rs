//! Step 8 of the order (in the target, after `no_new_privs`, before the descriptors are
//! closed): a seccomp-BPF filter.
//!
//! A small classic-BPF program, written out here so every instruction can be read:
//! a foreign architecture (e.g. i386 `int 0x80` on x86_64) kills the process; x32 system
//! calls fail with `ENOSYS`; the calls in [`DENIED`] fail with `EPERM` (ptrace,
//! process_vm_*, io_uring_*, bpf, perf_event_open, keyrings, module loading, the mount
//! family, unshare/setns, ...); `clone3` fails with `ENOSYS` (its flags live in memory the
//! filter cannot read, so libc falls back to `clone`); `clone` with any `CLONE_NEW*` flag
//! fails with `EPERM`; `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` fail with `EPERM` (only the
//! low 32 bits of the request count, as in the kernel); `socket` with a family other than
//! `AF_UNIX`, `AF_INET`, `AF_INET6` fails with `EPERM`. Everything else is allowed.

use crate::report::LayerState;

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian).
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
#[cfg(target_arch = "aarch64")]
const X32_SYSCALL_BIT: Option<u32> = None;

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

/// `open_tree_attr(2)` (Linux 6.15), the same number on every architecture.
const SYS_OPEN_TREE_ATTR: libc::c_long = 467;

/// System calls that fail with `EPERM`.
pub(crate) const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
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

const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn errno(e: i32) -> u32 {
    RET_ERRNO | (e as u32 & 0xffff)
}

/// The filter program.
pub(crate) fn program() -> Vec<libc::sock_filter> {
    let ld = |off| stmt(BPF_LD | BPF_W | BPF_ABS, off);
    let ret = |v| stmt(BPF_RET | BPF_K, v);
    let jeq = |k, jt, jf| jump(BPF_JMP | BPF_JEQ | BPF_K, k, jt, jf);
    let jset = |k, jt, jf| jump(BPF_JMP | BPF_JSET | BPF_K, k, jt, jf);
    let nr = |n: libc::c_long| n as u32;
    let mut p = vec![
        ld(OFF_ARCH),
        jeq(AUDIT_ARCH, 1, 0),
        ret(RET_KILL_PROCESS),
        ld(OFF_NR),
    ];
    if let Some(bit) = X32_SYSCALL_BIT {
        p.push(jset(bit, 0, 1));
        p.push(ret(errno(libc::ENOSYS)));
    }
    for (_, n) in DENIED {
        p.push(jeq(nr(*n), 0, 1));
        p.push(ret(errno(libc::EPERM)));
    }
    p.push(jeq(nr(libc::SYS_clone3), 0, 1));
    p.push(ret(errno(libc::ENOSYS)));
    // clone: flags are argument 0 on x86_64 and aarch64.
    p.extend([
        jeq(nr(libc::SYS_clone), 0, 4),
        ld(off_arg_lo(0)),
        jset(CLONE_NS_FLAGS, 0, 1),
        ret(errno(libc::EPERM)),
        ret(RET_ALLOW),
    ]);
    p.extend([
        jeq(nr(libc::SYS_ioctl), 0, 5),
        ld(off_arg_lo(1)),
        jeq(TIOCSTI, 2, 0),
        jeq(TIOCLINUX, 1, 0),
        ret(RET_ALLOW),
        ret(errno(libc::EPERM)),
    ]);
    p.extend([
        jeq(nr(libc::SYS_socket), 0, 6),
        ld(off_arg_lo(0)),
        jeq(libc::AF_UNIX as u32, 3, 0),
        jeq(libc::AF_INET as u32, 2, 0),
        jeq(libc::AF_INET6 as u32, 1, 0),
        ret(errno(libc::EPERM)),
        ret(RET_ALLOW),
    ]);
    p.push(ret(RET_ALLOW));
    p
}

/// Installs the filter (no_new_privs must already be set); returns the layer state and
/// detail.
pub(crate) fn install() -> (LayerState, String) {
    let mut prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points to `prog`, a valid BPF program of `len` instructions that lives
    // until the call returns (the kernel copies it).
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r == 0 {
        (
            LayerState::Enforced,
            format!(
                "seccomp filter of {} instructions: {} calls denied, clone3 ENOSYS, namespace clone flags, TIOCSTI/TIOCLINUX, socket families other than unix/inet/inet6",
                prog.len(),
                DENIED.len()
            ),
        )
    } else {
        (
            LayerState::Unavailable,
            format!("seccomp filter refused: {}", std::io::Error::last_os_error()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interprets the program for one system call (only the instructions it uses).
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            match ins.code {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                c if c == BPF_RET | BPF_K => return ins.k,
                c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                    pc += 1 + if acc == ins.k { ins.jt } else { ins.jf } as usize;
                }
                c if c == BPF_JMP | BPF_JSET | BPF_K => {
                    pc += 1 + if acc & ins.k != 0 { ins.jt } else { ins.jf } as usize;
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn call(nr: libc::c_long, args: [u64; 6]) -> u32 {
        eval(&program(), AUDIT_ARCH, nr as u32, args)
    }

    #[test]
    fn denies_and_allows() {
        let eperm = errno(libc::EPERM);
        for (_, n) in DENIED {
            assert_eq!(call(*n, [0; 6]), eperm);
        }
        assert_eq!(call(libc::SYS_read, [0; 6]), RET_ALLOW);
        assert_eq!(call(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
        assert_eq!(call(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(libc::SYS_clone, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(call(libc::SYS_ioctl, [0, TIOCSTI as u64, 0, 0, 0, 0]), eperm);
        assert_eq!(call(libc::SYS_ioctl, [0, (1u64 << 32) | TIOCSTI as u64, 0, 0, 0, 0]), eperm);
        assert_eq!(call(libc::SYS_ioctl, [0, TIOCLINUX as u64, 0, 0, 0, 0]), eperm);
        assert_eq!(call(libc::SYS_ioctl, [0, libc::TIOCGWINSZ, 0, 0, 0, 0]), RET_ALLOW);
        for fam in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
            assert_eq!(call(libc::SYS_socket, [fam as u64, 1, 0, 0, 0, 0]), RET_ALLOW);
        }
        assert_eq!(call(libc::SYS_socket, [libc::AF_NETLINK as u64, 1, 0, 0, 0, 0]), eperm);
        assert_eq!(call(libc::SYS_socket, [libc::AF_PACKET as u64, 1, 0, 0, 0, 0]), eperm);
        assert_eq!(eval(&program(), 0x4000_0003, 1, [0; 6]), RET_KILL_PROCESS);
        if let Some(bit) = X32_SYSCALL_BIT {
            assert_eq!(call((bit | 1) as libc::c_long, [0; 6]), errno(libc::ENOSYS));
        }
    }
}
