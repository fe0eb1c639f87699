//! HTTP plumbing of the portal: answers with the security headers, cookies (the `cookie`
//! crate), bounded bodies and form bodies. Multipart uploads are `upload.rs`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cookie::Cookie;
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{StatusCode, Uri};

/// Largest form body (not an upload).
pub(crate) const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest upload body: a 10 MiB material and the multipart framing around it.
pub(crate) const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;

/// The Content-Security-Policy of every page: nothing from elsewhere, no script at all.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                              form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Marks a response the portal made (in its extensions), with why the request was refused
/// when it was, for the server's access log. A response without it came from a layer (the
/// body limit, the timeout).
#[derive(Debug, Clone)]
pub struct Answered {
    /// Why the request was refused.
    pub refused: Option<String>,
}

/// A response and, when the request was refused, why (for the access log).
pub struct Answer {
    /// The response.
    pub resp: Response,
    /// Why the request was refused.
    pub refused: Option<String>,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut resp = self.resp;
        resp.extensions_mut().insert(Answered {
            refused: self.refused,
        });
        resp
    }
}

impl Answer {
    pub(crate) fn new(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Answer {
        let mut resp = Response::new(Body::from(body.into()));
        *resp.status_mut() = status;
        set(&mut resp, header::CONTENT_TYPE, ctype);
        let h = resp.headers_mut();
        for (k, v) in [
            ("content-security-policy", CSP),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            h.insert(
                header::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        Answer {
            resp,
            refused: None,
        }
    }

    /// An HTML page.
    pub(crate) fn html(status: StatusCode, page: maud::Markup) -> Answer {
        Answer::new(status, "text/html; charset=utf-8", page.into_string())
    }

    /// 303 See Other to `to` (after a form post).
    pub(crate) fn redirect(to: &str) -> Answer {
        let mut a = Answer::new(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
        set(&mut a.resp, header::LOCATION, to);
        a
    }

    /// JSON (the gateway's answers).
    pub(crate) fn json(status: StatusCode, v: &serde_json::Value) -> Answer {
        Answer::new(status, "application/json", v.to_string())
    }

    /// Marks the answer refused, for the log.
    pub(crate) fn refused(mut self, why: impl Into<String>) -> Answer {
        self.refused = Some(why.into());
        self
    }

    /// Adds a header.
    pub(crate) fn with(mut self, name: header::HeaderName, value: &str) -> Answer {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.resp.headers_mut().append(name, v);
        }
        self
    }

    /// Adds a `Set-Cookie` header.
    pub(crate) fn with_cookie(self, c: &Cookie<'_>) -> Answer {
        self.with(header::SET_COOKIE, &c.to_string())
    }
}

fn set(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The query string's parameters.
pub(crate) fn query(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than allowed (declared or read).
    TooLarge,
    /// The connection failed while it was read.
    Unreadable(String),
}

/// True when `e`, or an error under it, is a body length limit's (this one's, or the
/// server's `RequestBodyLimitLayer`).
pub(crate) fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Reads a body of at most `max` bytes: refused by its declared length first, and bounded
/// while it is read. The server's own routes read their bodies through this too.
pub async fn body(req: Request, max: usize) -> Result<Bytes, BodyError> {
    let (parts, body) = req.into_parts();
    read(&parts.headers, body, max).await
}

/// [`body`] from the parts of a request.
pub(crate) async fn read(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if over_limit(&*e) => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// A url-encoded form body as a map (the last of repeated names wins).
pub(crate) fn form(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// Compares two secrets in constant time (for their length).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
