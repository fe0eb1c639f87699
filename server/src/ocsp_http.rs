//! OCSP over HTTP (RFC 6960 appendix A, RFC 5019 sections 5 and 6): `POST` with an
//! `application/ocsp-request` body, or `GET {ocsp}/{url-encoded base64 of the DER request}`.
//!
//! Bad requests get an OCSP error (`malformedRequest`, `unauthorized`) in a 200 response, as
//! RFC 6960 wants; HTTP errors are for what is not an OCSP exchange at all (wrong content
//! type, oversized body). Answers for one certificate without a nonce come from the cache of
//! signed answers when there is one; the rest are signed by the CA worker.

use std::sync::mpsc::{SyncSender, TrySendError};

use axum::extract::Request;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use hljca_core::ocsp::{OcspResponseStatus, error_response};
use hyper::StatusCode;
use hyper::header::{self, HeaderMap};
use time::OffsetDateTime;

use crate::State;
use crate::docs::{etag, http_date};
use crate::http::{Outcome, body, response, set};
use crate::worker::Job;

pub(crate) const REQUEST_TYPE: &str = "application/ocsp-request";
const RESPONSE_TYPE: &str = "application/ocsp-response";

fn status_name(s: OcspResponseStatus) -> &'static str {
    match s {
        OcspResponseStatus::Successful => "successful",
        OcspResponseStatus::MalformedRequest => "malformedRequest",
        OcspResponseStatus::InternalError => "internalError",
        OcspResponseStatus::TryLater => "tryLater",
        OcspResponseStatus::SigRequired => "sigRequired",
        OcspResponseStatus::Unauthorized => "unauthorized",
    }
}

fn der_response(der: Bytes) -> Response {
    let mut r = response(der);
    set(&mut r, header::CONTENT_TYPE, RESPONSE_TYPE);
    r
}

/// An OCSP error answer (HTTP 200).
fn refused(st: &State, status: OcspResponseStatus, why: String) -> Outcome {
    let name = status_name(status);
    st.metrics.ocsp(name);
    let mut r = der_response(Bytes::from(error_response(status)));
    set(&mut r, header::CACHE_CONTROL, "no-store");
    Outcome {
        resp: r,
        ocsp: Some(name.into()),
        cache: None,
        refused: Some(why),
    }
}

/// `POST {ocsp}`.
pub(crate) async fn post(req: Request, st: &State, jobs: &SyncSender<Job>) -> Outcome {
    if let Some(ctype) = crate::http::other_content_type(req.headers(), REQUEST_TYPE) {
        return Outcome::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type `{ctype}`; OCSP requests are {REQUEST_TYPE}"),
        );
    }
    match body(req, st).await {
        Ok(der) => answer(&der, st, jobs, None).await,
        Err(o) => o,
    }
}

/// Percent-decoding of a path segment (`%2B`, `%2F`, `%3D` in base64).
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The DER request in a GET path: url-encoded base64 (standard or URL-safe, padded or not).
pub(crate) fn decode_get(encoded: &str) -> Option<Vec<u8>> {
    let text = percent_decode(encoded)?;
    let text: Vec<u8> = text
        .into_iter()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let trimmed: &[u8] = {
        let end = text.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1);
        &text[..end]
    };
    let cfg = base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone);
    let std = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let url = base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    std.decode(trimmed).or_else(|_| url.decode(trimmed)).ok()
}

/// `GET {ocsp}/{base64}`.
pub(crate) async fn get(req: Request, st: &State, jobs: &SyncSender<Job>) -> Outcome {
    let path = req.uri().path();
    let encoded = path.get(st.routes.ocsp.len() + 1..).unwrap_or("");
    // A DER request of max_body_bytes is 4/3 as long in base64, more when url-encoded.
    if encoded.len() > st.limits.max_body_bytes * 2 {
        return Outcome::error(StatusCode::URI_TOO_LONG, "OCSP GET request too long");
    }
    match decode_get(encoded) {
        Some(der) => answer(&der, st, jobs, Some(req.headers())).await,
        None => refused(
            st,
            OcspResponseStatus::MalformedRequest,
            "GET path is not url-encoded base64".into(),
        ),
    }
}

/// Answers one DER request; `get` carries the GET request (for its validators) when the
/// answer may be cached by HTTP caches (RFC 5019 section 6).
async fn answer(
    der: &[u8],
    st: &State,
    jobs: &SyncSender<Job>,
    get: Option<&HeaderMap>,
) -> Outcome {
    let Some(parser) = st.parser.get() else {
        return refused(
            st,
            OcspResponseStatus::TryLater,
            "responder not ready".into(),
        );
    };
    let request = match parser.parse(der) {
        Ok(r) => r,
        Err(refusal) => return refused(st, refusal.status(), refusal.to_string()),
    };
    let cacheable = request.cacheable();
    let now = OffsetDateTime::now_utc();
    if cacheable && let Some(e) = st.cache.get(&request.queries[0].cert_id_der, now) {
        st.metrics.cache(true);
        st.metrics.ocsp(e.status);
        return success(
            e.der.clone(),
            e.status.into(),
            e.this_update,
            e.next_update,
            get,
            Some(&e.etag),
            true,
        );
    }
    if cacheable {
        st.metrics.cache(false);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    match jobs.try_send(Job::Answer { request, reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return refused(
                st,
                OcspResponseStatus::TryLater,
                "signing queue full".into(),
            );
        }
        Err(TrySendError::Disconnected(_)) => {
            return refused(st, OcspResponseStatus::TryLater, "shutting down".into());
        }
    }
    match rx.await {
        Ok(Ok(reply)) => {
            for s in &reply.statuses {
                st.metrics.ocsp(s);
            }
            let statuses = reply.statuses.join(",");
            let get = if cacheable { get } else { None };
            success(
                reply.der,
                statuses,
                reply.this_update,
                reply.next_update,
                get,
                None,
                false,
            )
        }
        Ok(Err(e)) => refused(st, OcspResponseStatus::InternalError, e),
        Err(_) => refused(
            st,
            OcspResponseStatus::InternalError,
            "CA worker gone".into(),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn success(
    der: Bytes,
    statuses: String,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    get: Option<&HeaderMap>,
    tag: Option<&str>,
    hit: bool,
) -> Outcome {
    let Some(req) = get else {
        let mut r = der_response(der);
        set(&mut r, header::CACHE_CONTROL, "no-store");
        return Outcome {
            resp: r,
            ocsp: Some(statuses),
            cache: Some(hit),
            refused: None,
        };
    };
    let tag = tag.map(str::to_owned).unwrap_or_else(|| etag(&der));
    let mut r = if crate::pages::not_modified(req, &tag, this_update) {
        let mut r = response(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        der_response(der)
    };
    let max_age = (next_update - OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    set(
        &mut r,
        header::CACHE_CONTROL,
        &format!("max-age={max_age}, public, no-transform, must-revalidate"),
    );
    set(&mut r, header::ETAG, &tag);
    set(&mut r, header::LAST_MODIFIED, &http_date(this_update));
    set(&mut r, header::EXPIRES, &http_date(next_update));
    Outcome {
        resp: r,
        ocsp: Some(statuses),
        cache: Some(hit),
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_decode() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0xfb, 0xff];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(decode_get(&b64), Some(der.clone()));
        let enc = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(decode_get(&enc), Some(der.clone()));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        assert_eq!(decode_get(&url), Some(der));
        assert_eq!(decode_get("%zz"), None);
        assert_eq!(decode_get("!!!"), None);
    }
}
