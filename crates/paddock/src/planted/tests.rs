use std::fs;

use paddock_policy::Vars;

use super::*;

fn policy(ws: &Path) -> Policy {
    let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nprotect = [\"${WORKSPACE}/**/.envrc\", \"${WORKSPACE}/.git/modules/**/config\", \"${WORKSPACE}/.git/modules/**/hooks\"]\ndeny = [\"${WORKSPACE}/**/*.pem\"]\n";
    let vars = Vars { workspace: ws.to_path_buf(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    Policy::from_toml_str("p.toml", text, &vars).unwrap()
}

fn moved_from(m: &[MovedAside]) -> Vec<String> {
    let mut v: Vec<String> = m.iter().map(|m| m.from.clone()).collect();
    v.sort();
    v
}

#[test]
fn new_matches_are_moved_aside_and_old_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("old")).unwrap();
    fs::write(ws.join("old/.envrc"), "kept").unwrap();
    fs::write(ws.join("notes"), "x").unwrap();
    fs::create_dir_all(ws.join("stuff")).unwrap();
    fs::write(ws.join("stuff/config"), "[core]\nfsmonitor = evil\n").unwrap();
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    let (m, u) = p.settle();
    assert!(m.is_empty() && u.is_empty(), "nothing changed: {m:?} {u:?}");
    // A new file, a rename of a plain file, a directory renamed into a match, a new key.
    fs::create_dir_all(ws.join("sub")).unwrap();
    fs::write(ws.join("sub/.envrc"), "planted").unwrap();
    fs::create_dir_all(ws.join("deep")).unwrap();
    fs::rename(ws.join("notes"), ws.join("deep/.envrc")).unwrap();
    fs::create_dir_all(ws.join(".git/modules")).unwrap();
    fs::rename(ws.join("stuff"), ws.join(".git/modules/x")).unwrap();
    fs::write(ws.join("a.pem"), "k").unwrap();
    let (m, u) = p.settle();
    assert!(u.is_empty(), "{u:?}");
    let s = |p: &str| ws.join(p).to_string_lossy().into_owned();
    assert_eq!(moved_from(&m), vec![s(".git/modules/x/config"), s("a.pem"), s("deep/.envrc"), s("sub/.envrc")]);
    for x in &m {
        assert!(x.error.is_empty(), "{x:?}");
        assert!(!Path::new(&x.from).exists());
        assert!(Path::new(&x.to).exists(), "{x:?}");
    }
    let envrc = m.iter().find(|x| x.from == s("sub/.envrc")).unwrap();
    assert_eq!(envrc.rule, "filesystem.protect[0]");
    assert_eq!(fs::read_to_string(&envrc.to).unwrap(), "planted");
    assert_eq!(fs::read_to_string(ws.join("old/.envrc")).unwrap(), "kept");
}

/// paddock's own state under a write grant (`$STATE` in the workspace) is neither a match
/// nor looked in: every view masks it, so no call plants anything there, and what paddock
/// or the user puts there meanwhile (`paddock revoke` writing a new `revocations.toml`
/// while a call runs) is never moved aside.
#[test]
fn paddocks_own_state_is_neither_scanned_nor_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let state = ws.join(".state");
    fs::create_dir_all(state.join("sub")).unwrap();
    fs::write(state.join("key.pem"), "paddock's").unwrap();
    let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\ndeny = [\"${WORKSPACE}/**/*.pem\"]\nprotect = [\"${WORKSPACE}/**/*.toml\"]\n";
    let vars = Vars { workspace: ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    let mut pol = Policy::from_toml_str("p.toml", text, &vars).unwrap();
    pol.hide_paths([state.clone(), dir.path().join("elsewhere")]);
    let p = Planted::before(&pol, std::slice::from_ref(&ws), None);
    assert!(p.start.is_empty(), "nothing of `$STATE` taken as a match: {:?}", p.start.keys().collect::<Vec<_>>());
    // Made and replaced during the call, by paddock (or the user) on the host.
    fs::write(state.join("revocations.toml.new"), "[[revoked]]").unwrap();
    fs::rename(state.join("revocations.toml.new"), state.join("revocations.toml")).unwrap();
    fs::write(state.join("sub/other.pem"), "x").unwrap();
    fs::remove_file(state.join("key.pem")).unwrap();
    fs::write(state.join("key.pem"), "paddock's, again").unwrap();
    // Control: the same in the workspace is the call's.
    fs::write(ws.join("planted.toml"), "x").unwrap();
    let (m, u) = p.settle();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(moved_from(&m), vec![ws.join("planted.toml").to_string_lossy().into_owned()]);
    assert_eq!(fs::read_to_string(state.join("revocations.toml")).unwrap(), "[[revoked]]");
    assert!(state.join("sub/other.pem").exists() && state.join("key.pem").exists());
}

#[test]
fn a_match_replaced_by_another_object_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("d")).unwrap();
    fs::write(ws.join("d/.envrc"), "user's").unwrap();
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    fs::write(ws.join("other"), "planted").unwrap();
    fs::rename(ws.join("other"), ws.join("d/.envrc")).unwrap();
    let (m, _) = p.settle();
    assert_eq!(moved_from(&m), vec![ws.join("d/.envrc").to_string_lossy().into_owned()]);
}

