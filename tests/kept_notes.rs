//! End-to-end: a session call takes the last start's notes of the deny and protect rules'
//! ways (what was absent, the rules' resolution checked again) only while an inotify
//! watch on those ways says nothing changed (`paddock::session::notes`). Under the
//! embedded default policy, in one `paddock mcp` session whose calls took kept notes (its
//! debug log says so), a change the session's view does not see (its zygote stays) made
//! on the host between two calls refuses the next call (71), as looking again does, and
//! the file the changed way leads to keeps its contents:
//! - `~/.gitconfig`, a symlink in the home (outside the view) to a workspace file,
//!   re-pointed to another workspace file;
//! - the workspace's `.git` file (`gitdir: ./.bare`) rewritten in place to name another
//!   directory (the workspace's entries stay as they were);
//! - a symlink on `~/.gitconfig`'s way in a directory the user may search but not read
//!   (mode 0711, root's): re-pointed by root. A watch needs read permission, so as uid
//!   65534 nothing is kept (each call looks again); as root the watch says it;
//! - `~/.config/git/config` made a link to a workspace file after the directory holding it
//!   was replaced (renamed away and made again; removed and made again, often under the
//!   freed inode number), or made readable (root's, 0700, then 0755), and the session's
//!   calls took kept notes again since (found by an attack: the new directory's entries
//!   were not watched, and the call ran).

#[macro_use]
mod common;
use common::*;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

both_users!(
    a_link_re_pointed_in_the_home_refuses_the_next_call,
    a_git_file_rewritten_in_place_refuses_the_next_call,
    a_link_in_a_directory_the_user_cannot_read_refuses_the_next_call,
    a_link_made_in_a_directory_replaced_on_the_way_refuses_the_next_call,
);

/// The debug line of a call that took the last start's notes.
const KEPT: &str = "the last start's notes of the rules' ways stand for this call's";

/// A workspace directory `name` of the user's, holding `file` with `text`.
fn own_dir_with(f: &Fixture, name: &str, file: &str, text: &str) -> PathBuf {
    let d = f.ws.join(name);
    std::fs::create_dir(&d).unwrap();
    chown(&d, f.user.uid());
    write(&d.join(file), text, 0o666);
    chown(&d.join(file), f.user.uid());
    d
}

