//! `hljca.toml`: the CA's configuration, with every default written out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Where the CA private keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStore {
    /// Inside a PKCS#11 "CA HSM" token: sensitive, never extractable (the default).
    Hsm,
    /// Encrypted PKCS#8 files in the home (development only).
    File,
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The CA keys and certificates.
    pub ca: CaConfig,
    /// URLs written into every end-entity certificate.
    #[serde(default)]
    pub urls: UrlConfig,
    /// CRL publication.
    #[serde(default)]
    pub crl: CrlConfig,
    /// Lifecycle rules.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Electronic seal pictures.
    #[serde(default)]
    pub seal: SealConfig,
    /// Cross-platform binding of certificates from the former platform's CA.
    #[serde(default)]
    pub binding: BindingConfig,
    /// `hljca serve`: OCSP, CRLs and CA certificates over HTTP.
    #[serde(default)]
    pub serve: ServeConfig,
    /// The online application portal on `hljca serve`.
    #[serde(default)]
    pub portal: PortalConfig,
    /// PKCS#11 module path; when absent, `HLJCA_PKCS11_MODULE` or SoftHSM2's usual places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_module: Option<PathBuf>,
    /// The SoftHSM2 workarounds (a store lock in the home's `run/`, login retries): `auto` (on
    /// for SoftHSM2, the default), `softhsm` or `none` (a real HSM or USBKEY).
    #[serde(default)]
    pub pkcs11_quirks: hljca_token::QuirksMode,
    /// Directory with `<type>.toml` files replacing the built-in policies (relative to home).
    #[serde(default = "default_policy_dir")]
    pub policy_dir: PathBuf,
    /// Certificate policy OID arc; each type's policy appends its suffix.
    #[serde(default = "default_policy_arc")]
    pub policy_arc: String,
    /// The database: `postgres://…` for one PostgreSQL database shared by the sites; the
    /// home's SQLite file (`hljca.db`) when absent. `HLJCA_DATABASE_URL` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The site this installation serves (`harbin`, `hegang`, `qiqihar`), recorded on the rows
    /// it writes; `HLJCA_SITE` overrides it, the operator's site is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// CA key material.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Where the keys are.
    pub key_store: KeyStore,
    /// Label of the CA HSM token (key_store = hsm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// Serial of the CA HSM token (key_store = hsm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_serial: Option<String>,
    /// `CKA_ID` (hex) of the root key on the CA token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key_id: Option<String>,
    /// `CKA_ID` (hex) of the issuing key on the CA token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_key_id: Option<String>,
    /// `CKA_ID` (hex) of the seal maker's key on the CA token (signs seals and audit anchors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_maker_key_id: Option<String>,
    /// `CKA_ID` (hex) of the OCSP responder's key on the CA token (signs OCSP responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp_signer_key_id: Option<String>,
    /// Root CA validity in years (default 20).
    #[serde(default = "default_root_years")]
    pub root_years: u32,
    /// Issuing CA validity in years (default 10).
    #[serde(default = "default_issuing_years")]
    pub issuing_years: u32,
}

/// URLs for relying parties.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlConfig {
    /// CRL distribution point.
    pub crl: String,
    /// AIA caIssuers URL of the issuing CA certificate.
    pub ca_issuers: String,
    /// AIA OCSP URL (RFC 6960); absent: no OCSP access description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp: Option<String>,
}

/// The public base URL of a new home: `hljca serve` answers there, and the URLs written into
/// certificates ([`UrlConfig::from_base`]) point there.
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://pki.hljca.example.cn";

impl UrlConfig {
    /// The URLs `hljca serve` answers under `base`: `/crl/issuing.crl`, `/ca/issuing.cer`
    /// and `/ocsp`.
    pub fn from_base(base: &str) -> UrlConfig {
        let base = base.trim_end_matches('/');
        UrlConfig {
            crl: format!("{base}/crl/issuing.crl"),
            ca_issuers: format!("{base}/ca/issuing.cer"),
            ocsp: Some(format!("{base}/ocsp")),
        }
    }
}

impl Default for UrlConfig {
    fn default() -> Self {
        UrlConfig::from_base(DEFAULT_PUBLIC_BASE_URL)
    }
}

/// `hljca serve`: one long-running process answering OCSP and serving the CRL and CA
/// certificates at the paths of `[urls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on (default `127.0.0.1:8080`; `hljca serve --listen` overrides it).
    pub listen: String,
    /// The base URL relying parties reach the server at; a new home's `[urls]` derive from it.
    pub public_base_url: String,
    /// Seconds between looks at the database for revocations and new CRLs (default 2).
    pub poll_seconds: u64,
    /// Hours an OCSP response is valid, thisUpdate to nextUpdate (default 24); cached
    /// responses are signed again at half of it.
    pub ocsp_validity_hours: u32,
    /// Days the delegated OCSP signing certificate is valid (default 7); renewed at half of it.
    pub ocsp_signer_days: u32,
    /// Seconds one request may take, its body included (default 10).
    pub request_timeout_seconds: u64,
    /// Largest request body in bytes (default 16384).
    pub max_body_bytes: usize,
    /// Most open connections at once (default 1024).
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM or Ctrl-C (default 10).
    pub shutdown_grace_seconds: u64,
    /// Sign a response for every certificate ahead of requests (default true).
    pub precompute: bool,
    /// Address of the client-certificate API (HTTPS); off when unset (`--api-listen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_listen: Option<String>,
    /// Host names and IP addresses of the API's TLS server certificate (default `localhost`,
    /// `127.0.0.1` and the host of `public_base_url`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_hosts: Vec<String>,
    /// Days the API's TLS server certificate from the issuing CA is valid (default 30); a new
    /// one is issued at start and while running once half of it has passed.
    pub api_cert_days: u32,
    /// The API's TLS certificate chain (PEM) instead of one from the issuing CA; with `tls_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PKCS#8 PEM, mode 0600) of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            public_base_url: DEFAULT_PUBLIC_BASE_URL.into(),
            poll_seconds: 2,
            ocsp_validity_hours: 24,
            ocsp_signer_days: 7,
            request_timeout_seconds: 10,
            max_body_bytes: 16384,
            max_connections: 1024,
            shutdown_grace_seconds: 10,
            precompute: true,
            api_listen: None,
            api_hosts: Vec::new(),
            api_cert_days: 30,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// CRL publication.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlConfig {
    /// Hours between thisUpdate and nextUpdate (default 24).
    pub next_update_hours: u32,
    /// Publish directory, relative to the home (default `crl`).
    pub publish_dir: PathBuf,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            next_update_hours: 24,
            publish_dir: PathBuf::from("crl"),
        }
    }
}

