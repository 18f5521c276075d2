//! The mount view's masks: complete (no cap), race-free (renames during start-up), every
//! socket under a granted path hidden however it was bound, `protect` read-only, and a walk
//! that cannot finish failing closed. Each as root and as uid 65534, each with a control.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const PEM: &str = "${WORKSPACE}/**/*.pem";

/// `ws/certs/server.pem` holding a fresh secret, owned by the user.
fn cert(f: &Fixture) -> String {
    let secret = format!("SECRET-pem-{}", unique());
    let certs = f.ws.join("certs");
    std::fs::create_dir(&certs).unwrap();
    chown(&certs, f.user.uid());
    write(&certs.join("server.pem"), &secret, 0o644);
    chown(&certs.join("server.pem"), f.user.uid());
    secret
}

both_users!(
    no_cap_on_deny_matches,
    renames_during_startup_never_expose_a_match,
    sockets_are_hidden_however_bound,
    a_root_daemon_socket_in_a_system_tree_is_hidden,
    a_deny_glob_with_a_trailing_slash_hides_the_directory
);
mod protect {
    use super::*;
    both_users!(protect_keeps_git_config_and_hooks_read_only, what_a_call_creates_under_a_rule_is_moved_aside);
}
mod walk {
    use super::*;
    both_users!(
        a_walk_that_cannot_finish_fails_closed,
        the_cache_never_skips_a_changed_directory,
        a_bind_mount_inside_a_grant_is_walked,
        a_socket_mounted_over_a_files_name_is_hidden,
        a_socket_mounted_in_a_grant_named_through_a_symlink_is_hidden,
        a_grant_named_through_absolute_symlinks_is_in_the_view,
        mounts_inside_a_pseudo_filesystem_are_walked,
        paddocks_state_under_another_name_is_masked
    );
}

fn no_cap_on_deny_matches(user: User) {
    let f = Fixture::new(user);
    let secret = cert(&f);
    // More entries than the old cap (200,000): hard links are cheap to make.
    let links = f.ws.join("links");
    std::fs::create_dir(&links).unwrap();
    let start = Instant::now();
    for i in 0..200_001 {
        // A file has at most 65,000 names on ext4: a new one every 60,000 links.
        let target = links.join(format!("t{}", i / 60_000));
        if i % 60_000 == 0 {
            write(&target, "x", 0o644);
        }
        std::fs::hard_link(&target, links.join(format!("l{i}"))).unwrap();
    }
    eprintln!("{user:?}: 200,001 hard links made in {:?}", start.elapsed());
    // Control: the probe reads the secret on the host.
    let o = f.host(&["cat", "certs/server.pem"]);
    assert_eq!(o.out(), secret, "{o}");
    let pol = Pol { deny: &[PEM], ..Pol::default() };
    let start = Instant::now();
    let o = f.run(&pol, &["sh", "-c", "cat links/l200000; cat certs/server.pem"], None);
    eprintln!("{user:?}: run over 200,003 entries took {:?}", start.elapsed());
    o.assert_absent(&secret, "a deny match past 200,000 entries");
    assert_eq!(o.code(), 1, "the run starts and cat is refused\n{o}");
    assert!(o.out().starts_with('x'), "the rest of the workspace is there\n{o}");
}

/// `deny = ["${WORKSPACE}/priv*/"]` (a directory, by its trailing slash) hides the
/// directories it names and all they hold; the view once matched such a glob against no
/// path at all. Control: the same file outside a matching directory is read.
fn a_deny_glob_with_a_trailing_slash_hides_the_directory(user: User) {
    let f = Fixture::new(user);
    let secret = format!("SECRET-slash-{}", unique());
    for d in ["private", "public"] {
        std::fs::create_dir(f.ws.join(d)).unwrap();
        chown(&f.ws.join(d), user.uid());
        write(&f.ws.join(d).join("key"), &secret, 0o644);
        chown(&f.ws.join(d).join("key"), user.uid());
    }
    let pol = Pol { deny: &["${WORKSPACE}/priv*/"], ..Pol::default() };
    let o = f.run(&pol, &["cat", "public/key"], None);
    assert_eq!(o.out(), secret, "control: outside the glob the file is read\n{o}");
    let o = f.run(&pol, &["cat", "private/key"], None);
    o.assert_absent(&secret, "a file in a directory a trailing-slash deny glob names");
    assert_eq!(o.code(), 1, "the run starts and cat is refused\n{o}");
}