/// A call that renames a directory holding the user's matches (`mv p q`, `p/key.pem` masked
/// throughout) moves nothing new into place: those matches are the user's objects still,
/// under the same rule, and stay (before, each was reported as made by the call and moved
/// aside). What the call made beside them, and a match of the start carried to where
/// another rule matches it, are the call's to answer for.
#[test]
fn the_users_matches_carried_with_a_renamed_directory_stay() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("p/locked")).unwrap();
    fs::write(ws.join("p/locked/key.pem"), "user's key").unwrap();
    fs::write(ws.join("p/.envrc"), "user's envrc").unwrap();
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    assert_eq!(p.start.len(), 2, "{:?}", p.start.keys().collect::<Vec<_>>());
    fs::rename(ws.join("p"), ws.join("q")).unwrap();
    fs::write(ws.join("q/new.pem"), "planted").unwrap();
    let (m, u) = p.settle();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(moved_from(&m), vec![ws.join("q/new.pem").to_string_lossy().into_owned()]);
    assert_eq!(fs::read_to_string(ws.join("q/locked/key.pem")).unwrap(), "user's key");
    assert_eq!(fs::read_to_string(ws.join("q/.envrc")).unwrap(), "user's envrc");

    // A second name of the user's match, linked to another match path through a name of
    // the user's that no rule matches (the red team's): the call's, moved aside, though it
    // is the same object under the same rule.
    fs::hard_link(ws.join("q/.envrc"), ws.join("q/envrc.orig")).unwrap();
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    fs::create_dir(ws.join("sub")).unwrap();
    fs::hard_link(ws.join("q/envrc.orig"), ws.join("sub/.envrc")).unwrap();
    let (m, _) = p.settle();
    assert_eq!(moved_from(&m), vec![ws.join("sub/.envrc").to_string_lossy().into_owned()]);
    // Carried with its directory while it has a second name: moved aside too (one name is
    // what tells a carried match from a linked one).
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    fs::rename(ws.join("q"), ws.join("r")).unwrap();
    let (m, _) = p.settle();
    assert_eq!(moved_from(&m), vec![ws.join("r/.envrc").to_string_lossy().into_owned()]);

    // The same object where another rule matches it: `secrets/.envrc` is under the deny
    // rule, `sub/.envrc` under the protect rule.
    let ws = dir.path().join("ws2");
    fs::create_dir_all(ws.join("secrets")).unwrap();
    fs::write(ws.join("secrets/.envrc"), "user's").unwrap();
    let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\ndeny = [\"${WORKSPACE}/secrets/**\"]\nprotect = [\"${WORKSPACE}/**/.envrc\"]\n";
    let vars = Vars { workspace: ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    let pol = Policy::from_toml_str("p.toml", text, &vars).unwrap();
    let p = Planted::before(&pol, std::slice::from_ref(&ws), None);
    assert_eq!(p.start.len(), 1, "{:?}", p.start.keys().collect::<Vec<_>>());
    fs::rename(ws.join("secrets"), ws.join("sub")).unwrap();
    let (m, _) = p.settle();
    assert_eq!(moved_from(&m), vec![ws.join("sub/.envrc").to_string_lossy().into_owned()]);
    assert_eq!(m[0].rule, "filesystem.protect[0]");
}

#[test]
fn a_symlink_on_the_way_to_a_prefix_is_moved_and_links_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(elsewhere.join("x")).unwrap();
    fs::write(elsewhere.join("x/config"), "evil").unwrap();
    fs::create_dir_all(ws.join(".git")).unwrap();
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    std::os::unix::fs::symlink(&elsewhere, ws.join(".git/modules")).unwrap();
    let (m, _) = p.settle();
    assert_eq!(moved_from(&m), vec![ws.join(".git/modules").to_string_lossy().into_owned()]);
    assert!(elsewhere.join("x/config").exists(), "the target is left alone");
}

