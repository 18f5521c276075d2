//! Copies of executables that run at once: shared by the end-to-end tests here and the
//! sandbox's own tests (crates/paddock-sandbox-testbins/tests/common).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Copies the executable `from` to `to`, mode 0755, in a `cp` process of its own. A copy
/// this process wrote would be open for writing while it is written, and a process that
/// another test thread forks meanwhile keeps that descriptor until it execs: running the
/// copy could then fail with ETXTBSY ("text file busy"). `cp`'s descriptor is never shared.
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("--")
        .args([from, to])
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cp {} {}: {e}", from.display(), to.display()));
    assert!(status.success(), "cp {} {}: {status}", from.display(), to.display());
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
}
