//! The session CA: an ECDSA P-256 key and a self-signed CA certificate made in memory
//! (the key is never written anywhere), and the leaf certificates it signs on demand,
//! one per host, cached.
//!
//! A leaf names exactly one host (a DNS SAN, or an IP SAN for an IP literal), is valid
//! for [`LEAF_VALIDITY`] from an hour ago (clock skew), and is re-made once half of that
//! has passed. The cache holds at most [`LEAF_CACHE`] hosts; past that the oldest entry
//! goes. All leaves share one key pair, generated with the CA and as secret as its key.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::error::InterceptError;
use super::tls::provider;

/// How long a leaf certificate is valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// How long the session CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Hosts whose leaf is kept.
pub const LEAF_CACHE: usize = 1024;

/// The session CA: generated in memory, key never written anywhere.
pub struct SessionCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem: String,
    /// The key every leaf certifies, and its rustls signer.
    leaf_key: KeyPair,
    signer: Arc<dyn rustls::sign::SigningKey>,
    leaves: Mutex<Leaves>,
}

impl fmt::Debug for SessionCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCa").finish_non_exhaustive()
    }
}

/// The cache: host → server configuration with its leaf, and insertion order.
#[derive(Default)]
struct Leaves {
    by_host: HashMap<String, (Instant, Arc<ServerConfig>)>,
    order: VecDeque<String>,
}

impl SessionCa {
    /// A fresh CA (ECDSA P-256), valid for a year from an hour ago.
    pub fn generate() -> Result<SessionCa, InterceptError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(InterceptError::Ca)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "paddock");
        dn.push(DnType::CommonName, format!("paddock session CA {}", short_id(&key)));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key).map_err(InterceptError::Ca)?;
        let pem = cert.pem();
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(InterceptError::Ca)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signer = provider().key_provider.load_private_key(der)?;
        Ok(SessionCa { cert, key, pem, leaf_key, signer, leaves: Mutex::default() })
    }

    /// The CA certificate, PEM (what the child trusts).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }

    /// The TLS server configuration for `host` (normalised; an IP literal without
    /// brackets): its leaf, ALPN `h2` and `http/1.1`. Cached.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, InterceptError> {
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made, cfg)) = leaves.by_host.get(host) {
            if made.elapsed() < LEAF_VALIDITY / 2 {
                return Ok(Arc::clone(cfg));
            }
        }
        let cfg = Arc::new(self.make_config(host)?);
        if leaves.by_host.insert(host.to_owned(), (Instant::now(), Arc::clone(&cfg))).is_none() {
            leaves.order.push_back(host.to_owned());
            while leaves.order.len() > LEAF_CACHE {
                if let Some(old) = leaves.order.pop_front() {
                    leaves.by_host.remove(&old);
                }
            }
        }
        Ok(cfg)
    }

    fn make_config(&self, host: &str) -> Result<ServerConfig, InterceptError> {
        let leaf = self.leaf(host)?;
        let certified = CertifiedKey::new(vec![leaf, self.cert.der().clone()], Arc::clone(&self.signer));
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// A leaf certificate for `host`, signed by the CA.
    fn leaf(&self, host: &str) -> Result<CertificateDer<'static>, InterceptError> {
        let bad = |reason: String| InterceptError::Leaf { host: host.to_owned(), reason };
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.to_owned().try_into().map_err(|e| bad(format!("{e}")))?),
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        params.serial_number = Some(serial().map_err(|_| bad("the system random generator failed".into()))?);
        let cert = params.signed_by(&self.leaf_key, &self.cert, &self.key).map_err(|e| bad(e.to_string()))?;
        Ok(cert.der().clone())
    }
}

/// A resolver that always offers one certificate (the connection's host is known before
/// the handshake: the CONNECT target, which also covers clients that send no SNI).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A random 16-byte serial number (positive, non-zero first byte).
fn serial() -> Result<rcgen::SerialNumber, rustls::crypto::GetRandomFailed> {
    let mut b = [0u8; 16];
    provider().secure_random.fill(&mut b)?;
    b[0] = (b[0] & 0x7f) | 0x01;
    Ok(rcgen::SerialNumber::from_slice(&b))
}

/// Eight hex digits of the CA public key, to tell sessions' CAs apart in a trust store.
fn short_id(key: &KeyPair) -> String {
    key.public_key_raw().iter().rev().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The system's root certificates plus `ca`, PEM: the bundle the child's view gets.
pub fn ca_bundle_pem(ca: &SessionCa) -> Result<String, InterceptError> {
    let mut out = String::new();
    for der in super::tls::system_roots_der() {
        out.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())));
    }
    out.push_str(ca.cert_pem());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_cached_and_the_cache_is_bounded() {
        let ca = SessionCa::generate().unwrap();
        let a = ca.server_config("a.test").unwrap();
        assert!(Arc::ptr_eq(&a, &ca.server_config("a.test").unwrap()), "the second ask is a cache hit");
        for i in 0..LEAF_CACHE {
            ca.server_config(&format!("h{i}.test")).unwrap();
        }
        let leaves = ca.leaves.lock().unwrap();
        assert_eq!((leaves.by_host.len(), leaves.order.len()), (LEAF_CACHE, LEAF_CACHE));
        assert!(!leaves.by_host.contains_key("a.test"), "the oldest went first");
    }

    #[test]
    fn ip_literals_and_odd_names() {
        let ca = SessionCa::generate().unwrap();
        assert!(ca.server_config("127.0.0.1").is_ok());
        assert!(ca.server_config("::1").is_ok());
        assert!(ca.server_config("xn--bcher-kva.example").is_ok());
    }
}
