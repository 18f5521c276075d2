//! End-to-end: a call cannot carry a denied, protected or paddock-state path out of its
//! rule by renaming a directory above it (the red team's F1, F3, F5, F12 of issue 9).
//!
//! The view's masks and read-only binds sit on the objects that exist at the start; a later
//! call, the host and paddock itself look them up by path again. So every directory between
//! a write grant and such a path whose name the rule depends on is pinned (bound onto
//! itself: rename(2) and rmdir(2) fail with EBUSY), and paddock opens its own state files
//! without following a symlink. Each scenario runs as root and as uid 65534, each attack
//! with a control showing the probe works.

#[macro_use]
mod common;

use common::*;
use std::ffi::OsString;
use std::path::Path;

both_users!(
    protected_git_config_cannot_be_planted_by_renaming_git,
    denied_file_cannot_be_read_after_renaming_its_parent,
    glob_match_ancestor_is_pinned_only_where_the_glob_names_it,
    state_under_the_workspace_cannot_be_swapped,
    a_symlink_in_the_audit_logs_place_is_refused,
    a_relative_state_dir_is_refused_and_nothing_created,
    a_state_dir_not_the_users_alone_is_refused,
    a_state_dir_through_a_writable_symlink_is_refused,
    git_and_unrelated_renames_still_work,
);

/// `paddock ARGS...` as the fixture's user, in the workspace, with `env`.
fn paddock(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
    argv.extend(args.iter().map(OsString::from));
    f.launch(&argv, env, None)
}

/// `paddock run --policy P --workspace WS -- argv`, with `env`.
fn run_env(f: &Fixture, pol: &Pol, argv: &[&str], env: &[(&str, &str)]) -> Out {
    let mut full = f.paddock_argv(pol);
    full.extend(argv.iter().map(OsString::from));
    f.launch(&full, env, None)
}

fn ok(o: &Out, what: &str) {
    assert_eq!(o.code(), 0, "{what}\n{o}");
}

/// F1: `mv .git .git-old; mkdir .git` and a new `.git/config` with `core.fsmonitor`, which
/// the user's next `git status` on the host would run.
fn protected_git_config_cannot_be_planted_by_renaming_git(u: User) {
    let f = Fixture::new(u);
    ok(&f.host(&["sh", "-c", "git init -q . && mkdir junk && echo j > junk/f"]), "host: git init");
    let config = read(&f.ws.join(".git/config"));
    let pol = Pol { protect: &["${WORKSPACE}/.git/config", "${WORKSPACE}/.git/hooks"], ..Pol::default() };
    // Control: renames work in the sandbox (an unrelated directory), and the file itself
    // is read-only (the protect holds).
    let o = f.run(&pol, &["sh", "-c", "mv junk junk2 && echo moved; echo x >> .git/config || echo read-only"], None);
    assert_eq!(o.out(), "moved\nread-only\n", "{o}");
    assert!(f.ws.join("junk2/f").exists(), "control: the rename reached the host\n{o}");
    let plant = r#"mv .git .git-old && mkdir .git && cp -a .git-old/HEAD .git-old/objects .git-old/refs .git/ && printf '[core]\n\tfsmonitor = "touch /tmp/pwned; false"\n' > .git/config && echo planted"#;
    let o = f.run(&pol, &["sh", "-c", plant], None);
    assert!(!o.out().contains("planted"), "{o}");
    assert!(o.err().contains("busy"), "the rename fails with EBUSY\n{o}");
    assert_eq!(read(&f.ws.join(".git/config")), config, "the host's .git/config changed\n{o}");
    assert!(!f.ws.join(".git-old").exists(), "the host's .git was renamed\n{o}");
    // rmdir of the pinned directory fails too (after emptying what it can).
    let o = f.run(&pol, &["sh", "-c", "rm -rf .git 2>/dev/null; test -f .git/config && echo still"], None);
    assert_eq!(o.out(), "still\n", "{o}");
}

/// F5: a literal deny whose parent lies under the write grant: call 1 renames the parent,
/// call 2 reads the secret under the new name.
fn denied_file_cannot_be_read_after_renaming_its_parent(u: User) {
    let f = Fixture::new(u);
    let secret = format!("gho_SECRET_{}", unique());
    ok(&f.host(&["sh", "-c", "mkdir -p .config/gh && printf %s \"$1\" > .config/gh/hosts.yml", "sh", &secret]), "host");
    let pol = Pol { deny: &["${WORKSPACE}/.config/gh/hosts.yml"], ..Pol::default() };
    // Control: the host user reads it; the sandbox does not.
    assert_eq!(f.host(&["cat", ".config/gh/hosts.yml"]).out(), secret);
    let o = f.run(&pol, &["cat", ".config/gh/hosts.yml"], None);
    o.assert_absent(&secret, "the denied file");
    for dir in [".config", ".config/gh"] {
        let o = f.run(&pol, &["sh", "-c", "mv \"$1\" \"$1-x\" && echo renamed", "sh", dir], None);
        assert!(!o.out().contains("renamed") && o.err().contains("busy"), "{dir}\n{o}");
    }
    let o = f.run(&pol, &["sh", "-c", "cat .config-x/gh/hosts.yml .config/gh-x/hosts.yml .config/gh/hosts.yml"], None);
    o.assert_absent(&secret, "the denied file after a rename");
    assert_eq!(read(&f.ws.join(".config/gh/hosts.yml")), secret);
}

