//! `hljca revoke`, `hljca crl`, `hljca audit`.

use hljca_core::revoke::Reason;

use crate::Failure;
use crate::args::{AuditCmd, Cli, CrlCmd, RevokeArgs};
use crate::output;
use crate::secrets;

pub fn revoke(cli: &Cli, a: &RevokeArgs) -> Result<(), Failure> {
    let reason: Reason = a
        .reason
        .parse()
        .map_err(|e: String| Failure::input(anyhow::anyhow!(e)))?;
    let mut ca = super::open_ca(cli)?;
    let report = if a.remove_from_token {
        let mut s = secrets::gather(cli)?;
        secrets::prompt_if_missing(&mut s.user_pin, "USBKEY user PIN (HLJCA_USER_PIN)");
        let module = ca.module(cli.pkcs11_module.as_deref())?;
        ca.revoke(&a.serial, reason, Some((&module, &s)))?
    } else {
        ca.revoke(&a.serial, reason, None)?
    };
    if cli.json {
        output::json(&report)?;
    } else {
        for s in &report.revoked {
            println!("revoked {s} ({})", reason.name());
        }
        if a.remove_from_token {
            println!(
                "removed {} object(s) from the token",
                report.removed_objects
            );
        }
        println!("publish the change: hljca crl generate");
    }
    Ok(())
}

pub fn crl(cli: &Cli, c: &CrlCmd) -> Result<(), Failure> {
    let mut ca = super::open_ca(cli)?;
    match c {
        CrlCmd::Generate => {
            let mut s = secrets::gather(cli)?;
            let module = if ca.config.ca.key_store == hljca_core::KeyStore::Hsm {
                secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
                Some(ca.module(cli.pkcs11_module.as_deref())?)
            } else {
                None
            };
            let r = ca.generate_crl(module.as_ref(), &s)?;
            if cli.json {
                output::json(&r)?;
            } else {
                output::fields(&[
                    ("CRL number", r.number.to_string()),
                    ("this update", r.this_update.clone()),
                    ("next update", r.next_update.clone()),
                    ("revoked", r.revoked.to_string()),
                    ("DER", r.der.display().to_string()),
                    ("PEM", r.pem.display().to_string()),
                ]);
            }
        }
        CrlCmd::Show => {
            let last = ca.last_crl()?;
            match (cli.json, last) {
                (true, l) => output::json(
                    &serde_json::json!({ "crl": l.map(|(n, t, u)| serde_json::json!({"number": n, "this_update": t, "next_update": u})) }),
                )?,
                (false, Some((n, t, u))) => output::fields(&[
                    ("CRL number", n.to_string()),
                    ("this update", t),
                    ("next update", u),
                ]),
                (false, None) => println!("no CRL yet: hljca crl generate"),
            }
        }
    }
    Ok(())
}

pub fn audit(cli: &Cli, c: &AuditCmd) -> Result<(), Failure> {
    let ca = super::open_ca(cli)?;
    match c {
        AuditCmd::Verify => {
            let n = ca.audit_verify()?;
            if cli.json {
                output::json(&serde_json::json!({ "intact": true, "rows": n }))?;
            } else {
                println!("audit log intact: {n} rows, hash chain verified");
            }
        }
        AuditCmd::List => {
            let rows = ca.audit_list()?;
            if cli.json {
                output::json(&serde_json::json!({ "entries": rows }))?;
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.seq.to_string(),
                            r.at.clone(),
                            r.operator.clone(),
                            r.action.clone(),
                            r.object.clone(),
                            r.details.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &["SEQ", "AT", "OPERATOR", "ACTION", "OBJECT", "DETAILS"],
                    &t,
                );
            }
        }
    }
    Ok(())
}
