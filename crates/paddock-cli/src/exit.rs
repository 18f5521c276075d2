//! Exit codes (DESIGN.md, "CLI contract"), and how a failure is reported on stderr ([`fail`],
//! [`eprint_lines`]).

/// The call was allowed.
pub const OK: i32 = 0;
/// Bad command line.
pub const USAGE: i32 = 64;
/// A sandbox layer the policy requires is unavailable.
pub const UNAVAILABLE: i32 = 71;
/// Denied or revoked.
pub const DENIED: i32 = 77;
/// Invalid policy.
pub const CONFIG: i32 = 78;
/// paddock's own failure.
pub const INTERNAL: i32 = 125;
/// `audit verify`: the chain is broken.
pub const BROKEN: i32 = 1;
// 124 (timeout) and 128+N come from the sandbox's outcome.
/// The program was not found (as a shell says it).
pub const NOT_FOUND: i32 = 127;

/// Prints `paddock: MESSAGE` on stderr and returns `code`.
pub fn fail(code: i32, message: impl std::fmt::Display) -> i32 {
    eprintln!("paddock: {message}");
    code
}

/// Prints `text` on stderr, each line escaped: a policy error quotes the policy file,
/// which can be one the agent wrote (a project's own policy in the workspace).
pub fn eprint_lines(text: impl std::fmt::Display) {
    for line in text.to_string().lines() {
        eprintln!("{}", paddock_audit::Escaped(line));
    }
}
