//! Issuance rows: one per issuance (its certificates point at it), with its stage and lease.
//! The engine (`crate::engine`) moves the stage forward; only `recover` reads stages back.

use crate::db::{Db, Row, Tx, params};
use hljca_rules::Rule;
use time::OffsetDateTime;

use super::Store;
use super::certs::{COLUMNS, CertRecord, from_row};
use crate::error::{Result, StoreError};
use crate::time_fmt::{now, ts};

/// How far an issuance got; each stage is durable before the next starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Serials, key ids and the application claimed; nothing on a token yet (keys may be
    /// half-made when a crash comes during generation).
    Reserved,
    /// The key pairs exist on the holder's token.
    Keys,
    /// Certificates (and seal) signed; their DER is in the rows.
    Signed,
    /// Certificates and seal written to the token.
    Written,
    /// Recorded as issued (final).
    Committed,
    /// Abandoned; nothing of it is on a token (final).
    Void,
}

impl Stage {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Reserved => "reserved",
            Stage::Keys => "keys",
            Stage::Signed => "signed",
            Stage::Written => "written",
            Stage::Committed => "committed",
            Stage::Void => "void",
        }
    }
    fn parse(s: &str) -> Stage {
        match s {
            "reserved" => Stage::Reserved,
            "keys" => Stage::Keys,
            "signed" => Stage::Signed,
            "written" => Stage::Written,
            "committed" => Stage::Committed,
            _ => Stage::Void,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the subject key of an issuance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuanceKind {
    /// Generated on the holder's token.
    Token,
    /// From a PKCS#10 request.
    Csr,
}

/// A new issuance.
#[derive(Debug, Clone)]
pub struct NewIssuance<'a> {
    /// Lease id of the process doing it.
    pub lease: &'a str,
    /// `pid@host` of that process.
    pub owner: &'a str,
    /// Token or CSR.
    pub kind: IssuanceKind,
    /// Type key.
    pub cert_type: &'a str,
    /// Holder token label (token kind).
    pub token_label: Option<&'a str>,
    /// Holder token serial (token kind).
    pub token_serial: Option<&'a str>,
    /// The application it fulfils.
    pub application_id: Option<i64>,
    /// The certificate it renews.
    pub renewal_of: Option<&'a str>,
    /// A renewal fee taken with it (fen, method, reference).
    pub fee: Option<(u64, &'a str, Option<&'a str>)>,
    /// Batch row id.
    pub external_id: Option<&'a str>,
    /// Who.
    pub operator: &'a str,
}

/// One issuance row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuanceRow {
    /// Id.
    pub id: i64,
    /// Lease id.
    pub lease: String,
    /// Lease owner.
    pub owner: String,
    /// Stage.
    pub stage: Stage,
    /// Kind.
    pub kind: IssuanceKind,
    /// Type key.
    pub cert_type: String,
    /// Token label.
    pub token_label: Option<String>,
    /// Token serial.
    pub token_serial: Option<String>,
    /// Application.
    pub application_id: Option<i64>,
    /// Renewed certificate.
    pub renewal_of: Option<String>,
    /// Renewal fee in fen.
    pub fee_fen: Option<i64>,
    /// Payment method.
    pub pay_method: Option<String>,
    /// Payment reference.
    pub pay_reference: Option<String>,
    /// Batch external id.
    pub external_id: Option<String>,
    /// Who started it.
    pub operator: String,
}

const ISSUANCE_COLUMNS: &str = "id, lease, owner, stage, kind, cert_type, token_label, token_serial, \
    application_id, renewal_of, fee_fen, pay_method, pay_reference, external_id, operator";

fn issuance_from_row(r: &Row<'_>) -> crate::db::DbResult<IssuanceRow> {
    Ok(IssuanceRow {
        id: r.get(0)?,
        lease: r.get(1)?,
        owner: r.get(2)?,
        stage: Stage::parse(&r.get::<String>(3)?),
        kind: if r.get::<String>(4)? == "csr" {
            IssuanceKind::Csr
        } else {
            IssuanceKind::Token
        },
        cert_type: r.get(5)?,
        token_label: r.get(6)?,
        token_serial: r.get(7)?,
        application_id: r.get(8)?,
        renewal_of: r.get(9)?,
        fee_fen: r.get(10)?,
        pay_method: r.get(11)?,
        pay_reference: r.get(12)?,
        external_id: r.get(13)?,
        operator: r.get(14)?,
    })
}

