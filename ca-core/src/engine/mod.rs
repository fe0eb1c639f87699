//! The issuance engine: the one path by which the CA signs a holder's certificate — onto a
//! USBKEY or from a PKCS#10 request, for `issue`, `issue APP`, `renew`, batch rows and
//! `recover` alike.
//!
//! In the rcgen style, a caller fills an [`IssueParams`] and makes one finishing call,
//! [`IssueParams::issue`]. The issuance then goes through stages, each durable (one
//! `BEGIN IMMEDIATE` transaction with its audit row) before the next starts:
//!
//! | stage | what is durable | on the token |
//! |---|---|---|
//! | reserved | issuance row (lease, kind, renewal, fee), pending certificate rows with serials and key ids; the application claimed `paid → issuing` | nothing yet |
//! | keys (token) | the subject public keys | the key pairs |
//! | signed (token) | every certificate's DER (checked against the issuing CA) and the seal | key pairs |
//! | written (token) | — | key pairs, certificates, seal |
//! | committed | rows issued (a request's DER recorded here: nothing it signed left the process); application issued; renewal's old certificates superseded, its fee, the audit rows | all of it |
//!
//! Single and bulk are one stage machine (`stages.rs`, ordered by `run.rs`): every stage is
//! written for a group of issuances; `issue` is a group of one, [`Engine::issue_csr_bulk`] a
//! group of up to a thousand requests whose reservation and commit are one transaction each.
//!
//! A failure in the process abandons the issuance at once (its keys destroyed, rows voided, the
//! application back to paid). A crash leaves it at its last stage, owned by a lease nobody holds
//! any more; [`Ca::recover`] (in `recover.rs`, the only code that reads stages back) finishes or
//! voids it.

mod authority;
mod commit;
mod exports;
mod lease;
mod prepare;
mod recover;
mod run;
mod sign;
mod stages;

use crate::Rule;
use hljca_policies::{Applicant, CertType};
use hljca_token::{TokenInfo, TokenSelector, TokenSession};
use serde::Serialize;

use crate::Ca;
use crate::csr::CheckedCsr;
use crate::error::{CoreError, Result};
use crate::keys::CaKeys;
use crate::store::CertRole;

pub use authority::Authority;
pub use lease::{Lease, LeaseSpace, Probe};
pub use recover::{PinSource, RecoverAction, RecoverReport, RecoveredIssuance};
pub use run::BulkOutcome;
pub use sign::{CA_KEY_FILES, KeyHome};
pub(crate) use sign::{record_made, sign_with};

/// Where the subject key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Generated on the holder's USBKEY (the session passed to [`IssueParams::issue`]).
    Token,
    /// The key in a checked PKCS#10 request.
    Csr(CheckedCsr),
}

/// A renewal fee taken with the issuance (`hljca renew`).
#[derive(Debug, Clone)]
pub struct Fee {
    /// Amount in fen.
    pub fen: u64,
    /// Payment method.
    pub method: String,
    /// Payment reference.
    pub reference: Option<String>,
}

/// What to issue: everything the engine needs, filled by the caller.
#[derive(Debug, Clone)]
pub struct IssueParams {
    /// The certificate type.
    pub cert_type: CertType,
    /// Raw applicant data (validated against the type's policy).
    pub applicant: Applicant,
    /// Token or CSR.
    pub source: KeySource,
    /// A seal picture (PNG or JPEG) for types with a seal; generated when absent.
    pub seal_image: Option<Vec<u8>>,
    /// The caller's id (a batch row's external id), recorded on every row.
    pub external_id: Option<String>,
    /// The application this issuance fulfils (claimed `paid → issuing`).
    pub application_id: Option<i64>,
    /// The certificate this issuance renews (superseded when it commits).
    pub renewal_of: Option<String>,
    /// A fee recorded when it commits.
    pub fee: Option<Fee>,
}

impl IssueParams {
    /// Params for `cert_type` and `applicant` with a key made on the holder's token.
    pub fn new(cert_type: CertType, applicant: Applicant) -> IssueParams {
        IssueParams {
            cert_type,
            applicant,
            source: KeySource::Token,
            seal_image: None,
            external_id: None,
            application_id: None,
            renewal_of: None,
            fee: None,
        }
    }

    /// Issues, all or nothing. `holder` is the logged-in USBKEY for [`KeySource::Token`]
    /// (refused when it is the CA's own token), `None` for a CSR.
    pub fn issue(
        &self,
        ca: &Ca,
        engine: &Engine<'_>,
        holder: Option<&TokenSession>,
    ) -> Result<IssueOutcome> {
        run::run(ca, engine, holder, self)
    }
}

/// One certificate made.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedCert {
    /// Serial (hex).
    pub serial: String,
    /// Type key.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// identity or seal.
    pub role: CertRole,
    /// Exported PEM.
    pub pem: std::path::PathBuf,
    /// `CKA_ID` (hex) on the token (SHA-256 of the SPKI for a CSR).
    pub key_id: String,
    /// Subject DN.
    pub subject: String,
    /// Token label (`(csr)` for a CSR).
    pub token_label: String,
    /// Token serial (empty for a CSR).
    pub token_serial: String,
    /// Validity end (RFC 3339).
    pub not_after: String,
}