/// Starts `paddock run` of `script` `n` times, `par` at a time, while `mover` renames on
/// the host; returns how many runs printed `secret` and how many started at all.
fn race(f: &Fixture, pol: &Pol, script: &str, secret: &str, mover: impl Fn() + Send + 'static) -> (usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let moves = Arc::new(AtomicUsize::new(0));
    let renamer = {
        let (stop, moves) = (Arc::clone(&stop), Arc::clone(&moves));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                mover();
                moves.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let policy = f.policy(pol);
    let (n, par) = (200, 4);
    let mut leaks = 0;
    let mut started = 0;
    let mut running: Vec<Child> = Vec::new();
    let mut launched = 0;
    let reap = |c: Child, leaks: &mut usize, started: &mut usize| {
        let o = c.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        if out.contains(secret) {
            *leaks += 1;
            eprintln!("LEAK: {out}");
        }
        if o.status.code() != Some(71) {
            *started += 1;
        }
    };
    while launched < n || !running.is_empty() {
        while launched < n && running.len() < par {
            let argv = [
                f.bin.clone().into_os_string(),
                "run".into(),
                "--policy".into(),
                policy.clone().into_os_string(),
                "--workspace".into(),
                f.ws.clone().into_os_string(),
                "--".into(),
                "sh".into(),
                "-c".into(),
                script.into(),
            ];
            let c =
                f.command(&argv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            running.push(c);
            launched += 1;
        }
        let c = running.remove(0);
        reap(c, &mut leaks, &mut started);
    }
    stop.store(true, Ordering::Relaxed);
    renamer.join().unwrap();
    eprintln!("{:?}: {n} runs, {started} started, {leaks} leaks, {} renames", f.user, moves.load(Ordering::Relaxed));
    (leaks, started)
}

fn renames_during_startup_never_expose_a_match(user: User) {
    let f = Fixture::new(user);
    let secret = cert(&f);
    let pol = Pol { deny: &[PEM], ..Pol::default() };
    let script = "cat certs/server.pem x/server.pem certs/other.pem 2>/dev/null; true";
    // Control: without the deny rule the same probe prints the secret.
    let o = f.run(&Pol::default(), &["sh", "-c", script], None);
    assert!(o.out().contains(&secret), "control: the probe reads the secret\n{o}");

    // The directory renamed between two names, both under the glob.
    let (a, b) = (f.ws.join("certs"), f.ws.join("x"));
    let (leaks, started) = race(&f, &pol, script, &secret, move || {
        let _ = std::fs::rename(&a, &b);
        let _ = std::fs::rename(&b, &a);
    });
    assert_eq!(leaks, 0, "a deny match was exposed while its directory was renamed");
    assert!(started >= 100, "most runs start ({started} of 200 did)");
    std::fs::rename(f.ws.join("x"), f.ws.join("certs")).ok();

    // The file itself renamed between two names that both match.
    let (a, b) = (f.ws.join("certs/server.pem"), f.ws.join("certs/other.pem"));
    let (leaks, started) = race(&f, &pol, script, &secret, move || {
        let _ = std::fs::rename(&a, &b);
        let _ = std::fs::rename(&b, &a);
    });
    assert_eq!(leaks, 0, "a deny match was exposed while it was renamed");
    assert!(started >= 100, "most runs start ({started} of 200 did)");
}

/// A python3 unix-socket listener on the host, started as the fixture's user; `bind` is
/// python code binding `s` (a socket), run in `cwd`. Returns once it listens.
struct Listener {
    child: Child,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen(f: &Fixture, prefix: &[&str], cwd: &Path, bind: &str) -> Listener {
    let mut argv: Vec<std::ffi::OsString> = f.user.prefix();
    argv.extend(prefix.iter().map(Into::into));
    listen_as(argv, cwd, bind)
}

/// A python3 unix-socket listener started with `argv` before `python3` (a user or
/// namespace prefix; empty: as this test process), once it is listening.
fn listen_as(mut argv: Vec<std::ffi::OsString>, cwd: &Path, bind: &str) -> Listener {
    let src = format!(
        "import socket, os, sys\ns = socket.socket(socket.AF_UNIX)\n{bind}\ns.listen(8)\nprint('ready', flush=True)\nwhile True:\n    c, _ = s.accept()\n    c.sendall(b'hello')\n    c.close()\n"
    );
    argv.extend(["python3".into(), "-c".into(), src.into()]);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", PATH)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the listener started");
    Listener { child }
}

/// A listener of the fixture's user on `sockets/host.sock` beside the workspace, which
/// anyone may connect to: its path, and the listener.
fn host_socket(f: &Fixture) -> (PathBuf, Listener) {
    let src = f.root.join("sockets");
    std::fs::create_dir(&src).unwrap();
    chown(&src, f.user.uid());
    let sock = src.join("host.sock");
    let listener = listen(f, &[], &src, &format!("s.bind({sock:?})\nos.chmod({sock:?}, 0o777)"));
    (sock, listener)
}

const CONNECT: &str = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1])\n    print('connected', s.recv(5).decode())\nexcept OSError as e:\n    print('refused', e)\n";