/// A glob with a directory component (`**/.ssh/**`) can be escaped by renaming that
/// directory: it is pinned; a directory the glob does not name (`a`) stays renamable, and
/// the match is still masked under the new name.
fn glob_match_ancestor_is_pinned_only_where_the_glob_names_it(u: User) {
    let f = Fixture::new(u);
    let secret = format!("KEY-{}", unique());
    ok(&f.host(&["sh", "-c", "mkdir -p a/.ssh && printf %s \"$1\" > a/.ssh/id", "sh", &secret]), "host");
    let pol = Pol { deny: &["${WORKSPACE}/**/.ssh/**"], ..Pol::default() };
    let o = f.run(&pol, &["sh", "-c", "mv a/.ssh a/ssh && echo renamed; cat a/ssh/id a/.ssh/id"], None);
    assert!(!o.out().contains("renamed") && o.err().contains("busy"), "{o}");
    o.assert_absent(&secret, "the key under a renamed .ssh");
    // Control: `a` is not named by the glob: renamable, and the key stays masked.
    let o = f.run(&pol, &["sh", "-c", "mv a b && echo renamed; cat b/.ssh/id"], None);
    assert!(o.out().starts_with("renamed"), "{o}");
    o.assert_absent(&secret, "the key after its grandparent's rename");
    let o = f.run(&pol, &["cat", "b/.ssh/id"], None);
    o.assert_absent(&secret, "the key in a later call");
    // The match, carried under the same rule, is the user's key still: it stays where the
    // rename put it (until 2026-12-05 it was taken for the call's and moved aside).
    let kept = f.host(&["grep", "-rl", &secret, "b"]);
    assert_eq!(kept.out().trim(), "b/.ssh/id", "the key stays, not moved aside\n{kept}");
}

/// F3: `$STATE` under the workspace: `mv sub sub-moved; mkdir -p sub/state` and an empty
/// revocation list dropped every revocation and the audit history. Now the rename fails,
/// the revocation holds, the log verifies and holds every run, and `run` warns.
fn state_under_the_workspace_cannot_be_swapped(u: User) {
    let f = Fixture::new(u);
    let state = f.ws.join("sub/state");
    let state_s = state.to_str().unwrap();
    let env = [("PADDOCK_STATE_DIR", state_s)];
    let pol = Pol::default();
    ok(&run_env(&f, &pol, &["true"], &env), "first run");
    ok(&paddock(&f, &["revoke", "command:id"], &env), "revoke");
    // Control: the revocation is in force.
    let o = run_env(&f, &pol, &["id"], &env);
    assert_eq!(o.code(), 77, "{o}");
    assert!(o.err().contains("lies under the write grant"), "run warns about its state\n{o}");
    let swap = "mv sub sub-moved && mkdir -p sub/state && : > sub/state/revocations.toml && echo replaced";
    let o = run_env(&f, &pol, &["sh", "-c", swap], &env);
    assert!(!o.out().contains("replaced") && o.err().contains("busy"), "{o}");
    assert!(!f.ws.join("sub-moved").exists());
    let o = run_env(&f, &pol, &["id"], &env);
    assert_eq!(o.code(), 77, "the revocation survives\n{o}");
    let o = paddock(&f, &["audit", "verify"], &env);
    ok(&o, "audit verify");
    assert!(o.out().contains("chain intact"), "{o}");
    // Complete: a call record for each of the 4 runs (the refused ones too), and the revocation.
    let log = read(&state.join("audit.jsonl"));
    let starts = log.lines().filter(|l| l.contains("\"event\":\"call.start\"")).count();
    assert_eq!(starts, 4, "records of every run are in the log\n{log}");
    assert!(log.contains("\"event\":\"revoke\""), "{log}");
}