/// Inserts an issuance at the `reserved` stage; returns its row as inserted.
pub fn insert(tx: &Tx<'_>, n: &NewIssuance<'_>) -> Result<IssuanceRow> {
    let at = ts(now());
    let fee_fen = n
        .fee
        .map(|f| {
            i64::try_from(f.0).map_err(|_| {
                StoreError::refuse(
                    Rule::Internal,
                    format!("a fee of {} fen does not fit the database", f.0),
                )
            })
        })
        .transpose()?;
    let id = tx.insert_id(
        "INSERT INTO issuances (lease, owner, stage, kind, cert_type, token_label, token_serial, application_id, \
         renewal_of, fee_fen, pay_method, pay_reference, external_id, operator, created_at, updated_at, site) \
         VALUES (?1, ?2, 'reserved', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15)",
        params![
            n.lease,
            n.owner,
            if n.kind == IssuanceKind::Csr { "csr" } else { "token" },
            n.cert_type,
            n.token_label,
            n.token_serial,
            n.application_id,
            n.renewal_of,
            fee_fen,
            n.fee.map(|f| f.1),
            n.fee.and_then(|f| f.2),
            n.external_id,
            n.operator,
            at,
            tx.site()
        ],
    )
    .map_err(|e| match e {
        e if e.is_constraint() => {
            StoreError::InProgress(format!(
                "another issuance is already in progress for {}; wait for it, or run `hljca recover` if it crashed",
                match (n.application_id, n.renewal_of) {
                    (Some(a), _) => format!("application {a}"),
                    (None, Some(s)) => format!("the renewal of {s}"),
                    _ => "this request".into(),
                }
            ))
        }
        e => StoreError::Db { op: "insert issuance", source: e },
    })?;
    Ok(IssuanceRow {
        id,
        lease: n.lease.to_owned(),
        owner: n.owner.to_owned(),
        stage: Stage::Reserved,
        kind: n.kind,
        cert_type: n.cert_type.to_owned(),
        token_label: n.token_label.map(str::to_owned),
        token_serial: n.token_serial.map(str::to_owned),
        application_id: n.application_id,
        renewal_of: n.renewal_of.map(str::to_owned),
        fee_fen,
        pay_method: n.fee.map(|f| f.1.to_owned()),
        pay_reference: n.fee.and_then(|f| f.2.map(str::to_owned)),
        external_id: n.external_id.map(str::to_owned),
        operator: n.operator.to_owned(),
    })
}

/// Moves issuance `id` from `from` to `to`; refuses when it is no longer at `from` (someone
/// else — `recover` — took it over).
pub fn set_stage(tx: &Tx<'_>, id: i64, from: Stage, to: Stage) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE issuances SET stage = ?3, updated_at = ?4 WHERE id = ?1 AND stage = ?2",
            params![id, from.as_str(), to.as_str(), ts(now())],
        )
        .map_err(StoreError::db("issuance stage"))?;
    if n != 1 {
        return Err(StoreError::InProgress(format!(
            "issuance {id} is no longer at stage {from}: another process changed it"
        )));
    }
    Ok(())
}

/// Records the subject public key (SPKI bit string content) of a pending row.
pub fn record_key(tx: &Tx<'_>, serial: &str, spki: &[u8]) -> Result<()> {
    super::exec(
        tx,
        "UPDATE certificates SET spki = ?2, updated_at = ?3 WHERE serial = ?1 AND status = 'pending'",
        params![serial, spki, ts(now())],
    )
    .map_err(StoreError::db("record key"))?;
    Ok(())
}

/// Stores the signed DER (and seal) of a pending row, at once, before it goes anywhere.
pub fn record_signed(
    tx: &Tx<'_>,
    serial: &str,
    der: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    seal: Option<&[u8]>,
) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE certificates SET der = ?2, not_before = ?3, not_after = ?4, seal = ?5, updated_at = ?6 \
             WHERE serial = ?1 AND status = 'pending'",
            params![serial, der, ts(not_before), ts(not_after), seal, ts(now())],
        )
        .map_err(StoreError::db("record signed certificate"))?;
    if n != 1 {
        return Err(StoreError::InProgress(format!(
            "certificate {serial} is no longer pending"
        )));
    }
    Ok(())
}

/// Records the signed DER of a pending row and marks it issued, in one statement (the bulk
/// path, where both are in the one commit transaction).
pub fn record_issued(
    tx: &Tx<'_>,
    serial: &str,
    der: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<()> {
    let n = super::exec(
        tx,
        "UPDATE certificates SET der = ?2, not_before = ?3, not_after = ?4, status = 'issued', updated_at = ?5 \
         WHERE serial = ?1 AND status = 'pending'",
        params![serial, der, ts(not_before), ts(not_after), ts(now())],
    )
    .map_err(StoreError::db("record issued certificate"))?;
    if n != 1 {
        return Err(StoreError::InProgress(format!(
            "certificate {serial} is no longer pending"
        )));
    }
    Ok(())
}

/// Marks a pending row issued (its DER is already stored).
pub fn mark_issued(tx: &Tx<'_>, serial: &str) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE certificates SET status = 'issued', updated_at = ?2 \
             WHERE serial = ?1 AND status = 'pending' AND der IS NOT NULL",
            params![serial, ts(now())],
        )
        .map_err(StoreError::db("mark certificate issued"))?;
    if n != 1 {
        return Err(StoreError::InProgress(format!(
            "certificate {serial} was no longer pending (or has no DER) when it was to be marked issued"
        )));
    }
    Ok(())
}

