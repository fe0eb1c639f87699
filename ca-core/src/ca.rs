//! The CA hierarchy: creating the root and issuing CA, and loading the issuer for signing.

use crate::Rule;
use crate::engine::sign_with;
use hljca_token::{Module, Pin, TokenSelector};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose, SerialNumber};

use crate::config::{Config, KeyStore};
use crate::error::{CoreError, Result};
use crate::home::{Home, write_file, write_new_file};
use crate::keys::{CaKeyRole, CaKeys, CaSigner, Secrets, new_encrypted_key};
use crate::profile::{TokenPublicKey, ca_subject, random_serial};
use crate::time_fmt::now;

/// Common names of the two CA certificates.
pub const ROOT_CN: &str = "黑龙江CA根证书";
/// Issuing CA common name.
pub const ISSUING_CN: &str = "黑龙江CA业务签发证书";

/// Common name of the seal maker's certificate.
pub const SEAL_MAKER_CN: &str = "黑龙江CA电子印章制作";

/// The seal maker's certificate: an end-entity certificate of the issuing CA whose key signs
/// electronic seals and audit anchors (digitalSignature, nonRepudiation), ending with the
/// issuing CA.
pub(crate) fn seal_maker_params(
    issuing_not_after: time::OffsetDateTime,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = ca_subject(SEAL_MAKER_CN)?;
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    p.not_before = crate::validity::ca(now(), 0).0;
    p.not_after = issuing_not_after;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// How to create the CA.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where the keys go.
    pub key_store: KeyStore,
    /// Label (or serial) of the CA HSM token; a blank token is initialised with this label when
    /// none has it yet.
    pub ca_token: String,
    /// Root validity in years.
    pub root_years: u32,
    /// Issuing CA validity in years.
    pub issuing_years: u32,
    /// CRL distribution point URL.
    pub crl_url: Option<String>,
    /// AIA caIssuers URL.
    pub ca_issuers_url: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            key_store: KeyStore::Hsm,
            ca_token: "hljca-ca".into(),
            root_years: 20,
            issuing_years: 10,
            crl_url: None,
            ca_issuers_url: None,
        }
    }
}

/// What `init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// Root certificate PEM path.
    pub root_pem: std::path::PathBuf,
    /// Issuing certificate PEM path.
    pub issuing_pem: std::path::PathBuf,
    /// Issuing certificate DER path (`ca/issuing.cer`, what the AIA caIssuers URL serves).
    pub issuing_cer: std::path::PathBuf,
    /// Where the keys are.
    pub key_store: KeyStore,
    /// CA token label, for the HSM store.
    pub ca_token_label: Option<String>,
    /// CA token serial, for the HSM store.
    pub ca_token_serial: Option<String>,
}

fn ca_params(cn: &str, years: u32, path_len: Option<u8>) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = ca_subject(cn)?;
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    (p.not_before, p.not_after) = crate::validity::ca(now(), years);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = path_len.is_some();
    Ok(p)
}