fn sockets_are_hidden_however_bound(user: User) {
    let f = Fixture::new(user);
    let sub = f.ws.join("sub");
    let real = f.ws.join("real");
    for d in [&sub, &real] {
        std::fs::create_dir(d).unwrap();
        chown(d, user.uid());
    }
    std::os::unix::fs::symlink(&real, f.outside.join("link")).unwrap();
    let mut cases: Vec<(&str, Listener, String)> = vec![
        // (a) bound with a relative path from inside the workspace.
        ("relative", listen(&f, &[], &sub, "s.bind('rel.sock')"), "sub/rel.sock".into()),
        // (b) bound elsewhere, then renamed into the workspace.
        (
            "renamed",
            listen(
                &f,
                &[],
                &f.outside,
                &format!("s.bind('moved.sock')\nos.rename('moved.sock', {:?})", f.ws.join("moved.sock")),
            ),
            "moved.sock".into(),
        ),
        // (c) bound through a symlinked directory.
        (
            "symlinked",
            listen(&f, &[], &f.outside, &format!("s.bind({:?})", f.outside.join("link/l.sock"))),
            "real/l.sock".into(),
        ),
    ];
    // (d) bound by a process in another network namespace.
    let unshare = match user {
        User::Root => vec!["unshare", "-n", "--"],
        User::Nobody => vec!["unshare", "-rn", "--"],
    };
    let probe = f.host(&[unshare[0], unshare[1], "true"]);
    if probe.code() == 0 {
        let bind = format!("s.bind({:?})", f.ws.join("netns.sock"));
        cases.push(("other netns", listen(&f, &unshare, &f.ws, &bind), "netns.sock".into()));
    } else {
        eprintln!(
            "{user:?}: skipping the other-network-namespace case: `unshare {}` fails here: {}",
            unshare[1],
            probe.err()
        );
    }
    for (what, _listener, rel) in &cases {
        let abs = f.ws.join(rel);
        // Control: the host reaches it.
        let o = f.host(&py(CONNECT, &[abs.to_str().unwrap()]));
        assert!(o.out().starts_with("connected hello"), "control ({what}): the host connects\n{o}");
        let o = f.run(&Pol::default(), &py(CONNECT, &[rel]), None);
        assert_eq!(o.code(), 0, "{o}");
        assert!(o.out().starts_with("refused"), "a host socket ({what}) was reachable from the sandbox\n{o}");
    }
}

/// `/opt`, where services write, is walked whole (and `/etc` in a zygote's view): a socket a root daemon binds
/// there, by an absolute path or by a relative one from another network namespace, is
/// hidden. (The package manager's trees, overlays in the view: tests/system_sockets.rs.)
fn a_root_daemon_socket_in_a_system_tree_is_hidden(user: User) {
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let f = Fixture::new(user);
    let dir = PathBuf::from(format!("/opt/paddock-view-test-{}", unique()));
    std::fs::create_dir(&dir).unwrap();
    let _remove = Remove(dir.clone());
    let abs = dir.join("abs.sock");
    // The daemons run as root (this test process), whoever runs paddock.
    let mut cases = vec![(
        "absolute",
        listen_as(vec![], Path::new("/"), &format!("s.bind({abs:?})\nos.chmod({abs:?}, 0o777)")),
        abs,
    )];
    let rel = dir.join("rel.sock");
    if Command::new("unshare").args(["-n", "true"]).status().is_ok_and(|s| s.success()) {
        let argv = ["unshare", "-n", "--"].iter().map(Into::into).collect();
        cases.push((
            "relative, other netns",
            listen_as(argv, &dir, "s.bind('rel.sock')\nos.chmod('rel.sock', 0o777)"),
            rel,
        ));
    }
    for (what, _listener, path) in &cases {
        let o = f.host(&py(CONNECT, &[path.to_str().unwrap()]));
        assert!(o.out().starts_with("connected hello"), "control ({what}): the host connects\n{o}");
        let o = f.run(&Pol { read: &["/opt"], ..Pol::default() }, &py(CONNECT, &[path.to_str().unwrap()]), None);
        assert_eq!(o.code(), 0, "{o}");
        assert!(o.out().starts_with("refused"), "a root daemon's socket ({what}) under /opt was reachable\n{o}");
    }
}

fn git(f: &Fixture, args: &[&str]) -> Out {
    let mut v = vec!["git", "-c", "user.name=t", "-c", "user.email=t@example.test", "-c", "init.defaultBranch=main"];
    v.extend_from_slice(args);
    f.host(&v)
}

fn protect_keeps_git_config_and_hooks_read_only(user: User) {
    let f = Fixture::new(user);
    let o = git(&f, &["init", "-q", "."]);
    assert_eq!(o.code(), 0, "{o}");
    write(&f.ws.join(".envrc"), "export A=1\n", 0o644);
    chown(&f.ws.join(".envrc"), user.uid());
    write(&f.ws.join("a.txt"), "a\n", 0o644);
    chown(&f.ws.join("a.txt"), user.uid());
    let protect = ["${WORKSPACE}/.git/config", "${WORKSPACE}/.git/hooks", "${WORKSPACE}/.envrc"];
    let pol = Pol { protect: &protect, ..Pol::default() };
    let id = "-c user.name=t -c user.email=t@example.test";
    let tamper = "git config core.fsmonitor /bin/evil; echo config=$?; \
                  (echo evil > .git/hooks/pre-commit) 2>/dev/null; echo hook=$?; \
                  (echo evil >> .envrc) 2>/dev/null; echo envrc=$?";
    // Control: without protect, each write succeeds.
    let o = f.run(&Pol::default(), &["sh", "-c", tamper], None);
    assert_eq!(o.out(), "config=0\nhook=0\nenvrc=0\n", "control: the writes work unprotected\n{o}");
    let o = git(&f, &["config", "--unset", "core.fsmonitor"]);
    assert_eq!(o.code(), 0, "{o}");
    std::fs::remove_file(f.ws.join(".git/hooks/pre-commit")).unwrap();
    write(&f.ws.join(".envrc"), "export A=1\n", 0o644);

    let o = f.run(&pol, &["sh", "-c", tamper], None);
    assert!(o.out().contains("config=") && !o.out().contains("config=0"), "git config wrote .git/config\n{o}");
    assert!(o.out().contains("hook=") && !o.out().contains("hook=0"), "a hook was written\n{o}");
    assert!(o.out().contains("envrc=") && !o.out().contains("envrc=0"), ".envrc was written\n{o}");
    assert!(!read(&f.ws.join(".git/config")).contains("fsmonitor"), "git config changed on the host");
    assert!(!f.ws.join(".git/hooks/pre-commit").exists(), "the hook reached the host");
    assert_eq!(read(&f.ws.join(".envrc")), "export A=1\n");

    // The rest of git works.
    let work = format!(
        "set -e; git add a.txt; git {id} commit -q -m one; git checkout -q -b topic; echo b > b.txt; git add b.txt; git {id} commit -q -m two; git log --oneline | wc -l"
    );
    let o = f.run(&pol, &["sh", "-c", &work], None);
    assert_eq!((o.code(), o.out().trim()), (0, "2"), "git add, commit and checkout -b work under protect\n{o}");
    let o = git(&f, &["branch", "--show-current"]);
    assert_eq!(o.out().trim(), "topic", "{o}");
}

