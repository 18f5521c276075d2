//! End-to-end: `paddock run` confines a command. Each scenario runs the built binary twice,
//! as root (`as_root::*`) and as the unprivileged uid 65534 (`as_nobody::*`).
//!
//! Every scenario works in its own world-readable temp dir holding a copy of the binary, the
//! policy, a workspace, a home, and host dirs the sandbox must not reach. Host files are
//! made readable and writable by the user under test, so that a blocked attempt is the
//! sandbox's doing, not the host's permissions (`Fixture::new` checks it).
//!
//! Tests dial only loopback.

#[macro_use]
mod common;

use common::*;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

both_users!(
    // must be blocked
    blocks_reading_outside_read_paths,
    blocks_denied_files_in_workspace,
    blocks_writing_outside_write_paths,
    blocks_symlink_escape,
    blocks_hard_link_escape,
    blocks_proc_root_of_pid_1,
    blocks_proc_environ_of_host_process,
    blocks_proc_cwd_of_host_process,
    hides_caller_environment,
    blocks_host_loopback_tcp,
    blocks_host_abstract_unix_socket,
    blocks_host_pathname_unix_socket,
    blocks_host_unix_socket_under_read_path,
    blocks_signalling_host_process,
    blocks_ptrace_of_host_process,
    blocks_tiocsti_under_pty,
    blocks_user_namespace,
    blocks_dangerous_syscalls,
    blocks_inherited_descriptor,
    leaves_nothing_behind_after_exit,
    leaves_nothing_behind_after_timeout,
    limits_processes,
    limits_memory,
    limits_output,
    the_oom_killer_takes_the_call_first,
    limits_above_the_hard_limit_hold_to_the_hard_limit,
    output_nobody_takes_ends_the_writer,
    // must work
    reads_system_and_workspace_files,
    writes_in_workspace,
    runs_sh_git_python,
    passes_exit_codes,
    streams_stdin,
    separates_stdout_and_stderr,
    keeps_every_cpu,
    // the call gate
    command_gate_denies_with_77,
);

// ---------------------------------------------------------------------------------------
// Must be blocked
// ---------------------------------------------------------------------------------------

