//! What the client-certificate API of `hljca serve` does on the CA, for automated jobs: the
//! operator a TLS client certificate names, acting for that operator (their roles, their name
//! on the audit rows), and issuance from a CSR with an idempotency key. HTTP and TLS are the
//! server crate's; every action goes through the same core paths as the CLI (the issuance
//! engine, the eligibility check, `revoke`).
//!
//! Audit attribution: the server runs logged in as a ca-admin operator whose key signs every
//! audit row it writes (`operator_cert` and `signature` name that signer). While it acts for an
//! API client, the rows' `operator` names the client operator (`NAME (SERIAL) via api`), and
//! role checks use the client's roles, never the server's.
//!
//! `tls.rs`: the API's TLS server certificate from the issuing CA.

mod tls;

use crate::Rule;
use hljca_policies::{Applicant, CertType};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::csr::check_csr;
use crate::eligibility::{Request, Step};
use crate::engine::Fee;
use crate::error::{CoreError, Result};
use crate::keys::CaKeys;
use crate::operators::Role;
use crate::store::{IdempotencyRow, OperatorRecord};
use crate::{Ca, audit};

pub use tls::{ApiTlsCert, default_hosts};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Why a client certificate does not authenticate an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientRefused {
    /// The certificate does not parse.
    #[error("the client certificate does not parse: {0}")]
    Unreadable(String),
    /// No operator has this certificate.
    #[error(
        "certificate {serial} is not an operator certificate of this CA [rule: API clients are operators enrolled by `hljca operator add`]"
    )]
    Unknown {
        /// Its serial (hex).
        serial: String,
    },
    /// The operator was revoked.
    #[error(
        "operator {name} (certificate {serial}) is revoked [rule: a revoked operator cannot call the API]"
    )]
    Revoked {
        /// Their name.
        name: String,
        /// Their certificate serial.
        serial: String,
    },
    /// The certificate is past its validity (by the CA's clock).
    #[error(
        "operator certificate {serial} is not valid now [rule: operators call with a valid certificate]"
    )]
    Expired {
        /// Its serial.
        serial: String,
    },
}

/// An authenticated API client: an active operator and their roles.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Their row.
    pub record: OperatorRecord,
    roles: Vec<Role>,
}

impl ApiClient {
    /// Their roles.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }
    /// How audit rows name them.
    pub fn actor(&self) -> String {
        format!("{} ({}) via api", self.record.name, self.record.cert_serial)
    }
}

/// An issuance request of the API: a type, the applicant data and a PKCS#10 request.
#[derive(Debug, Clone)]
pub struct CsrRequest {
    /// The certificate type.
    pub cert_type: CertType,
    /// The applicant data.
    pub applicant: Applicant,
    /// The request (PEM or DER).
    pub csr: Vec<u8>,
    /// The `Idempotency-Key` header, when sent.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the request body: the same key with another body is refused.
    pub body_sha256: String,
}

/// What an API issuance gave.
#[derive(Debug, Clone, Serialize)]
pub struct CsrIssued {
    /// The identity certificate's serial.
    pub serial: String,
    /// True when an earlier request with the same idempotency key issued it.
    pub replayed: bool,
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks an idempotency key: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> std::result::Result<(), String> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (no spaces)"
        ));
    }
    Ok(())
}

/// The client of certificate `der` (serial `serial`) given its operator row.
fn client_of(
    record: Option<OperatorRecord>,
    der: &[u8],
    cert: &X509Certificate<'_>,
    serial: String,
    now: time::OffsetDateTime,
) -> std::result::Result<ApiClient, ClientRefused> {
    let rec = match record {
        Some(r) if r.der == der => r,
        _ => return Err(ClientRefused::Unknown { serial }),
    };
    if rec.status != "active" {
        return Err(ClientRefused::Revoked {
            name: rec.name,
            serial,
        });
    }
    let now = now.unix_timestamp();
    let v = cert.validity();
    if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
        return Err(ClientRefused::Expired { serial });
    }
    let roles = rec.roles.iter().filter_map(|r| r.parse().ok()).collect();
    Ok(ApiClient { record: rec, roles })
}

impl Ca {
    /// The active operator whose certificate the TLS layer verified (`der`, chained to the
    /// issuing CA): the same certificate as enrolled, active, valid by the CA's clock.
    /// The outer error is the CA's own trouble (the database), the inner one the client's.
    pub fn api_client(&self, der: &[u8]) -> Result<std::result::Result<ApiClient, ClientRefused>> {
        let (_, cert) = match X509Certificate::from_der(der) {
            Ok(c) => c,
            Err(e) => return Ok(Err(ClientRefused::Unreadable(e.to_string()))),
        };
        let serial = hex::encode(cert.raw_serial());
        let record = self.store.operator(&serial)?;
        Ok(client_of(record, der, &cert, serial, self.now()))
    }