/// Where the seal went.
#[derive(Debug, Clone, Serialize)]
pub struct SealLocation {
    /// Token label.
    pub token_label: String,
    /// Label of the data object on the token.
    pub object_label: String,
    /// A copy in the home.
    pub file: std::path::PathBuf,
    /// Serial of the seal certificate.
    pub seal_cert_serial: String,
}

/// What an issuance made.
#[derive(Debug, Clone, Serialize)]
pub struct IssueOutcome {
    /// The issuance id.
    pub issuance: i64,
    /// The certificates, identity first.
    pub certificates: Vec<IssuedCert>,
    /// The seal, for types that have one.
    pub seal: Option<SealLocation>,
    /// Set when the policy's validity was cut to the issuing CA's notAfter.
    pub warning: Option<String>,
    /// Old certificates superseded (renewal).
    pub superseded: Vec<String>,
    /// Old token objects removed after the commit (renewal).
    pub removed_objects: usize,
}

/// The CA's side of issuance for one command or batch: the verified authority and the lease
/// under which this process works.
#[derive(Debug)]
pub struct Engine<'k> {
    authority: Authority<'k>,
    lease: Lease,
    ca_token: Option<(String, String)>,
    /// PEM copies of bulk issuances, written on a thread of their own.
    exports: exports::Exports,
}

impl<'k> Engine<'k> {
    /// Checks the CA certificates against `keys` and takes a lease.
    pub fn new(ca: &Ca, keys: &'k CaKeys) -> Result<Engine<'k>> {
        let ca_token = keys
            .token()
            .map(|t| (t.label.clone(), t.serial.clone()))
            .or_else(|| {
                ca.config
                    .ca
                    .token_serial
                    .clone()
                    .map(|s| (ca.config.ca.token_label.clone().unwrap_or_default(), s))
            });
        ca.refuse_clock_behind()?;
        Ok(Engine {
            authority: Authority::new(ca, keys)?,
            lease: Lease::acquire(&ca.lease_space())?,
            ca_token,
            exports: exports::Exports::default(),
        })
    }

    /// The verified issuing CA.
    pub fn authority(&self) -> &Authority<'k> {
        &self.authority
    }

    /// The lease id this engine works under (recorded on batch jobs).
    pub fn lease_id(&self) -> &str {
        self.lease.id()
    }
}

/// Refuses the CA's own HSM token as a holder's token, by label and by serial, both from the
/// configuration and from the open CA session.
pub(crate) fn refuse_ca_token(
    ca: &Ca,
    ca_token: Option<&(String, String)>,
    holder: &TokenInfo,
    named: &str,
) -> Result<()> {
    let cfg = &ca.config.ca;
    let hit = cfg.token_serial.as_deref() == Some(holder.serial.as_str())
        || cfg.token_label.as_deref() == Some(holder.label.as_str())
        || ca_token.is_some_and(|(l, s)| *l == holder.label || *s == holder.serial);
    if hit {
        return Err(CoreError::CaTokenAsHolder {
            selector: named.to_owned(),
            label: holder.label.clone(),
            serial: holder.serial.clone(),
        });
    }
    Ok(())
}

/// Refuses, as a holder's token, the CA's own token ([`refuse_ca_token`]) and any active
/// operator's USBKEY (the one this process logged in with included), whatever PIN is offered.
pub(crate) fn refuse_reserved_token(
    ca: &Ca,
    ca_token: Option<&(String, String)>,
    holder: &TokenInfo,
    named: &str,
) -> Result<()> {
    refuse_ca_token(ca, ca_token, holder, named)?;
    if let Some(op) = ca.store.operator_on_token(&holder.serial)? {
        return Err(CoreError::refuse_on(
            Rule::OperatorUsbkey,
            "token",
            format!(
                "`{named}` (label {}, serial {}) is the operator USBKEY of {}: a holder's keys and \
                 certificates never go onto an operator's USBKEY; use a blank customer USBKEY",
                holder.label, holder.serial, op.name
            ),
        ));
    }
    Ok(())
}

impl Ca {
    /// Finds the holder's token named `sel` and refuses the CA's own token and operators'
    /// USBKEYs, before any login.
    pub fn holder_token(
        &self,
        module: &hljca_token::Module,
        sel: &TokenSelector,
    ) -> Result<TokenInfo> {
        let info = module.find(sel)?;
        refuse_reserved_token(self, None, &info, &sel.0)?;
        Ok(info)
    }
}

/// Test builds only: `HLJCA_FAILPOINT=<stage>` aborts the process right after that stage is
/// durable, as a crash or SIGKILL would (no destructors run); `<stage>:sleep=<ms>` pauses
/// there instead (an issuance held in progress); `<stage>:error` fails there as a token or
/// database error would. For the crash-safety and concurrency tests; release builds ignore it.
pub(crate) fn failpoint(stage: &str) -> Result<()> {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("HLJCA_FAILPOINT") {
        let (at, what) = v.split_once(':').unwrap_or((v.as_str(), "abort"));
        if at == stage {
            if what == "error" {
                return Err(CoreError::refuse(
                    Rule::Internal,
                    format!("failpoint {stage}: injected failure"),
                ));
            }
            if let Some(ms) = what.strip_prefix("sleep=").and_then(|m| m.parse().ok()) {
                eprintln!("hljca: failpoint {stage}: sleeping {ms} ms");
                std::thread::sleep(std::time::Duration::from_millis(ms));
            } else {
                eprintln!("hljca: failpoint {stage}: aborting");
                std::process::abort();
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = stage;
    Ok(())
}