/// F12: the audit log replaced by a symlink (to a file of the user's outside every view):
/// paddock followed it and cut the target. Now it is refused, and the target is untouched.
fn a_symlink_in_the_audit_logs_place_is_refused(u: User) {
    let f = Fixture::new(u);
    let pol = Pol::default();
    // Control: a run with the log in place works.
    ok(&f.run(&pol, &["true"], None), "control run");
    let log = f.root.join("state/audit.jsonl");
    assert!(log.exists());
    let victim = f.outside.join("victim.rc");
    write(&victim, "export IMPORTANT=1\n# last line without newline", 0o666);
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let o = f.run(&pol, &["true"], None);
    assert_ne!(o.code(), 0, "{o}");
    assert!(o.err().contains("symlink"), "the error says why\n{o}");
    assert_eq!(read(&victim), "export IMPORTANT=1\n# last line without newline", "the target was written\n{o}");
    // The same for the revocation list.
    std::fs::remove_file(&log).unwrap();
    let list = f.root.join("state/revocations.toml");
    std::os::unix::fs::symlink(&victim, &list).unwrap();
    let o = f.run(&pol, &["true"], None);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("symlink"), "{o}");
}

/// A relative `PADDOCK_STATE_DIR` created `./st` and then failed with 125; now it is
/// refused up front, located, and nothing is created.
fn a_relative_state_dir_is_refused_and_nothing_created(u: User) {
    let f = Fixture::new(u);
    let o = run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", "st")]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("PADDOCK_STATE_DIR=\"st\"") && o.err().contains("relative"), "{o}");
    assert!(!Path::new(&f.ws.join("st")).exists(), "nothing is created\n{o}");
    // Control: the same run with an absolute state dir works.
    let abs = f.home.join("st-abs");
    ok(&run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", abs.to_str().unwrap())]), "absolute");
}

/// `$STATE` through a symlink, or one others may write, is refused (78, naming it); the
/// same directory, private, works.
fn a_state_dir_not_the_users_alone_is_refused(u: User) {
    let f = Fixture::new(u);
    let real = f.home.join("st");
    let link = f.home.join("st-link");
    ok(&f.host(&["sh", "-c", "mkdir -m 700 \"$1\" && ln -s \"$1\" \"$2\"", "sh", s(&real), s(&link)]), "host");
    // Control: the directory itself is used.
    ok(&run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", s(&real))]), "private state dir");
    let o = run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", s(&link))]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("symlink") && o.err().contains("st-link"), "{o}");
    chmod(&real, 0o777);
    let o = run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", s(&real))]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("may write"), "{o}");
}

/// `$STATE` reached through a symlink in the workspace: a call could point the link at a
/// state of its own making. 78, naming the link; the real directory works (with a warning).
fn a_state_dir_through_a_writable_symlink_is_refused(u: User) {
    let f = Fixture::new(u);
    ok(&f.host(&["sh", "-c", "mkdir -p real && ln -s real link"]), "host");
    let (real, via) = (f.ws.join("real/state"), f.ws.join("link/state"));
    let o = run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", s(&real))]);
    ok(&o, "control: the real directory");
    assert!(o.err().contains("lies under the write grant"), "{o}");
    let o = run_env(&f, &Pol::default(), &["true"], &[("PADDOCK_STATE_DIR", s(&via))]);
    assert_eq!(o.code(), 78, "{o}");
    assert!(o.err().contains("through the symlink") && o.err().contains(s(&f.ws.join("link"))), "{o}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What an agent does every day still works with the pins in place: git init, add,
/// commit, checkout -b, a second commit in a later call, and renames of unrelated
/// directories (beside a pinned one too).
fn git_and_unrelated_renames_still_work(u: User) {
    let f = Fixture::new(u);
    let pol = Pol {
        deny: &["${WORKSPACE}/**/*.pem", "${WORKSPACE}/.config/gh/hosts.yml"],
        protect: &["${WORKSPACE}/.git/config", "${WORKSPACE}/.git/hooks"],
        ..Pol::default()
    };
    let git = "git -c user.name=t -c user.email=t@example.com";
    let first = format!(
        "git init -q . && mkdir -p src && echo a > src/f && git add . && {git} commit -q -m one && git checkout -q -b topic && git branch --show-current"
    );
    let o = f.run(&pol, &["sh", "-c", &first], None);
    assert_eq!((o.code(), o.out()), (0, "topic\n".to_string()), "{o}");
    ok(&f.host(&["sh", "-c", "mkdir -p .config/gh && echo t > .config/gh/hosts.yml && echo k > src/k.pem"]), "host");
    let second = format!(
        "mv src lib && echo b > lib/g && git add lib/g && {git} commit -q -m two && git checkout -q -b next && mkdir -p .config/other && mv .config/other .config/other2 && git log --format=%s | tr '\\n' ' '"
    );
    let o = f.run(&pol, &["sh", "-c", &second], None);
    assert_eq!((o.code(), o.out()), (0, "two one ".to_string()), "{o}");
    assert!(f.ws.join("lib/g").exists() && f.ws.join(".config/other2").is_dir(), "{o}");
}
