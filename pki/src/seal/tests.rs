//! End-to-end tests: build → parse → verify with real ECDSA P-256 keys.

use super::asn1::SesSeal;
use super::picture::tests::red_png;
use super::*;
use der::asn1::{Any, ObjectIdentifier};
use der::{Decode, Encode};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData, SigningKey};
use time::macros::datetime;

struct Fixture {
    maker_key: KeyPair,
    maker_der: Vec<u8>,
    seal_cert_der: Vec<u8>,
    picture: SealPicture,
}

fn self_signed(cn: &str) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    (key, cert.der().to_vec())
}

fn fixture_with(picture: SealPicture) -> Fixture {
    let (maker_key, maker_der) = self_signed("HLJCA Seal Maker");
    let (_seal_key, seal_cert_der) = self_signed("黑龙江测试有限公司");
    Fixture {
        maker_key,
        maker_der,
        seal_cert_der,
        picture,
    }
}

fn fixture() -> Fixture {
    fixture_with(SealPicture::from_image(red_png(64, 64), 40, 40).unwrap())
}

fn content(f: &Fixture) -> SealContent<'_> {
    SealContent {
        vendor_id: "HLJCA",
        es_id: "HLJCA-0a1b2c3d4e5f",
        seal_type: 1,
        name: "黑龙江测试有限公司",
        cert_list: vec![f.seal_cert_der.clone()],
        create_date: datetime!(2025-06-01 08:30:15.75 +08:00),
        valid_start: datetime!(2025-06-01 00:00:00 UTC),
        valid_end: datetime!(2028-06-01 00:00:00 UTC),
        picture: &f.picture,
    }
}

fn build(f: &Fixture) -> Vec<u8> {
    build_and_sign(&content(f), &f.maker_der, &f.maker_key).unwrap()
}

#[test]
fn round_trip_and_verify() {
    let f = fixture();
    let der = build(&f);
    let p = parse(&der).unwrap();
    assert_eq!(p.header_id, "ES");
    assert_eq!(p.version, SEAL_VERSION);
    assert_eq!(p.vendor_id, "HLJCA");
    assert_eq!(p.es_id, "HLJCA-0a1b2c3d4e5f");
    assert_eq!(p.seal_type, 1);
    assert_eq!(p.name, "黑龙江测试有限公司");
    assert_eq!(p.cert_list, vec![f.seal_cert_der.clone()]);
    // Sub-seconds truncated, converted to UTC.
    assert_eq!(p.create_date, datetime!(2025-06-01 00:30:15 UTC));
    assert_eq!(p.valid_start, datetime!(2025-06-01 00:00:00 UTC));
    assert_eq!(p.valid_end, datetime!(2028-06-01 00:00:00 UTC));
    assert_eq!(p.picture_kind, "PNG");
    assert_eq!(p.picture, f.picture.data);
    assert_eq!((p.width_mm, p.height_mm), (40, 40));
    assert_eq!(p.maker_cert, f.maker_der);
    assert_eq!(p.signature_algorithm, ECDSA_SHA256_OID);
    assert!(p.signature.len() > 64 && p.signature[0] == 0x30);
    p.verify_signature(&f.maker_der).unwrap();
    assert!(p.is_valid_at(datetime!(2026-01-01 00:00:00 UTC)));
    assert!(p.is_valid_at(p.valid_end));
    assert!(!p.is_valid_at(datetime!(2024-12-31 23:59:59 UTC)));
    assert!(!p.is_valid_at(datetime!(2028-06-01 00:00:01 UTC)));
    // The signed bytes are SEQUENCE { esealInfo, cert, alg } and the esealInfo
    // inside is byte-identical to the one in the seal.
    let signed = Vec::<Any>::from_der(p.signed_bytes()).unwrap();
    let outer = Vec::<Any>::from_der(&der).unwrap();
    assert_eq!(signed.len(), 3);
    assert_eq!(signed[0].to_der().unwrap(), outer[0].to_der().unwrap());
}

#[test]
fn generated_round_picture_round_trips() {
    let f = fixture_with(SealPicture::generate_round("黑龙江<测试>&有限公司", 40, 40));
    let der = build(&f);
    let p = parse(&der).unwrap();
    assert_eq!(p.picture_kind, "SVG");
    assert_eq!(p.picture, f.picture.data);
    assert!(
        String::from_utf8(p.picture.clone())
            .unwrap()
            .contains("黑龙江&lt;测试&gt;&amp;有限公司")
    );
    p.verify_signature(&f.maker_der).unwrap();
}

