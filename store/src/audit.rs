//! The audit trail: an append-only table whose rows are chained by SHA-256.
//!
//! Row n stores `prev_hash` (row n-1's hash, or 64 zeros) and
//! `hash = SHA-256(prev_hash | seq | at | operator | action | object | details [| site])` — the
//! site only on rows that record one (a CA shared by the sites), so older rows keep their hash.
//! `verify` recomputes the chain, so a changed, deleted or reordered row breaks it.

use crate::audit_log;
use crate::db::{Db, Tx};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::time_fmt::{now, parse_ts, ts};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit row.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Sequence number (1, 2, ...).
    pub seq: i64,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who.
    pub operator: String,
    /// What kind of event (`ca.init`, `cert.issue`, ...).
    pub action: String,
    /// The object (serial, token, CRL number).
    pub object: String,
    /// Details (JSON).
    pub details: String,
    /// Previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
    /// The site that wrote it, when recorded (covered by the hash).
    pub site: Option<String>,
}

fn row_hash(e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let seq = e.seq.to_string();
    let mut parts = vec![
        e.prev_hash.as_str(),
        &seq,
        &e.at,
        &e.operator,
        &e.action,
        &e.object,
        &e.details,
    ];
    if let Some(site) = &e.site {
        parts.push(site);
    }
    for part in parts {
        // Length-prefix each field so no two different rows serialise the same.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends one row, inside the caller's write transaction (`Store::write`, which begins
/// IMMEDIATE, so the head read here cannot change before the commit).
pub fn append(
    conn: &Tx<'_>,
    operator: &str,
    action: &str,
    object: &str,
    details: &serde_json::Value,
) -> Result<()> {
    let last = audit_log::tail(conn)?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_owned()),
    };
    // The log's times never go backwards, even when this machine's clock does (a site whose
    // clock is behind another's, or one set back): a row is never older than the one before.
    let now = now();
    let at = match audit_log::tail_at(conn)?.as_deref().and_then(parse_ts) {
        Some(last) if last > now => ts(last),
        _ => ts(now),
    };
    let details = details.to_string();
    let mut entry = AuditEntry {
        seq,
        at,
        operator: operator.to_owned(),
        action: action.to_owned(),
        object: object.to_owned(),
        details,
        prev_hash: prev,
        hash: String::new(),
        site: conn.site(),
    };
    entry.hash = row_hash(&entry);
    audit_log::insert(conn, &entry)
}

