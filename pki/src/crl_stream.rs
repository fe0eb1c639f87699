//! A CRL encoded as its entries arrive: memory stays flat in the number of entries.
//!
//! Entries are DER-encoded one at a time (x509-cert's `RevokedCert`) into a spool file. The
//! spool's length gives the `revokedCertificates` header; the TBS (header, fields, spool,
//! extensions) is then hashed in one streaming pass and the digest signed on the token; the
//! final file is written in a second pass with its own SHA-256. Nothing holds more than a
//! buffer of the list.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use der::asn1::{BitString, ContextSpecific, GeneralizedTime, OctetString, UtcTime};
use der::{Encode, Header, Length, Tag, TagMode, TagNumber};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use crate::Reason;
use crate::{PkiError, Result};

const ID_CE_CRL_REASONS: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.21");
const ID_CE_CRL_NUMBER: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.20");
const ID_CE_AUTHORITY_KEY_IDENTIFIER: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.35");
const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Read/write buffer size of the passes.
const BUF: usize = 1 << 16;

/// RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050.
pub fn x509_time(t: OffsetDateTime) -> Result<Time> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| PkiError::Parse {
        what: "a CRL time".into(),
        reason: format!("{t} is before 1970"),
    })?;
    let d = std::time::Duration::from_secs(secs);
    if t.year() < 2050 {
        Ok(Time::UtcTime(
            UtcTime::from_unix_duration(d).map_err(PkiError::der("CRL time"))?,
        ))
    } else {
        Ok(Time::GeneralTime(
            GeneralizedTime::from_unix_duration(d).map_err(PkiError::der("CRL time"))?,
        ))
    }
}

/// The spool of encoded entries, in the order they were pushed.
pub struct Entries {
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    count: usize,
    buf: Vec<u8>,
}

impl Entries {
    /// A new spool at `path` (replaced if it exists).
    pub fn create(path: &Path) -> Result<Entries> {
        let f = File::create(path).map_err(PkiError::io("creating", path))?;
        Ok(Entries {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(BUF, f),
            len: 0,
            count: 0,
            buf: vec![0; 256],
        })
    }

    /// Appends one revoked certificate. `unspecified` is left out of the entry (RFC 5280
    /// section 5.3.1: the reason code SHOULD be absent rather than unspecified).
    pub fn push(
        &mut self,
        serial: &[u8],
        at: OffsetDateTime,
        reason: Option<Reason>,
    ) -> Result<()> {
        let exts: Option<Extensions> = match reason {
            None | Some(Reason::Unspecified) => None,
            Some(r) => Some(vec![Extension {
                extn_id: ID_CE_CRL_REASONS,
                critical: false,
                extn_value: OctetString::new(der_of(&r.crl_reason(), "CRL reason")?)
                    .map_err(PkiError::der("CRL reason"))?,
            }]),
        };
        let entry = RevokedCert {
            serial_number: SerialNumber::new(serial).map_err(PkiError::der("CRL serial number"))?,
            revocation_date: x509_time(at)?,
            crl_entry_extensions: exts,
        };
        let n = usize::try_from(entry.encoded_len().map_err(PkiError::der("CRL entry"))?)
            .map_err(|_| PkiError::der("CRL entry")(der::ErrorKind::Overflow.into()))?;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        let bytes = entry
            .encode_to_slice(&mut self.buf[..n])
            .map_err(PkiError::der("CRL entry"))?;
        self.out
            .write_all(bytes)
            .map_err(PkiError::io("writing", &self.path))?;
        self.len += n as u64;
        self.count += 1;
        Ok(())
    }