#[test]
fn an_unreadable_directory_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    let p = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    let hidden = ws.join("hidden");
    fs::create_dir(&hidden).unwrap();
    fs::write(hidden.join(".envrc"), "planted").unwrap();
    use std::os::unix::fs::PermissionsExt;
    // Search but no read: reachable by name, not listable.
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o311)).unwrap();
    let (m, u) = p.settle();
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o755)).unwrap();
    if std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0 {
        // Root reads it anyway: moved.
        assert_eq!(m.len(), 1, "{m:?}");
    } else {
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].path, hidden.to_string_lossy());
        assert!(describe_unchecked(&u[0]).contains("could not be checked"));
    }
}

#[test]
fn nothing_is_scanned_without_a_glob_under_a_write_grant() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    let p = Planted::before(&policy(&ws), &[dir.path().join("other")], None);
    assert!(p.roots.is_empty());
}

#[test]
fn a_later_scan_reads_only_changed_directories_and_never_misses_a_change() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    for d in ["a/b", "a/c", "d"] {
        fs::create_dir_all(ws.join(d)).unwrap();
    }
    // Listings are kept only once a directory's ctime is past the margin: wait, by the clock.
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let newest = ["", "a", "a/b", "a/c", "d"].iter().map(|d| fs::metadata(ws.join(d)).unwrap().ctime()).max().unwrap();
    while now() <= newest + 3 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let globs = Globs::new(&glob_rules(&policy(&ws))).unwrap();
    let roots = [ws.clone()];
    let mut first = Listings::default();
    let s = scan::scan(&globs, &roots, &[], &Listings::default(), &mut first, None);
    assert_eq!((s.read, first.len()), (5, 5), "all read, all kept");
    let mut second = Listings::default();
    let s = scan::scan(&globs, &roots, &[], &first, &mut second, None);
    assert_eq!(s.read, 0, "nothing changed: nothing read");
    // A match appears in a kept directory and its mtime is set back (the agent can do
    // that); its ctime moves all the same.
    let b = ws.join("a/b");
    let mtime = fs::metadata(&b).unwrap().modified().unwrap();
    fs::write(b.join(".envrc"), "planted").unwrap();
    fs::File::open(&b).unwrap().set_modified(mtime).unwrap();
    let mut third = Listings::default();
    let s = scan::scan(&globs, &roots, &[], &second, &mut third, None);
    assert_eq!(s.read, 1, "only the changed directory is read");
    let found: Vec<&Path> = s.found.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(found, vec![b.join(".envrc").as_path()]);
    // A listing is tied to its path: a directory renamed into place is read again.
    fs::create_dir_all(ws.join(".git/modules")).unwrap();
    fs::write(ws.join("d/config"), "x").unwrap();
    fs::rename(ws.join("d"), ws.join(".git/modules/x")).unwrap();
    let s = scan::scan(&globs, &roots, &[], &third, &mut Listings::default(), None);
    let mut found: Vec<&Path> = s.found.iter().map(|f| f.path.as_path()).collect();
    found.sort();
    assert_eq!(found, vec![ws.join(".git/modules/x/config").as_path(), b.join(".envrc").as_path()]);
}

