//! The payment gateway's notification (`POST /pay/notify`): a JSON body signed with
//! HMAC-SHA256 under the configured secret (hex in the `X-Hljca-Signature` header). The
//! signature is checked here; the order, the amount and replay by
//! `Ca::online_gateway_paid`. Answers are JSON; the secret is never logged.

use hljca_core::operators::Role;
use hljca_core::store::GatewayNotification;
use hljca_core::{Class, CoreError};
use hljca_ra::prelude::*;
use hmac::{Hmac, Mac};
use hyper::{HeaderMap, StatusCode};
use serde::Deserialize;
use sha2::Sha256;

use crate::web::{self, Answer, BodyError};
use crate::{Portal, PortalError};

/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "x-hljca-signature";

/// The notification body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    notification_id: String,
    nonce: String,
    order_no: String,
    amount_fen: u64,
    transaction_id: String,
}

fn answer(code: StatusCode, result: &str, message: &str) -> Answer {
    Answer::json(
        code,
        &serde_json::json!({ "result": result, "message": message }),
    )
}

fn refused(code: StatusCode, message: &str, log: &str) -> Answer {
    answer(code, "refused", message).refused(log.to_owned())
}

/// Whether `sig_hex` is the HMAC-SHA256 of `body` under `secret` (constant time).
pub(crate) fn signature_ok(secret: &[u8], body: &[u8], sig_hex: &str) -> bool {
    let Ok(sig) = hex::decode(sig_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The answer to a notification over [`web::MAX_FORM_BYTES`].
pub(crate) fn too_large() -> Answer {
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "通知过大",
        "gateway notification too large",
    )
}

fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `POST /pay/notify`.
pub(crate) async fn notify(p: &Portal, headers: &HeaderMap, body: axum::body::Body) -> Answer {
    let Some(secret) = p.cfg.gateway_secret.as_ref() else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "支付网关未配置（HLJCA_GATEWAY_SECRET 或 [portal] gateway_secret_file）",
            "gateway notification: no secret configured",
        );
    };
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = match web::read(headers, body, web::MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Unreadable(e)) => {
            return refused(StatusCode::BAD_REQUEST, "通知无法读取", &e);
        }
    };
    if !signature_ok(secret, &bytes, &sig) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "签名验证失败",
            "gateway notification: bad signature",
        );
    }
    let body: Body = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "通知格式不正确",
                &format!("gateway notification: {e}"),
            );
        }
    };
    if ![
        &body.notification_id,
        &body.nonce,
        &body.order_no,
        &body.transaction_id,
    ]
    .iter()
    .all(|s| token_ok(s))
    {
        return refused(
            StatusCode::BAD_REQUEST,
            "通知字段不正确（1 到 64 个字母、数字、-_.）",
            "gateway notification: bad field",
        );
    }
    let n = GatewayNotification {
        notification_id: body.notification_id,
        nonce: body.nonce,
        order_no: body.order_no,
        amount_fen: body.amount_fen,
        transaction_id: body.transaction_id,
    };
    let done =
        p.ca.run(move |ca| {
            ca.act_for("payment-gateway", &[Role::Cashier], |ca| {
                ca.online_gateway_paid(&n)
            })
        })
        .await;
    match done {
        Ok(paid) if paid.already => {
            tracing::info!(application = %paid.application, order = paid.order_id, "gateway notification repeated: already processed");
            answer(StatusCode::OK, "ok", "已处理（重复通知）")
        }
        Ok(paid) => {
            tracing::info!(application = %paid.application, order = paid.order_id, "paid through the gateway");
            answer(StatusCode::OK, "ok", "已入账")
        }
        Err(PortalError::Core(CoreError::Refused(r))) if r.class() != Class::Internal => {
            let m = &r.message;
            refused(
                StatusCode::CONFLICT,
                &format!("拒绝：{m}"),
                &format!("gateway notification: {m} [{}]", r.rule),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "gateway notification failed");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "暂时无法处理，请重试",
                &e.to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret-secret-16").unwrap();
        mac.update(b"{}");
        let sig = hex::encode(mac.finalize().into_bytes());
        assert!(signature_ok(b"secret-secret-16", b"{}", &sig));
        assert!(!signature_ok(b"secret-secret-17", b"{}", &sig));
        assert!(!signature_ok(b"secret-secret-16", b"{ }", &sig));
        assert!(!signature_ok(b"secret-secret-16", b"{}", "zz"));
    }
}