    /// How many entries were pushed.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// What the CRL says besides its entries.
pub struct Head<'a> {
    /// The issuer's Name, DER, exactly as in the issuing certificate's subject.
    pub issuer: &'a [u8],
    /// Authority key identifier (the issuing certificate's SKI).
    pub aki: &'a [u8],
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// The finished CRL file.
#[derive(Debug)]
pub struct Written {
    /// SHA-256 of the whole DER file, hex.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

fn der_of(v: &impl Encode, what: &'static str) -> Result<Vec<u8>> {
    v.to_der().map_err(PkiError::der(what))
}

fn header(tag: Tag, len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len)
        .map_err(|_| PkiError::der("CRL length")(der::ErrorKind::Overflow.into()))
        .and_then(|n| Length::try_from(n).map_err(PkiError::der("CRL length")))?;
    der_of(
        &Header::new(tag, len).map_err(PkiError::der("CRL length"))?,
        "CRL header",
    )
}

/// The fixed parts of the TBS before and after the entries.
struct Parts {
    tbs_header: Vec<u8>,
    before: Vec<u8>,
    list_header: Vec<u8>,
    after: Vec<u8>,
    alg: Vec<u8>,
}

fn parts(head: &Head<'_>, entries_len: u64) -> Result<Parts> {
    let alg = der_of(
        &x509_cert::spki::AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        "CRL signature algorithm",
    )?;
    let mut before = der_of(&x509_cert::Version::V2, "CRL version")?;
    before.extend_from_slice(&alg);
    before.extend_from_slice(head.issuer);
    before.extend(der_of(&x509_time(head.this_update)?, "CRL thisUpdate")?);
    before.extend(der_of(&x509_time(head.next_update)?, "CRL nextUpdate")?);
    // RFC 5280 section 5.1.2.6: no revoked certificates, no list at all.
    let list_header = if entries_len == 0 {
        Vec::new()
    } else {
        header(Tag::Sequence, entries_len)?
    };
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
    let key_id = ContextSpecific {
        tag_number: TagNumber::N0,
        tag_mode: TagMode::Implicit,
        value: OctetString::new(head.aki).map_err(PkiError::der("CRL AKI"))?,
    };
    let mut aki = header(
        Tag::Sequence,
        u64::from(u32::from(
            key_id.encoded_len().map_err(PkiError::der("CRL AKI"))?,
        )),
    )?;
    aki.extend(der_of(&key_id, "CRL AKI")?);
    let exts: Extensions = vec![
        Extension {
            extn_id: ID_CE_AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(aki).map_err(PkiError::der("CRL AKI"))?,
        },
        Extension {
            extn_id: ID_CE_CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(der_of(&head.number, "CRL number")?)
                .map_err(PkiError::der("CRL number"))?,
        },
    ];
    let after = der_of(
        &ContextSpecific {
            tag_number: TagNumber::N0,
            tag_mode: TagMode::Explicit,
            value: exts,
        },
        "extensions",
    )?;
    let body = (before.len() + list_header.len() + after.len()) as u64 + entries_len;
    Ok(Parts {
        tbs_header: header(Tag::Sequence, body)?,
        before,
        list_header,
        after,
        alg,
    })
}

/// Feeds `w` the TBS: its header, the fixed fields, the spooled entries and the extensions.
fn tbs(
    parts: &Parts,
    spool: &Path,
    entries_len: u64,
    w: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    w(&parts.tbs_header)?;
    w(&parts.before)?;
    w(&parts.list_header)?;
    let mut r = BufReader::with_capacity(
        BUF,
        File::open(spool).map_err(PkiError::io("opening", spool))?,
    );
    let mut buf = vec![0u8; BUF];
    let mut seen = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(PkiError::io("reading", spool))?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        w(&buf[..n])?;
    }
    if seen != entries_len {
        return Err(PkiError::Changed {
            what: "CRL spool",
            path: spool.to_path_buf(),
            seen,
            expected: entries_len,
        });
    }
    w(&parts.after)
}

/// Signs a SHA-256 digest, giving a DER ECDSA signature (the CA key, on its token or in its file).
pub type DigestSigner<'a, E> = &'a dyn Fn(&[u8; 32]) -> Result<Vec<u8>, E>;

