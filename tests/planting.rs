//! End-to-end: a call cannot leave host-run configuration behind under a `protect` or
//! `deny` glob. Under the embedded default policy, every new match a call makes (a file, a
//! file renamed into place, a directory renamed so that what it holds matches) is moved
//! aside after the call, named on stderr and in `call.end`; a match that existed at the
//! start stays as it was; git keeps working in the workspace; a session call (`paddock
//! mcp`) is held to the same. Controls: without the rules the same files stay, and the
//! unprotected files a call writes beside them always stay.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

both_users!(
    new_glob_matches_are_moved_aside,
    git_keeps_working_in_the_workspace,
    a_repository_made_in_the_workspace_keeps_no_config_or_hooks,
    a_git_directory_a_dot_git_file_names_keeps_its_config_and_hooks,
    a_session_call_is_held_to_it,
    a_session_call_after_quiet_calls_is_held_to_it,
    a_directory_that_cannot_be_checked_is_said,
    what_was_moved_aside_stays_out_of_later_views,
    the_users_protected_symlinks_cannot_be_replaced,
    a_session_call_cannot_replace_them_either,
    a_chain_of_the_users_symlinks_cannot_be_re_pointed,
    a_directory_symlink_two_rules_pass_through_is_made_again_once,
    links_on_the_way_to_git_and_home_configs_are_the_users,
    a_dot_git_file_moved_away_cannot_unprotect_what_it_names,
    a_policy_file_in_the_workspace_cannot_choose_the_next_calls_policy,
    a_commondir_is_protected_as_named,
    a_directory_a_gitdir_leaves_by_dotdot_is_the_users,
    a_directory_a_symlink_leaves_by_dotdot_is_the_users,
    the_way_to_a_git_directory_or_policy_outside_is_the_users,
    a_directory_made_unsearchable_on_a_rules_way_stops_the_next_call,
    what_the_host_mounts_during_a_call_is_said_and_left_alone,
    a_mount_remounted_moved_in_or_gone_during_a_call_is_said,
    a_pseudo_filesystem_is_not_scanned_but_what_is_mounted_in_it_is,
    a_directory_bound_onto_itself_is_scanned_call_after_call
);

/// Files under `dir` (recursively) whose name holds `.paddock-moved-`.
fn moved_aside_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".paddock-moved-") {
                out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            } else if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn last_call_end(f: &Fixture) -> String {
    let log = read(&f.root.join("state").join("audit.jsonl"));
    log.lines().rev().find(|l| l.contains("\"event\":\"call.end\"")).expect("a call.end record").to_string()
}

const PLANT: &str = "set -e
mkdir -p sub && echo 'touch /tmp/pwned' > sub/.envrc
echo 'export EVIL=1' > notes && mkdir -p deep && mv notes deep/.envrc
mkdir -p stuff/hooks && printf '#!/bin/sh\\necho pwned\\n' > stuff/hooks/post-checkout
mkdir -p .git/modules && mv stuff .git/modules/x
mkdir -p .git/modules/y && printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' > .git/modules/y/config
echo linked > linked.txt && mkdir -p hl && ln linked.txt hl/.envrc
echo plain > sub/notes.txt";

/// What PLANT leaves where a host tool would run or obey it.
const PLANTED: [&str; 5] = [".git/modules/x/hooks", ".git/modules/y/config", "deep/.envrc", "hl/.envrc", "sub/.envrc"];

