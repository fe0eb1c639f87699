//! Multipart uploads (RFC 7578), read as a stream with `multer` under the upload's size
//! limit: the parts are taken one at a time from the connection, never the whole body first.

use axum::body::Body;
use bytes::Bytes;

use crate::web::{MAX_UPLOAD_BYTES, over_limit};

/// One part of a multipart body.
#[derive(Debug)]
pub(crate) struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub data: Bytes,
}

/// Why an upload was not read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UploadError {
    /// Over [`MAX_UPLOAD_BYTES`].
    TooLarge,
    /// The connection failed while it was read.
    Unreadable(String),
    /// Not `multipart/form-data` as RFC 7578 has it (or a part without a name).
    Malformed,
}

/// The boundary of a `multipart/form-data` content type (at most 70 characters, RFC 2046).
pub(crate) fn boundary(ctype: &str) -> Option<String> {
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(ctype)
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

fn classify(e: multer::Error) -> UploadError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            UploadError::TooLarge
        }
        multer::Error::StreamReadFailed(e) if over_limit(&*e) => UploadError::TooLarge,
        multer::Error::StreamReadFailed(e) => UploadError::Unreadable(e.to_string()),
        _ => UploadError::Malformed,
    }
}

/// Reads the parts of a `multipart/form-data` body as they arrive, at most
/// [`MAX_UPLOAD_BYTES`] in all.
pub(crate) async fn parts(body: Body, boundary: String) -> Result<Vec<Part>, UploadError> {
    let limit = multer::SizeLimit::new().whole_stream(MAX_UPLOAD_BYTES as u64);
    let constraints = multer::Constraints::new().size_limit(limit);
    let mut m = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut parts = Vec::new();
    while let Some(field) = m.next_field().await.map_err(classify)? {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(UploadError::Malformed);
        };
        let file_name = field.file_name().map(str::to_owned);
        let data = field.bytes().await.map_err(classify)?;
        parts.push(Part {
            name,
            file_name,
            data,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &'static [u8]) -> Result<Vec<Part>, UploadError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| UploadError::Unreadable(e.to_string()))?;
        rt.block_on(parts(Body::from(body), "XyZ".into()))
    }

    #[test]
    fn multipart_parts() {
        let parts = read(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\
              Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\nx\r\n--XyZ--\r\n",
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(&parts[0].data[..], b"abc");
        assert_eq!(parts[1].file_name.as_deref(), Some("a.pdf"));
        assert_eq!(&parts[1].data[..], b"%PDF-1.4\r\nx");
        assert!(read(b"garbage").is_err());
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert!(boundary("text/plain").is_none());
        assert!(boundary("multipart/mixed; boundary=XyZ").is_none());
    }
}
