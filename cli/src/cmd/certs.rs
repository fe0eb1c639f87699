//! `hljca cert list | show | export`.

use hljca_core::store::{CertFilter, CertStatus};
use hljca_core::time_fmt::ts;

use crate::Failure;
use crate::args::{CertCmd, Cli};
use crate::output;

pub fn run(cli: &Cli, c: &CertCmd) -> Result<(), Failure> {
    let ca = super::open_ca(cli)?;
    match c {
        CertCmd::List {
            cert_type,
            status,
            expiring_within,
            limit,
            after,
        } => {
            let status = match status {
                Some(s) => Some(CertStatus::parse(s).ok_or_else(|| {
                    Failure::input(anyhow::anyhow!(
                        "--status `{s}`: expected pending, issued, void, revoked or superseded"
                    ))
                })?),
                None => None,
            };
            if let Some(t) = cert_type {
                t.parse::<hljca_policies::CertType>()
                    .map_err(Failure::input)?;
            }
            let expiring_before = match expiring_within {
                Some(d) => Some(ca.now() + time::Duration::days(super::parse_days(d)?)),
                None => None,
            };
            let certs = ca.cert_summaries(&CertFilter {
                cert_type: cert_type.clone(),
                status,
                expiring_before,
                include_unissued: false,
                limit: Some(*limit),
                after: after.clone(),
                ..CertFilter::default()
            })?;
            // A full page may have more after it.
            let next = (certs.len() as u64 == *limit)
                .then(|| certs.last().map(|c| c.serial.clone()))
                .flatten();
            if cli.json {
                let list: Vec<serde_json::Value> = certs
                    .iter()
                    .map(|c| {
                        let mut v = serde_json::to_value(c)?;
                        v["pem"] = serde_json::json!(ca.home().cert_pem(&c.serial));
                        Ok(v)
                    })
                    .collect::<Result<_, serde_json::Error>>()?;
                output::json(&serde_json::json!({ "certificates": list, "next": next }))?;
            } else {
                let rows: Vec<Vec<String>> = certs
                    .iter()
                    .map(|c| {
                        vec![
                            c.serial.clone(),
                            c.cert_type
                                .map_or_else(|| c.role.as_str().to_owned(), |t| t.to_string()),
                            c.role.as_str().into(),
                            c.status.to_string(),
                            c.not_after.map(ts).unwrap_or_default(),
                            c.token_label.clone(),
                            c.subject.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "SERIAL",
                        "TYPE",
                        "ROLE",
                        "STATUS",
                        "NOT AFTER",
                        "TOKEN",
                        "SUBJECT",
                    ],
                    &rows,
                );
                if let Some(n) = next {
                    println!("more: hljca cert list --after {n}");
                }
            }
        }
        CertCmd::Show { serial } => {
            let c = ca.cert(serial)?;
            let pem = c.der.as_deref().map(hljca_core::ca::pem_cert);
            if cli.json {
                let mut v = serde_json::to_value(&c)?;
                v["pem"] = serde_json::json!(pem);
                v["applicant"] =
                    serde_json::from_str(&c.applicant_json).unwrap_or(serde_json::Value::Null);
                v["has_seal"] = serde_json::json!(c.seal.is_some());
                output::json(&v)?;
            } else {
                output::fields(&[
                    ("serial", c.serial.clone()),
                    (
                        "type",
                        c.cert_type
                            .map_or_else(|| c.role.as_str().to_owned(), |t| t.to_string()),
                    ),
                    ("role", c.role.as_str().into()),
                    ("status", c.status.to_string()),
                    ("subject", c.subject.clone()),
                    ("not before", c.not_before.map(ts).unwrap_or_default()),
                    ("not after", c.not_after.map(ts).unwrap_or_default()),
                    ("token", format!("{} [{}]", c.token_label, c.token_serial)),
                    ("key id", c.key_id.clone()),
                    (
                        "revoked",
                        c.revoked_at.map(ts).unwrap_or_else(|| "-".into()),
                    ),
                    (
                        "reason",
                        c.revocation_reason
                            .map_or_else(|| "-".into(), |r| r.name().to_owned()),
                    ),
                    (
                        "seal",
                        if c.seal.is_some() {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                    ),
                ]);
            }
        }
        CertCmd::Export { serial, out, der } => {
            let c = ca.cert(serial)?;
            let bytes = c.der.ok_or_else(|| {
                anyhow::anyhow!(
                    "certificate {} has no DER (status {})",
                    c.summary.serial,
                    c.summary.status
                )
            })?;
            let data = if *der {
                bytes
            } else {
                hljca_core::ca::pem_cert(&bytes).into_bytes()
            };
            if *der && cli.json && out.is_none() {
                return Err(Failure::input(anyhow::anyhow!(
                    "--der with --json needs --out FILE (DER is binary)"
                )));
            }
            output::export(cli.json, out.as_deref(), &data, "certificate")?;
        }
    }
    Ok(())
}
