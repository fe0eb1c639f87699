//! TLS of the API listener (rustls with the ring provider): the server certificate (from the
//! issuing CA, or `[serve] tls_cert`/`tls_key`), swapped in place when the worker renews it,
//! and client certificates that must chain to the issuing CA (webpki, clientAuth). A client
//! without a certificate completes the handshake and gets a JSON 401; one whose certificate
//! does not chain is refused in the handshake. Whether a certificate that chains belongs to an
//! active operator is the worker's question, asked on every call.

use std::path::Path;
use std::sync::{Arc, RwLock};

use hljca_core::api::ApiTlsCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ServerError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Config(format!("API TLS: {what}: {e}"))
}

/// The server certificate in use; the worker replaces it when it renews it.
#[derive(Debug)]
pub struct ServerCert(RwLock<Arc<CertifiedKey>>);

impl ServerCert {
    /// Replaces the certificate (new handshakes use the new one).
    pub fn replace(&self, cert: &ApiTlsCert) -> Result<(), ServerError> {
        let key = certified(cert)?;
        if let Ok(mut g) = self.0.write() {
            *g = key;
        }
        Ok(())
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

fn certified(cert: &ApiTlsCert) -> Result<Arc<CertifiedKey>, ServerError> {
    let chain = cert
        .chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pkcs8.to_vec()));
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| tls_err("server certificate and key", e))
}

/// The configured `tls_cert` (chain, PEM) and `tls_key` (PKCS#8 or SEC1 PEM, mode 0600).
pub fn configured(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, ServerError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(&format!("tls_cert {}", cert.display()), e))?;
    if chain.is_empty() {
        return Err(tls_err(
            &format!("tls_cert {}", cert.display()),
            "no certificate",
        ));
    }
    let mode = std::fs::metadata(key)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .map_err(|e| tls_err(&format!("tls_key {}", key.display()), e))?;
    if mode & 0o077 != 0 {
        return Err(tls_err(
            &format!("tls_key {}", key.display()),
            "readable by group or others; chmod 600 it",
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(&format!("tls_key {}", key.display()), e))?;
    CertifiedKey::from_der(chain, der, &provider())
        .map(Arc::new)
        .map_err(|e| tls_err("tls_cert and tls_key", e))
}

/// The rustls server configuration: `cert` as the server certificate, client certificates
/// verified against `issuing_der`.
pub fn config(
    cert: Arc<CertifiedKey>,
    issuing_der: &[u8],
) -> Result<(Arc<ServerConfig>, Arc<ServerCert>), ServerError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(issuing_der.to_vec()))
        .map_err(|e| tls_err("issuing CA as client trust anchor", e))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_err("client verifier", e))?;
    let resolver = Arc::new(ServerCert(RwLock::new(cert)));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

/// [`config`] for a certificate from the issuing CA.
pub fn from_ca(
    cert: &ApiTlsCert,
    issuing_der: &[u8],
) -> Result<(Arc<ServerConfig>, Arc<ServerCert>), ServerError> {
    config(certified(cert)?, issuing_der)
}
