//! The chain verifier on an arbitrary log file: never panics, never errs on a readable
//! file, and its counts agree with the bytes (records <= complete lines; a break is the
//! line after the last good record; intact means every complete line verified).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use paddock_audit::verify;

fn path() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = DIR.get_or_init(|| tempfile::tempdir_in(base).expect("a temp dir"));
        dir.path().join("audit.jsonl")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write the log");
    let report = verify(path).expect("a readable log verifies");
    let complete = data.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(report.records <= complete);
    match &report.broken {
        None => {
            assert_eq!(report.records, complete);
            assert_eq!(report.torn_tail.is_some(), !data.is_empty() && data.last() != Some(&b'\n'));
        }
        Some(b) => assert_eq!(b.line, report.records + 1),
    }
});
