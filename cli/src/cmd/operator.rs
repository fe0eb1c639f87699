//! `hljca operator`: enrol, list, change roles, revoke.

use hljca_ra::applications::Site;
use std::path::Path;

use hljca_core::operators::{NewCsrOperator, NewOperator, Role, parse_roles};
use hljca_token::TokenSelector;

use crate::Failure;
use crate::args::{Cli, OperatorCmd};
use crate::output;
use crate::secrets;

fn bad(e: String) -> Failure {
    Failure::input(anyhow::anyhow!(e))
}

pub fn run(cli: &Cli, c: &OperatorCmd) -> Result<(), Failure> {
    match c {
        OperatorCmd::Add {
            name,
            site,
            roles,
            token,
            csr,
            out,
            break_glass,
        } => {
            let site: Site = site.parse().map_err(bad)?;
            let roles = parse_roles(roles).map_err(bad)?;
            let Some(token) = token else {
                let csr = csr
                    .as_deref()
                    .ok_or_else(|| bad("operator add needs --token or --csr".into()))?;
                return add_csr(cli, name, site, roles, csr, out.as_deref());
            };
            // The first operator of a CA is enrolled by the CA key custodian (CA PIN) alone.
            // Breaking glass, a witness logs in when there is one (the core says when one is
            // needed).
            let any_active = super::open_ca(cli)?
                .operators()?
                .iter()
                .any(|o| o.status == "active");
            let login = if *break_glass {
                cli.operator_token.is_some()
            } else {
                any_active
            };
            let mut ca = match login {
                true => super::open_ca_login(cli)?,
                false => super::open_ca(cli)?,
            };
            let mut s = secrets::gather(cli)?;
            secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
            secrets::prompt_if_missing(
                &mut s.user_pin,
                "the new operator USBKEY's PIN (HLJCA_USER_PIN)",
            );
            let pin = s.user_pin()?.clone();
            let module = ca.module(cli.pkcs11_module.as_deref())?;
            let rec = ca.enrol_operator(
                &module,
                &s,
                &NewOperator {
                    name: name.clone(),
                    site,
                    roles,
                    token: TokenSelector(token.clone()),
                    break_glass: *break_glass,
                },
                &pin,
            )?;
            if cli.json {
                output::json(&rec)?;
            } else {
                println!(
                    "operator {} enrolled: certificate {} on USBKEY `{}`, roles {}",
                    rec.name,
                    rec.cert_serial,
                    rec.token_label,
                    rec.roles.join(",")
                );
            }
            Ok(())
        }
        OperatorCmd::List => {
            let ca = super::open_ca(cli)?;
            let all = ca.operators()?;
            if cli.json {
                return Ok(output::json(&serde_json::json!({ "operators": all }))?);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|o| {
                    vec![
                        o.cert_serial.clone(),
                        o.name.clone(),
                        o.site.clone(),
                        o.roles.join(","),
                        o.token_label.clone(),
                        o.status.clone(),
                        o.not_after.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "CERT SERIAL",
                    "NAME",
                    "SITE",
                    "ROLES",
                    "USBKEY",
                    "STATUS",
                    "NOT AFTER",
                ],
                &rows,
            );
            Ok(())
        }
        OperatorCmd::Roles { serial: None, .. } => {
            if cli.json {
                let v: Vec<_> = Role::ALL
                    .iter()
                    .map(|r| serde_json::json!({ "role": r.as_str(), "covers": r.covers() }))
                    .collect();
                return Ok(output::json(&serde_json::json!({ "roles": v }))?);
            }
            let rows: Vec<Vec<String>> = Role::ALL
                .iter()
                .map(|r| vec![r.as_str().to_owned(), r.covers().to_owned()])
                .collect();
            output::table(&["ROLE", "COVERS"], &rows);
            Ok(())
        }
        OperatorCmd::Roles {
            serial: Some(serial),
            set,
        } => {
            let Some(set) = set else {
                let ca = super::open_ca(cli)?;
                let o = ca
                    .operators()?
                    .into_iter()
                    .find(|o| &o.cert_serial == serial)
                    .ok_or_else(|| bad(format!("no operator with certificate {serial}")))?;
                if cli.json {
                    return Ok(output::json(&o)?);
                }
                println!("{} ({}): {}", o.name, o.cert_serial, o.roles.join(","));
                return Ok(());
            };
            let roles = parse_roles(set).map_err(bad)?;
            let mut ca = super::open_ca_login(cli)?;
            let o = ca.set_operator_roles(serial, &roles)?;
            if cli.json {
                return Ok(output::json(&o)?);
            }
            println!(
                "{} ({}): roles now {}",
                o.name,
                o.cert_serial,
                o.roles.join(",")
            );
            Ok(())
        }
        OperatorCmd::Revoke { serial, reason } => {
            let mut ca = super::open_ca_login(cli)?;
            let o = ca.revoke_operator(serial, reason)?;
            if cli.json {
                return Ok(output::json(&o)?);
            }
            println!("operator {} ({}) revoked", o.name, o.cert_serial);
            Ok(())
        }
    }
}

/// `operator add --csr`: an operator for a job that holds its own key.
fn add_csr(
    cli: &Cli,
    name: &str,
    site: Site,
    roles: Vec<Role>,
    csr: &Path,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let bytes = hljca_core::home::read_limited(csr, 64 * 1024, "--csr")?;
    let mut ca = super::open_ca_login(cli)?;
    let mut s = secrets::gather(cli)?;
    let module = super::ca_key_module(cli, &ca, &mut s)?;
    let rec = ca.enrol_csr_operator(
        module.as_deref(),
        &s,
        &NewCsrOperator {
            name: name.to_owned(),
            site,
            roles,
            csr: bytes,
        },
    )?;
    let pem = hljca_core::ca::pem_cert(&rec.der);
    if let Some(o) = out {
        hljca_core::home::write_file(o, pem.as_bytes(), 0o644)?;
    }
    if cli.json {
        let mut v = serde_json::to_value(&rec)?;
        v["pem"] = serde_json::json!(pem);
        v["out"] = serde_json::json!(out);
        return Ok(output::json(&v)?);
    }
    println!(
        "operator {} enrolled for its own key: certificate {}, roles {}",
        rec.name,
        rec.cert_serial,
        rec.roles.join(",")
    );
    match out {
        Some(o) => println!("certificate written to {}", o.display()),
        None => print!("{pem}"),
    }
    Ok(())
}
