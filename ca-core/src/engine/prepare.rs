//! What an issuance needs before its first write: the holder's token or request checked,
//! the one eligibility check passed, the subject and the seal picture made.

use crate::Rule;
use hljca_policies::{KeyAlgorithm, Policy, ValidatedApplicant};
use hljca_token::{KeyKind, TokenSession};

use super::{Engine, IssueParams, KeySource, refuse_reserved_token};
use crate::Ca;
use crate::applications::AppId;
use crate::csr::CSR_TOKEN_LABEL;
use crate::eligibility::{Eligible, Request, Step};
use crate::error::{CoreError, Result};
use crate::profile::subject;
use crate::seal::SealPicture;

/// Everything checked before the first write.
pub(super) struct Prepared {
    pub policy: Policy,
    pub validated: ValidatedApplicant,
    pub org_id: Option<String>,
    pub renewed_not_after: Option<time::OffsetDateTime>,
    pub picture: Option<SealPicture>,
    pub dn: rcgen::DistinguishedName,
    pub subject_text: String,
    pub applicant_json: String,
    pub token_label: String,
    pub token_serial: String,
}

pub(super) fn key_kind(alg: KeyAlgorithm) -> KeyKind {
    match alg {
        KeyAlgorithm::EcP256 => KeyKind::EcP256,
        KeyAlgorithm::Rsa2048 => KeyKind::Rsa2048,
    }
}

pub(super) fn prepare(
    ca: &Ca,
    engine: &Engine<'_>,
    holder: Option<&TokenSession>,
    p: &IssueParams,
) -> Result<Prepared> {
    let (token_label, token_serial) = match (&p.source, holder) {
        (KeySource::Token, Some(session)) => {
            let info = session.info();
            refuse_reserved_token(ca, engine.ca_token.as_ref(), info, &info.label)?;
            (info.label.clone(), info.serial.clone())
        }
        (KeySource::Token, None) => {
            return Err(CoreError::refuse(
                Rule::Internal,
                "issuance onto a token needs the holder's token session",
            ));
        }
        (KeySource::Csr(csr), _) => {
            if csr.cert_type() != p.cert_type {
                return Err(CoreError::refuse_on(
                    Rule::Csr,
                    "csr",
                    format!(
                        "the CSR was checked for {}, not {}",
                        csr.cert_type(),
                        p.cert_type
                    ),
                ));
            }
            (CSR_TOKEN_LABEL.to_owned(), String::new())
        }
    };
    let application = p
        .application_id
        .map(|id| ca.application(AppId(id)))
        .transpose()?;
    let Eligible {
        policy,
        validated,
        org_id,
        renewed,
        ..
    } = ca.eligible(
        Step::Issue,
        &Request {
            cert_type: p.cert_type,
            applicant: &p.applicant,
            renewal_of: p.renewal_of.as_deref(),
            application: application.as_ref(),
            token_serial: (!token_serial.is_empty()).then_some(token_serial.as_str()),
        },
    )?;
    if let Some(old) = &renewed
        && old.token_serial != token_serial
    {
        return Err(CoreError::refuse_on(
            Rule::RenewalSame,
            "token",
            format!(
                "certificate {} is renewed onto the same USBKEY `{}` (serial {}) that holds it, not `{token_label}`",
                old.serial, old.token_label, old.token_serial
            ),
        ));
    }
    let picture = match (&policy.seal, &p.seal_image, &p.source) {
        (Some(_), _, KeySource::Csr(_)) => None,
        (Some(sp), Some(img), _) => Some(SealPicture::from_image(
            img.clone(),
            sp.width_mm,
            sp.height_mm,
        )?),
        (Some(sp), None, _) => {
            let name = validated.get(&sp.name_field).unwrap_or_default();
            // A relative [seal] font is relative to the home, like the other configured paths.
            let cfg = &ca.config().seal;
            let font = cfg.font.as_ref().map(|f| ca.home().dir().join(f));
            Some(SealPicture::generate(
                name,
                sp.width_mm,
                sp.height_mm,
                cfg.picture.as_deref(),
                font.as_deref(),
            )?)
        }
        (None, Some(_), _) => {
            return Err(CoreError::refuse_on(
                Rule::SealImage,
                "seal-image",
                format!(
                    "--seal-image given but a {} certificate has no electronic seal",
                    p.cert_type
                ),
            ));
        }
        (None, None, _) => None,
    };
    let (dn, subject_text) = subject(&policy, &validated)?;
    let applicant_json = Ca::applicant_json(&validated)?;
    Ok(Prepared {
        policy,
        validated,
        org_id,
        renewed_not_after: renewed.and_then(|r| r.not_after),
        picture,
        dn,
        subject_text,
        applicant_json,
        token_label,
        token_serial,
    })
}

/// The key label's short form of a subject: its CN, at most 24 characters.
pub(super) fn short(s: &str) -> String {
    s.rsplit("CN=")
        .next()
        .unwrap_or(s)
        .chars()
        .take(24)
        .collect()
}
