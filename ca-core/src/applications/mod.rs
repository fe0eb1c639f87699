//! Applications and the counter workflow (issue 5, SPEC.md sections 3-5).
//!
//! An application moves through
//! `draft → submitted → approved | rejected → paid → issued → delivered`, and may be `cancelled`
//! from draft, submitted, approved or paid. [`transition`] is the only place that decides which
//! step is allowed; every step is recorded in `application_events` (operator and time) and in the
//! audit log, in the same transaction as the change.
//!
//! Materials are stored content-addressed under `<home>/materials/<sha256>`; payments become rows
//! of `orders` (amount from the policy, in fen); notifications the seed sends by SMS go into the
//! `outbox` table; `remind` enqueues one expiry reminder per certificate per window.

pub use crate::store::vocab::{
    AppEventKind, AppId, AppState, Channel, Site, next_steps, transition,
};
mod reads;
use crate::Rule;
use crate::store::applications as rows;

use std::str::FromStr;

use serde::Serialize;

use crate::error::{CoreError, Result};

pub use crate::store::applications::{AppEvent, Application, Delivery, MaterialRecord, Order};

use crate::eligibility::{Eligible, Request, Step};

impl crate::Ca {
    /// The eligibility check for application `app` at `step`.
    pub fn app_eligible(&self, app: &Application, step: Step) -> Result<Eligible> {
        self.eligible(
            step,
            &Request {
                cert_type: app.cert_type,
                applicant: &hljca_policies::Applicant(app.applicant.clone()),
                renewal_of: app.renewal_of.as_deref(),
                application: Some(app),
                token_serial: None,
            },
        )
    }
}

/// Moves application `id` by `event` inside an issuance transaction (claim, complete,
/// release), with its event and audit row; [`transition`] decides, on the state read in `tx`.
pub(crate) fn move_in(
    tx: &crate::store::Tx<'_>,
    id: AppId,
    event: AppEventKind,
    operator: &str,
    details: &serde_json::Value,
) -> Result<()> {
    let from = state_in(tx, id)?;
    let to = transition(id, from, event)?;
    let event = event.as_str();
    let at = crate::time_fmt::ts(crate::time_fmt::now());
    rows::set_state(tx, id, from, to, &at)?;
    rows::add_event(tx, id, event, (Some(from), to), operator, &at, details)?;
    let mut audit_details = details.clone();
    if let Some(d) = audit_details.as_object_mut() {
        d.insert("from".into(), from.as_str().into());
        d.insert("to".into(), to.as_str().into());
    }
    Ok(crate::audit::append(
        tx,
        operator,
        &format!("app.{event}"),
        &app_object(id),
        &audit_details,
    )?)
}

/// Records the holder's USBKEY on an application (inside the issuance transaction).
pub(crate) fn record_token(
    tx: &crate::store::Tx<'_>,
    id: AppId,
    label: &str,
    serial: &str,
) -> Result<()> {
    Ok(crate::store::workflow::set_token(tx, id, label, serial)?)
}

/// The state of application `id`, read inside a transaction.
pub(crate) fn state_in(tx: &crate::store::Tx<'_>, id: AppId) -> Result<AppState> {
    rows::get(tx, id)?
        .map(|a| a.state)
        .ok_or_else(|| CoreError::refuse(Rule::UnknownApplication, format!("no application {id}")))
}

/// Largest material file accepted, in bytes (10 MiB).
pub const MAX_MATERIAL_BYTES: u64 = 10 * 1024 * 1024;

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayMethod {
    /// WeChat Pay QR code.
    QrWechat,
    /// Alipay QR code.
    QrAlipay,
    /// Cash at the counter.
    Cash,
    /// Bank card at the counter.
    Card,
    /// Bank transfer.
    BankTransfer,
}

