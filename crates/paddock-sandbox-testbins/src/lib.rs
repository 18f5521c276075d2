//! Test-only companions of `paddock-sandbox`, kept out of the published crate: the
//! harness that runs a spec and writes its outcome (`paddock-sandbox-harness`), the probe
//! that runs inside the sandbox (`paddock-sandbox-testprobe`), and the integration tests
//! that drive both as root and as uid 65534 (`cargo test -p paddock-sandbox-testbins`).
#![deny(missing_docs)]
