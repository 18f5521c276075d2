//! `paddock policy lint` and `paddock policy show`.

use std::path::PathBuf;

use paddock_policy::{Policy, Vars};

use crate::args::PolicyArgs;
use crate::exit;
use crate::output;
use crate::setup::{current_dir, eprint_lines, lint_file_readable, load_policy, preset_name};

/// Lints each file; prints `FILE: ok` or its located errors. Exit 78 if any is invalid.
/// `resolve`: also look up the allowed names (see [`paddock::lint_network`]).
pub fn lint(files: &[PathBuf], resolve: bool) -> i32 {
    let cwd = match current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let vars = Vars::from_env(cwd);
    let mut code = exit::OK;
    for f in files {
        let loaded = match preset_name(f).and_then(|name| Policy::preset(name, &vars)) {
            Some(loaded) => loaded,
            None if lint_file_readable(f).is_err() => {
                code = exit::CONFIG;
                continue;
            }
            None => Policy::load(f, &vars),
        };
        match loaded {
            Ok(p) => {
                // Warnings quote the file, which the agent may have written: escaped.
                for r in p.commands.iter().flat_map(|c| c.unresolved()) {
                    eprint_lines(format_args!(
                        "{}: warning: the program of `{}` is not found in the sandbox PATH ({}), so the pattern matches nothing",
                        r.origin,
                        r.raw,
                        p.sandbox_path()
                    ));
                }
                for (origin, message) in p.shadowed_asks() {
                    eprint_lines(format_args!("{origin}: warning: {message}"));
                }
                for (origin, message) in p.env.warnings() {
                    eprint_lines(format_args!("{origin}: warning: {message}"));
                }
                for (origin, message) in paddock::lint_network(&p, resolve) {
                    eprint_lines(format_args!("{origin}: warning: {message}"));
                }
                if let Err(c) = output::println(format_args!("{}: ok", paddock_audit::Escaped(&f.to_string_lossy()))) {
                    return c;
                }
            }
            Err(e) => {
                eprint_lines(e);
                code = exit::CONFIG;
            }
        }
    }
    code
}

/// Prints the effective merged policy.
pub fn show(a: PolicyArgs) -> i32 {
    match load_policy(&a) {
        Ok(p) => output::print(format_args!("{}{}", p.effective_toml(), escaped_lines(&p.approved_listing())))
            .err()
            .unwrap_or(exit::OK),
        Err(code) => code,
    }
}

/// `text` with each line escaped (the approved list quotes what agents asked for).
fn escaped_lines(text: &str) -> String {
    text.lines().map(|l| format!("{}\n", paddock_audit::Escaped(l))).collect()
}