fn a_walk_that_cannot_finish_fails_closed(user: User) {
    let f = Fixture::new(user);
    let secret = cert(&f);
    // Owned by a uid the sandbox does not map: its capabilities do not apply there.
    let other = 12345;
    let locked = f.ws.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::create_dir(locked.join("in")).unwrap();
    write(&locked.join("in/key.pem"), &secret, 0o644);
    chown(&locked, other);
    // Searchable but not listable: the child could open a name it guesses, the walk cannot
    // see what is there.
    chmod(&locked, 0o711);
    let o = f.host(&["cat", "locked/in/key.pem"]);
    assert_eq!(o.out(), secret, "control: a known name is reachable\n{o}");
    let pol = Pol { deny: &[PEM], ..Pol::default() };
    let o = f.run(&pol, &["cat", "locked/in/key.pem"], None);
    o.assert_absent(&secret, "a match in a directory the walk could not list");
    assert_eq!(o.code(), 71, "strict: fails closed\n{o}");
    assert!(o.err().contains(&locked.display().to_string()), "the error names the directory\n{o}");
    assert!(o.err().contains("chmod u+r") && o.err().contains("[filesystem] deny"), "and how to go on\n{o}");
    // What it suggests works: denied whole, the directory is masked without being listed.
    let whole = Pol { deny: &[PEM, "${WORKSPACE}/locked"], ..Pol::default() };
    let o = f.run(&whole, &["cat", "locked/in/key.pem"], None);
    o.assert_absent(&secret, "a match in a directory denied whole");
    assert_eq!(o.code(), 1, "strict, denied whole: runs, and cat is refused\n{o}");

    // Best-effort: runs, and the report says what is missing.
    let be = Pol { deny: &[PEM], tail: "[sandbox]\nenforcement = \"best-effort\"\n", ..Pol::default() };
    let mut argv = f.paddock_argv(&be);
    argv.insert(2, "-v".into());
    argv.push("true".into());
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.err().contains("masks incomplete") && o.err().contains(&locked.display().to_string()), "{o}");
    // Without `-v` too, before the program runs (its line comes first).
    let o = f.run(&be, &["sh", "-c", "echo RAN >&2"], None);
    assert_eq!(o.code(), 0, "{o}");
    let said = o.err().find("paddock: best-effort: the mounts layer is partial");
    assert!(said.is_some() && o.err().contains("masks incomplete"), "said by default\n{o}");
    assert!(said < o.err().find("RAN"), "said before the program ran\n{o}");

    // Neither listable nor searchable: the child cannot reach in either, so the run goes on.
    chmod(&locked, 0o700);
    let o = f.run(&pol, &["cat", "locked/in/key.pem"], None);
    o.assert_absent(&secret, "an unsearchable directory");
    assert_eq!(o.code(), 1, "runs; cat is refused by the permissions\n{o}");
    let o = f.run(&be, &["true"], None);
    assert!(!o.err().contains("masks incomplete"), "nothing missing, nothing said\n{o}");
}

/// `argv` as the fixture's user, in a mount namespace of its own where `src` is bound on
/// `dst` (the mount made as root, then the user's prefix).
fn with_bind(f: &Fixture, src: &Path, dst: &Path, argv: Vec<OsString>) -> Out {
    with_mounts(f, &format!("mount --bind {:?} {:?}", src, dst), argv)
}

/// `argv` as the fixture's user, in a mount namespace of its own where `mounts` (a shell
/// script, run as root) made its mounts first.
fn with_mounts(f: &Fixture, mounts: &str, argv: Vec<OsString>) -> Out {
    let script = format!("{mounts} && exec \"$@\"");
    let mut full: Vec<OsString> =
        ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", &script, "sh"].map(OsString::from).to_vec();
    full.extend(f.user.prefix());
    full.extend(argv);
    f.launch_as(User::Root, &full, &[], None, HANG)
}

