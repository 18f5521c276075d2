//! What a call creates where a `deny` or `protect` rule names a path absent at its start is
//! moved aside when it ends, safely: a symlink the call planted on the way (`.git` →
//! another repository's `.git`, `.claude` → `~/.claude`) is itself what moves, never
//! followed; a parent the call made read-only does not keep its file in place; a `.git`
//! gitfile or `.git/commondir` that would send host git to a planted config does not stay.
//! git's own work in the workspace keeps working. Each as root and as uid 65534, each
//! with a control that shows the plant works when nothing stops it.

#[macro_use]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

both_users!(
    a_symlinked_git_is_moved_aside_not_followed,
    symlinked_agent_settings_dirs_are_moved_aside_not_followed,
    a_read_only_git_dir_does_not_keep_a_planted_config,
    a_planted_commondir_is_moved_aside,
    a_git_dir_put_in_place_of_the_repositorys_is_moved_aside,
    a_planted_gitfile_is_moved_aside,
    git_work_in_the_workspace_keeps_working,
    a_move_that_fails_is_said_and_exits_71,
);

/// `paddock run [--policy P] -- sh -c SCRIPT` in the directory `dir` below the workspace
/// (`.` for the workspace), which is the run's workspace: no `--policy` is the embedded
/// default.
fn run_in(f: &Fixture, dir: &str, policy: Option<&str>, script: &str) -> Out {
    let pol = policy.map_or(String::new(), |p| format!("--policy {} ", sh_quote(p)));
    let cmd = format!(
        "cd {} && exec {} run {pol}-- sh -c {}",
        sh_quote(dir),
        sh_quote(f.bin.to_str().unwrap()),
        sh_quote(script)
    );
    f.host(&["sh", "-c", &cmd])
}

/// A policy without any `protect` (the control: nothing moves the plant).
fn unprotected(f: &Fixture) -> String {
    f.policy(&Pol::default()).to_string_lossy().into_owned()
}

fn git(f: &Fixture, dir: &str, args: &[&str]) -> Out {
    let mut v =
        vec!["git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.test", "-c", "init.defaultBranch=main"];
    v.extend_from_slice(args);
    let o = f.host(&v);
    assert_eq!(o.code(), 0, "git {args:?}\n{o}");
    o
}

/// A directory owned by the user under the fixture's root.
fn own_dir(f: &Fixture, name: &str) -> PathBuf {
    let d = f.root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    chown(&d, f.user.uid());
    d
}

/// The call plants `.git` → another repository's `.git` in a workspace with no `.git`:
/// the move aside used to follow it and rename the victim's `.git/config` and hooks.
fn a_symlinked_git_is_moved_aside_not_followed(u: User) {
    let f = Fixture::new(u);
    let victim = own_dir(&f, "victim");
    let victim = victim.to_str().unwrap();
    git(&f, victim, &["init", "-q"]);
    git(&f, victim, &["config", "remote.origin.url", "https://example.invalid/x"]);
    let plant = format!("ln -s {}/.git .git && echo planted", sh_quote(victim));
    // Control: the call can plant the symlink, and it stays.
    let o = run_in(&f, ".", Some(&unprotected(&f)), &plant);
    assert_eq!((o.code(), o.out().as_str()), (0, "planted\n"), "control\n{o}");
    assert!(std::fs::symlink_metadata(f.ws.join(".git")).unwrap().file_type().is_symlink(), "control\n{o}");
    std::fs::remove_file(f.ws.join(".git")).unwrap();

    let o = run_in(&f, ".", None, &plant);
    assert_eq!(o.code(), 0, "{o}");
    assert!(Path::new(victim).join(".git/config").is_file(), "the victim's .git/config was moved\n{o}");
    assert!(Path::new(victim).join(".git/hooks").is_dir(), "the victim's hooks were moved\n{o}");
    assert_eq!(git(&f, victim, &["config", "remote.origin.url"]).out(), "https://example.invalid/x\n");
    assert!(moved_names(&Path::new(victim).join(".git")).is_empty(), "{o}");
    assert!(std::fs::symlink_metadata(f.ws.join(".git")).is_err(), "the symlink stayed\n{o}");
    let aside = moved_names(&f.ws);
    assert_eq!(aside.len(), 1, "{aside:?}\n{o}");
    assert!(aside[0].starts_with(".git.paddock-moved-"), "{aside:?}");
    assert_eq!(
        std::fs::read_link(f.ws.join(&aside[0])).unwrap(),
        Path::new(victim).join(".git"),
        "moved, not followed"
    );
    let said = format!("created {} (a symlink to {victim}/.git, not followed)", f.ws.join(".git").display());
    assert!(o.err().contains(&said), "the symlink is named as what the call created\n{o}");
    assert_eq!(o.err().matches("created").count(), 1, "one move: the symlink\n{o}");
}