/// Voids the pending rows of issuance `id` (a signed DER stays on record).
pub fn void_rows(tx: &Tx<'_>, id: i64) -> Result<usize> {
    super::exec(
        tx,
        "UPDATE certificates SET status = 'void', updated_at = ?2 WHERE issuance_id = ?1 AND status = 'pending'",
        params![id, ts(now())],
    )
    .map_err(StoreError::db("void certificates"))
}

/// The renewal part of a commit: the old identity certificate `old` and its issued seal
/// certificates become superseded, the renewal is recorded, and the fee taken with the
/// issuance (if any) becomes an order. Returns the superseded serials.
pub fn supersede_renewed(
    tx: &Tx<'_>,
    iss: &IssuanceRow,
    old: &str,
    new_serial: &str,
    operator: &str,
) -> Result<Vec<String>> {
    let at = ts(now());
    let (old_app, old_type): (Option<i64>, String) = tx
        .query_row(
            "SELECT application_id, cert_type FROM certificates WHERE serial = ?1",
            params![old],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(StoreError::db("renewed certificate"))?;
    let superseded = tx
        .query_vec(
            "SELECT serial FROM certificates WHERE (serial = ?1 OR identity_serial = ?1) AND status = 'issued' \
             ORDER BY role = 'seal', id",
        params![old], |r| r.get::<String>(0))
        .map_err(StoreError::db("renewed certificates"))?;
    if !superseded.iter().any(|s| s == old) {
        return Err(StoreError::BadState {
            serial: old.to_owned(),
            status: "not issued".into(),
            what: "it changed while it was being renewed; the renewal is not recorded".into(),
        });
    }
    for s in &superseded {
        super::exec(
        tx,
            "UPDATE certificates SET status = 'superseded', updated_at = ?2 WHERE serial = ?1 AND status = 'issued'",
            params![s, at],
        )
        .map_err(StoreError::db("supersede"))?;
    }
    super::exec(
        tx,
        "INSERT INTO renewals (old_serial, new_serial, renewed_at, operator) VALUES (?1, ?2, ?3, ?4)",
        params![old, new_serial, at, operator],
    )
    .map_err(StoreError::db("record renewal"))?;
    if let Some(fen) = iss.fee_fen {
        super::exec(
        tx,
            "INSERT INTO orders (application_id, cert_serial, business, cert_type, amount_fen, method, reference, \
             operator, paid_at) VALUES (?1, ?2, 'renewal', ?3, ?4, ?5, ?6, ?7, ?8)",
            params![old_app, old, old_type, fen, iss.pay_method, iss.pay_reference, operator, at],
        )
        .map_err(StoreError::db("record renewal fee"))?;
    }
    Ok(superseded)
}

/// The order of a direct issuance (no application): its first-time fee as taken at the counter,
/// or a zero-amount order with the reason when it was free. Nothing is issued outside the books.
pub fn direct_order(tx: &Tx<'_>, iss: &IssuanceRow, serial: &str, operator: &str) -> Result<()> {
    let Some(fen) = iss.fee_fen else {
        return Ok(());
    };
    super::exec(
        tx,
        "INSERT INTO orders (application_id, cert_serial, business, cert_type, amount_fen, method, reference, \
         operator, paid_at) VALUES (NULL, ?1, 'first', ?2, ?3, ?4, ?5, ?6, ?7)",
        params![serial, iss.cert_type, fen, iss.pay_method, iss.pay_reference, operator, ts(now())],
    )
    .map_err(StoreError::db("record direct issuance fee"))?;
    Ok(())
}

/// The status of certificate `serial`, read inside a transaction.
pub fn status_in(tx: &Tx<'_>, serial: &str) -> Result<String> {
    tx.query_row(
        "SELECT status FROM certificates WHERE serial = ?1",
        params![serial],
        |r| r.get(0),
    )
    .map_err(StoreError::db("certificate status"))
}

/// The issuance `id`.
pub fn get(conn: &Db, id: i64) -> Result<IssuanceRow> {
    conn.query_opt(
        &format!("SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE id = ?1"),
        params![id],
        issuance_from_row,
    )
    .map_err(StoreError::db("issuance lookup"))?
    .ok_or_else(|| StoreError::refuse(Rule::UnknownIssuance, format!("no issuance {id}")))
}

impl Store {
    /// Issuances not yet committed or voided, oldest first.
    pub fn open_issuances(&self) -> Result<Vec<IssuanceRow>> {
        self
            .conn
        .query_vec(&format!(
                "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE stage NOT IN ('committed', 'void') ORDER BY id"
            ), params![], issuance_from_row)
        .map_err(StoreError::db("open issuances"))
    }

    /// The issuance `id`.
    pub fn issuance(&self, id: i64) -> Result<IssuanceRow> {
        get(&self.conn, id)
    }

    /// The certificate rows of issuance `id`, identity first.
    pub fn rows_of_issuance(&self, id: i64) -> Result<Vec<CertRecord>> {
        self
            .conn
        .query_vec(&format!(
                "SELECT {COLUMNS} FROM certificates WHERE issuance_id = ?1 ORDER BY role = 'seal', id"
            ), params![id], from_row)
        .map_err(StoreError::db("certificates of issuance"))
    }
}
