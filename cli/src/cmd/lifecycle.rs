//! `hljca revoke`, `hljca crl`, `hljca audit`.

use hljca_core::revoke::{Reason, RevokeOptions};

use crate::Failure;
use crate::args::{AuditCmd, Cli, CrlCmd, RevokeArgs};
use crate::output;
use crate::secrets;

pub fn release(cli: &Cli, serial: &str) -> Result<(), Failure> {
    let mut ca = super::open_ca_login(cli)?;
    let report = ca.release(serial)?;
    if cli.json {
        output::json(&report)?;
    } else {
        for s in &report.released {
            println!("released {s} from hold: issued again");
        }
        println!("publish the change: hljca crl generate");
    }
    Ok(())
}

pub fn revoke(cli: &Cli, a: &RevokeArgs) -> Result<(), Failure> {
    let reason: Reason = a
        .reason
        .parse()
        .map_err(|e: String| Failure::input(anyhow::anyhow!(e)))?;
    let mut ca = super::open_ca_login(cli)?;
    let opts = RevokeOptions {
        reason,
        keep_secondary: a.keep_secondary,
    };
    let report = if a.remove_from_token {
        let mut s = secrets::gather(cli)?;
        secrets::prompt_if_missing(&mut s.user_pin, "USBKEY user PIN (HLJCA_USER_PIN)");
        let module = ca.module(cli.pkcs11_module.as_deref())?;
        ca.revoke(&a.serial, opts, Some((&module, &s)))?
    } else {
        ca.revoke(&a.serial, opts, None)?
    };
    if cli.json {
        output::json(&report)?;
    } else {
        for s in &report.revoked {
            println!("revoked {s} ({})", reason.name());
        }
        if report.hold_made_final {
            println!("the hold is now a final revocation ({})", reason.name());
        }
        for s in &report.secondary_revoked {
            println!(
                "revoked {s}: enterprise-secondary (副锁) of the last enterprise certificate of its USCC"
            );
        }
        for s in &report.secondary_kept {
            println!(
                "kept {s}: enterprise-secondary (副锁) whose enterprise certificate is gone (--keep-secondary)"
            );
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
    let mut ca = match c {
        CrlCmd::Generate => super::open_ca_login(cli)?,
        _ => super::open_ca(cli)?,
    };
    match c {
        CrlCmd::Generate => {
            let mut s = secrets::gather(cli)?;
            let module = super::ca_key_module(cli, &ca, &mut s)?;
            let r = ca.generate_crl(module.as_deref(), &s)?;
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
    // Verifying needs no login; reading the rows is the auditor's.
    let ca = match c {
        AuditCmd::Verify => super::open_ca(cli)?,
        _ => {
            let ca = super::open_ca_login(cli)?;
            ca.require(hljca_core::operators::Role::Auditor, "audit list")?;
            ca
        }
    };
    match c {
        AuditCmd::Verify => {
            let (n, anchors) = ca.audit_verify()?;
            // The head hash: record it outside the CA (a log book, a ticket) to detect a
            // truncated log later, which no hash chain can show by itself.
            let head = ca.audit_head()?;
            if cli.json {
                output::json(
                    &serde_json::json!({ "intact": true, "rows": n, "head": head, "anchors": anchors }),
                )?;
            } else {
                println!(
                    "audit log intact: {n} rows, hash chain and {anchors} signed anchor(s) verified; head {}",
                    head.as_deref().unwrap_or("(empty)")
                );
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

pub fn renew(cli: &Cli, a: &crate::args::RenewArgs) -> Result<(), Failure> {
    let mut ca = super::open_ca_login(cli)?;
    let mut s = secrets::gather(cli)?;
    secrets::prompt_if_missing(&mut s.user_pin, "USBKEY user PIN (HLJCA_USER_PIN)");
    secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
    let module = ca.module(cli.pkcs11_module.as_deref())?;
    let r = ca.renew(
        &module,
        &s,
        &a.serial,
        &hljca_core::lifecycle::Payment::new(
            a.method
                .parse()
                .map_err(|e: String| Failure::input(anyhow::anyhow!(e)))?,
            a.reference.as_deref(),
        )?,
    )?;
    if cli.json {
        return Ok(output::json(&r)?);
    }
    println!(
        "renewed {} (annual fee {}); superseded: {}; {} old object(s) removed from the token",
        r.old_serial,
        hljca_policies::Fen(r.fee_fen),
        r.superseded.join(", "),
        r.removed_objects
    );
    super::issue::print_outcome(cli, &r.issued)
}

pub fn bind(cli: &Cli, a: &crate::args::BindArgs) -> Result<(), Failure> {
    use hljca_core::lifecycle::{BindMaterial, BindSource};
    let mut materials = Vec::new();
    for m in &a.materials {
        let (kind, file) = m.split_once('=').ok_or_else(|| {
            Failure::input(anyhow::anyhow!("--material `{m}`: expected KIND=FILE"))
        })?;
        // The core reads each file whole: bound its size first.
        crate::files::require_within(
            std::path::Path::new(file),
            hljca_ra::applications::MAX_MATERIAL_BYTES,
            "material file",
        )?;
        materials.push(BindMaterial {
            kind: kind.trim().to_owned(),
            file: file.into(),
        });
    }
    let source =
        match (&a.pem, &a.token) {
            (Some(p), _) => {
                let limit = crate::files::MAX_CERTIFICATE;
                crate::files::require_within(p, limit, "certificate file")?;
                BindSource::File(p.clone())
            }
            (None, Some(t)) => BindSource::Token {
                token: hljca_token::TokenSelector(t.clone()),
                key_id: match &a.key_id {
                    Some(k) => Some(hljca_token::KeyId::from_hex(k).ok_or_else(|| {
                        Failure::input(anyhow::anyhow!("--key-id `{k}` is not hex"))
                    })?),
                    None => None,
                },
            },
            (None, None) => {
                return Err(Failure::input(anyhow::anyhow!(
                    "give --pem FILE or --token LABEL"
                )));
            }
        };
    let site: hljca_ra::applications::Site = a
        .site
        .parse()
        .map_err(|e: String| Failure::input(anyhow::anyhow!(e)))?;
    let mut ca = super::open_ca_login(cli)?;
    let s = secrets::gather(cli)?;
    let module = match &source {
        BindSource::Token { .. } => Some(ca.module(cli.pkcs11_module.as_deref())?),
        BindSource::File(_) => None,
    };
    let b = ca.bind(&source, &materials, site, module.as_deref(), &s)?;
    if cli.json {
        return Ok(output::json(&b)?);
    }
    println!(
        "activated for the provincial platform: {} (serial {}, issuer {})",
        b.subject, b.serial, b.issuer
    );
    Ok(())
}

pub fn bindings(cli: &Cli) -> Result<(), Failure> {
    let ca = super::open_ca(cli)?;
    let all = ca.bindings()?;
    if cli.json {
        return Ok(output::json(&serde_json::json!({ "bindings": all }))?);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.serial.clone(),
                b.subject.clone(),
                b.issuer.clone(),
                b.not_after.clone(),
                b.status.clone(),
                b.bound_at.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "SERIAL",
            "SUBJECT",
            "ISSUER",
            "NOT AFTER",
            "STATUS",
            "BOUND AT",
        ],
        &rows,
    );
    Ok(())
}
