//! Revocations: selectors (`paddock revoke SELECTOR`) parse and display back to
//! themselves; a revocation list file never panics the loader, and what loads compiles
//! against a policy or fails with an error located in the list.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use paddock::audit::{Revocations, Selector};
use paddock::policy::{Policy, Vars};

fn path() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = DIR.get_or_init(|| tempfile::tempdir_in(base).expect("a temp dir"));
        dir.path().join("revocations.toml")
    })
}

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let vars =
            Vars { workspace: "/w".into(), home: Some("/home/u".into()), tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", "version = 1\n[commands]\nallow = [\"ls\"]\n", &vars).expect("policy")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let Ok(s) = std::str::from_utf8(rest) else { return };
        if let Ok(sel) = s.parse::<Selector>() {
            let shown = sel.to_string();
            assert_eq!(shown.parse::<Selector>().as_ref(), Ok(&sel), "{s:?} shown as {shown:?}");
        }
        return;
    }
    let path = path();
    std::fs::write(path, rest).expect("write the list");
    let Ok(list) = Revocations::load(path) else { return };
    for e in list.entries() {
        assert_eq!(e.selector.to_string().parse::<Selector>().as_ref(), Ok(&e.selector));
    }
    let mut p = policy().clone();
    if let Err(e) = paddock::apply_revocations(&mut p, &list) {
        for prob in &e.problems {
            assert!(prob.origin.line >= 1 && prob.origin.line <= list.entries().len(), "{prob}");
        }
    }
});
