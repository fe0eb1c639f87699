//! API errors: one JSON shape, `{"error": {"field": …, "rule": …, "message": …}}`, and the
//! HTTP status that fits (400 bad input, 401 not an operator, 403 missing role, 404 unknown,
//! 409 conflict, 413 too large, 415 wrong type, 5xx the server's own trouble).

use hljca_core::api::ClientRefused;
use hljca_core::{Class, CoreError, Rule};
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
            CoreError::Policy(_) => ApiError::bad("applicant", "policy", msg),
            CoreError::UnknownSerial { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, Some("serial"), "known-serial", msg)
            }
            CoreError::BadState { .. } => ApiError::new(
                StatusCode::CONFLICT,
                Some("serial"),
                Rule::CertificateState.code(),
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
                ApiError::new(StatusCode::CONFLICT, None, "in-progress", msg)
            }
            // The rule, the field and the status come from the refusal itself, never its text.
            CoreError::Refused(r) if r.class() != Class::Internal => ApiError::new(
                StatusCode::from_u16(r.class().http_status()).unwrap_or(StatusCode::CONFLICT),
                r.field.as_deref(),
                r.rule.code(),
                r.message.clone(),
            ),
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
        // Rule and field come from the variant: the message can say anything.
        let e: ApiError =
            CoreError::refuse_on(Rule::Csr, "csr", "a message naming no rule or field").into();
        assert_eq!(
            (e.status, e.field.as_deref(), e.rule.as_str()),
            (StatusCode::BAD_REQUEST, Some("csr"), "csr")
        );
        let e: ApiError = CoreError::refuse(
            Rule::OneHolderPerUsbkey,
            "csr: looks like input [rule: a PKCS#10 request]",
        )
        .into();
        assert_eq!(
            (e.status, e.field.as_deref(), e.rule.as_str()),
            (StatusCode::CONFLICT, None, "one-holder-per-usbkey")
        );
        let e: ApiError = CoreError::refuse(Rule::Internal, "secret detail").into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("secret detail"));
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
