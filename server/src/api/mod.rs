//! The client-certificate API for automated jobs: JSON over HTTPS on its own listener
//! (`[serve] api_listen`), under `/api/v1`:
//!
//! | call | role |
//! |---|---|
//! | `POST /api/v1/certificates` (`Idempotency-Key` header) — issue from a CSR | issuer |
//! | `GET /api/v1/certificates/{serial}` — JSON, or PEM with `Accept: application/x-pem-file` | any operator |
//! | `POST /api/v1/certificates/{serial}/revoke` — `{"reason": …}` | ca-admin (as `hljca revoke`) |
//! | `GET /api/v1/certificates?expiring_within=30d&limit=100&after=SERIAL` | any operator |
//!
//! This side reads and checks the request's shape (content type, size, JSON fields, query)
//! and sends the call to the CA worker (`calls.rs`), which authenticates the operator of the
//! client certificate and acts for them. `tls.rs`: rustls; `error.rs`: the JSON errors.

pub mod calls;
pub mod error;
pub mod tls;

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};

use bytes::Bytes;
use hljca_core::api::{CsrRequest, check_idempotency_key, sha256_hex};
use hljca_core::revoke::Reason;
use hljca_policies::{Applicant, CertType};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::State;
use crate::http::{Outcome, body, set};
use crate::worker::Job;
use calls::{ApiAnswer, ApiCall, MAX_LIMIT};
use error::ApiError;

/// The path prefix of every call.
pub const PREFIX: &str = "/api/v1/";
const PEM_TYPES: [&str; 2] = [
    "application/x-pem-file",
    "application/pem-certificate-chain",
];

/// Answers one request on the API listener; `client` is the client certificate (DER) the TLS
/// layer verified, if any.
pub(crate) async fn handle(
    req: Request<Incoming>,
    st: &State,
    jobs: &SyncSender<Job>,
    client: Option<Arc<Vec<u8>>>,
) -> Outcome {
    match route(req, st, jobs, client).await {
        Ok(o) => o,
        Err(e) => e.outcome(),
    }
}

fn not_allowed(method: &Method, allow: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method",
        format!("method {method} not allowed here; {allow}"),
    )
}

async fn route(
    req: Request<Incoming>,
    st: &State,
    jobs: &SyncSender<Job>,
    client: Option<Arc<Vec<u8>>>,
) -> Result<Outcome, ApiError> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            None,
            "route",
            format!("no API at {path}; calls are under {PREFIX}"),
        ));
    };
    let Some(client) = client else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("client certificate"),
            "client certificate required",
            "the API needs an operator certificate of this CA as TLS client certificate (curl --cert/--key)",
        ));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let method = req.method().clone();
    let (call, pem) = match (parts.as_slice(), &method) {
        (["certificates"], &Method::POST) => (issue_call(req, st).await?, false),
        (["certificates"], &Method::GET) => (list_call(req.uri().query())?, false),
        (["certificates"], m) => return Err(not_allowed(m, "GET or POST")),
        (["certificates", serial], &Method::GET) => {
            let pem = wants_pem(&req);
            (
                ApiCall::Get {
                    serial: checked_serial(serial)?,
                },
                pem,
            )
        }
        (["certificates", _], m) => return Err(not_allowed(m, "GET")),
        (["certificates", serial, "revoke"], &Method::POST) => {
            let serial = checked_serial(serial)?;
            (revoke_call(req, st, serial).await?, false)
        }
        (["certificates", _, "revoke"], m) => return Err(not_allowed(m, "POST")),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                None,
                "route",
                format!("no API call at {path}"),
            ));
        }
    };
    let answer = send(jobs, client.to_vec(), call).await?;
    Ok(respond(answer, pem))
}

fn respond(a: ApiAnswer, pem: bool) -> Outcome {
    let (body, ctype) = match (&a.pem, pem) {
        (Some(p), true) => (p.clone(), "application/x-pem-file"),
        _ => (a.body.to_string(), "application/json"),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = a.status;
    set(&mut resp, header::CONTENT_TYPE, ctype);
    set(&mut resp, header::CACHE_CONTROL, "no-store");
    if let Some(serial) = a.body.get("serial").and_then(Value::as_str) {
        set(
            &mut resp,
            header::LOCATION,
            &format!("{PREFIX}certificates/{serial}"),
        );
    }
    Outcome::ok(resp)
}

/// Sends `call` to the CA worker and waits for its answer.
async fn send(
    jobs: &SyncSender<Job>,
    client: Vec<u8>,
    call: ApiCall,
) -> Result<ApiAnswer, ApiError> {
    let unavailable = |why: &str| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "unavailable",
            format!("the CA is {why}; try again"),
        )
    };
    let (tx, rx) = oneshot::channel();
    match jobs.try_send(Job::Api {
        client,
        call: Box::new(call),
        reply: tx,
    }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(unavailable("busy")),
        Err(TrySendError::Disconnected(_)) => return Err(unavailable("stopping")),
    }
    rx.await.map_err(|_| unavailable("stopping"))?
}

fn wants_pem(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| PEM_TYPES.iter().any(|t| a.contains(t)))
}

fn checked_serial(s: &str) -> Result<String, ApiError> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
    if !ok {
        return Err(ApiError::bad(
            "serial",
            "hex serial",
            format!(
                "`{}` is not a certificate serial (hex digits)",
                s.chars().take(70).collect::<String>()
            ),
        ));
    }
    Ok(s.to_owned())
}

