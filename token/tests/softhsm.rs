//! The token crate against a real SoftHSM2 token in a temporary directory: one test, because
//! SoftHSM reads `SOFTHSM2_CONF` once per process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use hljca_token::{KeyId, Module, ObjectKind, Pin, TokenError, TokenSelector};
use p256::ecdsa::signature::Verifier;

#[test]
#[allow(unsafe_code)]
fn token_lifecycle_on_softhsm() {
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

    // PIN change, then the SO resets it.
    let new = Pin::new("24681357");
    s.change_pin(&user, &new).unwrap();
    drop(s);
    assert!(module.login(&TokenSelector("t1".into()), &new).is_ok());
    let so_session = module.login_so(&TokenSelector("t1".into()), &so).unwrap();
    so_session.init_user_pin(&user).unwrap();
    drop(so_session);
    assert!(module.login(&TokenSelector("t1".into()), &user).is_ok());
}