/// Under coding-agent, `.claude` → `~/.claude` and `.codex` → `~/.codex` in the
/// workspace: the move aside used to rename the user's own settings.
fn symlinked_agent_settings_dirs_are_moved_aside_not_followed(u: User) {
    let f = Fixture::new(u);
    let home = f.home.to_str().unwrap().to_string();
    for (dir, file, text) in [
        (".claude", "settings.json", "{\"permissions\":{}}\n"),
        (".codex", "config.toml", "sandbox_mode = \"read-only\"\n"),
    ] {
        let d = f.home.join(dir);
        std::fs::create_dir(&d).unwrap();
        chown(&d, u.uid());
        write(&d.join(file), text, 0o644);
        chown(&d.join(file), u.uid());
    }
    let plant = format!("ln -s {h}/.claude .claude && ln -s {h}/.codex .codex && echo linked", h = sh_quote(&home));
    let o = run_in(&f, ".", Some(&unprotected(&f)), &plant);
    assert_eq!((o.code(), o.out().as_str()), (0, "linked\n"), "control\n{o}");
    for d in [".claude", ".codex"] {
        assert!(std::fs::symlink_metadata(f.ws.join(d)).unwrap().file_type().is_symlink(), "control: {d}\n{o}");
        std::fs::remove_file(f.ws.join(d)).unwrap();
    }

    let o = run_in(&f, ".", Some("coding-agent"), &plant);
    assert_eq!((o.code(), o.out().as_str()), (0, "linked\n"), "{o}");
    assert_eq!(read(&f.home.join(".claude/settings.json")), "{\"permissions\":{}}\n", "{o}");
    assert_eq!(read(&f.home.join(".codex/config.toml")), "sandbox_mode = \"read-only\"\n", "{o}");
    assert!(moved_names(&f.home.join(".claude")).is_empty() && moved_names(&f.home.join(".codex")).is_empty(), "{o}");
    let aside = moved_names(&f.ws);
    assert_eq!(aside.len(), 2, "{aside:?}\n{o}");
    for d in [".claude", ".codex"] {
        assert!(std::fs::symlink_metadata(f.ws.join(d)).is_err(), "{d} stayed\n{o}");
        let said = format!("created {} (a symlink to {home}/{d}, not followed)", f.ws.join(d).display());
        assert!(o.err().contains(&said), "{d} not named\n{o}");
    }
}

/// `git init`, a planted `core.fsmonitor`, then `chmod 555 .git` (and `000`): the move
/// aside used to fail with EACCES, and the planted config stayed behind an exit 0.
fn a_read_only_git_dir_does_not_keep_a_planted_config(u: User) {
    let f = Fixture::new(u);
    for mode in ["555", "000"] {
        let plant =
            format!("git init -q && git config core.fsmonitor /bin/evil-{mode} && chmod {mode} .git && echo planted");
        let o = run_in(&f, ".", Some(&unprotected(&f)), &plant);
        assert_eq!((o.code(), o.out().as_str()), (0, "planted\n"), "control ({mode})\n{o}");
        chmod(&f.ws.join(".git"), 0o755);
        assert!(read(&f.ws.join(".git/config")).contains(&format!("evil-{mode}")), "control ({mode})\n{o}");
        std::fs::remove_dir_all(f.ws.join(".git")).unwrap();

        let o = run_in(&f, ".", None, &plant);
        assert_eq!((o.code(), o.out().as_str()), (0, "planted\n"), "({mode})\n{o}");
        let st = std::fs::symlink_metadata(f.ws.join(".git")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&st.permissions()) & 0o777,
            u32::from_str_radix(mode, 8).unwrap(),
            "the call's mode is restored"
        );
        chmod(&f.ws.join(".git"), 0o755);
        assert!(
            std::fs::symlink_metadata(f.ws.join(".git/config")).is_err(),
            "the planted config stayed ({mode})\n{o}"
        );
        let aside = moved_names(&f.ws.join(".git"));
        let config = aside.iter().find(|n| n.starts_with("config.paddock-moved-")).expect("config moved aside");
        assert!(read(&f.ws.join(".git").join(config)).contains(&format!("evil-{mode}")), "moved, not deleted");
        assert!(o.err().contains(&format!("created {}", f.ws.join(".git/config").display())), "{o}");
        std::fs::remove_dir_all(f.ws.join(".git")).unwrap();
    }
}

