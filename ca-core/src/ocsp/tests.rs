//! Requests read and answers signed against an in-memory issuing CA and OCSP signer.

use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use time::macros::datetime;
use x509_cert::ext::Extension;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspRequest, OcspResponse, Request as OcspReq, TbsRequest,
};

use super::*;

struct World {
    issuing_der: Vec<u8>,
    signer_key: KeyPair,
    responder: Responder,
}

fn world() -> World {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = crate::profile::ca_subject("test issuing").unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = p.self_signed(&ca_key).unwrap();
    let issuing_der = ca_cert.der().to_vec();
    let signer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = Issuer::from_ca_cert_der(&issuing_der.as_slice().into(), &ca_key).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let signer_der = signer::signer_params(now, 7, now + time::Duration::days(3650))
        .unwrap()
        .signed_by(&signer_key, &issuer)
        .unwrap()
        .der()
        .to_vec();
    let signer = SignerCert::from_der(&signer_der).unwrap();
    let responder = Responder::new(&issuing_der, signer, time::Duration::hours(24)).unwrap();
    World {
        issuing_der,
        signer_key,
        responder,
    }
}

fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|n| {
        vec![Extension {
            extn_id: OID_NONCE,
            critical: false,
            extn_value: der::asn1::OctetString::new(
                der::asn1::OctetString::new(n).unwrap().to_der().unwrap(),
            )
            .unwrap(),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            request_list: ids
                .into_iter()
                .map(|req_cert| OcspReq {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions,
            ..Default::default()
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

#[test]
fn reads_its_own_requests_and_refuses_others() {
    let w = world();
    let q = w.responder.sha1_cert_id("7f0102").unwrap();
    let req = w
        .responder
        .parse(&request(vec![q.cert_id.clone()], None))
        .unwrap();
    assert_eq!(req.queries[0].serial, "7f0102");
    assert_eq!(req.queries[0].cert_id_der, q.cert_id_der);
    assert!(req.cacheable());

    // Garbage, a truncated request and an empty list are malformed.
    for bad in [
        b"hello".to_vec(),
        request(vec![q.cert_id.clone()], None)[..20].to_vec(),
        request(vec![], None),
    ] {
        assert!(matches!(
            w.responder.parse(&bad),
            Err(Refusal::Malformed(_))
        ));
    }
    // Another issuer's key hash: unauthorized.
    let mut other = q.cert_id.clone();
    other.issuer_key_hash = der::asn1::OctetString::new(vec![0u8; 20]).unwrap();
    assert!(matches!(
        w.responder.parse(&request(vec![other.clone()], None)),
        Err(Refusal::Unauthorized(_))
    ));
    // An unknown hash algorithm: unauthorized (the responder cannot tell it is the issuer).
    other = q.cert_id.clone();
    other.hash_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    assert!(matches!(
        w.responder.parse(&request(vec![other], None)),
        Err(Refusal::Unauthorized(_))
    ));
    // Nonces: 1 to 32 octets.
    assert!(
        w.responder
            .parse(&request(vec![q.cert_id.clone()], Some(&[7; 32])))
            .unwrap()
            .nonce
            .is_some()
    );
    assert!(matches!(
        w.responder
            .parse(&request(vec![q.cert_id.clone()], Some(&[7; 33]))),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn signs_answers_that_verify() {
    let w = world();
    let good = w.responder.sha1_cert_id("01").unwrap();
    let revoked = w.responder.sha1_cert_id("02").unwrap();
    let der = request(
        vec![good.cert_id.clone(), revoked.cert_id.clone()],
        Some(b"0123456789abcdef"),
    );
    let req = w.responder.parse(&der).unwrap();
    assert!(!req.cacheable());
    let at = datetime!(2026-01-02 03:04:05 UTC);
    let now = time::OffsetDateTime::now_utc();
    let statuses = [
        Status::Good,
        Status::Revoked {
            at,
            reason: Some(Reason::KeyCompromise),
        },
    ];
    let signed = w
        .responder
        .sign(&w.signer_key, &req, &statuses, now)
        .unwrap();
    assert!(signed.next_update > signed.this_update);

    let resp = OcspResponse::from_der(&signed.der).unwrap();
    assert_eq!(resp.response_status, OcspResponseStatus::Successful);
    let basic =
        BasicOcspResponse::from_der(resp.response_bytes.unwrap().response.as_bytes()).unwrap();
    let data = &basic.tbs_response_data;
    assert_eq!(data.responses[0].cert_id, good.cert_id);
    assert_eq!(data.responses[0].cert_status, CertStatus::good());
    match &data.responses[1].cert_status {
        CertStatus::Revoked(info) => {
            assert_eq!(
                info.revocation_reason,
                Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
            );
            assert_eq!(
                info.revocation_time.0.to_unix_duration().as_secs() as i64,
                at.unix_timestamp()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(data.nonce(), req.nonce.as_ref().and_then(|_| data.nonce()));
    assert_eq!(
        data.response_extensions.as_ref().unwrap()[0].extn_id,
        OID_NONCE
    );
    // The signature verifies with the signer's public key over the DER ResponseData.
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(w.responder.signer().key_bits()).unwrap();
    let sig = p256::ecdsa::Signature::from_der(basic.signature.raw_bytes()).unwrap();
    vk.verify(&data.to_der().unwrap(), &sig).unwrap();
    assert_eq!(
        basic.certs.unwrap()[0].to_der().unwrap(),
        w.responder.signer().der()
    );
    // The issuing CA certificate itself is not ours to answer for by its own name.
    assert!(!w.issuing_der.is_empty());
}

#[test]
fn wrong_key_or_status_count_is_refused() {
    let w = world();
    let q = w.responder.sha1_cert_id("01").unwrap();
    let req = w.responder.parse(&request(vec![q.cert_id], None)).unwrap();
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        w.responder
            .sign(&other, &req, &[Status::Good], now)
            .is_err()
    );
    assert!(w.responder.sign(&w.signer_key, &req, &[], now).is_err());
}

#[test]
fn error_responses_and_serials() {
    assert_eq!(
        error_response(OcspResponseStatus::MalformedRequest),
        vec![0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    assert_eq!(
        error_response(OcspResponseStatus::Unauthorized),
        vec![0x30, 0x03, 0x0a, 0x01, 0x06]
    );
    assert_eq!(serial_hex(&[0, 0, 0x12, 0x34]), "1234");
    assert_eq!(serial_hex(&[]), "00");
}

#[test]
fn signer_renews_at_half_life() {
    let nb = datetime!(2026-01-01 00:00 UTC);
    let na = datetime!(2026-01-08 00:00 UTC);
    assert!(!signer::needs_renewal(
        nb,
        na,
        datetime!(2026-01-04 11:59 UTC)
    ));
    assert!(signer::needs_renewal(
        nb,
        na,
        datetime!(2026-01-04 12:00 UTC)
    ));
    assert!(signer::needs_renewal(
        nb,
        na,
        datetime!(2025-12-31 00:00 UTC)
    ));
    let w = world();
    let s = w.responder.signer();
    assert!(!s.needs_renewal(time::OffsetDateTime::now_utc()));
    // notBefore is set back an hour, notAfter `days` ahead.
    assert_eq!((s.not_after() - s.not_before()).whole_hours(), 7 * 24 + 1);
}