fn blocks_reading_outside_read_paths(u: User) {
    let f = Fixture::new(u);
    let secret = f.secret_path.to_str().unwrap();
    let o = f.run(
        &Pol::default(),
        &["sh", "-c", r#"cat "$1"; ls "$2"; echo done"#, "sh", secret, f.outside.to_str().unwrap()],
        None,
    );
    assert_eq!(o.out().lines().last(), Some("done"), "the command did not run\n{o}");
    o.assert_absent(&f.secret, "a file outside the read paths");
    o.assert_not_listed("secret.txt", "the listing of a dir outside the read paths");
}

fn blocks_denied_files_in_workspace(u: User) {
    let f = Fixture::new(u);
    let env_secret = format!("ENV-SECRET-{}", unique());
    let pem_secret = format!("PEM-SECRET-{}", unique());
    write(&f.ws.join(".env"), &env_secret, 0o644);
    let deep = f.ws.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    write(&deep.join("key.pem"), &pem_secret, 0o644);
    write(&deep.join("ok.txt"), "readable-neighbour", 0o644);
    for d in [f.ws.join("a"), deep.clone()] {
        chown(&d, u.uid());
    }
    let pol = Pol { deny: &["${WORKSPACE}/.env", "${WORKSPACE}/**/*.pem"], ..Pol::default() };
    // Direct reads, then the usual detours: a hard link, a copy, renaming the parent.
    let script = "cat .env; cat a/b/key.pem; cat a/b/ok.txt; echo; \
                  ln .env e2 && cat e2; ln a/b/key.pem k2 && cat k2; cp .env e3 && cat e3; \
                  mv a a2 && cat a2/b/key.pem; echo done";
    let o = f.run(&pol, &["sh", "-c", script], None);
    assert!(o.out().contains("readable-neighbour"), "a file beside the denied one must stay readable\n{o}");
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    o.assert_absent(&env_secret, "the denied ${WORKSPACE}/.env");
    o.assert_absent(&pem_secret, "the denied ${WORKSPACE}/**/*.pem");
    assert_eq!(read(&f.ws.join(".env")), env_secret, "the host's .env changed");
}

fn blocks_writing_outside_write_paths(u: User) {
    let f = Fixture::new(u);
    let usr_probe = PathBuf::from(format!("/usr/paddock-run-test-{}", unique()));
    let shelf = f.shelf.to_str().unwrap();
    let pol = Pol { read: &[shelf], ..Pol::default() };
    let script = r#"echo PWNED > "$1/new.txt"; echo PWNED >> "$2"; echo PWNED > "$3/new.txt"; echo PWNED >> "$4"; touch "$5"; echo PWNED > "$5"; cat "$4"; echo; echo done"#;
    let o = f.run(
        &pol,
        &[
            "sh",
            "-c",
            script,
            "sh",
            f.outside.to_str().unwrap(),
            f.secret_path.to_str().unwrap(),
            shelf,
            f.shelf_file.to_str().unwrap(),
            usr_probe.to_str().unwrap(),
        ],
        None,
    );
    let usr_written = usr_probe.exists();
    let _ = std::fs::remove_file(&usr_probe);
    assert!(o.out().contains(&f.shelf_text), "the read-only dir must stay readable\n{o}");
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    assert!(!f.outside.join("new.txt").exists(), "created a file in a host dir outside the write paths\n{o}");
    assert_eq!(read(&f.secret_path), f.secret, "changed a host file outside the write paths\n{o}");
    assert!(!f.shelf.join("new.txt").exists(), "created a file in a read-only dir\n{o}");
    assert_eq!(read(&f.shelf_file), f.shelf_text, "changed a file in a read-only dir\n{o}");
    assert!(!usr_written, "created {} on the host\n{o}", usr_probe.display());
}

fn blocks_symlink_escape(u: User) {
    let f = Fixture::new(u);
    std::os::unix::fs::symlink(&f.secret_path, f.ws.join("link")).unwrap();
    std::os::unix::fs::symlink(&f.outside, f.ws.join("dirlink")).unwrap();
    let o = f.run(&Pol::default(), &["sh", "-c", "cat link; cat dirlink/secret.txt; ls dirlink/; echo PWNED > dirlink/new.txt; echo PWNED >> link; echo done"], None);
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    o.assert_absent(&f.secret, "a secret behind a symlink in the workspace");
    o.assert_not_listed("secret.txt", "a listing behind a symlink in the workspace");
    assert_eq!(read(&f.secret_path), f.secret, "wrote through a symlink\n{o}");
    assert!(!f.outside.join("new.txt").exists(), "created a file through a symlinked dir\n{o}");
}

fn blocks_hard_link_escape(u: User) {
    let f = Fixture::new(u);
    // The control: on the host the user may hard-link the read-only file into the workspace.
    let ctl = f.host(&[
        "sh",
        "-c",
        r#"ln "$1" "$2/ctl" && rm "$2/ctl" && echo linked"#,
        "sh",
        f.shelf_file.to_str().unwrap(),
        f.ws.to_str().unwrap(),
    ]);
    assert_eq!(
        ctl.out(),
        "linked\n",
        "control: the user cannot hard-link on the host, so this test would prove nothing\n{ctl}"
    );
    let shelf = f.shelf.to_str().unwrap();
    let pol = Pol { read: &[shelf], ..Pol::default() };
    let script =
        r#"ln "$1" hl1 && echo LINKED1; ln "$2" hl2 && echo LINKED2; echo PWNED >> hl1; echo PWNED >> hl2; echo done"#;
    let o =
        f.run(&pol, &["sh", "-c", script, "sh", f.shelf_file.to_str().unwrap(), f.secret_path.to_str().unwrap()], None);
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    assert!(!o.out().contains("LINKED"), "ln succeeded inside the sandbox\n{o}");
    for name in ["hl1", "hl2"] {
        let p = f.ws.join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            assert!(
                m.nlink() == 1 && m.ino() != std::fs::metadata(&f.shelf_file).unwrap().ino(),
                "{name} is a hard link to a host file\n{o}"
            );
        }
    }
    assert_eq!(read(&f.shelf_file), f.shelf_text, "a read-only host file changed through a hard link\n{o}");
    assert_eq!(read(&f.secret_path), f.secret, "a host secret changed through a hard link\n{o}");
}

fn blocks_proc_root_of_pid_1(u: User) {
    let f = Fixture::new(u);
    let secret = f.secret_path.to_str().unwrap();
    // pid 1 is paddock's reaper, which sits outside the command's Landlock and seccomp:
    // neither its root nor its descriptors may lead out.
    let script = r#"for p in 1 2 self; do cat "/proc/$p/root$1"; ls "/proc/$p/root$2"; done; for fd in /proc/1/fd/*; do cat "$fd$1"; ls "$fd$2"; done; echo done"#;
    let o = f.run(&Pol::default(), &["sh", "-c", script, "sh", secret, f.outside.to_str().unwrap()], None);
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    o.assert_absent(&f.secret, "a host secret through /proc/PID/root");
    o.assert_not_listed("secret.txt", "a host dir listing through /proc/PID/root");
}

