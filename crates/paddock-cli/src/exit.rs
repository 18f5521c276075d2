//! Exit codes (DESIGN.md, "CLI contract").

/// The call was allowed.
pub const OK: i32 = 0;
/// Bad command line.
pub const USAGE: i32 = 64;
/// A sandbox layer the policy requires is unavailable.
#[allow(dead_code)]
pub const UNAVAILABLE: i32 = 71;
/// Denied or revoked.
pub const DENIED: i32 = 77;
/// Invalid policy.
pub const CONFIG: i32 = 78;
/// Timeout.
#[allow(dead_code)]
pub const TIMEOUT: i32 = 124;
/// paddock's own failure.
#[allow(dead_code)]
pub const INTERNAL: i32 = 125;
