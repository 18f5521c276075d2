//! Policy TOML: `Policy::from_toml_str` never panics; every error names FILE:LINE:COL
//! inside the input; a policy that loads shows (`policy show`) as TOML that loads back to
//! the same policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_policy::{Policy, Vars};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // `extends` reads other files (a FIFO would block the fuzzer): not this target's job.
    if text.contains("extends") {
        return;
    }
    let vars = Vars {
        workspace: "/work/project".into(),
        home: Some("/home/dev".into()),
        tmpdir: "/tmp".into(),
        caller_path: Some("/usr/bin:/bin".into()),
    };
    match Policy::from_toml_str("fuzz.toml", &text, &vars) {
        Ok(p) => {
            let again = Policy::from_toml_str("fuzz.toml", p.effective_toml(), &vars)
                .unwrap_or_else(|e| panic!("the effective policy does not load: {e}\n{}", p.effective_toml()));
            assert_eq!(again.hash(), p.hash(), "show round trip");
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            let lines: Vec<&str> = text.split('\n').collect();
            for p in &e.problems {
                assert_eq!(p.origin.file.to_str(), Some("fuzz.toml"), "{p}");
                assert!(p.origin.line >= 1 && p.origin.line <= lines.len(), "line out of range: {p}");
                let width = lines[p.origin.line - 1].chars().count();
                assert!(p.origin.col >= 1 && p.origin.col <= width + 1, "column out of range: {p}");
            }
        }
    }
});
