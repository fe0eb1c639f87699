//! API errors: one JSON shape, `{"error": {"field": …, "rule": …, "message": …}}`, and the
//! HTTP status that fits (400 bad input, 401 not an operator, 403 missing role, 404 unknown,
//! 409 conflict, 413 too large, 415 wrong type, 5xx the server's own trouble).

use hljca_core::CoreError;
use hljca_core::api::ClientRefused;
use hyper::StatusCode;
use hyper::header;

use crate::http::{Outcome, response, set};

/// A refused API call.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The request field (or header) at fault, when one is.
    pub field: Option<String>,
    /// The rule broken, short and stable (for programs).
    pub rule: String,
    /// What happened, for people.
    pub message: String,
}

impl ApiError {
    /// An error.
    pub fn new(
        status: StatusCode,
        field: Option<&str>,
        rule: &str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            field: field.map(str::to_owned),
            rule: rule.to_owned(),
            message: message.into(),
        }
    }

    /// 400 naming `field`.
    pub fn bad(field: &str, rule: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, Some(field), rule, message)
    }

    /// The JSON response (logged as refused).
    pub(crate) fn outcome(&self) -> Outcome {
        let body = serde_json::json!({
            "error": { "field": self.field, "rule": self.rule, "message": self.message }
        });
        let mut resp = response(body.to_string());
        *resp.status_mut() = self.status;
        set(&mut resp, header::CONTENT_TYPE, "application/json");
        set(&mut resp, header::CACHE_CONTROL, "no-store");
        let mut o = Outcome::ok(resp);
        o.refused = Some(format!("{}: {}", self.rule, self.message));
        o
    }

    /// A plain-text refusal of the shared HTTP layer (size, timeout) as JSON.
    pub(crate) fn from_outcome(o: &Outcome) -> ApiError {
        let status = o.resp.status();
        let rule = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "max-body-bytes",
            StatusCode::REQUEST_TIMEOUT => "request-timeout",
            _ => "request",
        };
        ApiError::new(
            status,
            Some("body"),
            rule,
            o.refused.clone().unwrap_or_default(),
        )
    }
}

/// The `[rule: …]` a core message carries, when it has one.
fn rule_of(msg: &str) -> Option<String> {
    let start = msg.rfind("[rule: ")? + "[rule: ".len();
    let end = msg[start..].find(']')? + start;
    Some(msg[start..end].to_owned())
}

impl From<ClientRefused> for ApiError {
    fn from(e: ClientRefused) -> ApiError {
        let rule = match &e {
            ClientRefused::Revoked { .. } => "operator-revoked",
            ClientRefused::Expired { .. } => "operator-certificate-expired",
            _ => "operator-unknown",
        };
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("client certificate"),
            rule,
            e.to_string(),
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let msg = e.to_string();
        let rule = rule_of(&msg);
        let r = |d: &str| rule.clone().unwrap_or_else(|| d.to_owned());
        match &e {
            CoreError::Applicant { errors, .. } => {
                let first = errors.0.first();
                ApiError {
                    status: StatusCode::BAD_REQUEST,
                    field: Some(
                        first
                            .map(|f| format!("applicant.{}", f.field))
                            .unwrap_or_else(|| "applicant".into()),
                    ),
                    rule: first
                        .map(|f| f.rule.clone())
                        .unwrap_or_else(|| "policy".into()),
                    message: msg,
                }
            }
            CoreError::Policy(_) => ApiError::bad("applicant", &r("policy"), msg),
            CoreError::UnknownSerial { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                Some("serial"),
                &r("known-serial"),
                msg,
            ),
            CoreError::BadState { .. } => ApiError::new(
                StatusCode::CONFLICT,
                Some("serial"),
                &r("certificate-state"),
                msg,
            ),
            CoreError::MissingRole { role, .. } => {
                ApiError::new(StatusCode::FORBIDDEN, None, &format!("role {role}"), msg)
            }
            CoreError::IdempotencyConflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                Some("Idempotency-Key"),
                "one key, one request",
                msg,
            ),
            CoreError::InProgress(_) => {
                ApiError::new(StatusCode::CONFLICT, None, &r("in-progress"), msg)
            }
            CoreError::BadInput(m) => {
                let field = ["csr", "Idempotency-Key", "reason"]
                    .into_iter()
                    .find(|f| m.starts_with(&format!("{f}:")));
                ApiError::new(StatusCode::BAD_REQUEST, field, &r("input"), msg)
            }
            CoreError::Refused(_) => ApiError::new(StatusCode::CONFLICT, None, &r("refused"), msg),
            _ => {
                tracing::error!(error = %msg, "API call failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "internal",
                    "the CA could not complete the call; see the server log",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_statuses_and_rules() {
        let e: ApiError = CoreError::UnknownSerial {
            serial: "ab".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = CoreError::BadInput("csr: bad [rule: a PKCS#10 request]".into()).into();
        assert_eq!(
            (e.status, e.field.as_deref(), e.rule.as_str()),
            (StatusCode::BAD_REQUEST, Some("csr"), "a PKCS#10 request")
        );
        let e: ApiError = CoreError::MissingRole {
            operator: "x".into(),
            role: "issuer",
            what: "y".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e: ApiError = CoreError::IdempotencyConflict { key: "k".into() }.into();
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
