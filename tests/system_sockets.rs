//! Host sockets in the package manager's read-only trees (`/usr`, `/lib`, ...), which the
//! view mounts through a read-only overlay instead of walking them: unreachable from the
//! sandbox however they were bound (a relative path, another network namespace, an
//! absolute path) and by a root daemon whoever runs paddock; deny rules beneath them still
//! masked; a tree that cannot be overlaid walked whole instead. A one-shot run mounts
//! `/etc` through the overlay too (a zygote binds and walks it): a socket under it stays
//! unreachable, and deny rules beneath it masked. As root and as uid 65534, each with a
//! control showing the same connect works outside the sandbox.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

both_users!(
    a_host_socket_in_a_system_tree_is_unreachable_however_bound,
    a_socket_under_etc_bound_by_a_relative_path_is_hidden,
    a_deny_beneath_a_system_tree_stays_masked,
    a_run_overlays_etc_and_masks_the_deny_rules_beneath_it,
    a_system_tree_with_a_mount_beneath_is_walked_whole,
    a_tree_the_kernel_will_not_overlay_is_walked_whole_or_refused,
);

const CONNECT: &str = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1])\n    print('connected', s.recv(5).decode())\nexcept OSError as e:\n    print('refused', e)\n";

/// A directory made for one test in a host tree (as this process, root), mode 0755, and
/// removed when the test ends, however it ends.
struct TestDir(PathBuf);