/// All rows in order.
pub fn list(conn: &Db) -> Result<Vec<AuditEntry>> {
    let mut out = Vec::new();
    audit_log::for_each(conn, |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

/// Recomputes the chain; returns the number of rows when intact.
pub fn verify(conn: &Db) -> Result<usize> {
    // Streamed in order: memory stays flat however long the log is.
    let mut prev = GENESIS.to_owned();
    let mut n: i64 = 0;
    audit_log::for_each(conn, |row| {
        let seq = row.seq;
        let expected_seq = n + 1;
        if seq != expected_seq {
            return Err(StoreError::AuditBroken {
                seq,
                reason: format!(
                    "expected sequence number {expected_seq}: a row was deleted or reordered"
                ),
            });
        }
        if row.prev_hash != prev {
            return Err(StoreError::AuditBroken {
                seq,
                reason: "prev_hash does not match the previous row's hash".into(),
            });
        }
        let h = row_hash(&row);
        if h != row.hash {
            return Err(StoreError::AuditBroken {
                seq,
                reason: "content does not match its hash: the row was changed".into(),
            });
        }
        prev = row.hash;
        n += 1;
        Ok(())
    })?;
    Ok(n as usize)
}

/// Checks the business rows against the log: every current row of the bound tables must have
/// the digest the last `state.bind` (or `state.baseline`) row gave it, and no bound row may be
/// missing. Returns the number of rows checked.
pub fn verify_rows(conn: &Db) -> Result<usize> {
    use crate::binding;
    // The last digest each row was bound to, as bytes (a million rows: tens of MB, not
    // hundreds); the log and the current rows are both streamed.
    let mut bound: std::collections::HashMap<String, (i64, Bound)> = Default::default();
    audit_log::for_each_state(conn, |seq, details| {
        let v: serde_json::Value =
            serde_json::from_str(&details).map_err(|e| StoreError::AuditBroken {
                seq,
                reason: format!("details are not JSON: {e}"),
            })?;
        if let Some(map) = v.get("rows").and_then(|r| r.as_object()) {
            for (k, d) in map {
                bound.insert(k.clone(), (seq, Bound::of(d.as_str().unwrap_or_default())));
            }
        }
        Ok(())
    })?;
    let head = audit_log::head_seq(conn)?;
    let mut checked = 0usize;
    binding::for_each_current(conn, |key, digest| {
        checked += 1;
        match bound.remove(&key) {
            Some((_, d)) if d == Bound::of(&digest) => Ok(()),
            Some((seq, _)) => Err(StoreError::AuditBroken {
                seq,
                reason: format!(
                    "row {key} differs from the state audit row {seq} recorded: it was changed outside hljca"
                ),
            }),
            None => Err(StoreError::AuditBroken {
                seq: head,
                reason: format!("row {key} is in no audit row: it was added outside hljca"),
            }),
        }
    })?;
    // What is left was bound but is no longer there: fine only if it was bound as deleted.
    if let Some((key, (seq, _))) = bound
        .into_iter()
        .filter(|(_, (_, d))| *d != Bound::Deleted)
        .min_by_key(|(_, (seq, _))| *seq)
    {
        return Err(StoreError::AuditBroken {
            seq,
            reason: format!(
                "row {key}, recorded by audit row {seq}, is gone: it was deleted outside hljca"
            ),
        });
    }
    Ok(checked)
}

/// A digest a row was bound to.
#[derive(Debug, PartialEq, Eq)]
enum Bound {
    /// SHA-256 of the row.
    Digest([u8; 32]),
    /// The row was deleted by hljca.
    Deleted,
    /// Anything else (never matches a current row).
    Other(String),
}

impl Bound {
    fn of(d: &str) -> Bound {
        if d == crate::binding::DELETED {
            return Bound::Deleted;
        }
        let mut out = [0u8; 32];
        match hex::decode_to_slice(d, &mut out) {
            Ok(()) => Bound::Digest(out),
            Err(_) => Bound::Other(d.to_owned()),
        }
    }
}

/// What an operator's signature on audit row `seq` covers: the row's hash and the operator
/// certificate it is attributed to.
pub fn signed_message(seq: i64, hash: &str, cert_serial: &str) -> String {
    format!("hljca audit row\nseq={seq}\nhash={hash}\noperator_cert={cert_serial}\n")
}

/// Checks the operators' signatures: from the first signed row on, every row must be signed by
/// an enrolled operator's key (re-attributed or altered rows fail); rows before it (the CA's
/// creation and its first operator's enrolment, by the CA key custodian) are unsigned.
/// Returns the number of signed rows.
pub fn verify_signatures(conn: &Db) -> Result<usize> {
    use p256::ecdsa::signature::Verifier;
    let certs = audit_log::operator_certs(conn)?;
    let mut keys: std::collections::HashMap<String, p256::ecdsa::VerifyingKey> = Default::default();
    let first_signed = audit_log::first_signed(conn)?;
    let mut signed = 0;
    audit_log::for_each_signature(conn, |(seq, hash, cert, sig)| {
        let bad = |reason: String| StoreError::AuditBroken { seq, reason };
        let (Some(cert), Some(sig)) = (cert, sig) else {
            if first_signed.is_some_and(|f| seq > f) {
                return Err(bad("the row carries no operator signature".into()));
            }
            return Ok(());
        };
        if !keys.contains_key(&cert) {
            let der = certs.get(&cert).ok_or_else(|| {
                bad(format!(
                    "signed by operator certificate {cert}, which is not enrolled"
                ))
            })?;
            keys.insert(cert.clone(), p256_key(der, "operator certificate")?);
        }
        let key = &keys[&cert];
        let sig = p256::ecdsa::Signature::from_der(&sig)
            .map_err(|_| bad("the operator signature is malformed".into()))?;
        key.verify(signed_message(seq, &hash, &cert).as_bytes(), &sig)
            .map_err(|_| bad(format!(
                "the operator signature does not verify for certificate {cert}: the row was altered or re-attributed"
            )))?;
        signed += 1;
        Ok(())
    })?;
    Ok(signed)
}

/// What an anchor's signature covers.
fn anchor_message(seq: i64, head: &str, at: &str) -> String {
    format!("hljca audit anchor\nseq={seq}\nhead={head}\nat={at}\n")
}

/// Signs the current head of the log (sequence number and hash) with `signer` (the seal
/// maker) and stores the anchor. Rows can be appended later; a log cut below an anchor no
/// longer matches it. Returns the anchored sequence number (0 for an empty log).
pub fn anchor(conn: &Tx<'_>, signer: &impl rcgen::SigningKey) -> Result<i64> {
    let Some((seq, head)) = audit_log::tail(conn)? else {
        return Ok(0);
    };
    let at = ts(now());
    let signature = signer
        .sign(anchor_message(seq, &head, &at).as_bytes())
        .map_err(StoreError::cert("audit anchor"))?;
    audit_log::insert_anchor(conn, seq, &head, &at, &signature)?;
    Ok(seq)
}

fn p256_key(der: &[u8], what: &str) -> Result<p256::ecdsa::VerifyingKey> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
        StoreError::Parse {
            what: what.into(),
            reason: e.to_string(),
        }
    })?;
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&c.public_key().subject_public_key.data).map_err(
        |e| StoreError::Parse {
            what: format!("{what} public key"),
            reason: e.to_string(),
        },
    )
}

