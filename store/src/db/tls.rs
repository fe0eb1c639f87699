//! TLS to PostgreSQL as libpq does it: `sslmode` (disable, allow, prefer, require, verify-ca,
//! verify-full) and `sslrootcert` taken from the URL (or `key=value` string) before the rest is
//! handed to the `postgres` crate, whose parser knows neither verify mode nor root file; rustls
//! (ring) does the TLS. A TCP connection to a host other than this machine without TLS is
//! refused unless `HLJCA_DATABASE_PLAINTEXT=allow` says the network is trusted.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::DbError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (libpq's allow and prefer), certificate not checked.
    Prefer,
    /// TLS, certificate not checked (checked against `sslrootcert` when one is given).
    Require,
    /// TLS, certificate chained to `sslrootcert`, any name.
    VerifyCa,
    /// TLS, certificate chained to `sslrootcert` and naming the host.
    VerifyFull,
}

/// What the URL said about TLS.
#[derive(Debug, Clone)]
pub struct TlsParams {
    /// The mode (libpq's default is prefer).
    pub mode: SslMode,
    /// The CA file the server's certificate must chain to.
    pub root: Option<PathBuf>,
}

/// Splits the TLS parameters off `url`: the rest for `postgres::Config`, and what TLS asks.
pub fn split(url: &str) -> Result<(String, TlsParams), DbError> {
    let mut mode = None;
    let mut root = None;
    let mut take = |k: &str, v: &str| -> Result<bool, DbError> {
        match k {
            "sslmode" => {
                mode = Some(match v {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(DbError::Other(format!(
                            "database URL: sslmode={other} is none of disable, allow, prefer, \
                             require, verify-ca, verify-full"
                        )));
                    }
                });
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(v));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let v = percent_encoding::percent_decode_str(v)
                        .decode_utf8()
                        .map_err(|e| DbError::Other(format!("database URL: {k}: {e}")))?;
                    if !take(k, &v)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k, v.trim_matches('\''))? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    let mode = mode.unwrap_or(if root.is_some() {
        SslMode::VerifyCa
    } else {
        SslMode::Prefer
    });
    Ok((rest, TlsParams { mode, root }))
}

impl TlsParams {
    /// The mode the `postgres` crate is given.
    pub fn crate_mode(&self) -> postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }

    /// True when the server's certificate is checked.
    pub fn verifies(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.mode == SslMode::Require && self.root.is_some())
    }

    /// The rustls configuration for this mode.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, DbError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| DbError::Other(format!("TLS: {e}")))?;
        if !self.verifies() {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth());
        }
        let Some(root) = &self.root else {
            return Err(DbError::Other(
                "database URL: sslmode=verify-ca and verify-full need sslrootcert=FILE (the CA \
                 that issued the database server's certificate)"
                    .into(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(root)
            .map_err(|e| DbError::Other(format!("sslrootcert {}: {e}", root.display())))?;
        for c in certs {
            let c =
                c.map_err(|e| DbError::Other(format!("sslrootcert {}: {e}", root.display())))?;
            roots
                .add(c)
                .map_err(|e| DbError::Other(format!("sslrootcert {}: {e}", root.display())))?;
        }
        if roots.is_empty() {
            return Err(DbError::Other(format!(
                "sslrootcert {}: no certificate in it",
                root.display()
            )));
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| DbError::Other(format!("TLS: {e}")))?;
        if self.mode == SslMode::VerifyFull {
            return Ok(builder.with_webpki_verifier(webpki).with_no_client_auth());
        }
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
            .with_no_client_auth())
    }
}

/// True when `host` is this machine (a Unix socket, localhost, a loopback address).
pub fn is_local(host: &postgres::config::Host) -> bool {
    match host {
        postgres::config::Host::Unix(_) => true,
        postgres::config::Host::Tcp(h) => {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// `require`/`prefer` without a CA file: encrypted, the server's certificate not checked (as
/// libpq), but its handshake signature still is.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_off_the_url() {
        let (rest, p) =
            split("postgresql://u:p@db.example:5432/hljca?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x")
                .unwrap();
        assert_eq!(
            rest,
            "postgresql://u:p@db.example:5432/hljca?application_name=x"
        );
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root, Some(PathBuf::from("/tmp/ca.pem")));
        let (rest, p) = split("host=/run/pg dbname=hljca sslmode=disable").unwrap();
        assert_eq!(rest, "host=/run/pg dbname=hljca");
        assert_eq!(p.mode, SslMode::Disable);
        assert!(split("postgresql://h/d?sslmode=sometimes").is_err());
        let (_, p) = split("postgresql://h/d").unwrap();
        assert_eq!(p.mode, SslMode::Prefer);
    }
}