impl TestDir {
    fn new(parent: &str) -> TestDir {
        let d = PathBuf::from(format!("{parent}/paddock-test-{}", unique()));
        std::fs::create_dir(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        chmod(&d, 0o755);
        TestDir(d)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// A python3 unix-socket listener on the host, as this test process (root, like a system
/// daemon) with `prefix` before python3 (`unshare -n`), in `cwd`; `bind` is python binding
/// `s`. The socket is made mode 0777, so that the kernel's permission check is not what
/// stops uid 65534. Killed when dropped.
struct Listener(Child);

impl Listener {
    fn start(prefix: &[&str], cwd: &Path, bind: &str, name: &str) -> Listener {
        let src = format!(
            "import socket, os\ns = socket.socket(socket.AF_UNIX)\n{bind}\nos.chmod({name:?}, 0o777)\ns.listen(8)\nprint('ready', flush=True)\nwhile True:\n    c, _ = s.accept()\n    c.sendall(b'hello')\n    c.close()\n"
        );
        let mut argv: Vec<OsString> = prefix.iter().map(Into::into).collect();
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
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `paddock run --policy default -- argv`, as the fixture's user, in its workspace.
fn run_default(f: &Fixture, argv: &[&str]) -> Out {
    let mut full: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--policy".into(), "default".into()];
    full.extend(["--workspace".into(), f.ws.clone().into(), "--".into()]);
    full.extend(argv.iter().map(OsString::from));
    f.launch(&full, &[], None)
}

/// Each socket: the fixture's user reaches it on the host (the control), and not from
/// `paddock run` under the default policy.
fn assert_unreachable(f: &Fixture, cases: &[(&str, Listener, PathBuf)]) {
    for (what, _listener, path) in cases {
        let p = path.to_str().unwrap();
        let o = f.host(&py(CONNECT, &[p]));
        assert!(o.out().starts_with("connected hello"), "control ({what}): the host connects\n{o}");
        let o = run_default(f, &py(CONNECT, &[p]));
        assert_eq!(o.code(), 0, "{o}");
        assert!(o.out().starts_with("refused"), "a host socket ({what}) at {p} was reachable from the sandbox\n{o}");
    }
}

/// Writes `secret` into each of `files` (mode 0644); the script that prints what the
/// sandbox can read of them, in order, then a newline.
fn cat_each(files: &[&PathBuf], secret: &str) -> String {
    for p in files {
        write(p, secret, 0o644);
    }
    let quoted: Vec<String> = files.iter().map(|p| sh_quote(p.to_str().unwrap())).collect();
    format!("cat {} 2>/dev/null; echo", quoted.join(" "))
}

/// Whether this process can make a network namespace (the other-namespace case needs one).
fn unshare_net_works() -> bool {
    Command::new("unshare").args(["-n", "true"]).status().is_ok_and(|s| s.success())
}

fn a_host_socket_in_a_system_tree_is_unreachable_however_bound(user: User) {
    let f = Fixture::new(user);
    let dir = TestDir::new("/usr/lib");
    let d = &dir.0;
    let abs = d.join("abs.sock");
    let mut cases = vec![
        // (a) bound by a relative path, from inside the directory.
        ("relative", Listener::start(&[], d, "s.bind('rel.sock')", "rel.sock"), d.join("rel.sock")),
        // (c) bound by an absolute path.
        (
            "absolute",
            Listener::start(&[], Path::new("/"), &format!("s.bind({abs:?})"), abs.to_str().unwrap()),
            abs.clone(),
        ),
    ];
    // (b) bound, by a relative path, by a process in another network namespace.
    assert!(unshare_net_works(), "`unshare -n` works for root here");
    cases.push((
        "relative, other netns",
        Listener::start(&["unshare", "-n", "--"], d, "s.bind('netns.sock')", "netns.sock"),
        d.join("netns.sock"),
    ));
    // The sockets are in the view (as files), only unreachable.
    let listed = format!("for s in {}; do test -S \"$s\" && echo yes; done", {
        cases.iter().map(|c| sh_quote(c.2.to_str().unwrap())).collect::<Vec<_>>().join(" ")
    });
    let o = run_default(&f, &["sh", "-c", &listed]);
    assert_eq!(o.out(), "yes\n".repeat(cases.len()), "the sandbox sees the directory of the sockets\n{o}");
    assert_unreachable(&f, &cases);
}

fn a_socket_under_etc_bound_by_a_relative_path_is_hidden(user: User) {
    let f = Fixture::new(user);
    let dir = TestDir::new("/etc");
    let d = &dir.0;
    let mut cases = vec![("relative", Listener::start(&[], d, "s.bind('rel.sock')", "rel.sock"), d.join("rel.sock"))];
    assert!(unshare_net_works(), "`unshare -n` works for root here");
    cases.push((
        "relative, other netns",
        Listener::start(&["unshare", "-n", "--"], d, "s.bind('netns.sock')", "netns.sock"),
        d.join("netns.sock"),
    ));
    assert_unreachable(&f, &cases);
}

fn a_deny_beneath_a_system_tree_stays_masked(user: User) {
    let f = Fixture::new(user);
    let dir = TestDir::new("/usr/lib");
    let secret = format!("SECRET-usr-{}", unique());
    let (denied, globbed, kept) = (dir.0.join("secret.txt"), dir.0.join("a.key"), dir.0.join("kept.txt"));
    let script = cat_each(&[&denied, &globbed, &kept], &secret);
    // Control: without the rules, the sandbox reads all three through the overlay.
    let o = f.run(&Pol::default(), &["sh", "-c", &script], None);
    assert_eq!(o.out(), format!("{}\n", secret.repeat(3)), "control: the files are in the view\n{o}");
    let glob = format!("{}/*.key", dir.0.display());
    let deny = [denied.to_str().unwrap(), glob.as_str()];
    let o = f.run(&Pol { deny: &deny, ..Pol::default() }, &["sh", "-c", &script], None);
    assert_eq!(o.out(), format!("{secret}\n"), "only the file no deny rule names is read\n{o}");
}

/// A one-shot run mounts `/etc` through the overlay (its report says so, or why not where
/// the host has mounts beneath it) and walks it only beneath its rules, which still mask
/// what they name: a file, a glob's match, a directory.
fn a_run_overlays_etc_and_masks_the_deny_rules_beneath_it(user: User) {
    let f = Fixture::new(user);
    let dir = TestDir::new("/etc");
    let secret = format!("SECRET-etc-{}", unique());
    let sub = dir.0.join("private");
    std::fs::create_dir(&sub).unwrap();
    chmod(&sub, 0o755);
    let (denied, globbed, inner, kept) =
        (dir.0.join("secret.txt"), dir.0.join("a.key"), sub.join("inner.txt"), dir.0.join("kept.txt"));
    let script = cat_each(&[&denied, &globbed, &inner, &kept], &secret);
    // Control: without the rules, the sandbox reads all four.
    let o = f.run(&Pol::default(), &["sh", "-c", &script], None);
    assert_eq!(o.out(), format!("{}\n", secret.repeat(4)), "control: the files are in the view\n{o}");
    let glob = format!("{}/*.key", dir.0.display());
    let deny = [denied.to_str().unwrap(), glob.as_str(), sub.to_str().unwrap()];
    let pol = Pol { deny: &deny, ..Pol::default() };
    let o = f.run(&pol, &["sh", "-c", &script], None);
    assert_eq!(o.out(), format!("{secret}\n"), "only the file no deny rule names is read\n{o}");
    // The report: `/etc` among the overlays, or the reason it is bound and walked whole.
    let mut argv = f.paddock_argv(&pol);
    argv.insert(1, "-v".into());
    argv.push("true".into());
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    let mounts = o.err().lines().find(|l| l.trim_start().starts_with("mounts ")).unwrap_or_default().to_string();
    let overlaid = mounts
        .split("read-only overlays")
        .nth(1)
        .is_some_and(|rest| rest.split(',').next().unwrap_or_default().split_whitespace().any(|w| w == "/etc"));
    assert!(
        overlaid || mounts.contains("/etc bound and walked whole: "),
        "a run's report names /etc among its overlays (or says why not)\n{o}"
    );
}

/// A system tree with a mount beneath it on the host is not overlaid (the overlay would hide
/// the mount): it is bound and walked whole, so a socket in it is masked all the same, and
/// the report says so. The mount is made in a mount namespace of the test's own (`unshare
/// -m`, `-r` too for uid 65534), where the listener and paddock run.
fn a_system_tree_with_a_mount_beneath_is_walked_whole(user: User) {
    let f = Fixture::new(user);
    let dir = TestDir::new("/usr/lib");
    let sub = dir.0.join("sub");
    std::fs::create_dir(&sub).unwrap();
    chmod(&sub, 0o755);
    let unshare: &[&str] = match user {
        User::Root => &["unshare", "-m", "--"],
        User::Nobody => &["unshare", "-rm", "--"],
    };
    let listener = "import socket, os, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind('rel.sock')\ns.listen(8)\n\
                    print('ready', flush=True)\nwhile True:\n    c, _ = s.accept()\n    c.sendall(b'hello')\n    c.close()\n";
    // In the namespace: a tmpfs on `sub`, a listener bound there by a relative path (as the
    // namespace's root), the control connect, then paddock's.
    let script = r#"
        set -e
        mount -t tmpfs tmpfs "$1"
        cd "$1"
        python3 -c "$2" > ready &
        pid=$!
        trap 'kill $pid' EXIT
        i=0; until grep -q ready ready; do i=$((i+1)); test $i -lt 3000; sleep 0.01; done
        echo "host: $(python3 -c "$3" "$1/rel.sock")"
        cd "$4"
        echo "sandbox: $("$5" -v run --policy default --workspace "$4" -- python3 -c "$3" "$1/rel.sock" 2>report)"
        grep -o '/usr bound and walked whole: [^;]*' report || cat report
    "#;
    let mut argv: Vec<&str> = unshare.to_vec();
    let (s, w, b) = (sub.to_str().unwrap(), f.ws.to_str().unwrap(), f.bin.to_str().unwrap());
    argv.extend(["sh", "-c", script, "sh", s, listener, CONNECT, w, b]);
    let o = f.host(&argv);
    assert_eq!(o.code(), 0, "{o}");
    let out = o.out();
    assert!(out.contains("host: connected hello"), "control: the namespace's own connect works\n{o}");
    assert!(out.contains("sandbox: refused"), "a socket beneath a mount in /usr was reachable\n{o}");
    assert!(
        out.contains("/usr bound and walked whole: it has mounts beneath it"),
        "the report says /usr was walked whole, and why\n{o}"
    );
}

/// A system tree the kernel refuses to overlay (here: `/usr` already two overlays deep, in
/// a mount namespace of the test's own, so a third is past the kernel's stacking limit) is
/// bound and walked whole instead. That walk either completes (the run goes on and the
/// report says why `/usr` was walked) or cannot (overlays below overlays can list
/// directories under other inode numbers than they stat them): then `strict` refuses with
/// 71 naming `/usr` and the overlay's error, and best-effort runs and says the masks are
/// incomplete. Never a silent run.
fn a_tree_the_kernel_will_not_overlay_is_walked_whole_or_refused(user: User) {
    let f = Fixture::new(user);
    let layers = f.root.join("layers");
    std::fs::create_dir(&layers).unwrap();
    chmod(&layers, 0o755);
    let unshare: &[&str] = match user {
        User::Root => &["unshare", "-m", "--"],
        User::Nobody => &["unshare", "-rm", "--"],
    };
    let script = r#"
        set -e
        mount -t tmpfs tmpfs "$1"
        mkdir "$1/a" "$1/b"
        mount -t overlay a -o "ro,lowerdir=/usr:$1/a" /usr
        mount -t overlay b -o "ro,lowerdir=/usr:$1/b" /usr
        cd "$2"
        set +e
        "$3" -v run --policy "$4" --workspace "$2" -- true 2>strict.err
        echo "strict exit $?"
        grep -h -e 'unavailable' -e '^  mounts' strict.err
        "$3" -v run --policy "$5" --workspace "$2" -- true 2>be.err
        echo "best-effort exit $?"
        grep -h '^  mounts' be.err
    "#;
    let strict = f.policy(&Pol::default());
    let best_effort = f.policy(&Pol { tail: "[sandbox]\nenforcement = \"best-effort\"\n", ..Pol::default() });
    let mut argv: Vec<&str> = unshare.to_vec();
    let (l, w, b) = (layers.to_str().unwrap(), f.ws.to_str().unwrap(), f.bin.to_str().unwrap());
    argv.extend(["sh", "-c", script, "sh", l, w, b, strict.to_str().unwrap(), best_effort.to_str().unwrap()]);
    let o = f.host(&argv);
    let out = o.out();
    let why = "/usr bound and walked whole: no read-only overlay of /usr (fsconfig(create): ";
    assert!(out.contains(why), "the report or the refusal says why /usr was not overlaid\n{o}");
    if out.contains("strict exit 0") {
        assert!(out.contains("best-effort exit 0"), "{o}");
        assert!(!out.contains("masks incomplete"), "{o}");
    } else {
        assert!(out.contains("strict exit 71"), "strict refuses when the walk cannot finish\n{o}");
        assert!(out.contains("deny/protect masks incomplete: /usr/"), "the refusal names the place\n{o}");
        assert!(out.contains("best-effort exit 0"), "best-effort runs\n{o}");
        assert!(out.contains("masks incomplete"), "best-effort's report says what is missing\n{o}");
    }
}
