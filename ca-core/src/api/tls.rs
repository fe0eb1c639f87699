//! The API's TLS server certificate: issued by the issuing CA for the configured host names
//! (serverAuth only, never a CA, `[serve] api_cert_days` long), its P-256 key in
//! `tls/api.key` (PKCS#8 PEM, mode 0600) in the home, and renewed with a new key once half of
//! its life has passed.
//!
//! Why a file and not the CA token: the key only proves the server to jobs that already hold
//! an operator certificate; it cannot sign certificates, CRLs, OCSP answers or audit rows, and
//! it lives a month. Keeping it off the HSM keeps every TLS handshake off the one CA token
//! session that signs OCSP answers and certificates. The file has the protection of
//! `hljca.db` (0600, the home's owner).

use crate::Rule;
use crate::validity;
use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::ca::{pem_cert, read_pem_cert};
use crate::engine::{Authority, KeyHome, record_made};
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::CaKeys;
use crate::ocsp::signer::needs_renewal;
use crate::profile::{ca_subject, random_serial, revocation_pointers};
use crate::store::CertRole;
use crate::{Ca, audit};

/// Common name of the API's TLS server certificate.
const API_TLS_CN: &str = "黑龙江CA 自动化接口";
/// How far notBefore is set back, for clients whose clocks run a little slow.
const BACKDATE: Duration = Duration::hours(1);

/// The TLS server certificate in use, with its key.
pub struct ApiTlsCert {
    /// The server certificate (DER), then the issuing CA certificate.
    pub chain: Vec<Vec<u8>>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for ApiTlsCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTlsCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ApiTlsCert {
    /// True once half of its life has passed.
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        needs_renewal(self.not_before, self.not_after, now)
    }
}

/// The names a new home's API answers at: `localhost`, `127.0.0.1` and the host of
/// `public_base_url`.
pub fn default_hosts(public_base_url: &str) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let rest = public_base_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(public_base_url);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    if !host.is_empty() && !hosts.iter().any(|h| h == host) {
        hosts.push(host.to_owned());
    }
    hosts
}

