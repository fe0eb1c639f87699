//! The counter and online workflow's writes, typed: applications made and their steps recorded
//! (submitter, review, delivery, collection, USBKEY), materials, payments and refunds, the SMS
//! outbox and expiry reminders. Each runs inside the caller's write transaction, which also
//! holds the state change and the audit row; the workflow crate binds no SQL of its own.

use crate::applications::Delivery;
use crate::db::{Db, Tx, params};
use crate::error::{Result, StoreError};
use crate::vocab::{AppId, Channel, Site};
use hljca_policies::CertType;
use hljca_rules::Rule;
use serde::Serialize;

/// An amount of fen as the database keeps it, refused when it does not fit.
fn fen(amount: u64) -> Result<i64> {
    i64::try_from(amount).map_err(|_| {
        StoreError::refuse(
            Rule::Internal,
            format!("an amount of {amount} fen does not fit the database"),
        )
    })
}

/// A new application, in `draft`.
#[derive(Debug, Clone, Copy)]
pub struct NewApplication<'a> {
    /// The type applied for.
    pub cert_type: CertType,
    /// Counter or online.
    pub channel: Channel,
    /// The counter's site.
    pub site: Option<Site>,
    /// The checked applicant data (JSON).
    pub applicant_json: &'a str,
    /// The certificate it renews.
    pub renewal_of: Option<&'a str>,
    /// Who made it (operator or account).
    pub created_by: &'a str,
    /// When (RFC 3339).
    pub at: &'a str,
}

/// Inserts an application; returns its number.
pub fn insert_application(tx: &Tx<'_>, a: &NewApplication<'_>) -> Result<AppId> {
    tx.insert_id(
        "INSERT INTO applications (cert_type, state, channel, site, applicant_json, renewal_of, created_by, \
         created_at, updated_at) VALUES (?1, 'draft', ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            a.cert_type.key(),
            a.channel.as_str(),
            a.site.map(Site::as_str),
            a.applicant_json,
            a.renewal_of,
            a.created_by,
            a.at
        ],
    )
    .map(AppId)
    .map_err(StoreError::db("insert application"))
}

/// Records who submitted application `id`.
pub fn set_submitted_by(tx: &Tx<'_>, id: AppId, operator: &str) -> Result<()> {
    update_one(
        tx,
        "UPDATE applications SET submitted_by = ?2 WHERE id = ?1",
        params![id.0, operator],
        "record submitter",
    )
}

/// Records the reviewer of application `id` and, for a rejection, the reason.
pub fn set_reviewed(tx: &Tx<'_>, id: AppId, operator: &str, reason: Option<&str>) -> Result<()> {
    update_one(
        tx,
        "UPDATE applications SET reviewed_by = ?2, rejection_reason = ?3 WHERE id = ?1",
        params![id.0, operator, reason],
        "record review",
    )
}

/// Records how application `id`'s USBKEY goes to the applicant.
pub fn set_delivery(tx: &Tx<'_>, id: AppId, delivery: &Delivery) -> Result<()> {
    match delivery {
        Delivery::Mail {
            recipient,
            phone,
            address,
            tracking_no,
        } => update_one(
            tx,
            "UPDATE applications SET delivery_method = 'mail', recipient = ?2, phone = ?3, address = ?4, \
             tracking_no = ?5 WHERE id = ?1",
            params![id.0, recipient, phone, address, tracking_no],
            "record delivery",
        ),
        Delivery::Pickup { site, .. } => update_one(
            tx,
            "UPDATE applications SET delivery_method = 'pickup', pickup_site = ?2 WHERE id = ?1",
            params![id.0, site.as_str()],
            "record delivery",
        ),
    }
}

/// Records that application `id`'s USBKEY was collected at `at`.
pub fn set_collected(tx: &Tx<'_>, id: AppId, at: &str) -> Result<()> {
    update_one(
        tx,
        "UPDATE applications SET collected_at = ?2 WHERE id = ?1",
        params![id.0, at],
        "record collection",
    )
}

