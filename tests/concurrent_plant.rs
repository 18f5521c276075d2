//! End-to-end: host-run configuration cannot be planted past the end-of-call move aside
//! by two calls running at once in the same workspace, nor by a directory made
//! unreadable. Under the embedded default policy:
//! - a call that starts while another runs does not take what that call's child made as
//!   the user's: a `.git` (or `.vscode/tasks.json`) made by call A, present at B's start,
//!   renamed away by A before it ends, and made again by B, is moved aside after B;
//! - a `d/.envrc` linked in by A before B starts, unlinked by A before it ends, and linked
//!   back by B (the same file at the same path as at B's start) is moved aside after B
//!   (the deterministic form of a race: A flipping `d/x` and `d/.envrc` while B starts);
//! - a directory of the user's made unreadable (`chmod 300`) does not hide what it holds
//!   from the scans; one the user does not own and cannot read fails the call closed.
//!
//! - a call that starts while another's child has removed the user's symlink a `deny` or
//!   `protect` rule resolves through (the rule's name, a link in the middle of its chain,
//!   a workspace link on the way from `~/.gitconfig`, `.git/modules` on a glob's literal
//!   prefix) does not start (71), rather than
//!   start with the rule resolved to the absent name and the user's file open.
//!
//! The two calls are ordered by files in the workspace (no race, no sleep): the test
//! starts A, waits until A's child has planted, starts B, whose child says it runs, lets
//! A's child go on and end, then lets B's child go on. Each scenario has its control: the
//! same plant by one call alone is moved aside (and the git plant, put back by hand,
//! runs on the host).

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

both_users!(
    a_git_dir_a_concurrent_call_made_is_not_the_users,
    a_tasks_file_a_concurrent_call_made_is_not_the_users,
    a_match_a_concurrent_call_put_in_place_is_not_the_users,
    a_match_a_call_on_an_enclosing_workspace_put_in_place_is_not_the_users,
    an_unreadable_directory_does_not_hide_a_plant,
    a_session_call_is_held_to_it,
    a_call_does_not_start_while_a_running_call_has_the_users_link_away,
);

/// A shell function for the children: waits (at most a minute) for a file to exist.
const WAIT_FOR: &str =
    "wait_for() { i=0; while [ ! -e \"$1\" ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 9; sleep 0.05; done; }\n";

/// Runs call A (`a`, which must touch `a-ready`, then wait for `b-started`) and, once A's
/// child is ready, call B (`b`, which must touch `b-started`, then wait for `a-gone`);
/// `a-gone` is made once A's process has ended. Both outcomes.
fn overlap(f: &Fixture, a: &str, b: &str) -> (Out, Out) {
    let a = format!("{WAIT_FOR}{a}");
    let b = format!("{WAIT_FOR}{b}");
    std::thread::scope(|s| {
        let first = s.spawn(|| run_default_in(f, &f.ws, &["sh", "-c", &a]));
        wait_for_path(&f.ws.join("a-ready"));
        let second = s.spawn(|| run_default_in(f, &f.ws, &["sh", "-c", &b]));
        let first = first.join().unwrap();
        write(&f.ws.join("a-gone"), "", 0o644);
        (first, second.join().unwrap())
    })
}

/// Runs `git status` on the host in the workspace as the user; whether `pwned` appeared.
fn host_git_status_runs(f: &Fixture, pwned: &Path) -> bool {
    // Its exit status does not matter (no repository once the config is gone).
    f.launch(
        &["git", "status"].map(OsString::from),
        &[("GIT_CONFIG_NOSYSTEM", "1"), ("GIT_CONFIG_GLOBAL", "/dev/null")],
        None,
    );
    let ran = pwned.exists();
    if ran {
        std::fs::remove_file(pwned).unwrap();
    }
    ran
}

