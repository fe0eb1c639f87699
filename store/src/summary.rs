//! Lists and counts of certificates in SQL: the filter as one query (paged, on the indexes),
//! a light row for lists (no DER, seal or applicant data), and the counts `status` shows as
//! aggregates with expiry judged in SQL by the CA's clock.

use crate::db::{DbError, DbResult, Row, ToSql, params};
use hljca_rules::Rule;
use serde::Serialize;
use time::OffsetDateTime;

use hljca_policies::CertType;

use super::Store;
use super::certs::{CertFilter, CertRole, CertStatus};
use crate::error::{Result, StoreError};
use crate::time_fmt::{parse_ts, ts};
use crate::vocab::Reason;

/// A certificate as lists show it: everything but the DER, the seal and the applicant data.
#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    /// Serial, hex.
    pub serial: String,
    /// Certificate type: a holder's certificates have one; the CA's own working certificates
    /// (operator, OCSP signer, TLS, seal maker) have none (`null`), their role says what they are.
    #[serde(rename = "cert_type")]
    pub cert_type: Option<CertType>,
    /// Identity or seal.
    pub role: CertRole,
    /// For a seal certificate: its identity certificate.
    pub identity_serial: Option<String>,
    /// Subject DN.
    pub subject: String,
    /// Organisation identifier.
    pub org_id: Option<String>,
    /// Token label.
    pub token_label: String,
    /// Token serial.
    pub token_serial: String,
    /// Key id (hex).
    pub key_id: String,
    /// Status (expired when issued and past notAfter at the CA's clock).
    pub status: CertStatus,
    /// Validity start.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// Validity end.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// RFC 5280 reason.
    pub revocation_reason: Option<Reason>,
    /// Row creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The caller's id for the issuance (batch row), when any.
    pub external_id: Option<String>,
    /// The application it fulfils, when any.
    pub application_id: Option<i64>,
    /// The issuance that made it.
    pub issuance_id: Option<i64>,
}

/// The columns of a summary, in the order `summary_from_row` reads them (`certs::COLUMNS` starts
/// with the same ones).
const SUMMARY_COLUMNS: &str = "serial, cert_type, role, identity_serial, subject, org_id, token_label, \
    token_serial, key_id, status, not_before, not_after, revoked_at, revocation_reason, created_at, \
    external_id, application_id, issuance_id";

impl CertSummary {
    /// The holder certificate type; a refusal naming the serial for the CA's own working
    /// certificates (operator, OCSP signer, TLS, seal maker), which belong to no policy.
    pub fn holder_type(&self) -> crate::error::Result<CertType> {
        self.cert_type.ok_or_else(|| {
            crate::error::StoreError::refuse_on(Rule::CaCertificate, "serial", format!(
                "certificate {} is the CA's {} certificate, not a holder's: the counter's commands \
                 do not apply to it",
                self.serial,
                self.role.as_str()
            ))
        })
    }
}

fn bad_column(index: usize, reason: String) -> DbError {
    DbError::Column { index, reason }
}

