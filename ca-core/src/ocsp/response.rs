//! Signed OCSP answers (RFC 6960 section 4.2, RFC 5019 section 2.2): a BasicOCSPResponse by
//! the delegated signer, responderID byKey, the signer's certificate included, thisUpdate now
//! and nextUpdate a validity later (never past the signer's notAfter).

use crate::Rule;
use der::Encode;
use der::asn1::{BitString, GeneralizedTime, OctetString};
use time::OffsetDateTime;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::{Query, Request, Responder, Status};
use crate::error::{CoreError, Result};
use crate::revoke::Reason;

/// ecdsa-with-SHA256 (RFC 5758 section 3.2): the OCSP signer's key is always P-256.
const OID_ECDSA_SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// A signed answer and the times in it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The DER OCSPResponse.
    pub der: Vec<u8>,
    /// thisUpdate (and producedAt).
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// An OCSPResponse without a signed body: `malformedRequest`, `internalError`, `tryLater`,
/// `unauthorized` (RFC 6960 section 4.2.1).
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    let resp = OcspResponse {
        response_status: status,
        response_bytes: None,
    };
    // Two fixed bytes of ENUMERATED in a SEQUENCE: encoding cannot fail; the literal keeps
    // the error path free of panics all the same.
    resp.to_der()
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, status as u8])
}

fn gtime(t: OffsetDateTime) -> Result<OcspGeneralizedTime> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| CoreError::Encoding {
        what: "OCSP time",
        reason: format!("{t} is before 1970"),
    })?;
    let g = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(CoreError::der("OCSP time"))?;
    Ok(OcspGeneralizedTime(g))
}

fn cert_status(s: &Status) -> Result<CertStatus> {
    Ok(match s {
        Status::Good => CertStatus::good(),
        Status::Unknown => CertStatus::unknown(),
        Status::Revoked { at, reason } => CertStatus::Revoked(RevokedInfo {
            revocation_time: gtime(*at)?,
            // RFC 5280 section 5.3.1: no reasonCode rather than `unspecified`.
            revocation_reason: reason
                .filter(|r| *r != Reason::Unspecified)
                .map(Reason::crl_reason),
        }),
    })
}

impl Responder {
    /// Signs the answer to `request` with `statuses` (one per query, in order) at `now`.
    pub fn sign(
        &self,
        key: &dyn rcgen::SigningKey,
        request: &Request,
        statuses: &[Status],
        now: OffsetDateTime,
    ) -> Result<Signed> {
        if statuses.len() != request.queries.len() {
            return Err(CoreError::refuse(
                Rule::Internal,
                "an OCSP answer needs one status per certificate asked about",
            ));
        }
        let items: Vec<(&Query, &Status)> = request.queries.iter().zip(statuses).collect();
        self.sign_items(key, &items, request.nonce.as_ref(), now)
    }

    /// Signs an answer about `items` (query, status) with the nonce (if any) echoed.
    pub fn sign_items(
        &self,
        key: &dyn rcgen::SigningKey,
        items: &[(&Query, &Status)],
        nonce: Option<&x509_cert::ext::Extension>,
        now: OffsetDateTime,
    ) -> Result<Signed> {
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(CoreError::refuse(
                Rule::Internal,
                "the OCSP signer key is not ECDSA P-256",
            ));
        }
        if key.der_bytes() != self.signer.key_bits() {
            return Err(CoreError::IssuerMismatch(
                "the OCSP signing certificate does not hold the OCSP signer key".into(),
            ));
        }
        let this_update = now.replace_nanosecond(0).unwrap_or(now);
        let next_update = (this_update + self.validity).min(self.signer.not_after());
        let produced = gtime(this_update)?;
        let next = gtime(next_update)?;
        let mut responses = Vec::with_capacity(items.len());
        for (q, s) in items {
            responses.push(SingleResponse {
                cert_id: q.cert_id.clone(),
                cert_status: cert_status(s)?,
                this_update: produced,
                next_update: Some(next),
                single_extensions: None,
            });
        }
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(self.signer.key_hash().to_vec())
                    .map_err(CoreError::der("responderID"))?,
            ),
            produced_at: produced,
            responses,
            response_extensions: nonce.map(|n| vec![n.clone()]),
        };
        let tbs_der = tbs.to_der().map_err(CoreError::der("ResponseData"))?;
        let sig = key
            .sign(&tbs_der)
            .map_err(CoreError::cert("OCSP response signature"))?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: OID_ECDSA_SHA256,
                parameters: None,
            },
            signature: BitString::from_bytes(&sig).map_err(CoreError::der("OCSP signature"))?,
            certs: Some(vec![self.signer.cert().clone()]),
        };
        let der = OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(CoreError::der("OCSPResponse"))?;
        Ok(Signed {
            der,
            this_update,
            next_update,
        })
    }
}