impl PayMethod {
    /// Every method.
    pub const ALL: [PayMethod; 5] = [
        PayMethod::QrWechat,
        PayMethod::QrAlipay,
        PayMethod::Cash,
        PayMethod::Card,
        PayMethod::BankTransfer,
    ];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::QrWechat => "qr-wechat",
            PayMethod::QrAlipay => "qr-alipay",
            PayMethod::Cash => "cash",
            PayMethod::Card => "card",
            PayMethod::BankTransfer => "bank-transfer",
        }
    }
}

/// A payment (or a refund) as the counter takes it. One rule for `pay`, `renew` and refunds:
/// every method but cash needs its reference (QR transaction id, card slip, transfer number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// How.
    pub method: PayMethod,
    /// The reference; `None` only for cash.
    pub reference: Option<String>,
}

impl Payment {
    /// Checks the rule; a blank reference counts as none.
    pub fn new(method: PayMethod, reference: Option<&str>) -> Result<Payment> {
        let reference = reference
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if reference.is_none() && method != PayMethod::Cash {
            return Err(CoreError::refuse_on(
                Rule::PaymentReference,
                "reference",
                format!(
                    "--reference is needed for a {} payment (the QR transaction id, card slip or transfer \
                 number); only cash has none",
                    method.as_str()
                ),
            ));
        }
        if reference
            .as_deref()
            .is_some_and(|r| r.chars().count() > 64 || r.chars().any(char::is_control))
        {
            return Err(CoreError::refuse_on(
                Rule::PaymentReference,
                "reference",
                "--reference: at most 64 characters, no control characters",
            ));
        }
        Ok(Payment { method, reference })
    }
}

impl FromStr for PayMethod {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<PayMethod, String> {
        let w = s.trim().to_ascii_lowercase();
        PayMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == w)
            .ok_or_else(|| {
                format!(
                    "unknown payment method `{s}` (methods: {})",
                    PayMethod::ALL.map(PayMethod::as_str).join(", ")
                )
            })
    }
}

/// The file types accepted as materials, by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MediaType {
    /// `%PDF-`.
    #[serde(rename = "application/pdf")]
    Pdf,
    /// PNG signature.
    #[serde(rename = "image/png")]
    Png,
    /// JPEG SOI marker.
    #[serde(rename = "image/jpeg")]
    Jpeg,
}

impl MediaType {
    /// The MIME type (stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
        }
    }

    /// Detects the type from the first bytes.
    pub fn detect(bytes: &[u8]) -> Option<MediaType> {
        if bytes.starts_with(b"%PDF-") {
            Some(MediaType::Pdf)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(MediaType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(MediaType::Jpeg)
        } else {
            None
        }
    }
}

/// Checks a material before anything is stored: its kind is one the policy lists, its size is
/// within [`MAX_MATERIAL_BYTES`] and it is a PDF, PNG or JPEG. The error names what is wrong.
pub fn check_material(
    policy: &hljca_policies::Policy,
    kind: &str,
    file_name: &str,
    bytes: &[u8],
) -> std::result::Result<MediaType, String> {
    if !policy.materials.iter().any(|m| m.kind == kind) {
        let allowed = policy
            .materials
            .iter()
            .map(|m| m.kind.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "`{kind}` is not a material of a {} application (kinds: {allowed})",
            policy.cert_type
        ));
    }
    check_file(file_name, bytes)
}

/// Checks a scanned file (any material, also a binding's): non-empty, within
/// [`MAX_MATERIAL_BYTES`], and a PDF, PNG or JPEG. The error names the file and the rule.
pub fn check_file(file_name: &str, bytes: &[u8]) -> std::result::Result<MediaType, String> {
    if bytes.len() as u64 > MAX_MATERIAL_BYTES {
        return Err(format!(
            "{file_name} is {} bytes, over the 10 MiB limit ({MAX_MATERIAL_BYTES} bytes)",
            bytes.len()
        ));
    }
    if bytes.is_empty() {
        return Err(format!("{file_name} is empty"));
    }
    MediaType::detect(bytes).ok_or_else(|| {
        format!("{file_name} is not a PDF, PNG or JPEG file (only those are accepted as materials)")
    })
}