/// A workspace with two matches: `d/.envrc` (another call's child made it) and `key.pem`
/// (the user's); the directory that holds it, the workspace, its policy and its root as a
/// [`Record`] names it.
fn two_matches() -> (tempfile::TempDir, PathBuf, Policy, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("d")).unwrap();
    fs::write(ws.join("d/.envrc"), "made by the other call's child").unwrap();
    fs::write(ws.join("key.pem"), "the user's").unwrap();
    let p = policy(&ws);
    let root = ws.as_os_str().as_bytes().to_vec();
    (dir, ws, p, root)
}

#[test]
fn another_calls_globs_cover_only_their_matches() {
    let (_dir, ws, p, root) = two_matches();
    let other =
        |globs: Vec<String>| Record { roots: vec![root.clone()], globs, matches: Vec::new(), links: Vec::new() };
    let start = |r: &Record| {
        let mut b = Planted::before(&p, std::slice::from_ref(&ws), None);
        b.restrict(r);
        let mut kept: Vec<PathBuf> = b.start.keys().cloned().collect();
        kept.sort();
        kept
    };
    // The other call's policy has only the `.envrc` glob (other texts than this call's):
    // its match is not the user's; the `.pem` file, which no glob of it covers, is.
    let envrc = format!("{}/**/.envrc", ws.display());
    assert_eq!(start(&other(vec![envrc])), vec![ws.join("key.pem")]);
    // Its own texts: both are covered.
    assert_eq!(
        start(&other(Planted::before(&p, std::slice::from_ref(&ws), None).record().globs)),
        Vec::<PathBuf>::new()
    );
    // Globs that do not compile cover every path.
    assert_eq!(start(&other(vec!["/[".into()])), Vec::<PathBuf>::new());
    // Outside its roots, nothing is covered.
    let elsewhere =
        Record { roots: vec![b"/nowhere".to_vec()], globs: vec!["/**".into()], matches: Vec::new(), links: Vec::new() };
    assert_eq!(start(&elsewhere), vec![ws.join("d/.envrc"), ws.join("key.pem")]);
}

/// A match another running call's child made (the registry takes it away from the user's)
/// is moved aside after this call even when nothing changed while it ran: the caller's
/// word that nothing changed does not make it the user's.
#[test]
fn a_match_taken_from_the_users_is_moved_aside_even_when_nothing_changed() {
    let (_dir, ws, p, root) = two_matches();
    let globs = Planted::before(&p, std::slice::from_ref(&ws), None).record().globs;
    // The other call took only `key.pem` as the user's at its start.
    let pem = ws.join("key.pem");
    let dir = rustix::fs::open(&ws, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty()).unwrap();
    let id = crate::identity::status_at(dir.as_fd(), "key.pem".as_ref()).unwrap().id;
    let other = Record {
        roots: vec![root],
        globs,
        matches: vec![(pem.as_os_str().as_bytes().to_vec(), id)],
        links: Vec::new(),
    };
    let mut b = Planted::before(&p, std::slice::from_ref(&ws), None);
    b.restrict(&other);
    let (m, u) = b.settled_unchanged();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(moved_from(&m), vec![ws.join("d/.envrc").to_string_lossy().into_owned()]);
    assert!(!ws.join("d/.envrc").exists());
    assert_eq!(fs::read_to_string(&pem).unwrap(), "the user's");
    // Without a restriction, the word stands: nothing is scanned or moved.
    fs::write(ws.join("d/.envrc"), "another").unwrap();
    let b = Planted::before(&p, std::slice::from_ref(&ws), None);
    let (m, _) = b.settled_unchanged();
    assert!(m.is_empty(), "{m:?}");
}

