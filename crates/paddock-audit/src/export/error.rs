//! [`ExportError`]: what stops an export.

use std::path::PathBuf;

/// What stops an export. Every variant names what it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The collector URL cannot be used.
    #[error("collector URL `{url}`: {reason}")]
    BadEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it, and what to write instead.
        reason: String,
    },

    /// The collector could not be reached or did not accept a batch.
    #[error("collector {url}: {reason}")]
    Delivery {
        /// The collector's URL.
        url: String,
        /// The connection error or the HTTP status and body.
        reason: String,
    },

    /// An I/O operation on `path` failed.
    #[error("{path}: cannot {op}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Another process holds the cursor (it is shipping this log to this collector).
    #[error("another paddock is shipping {log} to {url} (lock {lock}); try again when it is done")]
    Busy {
        /// The audit log.
        log: PathBuf,
        /// The collector.
        url: String,
        /// The lock file.
        lock: PathBuf,
    },

    /// The audit log could not be read.
    #[error("{reason}")]
    Log {
        /// What went wrong, naming the file.
        reason: String,
    },

    /// A cursor file is not readable.
    #[error("{path}: invalid export cursor: {reason}; move it aside to ship the log again from its start")]
    BadCursor {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        ExportError::Io { path: path.into(), op, source }
    }
}
