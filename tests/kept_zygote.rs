//! End-to-end: a session whose calls change only plain files of its workspace keeps its
//! zygote. A `git status` rewrites `.git/index` (through `index.lock` and a rename), an
//! agent writes its notes: a regular file no rule matches needs nothing in the view, and
//! the zygote's view stamp, watched from the start, lets it go. Until 2026-12-04 every
//! such call made the next one start a new zygote (and the calls of the following 2 s
//! each another). A rule's match the call makes is still a change: the next call gets a
//! new zygote, and the match is moved aside after the call that made it.

#[macro_use]
mod common;
use common::*;

both_users!(plain_files_keep_the_zygote_and_a_match_does_not);

/// The debug line of each zygote a session starts.
const STARTED: &str = "zygote started";

fn plain_files_keep_the_zygote_and_a_match_does_not(user: User) {
    let f = Fixture::new(user);
    let made = f.host(&[
        "sh",
        "-c",
        "git init -q && echo a > a.txt && git add a.txt && git -c user.name=t -c user.email=t@example.invalid commit -qm a",
    ]);
    assert_eq!(made.code(), 0, "{made}");
    let log = f.root.join("mcp.log");
    let index = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(f.ws.join(".git/index")).unwrap());
    let mut s = McpSession::start(&f, Some(&log));
    // `a.txt` touched: `git status` refreshes the index and writes it anew, through a new
    // file made while the old one still exists. Compared across one call only: across two,
    // the second write may take the first index's freed inode number.
    let calls = ["touch a.txt && git status --short && echo ok", "echo note > notes.txt && echo ok"];
    let mut rewrites = 0;
    for script in calls.iter().chain(&calls) {
        let before = index();
        let a = s.call(script);
        assert!(a.contains(r#"\"exit_code\":0"#) && a.contains("ok\\n"), "{script}: {a}");
        rewrites += usize::from(index() != before);
    }
    assert!(rewrites > 0, "control: the calls' `git status` wrote `.git/index` anew");
    assert_eq!(read(&log).matches(STARTED).count(), 1, "plain files only:\n{}", read(&log));
    let a = s.call("echo k > k.pem; echo ok");
    assert!(a.contains("ok\\n"), "{a}");
    let a = s.call("ls; echo ok");
    s.end();
    assert!(!a.contains("k.pem\\n"), "the match the call made was moved aside: {a}");
    let log = read(&log);
    assert!(log.contains("view is out of date"), "{log}");
    assert_eq!(log.matches(STARTED).count(), 2, "{log}");
}