fn a_git_dir_a_concurrent_call_made_is_not_the_users(user: User) {
    let f = Fixture::new(user);
    let pwned = f.home.join(format!("PWNED-{}", unique()));
    let plant = format!("git init -q . && git config core.fsmonitor 'touch {}; false'", pwned.display());
    // Control: one call alone; its config is moved aside, and put back by hand it runs.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", &plant]);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(!f.ws.join(".git/config").exists(), "control: moved aside\n{o}");
    let moved = moved_names(&f.ws.join(".git"));
    let config = moved.iter().find(|n| n.starts_with("config.")).expect("control: config moved aside");
    assert!(!host_git_status_runs(&f, &pwned), "control: nothing planted is left");
    std::fs::rename(f.ws.join(".git").join(config), f.ws.join(".git/config")).unwrap();
    assert!(host_git_status_runs(&f, &pwned), "control: the planted fsmonitor runs on the host once put back");
    std::fs::remove_dir_all(f.ws.join(".git")).unwrap();

    // A makes `.git` (config, hooks...), B starts with it there, A renames it away and
    // ends, B makes its own.
    // Every literal path the default names under `.git`: B notes none of them as absent.
    let a = "mkdir -p .git/hooks .git/worktrees && echo x > .git/config && : > .git/commondir && : > .git/config.worktree && touch a-ready
wait_for b-started; mv .git .git-a";
    let b = format!("touch b-started; wait_for a-gone; test ! -e .git && {plant} && echo B-planted");
    let (oa, ob) = overlap(&f, a, &b);
    assert_eq!(oa.code(), 0, "A\n{oa}");
    assert_eq!(ob.code(), 0, "B\n{ob}");
    assert!(ob.out().contains("B-planted"), "B\n{ob}");
    assert!(!f.ws.join(".git/config").exists(), "B's .git/config is moved aside\nA\n{oa}\nB\n{ob}");
    assert!(ob.err().contains("/ws/.git") && ob.err().contains("moved aside"), "B says so\n{ob}");
    assert!(!host_git_status_runs(&f, &pwned), "the user's next git status runs nothing planted");
    assert_eq!(read(&f.ws.join(".git-a/config")), "x\n", "A's renamed directory is not a rule's path: it stays");
}

fn a_tasks_file_a_concurrent_call_made_is_not_the_users(user: User) {
    let f = Fixture::new(user);
    let tasks = f.ws.join(".vscode/tasks.json");
    let plant = "mkdir -p .vscode && echo '{\"tasks\":[]}' > .vscode/tasks.json";
    // Control: one call alone.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", plant]);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(!tasks.exists(), "control: moved aside\n{o}");
    assert_eq!(moved_names(&f.ws.join(".vscode")).len(), 1, "control\n{o}");
    std::fs::remove_dir_all(f.ws.join(".vscode")).unwrap();

    let a = "mkdir .vscode && echo '{}' > .vscode/tasks.json && echo '{}' > .vscode/settings.json && touch a-ready
wait_for b-started; mv .vscode .vscode-a";
    let b = format!("touch b-started; wait_for a-gone; test ! -e .vscode && {plant} && echo B-planted");
    let (oa, ob) = overlap(&f, a, &b);
    assert_eq!((oa.code(), ob.code()), (0, 0), "A\n{oa}\nB\n{ob}");
    assert!(ob.out().contains("B-planted"), "B\n{ob}");
    assert!(!tasks.exists(), "B's tasks.json is moved aside\nA\n{oa}\nB\n{ob}");
    assert_eq!(moved_names(&f.ws.join(".vscode")).len(), 1, "B\n{ob}");
}