/// A bind mount of the same filesystem inside a grant (`alias` → a directory beside the
/// workspace): its parent lists the directory the mount covers, whose inode is not the
/// mount's root's, and the walk took it for an entry that kept moving: every run failed
/// with 71 ("kept changing while the view was walked"). Now the mount's root is walked;
/// what a rule denies beneath it is masked, a first run and a cached one alike.
fn a_bind_mount_inside_a_grant_is_walked(user: User) {
    let f = Fixture::new(user);
    let secret = cert(&f);
    let src = f.root.join("bound");
    let alias = f.ws.join("alias");
    for d in [&src, &alias] {
        std::fs::create_dir(d).unwrap();
        chown(d, user.uid());
    }
    write(&src.join("a.txt"), "hello\n", 0o644);
    write(&src.join("key.pem"), &secret, 0o644);
    let o = with_bind(&f, &src, &alias, ["cat", "alias/a.txt", "alias/key.pem"].map(OsString::from).to_vec());
    assert!(o.out().contains("hello") && o.out().contains(&secret), "control: the host reads both\n{o}");
    let pol = Pol { deny: &[PEM], ..Pol::default() };
    let mut argv = f.paddock_argv(&pol);
    argv.extend(["sh", "-c", "cat alias/a.txt; cat alias/key.pem"].map(OsString::from));
    for run in ["first", "cached"] {
        let o = with_bind(&f, &src, &alias, argv.clone());
        assert!(!o.err().contains("kept changing"), "{run} run\n{o}");
        assert_eq!(o.code(), 1, "{run} run: runs, and only the key is refused\n{o}");
        assert!(o.out().contains("hello"), "{run} run\n{o}");
        o.assert_absent(&secret, "a match beneath a bind mount in the workspace");
    }
}

/// A host socket bind-mounted over a plain file's name inside a grant (as Docker makes a
/// file to mount a socket on): the directory's listing gives the mount point the type of
/// the file it covers, and the walk, which opens only what a rule names or what is listed
/// as a directory or socket, never saw it: the sandbox connected to the host's listener
/// (found by an attack). Now the host's mount points are opened by name; a first run and a
/// cached one (mounting changes no status of the directory) alike.
fn a_socket_mounted_over_a_files_name_is_hidden(user: User) {
    let f = Fixture::new(user);
    let (sock, _listener) = host_socket(&f);
    let name = f.ws.join("plain-name");
    write(&name, "", 0o644);
    chown(&name, user.uid());
    let connect = |argv: Vec<OsString>| with_bind(&f, &sock, &name, argv);
    let o = connect(py(CONNECT, &["plain-name"]).into_iter().map(OsString::from).collect());
    assert!(o.out().starts_with("connected hello"), "control: the host connects through the name\n{o}");
    let mut argv = f.paddock_argv(&Pol::default());
    argv.extend(py(CONNECT, &["plain-name"]).into_iter().map(OsString::from));
    // The workspace's listing kept by the first run, used by the second.
    wait_past_ctime_margin(std::slice::from_ref(&f.ws));
    for run in ["first", "cached"] {
        let o = connect(argv.clone());
        assert_eq!(o.code(), 0, "{run} run\n{o}");
        assert!(o.out().starts_with("refused"), "{run} run: the host socket was reachable\n{o}");
    }
}

/// The same under a grant named through a symlinked directory (`lnk/d`, `lnk` → `real`):
/// the mount point was looked up by the host's path (`real/d`), the view walked the grant
/// as named, and the socket was reachable (found by an attack). Mount points are now known
/// by their directory's device and inode.
fn a_socket_mounted_in_a_grant_named_through_a_symlink_is_hidden(user: User) {
    let f = Fixture::new(user);
    let real = f.root.join("real");
    let d = real.join("d");
    std::fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::symlink("real", f.root.join("lnk")).unwrap();
    let (sock, _listener) = host_socket(&f);
    write(&d.join("f"), "", 0o644);
    let named = f.root.join("lnk/d");
    let named_f = named.join("f");
    let target = named_f.to_str().unwrap();
    let o = with_bind(&f, &sock, &d.join("f"), py(CONNECT, &[target]).into_iter().map(OsString::from).collect());
    assert!(o.out().starts_with("connected hello"), "control: the host connects through the name\n{o}");
    let policy = f.root.join("through-link.toml");
    let text = format!("version = 1\nextends = [\"default\"]\n[filesystem]\nread = [{:?}]\n", named.to_str().unwrap());
    write(&policy, &text, 0o644);
    let ws = f.ws.to_str().unwrap();
    let mut argv: Vec<OsString> = [f.bin.to_str().unwrap(), "run", "--policy", policy.to_str().unwrap()]
        .into_iter()
        .chain(["--workspace", ws, "--"])
        .map(OsString::from)
        .collect();
    argv.extend(py(CONNECT, &[target]).into_iter().map(OsString::from));
    let o = with_bind(&f, &sock, &d.join("f"), argv);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().starts_with("refused"), "the host socket was reachable through the symlinked grant\n{o}");
    assert!(!o.out().contains("No such file"), "the grant is in the view under the name it was given\n{o}");
}

