//! What can go wrong setting up interception.

use std::path::PathBuf;

/// A failure to set up interception: the CA, a leaf certificate, or the upstream trust.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    /// The session CA could not be generated.
    #[error("cannot generate the session CA: {0}")]
    Ca(#[source] rcgen::Error),
    /// A leaf certificate for `host` could not be made.
    #[error("cannot make a certificate for {host}: {reason}")]
    Leaf {
        /// The host the certificate was for.
        host: String,
        /// Why.
        reason: String,
    },
    /// An `upstream_ca` file could not be read.
    #[error("[network] upstream_ca {}: cannot read it: {source}", path.display())]
    UpstreamCaRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An `upstream_ca` file holds no usable certificate.
    #[error("[network] upstream_ca {}: {reason}; give a PEM file with one or more CERTIFICATE blocks", path.display())]
    UpstreamCaBad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}