fn a_match_a_concurrent_call_put_in_place_is_not_the_users(user: User) {
    let f = Fixture::new(user);
    std::fs::create_dir(f.ws.join("d")).unwrap();
    chown(&f.ws.join("d"), user.uid());
    let envrc = f.ws.join("d/.envrc");
    // Control: one call alone puts a file in place: moved aside.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "echo 'touch PWNED' > d/x && mv d/x d/.envrc"]);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(!envrc.exists(), "control: moved aside\n{o}");
    assert_eq!(moved_names(&f.ws.join("d")).len(), 1, "control\n{o}");
    // And the user's own, there before both calls, stays through both.
    std::fs::create_dir(f.ws.join("mine")).unwrap();
    write(&f.ws.join("mine/.envrc"), "the user's", 0o644);

    // A links the file in as `d/.envrc` and unlinks that name again once B has started
    // (B's view held it there: that hold goes with the name); B links it back.
    let a = "echo 'touch PWNED' > d/x && ln d/x d/.envrc && touch a-ready
wait_for b-started; rm d/.envrc";
    let b = "touch b-started; wait_for a-gone; ln d/x d/.envrc && echo B-linked";
    let (oa, ob) = overlap(&f, a, b);
    assert_eq!((oa.code(), ob.code()), (0, 0), "A\n{oa}\nB\n{ob}");
    assert!(ob.out().contains("B-linked"), "B\n{ob}");
    assert!(!envrc.exists(), "the same file back at the same path is moved aside after B\nA\n{oa}\nB\n{ob}");
    assert_eq!(moved_names(&f.ws.join("d")).len(), 2, "the control's and B's\n{ob}");
    assert_eq!(read(&f.ws.join("mine/.envrc")), "the user's", "the user's own stays");
}

/// As above, with B's workspace inside A's (`d`): B's globs are other texts than A's
/// (`d/**/.envrc` against `**/.envrc`), and A's scan still covered `d/.envrc`.
fn a_match_a_call_on_an_enclosing_workspace_put_in_place_is_not_the_users(user: User) {
    let f = Fixture::new(user);
    let d = f.ws.join("d");
    std::fs::create_dir(&d).unwrap();
    chown(&d, user.uid());
    let envrc = d.join(".envrc");
    // Control: one call in `d` alone plants `.envrc`: moved aside.
    let o = run_default_in(&f, &d, &["sh", "-c", "echo 'touch PWNED' > x && ln x .envrc"]);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(!envrc.exists(), "control: moved aside\n{o}");
    std::fs::remove_file(d.join(&moved_names(&d)[0])).unwrap();
    let a = format!(
        "{WAIT_FOR}echo 'touch PWNED' > d/x && ln d/x d/.envrc && touch a-ready\nwait_for d/b-started; rm d/.envrc"
    );
    let b = format!("{WAIT_FOR}touch b-started; wait_for a-gone; ln x .envrc && echo B-linked");
    let (oa, ob) = std::thread::scope(|s| {
        let first = s.spawn(|| run_default_in(&f, &f.ws, &["sh", "-c", &a]));
        wait_for_path(&f.ws.join("a-ready"));
        let second = s.spawn(|| run_default_in(&f, &d, &["sh", "-c", &b]));
        let first = first.join().unwrap();
        write(&d.join("a-gone"), "", 0o644);
        (first, second.join().unwrap())
    });
    assert_eq!((oa.code(), ob.code()), (0, 0), "A\n{oa}\nB\n{ob}");
    assert!(ob.out().contains("B-linked"), "B\n{ob}");
    assert!(
        !envrc.exists(),
        "the file A put in place, back at the same path, is moved aside after B\nA\n{oa}\nB\n{ob}"
    );
    assert_eq!(moved_names(&d).len(), 1, "B's\n{ob}");
}

