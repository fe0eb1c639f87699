//! Certificate rows: pending before signing, issued once on the token, then revoked/superseded.

use crate::db::{DbResult, Row, params};
use serde::Serialize;
use time::OffsetDateTime;

use super::summary::CertSummary;

use super::Store;
use crate::error::{Result, StoreError};
use crate::time_fmt::ts;

/// What a certificate is for. Every certificate the CA signs has a row with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertRole {
    /// The holder's identity (signing/authentication) certificate.
    Identity,
    /// The electronic seal's certificate.
    Seal,
    /// The holder's encryption certificate (dual certificates; reserved).
    Encryption,
    /// A member of staff's operator certificate (clientAuth, on their USBKEY).
    Operator,
    /// The delegated OCSP responder's certificate (id-kp-OCSPSigning).
    OcspSigner,
    /// The API's TLS server certificate (serverAuth).
    TlsServer,
    /// The seal maker's certificate (signs seals and audit anchors).
    SealMaker,
    /// The CMP responder's signing certificate (reserved).
    CmpSigner,
}

impl CertRole {
    /// Every role.
    pub const ALL: [CertRole; 8] = [
        CertRole::Identity,
        CertRole::Seal,
        CertRole::Encryption,
        CertRole::Operator,
        CertRole::OcspSigner,
        CertRole::TlsServer,
        CertRole::SealMaker,
        CertRole::CmpSigner,
    ];
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::Identity => "identity",
            CertRole::Seal => "seal",
            CertRole::Encryption => "encryption",
            CertRole::Operator => "operator",
            CertRole::OcspSigner => "ocsp-signer",
            CertRole::TlsServer => "tls-server",
            CertRole::SealMaker => "seal-maker",
            CertRole::CmpSigner => "cmp-signer",
        }
    }
    /// Parses the stored form (the table's CHECK allows only these).
    pub fn parse(s: &str) -> Option<CertRole> {
        CertRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
    /// True for the certificates of a holder (customer), false for the CA's own working
    /// certificates, which the counter's commands (revoke, renew, remind) leave alone.
    pub fn is_holder(self) -> bool {
        matches!(
            self,
            CertRole::Identity | CertRole::Seal | CertRole::Encryption
        )
    }
}

/// The SQL condition selecting holders' certificates (what [`CertRole::is_holder`] says): the
/// expiring list and the status counts are about them, not the CA's own working certificates.
pub const HOLDER_ROLES: &str = "role IN ('identity', 'seal', 'encryption')";

/// The holders' roles, for queries built by sea-query (the same as [`HOLDER_ROLES`]).
pub const HOLDER_ROLE_NAMES: [&str; 3] = ["identity", "seal", "encryption"];

/// Where a certificate is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertStatus {
    /// Serial reserved, not yet on the token (crash-safety marker).
    Pending,
    /// On the token and valid.
    Issued,
    /// Issuance abandoned; nothing of it is on a token.
    Void,
    /// Revoked.
    Revoked,
    /// Replaced by a renewal.
    Superseded,
    /// Issued, and past its notAfter: computed when read (as of the CA's clock), never stored.
    Expired,
}

impl CertStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Pending => "pending",
            CertStatus::Issued => "issued",
            CertStatus::Void => "void",
            CertStatus::Revoked => "revoked",
            CertStatus::Superseded => "superseded",
            CertStatus::Expired => "expired",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<CertStatus> {
        Some(match s {
            "pending" => CertStatus::Pending,
            "issued" => CertStatus::Issued,
            "void" => CertStatus::Void,
            "revoked" => CertStatus::Revoked,
            "superseded" => CertStatus::Superseded,
            "expired" => CertStatus::Expired,
            _ => return None,
        })
    }
}

impl std::fmt::Display for CertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pending row to reserve before signing.
#[derive(Debug, Clone)]
pub struct NewPending<'a> {
    /// Serial, hex.
    pub serial: &'a str,
    /// Certificate type key.
    pub cert_type: &'a str,
    /// Identity or seal.
    pub role: CertRole,
    /// For a seal certificate: its identity certificate.
    pub identity_serial: Option<&'a str>,
    /// Subject DN as text.
    pub subject: &'a str,
    /// The organisation identifier (USCC) when the type has one.
    pub org_id: Option<&'a str>,
    /// Validated applicant data (JSON).
    pub applicant_json: &'a str,
    /// Token label.
    pub token_label: &'a str,
    /// Token serial.
    pub token_serial: &'a str,
    /// Key id (hex).
    pub key_id: &'a str,
    /// The caller's id for this issuance (batch row), when any.
    pub external_id: Option<&'a str>,
    /// The application this issuance fulfils, when any.
    pub application_id: Option<i64>,
    /// The issuance this row belongs to.
    pub issuance_id: i64,
}

