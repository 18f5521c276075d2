//! End-to-end: a directory the session's user owns but cannot list (mode 000) does not let
//! a kept zygote's view go stale. Until 2026-12-05 the view stamp, taken with the user's
//! ids and no capabilities, stamped such a directory by its own status only: a host socket
//! bound later beneath it (in a subdirectory, which changes nothing the stamp compared) was
//! left unmasked in the kept view, and a call could `chmod` the directory open and connect
//! (found by the red team, as uid 65534, under the coding-agent preset's `~/.npm`: a write
//! grant no deny or protect glob scans). The view's walk goes in (the user namespace's
//! capabilities cover the user's own files), so the stamp now counts such a directory as
//! not vouched for: each call gets a zygote whose view masks what is there.
//!
//! The walk's own counterpart: those capabilities cover only files whose owner and group
//! are both mapped. A directory the user owns with another group (made in a setgid
//! directory, say) and no search right for its owner was skipped by the walk as "not
//! reachable by the child either", though the child, its owner, can `chmod` it open: a
//! deny glob's match inside was readable, in `run` and sessions alike. Such a directory is
//! now masked whole.

#[macro_use]
mod common;
use common::*;

use std::io::Write;
use std::os::unix::net::UnixListener;

both_users!(
    a_socket_bound_beneath_an_unlisted_directory_of_the_user_stays_unreachable,
    a_match_beneath_an_unwalkable_directory_of_the_user_stays_unreadable
);

fn a_socket_bound_beneath_an_unlisted_directory_of_the_user_stays_unreachable(user: User) {
    let f = Fixture::new(user);
    let npm = f.home.join(".npm");
    let (locked, sub) = (npm.join("locked"), npm.join("locked/sub"));
    std::fs::create_dir_all(&sub).unwrap();
    for d in [&npm, &locked, &sub] {
        chown(d, user.uid());
    }
    chmod(&locked, 0o000);
    // Past the stamp's margin (2 s, in whole seconds of ctime): a directory it compares by
    // status and that changed within it would retire the zygote anyway, and this test
    // would prove nothing.
    past_margin(&[&f.ws, &f.home, &npm, &locked, &sub]);
    let log = f.root.join("mcp.log");
    let mut s = McpSession::start_with_args(&f, Some(&log), &f.root.join("state"), &["--policy", "coding-agent"]);
    let a = s.call("echo ok");
    assert!(a.contains("ok\\n"), "{a}");
    // A host service binds beneath the locked directory once the zygote is there.
    let sock = sub.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    chmod(&sock, 0o777);
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let _ = (&c).write_all(b"HOST-SOCKET-REACHED");
            drop(c);
        }
    });
    let connect = format!(
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?}); print(s.recv(100))",
        sock.to_str().unwrap()
    );
    // Control: it answers (this test process is root; the locked directory's status must
    // not change here, or the check before the call would see that alone).
    let mut got = String::new();
    std::io::Read::read_to_string(&mut std::os::unix::net::UnixStream::connect(&sock).unwrap(), &mut got).unwrap();
    assert_eq!(got, "HOST-SOCKET-REACHED", "control");
    let l = locked.to_str().unwrap();
    let a = s.call(&format!("chmod 700 {l}; python3 -c '{connect}'; chmod 000 {l}; echo done"));
    s.end();
    assert!(a.contains("done\\n"), "{a}");
    assert!(!a.contains("HOST-SOCKET-REACHED"), "a call reached a host socket its view should mask: {a}");
    if user != User::Root {
        // The stamp cannot list it (root can: its watch reports the socket).
        assert!(read(&log).contains("cannot be listed by its owner"), "{}", read(&log));
    }
}

fn a_match_beneath_an_unwalkable_directory_of_the_user_stays_unreadable(user: User) {
    let f = Fixture::new(user);
    let locked = f.ws.join("locked");
    std::fs::create_dir(&locked).unwrap();
    let secret = format!("SECRET-pem-{}", unique());
    let pem = locked.join("key.pem");
    std::fs::write(&pem, &secret).unwrap();
    chown(&pem, user.uid());
    // The user's, with a group the sandbox's user namespace does not map.
    let other_group = if user == User::Root { 65534 } else { 0 };
    std::os::unix::fs::chown(&locked, Some(user.uid()), Some(other_group)).unwrap();
    let pol = Pol { deny: &["${WORKSPACE}/**/*.pem"], ..Pol::default() };
    let script = "chmod 700 locked; cat locked/key.pem; echo done";
    // Neither listed nor searched (000), and listed but not searched (600).
    for mode in [0o000, 0o600] {
        chmod(&locked, mode);
        // Control: its owner opens it up and reads it on the host.
        let host = f.host(&["sh", "-c", script]);
        assert!(host.out().contains(&secret), "control, mode {mode:o}: {host}");
        chmod(&locked, mode);
        let o = f.run(&pol, &["sh", "-c", script], None);
        assert!(o.out().contains("done"), "mode {mode:o}: {o}");
        assert!(!o.out().contains(&secret), "a deny glob's match was read, mode {mode:o}: {o}");
    }
}

/// Waits until every one of `dirs` last changed more than 2 whole seconds ago (polled).
fn past_margin(dirs: &[&std::path::Path]) {
    use std::os::unix::fs::MetadataExt;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while dirs.iter().any(|d| std::fs::symlink_metadata(d).unwrap().ctime() + 2 >= now()) {
        assert!(std::time::Instant::now() < deadline, "the directories keep changing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