/// Starts a session (debug log at `log`) once `settled` are past the ctime margin (so its
/// zygote's view stamp holds), makes three calls, and says how many took kept notes.
fn warm(f: &Fixture, settled: &[PathBuf], log: &Path) -> (McpSession, usize) {
    wait_past_ctime_margin(settled);
    let mut s = McpSession::start(f, Some(log));
    for _ in 0..3 {
        let a = s.call("echo warm");
        assert!(a.contains(r#"\"exit_code\":0"#), "{a}");
    }
    let kept = read(log).matches(KEPT).count();
    (s, kept)
}

/// The call after the change: refused, and `target` (what the changed way leads to now)
/// unchanged by it; the zygote was not replaced (the view did not see the change).
fn assert_refused(s: McpSession, log: &Path, target: &Path) {
    let before = read(target);
    let mut s = s;
    let a = s.call(&format!("echo PWNED >> {}; echo ran", sh_quote(&target.to_string_lossy())));
    s.end();
    assert!(a.contains(r#"\"exit_code\":71"#) && !a.contains(r#"ran\\n"#), "refused: {a}");
    assert!(a.contains("changed since"), "says why: {a}");
    assert_eq!(read(target), before, "{} unchanged", target.display());
    let log = read(log);
    assert!(!log.contains("view is out of date"), "the session's view did not see the change:\n{log}");
}

fn a_link_re_pointed_in_the_home_refuses_the_next_call(user: User) {
    let f = Fixture::new(user);
    let (a, b) = (own_dir_with(&f, "cfg-a", "gitconfig", "[a]\n"), own_dir_with(&f, "cfg-b", "gitconfig", "[b]\n"));
    let link = f.home.join(".gitconfig");
    symlink(a.join("gitconfig"), &link).unwrap();
    let log = f.root.join("mcp.log");
    let (s, kept) = warm(&f, &[f.ws.clone(), a, b.clone(), f.home.clone()], &log);
    assert!(kept >= 1, "the calls took kept notes:\n{}", read(&log));
    std::fs::remove_file(&link).unwrap();
    symlink(b.join("gitconfig"), &link).unwrap();
    assert_refused(s, &log, &b.join("gitconfig"));
}

fn a_git_file_rewritten_in_place_refuses_the_next_call(user: User) {
    let f = Fixture::new(user);
    let (a, b) = (own_dir_with(&f, ".bare", "config", "[a]\n"), own_dir_with(&f, ".bare2", "config", "[b]\n"));
    let gitfile = f.ws.join(".git");
    write(&gitfile, "gitdir: ./.bare\n", 0o644);
    chown(&gitfile, user.uid());
    let log = f.root.join("mcp.log");
    let (s, kept) = warm(&f, &[f.ws.clone(), a, b.clone()], &log);
    assert!(kept >= 1, "the calls took kept notes:\n{}", read(&log));
    // In place: the workspace's entries (and its directory's times) stay as they were.
    let mut w = std::fs::OpenOptions::new().write(true).truncate(true).open(&gitfile).unwrap();
    std::io::Write::write_all(&mut w, b"gitdir: ./.bare2\n").unwrap();
    drop(w);
    assert_refused(s, &log, &b.join("config"));
}

fn a_link_in_a_directory_the_user_cannot_read_refuses_the_next_call(user: User) {
    let f = Fixture::new(user);
    let (a, b) = (own_dir_with(&f, "cfg-a", "gitconfig", "[a]\n"), own_dir_with(&f, "cfg-b", "gitconfig", "[b]\n"));
    let locked = f.outside.join("locked");
    std::fs::create_dir(&locked).unwrap();
    let inner = locked.join("gitconfig");
    symlink(a.join("gitconfig"), &inner).unwrap();
    chmod(&locked, 0o711);
    symlink(&inner, f.home.join(".gitconfig")).unwrap();
    let log = f.root.join("mcp.log");
    let (s, kept) = warm(&f, &[f.ws.clone(), a, b.clone(), f.home.clone(), locked.clone()], &log);
    match user {
        User::Root => assert!(kept >= 1, "root reads it: the calls took kept notes:\n{}", read(&log)),
        User::Nobody => assert_eq!(kept, 0, "a watch cannot vouch for it: nothing kept:\n{}", read(&log)),
    }
    std::fs::remove_file(&inner).unwrap();
    symlink(b.join("gitconfig"), &inner).unwrap();
    assert_refused(s, &log, &b.join("gitconfig"));
}

/// A change made on the host between two calls.
type Change = dyn Fn(&Fixture);

/// The fixture's `~/.config`.
fn config(f: &Fixture) -> PathBuf {
    f.home.join(".config")
}

fn a_link_made_in_a_directory_replaced_on_the_way_refuses_the_next_call(user: User) {
    let replacements: [(&str, &Change); 3] = [
        ("renamed away and made again", &|f| {
            std::fs::rename(config(f).join("git"), config(f).join("git.old")).unwrap();
            std::fs::create_dir(config(f).join("git")).unwrap();
        }),
        ("removed and made again", &|f| {
            std::fs::remove_dir(config(f).join("git")).unwrap();
            std::fs::create_dir(config(f).join("git")).unwrap();
        }),
        ("made readable", &|f| {
            chmod(&config(f), 0o755);
            std::fs::create_dir(config(f).join("git")).unwrap();
        }),
    ];
    for (how, replace) in replacements {
        let f = Fixture::new(user);
        let b = own_dir_with(&f, "cfg-b", "gitconfig", "[b]\n");
        std::fs::create_dir(config(&f)).unwrap();
        if how == "made readable" {
            chmod(&config(&f), 0o700); // root's
        } else {
            std::fs::create_dir(config(&f).join("git")).unwrap();
        }
        let log = f.root.join("mcp.log");
        let (mut s, _) = warm(&f, &[f.ws.clone(), b.clone()], &log);
        replace(&f);
        // Calls until one takes kept notes again (the change is seen, the new directory
        // watched, notes kept from the next look).
        let kept = read(&log).matches(KEPT).count();
        let mut again = false;
        for _ in 0..4 {
            let a = s.call("echo warm");
            assert!(a.contains(r#"\"exit_code\":0"#), "{how}: {a}");
            again = read(&log).matches(KEPT).count() > kept;
            if again {
                break;
            }
        }
        if user == User::Root || how != "made readable" {
            assert!(again, "{how}: the calls took kept notes again:\n{}", read(&log));
        }
        symlink(b.join("gitconfig"), config(&f).join("git/config")).unwrap();
        assert_refused(s, &log, &b.join("gitconfig"));
    }
}
