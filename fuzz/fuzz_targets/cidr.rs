//! `[network] allow_private` (and the other `[network]` lists) as written in a policy:
//! never panics; an entry is accepted or refused with an error on its own line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_policy::{Policy, Vars};

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(entry) = std::str::from_utf8(rest) else { return };
    let key = ["allow_private", "allow", "deny"][usize::from(which % 3)];
    let text = format!("version = 1\n[network]\n{key} = [{}]\n", quoted(entry));
    let vars = Vars { workspace: "/w".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
    match Policy::from_toml_str("fuzz.toml", &text, &vars) {
        Ok(p) => {
            if key == "allow_private" {
                let net = p.network.allow_private.first().expect("one entry");
                assert!(p.network.private_allowed(net.network()), "{entry:?} does not cover its own network");
            }
        }
        Err(e) => assert!(e.problems.iter().all(|p| p.origin.line == 3), "{e}"),
    }
});
