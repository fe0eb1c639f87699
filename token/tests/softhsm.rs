//! The token crate against real SoftHSM2 tokens in a temporary directory: one test, because
//! SoftHSM reads `SOFTHSM2_CONF` once per process and a process initialises a PKCS#11 module
//! once; the scenarios below run in turn, each on its own token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

use hljca_token::{
    KeyId, KeyKind, Module, ObjectKind, Pin, PinRole, TokenError, TokenPublicKey, TokenSelector,
};
use p256::ecdsa::signature::Verifier;
use rcgen::{PublicKeyData, SigningKey};

#[test]
#[allow(unsafe_code)]
fn token_on_softhsm() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )
    .unwrap();
    // SAFETY: the only test in this binary; set before the module is loaded, no other thread.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let module = Module::open(None).expect("SoftHSM2 installed (./softhsm-setup.sh)");

    token_lifecycle(&module, dir.path());
    wrong_pin_while_logged_in(&module);
    rsa_2048_keys(&module, dir.path());
}

fn token_lifecycle(module: &Module, dir: &Path) {
    let (so, user) = (Pin::new("87654321"), Pin::new("12345678"));
    // Bad labels and short PINs are refused before anything happens.
    assert!(matches!(
        module.init_token("", &so, &user),
        Err(TokenError::BadLabel { .. })
    ));
    assert!(matches!(
        module.init_token("t1", &so, &Pin::new("12")),
        Err(TokenError::PinLength { .. })
    ));
    let info = module.init_token("t1", &so, &user).unwrap();
    assert!(info.initialized && info.user_pin.initialized);
    assert!(matches!(
        module.init_token("t1", &so, &user),
        Err(TokenError::LabelInUse { .. })
    ));
    // Found by label and by serial.
    assert_eq!(
        module
            .find(&TokenSelector(info.serial.clone()))
            .unwrap()
            .label,
        "t1"
    );
    assert!(matches!(
        module.find(&TokenSelector("nope".into())),
        Err(TokenError::TokenNotFound { .. })
    ));
    // A wrong PIN names the token and the PIN.
    match module.login(&TokenSelector("t1".into()), &Pin::new("00000000")) {
        Err(TokenError::PinIncorrect { token, .. }) => assert_eq!(token, "t1"),
        other => panic!("{other:?}"),
    }

    let s = module.login(&TokenSelector("t1".into()), &user).unwrap();
    let id = KeyId::random();
    let key = s.generate_p256_with_id("k", &id).unwrap();
    assert_eq!(key.id, id);
    assert_eq!(key.public_point.len(), 65);
    assert_eq!(key.public.kind(), KeyKind::EcP256);
    assert_eq!(key.public.ec_point(), Some(key.public_point.as_slice()));
    assert_eq!(s.public_key(&id).unwrap(), key.public);
    assert_eq!(s.public_point(&id).unwrap(), key.public_point);
    let objs = s.list_objects().unwrap();
    let private = objs
        .iter()
        .find(|o| o.kind == ObjectKind::PrivateKey)
        .unwrap();
    assert_eq!(
        (private.sensitive, private.extractable),
        (Some(true), Some(false))
    );

    // The token signs; p256 verifies the DER signature with the point the token gave us.
    let signer = s.signer(&id).unwrap();
    let msg = b"hljca token signer";
    let sig = rcgen::SigningKey::sign(&signer, msg).unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key.public_point).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
    vk.verify(msg, &sig).unwrap();
    assert_eq!(signer.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(signer.der_bytes(), key.public_point.as_slice());
    // And OpenSSL verifies it with the SPKI we encode.
    openssl_verify(dir, "ec", &key.public, msg, &signer.sign(msg).unwrap());
    drop(signer);

    // Certificate and data objects pair with the key; destroy_by_id removes all of them.
    s.store_certificate(&id, "c", b"not really a cert", &[])
        .unwrap();
    s.store_data(&id, b"seal bytes").unwrap();
    assert_eq!(s.certificate(&id).unwrap(), b"not really a cert");
    assert_eq!(s.data(&id).unwrap(), b"seal bytes");
    assert_eq!(s.destroy_by_id(&id).unwrap(), 4);
    assert!(s.list_objects().unwrap().is_empty());
    assert!(matches!(
        s.certificate(&id),
        Err(TokenError::ObjectNotFound { .. })
    ));

    // PIN change, then the SO resets it. While the session is still logged in, the module
    // checks PINs itself: the new one is right, the old one wrong.
    let new = Pin::new("24681357");
    s.change_pin(&user, &new).unwrap();
    assert!(module.login(&TokenSelector("t1".into()), &new).is_ok());
    assert!(matches!(
        module.login(&TokenSelector("t1".into()), &user),
        Err(TokenError::PinIncorrect { .. })
    ));
    drop(s);
    assert!(module.login(&TokenSelector("t1".into()), &new).is_ok());
    let so_session = module.login_so(&TokenSelector("t1".into()), &so).unwrap();
    so_session.init_user_pin(&user).unwrap();
    drop(so_session);
    assert!(module.login(&TokenSelector("t1".into()), &user).is_ok());
}

