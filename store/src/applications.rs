//! The counter workflow's SQL: rows of `applications`, `application_events`, `materials`,
//! `orders` and the SMS `outbox`, read and written.

use hljca_rules::Rule;
use std::collections::BTreeMap;

use crate::db::{Db, Row, params};
use hljca_policies::CertType;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::vocab::{AppId, AppState, Channel, Site};

/// How the USBKEY goes to the applicant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Delivery {
    /// Sent by post.
    Mail {
        /// Who receives it.
        recipient: String,
        /// The recipient's mobile.
        phone: String,
        /// Postal address.
        address: String,
        /// The carrier's tracking number.
        tracking_no: String,
    },
    /// Collected in person at a site.
    Pickup {
        /// The site.
        site: Site,
        /// Its address.
        address: String,
    },
}

/// One application.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    /// Its number.
    pub id: AppId,
    /// The certificate type applied for.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// Where it is in the workflow.
    pub state: AppState,
    /// Counter or online.
    pub channel: Channel,
    /// The counter's site.
    pub site: Option<Site>,
    /// The applicant data, validated and normalised by the policy.
    pub applicant: BTreeMap<String, String>,
    /// For a renewal: the serial of the certificate renewed.
    pub renewal_of: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Who submitted it.
    pub submitted_by: Option<String>,
    /// Who approved or rejected it.
    pub reviewed_by: Option<String>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// Label of the USBKEY handed out.
    pub token_label: Option<String>,
    /// Serial of the USBKEY handed out.
    pub token_serial: Option<String>,
    /// How the USBKEY goes to the applicant, once arranged.
    pub delivery: Option<Delivery>,
    /// When the applicant received it.
    pub collected_at: Option<String>,
}

impl Application {
    /// The commands allowed next; once the delivery is arranged, only `deliver --collected`.
    pub fn next_steps(&self) -> Vec<&'static str> {
        let all = crate::vocab::next_steps(self.state);
        if self.delivery.is_some() {
            all.into_iter()
                .filter(|c| *c != crate::vocab::AppEventKind::Dispatch.command())
                .collect()
        } else {
            all
        }
    }

    /// `first` or `renewal`, as in `orders.business`.
    pub fn business(&self) -> &'static str {
        if self.renewal_of.is_some() {
            "renewal"
        } else {
            "first"
        }
    }
}

/// The columns of `applications` that [`Application`] is read from, in its order.
pub const APP_COLUMNS: &str = "id, cert_type, state, channel, site, applicant_json, renewal_of, created_by, \
    created_at, updated_at, submitted_by, reviewed_by, rejection_reason, token_label, token_serial, delivery_method, \
    recipient, phone, address, tracking_no, pickup_site, collected_at";

fn bad(index: usize, reason: String) -> crate::db::DbError {
    crate::db::DbError::Column { index, reason }
}

fn app_from_row(r: &Row<'_>) -> crate::db::DbResult<Application> {
    let cert_type: String = r.get(1)?;
    let state: String = r.get(2)?;
    let channel: String = r.get(3)?;
    let site: Option<String> = r.get(4)?;
    let applicant: String = r.get(5)?;
    let method: Option<String> = r.get(15)?;
    let pickup: Option<String> = r.get(20)?;
    let delivery = match method.as_deref() {
        Some("mail") => Some(Delivery::Mail {
            recipient: r.get::<Option<String>>(16)?.unwrap_or_default(),
            phone: r.get::<Option<String>>(17)?.unwrap_or_default(),
            address: r.get::<Option<String>>(18)?.unwrap_or_default(),
            tracking_no: r.get::<Option<String>>(19)?.unwrap_or_default(),
        }),
        Some("pickup") => {
            let site: Site = pickup
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|e| bad(20, e))?;
            Some(Delivery::Pickup {
                site,
                address: site.address().to_owned(),
            })
        }
        _ => None,
    };
    Ok(Application {
        id: AppId(r.get(0)?),
        cert_type: cert_type.parse().map_err(|e| bad(1, format!("{e}")))?,
        state: state.parse().map_err(|e| bad(2, e))?,
        channel: channel.parse().map_err(|e| bad(3, e))?,
        site: site
            .map(|s| s.parse::<Site>())
            .transpose()
            .map_err(|e| bad(4, e))?,
        applicant: serde_json::from_str(&applicant).map_err(|e| bad(5, e.to_string()))?,
        renewal_of: r.get(6)?,
        created_by: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        submitted_by: r.get(10)?,
        reviewed_by: r.get(11)?,
        rejection_reason: r.get(12)?,
        token_label: r.get(13)?,
        token_serial: r.get(14)?,
        delivery,
        collected_at: r.get(21)?,
    })
}

/// One application by number.
pub fn get(conn: &Db, id: AppId) -> Result<Option<Application>> {
    conn.query_opt(
        &format!("SELECT {APP_COLUMNS} FROM applications WHERE id = ?1"),
        params![id.0],
        app_from_row,
    )
    .map_err(StoreError::db("application lookup"))
}

/// Applications, newest first, optionally in one state.
pub fn list(conn: &Db, state: Option<AppState>) -> Result<Vec<Application>> {
    conn.query_vec(
        &format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE CAST(?1 AS TEXT) IS NULL OR state = ?1 ORDER BY id DESC"
        ),
        params![state.map(AppState::as_str)],
        app_from_row,
    )
    .map_err(StoreError::db("list applications"))
}