/// A repository the call cannot change (`.git/config` protected) is sent to a config of
/// the call's own: `.git/evil` (HEAD, objects, refs, config) and `.git/commondir` = evil.
/// The user's next `git status` on the host ran the planted `core.fsmonitor`.
fn a_planted_commondir_is_moved_aside(u: User) {
    let f = Fixture::new(u);
    git(&f, ".", &["init", "-q"]);
    git(&f, ".", &["commit", "-q", "--allow-empty", "-m", "i"]);
    let mark = f.outside.join(format!("ran-{}", unique()));
    let plant = format!(
        "mkdir .git/evil && cp -a .git/objects .git/refs .git/HEAD .git/evil/ && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = \"touch {}; false\"\\n' > .git/evil/config && echo evil > .git/commondir && echo planted",
        mark.display()
    );
    let o = run_in(&f, ".", Some(&unprotected(&f)), &plant);
    assert_eq!((o.code(), o.out().as_str()), (0, "planted\n"), "control\n{o}");
    let _ = f.host(&["git", "status"]);
    assert!(mark.exists(), "control: host git ran the planted fsmonitor");
    std::fs::remove_file(&mark).unwrap();
    std::fs::remove_file(f.ws.join(".git/commondir")).unwrap();
    std::fs::remove_dir_all(f.ws.join(".git/evil")).unwrap();

    let o = run_in(&f, ".", None, &plant);
    assert_eq!(o.code(), 0, "{o}");
    assert!(!f.ws.join(".git/commondir").exists(), "the commondir stayed\n{o}");
    assert!(o.err().contains(&format!("created {}", f.ws.join(".git/commondir").display())), "{o}");
    let _ = f.host(&["git", "status"]);
    assert!(!mark.exists(), "host git ran the planted fsmonitor\n{o}");
}

/// The call renames the repository's `.git` away and puts a `.git` of its own, with a
/// planted config, in its place: the new directory is what moves (the old one keeps the
/// name the call gave it).
fn a_git_dir_put_in_place_of_the_repositorys_is_moved_aside(u: User) {
    let f = Fixture::new(u);
    git(&f, ".", &["init", "-q"]);
    git(&f, ".", &["commit", "-q", "--allow-empty", "-m", "i"]);
    let mark = f.outside.join(format!("ran-{}", unique()));
    let plant = format!(
        "mv .git .git-old && mkdir .git && cp -a .git-old/HEAD .git-old/objects .git-old/refs .git/ && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = \"touch {}; false\"\\n' > .git/config && echo planted",
        mark.display()
    );
    let o = run_in(&f, ".", Some(&unprotected(&f)), &plant);
    assert_eq!((o.code(), o.out().as_str()), (0, "planted\n"), "control\n{o}");
    let _ = f.host(&["git", "status"]);
    assert!(mark.exists(), "control: host git ran the planted fsmonitor");
    std::fs::remove_file(&mark).unwrap();
    std::fs::remove_dir_all(f.ws.join(".git")).unwrap();
    std::fs::rename(f.ws.join(".git-old"), f.ws.join(".git")).unwrap();

    // Under the default the view pins `.git` (a protected path depends on its name): the
    // rename fails (EBUSY) and nothing is planted. (Without a mount view, the move aside
    // catches a `.git` that is not the one there at the start: `absent.rs` unit tests.)
    let o = run_in(&f, ".", None, &plant);
    assert_ne!(o.code(), 0, "{o}");
    assert!(o.err().contains("Device or resource busy"), "the pinned .git cannot be renamed\n{o}");
    assert!(!f.ws.join(".git-old").exists(), "{o}");
    assert!(!read(&f.ws.join(".git/config")).contains("fsmonitor"), "{o}");
    let _ = f.host(&["git", "status"]);
    assert!(!mark.exists(), "host git ran the planted fsmonitor\n{o}");
}