fn new_glob_matches_are_moved_aside(user: User) {
    let f = Fixture::new(user);
    // Control: without the rules (the fixture's own policy) everything stays.
    let o = f.run(&Pol::default(), &["sh", "-c", PLANT], None);
    assert_eq!(o.code(), 0, "control\n{o}");
    for p in PLANTED {
        assert!(std::fs::symlink_metadata(f.ws.join(p)).is_ok(), "control: {p} stays\n{o}");
    }
    assert!(moved_aside_under(&f.ws).is_empty());
    for p in ["sub", "deep", ".git", "hl"] {
        std::fs::remove_dir_all(f.ws.join(p)).unwrap();
    }

    // The user's own .envrc, there before the call: it stays, unchanged.
    std::fs::create_dir(f.ws.join("old")).unwrap();
    chown(&f.ws.join("old"), user.uid());
    write(&f.ws.join("old/.envrc"), "export MINE=1\n", 0o644);
    let o = run_default_in(&f, &f.ws, &["sh", "-c", PLANT]);
    assert_eq!(o.code(), 0, "{o}");
    for p in PLANTED {
        assert!(std::fs::symlink_metadata(f.ws.join(p)).is_err(), "{p} was left on the host\n{o}");
        assert!(o.err().contains(&format!("created {}", f.ws.join(p).display())), "{p} not said\n{o}");
    }
    assert_eq!(read(&f.ws.join("old/.envrc")), "export MINE=1\n", "the user's .envrc stays as it was");
    assert_eq!(read(&f.ws.join("sub/notes.txt")), "plain\n", "an unprotected file stays");
    let aside = moved_aside_under(&f.ws);
    assert_eq!(aside.len(), PLANTED.len(), "{aside:?}\n{o}");
    let envrc = aside.iter().find(|n| n.starts_with("sub/.envrc.")).expect("sub/.envrc moved aside");
    assert_eq!(read(&f.ws.join(envrc)), "touch /tmp/pwned\n", "moved, not deleted");
    let hooks = aside.iter().find(|n| n.starts_with(".git/modules/x/hooks.")).expect("the hooks moved aside");
    assert!(f.ws.join(hooks).join("post-checkout").exists(), "the directory moved whole");
    let end = last_call_end(&f);
    assert!(end.contains("\"moved_aside\""), "{end}");
    for p in PLANTED {
        assert!(end.contains(&format!("\"from\":\"{}\"", f.ws.join(p).display())), "{p} not in call.end: {end}");
    }
    assert!(!end.contains("old/.envrc"), "{end}");

    // The next call, doing nothing, moves nothing (what was moved aside matches no rule).
    let o = run_default_in(&f, &f.ws, &["true"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("created"), "{o}");
    assert_eq!(moved_aside_under(&f.ws).len(), PLANTED.len());
    assert_eq!(read(&f.ws.join("old/.envrc")), "export MINE=1\n");
}

fn git_keeps_working_in_the_workspace(user: User) {
    let f = Fixture::new(user);
    write(&f.ws.join("a.txt"), "a\n", 0o644);
    let git = "set -e
git init -q
git add a.txt
git -c user.name=t -c user.email=t@example.invalid commit -qm first
git checkout -qb feature
echo b > b.txt && git add b.txt
git -c user.name=t -c user.email=t@example.invalid commit -qm second
git log --format=%s";
    let o = run_default_in(&f, &f.ws, &["sh", "-c", git]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "second\nfirst\n", "{o}");
    // A later call still reads the repository.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "git branch --show-current && git log --format=%s"]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(o.out(), "feature\nsecond\nfirst\n", "{o}");
    // Control: the host sees the same history.
    let o = f.host(&["git", "-c", &format!("safe.directory={}", f.ws.display()), "log", "--format=%s"]);
    assert_eq!(o.out(), "second\nfirst\n", "{o}");
}

/// Found by an attack: a repository the call makes inside the workspace (`git init sub`,
/// a clone) has a config git on the host obeys (`core.fsmonitor` runs a command at the
/// next `git status` there) and hooks it runs.
fn a_repository_made_in_the_workspace_keeps_no_config_or_hooks(user: User) {
    let f = Fixture::new(user);
    let plant = "set -e
mkdir -p sub && cd sub && git init -q
git config core.fsmonitor 'touch /tmp/pwned'
git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m first";
    // Control: without the rules (the fixture's own policy) they stay.
    let o = f.run(&Pol::default(), &["sh", "-c", plant], None);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(read(&f.ws.join("sub/.git/config")).contains("fsmonitor"), "control\n{o}");
    std::fs::remove_dir_all(f.ws.join("sub")).unwrap();

    let o = run_default_in(&f, &f.ws, &["sh", "-c", plant]);
    assert_eq!(o.code(), 0, "{o}");
    for p in ["sub/.git/config", "sub/.git/hooks"] {
        assert!(std::fs::symlink_metadata(f.ws.join(p)).is_err(), "{p} was left on the host\n{o}");
        assert!(o.err().contains(&format!("created {}", f.ws.join(p).display())), "{p} not said\n{o}");
    }
    // The repository itself still works, without what was moved aside.
    let sub = f.ws.join("sub");
    let o = f.host(&[
        "git",
        "-c",
        &format!("safe.directory={}", sub.display()),
        "-C",
        &sub.to_string_lossy(),
        "log",
        "--format=%s",
    ]);
    assert_eq!(o.out(), "first\n", "{o}");

    // A submodule's git directory inside that repository, there before the call (found
    // by an attack: its config and hooks were writable): read-only in the call.
    let module = f.ws.join("sub/.git/modules/x");
    std::fs::create_dir_all(module.join("hooks")).unwrap();
    write(&module.join("config"), "[core]\n", 0o644);
    for d in [f.ws.join("sub/.git/modules"), module.clone(), module.join("hooks"), module.join("config")] {
        chown(&d, user.uid());
    }
    let touch = "printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' > sub/.git/modules/x/config; echo hook > sub/.git/modules/x/hooks/post-checkout; true";
    let o = run_default_in(&f, &f.ws, &["sh", "-c", touch]);
    assert_eq!(read(&module.join("config")), "[core]\n", "the submodule's config was rewritten\n{o}");
    assert!(!module.join("hooks/post-checkout").exists(), "a hook was left in the submodule\n{o}");
    // Nor can it point the submodule at a git directory of its own.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "echo ../../../evil > sub/.git/modules/x/commondir"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!module.join("commondir").exists(), "the submodule's commondir was left\n{o}");
}

/// Found by an attack: a workspace whose `.git` is a file (`gitdir: ./.bare`, the "bare
/// repository plus worktrees" layout) got no git protection: the call set
/// `core.fsmonitor` in `.bare/config` and wrote `.bare/hooks/pre-commit`, and git on the
/// host ran both. The directory the workspace's `.git` file names at the start (its
/// config, hooks, common directory and linked worktrees' config) is protected as a `.git`
/// directory is.
fn a_git_directory_a_dot_git_file_names_keeps_its_config_and_hooks(user: User) {
    let f = Fixture::new(user);
    let setup = "set -e
git init -q --bare .bare && echo 'gitdir: ./.bare' > .git && git config core.bare false
git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m first
git worktree add -q -b w wt";
    let o = f.host(&["sh", "-c", setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let bare = f.ws.join(".bare");
    let wt = bare.join("worktrees/wt");
    let config = read(&bare.join("config"));
    let commondir = read(&wt.join("commondir"));
    let plant = "git config core.fsmonitor 'echo FSMON > fsmon-ran; false'
printf '#!/bin/sh\\necho HOOK\\n' > .bare/hooks/pre-commit; chmod +x .bare/hooks/pre-commit
printf '[core]\\n\\tfsmonitor = touch fsmon-ran\\n' > .bare/config.worktree
printf '[core]\\n\\tfsmonitor = touch fsmon-ran\\n' > .bare/worktrees/wt/config.worktree
(cd wt && git config core.hooksPath /tmp)
true";
    let planted = [bare.join("hooks/pre-commit"), bare.join("config.worktree"), wt.join("config.worktree")];

    // Control: without the rules (the fixture's own policy) it all lands.
    let o = f.run(&Pol::default(), &["sh", "-c", plant], None);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(read(&bare.join("config")).contains("fsmonitor"), "control\n{o}");
    for p in &planted {
        assert!(p.exists(), "control: {} stays\n{o}", p.display());
        std::fs::remove_file(p).unwrap();
    }
    write(&bare.join("config"), &config, 0o644);
    chown(&bare.join("config"), user.uid());

    let o = run_default_in(&f, &f.ws, &["sh", "-c", plant]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(read(&bare.join("config")), config, "the repository's config was rewritten\n{o}");
    assert_eq!(read(&wt.join("commondir")), commondir, "the worktree's commondir changed\n{o}");
    for p in &planted {
        assert!(std::fs::symlink_metadata(p).is_err(), "{} was left on the host\n{o}", p.display());
    }
    for p in [bare.join("config.worktree"), wt.join("config.worktree")] {
        assert!(o.err().contains(&format!("created {}", p.display())), "{} not said\n{o}", p.display());
    }
    // Git on the host still works in both worktrees, and ran nothing of the call's.
    for dir in [&f.ws, &f.ws.join("wt")] {
        let o = f.host(&["git", "-C", &dir.to_string_lossy(), "status", "--short"]);
        assert_eq!(o.code(), 0, "{o}");
    }
    assert!(!f.ws.join("fsmon-ran").exists() && !f.ws.join("wt/fsmon-ran").exists(), "fsmonitor ran on the host");

    // A session's calls are held to it too.
    let answer = mcp_shell_call(&f, plant);
    assert_eq!(read(&bare.join("config")), config, "a session call rewrote the config\n{answer}");
    for p in &planted {
        assert!(std::fs::symlink_metadata(p).is_err(), "a session call left {}\n{answer}", p.display());
    }
}

/// Plants `sub/.envrc` through `paddock mcp`'s `command` tool; the outcome says it was
/// moved aside.
fn a_session_call_is_held_to_it(user: User) {
    let f = Fixture::new(user);
    let answer =
        mcp_shell_call(&f, "mkdir -p sub && echo 'touch /tmp/pwned' > sub/.envrc && echo plain > sub/notes.txt");
    assert!(answer.contains("\"id\":2"), "{answer}");
    assert!(std::fs::symlink_metadata(f.ws.join("sub/.envrc")).is_err(), "sub/.envrc was left\n{answer}");
    assert_eq!(read(&f.ws.join("sub/notes.txt")), "plain\n", "control: the call ran and its plain file stays");
    assert!(answer.contains("moved aside to"), "the outcome says so: {answer}");
    let aside = moved_aside_under(&f.ws);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(read(&f.ws.join(&aside[0])), "touch /tmp/pwned\n");
    let end = last_call_end(&f);
    assert!(end.contains("\"moved_aside\"") && end.contains("sub/.envrc"), "{end}");
}

/// In a session whose zygote's view stamp holds (watched from its second call on), the
/// scan at a call's start stands for the next call's and the scan after a call that changed
/// nothing is skipped. A call that then plants every kind of match ([`PLANT`]: new files,
/// renames into place, a directory renamed under `.git/modules`, a hard link) and one in a
/// directory there from the start is held to it all the same, while the user's own match,
/// there before the session, stays. The session says it took the shortcut (so this is
/// the path tested), and a call after the planting one still runs.
fn a_session_call_after_quiet_calls_is_held_to_it(user: User) {
    let f = Fixture::new(user);
    let deep = f.ws.join("old/deep");
    std::fs::create_dir_all(&deep).unwrap();
    for d in [f.ws.join("old"), deep.clone()] {
        chown(&d, user.uid());
    }
    write(&f.ws.join("old/.envrc"), "export MINE=1\n", 0o644);
    // The stamp vouches only for directories whose ctime is past its margin.
    wait_past_ctime_margin(&[f.ws.clone(), f.ws.join("old"), deep.clone()]);
    let log = f.root.join("session.log");
    let plant = format!("{PLANT}\necho 'export EVIL=1' > old/deep/.envrc");
    let calls = ["true", "true", "true", "true", plant.as_str(), "cat old/deep/.envrc || echo gone"];
    let answers = mcp_shell_calls(&f, &calls, Some(&log));
    let log = read(&log);
    assert!(log.contains("unchanged since the last scan"), "a start's scan stood for a later one\n{log}");
    assert!(log.contains("nothing changed since the start"), "a quiet call's scan after it was skipped\n{log}");
    for p in PLANTED.iter().chain(&["old/deep/.envrc"]) {
        assert!(std::fs::symlink_metadata(f.ws.join(p)).is_err(), "{p} was left\n{}", answers[4]);
    }
    assert!(answers[4].contains("moved aside to"), "the outcome says so: {}", answers[4]);
    let aside = moved_aside_under(&f.ws);
    assert_eq!(aside.len(), PLANTED.len() + 1, "{aside:?}");
    assert_eq!(read(&f.ws.join("old/.envrc")), "export MINE=1\n", "the user's .envrc stays as it was");
    assert!(answers[5].contains("gone"), "the next call sees it gone: {}", answers[5]);
}

/// A directory the call makes unlistable (search but no read) hides what it holds from the
/// check: it is named on stderr and in `call.end`, never passed over silently. Root reads
/// it anyway: there the planted file is moved aside.
fn a_directory_that_cannot_be_checked_is_said(user: User) {
    let f = Fixture::new(user);
    // A directory of the user's made unreadable is opened for the check (its mode put
    // back): what it holds is moved aside. One the user does not own and cannot read is
    // said (tests/concurrent_plant.rs).
    let plant = "mkdir -p locked && echo 'touch /tmp/pwned' > locked/.envrc && chmod 311 locked";
    let o = run_default_in(&f, &f.ws, &["sh", "-c", plant]);
    assert_eq!(o.code(), 0, "{o}");
    let locked = f.ws.join("locked");
    assert_eq!(std::fs::symlink_metadata(&locked).unwrap().permissions().mode() & 0o7777, 0o311, "mode put back");
    chmod(&locked, 0o755);
    let end = last_call_end(&f);
    assert!(std::fs::symlink_metadata(locked.join(".envrc")).is_err(), "{o}");
    assert!(end.contains("\"moved_aside\""), "{end}");
    assert!(!end.contains("\"unchecked\""), "{end}");
}

/// A denied file moved aside takes a name its rule no longer matches (`.env` →
/// `.env.paddock-moved-…`): the user's `sub/.env` carried to `sub2/.env` by a rename of its
/// directory was moved aside, and the next call read the secret there. Every view now
/// masks moved-aside names under its write grants. Since 2026-12-05 a match carried under
/// the same rule is the user's and stays where it lands (masked there in the next call);
/// carried to where another rule matches it, it is still moved aside, and that name is
/// masked. Controls: the host reads both.
fn what_was_moved_aside_stays_out_of_later_views(user: User) {
    let f = Fixture::new(user);
    let secret = format!("TOKEN-{}", unique());
    for d in ["sub", "deep"] {
        std::fs::create_dir(f.ws.join(d)).unwrap();
        chown(&f.ws.join(d), user.uid());
    }
    write(&f.ws.join("sub/.env"), &format!("API_TOKEN={secret}\n"), 0o644);
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "cat sub/.env; mv sub sub2 && echo renamed"]);
    assert!(o.out().contains("renamed") && !o.out().contains(&secret), "{o}");
    assert!(moved_aside_under(&f.ws.join("sub2")).is_empty(), "the user's .env, carried under its rule, stays\n{o}");
    assert!(!last_call_end(&f).contains("\"moved_aside\""), "and is not recorded as the call's");
    assert!(read(&f.ws.join("sub2/.env")).contains(&secret), "control: the host reads it");
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "cat sub2/.env"]);
    o.assert_absent(&secret, "the carried secret in a later call");

    // `*/.env` at the start, `**/.env` after: another rule's match, moved aside.
    let pol = Pol { deny: &["${WORKSPACE}/*/.env", "${WORKSPACE}/**/.env"], ..Pol::default() };
    let o = f.run(&pol, &["sh", "-c", "cat sub2/.env; mv sub2 deep/sub3 && echo renamed"], None);
    assert!(o.out().contains("renamed") && !o.out().contains(&secret), "{o}");
    let dir = f.ws.join("deep/sub3");
    let aside = moved_aside_under(&dir);
    assert_eq!(aside.len(), 1, "the relocated .env is moved aside\n{o}");
    let host = f.host(&["sh", "-c", &format!("cat deep/sub3/{}", aside[0])]);
    assert!(host.out().contains(&secret), "control: the host reads it\n{host}");
    let o = f.run(&pol, &["sh", "-c", &format!("cat deep/sub3/{}; cat deep/sub3/.env*", aside[0])], None);
    o.assert_absent(&secret, "the moved-aside secret in a later call");
    let o = run_default_in(&f, &f.ws, &["sh", "-c", &format!("cat deep/sub3/{}; cat deep/sub3/.env*", aside[0])]);
    o.assert_absent(&secret, "the moved-aside secret in a later call, under the default policy");
    assert!(moved_aside_under(&dir).len() == 1, "nothing moved again\n{o}");
}