/// Waits (by the clock) until every directory named is past the margin of kept listings.
fn past_margin(dirs: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let newest = dirs.iter().map(|d| fs::metadata(d).unwrap().ctime()).max().unwrap();
    while now() <= newest + 2 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_kept_directory_moved_and_replaced_by_a_symlink_is_walked_by_its_new_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("a/b/c")).unwrap();
    past_margin(&[ws.clone(), ws.join("a"), ws.join("a/b"), ws.join("a/b/c")]);
    let globs = Globs::new(&glob_rules(&policy(&ws))).unwrap();
    let roots = [ws.clone()];
    let mut first = Listings::default();
    let s = scan::scan(&globs, &roots, &[], &Listings::default(), &mut first, None);
    assert_eq!((s.read, first.len()), (4, 4), "all read, all kept");
    // The kept tree now lives under another name, a symlink where it was, and a match in
    // its deepest directory.
    fs::rename(ws.join("a"), ws.join("z")).unwrap();
    std::os::unix::fs::symlink("z", ws.join("a")).unwrap();
    fs::write(ws.join("z/b/c/.envrc"), "planted").unwrap();
    let mut second = Listings::default();
    let s = scan::scan(&globs, &roots, &[], &first, &mut second, None);
    let found: Vec<&Path> = s.found.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(found, vec![ws.join("z/b/c/.envrc").as_path()]);
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    // Nothing changed since: every directory from its kept listing, the match found again.
    past_margin(&[ws.clone(), ws.join("z"), ws.join("z/b"), ws.join("z/b/c")]);
    let mut third = Listings::default();
    let s = scan::scan(&globs, &roots, &[], &second, &mut third, None);
    let mut fourth = Listings::default();
    let s2 = scan::scan(&globs, &roots, &[], &third, &mut fourth, None);
    assert_eq!(s2.read, 0, "{} read before", s.read);
    let found: Vec<&Path> = s2.found.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(found, vec![ws.join("z/b/c/.envrc").as_path()]);
}

#[test]
fn kept_listings_are_written_once_made_and_again_only_when_enough_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (ws, state) = (dir.path().join("ws"), dir.path().join("state"));
    let subdirs: Vec<PathBuf> = (0..10).map(|i| ws.join(format!("d{i}"))).collect();
    for d in &subdirs {
        fs::create_dir_all(d).unwrap();
    }
    fs::create_dir_all(&state).unwrap();
    let view_cache = state.join("view-cache");
    let p = policy(&ws);
    let call = || {
        let planted = Planted::before(&p, std::slice::from_ref(&ws), Some(&view_cache));
        let (m, u) = planted.settle();
        assert!(m.is_empty() && u.is_empty(), "{m:?} {u:?}");
        let f = planted.file.clone().expect("the file is outside every write grant");
        fs::read(&f).ok()
    };
    let mut all = subdirs.clone();
    all.push(ws.clone());
    past_margin(&all);
    let first = call().expect("written once made");
    // One directory changed: its listing is not worth the file's write.
    fs::write(subdirs[0].join("x"), "").unwrap();
    past_margin(&all);
    assert_eq!(call().as_ref(), Some(&first), "rewritten for one directory");
    // Enough changed: written again.
    for d in &subdirs[1..=paddock_sandbox::LISTINGS_SAVED_AFTER] {
        fs::write(d.join("x"), "").unwrap();
    }
    past_margin(&all);
    assert_ne!(
        call().as_ref(),
        Some(&first),
        "not rewritten after {} directories",
        paddock_sandbox::LISTINGS_SAVED_AFTER
    );
}