/// Checks every anchor: its signature (by the seal maker, `maker_der`, or — anchors made before
/// the seal maker existed — by the issuing CA, `issuing_der`), and that the row it names is
/// still there with the same hash. Returns the number of anchors.
pub fn verify_anchors(conn: &Db, issuing_der: &[u8], maker_der: Option<&[u8]>) -> Result<usize> {
    use p256::ecdsa::signature::Verifier;
    let issuing_key = p256_key(issuing_der, "issuing CA certificate")?;
    let maker_key = maker_der
        .map(|d| p256_key(d, "seal maker certificate"))
        .transpose()?;
    let anchors = audit_log::anchors(conn)?;
    for (seq, head, at, sig, signer) in &anchors {
        let bad = |reason: String| StoreError::AuditBroken { seq: *seq, reason };
        let key = match signer.as_str() {
            "issuing" => &issuing_key,
            _ => maker_key.as_ref().ok_or_else(|| {
                bad("the anchor is signed by the seal maker, whose certificate is missing".into())
            })?,
        };
        let sig = p256::ecdsa::Signature::from_der(sig)
            .map_err(|_| bad("the anchor's signature is malformed".into()))?;
        key.verify(anchor_message(*seq, head, at).as_bytes(), &sig)
            .map_err(|_| {
                bad("the anchor's signature does not verify: the anchor was changed".into())
            })?;
        let row = audit_log::hash_at(conn, *seq)?;
        match row {
            None => {
                return Err(bad(format!(
                    "row {seq}, signed as the head on {at}, is gone: the log was cut"
                )));
            }
            Some(h) if &h != head => {
                return Err(bad(format!(
                    "row {seq} no longer has the hash signed on {at}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(anchors.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh store with five chained rows.
    fn store() -> (tempfile::TempDir, crate::Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::Store::create(&crate::Location::Sqlite(dir.path().join("t.db"))).unwrap();
        fill(&s);
        (dir, s)
    }

    /// Five chained rows (no operator in a unit test: writes are allowed as while a CA is
    /// created).
    fn fill(s: &crate::Store) {
        s.set_bootstrap(true);
        for i in 0..5 {
            let details = serde_json::json!({ "i": i });
            s.write("t", |tx| {
                append(tx, "op", "test.event", &format!("obj-{i}"), &details)
            })
            .unwrap();
        }
    }

    #[test]
    fn chain_verifies_and_links_rows() {
        let (_d, s) = store();
        assert_eq!(verify(&s.conn).unwrap(), 5);
        let rows = list(&s.conn).unwrap();
        assert_eq!(rows[0].prev_hash, GENESIS);
        for w in rows.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
    }

    #[test]
    fn every_kind_of_tampering_is_detected() {
        let tamper = [
            "UPDATE audit_log SET details = '{\"i\":9}' WHERE seq = 3",
            "UPDATE audit_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 1",
            "UPDATE audit_log SET operator = 'mallory' WHERE seq = 5",
            "DELETE FROM audit_log WHERE seq = 2",
            "UPDATE audit_log SET site = 'hegang' WHERE seq = 4",
            "UPDATE audit_log SET seq = 99 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; \
             UPDATE audit_log SET seq = 3 WHERE seq = 99",
        ];
        for sql in tamper {
            // On both backends: the same chain, the same tampering, the same finding.
            for (_d, s) in crate::test_stores() {
                fill(&s);
                assert_eq!(verify(&s.conn).unwrap(), 5);
                s.conn.batch(sql).unwrap();
                assert!(
                    matches!(verify(&s.conn), Err(StoreError::AuditBroken { .. })),
                    "not detected on {:?}: {sql}",
                    s.backend()
                );
            }
        }
    }

    #[test]
    fn signed_anchors_catch_a_cut_log() {
        let (_d, s) = store();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(s.write("t", |tx| anchor(tx, &key)).unwrap(), 5);
        s.write("t", |tx| {
            append(tx, "op", "later", "x", &serde_json::json!({}))
        })
        .unwrap();
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other_cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&other)
            .unwrap();
        // Signed by the seal maker: verifies with its certificate, not with the issuing CA's.
        assert_eq!(
            verify_anchors(&s.conn, other_cert.der(), Some(cert.der())).unwrap(),
            1
        );
        assert!(verify_anchors(&s.conn, cert.der(), Some(other_cert.der())).is_err());
        // Cut back to 4 rows: the chain is still valid, the anchor is not.
        s.conn
            .batch("DELETE FROM audit_log WHERE seq >= 5")
            .unwrap();
        assert_eq!(verify(&s.conn).unwrap(), 4);
        assert!(matches!(
            verify_anchors(&s.conn, other_cert.der(), Some(cert.der())),
            Err(StoreError::AuditBroken { seq: 5, .. })
        ));
        // Anchors made before the seal maker existed verify with the issuing CA.
        let (_d2, s2) = store();
        s2.write("t", |tx| anchor(tx, &key)).unwrap();
        s2.conn
            .batch("UPDATE audit_anchors SET signer = 'issuing'")
            .unwrap();
        assert_eq!(verify_anchors(&s2.conn, cert.der(), None).unwrap(), 1);
        assert!(verify_anchors(&s2.conn, other_cert.der(), None).is_err());
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        // Moving text from one field to the next must change the hash.
        let row = |operator: &str, action: &str, site: Option<&str>| {
            row_hash(&AuditEntry {
                seq: 1,
                at: "t".into(),
                operator: operator.into(),
                action: action.into(),
                object: "o".into(),
                details: "d".into(),
                prev_hash: GENESIS.into(),
                hash: String::new(),
                site: site.map(str::to_owned),
            })
        };
        let a = row("ab", "c", None);
        let b = row("a", "bc", None);
        assert_ne!(a, b);
        // A recorded site is covered; a row without one keeps the hash it always had.
        assert_ne!(row("ab", "c", Some("harbin")), a);
        assert_ne!(
            row("ab", "c", Some("harbin")),
            row("ab", "c", Some("hegang"))
        );
    }
}