/// The user's symlinks under `protect` rules, literal and glob (`.envrc`: both):
/// `(path, target)`.
const LINKS: [(&str, &str); 7] = [
    (".envrc", "/some/top-envrc"),
    (".claude/settings.json", "/some/shared.json"),
    (".vscode/settings.json", "/some/shared.json"),
    (".mcp.json", "/some/mcp.json"),
    ("sub/.envrc", "/some/envrc"),
    ("sub2/.envrc", "/some/envrc2"),
    ("lib/.git/hooks", "/some/hooks"),
];

/// Replaces every one of [`LINKS`]: by a file, a directory with a hook, another symlink;
/// `.mcp.json` is only removed. Each removal is followed at once by the creation, so the
/// filesystem is likely to hand the new object the inode number just freed.
const REPLACE: &str = r#"set -e
rm .claude/settings.json .vscode/settings.json
echo '{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"touch /tmp/pwned"}]}]}}' > .claude/settings.json
echo '{"terminal.integrated.env.linux":{"EVIL":"1"}}' > .vscode/settings.json
rm .mcp.json
rm .envrc; echo 'echo PWNED' > .envrc
rm sub/.envrc; echo 'echo PWNED' > sub/.envrc
rm sub2/.envrc; ln -s evil.sh sub2/.envrc
rm lib/.git/hooks; mkdir lib/.git/hooks; printf '#!/bin/sh\necho PWN\n' > lib/.git/hooks/pre-commit
echo replaced"#;

