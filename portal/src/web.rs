//! HTTP plumbing of the portal: answers with the security headers, cookies, form bodies and
//! multipart uploads.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

/// Largest form body (not an upload).
pub(crate) const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest upload body: a 10 MiB material and the multipart framing around it.
pub(crate) const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;

/// The Content-Security-Policy of every page: nothing from elsewhere, no script at all.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                              form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A response and, when the request was refused, why (for the access log).
pub struct Answer {
    /// The response.
    pub resp: Response<Full<Bytes>>,
    /// Why the request was refused.
    pub refused: Option<String>,
}

impl Answer {
    pub(crate) fn new(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Answer {
        let mut resp = Response::new(Full::new(body.into()));
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
}

fn set(resp: &mut Response<Full<Bytes>>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The value of cookie `name`.
pub(crate) fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The query string's parameters.
pub(crate) fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
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

/// Reads a body of at most `max` bytes: refused by its declared length first, and bounded
/// while it is read. The server's own routes read their bodies through this too.
pub async fn body(req: Request<Incoming>, max: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// A url-encoded form body as a map (the last of repeated names wins).
pub(crate) fn form(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// One part of a multipart body.
#[derive(Debug)]
pub(crate) struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub data: Bytes,
}

/// The boundary of a `multipart/form-data` content type.
pub(crate) fn boundary(ctype: &str) -> Option<String> {
    let (essence, params) = ctype.split_once(';')?;
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts; `None` when it is malformed.
pub(crate) fn multipart(body: &Bytes, boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let mut parts = Vec::new();
    let mut pos = finder.find(body)? + delim.len();
    loop {
        let rest = body.get(pos..)?;
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        let rest = rest.strip_prefix(b"\r\n")?;
        let start = pos + 2;
        let head_end = memchr::memmem::find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let data_start = start + head_end + 4;
        let next = finder.find(body.get(data_start..)?)? + data_start;
        // The data ends before the CRLF that precedes the next delimiter.
        let data_end = next.checked_sub(2).filter(|e| *e >= data_start)?;
        let (name, file_name) = disposition(head)?;
        parts.push(Part {
            name,
            file_name,
            data: body.slice(data_start..data_end),
        });
        pos = next + delim.len();
    }
}

/// The `name` and `filename` of a part's Content-Disposition.
fn disposition(head: &str) -> Option<(String, Option<String>)> {
    let line = head
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let mut name = None;
    let mut file = None;
    for p in line.split(';').skip(1) {
        let Some((k, v)) = p.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(v),
            "filename" => file = Some(v),
            _ => {}
        }
    }
    Some((name?, file))
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
    fn multipart_parts() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\
              Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\nx\r\n--XyZ--\r\n",
        );
        let parts = multipart(&body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(&parts[0].data[..], b"abc");
        assert_eq!(parts[1].file_name.as_deref(), Some("a.pdf"));
        assert_eq!(&parts[1].data[..], b"%PDF-1.4\r\nx");
        assert!(multipart(&Bytes::from_static(b"garbage"), "XyZ").is_none());
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert!(boundary("text/plain").is_none());
    }

    #[test]
    fn constant_time_compare() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