/// A workspace that is a subdirectory of a repository has no `.git`: the call writes a
/// gitfile `.git` (`gitdir: .g`) to a repository of its own, which host git follows.
fn a_planted_gitfile_is_moved_aside(u: User) {
    let f = Fixture::new(u);
    git(&f, ".", &["init", "-q"]);
    git(&f, ".", &["commit", "-q", "--allow-empty", "-m", "i"]);
    let sub = f.ws.join("sub");
    std::fs::create_dir(&sub).unwrap();
    chown(&sub, u.uid());
    let mark = f.outside.join(format!("ran-{}", unique()));
    let plant = format!(
        "mkdir -p .g/objects .g/refs/heads && echo 'ref: refs/heads/main' > .g/HEAD && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = \"touch {}; false\"\\n' > .g/config && echo 'gitdir: .g' > .git && echo planted",
        mark.display()
    );
    let pol = unprotected(&f);
    let o = run_in(&f, "sub", Some(&pol), &plant);
    assert_eq!((o.code(), o.out().as_str()), (0, "planted\n"), "control\n{o}");
    let _ = f.host(&["sh", "-c", "cd sub && git status"]);
    assert!(mark.exists(), "control: host git followed the gitfile");
    std::fs::remove_file(&mark).unwrap();
    std::fs::remove_file(sub.join(".git")).unwrap();
    std::fs::remove_dir_all(sub.join(".g")).unwrap();

    let o = run_in(&f, "sub", None, &plant);
    assert_eq!(o.code(), 0, "{o}");
    assert!(std::fs::symlink_metadata(sub.join(".git")).is_err(), "the gitfile stayed\n{o}");
    let aside = moved_names(&sub);
    assert_eq!(aside.len(), 1, "{aside:?}\n{o}");
    assert_eq!(read(&sub.join(&aside[0])), "gitdir: .g\n");
    assert!(o.err().contains(&format!("created {}", sub.join(".git").display())), "{o}");
    let _ = f.host(&["sh", "-c", "cd sub && git status"]);
    assert!(!mark.exists(), "host git followed the planted gitfile\n{o}");
}

