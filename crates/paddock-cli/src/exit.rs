//! Exit codes (DESIGN.md, "CLI contract").

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
// 124 (timeout), 125 (paddock's own failure) and 128+N come from the sandbox's outcome.
/// The program was not found (as a shell says it).
pub const NOT_FOUND: i32 = 127;