/// A grant named through absolute symlinks on its way (`hop` → `/…/lnk`, `lnk` →
/// `/…/real`, then `d`): the policy grants the path it resolves to as well, which is
/// bound, but the view had nothing under the named path: the links, resolved from the
/// scratch root while the view is built, reached nothing (a relative link worked). Now
/// each link on the way is made in the view, and the named path reaches the same objects
/// under the same rules: read-only where read, writable where written, a deny glob's
/// match masked, a host socket unreachable.
fn a_grant_named_through_absolute_symlinks_is_in_the_view(user: User) {
    let f = Fixture::new(user);
    let secret = cert(&f);
    let real = f.root.join("real");
    let d = real.join("d");
    std::fs::create_dir_all(&d).unwrap();
    write(&d.join("a.txt"), "hello\n", 0o644);
    write(&d.join("key.pem"), &secret, 0o644);
    std::os::unix::fs::symlink(&real, f.root.join("lnk")).unwrap();
    std::os::unix::fs::symlink(f.root.join("lnk"), f.root.join("hop")).unwrap();
    // A grant that is itself such a chain (`tail` -> `/…/lnk` -> `/…/real`).
    std::os::unix::fs::symlink(f.root.join("lnk"), f.root.join("tail")).unwrap();
    write(&d.join("c.txt"), "world\n", 0o644);
    let wreal = f.root.join("wreal");
    std::fs::create_dir(&wreal).unwrap();
    chown(&wreal, user.uid());
    std::os::unix::fs::symlink(&wreal, f.root.join("wlnk")).unwrap();
    chown(&d, user.uid());
    let _listener = listen(&f, &[], &d, "s.bind('host.sock')\nos.chmod('host.sock', 0o777)");
    chown(&d, 0);
    let named = f.root.join("hop/d");
    let wnamed = f.root.join("wlnk");
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let script = format!(
        "cat {a}; cat {tail}; cat {key} >/dev/null 2>&1 && echo key-read; echo w > {w}/new.txt && echo written; echo x > {b} 2>/dev/null && echo ro-written; cd {named} && pwd; python3 -c \"$0\" {sock}",
        tail = q(&f.root.join("tail/d/c.txt")),
        a = q(&named.join("a.txt")),
        key = q(&named.join("key.pem")),
        w = q(&wnamed),
        b = q(&named.join("b.txt")),
        named = q(&named),
        sock = q(&named.join("host.sock")),
    );
    let o = f.host(&["sh", "-c", &script, CONNECT]);
    assert!(
        o.out().contains("hello") && o.out().contains("key-read") && o.out().contains("connected hello"),
        "control: the host\n{o}"
    );
    std::fs::remove_file(wreal.join("new.txt")).unwrap();
    let policy = f.root.join("through-links.toml");
    let text = format!(
        "version = 1\nextends = [\"default\"]\n[filesystem]\nread = [{:?}, {:?}]\nwrite = [{:?}]\ndeny = [{:?}]\n",
        named.to_str().unwrap(),
        f.root.join("tail").to_str().unwrap(),
        wnamed.to_str().unwrap(),
        format!("{}/**/*.pem", named.to_str().unwrap()),
    );
    write(&policy, &text, 0o644);
    let argv: Vec<OsString> = [f.bin.to_str().unwrap(), "run", "--policy", policy.to_str().unwrap()]
        .into_iter()
        .chain(["--workspace", f.ws.to_str().unwrap(), "--", "sh", "-c", &script, CONNECT])
        .map(OsString::from)
        .collect();
    for run in ["first", "cached"] {
        let o = f.launch(&argv, &[], None);
        assert_eq!(o.code(), 0, "{run} run\n{o}");
        assert!(o.out().contains("hello\n"), "{run} run: the grant is read through its named path\n{o}");
        assert!(o.out().contains("world\n"), "{run} run: a grant that is a chain of links is read by its name\n{o}");
        assert!(o.out().contains("written"), "{run} run: the write grant is written through its named path\n{o}");
        assert_eq!(read(&wreal.join("new.txt")), "w\n");
        assert!(o.out().contains(&format!("{}\n", named.display())), "{run} run: the named path is a directory\n{o}");
        assert!(!o.out().contains("key-read"), "{run} run: the deny glob's match was read\n{o}");
        assert!(!o.out().contains("ro-written"), "{run} run: the read grant was written\n{o}");
        assert!(o.out().contains("refused"), "{run} run: the host socket was reachable\n{o}");
        o.assert_absent(&secret, "a deny match under a grant named through symlinks");
        std::fs::remove_file(wreal.join("new.txt")).unwrap();
    }
}