/// Records the USBKEY application `id` was issued onto.
pub fn set_token(tx: &Tx<'_>, id: AppId, label: &str, serial: &str) -> Result<()> {
    update_one(
        tx,
        "UPDATE applications SET token_label = ?2, token_serial = ?3 WHERE id = ?1",
        params![id.0, label, serial],
        "record USBKEY",
    )
}

/// An UPDATE of one application row: refused when there is no such row.
fn update_one(tx: &Tx<'_>, sql: &str, p: crate::db::Params<'_>, op: &'static str) -> Result<()> {
    let n = tx.execute(sql, p).map_err(StoreError::db(op))?;
    if n != 1 {
        return Err(StoreError::refuse(
            Rule::UnknownApplication,
            format!("{op}: no such application"),
        ));
    }
    Ok(())
}

/// A material file of an application (its content is in the home, by SHA-256).
#[derive(Debug, Clone, Copy)]
pub struct NewMaterial<'a> {
    /// The application.
    pub application: AppId,
    /// The policy's material kind.
    pub kind: &'a str,
    /// SHA-256 (hex) of the content.
    pub sha256: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// The sniffed media type.
    pub media_type: &'a str,
    /// The file name given.
    pub file_name: &'a str,
    /// Who added it.
    pub operator: &'a str,
    /// When (RFC 3339).
    pub at: &'a str,
}

/// The material of application `id` of `kind` with this content, if it is there already.
pub fn find_material(conn: &Db, id: AppId, kind: &str, sha256: &str) -> Result<Option<i64>> {
    conn.query_opt(
        "SELECT id FROM materials WHERE application_id = ?1 AND kind = ?2 AND sha256 = ?3",
        params![id.0, kind, sha256],
        |r| r.get(0),
    )
    .map_err(StoreError::db("material lookup"))
}

/// Inserts a material row; returns its id.
pub fn insert_material(tx: &Tx<'_>, m: &NewMaterial<'_>) -> Result<i64> {
    let size = i64::try_from(m.size).map_err(|_| {
        StoreError::refuse_on(
            Rule::FileTooLarge,
            "file",
            format!("{} bytes do not fit the database", m.size),
        )
    })?;
    tx.insert_id(
        "INSERT INTO materials (application_id, kind, sha256, size, media_type, file_name, operator, added_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            m.application.0,
            m.kind,
            m.sha256,
            size,
            m.media_type,
            m.file_name,
            m.operator,
            m.at
        ],
    )
    .map_err(StoreError::db("insert material"))
}

/// A payment taken for an application.
#[derive(Debug, Clone, Copy)]
pub struct NewPayment<'a> {
    /// The application.
    pub application: AppId,
    /// The certificate it renews (a renewal's payment).
    pub renewal_of: Option<&'a str>,
    /// `first` or `annual`.
    pub business: &'a str,
    /// The type.
    pub cert_type: CertType,
    /// Amount in fen.
    pub amount_fen: u64,
    /// Payment method (kebab-case).
    pub method: &'a str,
    /// The payment's reference.
    pub reference: Option<&'a str>,
    /// Who took it.
    pub operator: &'a str,
    /// When (RFC 3339).
    pub at: &'a str,
}

/// Inserts a payment order; returns its id.
pub fn insert_payment(tx: &Tx<'_>, p: &NewPayment<'_>) -> Result<i64> {
    tx.insert_id(
        "INSERT INTO orders (application_id, cert_serial, business, cert_type, amount_fen, method, \
         reference, operator, paid_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            p.application.0,
            p.renewal_of,
            p.business,
            p.cert_type.key(),
            fen(p.amount_fen)?,
            p.method,
            p.reference,
            p.operator,
            p.at
        ],
    )
    .map_err(StoreError::db("insert order"))
}