#[test]
fn generated_png_picture_round_trips() {
    let Some(font) = super::font::tests::installed_font() else {
        return;
    };
    let picture = SealPicture::generate_round_png("黑龙江测试有限公司", 40, 40, &font).unwrap();
    let f = fixture_with(picture);
    let der = build(&f);
    let p = parse(&der).unwrap();
    assert_eq!(p.picture_kind, "PNG");
    assert_eq!(p.picture, f.picture.data);
    assert!(p.picture.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!((p.width_mm, p.height_mm), (40, 40));
    p.verify_signature(&f.maker_der).unwrap();
    if let Some(text) = asn1parse(&der) {
        assert!(text.contains("IA5STRING         :PNG"), "{text}");
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let f = fixture();
    let der = build(&f);
    for i in 0..der.len() {
        let masks: &[u8] = if i % 7 == 0 || i + 80 >= der.len() {
            &[0x01, 0x80, 0xFF]
        } else {
            &[0x01]
        };
        for &mask in masks {
            let mut bad = der.clone();
            bad[i] ^= mask;
            let outcome = parse(&bad).and_then(|p| p.verify_signature(&f.maker_der));
            assert!(
                outcome.is_err(),
                "flip {mask:#04x} at byte {i} of {} went unnoticed",
                der.len()
            );
        }
    }
}

#[test]
fn other_maker_is_a_mismatch() {
    let f = fixture();
    let (_k, other) = self_signed("Some Other Maker");
    let p = parse(&build(&f)).unwrap();
    assert!(matches!(
        p.verify_signature(&other),
        Err(SealError::MakerMismatch)
    ));
}

#[test]
fn other_algorithm_is_unsupported() {
    let f = fixture();
    let mut seal = SesSeal::from_der(&build(&f)).unwrap();
    seal.sign_info.signature_algorithm = ObjectIdentifier::new_unwrap("1.2.156.10197.1.501");
    let p = parse(&seal.to_der().unwrap()).unwrap();
    match p.verify_signature(&f.maker_der) {
        Err(SealError::UnsupportedAlgorithm { oid }) => assert_eq!(oid, "1.2.156.10197.1.501"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn structural_strictness() {
    let f = fixture();
    let der = build(&f);
    // Trailing bytes.
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(parse(&trailing), Err(SealError::Decode { .. })));
    // 4-element (GB/T 38540-style) outer SEQUENCE.
    let mut parts = Vec::<Any>::from_der(&der).unwrap();
    parts.extend(parts.clone());
    let err = parse(&parts.to_der().unwrap()).unwrap_err().to_string();
    assert!(err.contains("4 elements") && err.contains("38540"), "{err}");
    // Header id other than "ES".
    let mut seal = SesSeal::from_der(&der).unwrap();
    seal.eseal_info.header.id = der::asn1::Ia5String::new("EX").unwrap();
    let err = parse(&seal.to_der().unwrap()).unwrap_err().to_string();
    assert!(err.contains("header id"), "{err}");
    // Non-minimal (BER) outer length: 0x82 LL LL -> 0x83 00 LL LL.
    assert_eq!(der[1], 0x82);
    let mut ber = vec![0x30, 0x83, 0x00];
    ber.extend_from_slice(&der[2..]);
    assert!(parse(&ber).is_err());
    // Garbage and empty input.
    assert!(parse(&[]).is_err());
    assert!(parse(b"not a seal").is_err());
}

/// `openssl asn1parse` of `der`, or `None` (with a note) when openssl is not installed.
fn asn1parse(der: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.der");
    std::fs::write(&path, der).unwrap();
    let out = match std::process::Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("openssl not available ({e}); skipping");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text)
}

#[test]
fn openssl_asn1parse_understands_it() {
    let f = fixture();
    let der = build(&f);
    let Some(text) = asn1parse(&der) else {
        return;
    };
    assert!(text.contains("IA5STRING") && text.contains(":ES"), "{text}");
    assert!(text.contains(":PNG"), "{text}");
    assert!(text.contains("UTF8STRING"), "{text}");
    assert!(
        text.contains("UTCTIME") && text.contains("BIT STRING"),
        "{text}"
    );
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");
}

#[test]
fn wrong_signer_algorithm_or_key_is_refused() {
    let f = fixture();
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(matches!(
        build_and_sign(&content(&f), &f.maker_der, &p384),
        Err(SealError::Signer { .. })
    ));
    let stranger = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let err = build_and_sign(&content(&f), &f.maker_der, &stranger).unwrap_err();
    assert!(matches!(err, SealError::Signer { .. }), "{err:?}");
}

/// A signer that returns raw `r‖s`, like a bare PKCS#11 `CKM_ECDSA`.
struct RawSigner<'a>(&'a KeyPair);

impl PublicKeyData for RawSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl SigningKey for RawSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let der = self.0.sign(msg)?;
        Ok(p256::ecdsa::Signature::from_der(&der)
            .unwrap()
            .to_bytes()
            .to_vec())
    }
}

#[test]
fn raw_r_s_signer_output_is_converted_to_der() {
    let f = fixture();
    let der = build_and_sign(&content(&f), &f.maker_der, &RawSigner(&f.maker_key)).unwrap();
    let p = parse(&der).unwrap();
    assert_eq!(p.signature[0], 0x30);
    p.verify_signature(&f.maker_der).unwrap();
}

#[test]
fn bad_content_is_refused() {
    let f = fixture();
    let mut c = content(&f);
    c.es_id = "印章-1";
    assert!(matches!(
        build_and_sign(&c, &f.maker_der, &f.maker_key),
        Err(SealError::Encode { what: "esID", .. })
    ));
    let mut c = content(&f);
    c.valid_end = datetime!(2050-01-01 00:00:00 UTC);
    assert!(matches!(
        build_and_sign(&c, &f.maker_der, &f.maker_key),
        Err(SealError::Encode {
            what: "validEnd",
            ..
        })
    ));
    let mut c = content(&f);
    c.seal_type = 3;
    assert!(matches!(
        build_and_sign(&c, &f.maker_der, &f.maker_key),
        Err(SealError::Content { .. })
    ));
    let mut c = content(&f);
    c.valid_end = c.valid_start;
    assert!(matches!(
        build_and_sign(&c, &f.maker_der, &f.maker_key),
        Err(SealError::Content { .. })
    ));
}
