//! `hljca init` and `hljca ca`.

use hljca_core::ca::{self, InitOptions};
use hljca_core::operators::{NewOperator, Role};
use hljca_core::time_fmt::ts;
use hljca_core::{Home, KeyStore};
use hljca_ra::applications::Site;
use hljca_token::TokenSelector;

use crate::Failure;
use crate::args::{CaCmd, Cli, InitArgs};
use crate::output;
use crate::secrets;

pub fn run(cli: &Cli, a: &InitArgs) -> Result<(), Failure> {
    let home = Home::new(&cli.home);
    let mut s = secrets::gather(cli)?;
    let key_store = if a.key_store == "file" {
        KeyStore::File
    } else {
        KeyStore::Hsm
    };
    // The admin's operator USBKEY is a token even when the CA keys are files.
    let loaded = hljca_core::load_module(
        cli.pkcs11_module.as_deref(),
        Some(&home),
        hljca_token::QuirksMode::Auto,
    )?;
    let module = if key_store == KeyStore::Hsm {
        secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
        Some(std::sync::Arc::clone(&loaded))
    } else {
        secrets::prompt_if_missing(
            &mut s.ca_passphrase,
            "CA key passphrase (HLJCA_CA_PASSPHRASE)",
        );
        None
    };
    let admin_site: Site = a
        .admin_site
        .parse()
        .map_err(|e: String| Failure::input(anyhow::anyhow!(e)))?;
    let admin_pin = secrets::operator_pin(cli)?.ok_or(hljca_core::CoreError::MissingSecret {
        what: "the CA administrator's operator USBKEY PIN",
        env: "HLJCA_OPERATOR_PIN",
        file_flag: Some("--operator-pin-file"),
    })?;
    let report = ca::init(
        &home,
        module.as_deref(),
        &s,
        &InitOptions {
            key_store,
            ca_token: a.ca_token.clone(),
            root_years: a.root_years,
            issuing_years: a.issuing_years,
            crl_url: a.crl_url.clone(),
            ca_issuers_url: a.ca_issuers_url.clone(),
        },
    )?;
    let mut ca = super::open_ca(cli)?;
    // The key ceremony goes on: the seal maker, then the first CA administrator on their own
    // operator USBKEY (a blank token is initialised for it when none has the label).
    let admin_token = TokenSelector(a.admin_token.clone());
    if let Err(hljca_token::TokenError::TokenNotFound { .. }) = loaded.find(&admin_token) {
        loaded.init_token(&a.admin_token, s.so_pin()?, &admin_pin)?;
    }
    let admin = ca.complete_init(
        &s,
        &report,
        &NewOperator {
            name: a.admin_name.clone(),
            site: admin_site,
            roles: Role::ALL.to_vec(),
            token: admin_token,
            break_glass: false,
        },
        &admin_pin,
        loaded,
    )?;
    if cli.json {
        let mut v = serde_json::to_value(&report)?;
        v["seal_maker"] = serde_json::to_value(home.seal_maker_pem())?;
        v["admin"] = serde_json::to_value(&admin)?;
        output::json(&v)?;
    } else {
        println!("CA created in {}", home.dir().display());
        output::fields(&[
            ("root", report.root_pem.display().to_string()),
            ("issuing", report.issuing_pem.display().to_string()),
            ("issuing (DER)", report.issuing_cer.display().to_string()),
            (
                "key store",
                format!("{:?}", report.key_store).to_lowercase(),
            ),
            (
                "CA token",
                report.ca_token_label.clone().unwrap_or_else(|| "-".into()),
            ),
            ("seal maker", home.seal_maker_pem().display().to_string()),
            (
                "CA administrator",
                format!(
                    "{} (operator certificate {}, roles {}) on USBKEY `{}`",
                    admin.name,
                    admin.cert_serial,
                    admin.roles.join(","),
                    admin.token_label
                ),
            ),
        ]);
    }
    Ok(())
}

pub fn ca(cli: &Cli, c: &CaCmd) -> Result<(), Failure> {
    let ca = super::open_ca(cli)?;
    match c {
        CaCmd::Show => {
            let mut out = Vec::new();
            for (name, der) in [
                ("root", ca::root_der(ca.home())?),
                ("issuing", ca::issuing_der(ca.home())?),
            ] {
                out.push(cert_summary(name, &der)?);
            }
            if cli.json {
                output::json(&out)?;
            } else {
                for o in &out {
                    output::fields(&[
                        (
                            "certificate",
                            o["name"].as_str().unwrap_or_default().to_owned(),
                        ),
                        (
                            "subject",
                            o["subject"].as_str().unwrap_or_default().to_owned(),
                        ),
                        (
                            "serial",
                            o["serial"].as_str().unwrap_or_default().to_owned(),
                        ),
                        (
                            "not after",
                            o["not_after"].as_str().unwrap_or_default().to_owned(),
                        ),
                    ]);
                    println!();
                }
            }
        }
        CaCmd::Export { out, der: true } => {
            if cli.json && out.is_none() {
                return Err(Failure::input(anyhow::anyhow!(
                    "--der with --json needs --out FILE (DER is binary)"
                )));
            }
            let der = ca::issuing_der(ca.home())?;
            output::export(cli.json, out.as_deref(), &der, "issuing CA certificate")?;
        }
        CaCmd::Export { out, der: false } => {
            let text = std::fs::read(ca.home().chain_pem())?;
            output::export(cli.json, out.as_deref(), &text, "CA chain")?;
        }
    }
    Ok(())
}

/// Subject, serial and validity of a certificate, for display.
pub fn cert_summary(name: &str, der: &[u8]) -> Result<serde_json::Value, Failure> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| anyhow::anyhow!("parsing {name} certificate: {e}"))?;
    Ok(serde_json::json!({
        "name": name,
        "subject": c.subject().to_string(),
        "issuer": c.issuer().to_string(),
        "serial": hex::encode(c.raw_serial()),
        "not_before": ts(c.validity().not_before.to_datetime()),
        "not_after": ts(c.validity().not_after.to_datetime()),
    }))
}