/// Where timestamps are coarse, a symlink made within the tick the user's was made in,
/// under the inode number the user's freed, has its identity (device, inode, type, birth
/// time): the target tells them apart. The reuse is forced here by giving the start the
/// new link's identity.
#[test]
fn a_symlink_with_the_users_identity_and_another_target_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    let envrc = ws.join(".envrc");
    std::os::unix::fs::symlink("/some/envrc", &envrc).unwrap();
    let p = policy(&ws);
    let mut b = Planted::before(&p, std::slice::from_ref(&ws), None);
    fs::remove_file(&envrc).unwrap();
    std::os::unix::fs::symlink("evil.sh", &envrc).unwrap();
    let now = crate::identity::status_at(rustix::fs::CWD, envrc.as_os_str()).unwrap().id;
    b.start.get_mut(&envrc).expect("the user's symlink was taken at the start").id = now;
    let (m, u) = b.settle();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(moved_from(&m), vec![envrc.to_string_lossy().into_owned()]);
    assert!(m[0].restored.as_ref().is_some_and(|r| r.error.is_empty() && r.target == "/some/envrc"), "{m:?}");
    assert_eq!(fs::read_link(&envrc).unwrap(), PathBuf::from("/some/envrc"));
    assert_eq!(fs::read_link(&m[0].to).unwrap(), PathBuf::from("evil.sh"), "moved, not deleted");

    // The same target under the same identity: the user's link, left alone.
    let mut b = Planted::before(&p, std::slice::from_ref(&ws), None);
    fs::remove_file(&envrc).unwrap();
    std::os::unix::fs::symlink("/some/envrc", &envrc).unwrap();
    let now = crate::identity::status_at(rustix::fs::CWD, envrc.as_os_str()).unwrap().id;
    b.start.get_mut(&envrc).unwrap().id = now;
    let (m, u) = b.settle();
    assert!(m.is_empty() && u.is_empty(), "{m:?} {u:?}");

    // What another running call checks before it starts (the record in the registry).
    let b = Planted::before(&p, std::slice::from_ref(&ws), None);
    let mut record = b.record();
    assert!(record.unsettled().is_none(), "untouched");
    fs::remove_file(&envrc).unwrap();
    std::os::unix::fs::symlink("evil.sh", &envrc).unwrap();
    let now = crate::identity::status_at(rustix::fs::CWD, envrc.as_os_str()).unwrap().id;
    record.matches.iter_mut().for_each(|(_, id)| *id = now);
    assert_eq!(record.unsettled().map(|(p, _)| p), Some(envrc.clone()), "another target under its identity");
    record.links.clear();
    assert!(record.unsettled().is_none(), "control: a record without targets compares identities alone");
}