/// Under the embedded default: add, commit, checkout -b, worktree add in the workspace;
/// a linked worktree as the workspace (its `.git` is a file) works and is left alone; a
/// new repository's history is kept (its config and sample hooks are moved aside).
fn git_work_in_the_workspace_keeps_working(u: User) {
    let f = Fixture::new(u);
    git(&f, ".", &["init", "-q"]);
    git(&f, ".", &["commit", "-q", "--allow-empty", "-m", "i"]);
    let id = "-c user.name=t -c user.email=t@example.test";
    let work = format!(
        "set -e; echo a > a.txt; git add a.txt; git {id} commit -q -m a; git checkout -q -b topic; git worktree add -q wt2; git -C wt2 status --short; echo done"
    );
    let o = run_in(&f, ".", None, &work);
    assert_eq!((o.code(), o.out().as_str()), (0, "done\n"), "{o}");
    assert!(!o.err().contains("moved aside"), "{o}");
    assert_eq!(git(&f, ".", &["branch", "--show-current"]).out(), "topic\n");
    assert!(git(&f, ".", &["worktree", "list"]).out().contains("wt2"));
    assert!(moved_names(&f.ws).is_empty() && moved_names(&f.ws.join(".git")).is_empty());

    // A linked worktree as the workspace (its git directory is outside the view): its
    // `.git` file is left alone when the call leaves it alone, and read-only for the call
    // (the workspace's own `.git` file is protected: a call cannot point it elsewhere).
    let gitfile = read(&f.ws.join("wt2/.git"));
    let o = run_in(&f, "wt2", None, "echo b > b.txt && echo done");
    assert_eq!((o.code(), o.out().as_str()), (0, "done\n"), "{o}");
    assert!(!o.err().contains("moved aside"), "{o}");
    assert_eq!(read(&f.ws.join("wt2/.git")), gitfile, "the worktree's gitfile is left alone");
    let repoint = "echo 'gitdir: .g' > .git && echo repointed";
    let o = run_in(&f, "wt2", Some(&unprotected(&f)), repoint);
    assert_eq!((o.code(), o.out().as_str()), (0, "repointed\n"), "control\n{o}");
    assert_eq!(read(&f.ws.join("wt2/.git")), "gitdir: .g\n", "control\n{o}");
    write(&f.ws.join("wt2/.git"), &gitfile, 0o644);
    chown(&f.ws.join("wt2/.git"), u.uid());
    let o = run_in(&f, "wt2", None, &format!("{repoint}; mv .git g2 || rm -f .git || echo held"));
    assert_eq!((o.code(), o.out().as_str()), (0, "held\n"), "{o}");
    assert_eq!(read(&f.ws.join("wt2/.git")), gitfile, "the worktree's gitfile was rewritten or moved\n{o}");
    assert!(moved_names(&f.ws.join("wt2")).is_empty(), "{o}");

    // A new repository in a workspace with none.
    let fresh = f.ws.join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    chown(&fresh, u.uid());
    let o = run_in(
        &f,
        "fresh",
        None,
        &format!("set -e; git init -q; echo c > c.txt; git add c.txt; git {id} commit -q -m c; echo done"),
    );
    assert_eq!((o.code(), o.out().as_str()), (0, "done\n"), "{o}");
    assert!(o.err().contains(&format!("created {}", fresh.join(".git/config").display())), "{o}");
    assert_eq!(git(&f, "fresh", &["log", "--format=%s"]).out(), "c\n", "the history is kept");
}

/// Unmounts what it names when dropped (the test ends however it ends).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Polls `cond` for up to `HANG`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < HANG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A move that cannot be made leaves the file in place: `run` says so and exits 71, not
/// the call's own 0. (The test, root on the host, makes the created `.envrc` a mount point
/// while the call waits, so that its rename fails with EBUSY.)
fn a_move_that_fails_is_said_and_exits_71(u: User) {
    let f = Fixture::new(u);
    let pol = Pol { protect: &["${WORKSPACE}/.envrc"], ..Pol::default() };
    let script = "echo 'export EVIL=1' > .envrc && while [ ! -e go ]; do sleep 0.02; done; echo ended";
    for blocked in [false, true] {
        let mut argv = f.paddock_argv(&pol);
        argv.extend(["sh", "-c", script].map(Into::into));
        let mut cmd = f.command(&argv);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = spawn(&mut cmd).unwrap();
        let envrc = f.ws.join(".envrc");
        wait_for(".envrc", || envrc.exists());
        let _mounted = blocked.then(|| {
            let st = Command::new("mount").args(["--bind", "/dev/null"]).arg(&envrc).status().unwrap();
            assert!(st.success(), "mount --bind over {}", envrc.display());
            Mounted(envrc.clone())
        });
        write(&f.ws.join("go"), "", 0o644);
        let out = child.wait_with_output().unwrap();
        let (code, err) = (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned());
        std::fs::remove_file(f.ws.join("go")).unwrap();
        if !blocked {
            assert_eq!(code, Some(0), "control: the move works\n{err}");
            assert!(std::fs::symlink_metadata(&envrc).is_err() && err.contains("moved aside to"), "control\n{err}");
            continue;
        }
        assert_eq!(code, Some(71), "{err}");
        assert!(
            err.contains(&format!("created {}", envrc.display())) && err.contains("could not be moved aside"),
            "{err}"
        );
        assert!(err.contains("exit 71 instead of the call's own 0"), "{err}");
        let log = read(&f.root.join("state").join("audit.jsonl"));
        let end = log.lines().rev().find(|l| l.contains("\"event\":\"call.end\"")).unwrap();
        assert!(end.contains("\"moved_aside\"") && end.contains("\"error\""), "{end}");
    }
}