/// One certificate row: its summary (what lists show) and the heavy columns.
#[derive(Debug, Clone, Serialize)]
pub struct CertRecord {
    /// Everything but the DER, the seal, the applicant data and the key.
    #[serde(flatten)]
    pub summary: CertSummary,
    /// Applicant data (JSON text).
    #[serde(skip)]
    pub applicant_json: String,
    /// Certificate DER.
    #[serde(skip)]
    pub der: Option<Vec<u8>>,
    /// Seal DER (seal certificates only).
    #[serde(skip)]
    pub seal: Option<Vec<u8>>,
    /// The subject public key (SPKI bit string content), once generated.
    #[serde(skip)]
    pub spki: Option<Vec<u8>>,
    /// The site that issued it (a CA shared by the sites), when recorded.
    pub site: Option<String>,
}

impl std::ops::Deref for CertRecord {
    type Target = CertSummary;
    fn deref(&self) -> &CertSummary {
        &self.summary
    }
}

/// The summary columns first (see `summary::SUMMARY_COLUMNS`), then the heavy ones.
pub(super) const COLUMNS: &str = "serial, cert_type, role, identity_serial, subject, org_id, token_label, token_serial, \
    key_id, status, not_before, not_after, revoked_at, revocation_reason, created_at, external_id, application_id, \
    issuance_id, applicant_json, der, seal, spki, site";

pub(super) fn from_row(r: &Row<'_>) -> DbResult<CertRecord> {
    Ok(CertRecord {
        summary: super::summary::summary_from_row(r)?,
        applicant_json: r.get(18)?,
        der: r.get(19)?,
        seal: r.get(20)?,
        spki: r.get(21)?,
        site: r.get(22)?,
    })
}

/// Reserves a serial with a pending row (inside the reservation transaction).
pub fn insert_pending(tx: &crate::Tx<'_>, p: &NewPending<'_>) -> Result<()> {
    let now = ts(OffsetDateTime::now_utc());
    super::exec(
        tx,
        "INSERT INTO certificates (serial, cert_type, role, identity_serial, subject, org_id, applicant_json, \
         token_label, token_serial, key_id, status, created_at, updated_at, external_id, application_id, issuance_id, site) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?11, ?12, ?13, ?14, ?15)",
        params![
            p.serial,
            p.cert_type,
            p.role.as_str(),
            p.identity_serial,
            p.subject,
            p.org_id,
            p.applicant_json,
            p.token_label,
            p.token_serial,
            p.key_id,
            now,
            p.external_id,
            p.application_id,
            p.issuance_id,
            tx.site()
        ],
    )
    .map_err(StoreError::db("insert pending certificate"))?;
    Ok(())
}

/// A certificate the CA made for its own work, recorded issued at once (it has no stages: it
/// is signed, written where it lives, then recorded with its audit row).
#[derive(Debug, Clone)]
pub struct NewMade<'a> {
    /// Serial, lower-case hex.
    pub serial: &'a str,
    /// What it is for (never a holder role).
    pub role: CertRole,
    /// Subject DN as text.
    pub subject: &'a str,
    /// The certificate.
    pub der: &'a [u8],
    /// The subject public key (bit string content).
    pub spki: &'a [u8],
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Where its key is: token label.
    pub token_label: &'a str,
    /// Token serial.
    pub token_serial: &'a str,
    /// Key id (hex).
    pub key_id: &'a str,
}