fn blocks_proc_environ_of_host_process(u: User) {
    let f = Fixture::new(u);
    let marker = format!("HOST-ENV-{}", unique());
    let host = f.host_process(&f.outside, &[("PADDOCK_HOST_MARKER", &marker)]);
    // The control: the marker really is in that process's environment.
    // (polled: during setpriv's exec of sleep, /proc/PID/environ can read empty for a moment)
    let start = Instant::now();
    while !read(Path::new(&format!("/proc/{}/environ", host.pid))).contains(&marker) {
        assert!(start.elapsed() < Duration::from_secs(5), "control: the host process lacks the marker");
        std::thread::sleep(Duration::from_millis(5));
    }
    let script = r#"cat "/proc/$1/environ"; for e in /proc/[0-9]*/environ; do cat "$e"; done; echo; echo done"#;
    let o = f.run(&Pol::default(), &["sh", "-c", script, "sh", &host.pid.to_string()], None);
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    o.assert_absent(&marker, "a host process's environment through /proc/PID/environ");
}

fn blocks_proc_cwd_of_host_process(u: User) {
    let f = Fixture::new(u);
    let host = f.host_process(&f.outside, &[]);
    let script = r#"cat "/proc/$1/cwd/secret.txt"; ls "/proc/$1/cwd/"; echo PWNED > "/proc/$1/cwd/new.txt"; echo done"#;
    let o = f.run(&Pol::default(), &["sh", "-c", script, "sh", &host.pid.to_string()], None);
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    o.assert_absent(&f.secret, "a host secret through /proc/PID/cwd");
    o.assert_not_listed("secret.txt", "a host dir listing through /proc/PID/cwd");
    assert!(!f.outside.join("new.txt").exists(), "wrote into a host dir through /proc/PID/cwd\n{o}");
}

fn hides_caller_environment(u: User) {
    let f = Fixture::new(u);
    let secret = format!("ENV-{}", unique());
    let mut argv = f.paddock_argv(&Pol::default());
    argv.extend(
        ["sh", "-c", "env; for e in /proc/[0-9]*/environ; do cat \"$e\"; echo; done; echo done"].map(OsString::from),
    );
    let o = f.launch(&argv, &[("PADDOCK_TEST_SECRET", &secret)], None);
    assert!(o.out().contains(&format!("PATH={PATH}")), "the policy's PATH must be set\n{o}");
    assert_eq!(o.out().lines().last(), Some("done"), "{o}");
    o.assert_absent(&secret, "the caller's PADDOCK_TEST_SECRET");
    o.assert_absent("PADDOCK_TEST_SECRET", "the caller's variable name");
}

/// Python that connects to `sys.argv[1]` (family `sys.argv[2]`: inet, unix); prints
/// CONNECTED or BLOCKED errno.
const CONNECT_PY: &str = r#"
import socket, sys
target, fam = sys.argv[1], sys.argv[2]
if fam == "inet":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); addr = ("127.0.0.1", int(target))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); addr = target.replace("@", "\0", 1) if target.startswith("@") else target
s.settimeout(3)
try:
    s.connect(addr); s.sendall(b"PWNED"); print("CONNECTED")
except OSError as e:
    print("BLOCKED", e.errno, e)
"#;

/// Asserts that the sandboxed python got BLOCKED and that `accept` saw no connection.
fn assert_no_connection(o: &Out, accept: impl FnOnce() -> std::io::Result<()>, what: &str) {
    assert!(o.out().starts_with("BLOCKED"), "{what}: the sandbox connected (or the probe did not run)\n{o}");
    match accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(()) => panic!("{what}: the host listener accepted a connection from the sandbox\n{o}"),
        Err(e) => panic!("{what}: accept: {e}"),
    }
}

fn blocks_host_loopback_tcp(u: User) {
    let f = Fixture::new(u);
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let o = f.run(&Pol::default(), &py(CONNECT_PY, &[&port, "inet"]), None);
    assert_no_connection(&o, || l.accept().map(drop), "the host's 127.0.0.1 service");
}

fn blocks_host_abstract_unix_socket(u: User) {
    use std::os::linux::net::SocketAddrExt;
    let f = Fixture::new(u);
    let name = format!("paddock-run-test-{}", unique());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind an abstract socket");
    l.set_nonblocking(true).unwrap();
    let o = f.run(&Pol::default(), &py(CONNECT_PY, &[&format!("@{name}"), "unix"]), None);
    assert_no_connection(&o, || l.accept().map(drop), "the host's abstract unix socket");
}

