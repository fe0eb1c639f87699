//! How the counter workflow's results are shown: application steps, materials, one application.

use hljca_core::Ca;
use hljca_core::store::CertFilter;
use hljca_ra::applications::{Application, delivery_summary};
use hljca_ra::prelude::*;
use serde_json::json;

use super::apps::load;
use crate::Failure;
use crate::args::Cli;
use crate::output;

pub(super) fn applicant_name(a: &Application) -> String {
    ["organization", "name", "expert_name", "legal_rep_name"]
        .iter()
        .find_map(|k| a.applicant.get(*k).cloned())
        .unwrap_or_default()
}

pub(super) fn print_step(cli: &Cli, a: &Application, what: &str) -> Result<(), Failure> {
    if cli.json {
        let mut v = serde_json::to_value(a)?;
        v["next"] = json!(a.next_steps());
        output::json(&v)?;
    } else {
        let next = a.next_steps();
        println!(
            "{} ({}, {}): {what}; state {}{}",
            a.id,
            a.cert_type,
            a.business(),
            a.state,
            if next.is_empty() {
                String::new()
            } else {
                format!("; next: {}", next.join(", "))
            }
        );
    }
    Ok(())
}

pub(super) fn materials_list(cli: &Cli, ca: &Ca, app: &str) -> Result<(), Failure> {
    let a = load(ca, app)?;
    let have = ca.application_materials(a.id)?;
    let missing = ca.missing_materials(&a)?;
    let policy = ca.policies().get(a.cert_type);
    if cli.json {
        let required: Vec<_> = policy
            .materials
            .iter()
            .map(|m| {
                json!({
                    "kind": m.kind, "name_zh": m.name_zh, "name_en": m.name_en, "required": m.required,
                    "provided": have.iter().any(|h| h.kind == m.kind),
                })
            })
            .collect();
        output::json(&json!({
            "application": a.id, "type": a.cert_type, "required": required,
            "materials": have, "missing": missing,
        }))?;
    } else {
        let rows: Vec<Vec<String>> = policy
            .materials
            .iter()
            .flat_map(|m| {
                let files: Vec<_> = have.iter().filter(|h| h.kind == m.kind).collect();
                let head = if m.required { "required" } else { "optional" };
                if files.is_empty() {
                    vec![vec![
                        m.kind.clone(),
                        head.into(),
                        "MISSING".into(),
                        String::new(),
                        m.name_zh.clone(),
                    ]]
                } else {
                    files
                        .iter()
                        .map(|f| {
                            vec![
                                m.kind.clone(),
                                head.into(),
                                f.file_name.clone(),
                                format!("{} B {}", f.size, f.media_type),
                                f.sha256.clone(),
                            ]
                        })
                        .collect()
                }
            })
            .collect();
        output::table(&["KIND", "", "FILE", "SIZE/TYPE", "SHA-256 / NAME"], &rows);
        if !missing.is_empty() {
            println!("missing: {}", missing.join(", "));
        }
    }
    Ok(())
}

pub(super) fn show(cli: &Cli, ca: &Ca, app: &str) -> Result<(), Failure> {
    let a = load(ca, app)?;
    let events = ca.application_events(a.id)?;
    let materials = ca.application_materials(a.id)?;
    let missing = ca.missing_materials(&a)?;
    let orders = ca.orders(Some(a.id))?;
    let certs = ca.certs(&CertFilter {
        include_unissued: true,
        application_id: Some(a.id.0),
        ..CertFilter::default()
    })?;
    // What the applicant chose online (邮寄 or 自取), for `deliver`.
    let chosen = ca.online_delivery_choice(a.id)?;
    if cli.json {
        let mut v = serde_json::to_value(&a)?;
        v["next"] = json!(a.next_steps());
        v["events"] = json!(events);
        v["materials"] = json!(materials);
        v["missing_materials"] = json!(missing);
        v["orders"] = json!(orders);
        v["certificates"] = json!(certs);
        v["delivery_choice"] = json!(chosen);
        output::json(&v)?;
        return Ok(());
    }
    let next = a.next_steps();
    output::fields(&[
        ("application", a.id.to_string()),
        ("type", a.cert_type.to_string()),
        ("business", a.business().into()),
        ("state", a.state.to_string()),
        (
            "next",
            if next.is_empty() {
                "-".into()
            } else {
                next.join(", ")
            },
        ),
        (
            "channel",
            match a.site {
                Some(s) => format!("{} at {s} ({})", a.channel.as_str(), s.address()),
                None => a.channel.as_str().into(),
            },
        ),
        ("applicant", applicant_name(&a)),
        (
            "renewal of",
            a.renewal_of.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "rejected",
            a.rejection_reason.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "USBKEY",
            match (&a.token_label, &a.token_serial) {
                (Some(l), Some(s)) => format!("{l} [{s}]"),
                _ => "-".into(),
            },
        ),
        (
            "delivery",
            a.delivery
                .as_ref()
                .map(delivery_summary)
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "chosen",
            match &chosen {
                None => "-".into(),
                Some(c) if c.method == "mail" => format!(
                    "mail to {}, {}, {}",
                    c.recipient.as_deref().unwrap_or(""),
                    c.phone.as_deref().unwrap_or(""),
                    c.address.as_deref().unwrap_or("")
                ),
                Some(c) => format!("pickup at {}", c.pickup_site.as_deref().unwrap_or("")),
            },
        ),
        (
            "materials",
            format!(
                "{} file(s){}",
                materials.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing {}", missing.join(", "))
                }
            ),
        ),
        (
            "paid",
            orders
                .iter()
                .map(|o| format!("{} ({})", hljca_policies::Fen(o.amount_fen), o.method))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "certificates",
            certs
                .iter()
                .map(|c| format!("{} {} {}", c.serial, c.role.as_str(), c.status))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]);
    if !materials.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = materials
            .iter()
            .map(|m| {
                vec![
                    m.kind.clone(),
                    m.file_name.clone(),
                    m.size.to_string(),
                    m.media_type.clone(),
                    m.sha256.clone(),
                ]
            })
            .collect();
        output::table(
            &[
                "MATERIAL",
                "FILE",
                "BYTES",
                "TYPE",
                "SHA-256 (hljca materials get APP KIND --out FILE)",
            ],
            &rows,
        );
    }
    println!();
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.event.clone(),
                e.from_state.clone().unwrap_or_else(|| "-".into()),
                e.to_state.clone(),
                e.operator.clone(),
            ]
        })
        .collect();
    output::table(&["AT", "STEP", "FROM", "TO", "OPERATOR"], &rows);
    Ok(())
}