/// PKCS#11 login state is per token and process: while one session is logged in, C_Login on
/// another session answers USER_ALREADY_LOGGED_IN whatever the PIN. The module must still
/// refuse a wrong PIN, and must not log out the other sessions when one is dropped.
fn wrong_pin_while_logged_in(module: &Module) {
    let (so, user) = (Pin::new("11112222"), Pin::new("33334444"));
    module.init_token("t2", &so, &user).unwrap();
    let t2 = TokenSelector("t2".into());

    let first = module.login(&t2, &user).unwrap();
    for wrong in ["00000000", "3333444", "333344445", "33334445"] {
        match module.login(&t2, &Pin::new(wrong)) {
            Err(TokenError::PinIncorrect { token, role, .. }) => {
                assert_eq!((token.as_str(), role), ("t2", PinRole::User));
            }
            other => panic!("wrong PIN {wrong} while logged in: {other:?}"),
        }
    }
    // The SO cannot log in beside the user, whatever the PIN.
    assert!(matches!(
        module.login_so(&t2, &so),
        Err(TokenError::Pkcs11 { op: "C_Login", .. })
    ));
    let second = module.login(&t2, &user).unwrap();

    // Dropping the first session leaves the second logged in: it still generates and signs.
    drop(first);
    let key = second.generate_p256("after-drop").unwrap();
    let signer = second.signer(&key.id).unwrap();
    let msg = b"still logged in";
    let sig = p256::ecdsa::Signature::from_der(&signer.sign(msg).unwrap()).unwrap();
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&key.public_point)
        .unwrap()
        .verify(msg, &sig)
        .unwrap();
    drop(signer);
    assert!(matches!(
        module.login(&t2, &Pin::new("00000000")),
        Err(TokenError::PinIncorrect { .. })
    ));
    let third = module.login(&t2, &user).unwrap();
    drop(second);
    assert_eq!(third.list_objects().unwrap().len(), 2);
    let private = third.signer(&key.id).unwrap();
    assert!(private.sign(msg).is_ok());
    drop(private);
    drop(third);

    // All sessions gone: the token is logged out, checks PINs itself again, and the SO may
    // log in.
    assert!(matches!(
        module.login(&t2, &Pin::new("00000000")),
        Err(TokenError::PinIncorrect { .. })
    ));
    drop(module.login_so(&t2, &so).unwrap());
    let again = module.login(&t2, &user).unwrap();
    assert!(again.signer(&key.id).is_ok());
}

