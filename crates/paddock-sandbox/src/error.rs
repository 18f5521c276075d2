//! [`SandboxError`]: why a confined run could not start or finish.

use std::io;

/// Why a confined run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Strict enforcement and a layer is missing on this machine (the CLI exits 71).
    #[error("sandbox layer `{layer}` is unavailable: {detail}")]
    LayerUnavailable {
        /// The layer, as named in the report.
        layer: String,
        /// Why it is unavailable.
        detail: String,
    },
    /// The spec is malformed (relative path, NUL byte, ...).
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The helper could not be started or failed while confining the child.
    #[error("could not start the sandbox: {0}")]
    Spawn(String),
    /// Everything was confined but `execve` of the program failed.
    #[error("could not execute {program}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The errno of `execve`.
        #[source]
        source: io::Error,
    },
    /// An I/O error in the parent (pipes, relay, wait).
    #[error("sandbox I/O error: {0}")]
    Io(#[from] io::Error),
}

impl SandboxError {
    /// The exit code the CLI uses for this error: 71 for a missing layer, 126/127 for an
    /// exec failure (like a shell), 125 for paddock's own failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::LayerUnavailable { .. } => 71,
            SandboxError::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => 127,
            SandboxError::Exec { .. } => 126,
            _ => 125,
        }
    }
}
