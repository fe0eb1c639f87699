//! `hljca token list | init | info`.

use hljca_token::TokenSelector;

use crate::Failure;
use crate::args::{Cli, TokenCmd};
use crate::output;
use crate::secrets;

pub fn run(cli: &Cli, c: &TokenCmd) -> Result<(), Failure> {
    // With a CA home, initialising a USBKEY or changing its PINs is the issuer's, logged in;
    // a bare token tool (no home) works without one.
    let changes = !matches!(c, TokenCmd::List | TokenCmd::Info { .. });
    let ca = if changes && hljca_core::Home::new(&cli.home).is_initialized() {
        let ca = super::open_ca_login(cli)?;
        ca.require(
            hljca_core::operators::Role::Issuer,
            "token init / change-pin / unblock",
        )?;
        Some(ca)
    } else {
        None
    };
    let module = match &ca {
        Some(ca) => ca.module(cli.pkcs11_module.as_deref())?,
        None => hljca_core::load_module(
            cli.pkcs11_module.as_deref(),
            None,
            hljca_token::QuirksMode::Auto,
        )?,
    };
    let audit_if_home = |_cli: &Cli,
                         action: &str,
                         object: &str,
                         details: serde_json::Value|
     -> Result<(), Failure> {
        if let Some(ca) = &ca {
            ca.audit(action, object, details)?;
        }
        Ok(())
    };
    match c {
        TokenCmd::List => {
            let tokens = module.tokens()?;
            if cli.json {
                output::json(&serde_json::json!({ "module": module.path(), "tokens": tokens }))?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.slot_id.to_string(),
                            if t.initialized {
                                t.label.clone()
                            } else {
                                "(blank)".into()
                            },
                            t.serial.clone(),
                            t.manufacturer.clone(),
                            t.user_pin.summary().into(),
                            t.so_pin.summary().into(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "SLOT",
                        "LABEL",
                        "SERIAL",
                        "MANUFACTURER",
                        "USER PIN",
                        "SO PIN",
                    ],
                    &rows,
                );
            }
        }
        TokenCmd::Init { label } => {
            let mut s = secrets::gather(cli)?;
            secrets::prompt_if_missing(&mut s.so_pin, "new SO PIN (HLJCA_SO_PIN)");
            secrets::prompt_if_missing(&mut s.user_pin, "new user PIN (HLJCA_USER_PIN)");
            let info = module.init_token(label, s.so_pin()?, s.user_pin()?)?;
            audit_if_home(
                cli,
                "token.init",
                &info.serial,
                serde_json::json!({ "label": info.label }),
            )?;
            if cli.json {
                output::json(&info)?;
            } else {
                println!(
                    "initialised token `{}` (serial {}) in slot {}",
                    info.label, info.serial, info.slot_id
                );
            }
        }
        TokenCmd::ChangePin { token } => {
            let mut s = secrets::gather(cli)?;
            secrets::prompt_if_missing(&mut s.user_pin, "current user PIN (HLJCA_USER_PIN)");
            let new = new_pin()?;
            let session = module.login(&TokenSelector(token.clone()), s.user_pin()?)?;
            session.change_pin(s.user_pin()?, &new)?;
            let serial = session.info().serial.clone();
            audit_if_home(
                cli,
                "token.change-pin",
                &serial,
                serde_json::json!({ "token": token }),
            )?;
            if cli.json {
                output::json(
                    &serde_json::json!({ "token": token, "serial": serial, "changed": true }),
                )?;
            } else {
                println!("user PIN of token `{token}` changed");
            }
        }
        TokenCmd::Unblock { token } => {
            let mut s = secrets::gather(cli)?;
            secrets::prompt_if_missing(&mut s.so_pin, "SO PIN (HLJCA_SO_PIN)");
            let new = new_pin()?;
            let session = module.login_so(&TokenSelector(token.clone()), s.so_pin()?)?;
            session.init_user_pin(&new)?;
            let serial = session.info().serial.clone();
            audit_if_home(
                cli,
                "token.unblock",
                &serial,
                serde_json::json!({ "token": token }),
            )?;
            if cli.json {
                output::json(
                    &serde_json::json!({ "token": token, "serial": serial, "unblocked": true }),
                )?;
            } else {
                println!("user PIN of token `{token}` reset by the security officer");
            }
        }
        TokenCmd::Info { token } => {
            let sel = TokenSelector(token.clone());
            let info = module.find(&sel)?;
            let s = secrets::gather(cli)?;
            let objects = match &s.user_pin {
                Some(pin) => Some(module.login(&sel, pin)?.list_objects()?),
                None => None,
            };
            if cli.json {
                output::json(&serde_json::json!({ "token": info, "objects": objects }))?;
            } else {
                output::fields(&[
                    ("label", info.label.clone()),
                    ("serial", info.serial.clone()),
                    ("manufacturer", info.manufacturer.clone()),
                    ("model", info.model.clone()),
                    ("slot", info.slot_id.to_string()),
                    ("user PIN", info.user_pin.to_string()),
                    ("SO PIN", info.so_pin.to_string()),
                ]);
                match objects {
                    Some(objs) => {
                        println!();
                        let rows: Vec<Vec<String>> = objs
                            .iter()
                            .map(|o| {
                                vec![
                                    format!("{:?}", o.kind),
                                    o.label.clone(),
                                    o.id.clone(),
                                    match (o.sensitive, o.extractable) {
                                        (Some(s), Some(e)) => {
                                            format!("sensitive={s} extractable={e}")
                                        }
                                        _ => String::new(),
                                    },
                                ]
                            })
                            .collect();
                        output::table(&["KIND", "LABEL", "ID", "FLAGS"], &rows);
                    }
                    None => println!("(set HLJCA_USER_PIN to list the token's objects)"),
                }
            }
        }
    }
    Ok(())
}

fn new_pin() -> Result<hljca_token::Pin, Failure> {
    let mut p = std::env::var("HLJCA_NEW_USER_PIN")
        .ok()
        .filter(|v| !v.is_empty())
        .map(hljca_token::Pin::new);
    secrets::prompt_if_missing(&mut p, "new user PIN (HLJCA_NEW_USER_PIN)");
    p.ok_or_else(|| {
        Failure::input(anyhow::anyhow!(
            "the new user PIN is needed: set HLJCA_NEW_USER_PIN"
        ))
    })
}