/// The applicant's contact mobile: the value of the policy's first field of kind `mobile`.
pub fn contact_mobile(
    policy: &hljca_policies::Policy,
    applicant: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    policy
        .fields
        .iter()
        .filter(|f| f.kind == hljca_policies::FieldKind::Mobile)
        .find_map(|f| applicant.get(&f.name))
        .filter(|m| !m.is_empty())
        .cloned()
}

/// The audit object of an application.
pub fn app_object(id: AppId) -> String {
    format!("APP-{}", id.0)
}

/// SHA-256 of a material, lower-case hex: its name in the store.
pub fn material_hash(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_parse_and_display() {
        assert_eq!("APP-7".parse::<AppId>(), Ok(AppId(7)));
        assert_eq!("app-000007".parse::<AppId>(), Ok(AppId(7)));
        assert_eq!(" 7 ".parse::<AppId>(), Ok(AppId(7)));
        assert!("APP-".parse::<AppId>().is_err());
        assert!("0".parse::<AppId>().is_err());
        assert!("x7".parse::<AppId>().is_err());
        assert_eq!(AppId(12).to_string(), "APP-12");
    }

    #[test]
    fn the_happy_path_and_cancel() {
        use AppEventKind as E;
        use AppState as S;
        let id = AppId(1);
        let mut s = S::Draft;
        for e in [
            E::Submit,
            E::Approve,
            E::Pay,
            E::Issue,
            E::Complete,
            E::Dispatch,
            E::Collect,
        ] {
            s = transition(id, s, e).unwrap();
        }
        assert_eq!(s, S::Delivered);
        for from in [S::Draft, S::Submitted, S::Approved, S::Paid] {
            assert_eq!(transition(id, from, E::Cancel).unwrap(), S::Cancelled);
        }
        for from in [
            S::Rejected,
            S::Issuing,
            S::Issued,
            S::Delivered,
            S::Cancelled,
        ] {
            assert!(transition(id, from, E::Cancel).is_err());
        }
        // An issuance that is voided gives the application back to be issued again.
        assert_eq!(transition(id, S::Issuing, E::Release).unwrap(), S::Paid);
    }

    #[test]
    fn refusals_name_the_state_and_what_is_next() {
        let e = transition(AppId(3), AppState::Draft, AppEventKind::Pay)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "application 3 is draft: `pay` needs approved; next: submit, cancel"
        );
        let e = transition(AppId(3), AppState::Rejected, AppEventKind::Approve)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is rejected") && e.contains("final"), "{e}");
    }

    #[test]
    fn every_pair_outside_the_table_is_refused() {
        for from in AppState::ALL {
            for e in AppEventKind::ALL {
                let allowed = e.sources().contains(&from);
                assert_eq!(
                    transition(AppId(1), from, e).is_ok(),
                    allowed,
                    "{from} {e:?}"
                );
            }
        }
    }

    #[test]
    fn media_types_by_magic() {
        assert_eq!(MediaType::detect(b"%PDF-1.4\n"), Some(MediaType::Pdf));
        assert_eq!(
            MediaType::detect(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(MediaType::Jpeg)
        );
        assert_eq!(
            MediaType::detect(b"\x89PNG\r\n\x1a\n...."),
            Some(MediaType::Png)
        );
        assert_eq!(MediaType::detect(b"hello"), None);
    }

    #[test]
    fn sites_and_methods_parse() {
        assert_eq!("Harbin".parse::<Site>(), Ok(Site::Harbin));
        let e = "daqing".parse::<Site>().unwrap_err();
        assert!(e.contains("harbin, hegang, qiqihar"), "{e}");
        assert_eq!("qr-wechat".parse::<PayMethod>(), Ok(PayMethod::QrWechat));
        assert!("bitcoin".parse::<PayMethod>().is_err());
    }
}