/// The walk does not enter a pseudo filesystem (`sysfs`, cgroup, ...): a `sysfs` mounted in
/// the workspace with `$STATE` bound over one of its directories and a host socket over
/// one of its files passed both over, readable and reachable (found by an attack). Now
/// what else is mounted inside a pseudo filesystem is walked from its own root.
fn mounts_inside_a_pseudo_filesystem_are_walked(user: User) {
    let f = Fixture::new(user);
    let o = f.run(&Pol::default(), &["true"], None);
    assert_eq!(o.code(), 0, "a first run writes the state\n{o}");
    // A file of sysfs to mount the socket on (any: the same superblock as the host's /sys).
    let file = std::fs::read_dir("/sys/kernel")
        .unwrap()
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .expect("a file in /sys/kernel")
        .file_name();
    let (sock, _listener) = host_socket(&f);
    let sysm = f.ws.join("sysm");
    std::fs::create_dir(&sysm).unwrap();
    chown(&sysm, user.uid());
    let on = format!("sysm/kernel/{}", file.to_str().unwrap());
    let mounts = format!(
        "mount -t sysfs sysfs {:?} && mount --bind {:?} {:?} && mount --bind {:?} {:?}",
        sysm,
        f.root.join("state"),
        sysm.join("fs"),
        sock,
        f.ws.join(&on)
    );
    let connect = py(CONNECT, &[&on]);
    let o = with_mounts(&f, &mounts, connect.iter().map(OsString::from).collect());
    assert!(o.out().starts_with("connected hello"), "control: the host connects there\n{o}");
    let o = with_mounts(&f, &mounts, ["cat", "sysm/fs/audit.jsonl"].map(OsString::from).to_vec());
    assert!(o.out().contains("call.start"), "control: the host reads the log there\n{o}");
    let mut argv = f.paddock_argv(&Pol::default());
    argv.extend(connect.iter().map(OsString::from));
    let o = with_mounts(&f, &mounts, argv);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().starts_with("refused"), "the host socket inside sysfs was reachable\n{o}");
    let mut argv = f.paddock_argv(&Pol::default());
    argv.extend(["sh", "-c", "ls sysm/fs; cat sysm/fs/audit.jsonl; true"].map(OsString::from));
    let o = with_mounts(&f, &mounts, argv);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.out().contains("audit.jsonl") && !o.out().contains("call.start"), "the state was readable\n{o}");
}

/// paddock's own state (`$STATE`: the audit log, the view cache, the token) bind-mounted
/// into the workspace, or a directory above it: masked by its path only, it was readable
/// and writable under the other name; the child appended to the audit log, and rewrote the
/// view cache so that the next start left a secret unmasked (found by an attack). Now the
/// walk masks the same directory under any name. Control: the host sees the log there.
fn paddocks_state_under_another_name_is_masked(user: User) {
    let f = Fixture::new(user);
    let state = f.root.join("state");
    let alias = f.ws.join("alias");
    std::fs::create_dir(&alias).unwrap();
    chown(&alias, user.uid());
    let o = f.run(&Pol::default(), &["true"], None);
    assert_eq!(o.code(), 0, "a first run writes the log\n{o}");
    let log = read(&state.join("audit.jsonl"));
    let o = with_bind(&f, &state, &alias, ["cat", "alias/audit.jsonl"].map(OsString::from).to_vec());
    assert_eq!(o.out(), log, "control: the host reads the log through the bind\n{o}");
    let log_file = f.ws.join("alias-file");
    write(&log_file, "", 0o644);
    chown(&log_file, user.uid());
    let running = state.join("running");
    assert!(running.is_dir(), "a run keeps its registry of running calls in $STATE/running");
    // Each bound into the workspace: the directory, one above it, one in it, a file of it.
    let cases: [(&str, &Path, &Path); 4] = [
        ("the state directory", &state, &alias),
        ("a directory above it", &f.root, &alias),
        ("a directory in it", &running, &alias),
        ("its audit log alone", &state.join("audit.jsonl"), &log_file),
    ];
    for (what, src, dst) in cases {
        let mut argv = f.paddock_argv(&Pol::default());
        let script = "ls alias alias/state; cat alias/audit.jsonl alias/state/audit.jsonl alias-file; \
                      echo x >> alias/audit.jsonl; echo x >> alias/state/audit.jsonl; echo x >> alias-file; \
                      echo x > alias/planted; true";
        argv.extend(["sh", "-c", script].map(OsString::from));
        let o = with_bind(&f, src, dst, argv);
        assert_eq!(o.code(), 0, "{what}\n{o}");
        assert!(
            !o.out().contains("audit.jsonl") && !o.out().contains("call.start") && !o.out().contains("lock"),
            "{what}: the state was readable\n{o}"
        );
        let now = read(&state.join("audit.jsonl"));
        assert!(!now.lines().any(|l| l == "x"), "{what}: the sandbox wrote the audit log\n{o}");
        assert!(!running.join("planted").exists(), "{what}: the sandbox wrote in $STATE/running\n{o}");
    }
    // An overlay with the state as its lower layer shows it under the overlay's device.
    let (upper, work) = (f.root.join("ov-upper"), f.root.join("ov-work"));
    for d in [&upper, &work] {
        std::fs::create_dir(d).unwrap();
    }
    let overlay = format!(
        "mount -t overlay ov -o lowerdir={},upperdir={},workdir={} {:?}",
        state.display(),
        upper.display(),
        work.display(),
        alias
    );
    let o = with_mounts(&f, &overlay, ["cat", "alias/audit.jsonl"].map(OsString::from).to_vec());
    assert!(o.out().contains("call.start"), "control: the host reads the log through the overlay\n{o}");
    let mut argv = f.paddock_argv(&Pol::default());
    argv.extend(["sh", "-c", "ls alias; cat alias/audit.jsonl; true"].map(OsString::from));
    let o = with_mounts(&f, &overlay, argv);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.out().contains("audit.jsonl") && !o.out().contains("call.start"), "an overlay of the state\n{o}");
    let o = f.run(&Pol::default(), &["true"], None);
    assert_eq!(o.code(), 0, "the log is whole: later runs go on\n{o}");
}