fn an_unreadable_directory_does_not_hide_a_plant(user: User) {
    let f = Fixture::new(user);
    let d = f.ws.join("d");
    // Control: the plant, in a directory left readable, is moved aside.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "mkdir d && echo 'touch PWNED' > d/.envrc"]);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(!d.join(".envrc").exists(), "control: moved aside\n{o}");
    std::fs::remove_dir_all(&d).unwrap();

    // Call 1 plants and makes the directory unreadable; call 2 makes it readable again;
    // call 3 would take what it holds as the user's.
    let o1 = run_default_in(&f, &f.ws, &["sh", "-c", "mkdir d && echo 'touch PWNED' > d/.envrc && chmod 300 d"]);
    assert_eq!(o1.code(), 0, "call 1\n{o1}");
    assert_eq!(std::fs::symlink_metadata(&d).unwrap().permissions().mode() & 0o7777, 0o300, "mode put back");
    assert!(o1.err().contains("moved aside"), "call 1 says so\n{o1}");
    let o2 = run_default_in(&f, &f.ws, &["sh", "-c", "chmod 755 d"]);
    assert_eq!(o2.code(), 0, "call 2\n{o2}");
    let o3 = run_default_in(&f, &f.ws, &["true"]);
    assert_eq!(o3.code(), 0, "call 3\n{o3}");
    assert!(!d.join(".envrc").exists(), "nothing planted is left\n{o1}\n{o2}\n{o3}");
    assert_eq!(moved_names(&d).len(), 1);

    // A directory the user does not own and cannot read (others may write and search
    // it): the view cannot mask what it holds, so uid 65534's call is refused (strict);
    // root reads it, and the plant is moved aside.
    let locked = f.ws.join("locked");
    std::fs::create_dir(&locked).unwrap();
    chmod(&locked, 0o303);
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "echo 'touch PWNED' > locked/.envrc"]);
    chmod(&locked, 0o755);
    assert!(!locked.join(".envrc").exists(), "{o}");
    if user == User::Root {
        assert_eq!(o.code(), 0, "{o}");
        assert!(o.err().contains("moved aside"), "{o}");
    } else {
        assert_eq!(o.code(), 71, "{o}");
        assert!(o.err().contains("locked: cannot list the directory"), "{o}");
    }
}

/// B is a session call (`paddock mcp`), started while a `paddock run` (A) runs.
fn a_session_call_is_held_to_it(user: User) {
    let f = Fixture::new(user);
    let tasks = f.ws.join(".vscode/tasks.json");
    let plant = "mkdir -p .vscode && echo '{\"tasks\":[]}' > .vscode/tasks.json";
    // Control: a session call alone.
    let answer = mcp_shell_call(&f, plant);
    assert!(!tasks.exists() && answer.contains("moved aside to"), "control: {answer}");
    std::fs::remove_dir_all(f.ws.join(".vscode")).unwrap();

    let a = format!(
        "{WAIT_FOR}mkdir .vscode && echo '{{}}' > .vscode/tasks.json && echo '{{}}' > .vscode/settings.json && touch a-ready
wait_for b-started; mv .vscode .vscode-a"
    );
    let b = format!("{WAIT_FOR}touch b-started; wait_for a-gone; test ! -e .vscode && {plant} && echo B-planted");
    let (oa, answer) = std::thread::scope(|s| {
        let first = s.spawn(|| run_default_in(&f, &f.ws, &["sh", "-c", &a]));
        wait_for_path(&f.ws.join("a-ready"));
        let second = s.spawn(|| mcp_shell_call(&f, &b));
        let first = first.join().unwrap();
        write(&f.ws.join("a-gone"), "", 0o644);
        (first, second.join().unwrap())
    });
    assert_eq!(oa.code(), 0, "A\n{oa}");
    assert!(answer.contains("B-planted"), "B: {answer}");
    assert!(!tasks.exists(), "B's tasks.json is moved aside: {answer}");
    assert!(answer.contains("moved aside to"), "B's outcome says so: {answer}");
}

