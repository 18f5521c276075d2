//! The target's side: a classic BPF program whose `execve`/`execveat` wait for the
//! supervisor, linked into the one seccomp filter ([`crate::seccomp`]) and installed with it
//! with `SECCOMP_FILTER_FLAG_NEW_LISTENER`.

use std::os::fd::OwnedFd;

use crate::sys;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`: nr, arch, then args (low 32 bits first, little-endian).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG1_LO: u32 = 16 + 8;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux 5.19): once the supervisor has the
/// notification, only a fatal signal interrupts the wait (no restarts of a half-decided exec).
const WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The program (jump offsets count from the next instruction).
pub(crate) fn program() -> Vec<libc::sock_filter> {
    vec![
        /* 0 */ stmt(LD_W_ABS, OFF_ARCH),
        /* 1 */ jump(JEQ_K, AUDIT_ARCH, 1, 0),
        /* 2 */ stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        /* 3 */ stmt(LD_W_ABS, OFF_NR),
        /* 4 */ jump(JEQ_K, libc::SYS_execve as u32, 6, 0),
        /* 5 */ jump(JEQ_K, libc::SYS_execveat as u32, 5, 0),
        /* 6 */ jump(JEQ_K, libc::SYS_seccomp as u32, 0, 3),
        /* 7 */ stmt(LD_W_ABS, OFF_ARG1_LO),
        /* 8 */ jump(JSET_K, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32, 0, 1),
        /* 9 */ stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        /* 10 */ stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        /* 11 */ stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF),
    ]
}

/// The system calls [`program`] answers other than `ALLOW` (on this architecture).
pub(crate) const NOTIFIED: [libc::c_long; 3] = [libc::SYS_execve, libc::SYS_execveat, libc::SYS_seccomp];

/// Installs `prog`, a filter that [`program`] is linked into (`no_new_privs` must be set;
/// [`crate::seccomp`] links it), with a listener, and returns the listener. The caller
/// must hand the descriptor to the supervisor and close it before the target runs anything.
pub(crate) fn install(prog: &[libc::sock_filter]) -> Result<OwnedFd, String> {
    let fd = match sys::seccomp_filter_listener(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | WAIT_KILLABLE_RECV) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys::seccomp_filter_listener(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)
                .map_err(|e| format!("seccomp user notification refused: {e}"))?
        }
        Err(e) => return Err(format!("seccomp user notification refused: {e}")),
    };
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one `seccomp_data` (nr, arch, args) the way the kernel does.
    fn eval(nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let prog = program();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let f = prog[pc];
            match f.code {
                LD_W_ABS => acc = u32::from_le_bytes(data[f.k as usize..f.k as usize + 4].try_into().unwrap()),
                JEQ_K | JSET_K => {
                    let hit = if f.code == JEQ_K { acc == f.k } else { acc & f.k != 0 };
                    pc += usize::from(if hit { f.jt } else { f.jf });
                }
                RET_K => return f.k,
                _ => panic!("unknown instruction"),
            }
            pc += 1;
        }
    }

    #[test]
    fn execs_wait_for_the_supervisor_and_nothing_else_does() {
        assert_eq!(eval(libc::SYS_execve as u32, AUDIT_ARCH, [0; 6]), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(eval(libc::SYS_execveat as u32, AUDIT_ARCH, [0; 6]), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(eval(libc::SYS_openat as u32, AUDIT_ARCH, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(eval(libc::SYS_execve as u32, 0x4000_0003, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn a_listener_of_the_childs_own_is_refused() {
        let flags: u64 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        let sc = libc::SYS_seccomp as u32;
        assert_eq!(eval(sc, AUDIT_ARCH, [1, flags, 0, 0, 0, 0]), libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
        assert_eq!(eval(sc, AUDIT_ARCH, [1, 0, 0, 0, 0, 0]), libc::SECCOMP_RET_ALLOW);
    }
}