/// Records a CA-made certificate (inside the write that records its audit row). Its type is
/// its role: it belongs to no certificate policy.
pub fn insert_made(tx: &crate::Tx<'_>, m: &NewMade<'_>) -> Result<()> {
    let now = ts(OffsetDateTime::now_utc());
    super::exec(
        tx,
        "INSERT INTO certificates (serial, cert_type, role, subject, applicant_json, token_label, token_serial, \
         key_id, status, not_before, not_after, der, spki, created_at, updated_at, site) \
         VALUES (?1, ?2, ?2, ?3, '{}', ?4, ?5, ?6, 'issued', ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
        params![
            m.serial,
            m.role.as_str(),
            m.subject,
            m.token_label,
            m.token_serial,
            m.key_id,
            ts(m.not_before),
            ts(m.not_after),
            m.der,
            m.spki,
            now,
            tx.site()
        ],
    )
    .map_err(StoreError::db("record CA-made certificate"))?;
    Ok(())
}

/// Filters for listing certificates.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    /// Only this type.
    pub cert_type: Option<String>,
    /// Only this status.
    pub status: Option<CertStatus>,
    /// Only issued certificates whose notAfter is before this instant.
    pub expiring_before: Option<OffsetDateTime>,
    /// Include pending and void rows.
    pub include_unissued: bool,
    /// Only the certificates of this application.
    pub application_id: Option<i64>,
    /// The instant expiry is judged at (issued and past notAfter reads as expired); the
    /// system clock when unset.
    pub now: Option<OffsetDateTime>,
    /// At most this many rows.
    pub limit: Option<u64>,
    /// Only rows older than this serial (the last one of the previous page).
    pub after: Option<String>,
}

impl Store {
    /// True when the serial is already used (pending or otherwise).
    pub fn serial_exists(&self, serial: &str) -> Result<bool> {
        self.conn
            .query_opt(
                "SELECT 1 FROM certificates WHERE serial = ?1",
                params![serial],
                |_| Ok(()),
            )
            .map(|o| o.is_some())
            .map_err(StoreError::db("serial lookup"))
    }

    /// One certificate by serial (case-insensitive hex, colons allowed).
    pub fn cert(&self, serial: &str) -> Result<CertRecord> {
        let norm = normalize_serial(serial);
        self.conn
            .query_opt(
                &format!("SELECT {COLUMNS} FROM certificates WHERE serial = ?1"),
                params![norm],
                from_row,
            )
            .map_err(StoreError::db("certificate lookup"))?
            .ok_or(StoreError::UnknownSerial { serial: norm })
    }

    /// Certificates matching `f`, newest first (with DER and applicant data; lists use
    /// [`Store::cert_summaries`]).
    pub fn certs(&self, f: &CertFilter) -> Result<Vec<CertRecord>> {
        let now = f.now.unwrap_or_else(OffsetDateTime::now_utc);
        let (sql, args) = super::summary::filter_sql(f, COLUMNS, self.conn.backend())?;
        let args: Vec<&dyn crate::db::ToSql> =
            args.iter().map(|a| a as &dyn crate::db::ToSql).collect();
        self.conn
            .query_vec(&sql, &args, |r| from_row(r).map(|c| c.as_of(now)))
            .map_err(StoreError::db("list certificates"))
    }

    /// Issued, unexpired certificates of `cert_type` for organisation `org_id`.
    pub fn valid_for_org(
        &self,
        cert_type: &str,
        org_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<CertRecord>> {
        self.conn
            .query_vec(
                &format!(
                    "SELECT {COLUMNS} FROM certificates WHERE cert_type = ?1 AND org_id = ?2 AND role = 'identity' \
                     AND status = 'issued' AND not_after > ?3"
                ),
                params![cert_type, org_id, ts(now)],
                from_row,
            )
            .map_err(StoreError::db("organisation lookup"))
    }

    /// Seal certificates that belong to identity certificate `serial`.
    pub fn seals_of(&self, serial: &str) -> Result<Vec<CertRecord>> {
        self.conn
            .query_vec(
                &format!("SELECT {COLUMNS} FROM certificates WHERE identity_serial = ?1"),
                params![serial],
                from_row,
            )
            .map_err(StoreError::db("seal lookup"))
    }
}

impl CertRecord {
    /// The row as seen at `now`: an issued certificate past its notAfter is expired.
    pub fn as_of(mut self, now: OffsetDateTime) -> CertRecord {
        if self.status == CertStatus::Issued && self.not_after.is_some_and(|na| na <= now) {
            self.summary.status = CertStatus::Expired;
        }
        self
    }
}

/// Lower-case hex without separators.
pub fn normalize_serial(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}
