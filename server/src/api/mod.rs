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

use std::sync::mpsc::{SyncSender, TrySendError};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State as AxState};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::routing::{get, post};
use hljca_core::api::{CsrRequest, check_idempotency_key, sha256_hex};
use hljca_core::revoke::Reason;
use hljca_policies::{Applicant, CertType};
use hyper::header::{self, HeaderMap};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode, Uri};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tower_http::limit::RequestBodyLimitLayer;

use crate::State;
use crate::http::{ClientCert, Outcome, body, response, set};
use crate::router::{Ctx, Side, layers};
use crate::worker::Job;
use calls::{ApiAnswer, ApiCall, MAX_LIMIT};
use error::ApiError;

/// The path prefix of every call.
pub const PREFIX: &str = "/api/v1/";
const PEM_TYPES: [&str; 2] = [
    "application/x-pem-file",
    "application/pem-certificate-chain",
];

/// The API listener's router: the calls under [`PREFIX`], a client certificate required
/// before any of them (401 before 404 or 405), bodies bounded, JSON errors throughout.
pub(crate) fn router(ctx: Ctx) -> Router {
    let st = ctx.st.clone();
    let one = || get(get_one).fallback(|m: Method| async move { not_allowed(&m, "GET") });
    let calls = Router::new()
        .route(
            "/api/v1/certificates",
            get(list)
                .post(issue)
                .fallback(|m: Method| async move { not_allowed(&m, "GET or POST") }),
        )
        .route("/api/v1/certificates/", one())
        .route("/api/v1/certificates/{serial}", one())
        .route(
            "/api/v1/certificates/{serial}/revoke",
            post(revoke).fallback(|m: Method| async move { not_allowed(&m, "POST") }),
        )
        .fallback(no_route)
        .layer(RequestBodyLimitLayer::new(st.limits.max_body_bytes))
        .layer(from_fn(require_client))
        .with_state(ctx);
    layers(calls, st, Side::Api)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> AxResponse {
        self.outcome().into_response()
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        Some("client certificate"),
        "client certificate required",
        "the API needs an operator certificate of this CA as TLS client certificate (curl --cert/--key)",
    )
}

/// The client certificate (DER) of the call.
struct Client(Vec<u8>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, ApiError> {
        match parts.extensions.get::<ClientCert>() {
            Some(ClientCert(Some(c))) => Ok(Client(c.to_vec())),
            _ => Err(unauthorized()),
        }
    }
}

/// Calls under [`PREFIX`] need a client certificate, whatever their path and method.
async fn require_client(req: Request, next: Next) -> AxResponse {
    let has = matches!(
        req.extensions().get::<ClientCert>(),
        Some(ClientCert(Some(_)))
    );
    if !has && req.uri().path().starts_with(PREFIX) {
        return unauthorized().into_response();
    }
    next.run(req).await
}

async fn no_route(uri: Uri) -> ApiError {
    let path = uri.path();
    let message = if path.starts_with(PREFIX) {
        format!("no API call at {path}")
    } else {
        format!("no API at {path}; calls are under {PREFIX}")
    };
    ApiError::new(StatusCode::NOT_FOUND, None, "route", message)
}

fn not_allowed(method: &Method, allow: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method",
        format!("method {method} not allowed here; {allow}"),
    )
}

/// The serial in `/api/v1/certificates/{serial}…`, as sent.
fn serial_of(uri: &Uri) -> &str {
    uri.path()
        .strip_prefix("/api/v1/certificates/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

async fn list(
    AxState(c): AxState<Ctx>,
    Client(client): Client,
    uri: Uri,
) -> Result<Outcome, ApiError> {
    let call = list_call(uri.query())?;
    Ok(respond(send(&c.jobs, client, call).await?, false))
}

async fn get_one(
    AxState(c): AxState<Ctx>,
    Client(client): Client,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Outcome, ApiError> {
    let serial = checked_serial(serial_of(&uri))?;
    let pem = wants_pem(&headers);
    Ok(respond(
        send(&c.jobs, client, ApiCall::Get { serial }).await?,
        pem,
    ))
}

async fn issue(
    AxState(c): AxState<Ctx>,
    Client(client): Client,
    req: Request,
) -> Result<Outcome, ApiError> {
    let call = issue_call(req, &c.st).await?;
    Ok(respond(send(&c.jobs, client, call).await?, false))
}

async fn revoke(
    AxState(c): AxState<Ctx>,
    Client(client): Client,
    req: Request,
) -> Result<Outcome, ApiError> {
    let serial = checked_serial(serial_of(req.uri()))?;
    let call = revoke_call(req, &c.st, serial).await?;
    Ok(respond(send(&c.jobs, client, call).await?, false))
}

fn respond(a: ApiAnswer, pem: bool) -> Outcome {
    let (body, ctype) = match (&a.pem, pem) {
        (Some(p), true) => (p.clone(), "application/x-pem-file"),
        _ => (a.body.to_string(), "application/json"),
    };
    let mut resp = response(body);
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

fn wants_pem(headers: &HeaderMap) -> bool {
    headers
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
async fn json_body(req: Request, st: &State) -> Result<Map<String, Value>, ApiError> {
    if let Some(ctype) = crate::http::other_content_type(req.headers(), "application/json") {
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

async fn issue_call(req: Request, st: &State) -> Result<ApiCall, ApiError> {
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

async fn revoke_call(req: Request, st: &State, serial: String) -> Result<ApiCall, ApiError> {
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