/// A listening pathname socket at `path`, connectable by anyone on the host.
fn unix_listener(path: &Path) -> std::os::unix::net::UnixListener {
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind a unix socket");
    chmod(path, 0o777);
    l.set_nonblocking(true).unwrap();
    l
}

fn blocks_host_pathname_unix_socket(u: User) {
    let f = Fixture::new(u);
    let path = f.outside.join("host.sock");
    let l = unix_listener(&path);
    let o = f.run(&Pol::default(), &py(CONNECT_PY, &[path.to_str().unwrap(), "unix"]), None);
    assert_no_connection(&o, || l.accept().map(drop), "the host's unix socket outside the workspace");
}

/// A host socket inside a path the policy grants read-only (as /run or /var would be):
/// `read` means read and execute, not talk to the host's services.
fn blocks_host_unix_socket_under_read_path(u: User) {
    let f = Fixture::new(u);
    let path = f.shelf.join("host.sock");
    let l = unix_listener(&path);
    let pol = Pol { read: &[f.shelf.to_str().unwrap()], ..Pol::default() };
    let o = f.run(&pol, &py(CONNECT_PY, &[path.to_str().unwrap(), "unix"]), None);
    assert_no_connection(&o, || l.accept().map(drop), "the host's unix socket under a read-only path");
}

fn blocks_signalling_host_process(u: User) {
    let f = Fixture::new(u);
    let mut host = f.host_process(&f.ws, &[]);
    let pid = host.pid.to_string();
    let o = f.run(&Pol::default(), &["sh", "-c", r#"kill -9 "$1"; kill -STOP "$1"; echo "rc=$?""#, "sh", &pid], None);
    assert!(o.out().starts_with("rc="), "the command did not run\n{o}");
    assert_ne!(o.out(), "rc=0\n", "kill reported success\n{o}");
    std::thread::sleep(Duration::from_millis(50));
    host.assert_alive_untraced();
}

fn blocks_ptrace_of_host_process(u: User) {
    let f = Fixture::new(u);
    let mut host = f.host_process(&f.ws, &[]);
    let src = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
for pid in (int(sys.argv[1]), 1):
    for req, name in ((16, "ATTACH"), (0x4206, "SEIZE")):
        r = libc.ptrace(ctypes.c_long(req), ctypes.c_long(pid), None, None)
        print(name, r, ctypes.get_errno(), pid)
"#;
    // The host process, then pid 1: paddock's reaper, outside the command's Landlock and
    // seccomp, which a tracer could make run anything.
    let o = f.run(&Pol::default(), &py(src, &[&host.pid.to_string()]), None);
    let out = o.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "the probe did not run\n{o}");
    for l in lines {
        assert_eq!(l.split_whitespace().nth(1), Some("-1"), "ptrace succeeded: {l}\n{o}");
    }
    host.assert_alive_untraced();
}

/// Python that tries TIOCSTI on its stdin: prints whether stdin is a terminal, then
/// INJECTED or BLOCKED errno.
const TIOCSTI_PY: &str = r#"
import fcntl, os, termios
print("TTY", os.isatty(0))
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"x"); print("INJECTED")
except OSError as e:
    print("BLOCKED", e.errno)
"#;

fn blocks_tiocsti_under_pty(u: User) {
    let f = Fixture::new(u);
    write(&f.ws.join("tiocsti.py"), TIOCSTI_PY, 0o644);
    let under_pty = |inner: &[OsString]| {
        let line = inner.iter().map(|a| sh_quote(a.to_str().unwrap())).collect::<Vec<_>>().join(" ");
        let argv: Vec<OsString> = ["script", "-qec", &line, "/dev/null"].map(OsString::from).to_vec();
        f.launch(&argv, &[], None)
    };
    let mut inner = vec![OsString::from("python3"), "tiocsti.py".into()];
    if u == User::Root {
        // The control: root on the host can inject into its terminal, so the probe can tell.
        let ctl = under_pty(&inner);
        assert!(ctl.out().contains("INJECTED"), "control: TIOCSTI did not work outside the sandbox\n{ctl}");
    }
    let mut argv = f.paddock_argv(&Pol::default());
    argv.append(&mut inner);
    let o = under_pty(&argv);
    assert!(o.out().contains("TTY True"), "the sandboxed stdin must be a terminal for this test to mean anything\n{o}");
    assert!(o.out().contains("BLOCKED"), "TIOCSTI was not refused\n{o}");
    assert!(!o.out().contains("INJECTED"), "TIOCSTI injected a keystroke\n{o}");
}

