//! The API calls as the CA worker runs them: the client certificate looked up as an operator
//! first, then the call, acting for that operator (their roles; the audit rows name them).

use hljca_core::api::CsrRequest;
use hljca_core::keys::CaKeys;
use hljca_core::revoke::{Reason, RevokeOptions};
use hljca_core::store::{CertFilter, CertRecord};
use hljca_core::{Ca, CoreError};
use hyper::StatusCode;

use super::error::ApiError;

/// Most certificates one list page gives.
pub const MAX_LIMIT: u64 = 1000;

/// One API call, parsed and checked for shape by the HTTP side.
#[derive(Debug, Clone)]
pub enum ApiCall {
    /// `POST /api/v1/certificates`.
    Issue(CsrRequest),
    /// `GET /api/v1/certificates/{serial}`.
    Get {
        /// The serial.
        serial: String,
    },
    /// `POST /api/v1/certificates/{serial}/revoke`.
    Revoke {
        /// The serial.
        serial: String,
        /// The RFC 5280 reason.
        reason: Reason,
        /// Keep the enterprise-secondary certificates of a last enterprise certificate.
        keep_secondary: bool,
    },
    /// `GET /api/v1/certificates?expiring_within=&limit=&after=`.
    List {
        /// Only issued certificates expiring within this many days.
        expiring_within_days: Option<i64>,
        /// Page size.
        limit: u64,
        /// The page after this serial.
        after: Option<String>,
    },
}

impl ApiCall {
    /// The call's name, for the log.
    pub fn name(&self) -> &'static str {
        match self {
            ApiCall::Issue(_) => "issue",
            ApiCall::Get { .. } => "get",
            ApiCall::Revoke { .. } => "revoke",
            ApiCall::List { .. } => "list",
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    /// 200 or 201.
    pub status: StatusCode,
    /// The JSON body.
    pub body: serde_json::Value,
    /// The certificate's PEM, for a call about one certificate.
    pub pem: Option<String>,
}

/// A certificate as the API shows it: the row (as `cert show --json`) and its PEM.
fn cert_json(c: &CertRecord) -> Result<(serde_json::Value, Option<String>), ApiError> {
    let pem = c.der.as_deref().map(hljca_core::ca::pem_cert);
    let mut v = serde_json::to_value(c).map_err(|e| {
        ApiError::from(CoreError::Encoding {
            what: "certificate JSON",
            reason: e.to_string(),
        })
    })?;
    v["pem"] = serde_json::json!(pem);
    Ok((v, pem))
}

/// One certificate as the answer.
fn one(cert: &CertRecord, status: StatusCode, replayed: bool) -> Result<ApiAnswer, ApiError> {
    let (mut body, pem) = cert_json(cert)?;
    body["replayed"] = serde_json::json!(replayed);
    Ok(ApiAnswer { status, body, pem })
}

/// Runs `call` for the operator of `client_der` with the CA keys the server holds.
pub fn run(
    ca: &mut Ca,
    keys: &CaKeys,
    client_der: &[u8],
    call: ApiCall,
) -> Result<ApiAnswer, ApiError> {
    let client = ca.api_client(client_der)??;
    let operator_cert = client.record.cert_serial.clone();
    tracing::info!(target: "hljca::api", operator = %client.actor(), call = call.name(), "API call");
    match call {
        ApiCall::Issue(req) => {
            let (cert, replayed) = ca.acting_for(&client, |ca| {
                let issued = ca.api_issue_csr(keys, &operator_cert, &req)?;
                Ok((ca.cert(&issued.serial)?, issued.replayed))
            })?;
            let status = if replayed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            one(&cert, status, replayed)
        }
        ApiCall::Get { serial } => {
            let cert = ca.acting_for(&client, |ca| ca.cert(&serial))?;
            one(&cert, StatusCode::OK, false)
        }
        ApiCall::Revoke {
            serial,
            reason,
            keep_secondary,
        } => {
            let cert = ca.acting_for(&client, |ca| {
                let opts = RevokeOptions {
                    reason,
                    keep_secondary,
                };
                ca.revoke(&serial, opts, None)?;
                ca.cert(&serial)
            })?;
            one(&cert, StatusCode::OK, false)
        }
        ApiCall::List {
            expiring_within_days,
            limit,
            after,
        } => {
            let certs = ca.acting_for(&client, |ca| {
                let expiring_before =
                    expiring_within_days.map(|d| ca.now() + time::Duration::days(d));
                ca.cert_summaries(&CertFilter {
                    expiring_before,
                    limit: Some(limit),
                    after,
                    ..CertFilter::default()
                })
            })?;
            // A full page may have more after it.
            let next = (certs.len() as u64 == limit)
                .then(|| certs.last().map(|c| c.serial.clone()))
                .flatten();
            Ok(ApiAnswer {
                status: StatusCode::OK,
                body: serde_json::json!({ "certificates": certs, "next": next }),
                pem: None,
            })
        }
    }
}