/// The names a certificate's subjectAltName carries.
fn san_names(c: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = c.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl Ca {
    /// The API's TLS server certificate in `tls/api.pem` when it is issued by the issuing CA,
    /// holds the key in `tls/api.key`, names exactly `hosts` and is in the first half of its
    /// life; else a new key and certificate (`days` long), written there and recorded in the
    /// audit log.
    pub fn api_tls_cert(&self, keys: &CaKeys, hosts: &[String], days: u32) -> Result<ApiTlsCert> {
        let issuing_der = read_pem_cert(&self.home.issuing_pem())?;
        let (_, issuing) = X509Certificate::from_der(&issuing_der).map_err(|e| {
            CoreError::IssuerMismatch(format!("ca/issuing.pem does not parse: {e}"))
        })?;
        let dir = self.home.dir().join("tls");
        let (cert_path, key_path) = (dir.join("api.pem"), dir.join("api.key"));
        let now = crate::time_fmt::now();
        if let Some(current) =
            self.current_tls(&cert_path, &key_path, &issuing, &issuing_der, hosts)
            && !current.needs_renewal(now)
        {
            return Ok(current);
        }
        if hosts.is_empty() {
            return Err(CoreError::refuse_on(
                Rule::ApiHosts,
                "api_hosts",
                "[serve] api_hosts is empty [rule: the API's TLS certificate names its hosts]",
            ));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(CoreError::cert("API TLS key"))?;
        let mut p = CertificateParams::new(hosts.to_vec())
            .map_err(CoreError::cert("API TLS certificate (host names)"))?;
        p.distinguished_name = ca_subject(API_TLS_CN)?;
        p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let start = now.replace_nanosecond(0).unwrap_or(now);
        p.not_before = start - BACKDATE;
        p.not_after = (start + Duration::days(i64::from(days.max(1))))
            .min(validity::of_certificate(&issuing).not_after);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        revocation_pointers(&self.config, &mut p)?;
        let der = Authority::new(self, keys)?.sign(&p, &key, "API TLS certificate")?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        write_file(&key_path, key_pem.as_bytes(), 0o600)?;
        write_file(&cert_path, pem_cert(&der).as_bytes(), 0o644)?;
        let made = self
            .current_tls(&cert_path, &key_path, &issuing, &issuing_der, hosts)
            .ok_or_else(|| {
                CoreError::IssuerMismatch("the API TLS certificate just made does not check".into())
            })?;
        let (_, c) = X509Certificate::from_der(&der).map_err(|e| CoreError::Parse {
            what: "API TLS certificate".into(),
            reason: e.to_string(),
        })?;
        let home = KeyHome {
            token_label: "tls/api.key",
            token_serial: "",
            key_id: "",
        };
        self.write("record API TLS certificate", |tx| {
            record_made(tx, CertRole::TlsServer, &der, home)?;
            audit::append(
                tx,
                self.actor.name(),
                "serve.api-tls-cert",
                &hex::encode(c.raw_serial()),
                &serde_json::json!({
                    "certificate": cert_path, "key": key_path, "hosts": hosts,
                    "not_before": crate::time_fmt::ts(made.not_before),
                    "not_after": crate::time_fmt::ts(made.not_after),
                    "purpose": "TLS server certificate of the client-certificate API (serverAuth)",
                }),
            )
        })?;
        Ok(made)
    }

    /// The stored certificate and key when they belong together, to the issuing CA and to
    /// `hosts`; `None` (with a log line) otherwise.
    fn current_tls(
        &self,
        cert_path: &std::path::Path,
        key_path: &std::path::Path,
        issuing: &X509Certificate<'_>,
        issuing_der: &[u8],
        hosts: &[String],
    ) -> Option<ApiTlsCert> {
        let der = read_pem_cert(cert_path).ok()?;
        let check = || -> std::result::Result<ApiTlsCert, String> {
            let (_, c) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
            if c.tbs_certificate.issuer.as_raw() != issuing.tbs_certificate.subject.as_raw() {
                return Err("it is not issued by the issuing CA".into());
            }
            c.verify_signature(Some(issuing.public_key()))
                .map_err(|e| format!("it does not verify under the issuing CA: {e}"))?;
            let mut want: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let mut have = san_names(&c);
            want.sort_unstable();
            have.sort_unstable();
            if want != have {
                return Err(format!("it names {have:?}, not [serve] api_hosts {want:?}"));
            }
            let meta = std::fs::metadata(key_path).map_err(|e| format!("its key: {e}"))?;
            if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
                return Err(format!("{} is readable by others", key_path.display()));
            }
            let pem = Zeroizing::new(
                std::fs::read_to_string(key_path).map_err(|e| format!("its key: {e}"))?,
            );
            let key = KeyPair::from_pem(&pem).map_err(|e| format!("its key: {e}"))?;
            if rcgen::PublicKeyData::der_bytes(&key)
                != c.public_key().subject_public_key.data.as_ref()
            {
                return Err(format!(
                    "it does not hold the key in {}",
                    key_path.display()
                ));
            }
            Ok(ApiTlsCert {
                key_pkcs8: Zeroizing::new(key.serialize_der()),
                not_before: validity::of_certificate(&c).not_before,
                not_after: validity::of_certificate(&c).not_after,
                chain: vec![der.clone(), issuing_der.to_vec()],
            })
        };
        match check() {
            Ok(c) => Some(c),
            Err(why) => {
                tracing::warn!(file = %cert_path.display(), "API TLS certificate replaced: {why}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::default_hosts;

    #[test]
    fn default_hosts_add_the_public_host() {
        assert_eq!(
            default_hosts("http://pki.example.cn:8080/x"),
            vec!["localhost", "127.0.0.1", "pki.example.cn"]
        );
        assert_eq!(
            default_hosts("http://localhost"),
            vec!["localhost", "127.0.0.1"]
        );
    }
}
