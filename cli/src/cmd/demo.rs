//! `hljca demo`: a CA, a fresh USBKEY and an enterprise certificate with its seal, on SoftHSM2.

use std::path::PathBuf;

use hljca_core::ca::{self, InitOptions};
use hljca_core::engine::IssueParams;
use hljca_core::issue::DirectFee;
use hljca_core::operators::{NewOperator, Role};
use hljca_core::{Ca, Home, KeyStore, Secrets};
use hljca_policies::{Applicant, CertType};
use hljca_ra::applications::{PayMethod, Payment, Site};
use hljca_token::{Pin, TokenSelector};

use crate::Failure;
use crate::args::Cli;
use crate::output;

/// Demo PINs: printed in the JSON so automation can use the home afterwards. Never for production.
const DEMO_USER_PIN: &str = "12345678";
const DEMO_SO_PIN: &str = "87654321";
const DEMO_CA_PIN: &str = "11223344";
const DEMO_OPERATOR_PIN: &str = "24681357";
const DEMO_ADMIN_TOKEN: &str = "demo-admin";
const ENTERPRISE_EXAMPLE: &str = include_str!("../../../examples/applicants/enterprise.json");

pub fn run(cli: &Cli) -> Result<(), Failure> {
    let home = Home::new(absolute(&cli.home)?);
    hljca_core::home::create_private_dir(home.dir())?;
    let conf = set_up_softhsm(home.dir())?;
    let module = hljca_core::load_module(
        cli.pkcs11_module.as_deref(),
        Some(&home),
        hljca_token::QuirksMode::Auto,
    )?;
    let operator_pin = Pin::new(DEMO_OPERATOR_PIN);
    let secrets = Secrets {
        ca_pin: Some(Pin::new(DEMO_CA_PIN)),
        user_pin: Some(Pin::new(DEMO_USER_PIN)),
        so_pin: Some(Pin::new(DEMO_SO_PIN)),
        ca_passphrase: None,
    };
    let reused = home.is_initialized();
    let mut report = None;
    if !reused {
        report = Some(ca::init(
            &home,
            Some(&module),
            &secrets,
            &InitOptions {
                key_store: KeyStore::Hsm,
                ..InitOptions::default()
            },
        )?);
    }
    let mut ca = Ca::open(home.clone(), super::operator(cli))?;
    ca.use_module(std::sync::Arc::clone(&module));
    let admin_token = TokenSelector(DEMO_ADMIN_TOKEN.into());
    if let Some(report) = &report {
        // The key ceremony, as `hljca init` does it: the first CA administrator (every role)
        // on their own operator USBKEY.
        if module.find(&admin_token).is_err() {
            module.init_token(DEMO_ADMIN_TOKEN, secrets.so_pin()?, &operator_pin)?;
        }
        ca.complete_init(
            &secrets,
            report,
            &NewOperator {
                name: "演示管理员".into(),
                site: Site::Harbin,
                roles: Role::ALL.to_vec(),
                token: admin_token.clone(),
                break_glass: false,
            },
            &operator_pin,
            std::sync::Arc::clone(&module),
        )?;
    }
    ca.login(&module, &admin_token, &operator_pin)?;
    // A fresh USBKEY each run: demo-usbkey, demo-usbkey-2, ...
    let taken: Vec<String> = module
        .tokens()?
        .into_iter()
        .filter(|t| t.initialized)
        .map(|t| t.label)
        .collect();
    let label = (1..)
        .map(|n| {
            if n == 1 {
                "demo-usbkey".to_owned()
            } else {
                format!("demo-usbkey-{n}")
            }
        })
        .find(|l| !taken.contains(l))
        .unwrap_or_else(|| "demo-usbkey".into());
    let token = module.init_token(&label, secrets.so_pin()?, secrets.user_pin()?)?;
    ca.audit(
        "token.init",
        &token.serial,
        serde_json::json!({ "label": token.label }),
    )?;
    let outcome = ca.issue_direct(
        &module,
        &secrets,
        &TokenSelector(token.serial.clone()),
        &IssueParams::new(
            CertType::Enterprise,
            Applicant::from_json(ENTERPRISE_EXAMPLE)?,
        ),
        &DirectFee::Paid(Payment::new(PayMethod::Cash, None)?),
    )?;
    let v = serde_json::json!({
        "home": home.dir(),
        "reused_ca": reused,
        "softhsm2_conf": conf,
        "pkcs11_module": module.path(),
        "token_label": token.label,
        "token_serial": token.serial,
        "user_pin": DEMO_USER_PIN,
        "so_pin": DEMO_SO_PIN,
        "ca_pin": DEMO_CA_PIN,
        "operator_token": DEMO_ADMIN_TOKEN,
        "operator_pin": DEMO_OPERATOR_PIN,
        "ca_root": home.root_pem(),
        "ca_issuing": home.issuing_pem(),
        "certificates": outcome.certificates.iter().map(|c| serde_json::json!({
            "serial": c.serial, "type": c.cert_type, "role": c.role, "pem": c.pem, "key_id": c.key_id,
        })).collect::<Vec<_>>(),
        "seal": outcome.seal,
    });
    if cli.json {
        return Ok(output::json(&v)?);
    }
    println!(
        "hljca demo: {} CA in {}",
        if reused { "reused the" } else { "created a" },
        home.dir().display()
    );
    println!("  root CA        {}", home.root_pem().display());
    println!("  issuing CA     {}", home.issuing_pem().display());
    println!(
        "  USBKEY         `{}` (serial {}) in SoftHSM2 ({})",
        token.label,
        token.serial,
        conf.display()
    );
    for c in &outcome.certificates {
        println!(
            "  {:<14} serial {}  key id {}  {}",
            format!("{} cert", c.role.as_str()),
            c.serial,
            c.key_id,
            c.pem.display()
        );
    }
    if let Some(s) = &outcome.seal {
        println!(
            "  e-seal         data object `{}` on the token, copy at {}",
            s.object_label,
            s.file.display()
        );
    }
    let first = outcome
        .certificates
        .first()
        .map(|c| c.pem.display().to_string())
        .unwrap_or_default();
    println!();
    println!("Look at it:");
    println!(
        "  export SOFTHSM2_CONF={} HLJCA_USER_PIN={DEMO_USER_PIN} HLJCA_CA_PIN={DEMO_CA_PIN}",
        conf.display()
    );
    println!(
        "  openssl verify -CAfile {} -untrusted {} {first}",
        home.root_pem().display(),
        home.issuing_pem().display()
    );
    println!(
        "  pkcs11-tool --module {} --token-label {} --login --pin {DEMO_USER_PIN} --list-objects",
        module.path().display(),
        token.label
    );
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "hljca".into());
    println!("  {me} --home {} cert list", home.dir().display());
    println!(
        "  {me} --home {} seal verify --file <seal file above>",
        home.dir().display()
    );
    Ok(())
}

fn absolute(p: &std::path::Path) -> Result<PathBuf, Failure> {
    // `std::path::absolute` also drops `.` components, so paths print cleanly.
    Ok(std::path::absolute(p)?)
}

/// Writes the home's own SoftHSM2 configuration and points this process at it.
#[allow(unsafe_code)]
fn set_up_softhsm(home: &std::path::Path) -> Result<PathBuf, Failure> {
    let dir = home.join("softhsm");
    let tokens = dir.join("tokens");
    hljca_core::home::create_private_dir(&dir)?;
    hljca_core::home::create_private_dir(&tokens)?;
    let conf = super::home_softhsm_conf(home);
    if !conf.is_file() {
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        hljca_core::home::write_file(&conf, text.as_bytes(), 0o600)?;
    }
    // SAFETY: the demo runs single-threaded and sets this before loading the PKCS#11 module,
    // which reads it in C_Initialize.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    Ok(conf)
}