pub(super) fn summary_from_row(r: &Row<'_>) -> DbResult<CertSummary> {
    let opt_ts = |s: Option<String>| s.and_then(|s| parse_ts(&s));
    let reason: Option<String> = r.get(13)?;
    Ok(CertSummary {
        serial: r.get(0)?,
        cert_type: match r.get::<String>(1)?.as_str() {
            t if CertRole::parse(t).is_some_and(|r| !r.is_holder()) => None,
            t => Some(
                t.parse()
                    .map_err(|e: hljca_policies::PolicyError| bad_column(1, e.to_string()))?,
            ),
        },
        role: {
            let role: String = r.get(2)?;
            CertRole::parse(&role)
                .ok_or_else(|| bad_column(2, format!("unknown certificate role `{role}`")))?
        },
        identity_serial: r.get(3)?,
        subject: r.get(4)?,
        org_id: r.get(5)?,
        token_label: r.get(6)?,
        token_serial: r.get(7)?,
        key_id: r.get(8)?,
        status: CertStatus::parse(&r.get::<String>(9)?).unwrap_or(CertStatus::Void),
        not_before: opt_ts(r.get(10)?),
        not_after: opt_ts(r.get(11)?),
        revoked_at: opt_ts(r.get(12)?),
        revocation_reason: reason
            .map(|x| x.parse::<Reason>().map_err(|e| bad_column(13, e)))
            .transpose()?,
        created_at: parse_ts(&r.get::<String>(14)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        external_id: r.get(15)?,
        application_id: r.get(16)?,
        issuance_id: r.get(17)?,
    })
}

/// The query for filter `f` selecting `columns` (newest first; soonest expiry first for an
/// expiring filter) on `backend`, with its typed arguments, built by sea-query. The last column
/// says whether an issued row is past notAfter at the instant expiry is judged at (it then
/// reads as `expired`).
pub(super) fn filter_sql(
    f: &CertFilter,
    columns: &'static str,
    backend: crate::db::Backend,
) -> Result<(String, Vec<crate::db::Value>)> {
    use sea_query::{Cond, Expr, ExprTrait, Order, Query};
    let now = ts(f.now.unwrap_or_else(OffsetDateTime::now_utc));
    let issued = || Expr::col("status").eq("issued");
    let mut q = Query::select();
    q.expr(Expr::cust(columns))
        .expr(issued().and(Expr::col("not_after").lte(now.clone())))
        .from("certificates");
    if let Some(t) = &f.cert_type {
        q.and_where(Expr::col("cert_type").eq(t.as_str()));
    }
    match f.status {
        Some(CertStatus::Issued) => {
            q.and_where(issued()).cond_where(
                Cond::any()
                    .add(Expr::col("not_after").is_null())
                    .add(Expr::col("not_after").gt(now.clone())),
            );
        }
        Some(CertStatus::Expired) => {
            q.and_where(issued())
                .and_where(Expr::col("not_after").lte(now.clone()));
        }
        Some(st) => {
            q.and_where(Expr::col("status").eq(st.as_str()));
        }
        None => {}
    }
    if f.status.is_none() && !f.include_unissued {
        q.and_where(Expr::col("status").is_not_in(["pending", "void"]));
    }
    if let Some(a) = f.application_id {
        q.and_where(Expr::col("application_id").eq(a));
    }
    if let Some(t) = f.expiring_before {
        q.and_where(issued())
            .and_where(Expr::col("not_after").gt(now.clone()))
            .and_where(Expr::col("not_after").lte(ts(t)))
            .and_where(Expr::col("role").is_in(super::certs::HOLDER_ROLE_NAMES));
    }
    // An expiring list runs soonest first, straight along the (status, not_after) index, so a
    // page stops after `limit` rows however many expire; every other list newest first.
    let expiring = f.expiring_before.is_some();
    if let Some(after) = &f.after {
        let serial = super::normalize_serial(after);
        if expiring {
            let mut last = Query::select();
            last.columns(["not_after", "id"])
                .from("certificates")
                .and_where(Expr::col("serial").eq(serial.clone()));
            q.and_where(Expr::tuple([Expr::col("not_after"), Expr::col("id")]).gt(last.take()));
        } else {
            q.and_where(
                Expr::col("id").lt(Query::select()
                    .column("id")
                    .from("certificates")
                    .and_where(Expr::col("serial").eq(serial))
                    .take()),
            );
        }
    }
    if expiring {
        q.order_by("not_after", Order::Asc)
            .order_by("id", Order::Asc);
    } else {
        q.order_by("id", Order::Desc);
    }
    if let Some(n) = f.limit {
        q.limit(n);
    }
    let (sql, values) = match backend {
        crate::db::Backend::Sqlite => q.build(sea_query::SqliteQueryBuilder),
        crate::db::Backend::Postgres => q.build(sea_query::PostgresQueryBuilder),
    };
    let values = values
        .into_iter()
        .map(crate::db::Value::try_from)
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|e| StoreError::refuse(hljca_rules::Rule::Internal, e))?;
    Ok((sql, values))
}

/// Counts by status of the holders' certificates (identity, seal, encryption; not the CA's own
/// working certificates), expiry judged at the CA's clock.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CertCounts {
    /// Issued and not expired.
    pub issued: u64,
    /// Issued and past notAfter.
    pub expired: u64,
    /// Revoked.
    pub revoked: u64,
    /// Superseded by a renewal.
    pub superseded: u64,
    /// Reserved, not yet issued.
    pub pending: u64,
    /// Issued, not expired, and expiring within the window asked for.
    pub expiring: u64,
}

