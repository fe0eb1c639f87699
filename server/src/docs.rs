//! The documents the server publishes (the CRL, the CA certificates) with their HTTP caching
//! headers, and the paths they are published at: those of the URLs written into certificates.

use bytes::Bytes;
use hljca_core::Config;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

/// IMF-fixdate (RFC 9110 section 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
const HTTP_DATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// An HTTP date.
pub fn http_date(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(HTTP_DATE)
        .unwrap_or_default()
}

/// Reads an HTTP date (IMF-fixdate only, what every current client sends).
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(s.trim(), HTTP_DATE)
        .ok()
        .map(|t| t.assume_utc())
}

/// A strong entity tag: the first 16 bytes of SHA-256, in hex.
pub fn etag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(body)[..16]))
}

/// A published document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The body.
    pub body: Bytes,
    /// Content-Type.
    pub content_type: &'static str,
    /// ETag.
    pub etag: String,
    /// Last-Modified (thisUpdate of a CRL, notBefore of a certificate).
    pub last_modified: OffsetDateTime,
    /// Until when caches may keep it: a CRL's nextUpdate; `None` for a day from each request.
    pub expires: Option<OffsetDateTime>,
}

/// How long a CA certificate may be cached.
const CERT_MAX_AGE: i64 = 86_400;

impl Doc {
    /// A DER document.
    pub fn new(
        body: Vec<u8>,
        content_type: &'static str,
        last_modified: OffsetDateTime,
        expires: Option<OffsetDateTime>,
    ) -> Doc {
        Doc {
            etag: etag(&body),
            body: body.into(),
            content_type,
            last_modified,
            expires,
        }
    }

    /// Cache-Control max-age at `now`.
    pub fn max_age(&self, now: OffsetDateTime) -> i64 {
        match self.expires {
            Some(e) => (e - now).whole_seconds().max(0),
            None => CERT_MAX_AGE,
        }
    }
}

/// Where each document is served (paths of the configured URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// The issuing CA's CRL (`urls.crl`).
    pub crl: String,
    /// The issuing CA certificate (`urls.ca_issuers`).
    pub issuing: String,
    /// The root CA certificate: `root` beside the issuing one, same extension.
    pub root: String,
    /// OCSP (`urls.ocsp`, else `/ocsp`).
    pub ocsp: String,
}

/// The path (without query) of an absolute URL; `/` when it has none.
pub fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    if path.is_empty() {
        "/".into()
    } else {
        path.to_owned()
    }
}

impl Routes {
    /// The paths of `config`'s URLs.
    pub fn from_config(config: &Config) -> Routes {
        let issuing = url_path(&config.urls.ca_issuers);
        let (dir, file) = issuing.rsplit_once('/').unwrap_or(("", "issuing.cer"));
        let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or("cer");
        let ocsp = config
            .urls
            .ocsp
            .as_deref()
            .map(url_path)
            .unwrap_or_else(|| "/ocsp".into());
        Routes {
            crl: url_path(&config.urls.crl),
            root: format!("{dir}/root.{ext}"),
            issuing,
            ocsp: ocsp.trim_end_matches('/').to_owned(),
        }
    }

    /// The configured URLs that are not under `[serve] public_base_url`.
    pub fn outside_base(config: &Config) -> Vec<String> {
        let base = config.serve.public_base_url.trim_end_matches('/');
        let mut urls = vec![config.urls.crl.clone(), config.urls.ca_issuers.clone()];
        urls.extend(config.urls.ocsp.clone());
        urls.into_iter()
            .filter(|u| !u.starts_with(&format!("{base}/")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_the_urls() {
        assert_eq!(
            url_path("http://x.example/ca/issuing.cer"),
            "/ca/issuing.cer"
        );
        assert_eq!(url_path("http://x.example"), "/");
        assert_eq!(url_path("http://x.example:8080/a.crl?x=1"), "/a.crl");
        let mut c = Config::new(hljca_core::KeyStore::File);
        let r = Routes::from_config(&c);
        assert_eq!(r.crl, "/crl/issuing.crl");
        assert_eq!(r.issuing, "/ca/issuing.cer");
        assert_eq!(r.root, "/ca/root.cer");
        assert_eq!(r.ocsp, "/ocsp");
        assert!(Routes::outside_base(&c).is_empty());
        c.urls.ca_issuers = "http://other.example/aia/sub.crt".into();
        c.urls.ocsp = None;
        let r = Routes::from_config(&c);
        assert_eq!(r.root, "/aia/root.crt");
        assert_eq!(r.ocsp, "/ocsp");
        assert_eq!(
            Routes::outside_base(&c),
            vec!["http://other.example/aia/sub.crt"]
        );
    }

    #[test]
    fn http_dates_round_trip() {
        let t = time::macros::datetime!(1994-11-06 08:49:37 UTC);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