/// RSA-2048 on the token: generated with the caller's id, read back, signing through rcgen's
/// trait, verified by OpenSSL against our SPKI, and listed by pkcs11-tool as sensitive and
/// never extractable.
fn rsa_2048_keys(module: &Module, dir: &Path) {
    let (so, user) = (Pin::new("55556666"), Pin::new("77778888"));
    module.init_token("t3", &so, &user).unwrap();
    let s = module.login(&TokenSelector("t3".into()), &user).unwrap();
    let id = KeyId::random();
    let key = s.generate_with_id(KeyKind::Rsa2048, "rsa-k", &id).unwrap();
    assert_eq!(key.id, id);
    assert!(key.public_point.is_empty());
    let TokenPublicKey::Rsa2048 { modulus, exponent } = &key.public else {
        panic!("{:?}", key.public)
    };
    assert_eq!(
        (modulus.len(), exponent.as_slice()),
        (256, &[1u8, 0, 1][..])
    );
    assert_eq!(s.public_key(&id).unwrap(), key.public);
    assert!(matches!(
        s.public_point(&id),
        Err(TokenError::BadPublicKey { .. })
    ));

    let signer = s.signer(&id).unwrap();
    assert_eq!(signer.kind(), KeyKind::Rsa2048);
    assert_eq!(signer.algorithm(), &rcgen::PKCS_RSA_SHA256);
    assert_eq!(signer.der_bytes(), key.public.subject_public_key_bits());
    assert_eq!(signer.subject_public_key_info(), key.public.spki_der());
    let msg = b"hljca RSA token signer";
    let sig = signer.sign(msg).unwrap();
    assert_eq!(sig.len(), 256);
    let pem = openssl_verify(dir, "rsa", &key.public, msg, &sig);
    let text = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(&pem));
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("Exponent: 65537 (0x10001)"), "{text}");

    // rcgen signs a certificate with it, and OpenSSL checks that signature and key.
    let cert = rcgen::CertificateParams::new(vec!["rsa.example".to_owned()])
        .unwrap()
        .self_signed(&signer)
        .unwrap();
    let cert_pem = dir.join("rsa-cert.pem");
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    let out = run(Command::new("openssl")
        .args(["verify", "-partial_chain", "-CAfile"])
        .arg(&cert_pem)
        .arg(&cert_pem));
    assert!(out.contains(": OK"), "{out}");
    let cert_key = run(Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&cert_pem));
    assert_eq!(
        cert_key.trim(),
        std::fs::read_to_string(&pem).unwrap().trim()
    );
    drop(signer);

    // Outside view: pkcs11-tool sees an RSA private key that never leaves the token, paired by
    // id with a 2048-bit public key (it prints the size only for the public half).
    let listing = run(Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module.path())
        .args([
            "--token-label",
            "t3",
            "--login",
            "--pin",
            "77778888",
            "--list-objects",
        ]));
    let mut objects: Vec<String> = Vec::new();
    for line in listing.lines() {
        match objects.last_mut() {
            Some(o) if line.starts_with(char::is_whitespace) => {
                o.push('\n');
                o.push_str(line);
            }
            _ => objects.push(line.to_owned()),
        }
    }
    let ours = |head: &str| {
        objects
            .iter()
            .find(|o| o.starts_with(head) && o.contains(&format!("ID:         {}", id.to_hex())))
            .unwrap_or_else(|| panic!("no `{head}` with id {id}:\n{listing}"))
    };
    let public = ours("Public Key Object; RSA 2048 bits");
    assert!(public.contains("label:      rsa-k"), "{public}");
    let private = ours("Private Key Object; RSA");
    assert!(private.contains("label:      rsa-k"), "{private}");
    let line = |o: &str, name: &str| {
        o.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{o}"))
            .to_owned()
    };
    let access = line(private, "Access:");
    assert!(access.contains("sensitive"), "{access}");
    assert!(access.contains("never extractable"), "{access}");
    assert!(
        !access
            .replace("never extractable", "")
            .contains("extractable"),
        "{access}"
    );
    let usage = line(private, "Usage:");
    assert_eq!(usage.trim(), "Usage:      sign", "{private}");
    assert_eq!(
        line(public, "Usage:").trim(),
        "Usage:      verify",
        "{public}"
    );
}

/// Writes the SPKI as PEM and the signature beside the message, has `openssl dgst -sha256
/// -verify` check it (and refuse a changed message); returns the PEM path.
fn openssl_verify(
    dir: &Path,
    name: &str,
    key: &TokenPublicKey,
    msg: &[u8],
    sig: &[u8],
) -> std::path::PathBuf {
    let pem = dir.join(format!("{name}-spki.pem"));
    std::fs::write(&pem, to_pem("PUBLIC KEY", &key.spki_der())).unwrap();
    let der = dir.join(format!("{name}-spki.der"));
    std::fs::write(&der, key.spki_der()).unwrap();
    let parsed = run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&der));
    let oid = match key.kind() {
        KeyKind::EcP256 => "prime256v1",
        KeyKind::Rsa2048 => "rsaEncryption",
    };
    assert!(parsed.contains(oid), "{parsed}");
    let (m, bad, s) = (
        dir.join(format!("{name}.msg")),
        dir.join(format!("{name}.bad")),
        dir.join(format!("{name}.sig")),
    );
    std::fs::write(&m, msg).unwrap();
    std::fs::write(&bad, [msg, b"!"].concat()).unwrap();
    std::fs::write(&s, sig).unwrap();
    let verify = |file: &Path| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&pem)
            .arg("-signature")
            .arg(&s)
            .arg(file)
            .output()
            .unwrap()
    };
    let ok = verify(&m);
    assert!(
        ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("Verified OK"),
        "{ok:?}"
    );
    assert!(!verify(&bad).status.success());
    pem
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn to_pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