fn blocks_user_namespace(u: User) {
    let f = Fixture::new(u);
    // The control: on the host this user may create a user namespace.
    let ctl = f.host(&["unshare", "-U", "true"]);
    assert_eq!(ctl.code(), 0, "control: `unshare -U true` fails on the host, so this test would prove nothing\n{ctl}");
    let src = r#"
import ctypes, subprocess
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x10000000)
print("unshare", r, ctypes.get_errno())
print("cmd", subprocess.run(["unshare", "-U", "true"]).returncode)
"#;
    let o = f.run(&Pol::default(), &py(src, &[]), None);
    let out = o.out();
    assert!(out.starts_with("unshare -1 "), "unshare(CLONE_NEWUSER) succeeded\n{o}");
    let rc =
        out.lines().find_map(|l| l.strip_prefix("cmd ")).unwrap_or_else(|| panic!("the probe did not finish\n{o}"));
    assert_ne!(rc, "0", "`unshare -U true` succeeded\n{o}");
}

/// Python calling dangerous syscalls (x86_64 numbers) with arguments that work on a host
/// (or fail for another reason than EPERM/ENOSYS); prints `name ret errno` per call.
const SYSCALLS_PY: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
buf = ctypes.create_string_buffer(256)
L = ctypes.c_long
calls = [
    ("io_uring_setup", 425, [L(1), buf]),
    ("bpf", 321, [L(0), buf, L(72)]),
    ("keyctl", 250, [L(0), L(-3), L(0)]),
    ("init_module", 175, [buf, L(0), ctypes.c_char_p(b"")]),
    ("finit_module", 313, [L(-1), ctypes.c_char_p(b""), L(0)]),
    ("mount", 165, [ctypes.c_char_p(b"none"), ctypes.c_char_p(b"/nonexistent-paddock-test"), ctypes.c_char_p(b"tmpfs"), L(0), None]),
]
for name, nr, args in calls:
    ctypes.set_errno(0)
    r = libc.syscall(L(nr), *args)
    print(name, r, ctypes.get_errno() if r < 0 else 0)
"#;

fn parse_syscalls(o: &Out) -> Vec<(String, i64, i32)> {
    let v: Vec<(String, i64, i32)> = o
        .out()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[1].parse().unwrap(), w[2].parse().unwrap())
        })
        .collect();
    assert_eq!(v.len(), 6, "the probe did not run\n{o}");
    v
}

fn blocks_dangerous_syscalls(u: User) {
    if !cfg!(target_arch = "x86_64") {
        panic!("blocks_dangerous_syscalls uses x86_64 syscall numbers: port it to this architecture");
    }
    const EPERM: i32 = 1;
    const ENOSYS: i32 = 38;
    let f = Fixture::new(u);
    if u == User::Root {
        // The control: on the host, root's calls get past the permission checks, so the
        // probe can tell a blocked call from one that ran. A kernel built without module
        // support answers ENOSYS to module loading: there is nothing to stop there.
        let ctl = f.host(&py(SYSCALLS_PY, &[]));
        for (name, _, errno) in parse_syscalls(&ctl) {
            if errno == ENOSYS && name.ends_with("init_module") {
                eprintln!("note: this kernel has no {name} (ENOSYS on the host): nothing to block");
                continue;
            }
            assert!(errno != EPERM && errno != ENOSYS, "control: {name} fails with {errno} on the host already\n{ctl}");
        }
    }
    let o = f.run(&Pol::default(), &py(SYSCALLS_PY, &[]), None);
    for (name, ret, errno) in parse_syscalls(&o) {
        assert!(
            ret == -1 && (errno == EPERM || errno == ENOSYS),
            "{name} was not refused with EPERM or ENOSYS (returned {ret}, errno {errno})\n{o}"
        );
    }
}