fn the_cache_never_skips_a_changed_directory(user: User) {
    let f = Fixture::new(user);
    let deep = f.ws.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    for d in [f.ws.join("a"), deep.clone()] {
        chown(&d, user.uid());
    }
    let pol = Pol { deny: &[PEM], ..Pol::default() };
    // A listing is cached only once the directory's ctime is a few seconds older than the
    // read (the "racily clean" margin).
    wait_past_ctime_margin(std::slice::from_ref(&deep));
    let o = f.run(&pol, &["true"], None);
    assert_eq!(o.code(), 0, "{o}");
    let cached = std::fs::read_dir(f.root.join("state"))
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("view-cache-"));
    assert!(cached, "the walk left a cache in $STATE");
    let mut argv = f.paddock_argv(&pol);
    argv.insert(2, "-v".into());
    argv.push("true".into());
    let o = f.launch(&argv, &[], None);
    assert!(!o.err().contains(" 0 directories from the cache"), "the second start uses the cache\n{o}");

    // A match appears in the cached directory, and its mtime is set back (what the agent
    // can do); its ctime moves all the same.
    let mtime = std::fs::metadata(&deep).unwrap().modified().unwrap();
    let secret = format!("SECRET-cached-{}", unique());
    write(&deep.join("new.pem"), &secret, 0o644);
    std::fs::File::open(&deep).unwrap().set_modified(mtime).unwrap();
    let o = f.host(&["cat", "a/b/new.pem"]);
    assert_eq!(o.out(), secret, "control: the host reads it\n{o}");
    let o = f.run(&pol, &["cat", "a/b/new.pem"], None);
    o.assert_absent(&secret, "a match in a directory changed since it was cached");
    assert_eq!(o.code(), 1, "{o}");

    // The same in the workspace itself, a root of the walk (walked from the cache too).
    let mtime = std::fs::metadata(&f.ws).unwrap().modified().unwrap();
    let secret = format!("SECRET-cached-root-{}", unique());
    write(&f.ws.join("root.pem"), &secret, 0o644);
    std::fs::File::open(&f.ws).unwrap().set_modified(mtime).unwrap();
    let o = f.host(&["cat", "root.pem"]);
    assert_eq!(o.out(), secret, "control: the host reads it\n{o}");
    let o = f.run(&pol, &["cat", "root.pem"], None);
    o.assert_absent(&secret, "a match in a root of the walk changed since it was cached");
    assert_eq!(o.code(), 1, "{o}");
}

/// A `protect` or `deny` path that does not exist when the call starts cannot be masked;
/// what the call creates there is moved aside after it (never left under its name for a
/// host tool to run), and `call.end` and run's stderr say so. Control: without the rules
/// the files stay.
fn what_a_call_creates_under_a_rule_is_moved_aside(user: User) {
    let f = Fixture::new(user);
    let plant = [
        "sh",
        "-c",
        "echo 'export EVIL=1' > .envrc && echo token > .credentials.json && mkdir -p .gemini/extensions/evil",
    ];
    let o = f.run(&Pol::default(), &plant, None);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(f.ws.join(".envrc").exists() && f.ws.join(".credentials.json").exists(), "control: the files stay");
    for p in [".envrc", ".credentials.json"] {
        std::fs::remove_file(f.ws.join(p)).unwrap();
    }
    std::fs::remove_dir_all(f.ws.join(".gemini")).unwrap();

    let pol = Pol {
        protect: &["${WORKSPACE}/.envrc", "${WORKSPACE}/.gemini/extensions"],
        deny: &["${WORKSPACE}/.credentials.json"],
        ..Pol::default()
    };
    let o = f.run(&pol, &plant, None);
    assert_eq!(o.code(), 0, "{o}");
    for p in [".envrc", ".credentials.json", ".gemini/extensions"] {
        assert!(std::fs::symlink_metadata(f.ws.join(p)).is_err(), "{p} was left on the host\n{o}");
        assert!(o.err().contains(&format!("created {}", f.ws.join(p).display())), "{p} not said\n{o}");
    }
    let aside: Vec<String> = std::fs::read_dir(&f.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".paddock-moved-"))
        .collect();
    assert_eq!(aside.len(), 2, "{aside:?}");
    let envrc = aside.iter().find(|n| n.starts_with(".envrc.")).expect("the .envrc moved aside");
    assert_eq!(read(&f.ws.join(envrc)), "export EVIL=1\n", "moved, not deleted");
    let log = read(&f.root.join("state").join("audit.jsonl"));
    let end = log.lines().rev().find(|l| l.contains("\"event\":\"call.end\"")).unwrap();
    assert!(end.contains("\"moved_aside\"") && end.contains("filesystem.protect[0]"), "{end}");
}