/// Found by an attack (race_symlink, race_deny): call A removes the user's symlink under a
/// rule (made again when A ends); call B, started meanwhile, compiled its policy without
/// it, so the file the user's link names was neither masked nor read-only in B's view:
/// B wrote `cfg/real.json` (the user's `.claude/settings.json` afterwards) and read
/// `.env.production`. B now does not start (71) and says why; once A ended, the links are
/// the user's and the files untouched. A normal overlap (links left alone) still runs.
fn a_call_does_not_start_while_a_running_call_has_the_users_link_away(user: User) {
    use std::os::unix::fs::symlink;
    let f = Fixture::new(user);
    let secret = format!("DB_PASSWORD=s3cr3t-{}", unique());
    for d in [".claude", "cfg", ".vscode", "config-v2", "cfg2-v2", ".git", "mods", "mods/lib"] {
        std::fs::create_dir(f.ws.join(d)).unwrap();
        chown(&f.ws.join(d), user.uid());
    }
    let files = [
        ("cfg/real.json", "{}"),
        (".env.production", secret.as_str()),
        ("config-v2/settings.json", "{}"),
        ("cfg2-v2/gitconfig", "[user]\n"),
        ("mods/lib/config", "[core]\n"),
    ];
    for (name, text) in files {
        write(&f.ws.join(name), text, 0o666);
        chown(&f.ws.join(name), user.uid());
    }
    symlink("../cfg/real.json", f.ws.join(".claude/settings.json")).unwrap();
    symlink(".env.production", f.ws.join(".env")).unwrap();
    symlink("../shared/settings.json", f.ws.join(".vscode/settings.json")).unwrap();
    symlink("config-v2", f.ws.join("shared")).unwrap();
    symlink("cfg2-v2", f.ws.join("cfg2")).unwrap();
    symlink("../mods", f.ws.join(".git/modules")).unwrap();
    symlink(f.ws.join("cfg2/gitconfig"), f.home.join(".gitconfig")).unwrap();

    // Runs A (`a`, then it says it is ready and waits) and, once A's child is ready, B
    // alone; lets A end once B has.
    let race = |a: &str, b: &str| -> (Out, Out) {
        let a = format!("{WAIT_FOR}{a}; touch a-ready; wait_for b-gone");
        std::thread::scope(|s| {
            let first = s.spawn(|| run_default_in(&f, &f.ws, &["sh", "-c", &a]));
            wait_for_path(&f.ws.join("a-ready"));
            let second = run_default_in(&f, &f.ws, &["sh", "-c", b]);
            write(&f.ws.join("b-gone"), "", 0o644);
            let first = first.join().unwrap();
            for n in ["a-ready", "b-gone"] {
                std::fs::remove_file(f.ws.join(n)).unwrap();
            }
            (first, second)
        })
    };

    // Control: one call alone reads nothing of the denied file and writes none of the
    // protected ones; and two calls that leave the links alone run at once.
    let attack = "cat .env.production; echo '{\"hooks\":\"PWNED\"}' > cfg/real.json; echo PWNED > config-v2/settings.json; echo PWNED >> cfg2-v2/gitconfig; echo PWNED >> mods/lib/config; echo B-ran";
    let o = run_default_in(&f, &f.ws, &["sh", "-c", attack]);
    assert!(!o.out().contains(&secret), "control\n{o}");
    let (oa, ob) = race("echo a > a.txt", "echo b > b.txt && echo B-ran");
    assert_eq!((oa.code(), ob.code()), (0, 0), "a normal overlap runs\nA\n{oa}\nB\n{ob}");
    assert!(ob.out().contains("B-ran"), "B\n{ob}");

    // The rule's name (protect and deny), a link in the middle of a chain, a workspace
    // link on the way from a rule outside the workspace (`~/.gitconfig`).
    for (link, why) in [
        (".claude/settings.json", "protect"),
        (".env", "deny"),
        ("shared", "a link in the middle of a chain"),
        ("cfg2", "a link on the way from ~/.gitconfig"),
        (".git/modules", "a link on a glob's literal prefix"),
    ] {
        let (oa, ob) = race(&format!("rm {link}"), attack);
        assert_eq!(ob.code(), 71, "{why}: B does not start\nA\n{oa}\nB\n{ob}");
        assert!(!ob.out().contains("B-ran") && !ob.out().contains(&secret), "{why}\nB\n{ob}");
        assert!(
            ob.err().contains("did not start") && ob.err().contains(&format!("/ws/{link} is gone")),
            "{why}: B says why\n{ob}"
        );
        assert_eq!(oa.code(), 0, "{why}\nA\n{oa}");
        assert!(
            std::fs::symlink_metadata(f.ws.join(link)).unwrap().file_type().is_symlink(),
            "{why}: A's end made the link again\n{oa}"
        );
    }
    for (name, text) in files {
        assert_eq!(read(&f.ws.join(name)), text, "{name} is the user's");
    }
    assert_eq!(read(&f.ws.join(".claude/settings.json")), "{}");
    assert_eq!(read(&f.home.join(".gitconfig")), "[user]\n");
}