fn blocks_inherited_descriptor(u: User) {
    let f = Fixture::new(u);
    let mut argv: Vec<OsString> =
        ["sh", "-c", r#"exec 7<"$0"; exec "$@""#, f.secret_path.to_str().unwrap()].map(OsString::from).to_vec();
    argv.extend(f.paddock_argv(&Pol::default()));
    argv.extend(["sh", "-c", "cat <&7; echo \"rc=$?\"; ls /proc/self/fd"].map(OsString::from));
    let o = f.launch(&argv, &[], None);
    assert!(o.out().contains("rc="), "the command did not run\n{o}");
    assert!(!o.out().contains("rc=0"), "reading fd 7 succeeded\n{o}");
    o.assert_absent(&f.secret, "a secret through a descriptor the caller left open");
}

fn leaves_nothing_behind_after_exit(u: User) {
    let f = Fixture::new(u);
    let m1 = sleep_marker();
    let m2 = sleep_marker();
    let script = r#"setsid sleep "$1" & (sleep "$2" &) ; echo ok"#;
    let o = f.run(&Pol::default(), &["sh", "-c", script, "sh", &m1, &m2], None);
    assert_eq!((o.code(), o.out().as_str()), (0, "ok\n"), "{o}");
    assert_nothing_left(&m1, "a setsid background process after exit");
    assert_nothing_left(&m2, "a double-forked process after exit");
}

fn leaves_nothing_behind_after_timeout(u: User) {
    let f = Fixture::new(u);
    let daemon = sleep_marker();
    let fg = sleep_marker();
    let pol = Pol { tail: "[limits]\ntimeout = \"1s\"\n", ..Pol::default() };
    let script = r#"(setsid sleep "$1" > /dev/null 2>&1 &); sleep "$2""#;
    let start = Instant::now();
    let o = f.run(&pol, &["sh", "-c", script, "sh", &daemon, &fg], None);
    let took = start.elapsed();
    assert_nothing_left(&daemon, "a double-forked daemon after timeout");
    assert_nothing_left(&fg, "the timed-out command");
    assert_eq!(o.code(), 124, "timeout must exit 124\n{o}");
    assert!(took < Duration::from_secs(15), "a 1s timeout took {took:?}\n{o}");
    assert!(o.err().contains("timed out"), "stderr must say it timed out\n{o}");
}

fn limits_processes(u: User) {
    let f = Fixture::new(u);
    let marker = sleep_marker();
    let pol = Pol { tail: "[limits]\nmax_processes = 64\ntimeout = \"30s\"\n", ..Pol::default() };
    // Children wait on a pipe that closes when the parent exits, so they end by themselves.
    let src = r#"
import os, sys
r, w = os.pipe()
n = 0
try:
    while n < 300:
        if os.fork() == 0:
            os.close(w); os.read(r, 1); os._exit(0)
        n += 1
    print("UNBOUNDED", n, flush=True)
except OSError as e:
    print("FORK FAILED", n, e.errno, flush=True)
"#;
    let start = Instant::now();
    let o = f.run(&pol, &py(src, &[&marker]), None);
    let took = start.elapsed();
    assert_nothing_left(&marker, "forked processes");
    let n: u32 = o
        .out()
        .strip_prefix("FORK FAILED ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("forking was not stopped by max_processes = 64\n{o}"));
    assert!(n < 200, "{n} forks succeeded under max_processes = 64\n{o}");
    assert_eq!(o.code(), 0, "{o}");
    assert!(took < Duration::from_secs(25), "the run took {took:?}\n{o}");
}

fn limits_memory(u: User) {
    let f = Fixture::new(u);
    let pol = Pol { tail: "[limits]\nmax_memory = \"256MiB\"\ntimeout = \"30s\"\n", ..Pol::default() };
    let src = r#"
try:
    b = bytearray(1 << 30)
    for i in range(0, len(b), 4096):
        b[i] = 1
    print("ALLOCATED", len(b))
except MemoryError:
    print("MEMORYERROR")
"#;
    let o = f.run(&pol, &py(src, &[]), None);
    assert!(!o.out().contains("ALLOCATED"), "allocated 1 GiB under max_memory = 256MiB\n{o}");
    // RLIMIT_AS gives MemoryError; a cgroup's OOM killer gives SIGKILL (137).
    assert!(o.out().contains("MEMORYERROR") || o.code == Some(137), "the allocation did not fail as expected\n{o}");
}

/// Output nobody takes ends the program that writes it, as without paddock: a closed
/// stdout (`paddock run -- yes | head -c 2`) and a stream past `max_output` drained for as
/// much again (at least 64 MiB) are closed, and the program's next write gets `SIGPIPE`
/// (found by a test: `yes` kept running, draining into nothing, until killed).
fn output_nobody_takes_ends_the_writer(u: User) {
    use std::io::Read;
    let f = Fixture::new(u);
    let mut argv = f.paddock_argv(&Pol::default());
    argv.push("yes".into());
    let mut cmd = f.command(&argv);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = spawn(&mut cmd).expect("spawn paddock run -- yes");
    let mut two = [0u8; 2];
    child.stdout.take().unwrap().read_exact(&mut two).unwrap();
    assert_eq!(&two, b"y\n");
    // The pipe is closed now: `yes` must end, by SIGPIPE (13).
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > HANG {
            let _ = child.kill();
            panic!("`paddock run -- yes` kept running after its stdout was closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(128 + 13), "{status:?}");

    let pol = Pol { tail: "[limits]\nmax_output = \"1KiB\"\n", ..Pol::default() };
    let o = f.run(&pol, &["yes"], None);
    assert_eq!(o.code(), 128 + 13, "{o}");
    assert!(o.stdout.len() == 1024 && o.err().contains("truncated"), "{} bytes\n{}", o.stdout.len(), o.err());
}

/// A `max_open_files` above what the caller may set holds the child to the caller's hard
/// limit, less than asked, and the report says so as enforced (found by a test: the limit
/// was left as it was and the layer reported `partial`, while `--explain` said every layer
/// was available).
fn limits_above_the_hard_limit_hold_to_the_hard_limit(u: User) {
    let f = Fixture::new(u);
    let hard: u64 = f.host(&["sh", "-c", "ulimit -Hn"]).out().trim().parse().expect("the host's hard limit");
    let pol = Pol { tail: "[limits]\nmax_open_files = 99999999999\n", ..Pol::default() };
    let o = f.run(&pol, &["sh", "-c", "ulimit -n; ulimit -Hn"], None);
    assert_eq!(o.code(), 0, "{o}");
    let got: Vec<u64> = o.out().lines().map(|l| l.parse().unwrap()).collect();
    assert!(got.len() == 2 && got.iter().all(|n| *n <= hard.max(1 << 20)), "{got:?} against {hard}\n{o}");
    let mut argv = f.paddock_argv(&pol);
    argv.insert(1, "-v".into());
    argv.extend(["true".into()]);
    let v = f.launch(&argv, &[], None);
    let line = v.err().lines().find(|l| l.trim_start().starts_with("rlimits ")).map(str::to_string).unwrap_or_default();
    assert!(line.contains(" enforced ") && line.contains("its hard limit: 99999999999 was asked"), "{v}");
}

/// The call is what the OOM killer takes first (`oom_score_adj` 1000 in the target, and so
/// in all it starts): where a memory cgroup bounds the call, one that fills its private
/// `/tmp` and `/dev/shm` past `max_memory` loses the process that asked for more, not the
/// sandbox's pid 1, and goes on (found by an attack: the pid 1 was taken, the call ended
/// with signal 9 and its own status was lost).
fn the_oom_killer_takes_the_call_first(u: User) {
    let f = Fixture::new(u);
    let pol = Pol { tail: "[limits]\nmax_memory = \"64MiB\"\ntimeout = \"60s\"\n", ..Pol::default() };
    let o = f.run(&pol, &["cat", "/proc/self/oom_score_adj"], None);
    assert_eq!((o.code(), o.out().trim()), (0, "1000"), "{o}");
    let mut argv = f.paddock_argv(&pol);
    argv.insert(1, "-v".into());
    argv.extend(["true".into()]);
    let report = f.launch(&argv, &[], None);
    if !report.err().lines().any(|l| {
        l.trim_start().starts_with("cgroup ") && (l.contains("memory.limit_in_bytes") || l.contains("memory.max"))
    }) {
        return; // no memory cgroup (unprivileged here): RLIMIT_AS bounds each process instead
    }
    let fill = "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null; dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; \
                dd if=/dev/zero of=/dev/shm/more bs=1M count=8 2>/dev/null; echo went on";
    let o = f.run(&pol, &["sh", "-c", fill], None);
    assert_eq!((o.code(), o.out().as_str()), (0, "went on\n"), "{o}");
}

fn limits_output(u: User) {
    let f = Fixture::new(u);
    let pol = Pol { tail: "[limits]\nmax_output = \"1KiB\"\n", ..Pol::default() };
    let o = f.run(&pol, &["head", "-c", "100000", "/dev/zero"], None);
    assert!(o.stdout.len() <= 1024, "{} bytes of stdout reached the caller under max_output = 1KiB", o.stdout.len());
    assert!(!o.stdout.is_empty() && o.stdout.iter().all(|b| *b == 0), "stdout must hold the first bytes of the output");
    assert!(o.err().contains("truncated"), "stderr must say the output was truncated\n{}", o.err());
}

// ---------------------------------------------------------------------------------------
// Must work
// ---------------------------------------------------------------------------------------

fn reads_system_and_workspace_files(u: User) {
    let f = Fixture::new(u);
    let text = format!("workspace-file-{}", unique());
    write(&f.ws.join("hello.txt"), &text, 0o644);
    let o = f.run(&Pol::default(), &["sh", "-c", "cat /etc/passwd hello.txt"], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().starts_with(&read(Path::new("/etc/passwd"))), "/etc/passwd differs inside\n{o}");
    assert!(o.out().ends_with(&text), "{o}");
}

fn writes_in_workspace(u: User) {
    let f = Fixture::new(u);
    let text = format!("written-{}", unique());
    let o = f.run(&Pol::default(), &["sh", "-c", r#"mkdir -p sub && printf %s "$1" > sub/out.txt"#, "sh", &text], None);
    assert_eq!(o.code(), 0, "{o}");
    let p = f.ws.join("sub/out.txt");
    assert_eq!(read(&p), text, "the host does not see what the sandbox wrote");
    assert_eq!(std::fs::metadata(&p).unwrap().uid(), u.uid(), "the file belongs to another uid on the host");
}

fn runs_sh_git_python(u: User) {
    let f = Fixture::new(u);
    let msg = format!("commit-{}", unique());
    let script = r#"git init -q . && echo a > f && git add f && git -c user.name=t -c user.email=t@example.com commit -q -m "$1" && git log --format=%s && python3 -c 'print(6 * 7)'"#;
    let o = f.run(&Pol::default(), &["sh", "-c", script, "sh", &msg], None);
    assert_eq!((o.code(), o.out()), (0, format!("{msg}\n42\n")), "{o}");
    assert!(f.ws.join(".git/HEAD").exists(), "the repository is not on the host");
}

fn passes_exit_codes(u: User) {
    let f = Fixture::new(u);
    let o = f.run(&Pol::default(), &["sh", "-c", "exit 42"], None);
    assert_eq!(o.code(), 42, "{o}");
    let o = f.run(&Pol::default(), &["sh", "-c", "kill -TERM $$"], None);
    assert_eq!(o.code(), 143, "{o}");
    let o = f.run(&Pol::default(), &["true"], None);
    assert_eq!(o.code(), 0, "{o}");
}

fn streams_stdin(u: User) {
    let f = Fixture::new(u);
    let o = f.run(&Pol::default(), &["cat"], Some(b"hello\n"));
    assert_eq!((o.code(), o.out().as_str()), (0, "hello\n"), "{o}");
}

fn separates_stdout_and_stderr(u: User) {
    let f = Fixture::new(u);
    let o = f.run(&Pol::default(), &["sh", "-c", "echo to-out; echo to-err >&2"], None);
    assert_eq!((o.code(), o.out().as_str(), o.err().as_str()), (0, "to-out\n", "to-err\n"), "{o}");
}

/// The helper is started on another CPU than the caller's (its set narrowed for that), and
/// takes the caller's whole set back at once: the program may use every CPU the caller may.
fn keeps_every_cpu(u: User) {
    let f = Fixture::new(u);
    let allowed = ["grep", "^Cpus_allowed_list", "/proc/self/status"];
    let host = f.host(&allowed);
    assert_eq!(host.code(), 0, "{host}");
    let o = f.run(&Pol::default(), &allowed, None);
    assert_eq!((o.code(), o.out()), (0, host.out()), "{o}");
}

// ---------------------------------------------------------------------------------------
// The call gate
// ---------------------------------------------------------------------------------------

fn command_gate_denies_with_77(u: User) {
    let f = Fixture::new(u);
    let pol = Pol { tail: "[commands]\nallow = [\"echo *\"]\n", ..Pol::default() };
    let o = f.run(&pol, &["echo", "hi"], None);
    assert_eq!((o.code(), o.out().as_str()), (0, "hi\n"), "an allowed command must run\n{o}");
    let marker = format!("gate-{}", unique());
    let o = f.run(&pol, &["sh", "-c", r#"echo ran > "$1""#, "sh", &marker], None);
    assert_eq!(o.code(), 77, "{o}");
    assert!(!f.ws.join(&marker).exists(), "a denied command ran\n{o}");
    let o = f.run(&pol, &["ls"], None);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.out().is_empty(), "a denied command printed\n{o}");
    assert!(o.err().contains("denied") && o.err().contains("ls"), "stderr must say why\n{o}");
}

// A strict policy on a machine missing a layer exits 71: this machine has every layer and
// a test cannot remove one, so that case is not tested here (see `paddock run --explain`).