/// How generated seal pictures are made.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    /// A TrueType/OpenType font with CJK glyphs for the name on generated seals (relative to the
    /// home unless absolute); when absent,
    /// the Noto CJK fonts `softhsm-setup.sh` installs are looked for in their Debian places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub font: Option<PathBuf>,
    /// `png` (default: what outside seal readers can show) or `svg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// The online application portal (issue 14).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// File holding the payment gateway's HMAC-SHA256 secret (relative to the home unless
    /// absolute; mode 0600). `HLJCA_GATEWAY_SECRET` in the environment takes precedence.
    /// Without either, payment notifications are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_secret_file: Option<PathBuf>,
    /// Mark the session cookie `Secure` (set when the portal is reached over HTTPS, e.g.
    /// behind a TLS-terminating proxy).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Log-in through the trading platform's OpenID Connect single sign-on (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoConfig>,
}

/// The trading platform's OpenID Connect provider (authorization code flow; the ID token
/// signed HS256 with the client secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's `iss`.
    pub issuer: String,
    /// Its authorization endpoint (the browser goes there).
    pub authorize_url: String,
    /// Its token endpoint (`http://`; the portal posts the code there).
    pub token_url: String,
    /// This portal's client id (the ID token's `aud`).
    pub client_id: String,
    /// Where the provider sends the browser back: this portal's `/sso/callback`.
    pub redirect_url: String,
    /// File with the client secret (relative to the home unless absolute);
    /// `HLJCA_SSO_CLIENT_SECRET` takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
}

/// The former platform's CA, whose certificates `bind` accepts.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// PEM files of the former (Daqing) platform's CA certificates, relative to the home.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_ca: Vec<PathBuf>,
    /// CRL files (DER or PEM) of that CA, checked when present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_crl: Vec<PathBuf>,
}

/// Lifecycle rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Renewal opens this many days before expiry (default 90).
    pub renewal_window_days: u32,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            renewal_window_days: 90,
        }
    }
}

fn default_root_years() -> u32 {
    20
}
fn default_issuing_years() -> u32 {
    10
}
fn default_policy_dir() -> PathBuf {
    PathBuf::from("policies")
}
fn default_policy_arc() -> String {
    // A private-enterprise arc placeholder; a real deployment sets its own registered arc.
    "1.3.6.1.4.1.99999.1".into()
}

impl Config {
    /// A configuration with every default for the given key store.
    pub fn new(key_store: KeyStore) -> Config {
        Config {
            ca: CaConfig {
                key_store,
                token_label: None,
                token_serial: None,
                root_key_id: None,
                issuing_key_id: None,
                seal_maker_key_id: None,
                ocsp_signer_key_id: None,
                root_years: default_root_years(),
                issuing_years: default_issuing_years(),
            },
            urls: UrlConfig::default(),
            crl: CrlConfig::default(),
            lifecycle: LifecycleConfig::default(),
            seal: SealConfig::default(),
            binding: BindingConfig::default(),
            serve: ServeConfig::default(),
            portal: PortalConfig::default(),
            pkcs11_module: None,
            pkcs11_quirks: hljca_token::QuirksMode::Auto,
            policy_dir: default_policy_dir(),
            policy_arc: default_policy_arc(),
            database: None,
            site: None,
        }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(CoreError::io("reading", path))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| CoreError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(CoreError::Config {
                path: path.to_path_buf(),
                reason,
            })
        };
        if self.crl.next_update_hours == 0 {
            return bad("crl.next_update_hours must be at least 1".into());
        }
        if self.ca.key_store == KeyStore::Hsm
            && (self.ca.token_label.is_none()
                || self.ca.root_key_id.is_none()
                || self.ca.issuing_key_id.is_none())
        {
            return bad(
                "ca.key_store = \"hsm\" needs ca.token_label, ca.root_key_id and ca.issuing_key_id"
                    .into(),
            );
        }
        if !self
            .policy_arc
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad(format!(
                "policy_arc `{}` is not a dotted OID",
                self.policy_arc
            ));
        }
        Ok(())
    }

    /// Serialises with a header comment.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string_pretty(self).map_err(|e| CoreError::Encoding {
            what: "hljca.toml",
            reason: e.to_string(),
        })?;
        Ok(format!(
            "# hljca configuration. Every key is documented in README.md (\"Configuration\").\n{body}"
        ))
    }
}
