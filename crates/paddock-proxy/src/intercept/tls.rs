//! The TLS side of interception: the crypto provider (ring), the trust for upstreams
//! (the system's roots plus `[network] upstream_ca`), and the [`Engine`] one proxy holds.

use std::sync::{Arc, OnceLock};

use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::error::InterceptError;
use super::Intercept;

/// The crypto provider of both sides: ring (no C toolchain or cmake needed).
pub(crate) fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The system's root certificates (`rustls-native-certs`: the platform store, or
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`), loaded once per process. Files that fail to load are
/// logged and skipped; none at all is an empty list.
pub(crate) fn system_roots_der() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::warn!(error = %e, "a system root certificate store could not be read");
        }
        if loaded.certs.is_empty() {
            tracing::warn!("no system root certificates found: only [network] upstream_ca is trusted for upstreams");
        }
        loaded.certs
    })
}

/// The trust for upstreams: system roots plus every certificate in the `upstream_ca`
/// files. A file that cannot be read or holds no certificate is an error.
pub(crate) fn upstream_roots(files: &[std::path::PathBuf]) -> Result<RootCertStore, InterceptError> {
    let mut roots = RootCertStore::empty();
    let (_added, ignored) = roots.add_parsable_certificates(system_roots_der().iter().cloned());
    if ignored > 0 {
        tracing::debug!(ignored, "system root certificates rustls cannot use");
    }
    for path in files {
        let text =
            std::fs::read(path).map_err(|source| InterceptError::UpstreamCaRead { path: path.clone(), source })?;
        let bad = |reason: String| InterceptError::UpstreamCaBad { path: path.clone(), reason };
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not a readable PEM file ({e})")))?;
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block in it".into()));
        }
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| bad(format!("certificate {} is not usable: {e}", i + 1)))?;
        }
    }
    Ok(roots)
}

/// What one proxy needs to intercept: the configuration and the upstream TLS client.
pub(crate) struct Engine {
    pub intercept: Intercept,
    /// Upstream TLS, offering `h2` and `http/1.1`.
    pub client: Arc<ClientConfig>,
}

impl Engine {
    pub(crate) fn new(intercept: Intercept) -> Result<Engine, InterceptError> {
        let roots = upstream_roots(&intercept.upstream_ca)?;
        let mut client = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Engine { intercept, client: Arc::new(client) })
    }

    pub(crate) fn interceptor(&self) -> &dyn super::Interceptor {
        &*self.intercept.interceptor
    }
}