/// Creates the root and issuing CA in `home` (which must not hold one yet).
pub fn init(
    home: &Home,
    module: Option<&Module>,
    secrets: &Secrets,
    opts: &InitOptions,
) -> Result<InitReport> {
    if home.is_initialized() {
        return Err(CoreError::AlreadyInitialized {
            home: home.dir().to_path_buf(),
        });
    }
    if opts.root_years == 0 || opts.issuing_years == 0 || opts.issuing_years > opts.root_years {
        return Err(CoreError::refuse_on(
            Rule::CaValidity,
            "issuing-years",
            format!(
                "validity: issuing CA years ({}) must be between 1 and the root's ({})",
                opts.issuing_years, opts.root_years
            ),
        ));
    }
    // A PostgreSQL database must be reachable and empty before any key is made.
    let location = crate::store::Location::resolve(home.dir(), home.db(), None)?;
    crate::Store::check_creatable(&location)?;
    home.create_dirs()?;
    let mut config = Config::new(opts.key_store);
    config.ca.root_years = opts.root_years;
    config.ca.issuing_years = opts.issuing_years;
    if let Some(u) = &opts.crl_url {
        config.urls.crl = u.clone();
    }
    if let Some(u) = &opts.ca_issuers_url {
        config.urls.ca_issuers = u.clone();
    }
    let root_params = ca_params(ROOT_CN, opts.root_years, None)?;
    let issuing_params = ca_params(ISSUING_CN, opts.issuing_years, Some(0))?;

    let (root_der, issuing_der) = match opts.key_store {
        KeyStore::Hsm => {
            let module = module.ok_or_else(|| {
                CoreError::refuse(Rule::Pkcs11Module, "--key-store hsm needs a PKCS#11 module")
            })?;
            let ca_pin = secrets.ca_pin()?;
            let sel = TokenSelector(opts.ca_token.clone());
            let info = match module.find(&sel) {
                Ok(info) => info,
                Err(hljca_token::TokenError::TokenNotFound { .. }) => {
                    module.init_token(&opts.ca_token, secrets.so_pin()?, ca_pin)?
                }
                Err(e) => return Err(e.into()),
            };
            let session = module.login(&sel, ca_pin)?;
            let root_key = session.generate_p256("hljca-root-ca")?;
            let issuing_key = match session.generate_p256("hljca-issuing-ca") {
                Ok(k) => k,
                Err(e) => {
                    let _ = session.destroy_by_id(&root_key.id);
                    return Err(e.into());
                }
            };
            let made = (|| -> Result<(Vec<u8>, Vec<u8>)> {
                let root_signer = CaSigner::Token(session.signer(&root_key.id)?);
                let root = root_params
                    .self_signed(&root_signer)
                    .map_err(CoreError::cert("root CA certificate"))?;
                let root_issuer = Issuer::new(root_params.clone(), root_signer);
                let issuing = sign_with(
                    &issuing_params,
                    &TokenPublicKey(issuing_key.public_point.clone()),
                    &root_issuer,
                    "issuing CA certificate",
                )?;
                session.store_certificate(&root_key.id, "hljca-root-ca", root.der(), &[])?;
                session.store_certificate(&issuing_key.id, "hljca-issuing-ca", &issuing, &[])?;
                Ok((root.der().to_vec(), issuing))
            })();
            let ders = match made {
                Ok(d) => d,
                Err(e) => {
                    let _ = session.destroy_by_id(&root_key.id);
                    let _ = session.destroy_by_id(&issuing_key.id);
                    return Err(e);
                }
            };
            config.ca.token_label = Some(info.label.clone());
            config.ca.token_serial = Some(info.serial.clone());
            config.ca.root_key_id = Some(root_key.id.to_hex());
            config.ca.issuing_key_id = Some(issuing_key.id.to_hex());
            ders
        }
        KeyStore::File => {
            let pass: &Pin = secrets.ca_passphrase()?;
            if pass.len() < 12 {
                return Err(CoreError::refuse_on(
                    Rule::CaPassphrase,
                    "HLJCA_CA_PASSPHRASE",
                    "HLJCA_CA_PASSPHRASE must be at least 12 characters",
                ));
            }
            let (root_key, root_enc) = new_encrypted_key(pass)?;
            let (issuing_key, issuing_enc) = new_encrypted_key(pass)?;
            let root = root_params
                .self_signed(&root_key)
                .map_err(CoreError::cert("root CA certificate"))?;
            let root_issuer = Issuer::new(root_params.clone(), &root_key);
            let issuing = sign_with(
                &issuing_params,
                &issuing_key,
                &root_issuer,
                "issuing CA certificate",
            )?;
            write_new_file(&home.key_file("root"), &root_enc, 0o600)?;
            write_new_file(&home.key_file("issuing"), &issuing_enc, 0o600)?;
            (root.der().to_vec(), issuing)
        }
    };
    let root_pem = pem_cert(&root_der);
    let issuing_pem = pem_cert(&issuing_der);
    write_file(&home.root_pem(), root_pem.as_bytes(), 0o644)?;
    write_file(&home.issuing_pem(), issuing_pem.as_bytes(), 0o644)?;
    // What the AIA caIssuers URL (`.../issuing.cer`) serves: the issuing certificate as DER.
    write_file(&issuing_cer(home), &issuing_der, 0o644)?;
    write_file(
        &home.chain_pem(),
        format!("{issuing_pem}{root_pem}").as_bytes(),
        0o644,
    )?;
    // The database is made here and only here: every other command refuses a missing one.
    crate::Store::create(&location)?;
    // The config file is written last: its presence is what marks the home as initialised.
    write_file(&home.config(), config.to_toml()?.as_bytes(), 0o600)?;
    Ok(InitReport {
        root_pem: home.root_pem(),
        issuing_pem: home.issuing_pem(),
        issuing_cer: issuing_cer(home),
        key_store: opts.key_store,
        ca_token_label: config.ca.token_label.clone(),
        ca_token_serial: config.ca.token_serial.clone(),
    })
}

/// PEM of a certificate.
pub fn pem_cert(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// `ca/issuing.cer`: the issuing CA certificate as DER, written by [`init`] for publication at
/// the AIA caIssuers URL (`urls.ca_issuers`, `.../issuing.cer` by default).
pub fn issuing_cer(home: &Home) -> std::path::PathBuf {
    home.issuing_pem().with_extension("cer")
}

/// Reads the issuing CA certificate (DER) from the home.
pub fn issuing_der(home: &Home) -> Result<Vec<u8>> {
    read_pem_cert(&home.issuing_pem())
}

/// Reads the root CA certificate (DER) from the home.
pub fn root_der(home: &Home) -> Result<Vec<u8>> {
    read_pem_cert(&home.root_pem())
}

/// Reads the first certificate of a PEM file.
pub fn read_pem_cert(path: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read(path).map_err(CoreError::io("reading", path))?;
    let p = pem::parse(&text).map_err(|e| CoreError::Parse {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(p.into_contents())
}

/// The issuing CA as an rcgen issuer, signing with its key.
pub fn issuer<'k>(
    home: &Home,
    keys: &'k CaKeys,
) -> Result<(Issuer<'static, CaSigner<'k>>, Vec<u8>)> {
    let der = issuing_der(home)?;
    let signer = keys.signer(CaKeyRole::Issuing)?;
    let issuer = Issuer::from_ca_cert_der(&der.as_slice().into(), signer)
        .map_err(CoreError::cert("issuing CA (loading)"))?;
    Ok((issuer, der))
}