/// Makes [`LINKS`] in the fixture's workspace, their directories the user's.
fn make_links(f: &Fixture) {
    for d in [".claude", ".vscode", "sub", "sub2", "lib", "lib/.git"] {
        std::fs::create_dir_all(f.ws.join(d)).unwrap();
        chown(&f.ws.join(d), f.user.uid());
    }
    for (p, t) in LINKS {
        let _ = std::fs::remove_file(f.ws.join(p));
        std::os::unix::fs::symlink(t, f.ws.join(p)).unwrap();
    }
}

/// Asserts every one of [`LINKS`] is the user's symlink again, and that what the call put
/// there was moved aside, not deleted.
fn assert_links_back(f: &Fixture, said: &str) {
    for (p, t) in LINKS {
        let got = std::fs::read_link(f.ws.join(p));
        assert_eq!(got.ok(), Some(Path::new(t).to_path_buf()), "{p} is not the user's symlink\n{said}");
    }
    let aside = moved_aside_under(&f.ws);
    assert_eq!(aside.len(), 6, "each replacement moved aside once, nothing for the removed one: {aside:?}\n{said}");
    let claude = aside.iter().find(|n| n.starts_with(".claude/settings.json.")).expect("the settings moved aside");
    assert!(read(&f.ws.join(claude)).contains("touch /tmp/pwned"), "moved, not deleted");
    let hooks = aside.iter().find(|n| n.starts_with("lib/.git/hooks.")).expect("the hooks moved aside");
    assert!(f.ws.join(hooks).join("pre-commit").exists(), "the directory moved whole");
}