/// A refund of an order of an application.
#[derive(Debug, Clone, Copy)]
pub struct NewRefund<'a> {
    /// The application.
    pub application: AppId,
    /// The type.
    pub cert_type: CertType,
    /// Amount in fen (the order's).
    pub amount_fen: u64,
    /// How it was refunded (kebab-case).
    pub method: &'a str,
    /// The refund's reference.
    pub reference: Option<&'a str>,
    /// Who refunded.
    pub operator: &'a str,
    /// When (RFC 3339).
    pub at: &'a str,
    /// The order refunded.
    pub refund_of: i64,
}

/// Inserts a refund order; returns its id.
pub fn insert_refund(tx: &Tx<'_>, r: &NewRefund<'_>) -> Result<i64> {
    tx.insert_id(
        "INSERT INTO orders (application_id, cert_serial, business, cert_type, amount_fen, method, \
         reference, operator, paid_at, refund_of) VALUES (?1, NULL, 'refund', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            r.application.0,
            r.cert_type.key(),
            fen(r.amount_fen)?,
            r.method,
            r.reference,
            r.operator,
            r.at,
            r.refund_of
        ],
    )
    .map_err(StoreError::db("record refund"))
}

/// One queued SMS.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    /// Row id.
    pub id: i64,
    /// When queued.
    pub created_at: String,
    /// Recipient mobile.
    pub mobile: String,
    /// Message text.
    pub text: String,
    /// `approved`, `rejected`, `paid`, `mailed`, `ready-for-pickup`, `expiry`.
    pub kind: String,
    /// The application concerned.
    pub application_id: Option<AppId>,
    /// The certificate concerned.
    pub cert_serial: Option<String>,
}

/// A message to queue.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// When (RFC 3339).
    pub at: &'a str,
    /// Recipient mobile.
    pub mobile: &'a str,
    /// Text.
    pub text: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The application concerned.
    pub application: Option<AppId>,
    /// The certificate concerned.
    pub cert_serial: Option<&'a str>,
}

/// Queues one message; returns its id.
pub fn enqueue(conn: &Db, m: &NewMessage<'_>) -> Result<i64> {
    conn.insert_id(
        "INSERT INTO outbox (created_at, mobile, text, kind, application_id, cert_serial) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            m.at,
            m.mobile,
            m.text,
            m.kind,
            m.application.map(|a| a.0),
            m.cert_serial
        ],
    )
    .map_err(StoreError::db("queue message"))
}

/// Every queued message, oldest first.
pub fn outbox(conn: &Db) -> Result<Vec<OutboxEntry>> {
    conn.query_vec(
        "SELECT id, created_at, mobile, text, kind, application_id, cert_serial FROM outbox ORDER BY id",
        params![],
        |r| {
            Ok(OutboxEntry {
                id: r.get(0)?,
                created_at: r.get(1)?,
                mobile: r.get(2)?,
                text: r.get(3)?,
                kind: r.get(4)?,
                application_id: r.get::<Option<i64>>(5)?.map(AppId),
                cert_serial: r.get(6)?,
            })
        },
    )
    .map_err(StoreError::db("list outbox"))
}

/// Records the expiry reminder of certificate `serial` for a window of `window_days`, sent as
/// outbox message `outbox_id`.
pub fn insert_reminder(
    tx: &Tx<'_>,
    serial: &str,
    window_days: i64,
    not_after: &str,
    outbox_id: i64,
    at: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO reminders (cert_serial, window_days, not_after, outbox_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![serial, window_days, not_after, outbox_id, at],
    )
    .map(|_| ())
    .map_err(StoreError::db("record reminder"))
}

impl crate::Store {
    /// The material of application `id` of `kind` with this content, if it is there already.
    pub fn material_of(&self, id: AppId, kind: &str, sha256: &str) -> Result<Option<i64>> {
        find_material(&self.conn, id, kind, sha256)
    }

    /// Every queued message, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        outbox(&self.conn)
    }
}