/// Finishes the CRL into `out`: hashes the TBS, has `sign` sign the digest (a DER ECDSA
/// signature), writes the file and removes the spool.
pub fn finish<E: From<PkiError>>(
    entries: Entries,
    head: &Head<'_>,
    sign: DigestSigner<'_, E>,
    out: &Path,
) -> Result<Written, E> {
    let Entries {
        path: spool,
        out: w,
        len,
        ..
    } = entries;
    w.into_inner()
        .map_err(|e| PkiError::io("writing", &spool)(e.into_error()))?;
    let parts = parts(head, len)?;
    let mut h = Sha256::new();
    tbs(&parts, &spool, len, &mut |b| {
        h.update(b);
        Ok(())
    })?;
    let digest: [u8; 32] = h.finalize().into();
    let sig = sign(&digest)?;
    let sig = der_of(
        &BitString::from_bytes(&sig).map_err(PkiError::der("CRL signature"))?,
        "CRL signature",
    )?;
    let tbs_len =
        (parts.tbs_header.len() + parts.before.len() + parts.list_header.len() + parts.after.len())
            as u64
            + len;
    let outer = header(
        Tag::Sequence,
        tbs_len + (parts.alg.len() + sig.len()) as u64,
    )?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .map_err(PkiError::io("creating", out))?;
    let mut fw = BufWriter::with_capacity(BUF, f);
    let mut file_hash = Sha256::new();
    let mut size = 0u64;
    let mut put = |b: &[u8]| -> Result<()> {
        file_hash.update(b);
        size += b.len() as u64;
        fw.write_all(b).map_err(PkiError::io("writing", out))
    };
    put(&outer)?;
    tbs(&parts, &spool, len, &mut put)?;
    put(&parts.alg)?;
    put(&sig)?;
    let f = fw
        .into_inner()
        .map_err(|e| PkiError::io("writing", out)(e.into_error()))?;
    f.sync_all().map_err(PkiError::io("syncing", out))?;
    let _ = std::fs::remove_file(&spool);
    Ok(Written {
        sha256: hex::encode(file_hash.finalize()),
        size,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sign_digest(k: &rcgen::KeyPair, digest: &[u8; 32]) -> Result<Vec<u8>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use p256::pkcs8::DecodePrivateKey;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&k.serialize_der()).unwrap();
        let sig: p256::ecdsa::Signature = key.sign_prehash(digest).unwrap();
        Ok(sig.to_der().as_bytes().to_vec())
    }
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::revocation_list::CertificateRevocationList;

    /// Thousands of entries, serials with the high bit set and of odd lengths, reasons present
    /// and absent, a revocation after 2049: x509-parser reads back every entry in order and the
    /// signature verifies with the CA's public key.
    #[test]
    fn streamed_crl_parses_and_verifies() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stream test CA");
        let ca = params.self_signed(&key).unwrap();
        let (_, parsed_ca) = X509Certificate::from_der(ca.der()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Entries::create(&dir.path().join("spool")).unwrap();
        let t0 = time::macros::datetime!(2026-11-30 08:00 UTC);
        let n = 3000u32;
        for i in 0..n {
            let mut serial = vec![0x80 | (i % 7) as u8];
            serial.extend_from_slice(&i.to_be_bytes());
            let at = if i == 7 {
                time::macros::datetime!(2051-01-01 00:00 UTC)
            } else {
                t0
            };
            let reason = match i % 3 {
                0 => None,
                1 => Some(Reason::KeyCompromise),
                _ => Some(Reason::CertificateHold),
            };
            entries.push(&serial, at, reason).unwrap();
        }
        let head = Head {
            issuer: parsed_ca.tbs_certificate.subject.as_raw(),
            aki: b"0123456789abcdefghij",
            number: 300,
            this_update: t0,
            next_update: t0 + time::Duration::days(1),
        };
        let out = dir.path().join("t.crl");
        let w = finish(entries, &head, &|d| sign_digest(&key, d), &out).unwrap();
        let der = std::fs::read(&out).unwrap();
        assert_eq!(w.size, der.len() as u64);
        assert_eq!(w.sha256, hex::encode(Sha256::digest(&der)));
        assert!(!dir.path().join("spool").exists(), "spool removed");
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(crl.crl_number().unwrap().to_string(), "300");
        crl.verify_signature(parsed_ca.public_key()).unwrap();
        let listed: Vec<_> = crl.iter_revoked_certificates().collect();
        assert_eq!(listed.len(), n as usize);
        // A high first bit gets a leading zero: the INTEGER stays positive.
        assert_eq!(listed[5].raw_serial(), &[0, 0x80 | 5, 0, 0, 0, 5]);
        assert!(listed[3].reason_code().is_none(), "no reason: no extension");
        assert_eq!(listed[4].reason_code().unwrap().1.0, 1);
        assert_eq!(listed[5].reason_code().unwrap().1.0, 6);
        assert_eq!(listed[7].revocation_date.to_datetime().year(), 2051);
    }

    #[test]
    fn empty_crl_has_no_list() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let entries = Entries::create(&dir.path().join("spool")).unwrap();
        let t0 = time::macros::datetime!(2026-11-30 08:00 UTC);
        // Name: SEQUENCE {} is a valid empty RDNSequence.
        let head = Head {
            issuer: &[0x30, 0x00],
            aki: b"k",
            number: 1,
            this_update: t0,
            next_update: t0 + time::Duration::days(1),
        };
        let out = dir.path().join("e.crl");
        finish(entries, &head, &|d| sign_digest(&key, d), &out).unwrap();
        let der = std::fs::read(&out).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 0);
        assert_eq!(crl.crl_number().unwrap().to_string(), "1");
    }
}