    /// Runs `f` for API client `client`: [`Ca::require`] checks the client's roles and every
    /// audit row written names the client (signed, as every row of this process, by the
    /// logged-in server operator). `f` gets a handle of its own ([`Ca::act_for`]); this one is never changed.
    pub fn acting_for<T>(
        &self,
        client: &ApiClient,
        f: impl FnOnce(&mut Ca) -> Result<T>,
    ) -> Result<T> {
        let roles = client.roles.clone();
        self.act_for(&client.actor(), &roles, f)
    }

    /// Issues the identity certificate for a CSR sent over the API (role issuer), through the
    /// issuance engine with the CA keys the server holds open. With an idempotency key, the
    /// same key (of the same operator) and body again gives the certificate issued the first
    /// time; another body under it is refused.
    pub fn api_issue_csr(
        &mut self,
        keys: &CaKeys,
        operator_cert: &str,
        req: &CsrRequest,
    ) -> Result<CsrIssued> {
        self.require(Role::Issuer, "issuance from a CSR over the API")?;
        let csr = check_csr(&req.csr, self.policies.get(req.cert_type))
            .map_err(|e| CoreError::refuse_on(Rule::Csr, "csr", format!("csr: {e}")))?;
        // Refused before the key is claimed: a corrected request may use the same key.
        self.eligible(
            Step::Issue,
            &Request {
                cert_type: req.cert_type,
                applicant: &req.applicant,
                renewal_of: None,
                application: None,
                token_serial: None,
            },
        )?;
        let external_id = match &req.idempotency_key {
            None => None,
            Some(key) => {
                if let Some(done) = self.idempotent(operator_cert, key, &req.body_sha256)? {
                    return Ok(done);
                }
                Some(format!("api:{operator_cert}:{key}"))
            }
        };
        let fee = Fee {
            fen: self.policies.get(req.cert_type).fees.first.0,
            method: "invoice".into(),
            reference: Some(
                external_id
                    .clone()
                    .unwrap_or_else(|| format!("api:{operator_cert}")),
            ),
        };
        let issued =
            self.issue_checked_csr(keys, &csr, &req.applicant, fee, external_id.as_deref())?;
        let serial = issued
            .certificates
            .first()
            .map(|c| c.serial.clone())
            .ok_or_else(|| CoreError::refuse(Rule::Internal, "the issuance made no certificate"))?;
        Ok(CsrIssued {
            serial,
            replayed: false,
        })
    }

    /// The outcome of an earlier request under `key`, when there is one; else claims the key
    /// for this request (one write with its audit row).
    fn idempotent(
        &mut self,
        operator_cert: &str,
        key: &str,
        body_sha256: &str,
    ) -> Result<Option<CsrIssued>> {
        check_idempotency_key(key).map_err(|rule| {
            CoreError::refuse_on(
                Rule::IdempotencyKey,
                "Idempotency-Key",
                format!("Idempotency-Key: {rule}"),
            )
        })?;
        if let Some(row) = self.store.idempotency(operator_cert, key)? {
            if row.request_sha256 != body_sha256 {
                return Err(CoreError::IdempotencyConflict { key: key.into() });
            }
            if let Some(serial) = row.serial {
                return Ok(Some(CsrIssued {
                    serial,
                    replayed: true,
                }));
            }
            // Claimed before, never committed: an issuance in progress or interrupted (recover
            // settles it), or one refused or voided (issued again now).
            let rows = self.store.by_external_id(&row.external_id)?;
            if let Some((serial, _)) = rows.iter().find(|(_, s)| s != "pending") {
                return Ok(Some(CsrIssued {
                    serial: serial.clone(),
                    replayed: true,
                }));
            }
            if let Some((serial, status)) = rows.first() {
                return Err(CoreError::InProgress(format!(
                    "the request with Idempotency-Key `{key}` is still being issued (certificate {serial} is {status}); \
                     ask again later, or run `hljca recover` if the server was stopped while issuing it"
                )));
            }
            return Ok(None);
        }
        let row = IdempotencyRow {
            operator_cert: operator_cert.into(),
            key: key.into(),
            request_sha256: body_sha256.into(),
            external_id: format!("api:{operator_cert}:{key}"),
            serial: None,
        };
        let op = self.actor.name().to_owned();
        self.write("claim idempotency key", |tx| {
            if !crate::store::api::claim(tx, &row)? {
                return Err(CoreError::InProgress(format!(
                    "Idempotency-Key `{key}` was claimed at the same moment; ask again"
                )));
            }
            Ok(audit::append(
                tx,
                &op,
                "api.idempotency-key",
                &row.external_id,
                &serde_json::json!({ "key": key, "request_sha256": body_sha256 }),
            )?)
        })?;
        Ok(None)
    }
}