/// The JSON object body of a POST (content type, size, syntax checked).
async fn json_body(req: Request<Incoming>, st: &State) -> Result<Map<String, Value>, ApiError> {
    if let Some(ctype) = crate::http::other_content_type(&req, "application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("Content-Type"),
            "application/json",
            format!("content type `{ctype}`; the API takes application/json"),
        ));
    }
    let bytes = body(req, st)
        .await
        .map_err(|o| ApiError::from_outcome(&o))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad("body", "JSON", format!("the body is not JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad(
            "body",
            "JSON object",
            "the body must be a JSON object",
        )),
    }
}

/// Refuses fields other than `known`.
fn only(m: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(
            k,
            "known field",
            format!("unknown field `{k}`; the fields are {}", known.join(", ")),
        ));
    }
    Ok(())
}

fn string<'a>(m: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Err(ApiError::bad(
            field,
            "required",
            format!("`{field}` is missing"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad(
            field,
            "string",
            format!("`{field}` must be a string"),
        )),
    }
}

async fn issue_call(req: Request<Incoming>, st: &State) -> Result<ApiCall, ApiError> {
    let key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().map_err(|_| {
                ApiError::bad("Idempotency-Key", "visible ASCII", "the key is not ASCII")
            })?;
            check_idempotency_key(k).map_err(|rule| {
                ApiError::bad("Idempotency-Key", &rule, format!("Idempotency-Key: {rule}"))
            })?;
            Some(k.to_owned())
        }
    };
    let m = json_body(req, st).await?;
    only(&m, &["type", "applicant", "csr"])?;
    let t = string(&m, "type")?;
    let cert_type: CertType = t.parse().map_err(|e: hljca_policies::PolicyError| {
        ApiError::bad("type", "known type", e.to_string())
    })?;
    let applicant = match m.get("applicant") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad(
                "applicant",
                "required",
                "`applicant` is missing",
            ));
        }
        Some(v @ Value::Object(_)) => Applicant::from_json(&v.to_string())
            .map_err(|e| ApiError::bad("applicant", "flat object of strings", e.to_string()))?,
        Some(_) => {
            return Err(ApiError::bad(
                "applicant",
                "JSON object",
                "`applicant` must be an object of strings (the fields of the type's policy)",
            ));
        }
    };
    let csr = string(&m, "csr")?;
    Ok(ApiCall::Issue(CsrRequest {
        cert_type,
        applicant,
        csr: csr.as_bytes().to_vec(),
        idempotency_key: key,
        // serde_json keeps object keys sorted: the same request hashes the same however sent.
        body_sha256: sha256_hex(Value::Object(m.clone()).to_string().as_bytes()),
    }))
}

async fn revoke_call(
    req: Request<Incoming>,
    st: &State,
    serial: String,
) -> Result<ApiCall, ApiError> {
    let m = json_body(req, st).await?;
    only(&m, &["reason", "keep_secondary"])?;
    let reason: Reason = string(&m, "reason")?
        .parse()
        .map_err(|e: String| ApiError::bad("reason", "RFC 5280 reason", e))?;
    let keep_secondary = match m.get("keep_secondary") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad(
                "keep_secondary",
                "boolean",
                "`keep_secondary` must be true or false",
            ));
        }
    };
    Ok(ApiCall::Revoke {
        serial,
        reason,
        keep_secondary,
    })
}

fn list_call(query: Option<&str>) -> Result<ApiCall, ApiError> {
    let mut within = None;
    let mut limit = 100;
    let mut after = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "expiring_within" => {
                let d = v.trim_end_matches(['d', 'D']);
                within = Some(
                    d.parse::<i64>()
                        .ok()
                        .filter(|d| (0..=36_600).contains(d))
                        .ok_or_else(|| {
                            ApiError::bad(
                                k,
                                "days",
                                format!("`{v}` is not a number of days (e.g. 30d)"),
                            )
                        })?,
                );
            }
            "limit" => {
                limit = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(
                            k,
                            "1 to 1000",
                            format!("`{v}` is not a page size of 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "after" => {
                after = Some(checked_serial(v).map_err(|mut e| {
                    e.field = Some("after".into());
                    e
                })?)
            }
            other => {
                return Err(ApiError::bad(
                    other,
                    "known parameter",
                    format!(
                        "unknown parameter `{other}`; the parameters are expiring_within, limit, after"
                    ),
                ));
            }
        }
    }
    Ok(ApiCall::List {
        expiring_within_days: within,
        limit,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(q: &str) -> Result<(Option<i64>, u64, Option<String>), Option<String>> {
        match list_call(Some(q)) {
            Ok(ApiCall::List {
                expiring_within_days,
                limit,
                after,
            }) => Ok((expiring_within_days, limit, after)),
            Ok(_) => Err(None),
            Err(e) => Err(e.field),
        }
    }

    #[test]
    fn list_queries_are_checked_field_by_field() {
        assert_eq!(list(""), Ok((None, 100, None)));
        assert_eq!(
            list("expiring_within=30d&limit=5&after=0a:FF"),
            Ok((Some(30), 5, Some("0a:FF".into())))
        );
        assert_eq!(list("limit=0"), Err(Some("limit".into())));
        assert_eq!(list("limit=1001"), Err(Some("limit".into())));
        assert_eq!(
            list("expiring_within=soon"),
            Err(Some("expiring_within".into()))
        );
        assert_eq!(list("after=zz"), Err(Some("after".into())));
        assert_eq!(list("sort=desc"), Err(Some("sort".into())));
    }

    #[test]
    fn serials_are_hex() {
        assert!(checked_serial("0a1B:2c").is_ok());
        for bad in ["", "xyz", "../etc", &"a".repeat(65)] {
            assert_eq!(
                checked_serial(bad).unwrap_err().field.as_deref(),
                Some("serial")
            );
        }
    }
}
