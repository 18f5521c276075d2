//! Test helper run *inside* the sandbox by paddock-sandbox's integration tests: it tries
//! the system calls the sandbox must refuse and prints one `name=RESULT` line per try.
//!
//! `paddock-sandbox-testprobe syscalls` | `connect PORT` | `forks N` (fork up to N idle
//! children, print `forked=K errno=E`) | `alloc BYTES HOLD_MS` (allocate and touch BYTES,
//! print `alloc=OK`, hold them HOLD_MS, print `alloc=HELD`; `alloc=ERR` if the allocation is refused)

use std::io::{Read, Write};

fn res(r: i64) -> String {
    if r >= 0 {
        "OK".into()
    } else {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EPERM) => "EPERM".into(),
            Some(libc::ENOSYS) => "ENOSYS".into(),
            Some(libc::EACCES) => "EACCES".into(),
            Some(n) => format!("ERRNO{n}"),
            None => "?".into(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("syscalls") => syscalls(),
        Some("connect") => {
            let port: u16 = args[2].parse().unwrap();
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(mut s) => {
                    let mut buf = String::new();
                    let _ = s.write_all(b"hi\n");
                    let _ = s.read_to_string(&mut buf);
                    println!("connect=OK {}", buf.trim());
                }
                Err(e) => println!("connect=ERR {e} ({:?})", e.raw_os_error()),
            }
        }
        Some("forks") => forks(args[2].parse().unwrap()),
        Some("alloc") => alloc(args[2].parse().unwrap(), args[3].parse().unwrap()),
        _ => std::process::exit(64),
    }
}

fn forks(n: usize) {
    let mut kids = Vec::new();
    let mut errno = 0;
    for _ in 0..n {
        // SAFETY (test helper): the child only sleeps and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain syscalls in the child.
            unsafe {
                libc::sleep(30);
                libc::_exit(0);
            }
        }
        if pid < 0 {
            errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            break;
        }
        kids.push(pid);
    }
    println!("forked={} errno={errno}", kids.len());
    for pid in kids {
        // SAFETY: signalling and reaping our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

fn alloc(bytes: usize, hold_ms: u64) {
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(bytes).is_err() {
        println!("alloc=ERR");
        return;
    }
    // Touch every page, so the memory is really charged.
    v.resize(bytes, 1);
    println!("alloc=OK");
    std::thread::sleep(std::time::Duration::from_millis(hold_ms));
    std::hint::black_box(&v);
    println!("alloc=HELD");
}

fn syscalls() {
    // SAFETY (test helper): each call gets valid or null arguments; any that unexpectedly
    // succeeds in creating a child makes that child exit at once.
    unsafe {
        let p = |name: &str, r: i64| println!("{name}={}", res(r));
        p("unshare_user", libc::unshare(libc::CLONE_NEWUSER) as i64);
        p("unshare_mount", libc::unshare(libc::CLONE_NEWNS) as i64);
        let r = libc::syscall(libc::SYS_clone, (libc::CLONE_NEWUSER | libc::SIGCHLD) as i64, 0, 0, 0, 0);
        if r == 0 {
            libc::_exit(0);
        }
        p("clone_newuser", r);
        p("clone3", libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize));
        p("mount", libc::mount(c"none".as_ptr(), c"/tmp".as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) as i64);
        let mut params = [0u8; 120];
        p("io_uring_setup", libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()));
        let mut attr = [0u8; 128];
        p("bpf", libc::syscall(libc::SYS_bpf, 0i32, attr.as_mut_ptr(), attr.len() as u32));
        p("keyctl", libc::syscall(libc::SYS_keyctl, 0i32, -3i32, 0i32));
        p("add_key", libc::syscall(libc::SYS_add_key, c"user".as_ptr(), c"k".as_ptr(), c"v".as_ptr(), 1usize, -3i32));
        p("ptrace", libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) as i64);
        let mut pe = [0u8; 128];
        p("perf_event_open", libc::syscall(libc::SYS_perf_event_open, pe.as_mut_ptr(), 0, -1, -1, 0));
        p("setns", libc::setns(0, 0) as i64);
        p("init_module", libc::syscall(libc::SYS_finit_module, 0, c"".as_ptr(), 0));
        p("tiocsti", libc::ioctl(0, libc::TIOCSTI, c"x".as_ptr()) as i64);
        let s = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0);
        p("socket_netlink", s as i64);
        p("socket_packet", libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) as i64);
        p("socket_inet", libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as i64);
        p("socket_unix", libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as i64);
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        p("fork", pid as i64);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}