/// Found by an attack (release binary, default policy, as root and as uid 65534): the view
/// leaves a symlink a `protect` rule matches as it is (it cannot bind it read-only), so the
/// call removed the user's `.claude/settings.json`, `.vscode/settings.json`, `sub/.envrc`
/// and a repository's `.git/hooks` symlinks and put its own files there. Nothing checked
/// the literal paths after the call (only those absent at the start), and the glob check
/// took the new file for the old one (the same device and inode: ext4 reused the number).
/// Now what the call put there is moved aside and each symlink made again, said on stderr
/// and in `call.end`. Control: without the rules, the call's files stay.
fn the_users_protected_symlinks_cannot_be_replaced(user: User) {
    let f = Fixture::new(user);
    make_links(&f);
    let o = f.run(&Pol::default(), &["sh", "-c", REPLACE], None);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(read(&f.ws.join(".claude/settings.json")).contains("pwned"), "control: the call's file stays\n{o}");
    assert!(std::fs::symlink_metadata(f.ws.join(".mcp.json")).is_err(), "control\n{o}");

    let f = Fixture::new(user);
    make_links(&f);
    let o = run_default_in(&f, &f.ws, &["sh", "-c", REPLACE]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("replaced"), "the call ran\n{o}");
    assert_links_back(&f, &o.to_string());
    for (p, _) in LINKS {
        assert!(o.err().contains(&format!("symlink {}", f.ws.join(p).display())), "{p} not said\n{o}");
    }
    assert!(o.err().contains("is made again"), "{o}");
    let end = last_call_end(&f);
    assert!(end.contains("\"restored\""), "{end}");
    for (p, _) in LINKS {
        assert!(end.contains(&format!("\"from\":\"{}\"", f.ws.join(p).display())), "{p} not in call.end: {end}");
    }
    // The next call, doing nothing, moves nothing: the symlinks made again are left as
    // they are (each is noted as the user's at that call's start).
    let o = run_default_in(&f, &f.ws, &["true"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("symlink") && !o.err().contains("created"), "{o}");
    assert_links_back(&f, &o.to_string());
}

/// Two chains of the user's symlinks under `protect` rules: `.claude/settings.json` →
/// `../cfg/link2` → `../real.json`, and `.vscode/settings.json` → `../shared/settings.json`
/// with `shared` → `config-v2`.
fn make_chains(f: &Fixture) {
    for d in [".claude", "cfg", ".vscode", "config-v2"] {
        std::fs::create_dir_all(f.ws.join(d)).unwrap();
        chown(&f.ws.join(d), f.user.uid());
    }
    std::fs::write(f.ws.join("real.json"), "{\"user\":1}").unwrap();
    std::fs::write(f.ws.join("config-v2/settings.json"), "{\"user\":2}").unwrap();
    for (p, t) in [
        ("cfg/link2", "../real.json"),
        (".claude/settings.json", "../cfg/link2"),
        ("shared", "config-v2"),
        (".vscode/settings.json", "../shared/settings.json"),
    ] {
        std::os::unix::fs::symlink(t, f.ws.join(p)).unwrap();
    }
}

/// Replaces the symlink in the middle of each chain: a file for `cfg/link2`, a directory
/// holding the call's settings for `shared`.
const RE_POINT: &str = r#"set -e
rm cfg/link2; echo '{"hooks":"evil"}' > cfg/link2
rm shared; mkdir shared; echo '{"evil":1}' > shared/settings.json
echo replaced"#;

/// Found by an attack (H1; default policy, as root and as uid 65534): only the path a rule
/// names and the final target were noted, so a call replaced the symlink in the middle of
/// a chain and the rule's name led to its file after the call (exit 0, nothing said). Now
/// each symlink the resolution passes through is noted and made again. Control: without
/// the rules, the call's files stay.
fn a_chain_of_the_users_symlinks_cannot_be_re_pointed(user: User) {
    let f = Fixture::new(user);
    make_chains(&f);
    let o = f.run(&Pol::default(), &["sh", "-c", RE_POINT], None);
    assert_eq!(o.code(), 0, "control\n{o}");
    assert!(read(&f.ws.join(".claude/settings.json")).contains("evil"), "control: re-pointed\n{o}");
    assert!(read(&f.ws.join(".vscode/settings.json")).contains("evil"), "control: re-pointed\n{o}");

    let f = Fixture::new(user);
    make_chains(&f);
    let o = run_default_in(&f, &f.ws, &["sh", "-c", RE_POINT]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("replaced"), "the call ran\n{o}");
    assert_eq!(read(&f.ws.join(".claude/settings.json")), "{\"user\":1}", "{o}");
    assert_eq!(read(&f.ws.join(".vscode/settings.json")), "{\"user\":2}", "{o}");
    assert_eq!(std::fs::read_link(f.ws.join("cfg/link2")).ok(), Some("../real.json".into()), "{o}");
    assert_eq!(std::fs::read_link(f.ws.join("shared")).ok(), Some("config-v2".into()), "{o}");
    for p in ["cfg/link2", "shared"] {
        assert!(o.err().contains(&format!("replaced the symlink {}", f.ws.join(p).display())), "{p} not said\n{o}");
    }
    let aside = moved_aside_under(&f.ws);
    assert_eq!(aside.len(), 2, "each replacement moved aside once: {aside:?}\n{o}");
    let end = last_call_end(&f);
    assert!(end.contains(&format!("\"from\":\"{}\"", f.ws.join("cfg/link2").display())), "{end}");
    // The next call, doing nothing, moves nothing.
    let o = run_default_in(&f, &f.ws, &["true"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("symlink") && !o.err().contains("created"), "{o}");
    assert_eq!(moved_aside_under(&f.ws).len(), 2, "{o}");
}

/// Found by an attack (B1): a `.claude` directory symlink, which the default policy's
/// `.claude/settings.json` and `.claude/settings.local.json` rules both pass through, was
/// settled once per rule; removed by the call, it was made again by the first and taken
/// for the call's by the second (a spurious `.claude.paddock-moved-*`, a false notice).
fn a_directory_symlink_two_rules_pass_through_is_made_again_once(user: User) {
    let f = Fixture::new(user);
    std::fs::create_dir_all(f.ws.join("claude-real")).unwrap();
    std::fs::write(f.ws.join("claude-real/settings.json"), "{}").unwrap();
    std::os::unix::fs::symlink("claude-real", f.ws.join(".claude")).unwrap();
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "rm .claude && echo removed"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("removed"), "the call ran\n{o}");
    assert_eq!(std::fs::read_link(f.ws.join(".claude")).ok(), Some("claude-real".into()), "{o}");
    assert!(moved_aside_under(&f.ws).is_empty(), "nothing to move aside\n{o}");
    assert_eq!(o.err().matches("paddock: the call").count(), 1, "said once\n{o}");
    assert!(o.err().contains(&format!("removed the symlink {}", f.ws.join(".claude").display())), "{o}");
}

/// The same through `paddock mcp`: a session call is held to it.
fn a_session_call_cannot_replace_them_either(user: User) {
    let f = Fixture::new(user);
    make_links(&f);
    let answer = mcp_shell_call(&f, REPLACE);
    assert!(answer.contains("replaced"), "the call ran: {answer}");
    assert!(answer.contains("is made again"), "the outcome says so: {answer}");
    assert_links_back(&f, &answer);
}

/// Found by an attack on the mends above: the user's symlinks on the way to a protected
/// git directory or home file stayed the call's to re-point: a `.git` that is a symlink to
/// a gitfile (git follows it); a gitfile naming its directory through a symlink
/// (`gitdir: ./bare`, `bare -> .bare-real`); and `~/.gitconfig` linked into the
/// workspace through a directory symlink (`cfg -> cfg-v2`). Each is the user's after the
/// call, and what git reads holds the user's config.
fn links_on_the_way_to_git_and_home_configs_are_the_users(user: User) {
    let f = Fixture::new(user);
    let setup = "set -e
mkdir -p r1 r2 cfg-v2
(cd r1 && git init -q --bare .bare && echo 'gitdir: ./.bare' > gitlink && ln -s gitlink .git)
(cd r2 && git init -q --bare .bare-real && ln -s .bare-real bare && echo 'gitdir: ./bare' > .git)
printf '[user]\\n\\tname = me\\n' > cfg-v2/gitconfig && ln -s cfg-v2 cfg";
    let o = f.host(&["sh", "-c", setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let gitconfig = f.home.join(".gitconfig");
    std::os::unix::fs::symlink(f.ws.join("cfg/gitconfig"), &gitconfig).unwrap();
    let (c1, c2, home) =
        (read(&f.ws.join("r1/.bare/config")), read(&f.ws.join("r2/.bare-real/config")), read(&gitconfig));
    // Each repository as the workspace (its own `.git` is read), then the top for the
    // home file's link.
    let o = run_default_in(
        &f,
        &f.ws.join("r1"),
        &["sh", "-c", "cd .. && printf '[core]\\n\\tfsmonitor = touch PWN\\n' >> r1/.bare/config; true"],
    );
    assert_eq!(read(&f.ws.join("r1/.bare/config")), c1, "a .git symlink to a gitfile: its config was rewritten\n{o}");
    let o = run_default_in(&f, &f.ws.join("r2"), &["sh", "-c", "cd .. && cp -r r2/.bare-real r2/evil && printf '[core]\\n\\tfsmonitor = touch PWN\\n' >> r2/evil/config && rm r2/bare && ln -s evil r2/bare; true"]);
    assert_eq!(
        std::fs::read_link(f.ws.join("r2/bare")).unwrap(),
        Path::new(".bare-real"),
        "the gitdir's link was re-pointed\n{o}"
    );
    assert_eq!(read(&f.ws.join("r2/bare/config")), c2, "{o}");
    let o = run_default_in(
        &f,
        &f.ws,
        &["sh", "-c", "rm cfg && mkdir cfg && printf '[core]\\n\\tfsmonitor = touch PWN\\n' > cfg/gitconfig; true"],
    );
    assert_eq!(read(&gitconfig), home, "~/.gitconfig now reads the call's file\n{o}");
    assert!(std::fs::symlink_metadata(f.ws.join("cfg")).unwrap().file_type().is_symlink(), "{o}");
}

/// A bare repository with worktrees (`.git` a file holding `gitdir: ./.bare`): a call
/// cannot move the `.git` file away so that the next call's policy, finding none, leaves
/// the repository's config and hooks writable; nor plant a submodule's or a worktree's
/// submodule's config in the directory it names.
fn a_dot_git_file_moved_away_cannot_unprotect_what_it_names(user: User) {
    let f = Fixture::new(user);
    let setup = "set -e
git init -q --bare .bare && echo 'gitdir: ./.bare' > .git && git config core.bare false
git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m first
git worktree add -q -b w wt";
    let o = f.host(&["sh", "-c", setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let bare = f.ws.join(".bare");
    let config = read(&bare.join("config"));
    // Control: without the rules the `.git` file moves.
    let o = f.run(&Pol::default(), &["sh", "-c", "mv .git .git-hidden && mv .git-hidden .git"], None);
    assert_eq!(o.code(), 0, "control\n{o}");

    let o = run_default_in(&f, &f.ws, &["sh", "-c", "mv .git .git-hidden; rm -f .git; echo 'gitdir: ./mine' > .git"]);
    assert_eq!(read(&f.ws.join(".git")), "gitdir: ./.bare\n", "the .git file was moved or rewritten\n{o}");
    assert!(!f.ws.join(".git-hidden").exists(), "{o}");
    let plant = "git config core.fsmonitor 'echo FSMON > fsmon-ran; false'
printf '#!/bin/sh\\necho HOOK\\n' > .bare/hooks/pre-commit
mkdir -p .bare/modules/lib .bare/worktrees/wt/modules/lib
printf '[core]\\n\\tfsmonitor = touch fsmon-ran\\n' > .bare/modules/lib/config
printf '[core]\\n\\tfsmonitor = touch fsmon-ran\\n' > .bare/worktrees/wt/modules/lib/config
true";
    let o = run_default_in(&f, &f.ws, &["sh", "-c", plant]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(read(&bare.join("config")), config, "the repository's config was rewritten\n{o}");
    for p in ["hooks/pre-commit", "modules/lib/config", "worktrees/wt/modules/lib/config"] {
        assert!(std::fs::symlink_metadata(bare.join(p)).is_err(), ".bare/{p} was left on the host\n{o}");
    }
    let o = f.host(&["git", "-C", &f.ws.join("wt").to_string_lossy(), "status", "--short"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!f.ws.join("fsmon-ran").exists() && !f.ws.join("wt/fsmon-ran").exists(), "fsmonitor ran on the host");
}

/// `paddock run --policy ./mine.toml` from the project (the workspace): a call cannot
/// rewrite that file, nor a file it extends, to choose the policy of the next call.
fn a_policy_file_in_the_workspace_cannot_choose_the_next_calls_policy(user: User) {
    let f = Fixture::new(user);
    write(&f.ws.join("base.toml"), "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\n", 0o644);
    write(&f.ws.join("mine.toml"), "version = 1\nextends = [\"base.toml\", \"default\"]\n", 0o644);
    for n in ["base.toml", "mine.toml"] {
        chown(&f.ws.join(n), user.uid());
    }
    let (mine, base) = (read(&f.ws.join("mine.toml")), read(&f.ws.join("base.toml")));
    let argv = |script: &str| -> Vec<OsString> {
        let ws = f.ws.to_string_lossy().into_owned();
        let pol = f.ws.join("mine.toml").to_string_lossy().into_owned();
        [f.bin.to_string_lossy().as_ref(), "run", "--policy", &pol, "--workspace", &ws, "--", "sh", "-c", script]
            .iter()
            .map(OsString::from)
            .collect()
    };
    let o = f.launch(&argv("cat mine.toml >/dev/null && echo 'version = 1' > mine.toml; echo 'version = 1' > base.toml; mv base.toml b2; true"), &[], None);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(read(&f.ws.join("mine.toml")), mine, "the policy was rewritten\n{o}");
    assert_eq!(read(&f.ws.join("base.toml")), base, "the file it extends was rewritten\n{o}");
    // The next call is still held to it: the home's secrets are still denied.
    std::fs::create_dir_all(f.home.join(".ssh")).unwrap();
    write(&f.home.join(".ssh/id_ed25519"), "PRIVATE", 0o600);
    chown(&f.home.join(".ssh/id_ed25519"), user.uid());
    let o = f.launch(&argv("cat ~/.ssh/id_ed25519"), &[], None);
    assert!(!o.out().contains("PRIVATE"), "{o}");
}

/// Found by an attack: a gitfile's `commondir` was protected where it led
/// (`wt/commondir` = `../shared`, `shared -> bare-v2`: `bare-v2/config`), so the `shared`
/// link was not noted; the call re-pointed it at a repository of its own and host git ran
/// its `core.fsmonitor`. Now the common directory is protected as named from the git
/// directory: the link is the user's after the call, and nothing of the call's runs.
fn a_commondir_is_protected_as_named(user: User) {
    let f = Fixture::new(user);
    let setup = "set -e
git init -q --bare bare-v2 && ln -s bare-v2 shared
mkdir wt && echo 'ref: refs/heads/main' > wt/HEAD && echo ../shared > wt/commondir && echo \"$PWD/.git\" > wt/gitdir
echo 'gitdir: ./wt' > .git
git status --short";
    let o = f.host(&["sh", "-c", setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let config = read(&f.ws.join("bare-v2/config"));
    // Nothing changed: nothing moves, and git works in the workspace.
    let o = run_default_in(&f, &f.ws, &["git", "status", "--short"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(moved_aside_under(&f.ws).is_empty(), "{o}");
    let pwned = f.home.join("PWNED"); // the user can write there, the call cannot
    let attack = format!(
        "cp -r bare-v2 evil; printf '[core]\\n\\tfsmonitor = \"touch {}; false\"\\n' >> evil/config; rm shared; ln -s evil shared; true",
        pwned.display()
    );
    let o = run_default_in(&f, &f.ws, &["sh", "-c", &attack]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(read(&f.ws.join("evil/config")).contains("fsmonitor"), "the call ran\n{o}");
    assert_eq!(std::fs::read_link(f.ws.join("shared")).unwrap(), Path::new("bare-v2"), "the link was re-pointed\n{o}");
    assert!(o.err().contains(&format!("symlink {}", f.ws.join("shared").display())), "not said\n{o}");
    assert_eq!(read(&f.ws.join("bare-v2/config")), config, "{o}");
    let g = f.host(&["git", "status", "--short"]);
    assert_eq!(g.code(), 0, "git works in the workspace\n{g}");
    assert!(!pwned.exists(), "host git ran the call's core.fsmonitor\n{o}");
}

/// Found by an attack: a `..` after a real directory on the way to what a rule protects
/// (`gitdir: sub/../.bare`). The kernel takes `..` from where `sub` leads on disk;
/// paddock resolved it at the start and neither pinned nor noted `sub`, so the call
/// renamed it away and put a symlink there (`sub -> deep/a`), and the user's unchanged
/// gitfile led host git to the call's repository. Now each directory left by `..` is
/// noted and one the call replaced is moved aside: the gitfile leads nowhere, never to
/// the call's config. The legitimate layout, unchanged, keeps working.
fn a_directory_a_gitdir_leaves_by_dotdot_is_the_users(user: User) {
    let f = Fixture::new(user);
    let setup = "set -e
mkdir sub && git init -q --bare .bare && git --git-dir=.bare config core.bare false
echo 'gitdir: sub/../.bare' > .git && git status --short";
    let o = f.host(&["sh", "-c", setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let config = read(&f.ws.join(".bare/config"));
    // Nothing changed: nothing moves, and git works through `sub/..`.
    let o = run_default_in(&f, &f.ws, &["git", "status", "--short"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(moved_aside_under(&f.ws).is_empty(), "{o}");

    let pwned = f.home.join("PWNED"); // the user can write there, the call cannot
    let attack = format!(
        "mkdir -p deep/a && git init -q --bare deep/.bare && printf '[core]\\n\\tbare = false\\n\\tfsmonitor = \"touch {}; false\"\\n' >> deep/.bare/config && mv sub sub.old && ln -s deep/a sub",
        pwned.display()
    );
    let o = run_default_in(&f, &f.ws, &["sh", "-c", &attack]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(f.ws.join("sub.old").is_dir(), "the call ran\n{o}");
    let g = f.host(&["git", "status", "--short"]);
    assert!(!pwned.exists(), "host git ran the call's core.fsmonitor through sub/..\n{o}\n{g}");
    assert!(std::fs::symlink_metadata(f.ws.join("sub")).is_err(), "the call's link stays\n{o}");
    assert!(o.err().contains(&format!("created {}", f.ws.join("sub").display())), "not said\n{o}");
    assert_eq!(read(&f.ws.join(".bare/config")), config, "{o}");
    // Put back as the user had it, it is the user's again: git works, nothing moves.
    std::fs::rename(f.ws.join("sub.old"), f.ws.join("sub")).unwrap();
    let o = run_default_in(&f, &f.ws, &["git", "status", "--short"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("created"), "{o}");
}

/// Found by an attack, as above, through the user's symlinks:
/// `.claude/settings.json -> ../x/../cfg/real.json` and
/// `~/.gitconfig -> WORKSPACE/x/../gitconfig` (`x` a real directory). The call renamed
/// `x` away and put `x -> deep/a` there; the unchanged links then read its files. Now
/// `x` is noted and the call's link moved aside: the links lead nowhere, never to the
/// call's files.
fn a_directory_a_symlink_leaves_by_dotdot_is_the_users(user: User) {
    let f = Fixture::new(user);
    let setup = "set -e
mkdir -p .claude x cfg && echo '{}' > cfg/real.json && ln -s ../x/../cfg/real.json .claude/settings.json
printf '[user]\\n\\tname = me\\n' > gitconfig";
    let o = f.host(&["sh", "-c", setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let gitconfig = f.home.join(".gitconfig");
    std::os::unix::fs::symlink(f.ws.join("x/../gitconfig"), &gitconfig).unwrap();
    let home = read(&gitconfig);
    let o = run_default_in(&f, &f.ws, &["cat", ".claude/settings.json"]);
    assert_eq!((o.code(), o.out().as_str()), (0, "{}\n"), "{o}");
    assert!(moved_aside_under(&f.ws).is_empty(), "{o}");

    let attack = "mkdir -p deep/a deep/cfg && echo '{\"hooks\":\"PWNED\"}' > deep/cfg/real.json
printf '[core]\\n\\tfsmonitor = \"touch PWNED; false\"\\n' > deep/gitconfig && mv x x.old && ln -s deep/a x";
    let o = run_default_in(&f, &f.ws, &["sh", "-c", attack]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(f.ws.join("x.old").is_dir(), "the call ran\n{o}");
    let settings = std::fs::read_to_string(f.ws.join(".claude/settings.json")).unwrap_or_default();
    assert!(!settings.contains("PWNED"), ".claude/settings.json reads the call's file\n{o}");
    let now = std::fs::read_to_string(&gitconfig).unwrap_or_default();
    assert!(!now.contains("fsmonitor"), "~/.gitconfig reads the call's file\n{o}");
    assert!(o.err().contains(&format!("created {}", f.ws.join("x").display())), "not said\n{o}");
    // Put back as the user had it, it is the user's again: nothing moves.
    std::fs::rename(f.ws.join("x.old"), f.ws.join("x")).unwrap();
    assert_eq!(read(&gitconfig), home);
    let o = run_default_in(&f, &f.ws, &["cat", ".claude/settings.json"]);
    assert_eq!((o.code(), o.out().as_str()), (0, "{}\n"), "{o}");
    assert!(!o.err().contains("created"), "{o}");
}

/// Found by attacks: a workspace symlink on the way to a git directory or a policy file
/// that lies outside the write paths was not noted (nothing was protected there, so the
/// way was not looked at); and a git directory whose name holds glob characters (`b[1]`)
/// got no protection. The call re-pointed the link (host git then ran its fsmonitor; the
/// next run obeyed its policy) or wrote `b[1]/config`.
fn the_way_to_a_git_directory_or_policy_outside_is_the_users(user: User) {
    let f = Fixture::new(user);
    let out = f.outside.to_string_lossy().into_owned();
    let setup = format!(
        "set -e
git init -q --bare {out}/repo.git && git --git-dir={out}/repo.git config core.bare false
ln -s {out}/repo.git repo && echo 'gitdir: ./repo' > .git && git status --short >/dev/null
ln -s {out} pol"
    );
    let o = f.host(&["sh", "-c", &setup]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    write(&f.outside.join("mine.toml"), "version = 1\nextends = [\"default\"]\n", 0o644);
    let repoint = "git init -q --bare evil; printf '[core]\\n\\tfsmonitor = touch fsmon-ran\\n' >> evil/config
rm repo && ln -s evil repo; mkdir evilpol && printf 'version = 1\\n' > evilpol/mine.toml; rm pol && ln -s evilpol pol; true";
    let ws = f.ws.to_string_lossy().into_owned();
    let argv: Vec<OsString> = [
        f.bin.to_string_lossy().as_ref(),
        "run",
        "--policy",
        "./pol/mine.toml",
        "--workspace",
        &ws,
        "--",
        "sh",
        "-c",
        repoint,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let o = f.launch(&argv, &[], None);
    for (link, to) in [("repo", format!("{out}/repo.git")), ("pol", out.clone())] {
        let now = std::fs::read_link(f.ws.join(link)).ok().map(|p| p.to_string_lossy().into_owned());
        assert_eq!(now.as_deref(), Some(to.as_str()), "{link} was re-pointed\n{o}");
    }
    let o = f.host(&["git", "status", "--short"]);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!f.ws.join("fsmon-ran").exists(), "host git ran the call's fsmonitor");

    // A git directory named with glob characters is protected as named.
    let g = Fixture::new(user);
    let o = g.host(&[
        "sh",
        "-c",
        "set -e; git init -q --bare 'b[1]'; git --git-dir='b[1]' config core.bare false; echo 'gitdir: ./b[1]' > .git",
    ]);
    assert_eq!(o.code(), 0, "setup\n{o}");
    let config = read(&g.ws.join("b[1]/config"));
    let o = run_default_in(&g, &g.ws, &["sh", "-c", "git config core.fsmonitor 'touch fsmon-ran; false'; true"]);
    assert_eq!(o.code(), 0, "{o}");
    assert_eq!(read(&g.ws.join("b[1]/config")), config, "b[1]/config was rewritten\n{o}");
}

/// Found by an attack (uid 65534): a call made a directory on a protected link's way
/// unsearchable (`chmod 000 .claude`); the next call's policy took the link as absent, so
/// its target was writable. Now such a directory in a write path fails the load (78), named
/// with what to do; as root (no search permission needed) nothing changes.
fn a_directory_made_unsearchable_on_a_rules_way_stops_the_next_call(user: User) {
    let f = Fixture::new(user);
    std::fs::create_dir_all(f.ws.join(".claude")).unwrap();
    std::fs::create_dir_all(f.ws.join("cfg")).unwrap();
    write(&f.ws.join("cfg/real.json"), "{}", 0o644);
    std::os::unix::fs::symlink("../cfg/real.json", f.ws.join(".claude/settings.json")).unwrap();
    for p in [".claude", "cfg", "cfg/real.json", ".claude/settings.json"] {
        std::os::unix::fs::lchown(f.ws.join(p), Some(user.uid()), Some(user.uid())).unwrap();
    }
    let o = run_default_in(&f, &f.ws, &["chmod", "000", ".claude"]);
    assert_eq!(o.code(), 0, "{o}");
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "chmod 755 .claude; echo '{\"hooks\":1}' > cfg/real.json"]);
    assert_eq!(read(&f.ws.join("cfg/real.json")), "{}", "the protected target was written\n{o}");
    if user.uid() != 0 {
        assert_eq!(o.code(), 78, "{o}");
        assert!(o.err().contains(".claude cannot be looked at") && o.err().contains("chmod u+rx"), "{o}");
    }
    std::fs::set_permissions(f.ws.join(".claude"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `argv` (paddock's, run as the fixture's user) in a private mount namespace of root's:
/// `before` (a shell script, run as root) runs first; `during` runs once the call has
/// made `started` in the workspace, and then `go` is made there, which the call waits for.
fn with_host_mounts(f: &Fixture, before: &str, during: &str, argv: Vec<OsString>) -> Out {
    let ws = sh_quote(&f.ws.to_string_lossy());
    let script = format!(
        "set -e
{before}
set +e
\"$@\" & p=$!
while [ ! -e {ws}/started ] && kill -0 $p 2>/dev/null; do sleep 0.01; done
{during}
touch {ws}/go
wait $p"
    );
    let mut full: Vec<OsString> =
        ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", &script, "sh"].map(OsString::from).to_vec();
    full.extend(f.user.prefix());
    full.extend(argv);
    let o = f.launch_as(User::Root, &full, &[], None, HANG);
    for name in ["started", "go"] {
        let _ = std::fs::remove_file(f.ws.join(name));
    }
    o
}

/// What a call runs to wait for the host ([`with_host_mounts`]), and then plants.
const WAIT_THEN_PLANT: &str =
    "touch started; while [ ! -e go ]; do sleep 0.01; done; mkdir -p own && echo 'export EVIL=1' > own/.envrc";

/// `mount --bind FROM TO` as a shell line.
fn bind_line(from: &Path, to: &Path) -> String {
    format!("mount --bind {} {}", sh_quote(&from.to_string_lossy()), sh_quote(&to.to_string_lossy()))
}

/// A directory holding `.envrc` and `inner/.envrc`, outside the workspace.
fn host_dir(f: &Fixture, name: &str) -> std::path::PathBuf {
    let src = f.root.join(name);
    std::fs::create_dir_all(src.join("inner")).unwrap();
    write(&src.join(".envrc"), "export HOST=1\n", 0o600);
    write(&src.join("inner/.envrc"), "export HOST=2\n", 0o600);
    src
}

/// A directory `name` of the user's in the workspace, to mount on.
fn mount_point(f: &Fixture, name: &str) -> std::path::PathBuf {
    let k = f.ws.join(name);
    std::fs::create_dir(&k).unwrap();
    chown(&k, f.user.uid());
    k
}

/// The scan after the call ran, and caught what the call planted beside the mounts.
fn assert_own_plant_caught(f: &Fixture, o: &Out) {
    assert!(o.err().contains(&format!("created {}", f.ws.join("own/.envrc").display())), "{o}");
    let aside = moved_aside_under(&f.ws);
    assert_eq!(aside.len(), 1, "{aside:?}\n{o}");
    std::fs::remove_dir_all(f.ws.join("own")).unwrap();
}

/// A directory the host mounts into the workspace while a call runs (found by an attack):
/// the call's mount namespace, a private copy, never shows it, yet the scan after the call
/// took the matches it holds for the call's: as root it moved the `.envrc` of the mount's
/// source, outside the workspace, aside; as uid 65534 the run failed with 71. A mount the
/// scan at the start did not meet is now not scanned, nothing in it is moved, and it is
/// said (`unchecked`); what the call plants beside it is still moved aside. So is a file
/// the host mounts over the user's match.
fn what_the_host_mounts_during_a_call_is_said_and_left_alone(user: User) {
    let f = Fixture::new(user);
    let src = host_dir(&f, "hostdir");
    let k = mount_point(&f, "k");
    let argv = default_argv(&f, &f.ws, &["sh", "-c", WAIT_THEN_PLANT]);
    let o = with_host_mounts(&f, "true", &bind_line(&src, &k), argv.clone());
    assert_eq!(o.code(), 0, "{o}");
    assert!(moved_aside_under(&src).is_empty(), "the host's files were moved aside\n{o}");
    assert_eq!(read(&src.join(".envrc")), "export HOST=1\n");
    assert_eq!(read(&src.join("inner/.envrc")), "export HOST=2\n");
    assert!(!o.err().contains(&format!("created {}/", k.display())), "{o}");
    assert!(o.err().contains(&format!("{} could not be checked", k.display())), "{o}");
    assert!(o.err().contains("mounted there during the call"), "{o}");
    assert!(last_call_end(&f).contains("\"unchecked\""), "{}", last_call_end(&f));
    assert_own_plant_caught(&f, &o);
    // A file mounted over the user's match during the call.
    let envrc = f.ws.join(".envrc");
    write(&envrc, "export MINE=1\n", 0o644);
    chown(&envrc, user.uid());
    let o = with_host_mounts(&f, "true", &bind_line(&src.join(".envrc"), &envrc), argv);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains(&format!("created {}", envrc.display())), "{o}");
    assert!(o.err().contains(&format!("{} could not be checked", envrc.display())), "{o}");
    assert!(moved_aside_under(&src).is_empty(), "{o}");
    assert_eq!(read(&envrc), "export MINE=1\n");
    assert_own_plant_caught(&f, &o);
}

/// A mount in the workspace mounted again during a call (what an automounter does to an
/// idle one), one moved in (`mount --move` of an older mount), and one unmounted: what the
/// call left in the first and the last is out of the scan's reach or not comparable with
/// the start, and the second holds the host's files: each is said, nothing in it moved
/// (found by an attack on the first version, which passed over the first silently and
/// moved the host's files aside in the second).
fn a_mount_remounted_moved_in_or_gone_during_a_call_is_said(user: User) {
    let f = Fixture::new(user);
    let src = host_dir(&f, "hostdir");
    let elsewhere = f.root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let (again, moved, gone) = (mount_point(&f, "again"), mount_point(&f, "moved"), mount_point(&f, "gone"));
    let before = [bind_line(&src, &again), bind_line(&src, &elsewhere), bind_line(&src, &gone)].join("\n");
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let during = format!(
        "umount {a} && {rebind}\nmount --move {e} {m}\numount {g}",
        a = q(&again),
        rebind = bind_line(&src, &again),
        e = q(&elsewhere),
        m = q(&moved),
        g = q(&gone)
    );
    let o = with_host_mounts(&f, &before, &during, default_argv(&f, &f.ws, &["sh", "-c", WAIT_THEN_PLANT]));
    assert_eq!(o.code(), 0, "{o}");
    assert!(moved_aside_under(&src).is_empty(), "the host's files were moved aside\n{o}");
    for p in [&again, &moved] {
        assert!(o.err().contains(&format!("{} could not be checked", p.display())), "{}\n{o}", p.display());
    }
    assert!(o.err().contains(&format!("{} could not be checked", gone.display())), "{o}");
    assert!(o.err().contains("is gone"), "{o}");
    assert_own_plant_caught(&f, &o);
    // Control: the same mounts, unchanged during a call, are scanned: the user's matches
    // in them stay, unsaid.
    let o = with_host_mounts(&f, &before, "true", default_argv(&f, &f.ws, &["sh", "-c", WAIT_THEN_PLANT]));
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("could not be checked"), "{o}");
    assert_own_plant_caught(&f, &o);
}

/// A `proc` mounted in the workspace by the host: the scan after each call walked the
/// host's processes, with hundreds of "could not be checked" lines (found by an attack).
/// A pseudo filesystem is not scanned, as the view's walk does not enter one; but what is
/// mounted inside one (a tmpfs over a `proc` directory, as container runtimes mask them)
/// is, from its own root: the call can write there (found by an attack on the first
/// version, which passed over it).
fn a_pseudo_filesystem_is_not_scanned_but_what_is_mounted_in_it_is(user: User) {
    let f = Fixture::new(user);
    let p = mount_point(&f, "p");
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let before = format!("mount -t proc proc {p}\nmount -t tmpfs -o mode=1777 tmpfs {p}/sys/fs", p = q(&p));
    let plant =
        "touch started; mkdir -p own && echo 'export EVIL=1' > own/.envrc && echo 'export EVIL=2' > p/sys/fs/.envrc";
    let o = with_host_mounts(&f, &before, "true", default_argv(&f, &f.ws, &["sh", "-c", plant]));
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("could not be checked"), "{o}");
    assert!(o.err().contains(&format!("created {}", f.ws.join("own/.envrc").display())), "{o}");
    assert!(o.err().contains(&format!("created {}", p.join("sys/fs/.envrc").display())), "{o}");
}

/// A directory bound onto itself (its mount's root is the very directory its parent
/// lists): from the second call on, its kept listing stood for it unopened, its mount was
/// not noted at the start, and a call that planted there got "mounted there during the
/// call" and its match was left (found by an attack on the second version). It is noted
/// wherever it is met now: what each call plants there is moved aside.
fn a_directory_bound_onto_itself_is_scanned_call_after_call(user: User) {
    let f = Fixture::new(user);
    let d = mount_point(&f, "d");
    write(&d.join("readme"), "hi\n", 0o644);
    let before = bind_line(&d, &d);
    // Past the margin, so the first call keeps the listings the second starts from.
    wait_past_ctime_margin(&[f.ws.clone(), d.clone()]);
    let o = with_host_mounts(&f, &before, "true", default_argv(&f, &f.ws, &["true"]));
    assert_eq!(o.code(), 0, "{o}");
    let plant = "echo 'export EVIL=1' > d/.envrc";
    let o = with_host_mounts(&f, &before, "true", default_argv(&f, &f.ws, &["sh", "-c", plant]));
    assert_eq!(o.code(), 0, "{o}");
    assert!(!o.err().contains("could not be checked"), "{o}");
    assert!(o.err().contains(&format!("created {}", d.join(".envrc").display())), "{o}");
}
