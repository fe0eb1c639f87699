//! The plain routes: published documents (CRL, CA certificates) with conditional GET,
//! `/healthz` and `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{self, HeaderMap};
use time::OffsetDateTime;

use crate::State;
use crate::docs::{Doc, http_date, parse_http_date};
use crate::http::{Outcome, response, set};
use crate::worker::Job;

/// How long `/healthz` waits for the CA worker.
const HEALTH_WAIT: Duration = Duration::from_secs(3);

/// True when the request's validators match: `If-None-Match` (an entity tag or `*`), else
/// `If-Modified-Since` not before `last_modified` (RFC 9110 section 13.1).
pub(crate) fn not_modified(h: &HeaderMap, etag: &str, last_modified: OffsetDateTime) -> bool {
    if let Some(inm) = h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    h.get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .is_some_and(|since| last_modified.replace_nanosecond(0).unwrap_or(last_modified) <= since)
}

/// A published document, or 304 when the client's copy is current.
pub(crate) fn doc(h: &HeaderMap, d: &Doc) -> Outcome {
    let now = OffsetDateTime::now_utc();
    let fresh = not_modified(h, &d.etag, d.last_modified);
    let mut resp = if fresh {
        let mut r = response(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = response(d.body.clone());
        set(&mut r, header::CONTENT_TYPE, d.content_type);
        r
    };
    set(&mut resp, header::ETAG, &d.etag);
    set(
        &mut resp,
        header::LAST_MODIFIED,
        &http_date(d.last_modified),
    );
    set(
        &mut resp,
        header::CACHE_CONTROL,
        &format!("public, max-age={}, no-transform", d.max_age(now)),
    );
    if let Some(e) = d.expires {
        set(&mut resp, header::EXPIRES, &http_date(e));
    }
    Outcome::ok(resp)
}

fn json(code: StatusCode, v: &serde_json::Value) -> Response {
    let mut r = response(format!("{v}\n"));
    *r.status_mut() = code;
    set(&mut r, header::CONTENT_TYPE, "application/json");
    set(&mut r, header::CACHE_CONTROL, "no-store");
    r
}

/// `/healthz`: 200 when the CA token answers, the database takes its write lock and the CRL
/// served is before its nextUpdate; 503 with the reasons otherwise.
pub(crate) async fn health(jobs: &SyncSender<Job>) -> Outcome {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let unavailable = |why: &str| {
        let mut o = Outcome::ok(json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "fail", "worker": why }),
        ));
        o.refused = Some(format!("unhealthy: {why}"));
        o
    };
    match jobs.try_send(Job::Health { reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return unavailable("busy"),
        Err(TrySendError::Disconnected(_)) => return unavailable("stopped"),
    }
    let h = match tokio::time::timeout(HEALTH_WAIT, rx).await {
        Ok(Ok(h)) => h,
        _ => return unavailable("no answer"),
    };
    let now = OffsetDateTime::now_utc();
    let crl_fresh = h.crl.is_some_and(|(_, next)| next > now);
    let ok = h.token.is_ok() && h.database.is_ok() && crl_fresh && h.signer_not_after > now;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "fail" },
        "ca_token": match &h.token { Ok(label) => serde_json::json!({"ok": true, "token": label}),
                                      Err(e) => serde_json::json!({"ok": false, "error": e}) },
        "database": match &h.database { Ok(()) => serde_json::json!({"ok": true, "writable": true}),
                                         Err(e) => serde_json::json!({"ok": false, "error": e}) },
        "crl": h.crl.map(|(n, next)| serde_json::json!({
            "number": n, "next_update": hljca_core::time_fmt::ts(next), "fresh": crl_fresh })),
        "ocsp_signer_not_after": hljca_core::time_fmt::ts(h.signer_not_after),
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut o = Outcome::ok(json(code, &body));
    if !ok {
        o.refused = Some(format!("unhealthy: {body}"));
    }
    o
}

/// `/metrics`.
pub(crate) fn metrics(st: &State) -> Outcome {
    st.metrics
        .cache_entries
        .store(st.cache.len() as i64, Ordering::Relaxed);
    let mut r = response(st.metrics.render());
    set(
        &mut r,
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    set(&mut r, header::CACHE_CONTROL, "no-store");
    Outcome::ok(r)
}