/// How many applications are in each state (one aggregate over the `state` index).
pub fn count_by_state(conn: &Db) -> Result<Vec<(String, u64)>> {
    conn.query_vec(
        "SELECT state, count(*) FROM applications GROUP BY state",
        params![],
        |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?.max(0) as u64)),
    )
    .map_err(StoreError::db("count applications"))
}

/// One recorded step.
#[derive(Debug, Clone, Serialize)]
pub struct AppEvent {
    /// `apply`, `submit`, `approve`, ...
    pub event: String,
    /// State before (none for `apply`).
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// Who.
    pub operator: String,
    /// When (RFC 3339).
    pub at: String,
    /// Details (JSON).
    pub details: serde_json::Value,
}

/// Appends an event row (inside the caller's transaction).
pub fn add_event(
    conn: &Db,
    id: AppId,
    event: &str,
    (from, to): (Option<AppState>, AppState),
    operator: &str,
    at: &str,
    details: &serde_json::Value,
) -> Result<()> {
    conn.execute(
        "INSERT INTO application_events (application_id, event, from_state, to_state, operator, at, details) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id.0,
            event,
            from.map(AppState::as_str),
            to.as_str(),
            operator,
            at,
            details.to_string()
        ],
    )
    .map_err(StoreError::db("record application event"))?;
    Ok(())
}

/// Moves the state, refusing when another command changed it meanwhile.
pub fn set_state(conn: &Db, id: AppId, from: AppState, to: AppState, at: &str) -> Result<()> {
    let n = conn
        .execute(
            "UPDATE applications SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2",
            params![id.0, from.as_str(), to.as_str(), at],
        )
        .map_err(StoreError::db("update application state"))?;
    if n != 1 {
        return Err(StoreError::refuse(
            Rule::ApplicationChanged,
            format!(
                "application {} is no longer {from}: another command changed it meanwhile; look at it again",
                id.0
            ),
        ));
    }
    Ok(())
}

/// The events of one application, oldest first.
pub fn events(conn: &Db, id: AppId) -> Result<Vec<AppEvent>> {
    conn.query_vec(
        "SELECT event, from_state, to_state, operator, at, details FROM application_events \
             WHERE application_id = ?1 ORDER BY id",
        params![id.0],
        |r| {
            let details: String = r.get(5)?;
            Ok(AppEvent {
                event: r.get(0)?,
                from_state: r.get(1)?,
                to_state: r.get(2)?,
                operator: r.get(3)?,
                at: r.get(4)?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            })
        },
    )
    .map_err(StoreError::db("list application events"))
}

/// One material handed in.
#[derive(Debug, Clone, Serialize)]
pub struct MaterialRecord {
    /// Row id.
    pub id: i64,
    /// The application.
    pub application_id: AppId,
    /// The policy's material kind.
    pub kind: String,
    /// SHA-256 of the content (hex); the file is `<home>/materials/<sha256>`.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Detected MIME type.
    pub media_type: String,
    /// The file's original name.
    pub file_name: String,
    /// Who added it.
    pub operator: String,
    /// When.
    pub added_at: String,
}

/// The materials of one application, oldest first.
pub fn materials(conn: &Db, id: AppId) -> Result<Vec<MaterialRecord>> {
    conn.query_vec(
        "SELECT id, application_id, kind, sha256, size, media_type, file_name, operator, added_at \
             FROM materials WHERE application_id = ?1 ORDER BY id",
        params![id.0],
        |r| {
            Ok(MaterialRecord {
                id: r.get(0)?,
                application_id: AppId(r.get(1)?),
                kind: r.get(2)?,
                sha256: r.get(3)?,
                size: r.get(4)?,
                media_type: r.get(5)?,
                file_name: r.get(6)?,
                operator: r.get(7)?,
                added_at: r.get(8)?,
            })
        },
    )
    .map_err(StoreError::db("list materials"))
}

/// One payment.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// Order number.
    pub id: i64,
    /// The application paid for, if any.
    pub application_id: Option<AppId>,
    /// The certificate concerned (renewal, revocation), if any.
    pub cert_serial: Option<String>,
    /// `first`, `renewal`, `revocation` or `refund`.
    pub business: String,
    /// Certificate type key.
    #[serde(rename = "type")]
    pub cert_type: String,
    /// Amount in fen.
    pub amount_fen: u64,
    /// How it was paid.
    pub method: String,
    /// Payment reference (QR transaction, receipt number).
    pub reference: Option<String>,
    /// Who took the payment.
    pub operator: String,
    /// When.
    pub paid_at: String,
    /// For a refund: the order paid back.
    pub refund_of: Option<i64>,
}

/// Orders, oldest first; only those of `app` when given.
pub fn orders(conn: &Db, app: Option<AppId>) -> Result<Vec<Order>> {
    conn
        .query_vec(
            "SELECT id, application_id, cert_serial, business, cert_type, amount_fen, method, reference, \
             operator, paid_at, refund_of FROM orders WHERE CAST(?1 AS BIGINT) IS NULL OR application_id = ?1 ORDER BY id",
        params![app.map(|a| a.0)], |r| {
            Ok(Order {
                id: r.get(0)?,
                application_id: r.get::<Option<i64>>(1)?.map(AppId),
                cert_serial: r.get(2)?,
                business: r.get(3)?,
                cert_type: r.get(4)?,
                amount_fen: r.get(5)?,
                method: r.get(6)?,
                reference: r.get(7)?,
                operator: r.get(8)?,
                paid_at: r.get(9)?,
                refund_of: r.get(10)?,
            })
        })
        .map_err(StoreError::db("list orders"))
}