impl Store {
    /// Certificates matching `f` (paged by `f.limit` and `f.after`), newest first, without
    /// DER, seal or applicant data.
    pub fn cert_summaries(&self, f: &CertFilter) -> Result<Vec<CertSummary>> {
        let (sql, args) = filter_sql(f, SUMMARY_COLUMNS, self.conn.backend())?;
        let args: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
        self.conn
            .query_vec(&sql, &args, |r| {
                let mut s = summary_from_row(r)?;
                if r.get::<Option<bool>>(18)?.unwrap_or(false) {
                    s.status = CertStatus::Expired;
                }
                Ok(s)
            })
            .map_err(StoreError::db("list certificates"))
    }

    /// How many certificates there are by status as of `now`, and how many of the issued ones
    /// expire before `soon` (one aggregate query over the covering `(status, not_after)` index).
    pub fn cert_counts(&self, now: OffsetDateTime, soon: OffsetDateTime) -> Result<CertCounts> {
        let rows: Vec<(String, i64, i64, i64)> = self
            .conn
            .query_vec(
                &format!(
                    "SELECT status, count(*), count(CASE WHEN status = 'issued' AND not_after <= ?1 THEN 1 END), \
                     count(CASE WHEN status = 'issued' AND not_after > ?1 AND not_after <= ?2 THEN 1 END) \
                     FROM certificates WHERE {} GROUP BY status",
                    super::certs::HOLDER_ROLES
                ),
                params![ts(now), ts(soon)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(StoreError::db("certificate counts"))?;
        let mut c = CertCounts::default();
        for (status, n, expired, expiring) in rows {
            let (n, expired) = (n.max(0) as u64, expired.max(0) as u64);
            match status.as_str() {
                "issued" => {
                    c.issued = n - expired;
                    c.expired = expired;
                    c.expiring = expiring.max(0) as u64;
                }
                "revoked" => c.revoked = n,
                "superseded" => c.superseded = n,
                "pending" => c.pending = n,
                _ => {}
            }
        }
        Ok(c)
    }
}

/// An issued identity certificate due for an expiry reminder, with the applicant data the
/// reminder's mobile number comes from (no DER).
#[derive(Debug, Clone)]
pub struct DueReminder {
    /// The `summary` column.
    pub summary: CertSummary,
    /// The `applicant_json` column.
    pub applicant_json: String,
}

/// The condition shared by [`due_reminders`] and [`reminded_count`]: issued identity
/// certificates expiring in `(?1, ?2]`.
const DUE: &str =
    "c.status = 'issued' AND c.role = 'identity' AND c.not_after > ?1 AND c.not_after <= ?2";

/// One page (`limit` rows, soonest expiry first, after the certificate `after`) of the
/// certificates expiring in `(now, before]` not yet reminded for `window_days`.
pub fn due_reminders(
    conn: &crate::Db,
    (now, before): (OffsetDateTime, OffsetDateTime),
    window_days: i64,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<DueReminder>> {
    conn.query_vec(
        &format!(
            "SELECT {SUMMARY_COLUMNS}, applicant_json FROM certificates c WHERE {DUE} \
             AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.cert_serial = c.serial AND r.window_days = ?3) \
             AND (CAST(?4 AS TEXT) IS NULL OR (c.not_after, c.id) > (SELECT p.not_after, p.id FROM certificates p WHERE p.serial = ?4)) \
             ORDER BY c.not_after, c.id LIMIT ?5"
        ),
        params![ts(now), ts(before), window_days, after, limit],
        |r| {
            Ok(DueReminder {
                summary: summary_from_row(r)?,
                applicant_json: r.get(18)?,
            })
        },
    )
    .map_err(StoreError::db("certificates due for reminders"))
}

/// How many certificates expiring in `(now, before]` were already reminded for `window_days`.
pub fn reminded_count(
    conn: &crate::Db,
    (now, before): (OffsetDateTime, OffsetDateTime),
    window_days: i64,
) -> Result<u64> {
    conn.query_row(
        &format!(
            "SELECT count(*) FROM certificates c JOIN reminders r \
             ON r.cert_serial = c.serial AND r.window_days = ?3 WHERE {DUE}"
        ),
        params![ts(now), ts(before), window_days],
        |r| r.get::<i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(StoreError::db("reminded certificates"))
}