/// Found by an attack: the view leaves a symlink a glob matches as it is, so a call removed
/// the user's `sub/.envrc` symlink and made a file of its own there, which the filesystem
/// gave the freed inode number (the end check compared device and inode only: "the same
/// object"). Likewise a repository's `.git/hooks` symlink replaced by a directory with a
/// hook in it. Each is moved aside now and the user's symlink made again, whether or not
/// the inode number was reused (the type changed, and the birth time).
#[test]
fn the_users_symlink_replaced_or_removed_is_moved_aside_and_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("sub")).unwrap();
    fs::create_dir_all(ws.join("lib/.git")).unwrap();
    let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nprotect = [\"${WORKSPACE}/**/.envrc\", \"${WORKSPACE}/**/.git/hooks\"]\n";
    let vars = Vars { workspace: ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    let p = Policy::from_toml_str("p.toml", text, &vars).unwrap();
    let (envrc, hooks) = (ws.join("sub/.envrc"), ws.join("lib/.git/hooks"));
    std::os::unix::fs::symlink("/some/envrc", &envrc).unwrap();
    std::os::unix::fs::symlink("/some/hooks", &hooks).unwrap();
    let users = || {
        (fs::read_link(&envrc).ok(), fs::read_link(&hooks).ok())
            == (Some(PathBuf::from("/some/envrc")), Some(PathBuf::from("/some/hooks")))
    };
    let b = Planted::before(&p, std::slice::from_ref(&ws), None);
    let (m, u) = b.settle();
    assert!(m.is_empty() && u.is_empty(), "the same symlinks: {m:?} {u:?}");

    // Unlinked, then made again at once (the freed inode number is likely handed out).
    fs::remove_file(&envrc).unwrap();
    fs::write(&envrc, "echo PWNED\n").unwrap();
    fs::remove_file(&hooks).unwrap();
    fs::create_dir(&hooks).unwrap();
    fs::write(hooks.join("pre-commit"), "#!/bin/sh\necho PWN\n").unwrap();
    let (m, u) = b.settle();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(moved_from(&m), vec![hooks.to_string_lossy().into_owned(), envrc.to_string_lossy().into_owned()]);
    for x in &m {
        assert!(x.error.is_empty(), "{x:?}");
        let r = x.restored.as_ref().expect("the user's symlink made again");
        assert!(r.error.is_empty(), "{r:?}");
    }
    assert!(users(), "the user's symlinks are back");
    let e = m.iter().find(|x| x.from == envrc.to_string_lossy()).unwrap();
    assert_eq!(fs::read_to_string(&e.to).unwrap(), "echo PWNED\n", "moved, not deleted");
    let h = m.iter().find(|x| x.from == hooks.to_string_lossy()).unwrap();
    assert!(Path::new(&h.to).join("pre-commit").exists());

    // A symlink swapped for another (or for one to the same target), and one removed.
    for (target, remove_only) in [("evil.sh", false), ("/some/envrc", false), ("", true)] {
        let b = Planted::before(&p, std::slice::from_ref(&ws), None);
        fs::remove_file(&envrc).unwrap();
        if !remove_only {
            std::os::unix::fs::symlink(target, &envrc).unwrap();
        }
        let (m, _) = b.settle();
        assert_eq!(moved_from(&m), vec![envrc.to_string_lossy().into_owned()], "{target}");
        assert_eq!(m[0].to.is_empty(), remove_only, "{m:?}");
        assert!(m[0].restored.as_ref().is_some_and(|r| r.error.is_empty() && r.target == "/some/envrc"), "{m:?}");
        assert!(users(), "{target}");
    }

    // A symlink on the way to a prefix (`.git/modules`, the user's: the policy resolves
    // it, the named prefix is checked) replaced by a directory, which no glob matches by
    // its path: moved aside, the symlink made again.
    fs::create_dir_all(ws.join(".git")).unwrap();
    std::os::unix::fs::symlink("/some/modules", ws.join(".git/modules")).unwrap();
    let b = Planted::before(&policy(&ws), std::slice::from_ref(&ws), None);
    fs::remove_file(ws.join(".git/modules")).unwrap();
    fs::create_dir_all(ws.join(".git/modules/x")).unwrap();
    let (m, _) = b.settle();
    let modules =
        m.iter().find(|x| x.from == ws.join(".git/modules").to_string_lossy()).unwrap_or_else(|| panic!("{m:?}"));
    assert!(!modules.to.is_empty() && Path::new(&modules.to).join("x").is_dir(), "{m:?}");
    assert!(modules.restored.as_ref().is_some_and(|r| r.error.is_empty()), "{m:?}");
    assert_eq!(fs::read_link(ws.join(".git/modules")).unwrap(), Path::new("/some/modules"));

    // Its directory gone: no place to make it again, said (a failure to count).
    let b = Planted::before(&p, std::slice::from_ref(&ws), None);
    fs::remove_dir_all(ws.join("sub")).unwrap();
    let (m, _) = b.settle();
    assert_eq!(moved_from(&m), vec![envrc.to_string_lossy().into_owned()]);
    assert!(m[0].restored.as_ref().is_some_and(|r| !r.error.is_empty()), "{m:?}");
    assert!(crate::absent::any_failed(&m));
}

/// A directory whose listing is kept, removed and made again (the filesystem may hand it
/// the freed inode number) with a new match inside: its stored status (ctime to the
/// nanosecond, 2 s older than the read) cannot be a new directory's, so it is read again
/// and the match found.
#[test]
fn a_kept_directory_removed_and_made_again_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("a/b")).unwrap();
    past_margin(&[ws.clone(), ws.join("a"), ws.join("a/b")]);
    let p = policy(&ws);
    let b = Planted::before(&p, std::slice::from_ref(&ws), None);
    assert!(b.listings.len() >= 2, "the listings are kept");
    fs::remove_dir(ws.join("a/b")).unwrap();
    fs::create_dir(ws.join("a/b")).unwrap();
    fs::write(ws.join("a/b/.envrc"), "planted").unwrap();
    let (m, _) = b.settle();
    assert_eq!(moved_from(&m), vec![ws.join("a/b/.envrc").to_string_lossy().into_owned()]);
}
