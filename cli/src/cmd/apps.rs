//! The counter workflow commands (issue 5): parse, call `hljca-core`, print.

use hljca_core::Ca;
use hljca_policies::{Applicant, CertType, Mobile};
use hljca_ra::applications::{
    AppId, AppIssueOutcome, AppState, Application, Channel, Delivery, MAX_MATERIAL_BYTES,
    NewApplication, PayMethod, Payment, Site, check_material, delivery_summary,
};
use hljca_ra::prelude::*;
use hljca_token::TokenSelector;
use serde_json::json;

use crate::Failure;
use crate::args::{Cli, IssueArgs};
use crate::args_apps::{
    ApplyArgs, AppsCmd, AppsListCmd, DeliverArgs, MaterialsCmd, OrdersCmd, OutboxCmd, PayArgs,
    ReviewCmd,
};
use crate::output;
use crate::secrets;

use super::apps_view::{applicant_name, materials_list, print_step, show};

fn bad(msg: impl std::fmt::Display) -> Failure {
    Failure::input(anyhow::anyhow!("{msg}"))
}

fn app_id(s: &str) -> Result<AppId, Failure> {
    s.parse::<AppId>().map_err(bad)
}

/// The application, or exit 2 when there is no such number.
pub(super) fn load(ca: &Ca, s: &str) -> Result<Application, Failure> {
    let id = app_id(s)?;
    ca.find_application(id)?
        .ok_or_else(|| bad(format!("there is no application {id} (see `apps list`)")))
}

pub fn run(cli: &Cli, c: &AppsCmd) -> Result<(), Failure> {
    // Reading needs no login; every step that changes something is done by a logged-in operator.
    let read_only = matches!(
        c,
        AppsCmd::Materials(MaterialsCmd::List { .. } | MaterialsCmd::Get { .. })
            | AppsCmd::Apps(_)
            | AppsCmd::Orders(_)
            | AppsCmd::Outbox(_)
    );
    let mut ca = if read_only {
        super::open_ca(cli)?
    } else {
        super::open_ca_login(cli)?
    };
    match c {
        AppsCmd::Apply(a) => apply(cli, &mut ca, a),
        AppsCmd::Submit { app } => {
            let id = load(&ca, app)?.id;
            let a = ca.submit_application(id)?;
            print_step(cli, &a, "submitted for review")
        }
        AppsCmd::Cancel {
            app,
            reason,
            refund_method,
            refund_reference,
        } => {
            let id = load(&ca, app)?.id;
            let refund = match refund_method {
                Some(m) => Some(Payment::new(
                    m.parse().map_err(bad)?,
                    refund_reference.as_deref(),
                )?),
                None => None,
            };
            let a = ca.cancel_application(id, reason.as_deref(), refund.as_ref())?;
            print_step(cli, &a, "cancelled")
        }
        AppsCmd::Review(ReviewCmd::Approve { app }) => {
            let id = load(&ca, app)?.id;
            let a = ca.approve_application(id)?;
            print_step(cli, &a, "approved; the applicant is told to pay")
        }
        AppsCmd::Review(ReviewCmd::Reject { app, reason }) => {
            let id = load(&ca, app)?.id;
            if reason.trim().is_empty() {
                return Err(bad("a rejection needs its reason (--reason TEXT)"));
            }
            let a = ca.reject_application(id, reason)?;
            print_step(cli, &a, "rejected")
        }
        AppsCmd::Materials(MaterialsCmd::Add { app, kind, file }) => {
            let a = load(&ca, app)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.display().to_string());
            let bytes = crate::files::read_limited(file, MAX_MATERIAL_BYTES, "material file")?;
            check_material(ca.policies().get(a.cert_type), kind, &name, &bytes).map_err(bad)?;
            let m = ca.add_material(a.id, kind, &name, &bytes)?;
            if cli.json {
                output::json(&serde_json::to_value(&m)?)?;
            } else {
                println!(
                    "{}: {} `{}` added ({} bytes, {}, sha256 {})",
                    a.id, m.file_name, m.kind, m.size, m.media_type, m.sha256
                );
            }
            Ok(())
        }
        AppsCmd::Materials(MaterialsCmd::List { app }) => materials_list(cli, &ca, app),
        AppsCmd::Materials(MaterialsCmd::Get { app, kind, out }) => {
            let id = load(&ca, app)?.id;
            let (m, bytes) = ca.material_of_kind(id, kind)?;
            hljca_core::home::write_new_file(out, &bytes, 0o600)?;
            if cli.json {
                let mut v = serde_json::to_value(&m)?;
                v["out"] = json!(out);
                output::json(&v)?;
            } else {
                println!(
                    "{id}: `{}` {} written to {} ({} bytes, sha256 {})",
                    m.kind,
                    m.file_name,
                    out.display(),
                    m.size,
                    m.sha256
                );
            }
            Ok(())
        }
        AppsCmd::Pay(p) => pay(cli, &mut ca, p),
        AppsCmd::Deliver(d) => deliver(cli, &mut ca, d),
        AppsCmd::Apps(AppsListCmd::List { state }) => {
            let state = match state {
                Some(s) => Some(s.parse::<AppState>().map_err(bad)?),
                None => None,
            };
            let apps = ca.applications(state)?;
            if cli.json {
                output::json(&json!({ "applications": apps }))?;
            } else {
                let mut rows: Vec<Vec<String>> = Vec::with_capacity(apps.len());
                for a in &apps {
                    // Online applications come with their uploads: the count shows what is in.
                    let materials = ca.application_materials(a.id)?.len();
                    rows.push(vec![
                        a.id.to_string(),
                        a.cert_type.to_string(),
                        a.state.to_string(),
                        a.channel.as_str().into(),
                        a.site.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                        a.business().into(),
                        materials.to_string(),
                        a.created_at.clone(),
                        applicant_name(a),
                    ]);
                }
                output::table(
                    &[
                        "APP",
                        "TYPE",
                        "STATE",
                        "CHANNEL",
                        "SITE",
                        "BUSINESS",
                        "MATERIALS",
                        "CREATED",
                        "APPLICANT",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        AppsCmd::Apps(AppsListCmd::Show { app }) => show(cli, &ca, app),
        AppsCmd::Orders(OrdersCmd::List { app }) => {
            let id = match app {
                Some(a) => Some(load(&ca, a)?.id),
                None => None,
            };
            let orders = ca.orders(id)?;
            if cli.json {
                output::json(&json!({ "orders": orders }))?;
            } else {
                let rows: Vec<Vec<String>> = orders
                    .iter()
                    .map(|o| {
                        vec![
                            o.id.to_string(),
                            o.application_id
                                .map(|a| a.to_string())
                                .unwrap_or_else(|| "-".into()),
                            o.cert_serial.clone().unwrap_or_else(|| "-".into()),
                            o.business.clone(),
                            o.cert_type.clone(),
                            hljca_policies::Fen(o.amount_fen).to_string(),
                            o.method.clone(),
                            o.reference.clone().unwrap_or_else(|| "-".into()),
                            o.operator.clone(),
                            o.paid_at.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "ORDER",
                        "APP",
                        "CERT",
                        "BUSINESS",
                        "TYPE",
                        "AMOUNT",
                        "METHOD",
                        "REFERENCE",
                        "OPERATOR",
                        "PAID AT",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        AppsCmd::Outbox(OutboxCmd::List) => {
            let msgs = ca.outbox()?;
            if cli.json {
                output::json(&json!({ "messages": msgs }))?;
            } else {
                let rows: Vec<Vec<String>> = msgs
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.created_at.clone(),
                            m.kind.clone(),
                            m.mobile.clone(),
                            m.application_id
                                .map(|a| a.to_string())
                                .or_else(|| m.cert_serial.clone())
                                .unwrap_or_else(|| "-".into()),
                            m.text.clone(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "QUEUED", "KIND", "MOBILE", "FOR", "TEXT"], &rows);
            }
            Ok(())
        }
        AppsCmd::Remind { within } => {
            let days = super::parse_days(within)?;
            let r = ca.remind(days)?;
            if cli.json {
                output::json(&r)?;
            } else {
                for q in &r.queued {
                    println!(
                        "reminder queued: {} {} expires {} → {}",
                        q.cert_type, q.serial, q.not_after, q.mobile
                    );
                }
                println!(
                    "{} reminder(s) queued for certificates expiring within {days} days; {} already reminded{}",
                    r.queued.len(),
                    r.already_reminded,
                    if r.no_mobile.is_empty() {
                        String::new()
                    } else {
                        format!("; no mobile for {}", r.no_mobile.join(", "))
                    }
                );
            }
            Ok(())
        }
    }
}

fn apply(cli: &Cli, ca: &mut Ca, a: &ApplyArgs) -> Result<(), Failure> {
    let cert_type: CertType = a.cert_type.parse().map_err(Failure::input)?;
    let site = match &a.site {
        Some(s) => Some(s.parse::<Site>().map_err(bad)?),
        None => None,
    };
    let channel = match &a.channel {
        Some(c) => c.parse::<Channel>().map_err(bad)?,
        None if site.is_some() => Channel::Counter,
        None => Channel::Online,
    };
    match (channel, site) {
        (Channel::Counter, None) => {
            return Err(bad(
                "--channel counter needs --site (harbin, hegang or qiqihar)",
            ));
        }
        (Channel::Online, Some(_)) => {
            return Err(bad("--site is only for --channel counter"));
        }
        _ => {}
    }
    let text = crate::files::read_text_limited(
        &a.applicant,
        crate::files::MAX_APPLICANT_JSON,
        "applicant file",
    )?;
    let applicant = Applicant::from_json(&text).map_err(Failure::input)?;
    let app = ca.apply(&NewApplication {
        cert_type,
        applicant,
        channel,
        site,
        renewal_of: a.renewal_of.clone(),
    })?;
    print_step(cli, &app, "draft created; add materials, then submit")
}

fn pay(cli: &Cli, ca: &mut Ca, p: &PayArgs) -> Result<(), Failure> {
    let a = load(ca, &p.app)?;
    let method: PayMethod = p.method.parse().map_err(bad)?;
    let payment = Payment::new(method, p.reference.as_deref())?;
    let (app, order) = ca.pay_application(a.id, &payment)?;
    if cli.json {
        output::json(&json!({ "application": app, "order": order }))?;
    } else {
        println!(
            "{}: order {} paid, {} {} ({}), {}; state {}; next: issue {} --token LABEL",
            app.id,
            order.id,
            order.business,
            hljca_policies::Fen(order.amount_fen),
            order.cert_type,
            order.method,
            app.state,
            app.id
        );
    }
    Ok(())
}

fn deliver(cli: &Cli, ca: &mut Ca, d: &DeliverArgs) -> Result<(), Failure> {
    let a = load(ca, &d.app)?;
    let app = if d.collected {
        ca.deliver_collected(a.id)?
    } else if let Some(site) = &d.pickup {
        let site: Site = site.parse().map_err(bad)?;
        ca.deliver_by_pickup(a.id, site)?
    } else {
        let need = |v: &Option<String>, what: &str| -> Result<String, Failure> {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("deliver --mail needs {what}")))
        };
        // The same text rules as applicant fields: no control or invisible characters.
        let text = |v: &Option<String>, what: &str, max: usize| -> Result<String, Failure> {
            let s = need(v, what)?;
            let flag = what.split(' ').next().unwrap_or(what);
            hljca_policies::check_name(flag, &s, max).map_err(bad)?;
            Ok(s)
        };
        // What the applicant chose online (邮寄) fills what is not given.
        let chosen = ca
            .online_delivery_choice(a.id)?
            .filter(|c| c.method == "mail");
        let or_chosen =
            |given: &Option<String>,
             pick: fn(&hljca_core::store::DeliveryChoice) -> Option<String>| {
                given.clone().or_else(|| chosen.as_ref().and_then(pick))
            };
        let recipient = or_chosen(&d.recipient, |c| c.recipient.clone());
        let phone = or_chosen(&d.phone, |c| c.phone.clone());
        let address = or_chosen(&d.address, |c| c.address.clone());
        let recipient = text(&recipient, "--recipient NAME", 30)?;
        let phone = need(&phone, "--phone MOBILE")?;
        let phone: Mobile = phone
            .parse()
            .map_err(|e| bad(format!("--phone {phone}: {e}")))?;
        let address = text(&address, "--address TEXT", 200)?;
        let tracking = text(&d.tracking, "--tracking NO", 64)?;
        ca.deliver_by_mail(a.id, &recipient, &phone, &address, &tracking)?
    };
    let what = match (&app.delivery, app.state) {
        (_, AppState::Delivered) => "delivered".to_owned(),
        (Some(Delivery::Mail { .. }), _) | (Some(Delivery::Pickup { .. }), _) => app
            .delivery
            .as_ref()
            .map(delivery_summary)
            .unwrap_or_default(),
        (None, _) => String::new(),
    };
    print_step(cli, &app, &what)
}

pub fn issue_application(cli: &Cli, app: &str, a: &IssueArgs) -> Result<(), Failure> {
    let Some(token) = &a.token else {
        return Err(bad(format!("issue {app} needs --token LABEL (the USBKEY)")));
    };
    if a.seal_image.is_some() {
        return Err(bad(
            "--seal-image is not taken with an application: its seal picture is generated",
        ));
    }
    let mut ca = super::open_ca_login(cli)?;
    let id = load(&ca, app)?.id;
    let mut s = secrets::gather(cli)?;
    secrets::prompt_if_missing(&mut s.user_pin, "USBKEY user PIN (HLJCA_USER_PIN)");
    secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
    let module = ca.module(cli.pkcs11_module.as_deref())?;
    let out: AppIssueOutcome =
        ca.issue_application(&module, &s, id, &TokenSelector(token.clone()))?;
    if cli.json {
        output::json(&out)?;
        return Ok(());
    }
    super::issue::print_outcome(cli, &out.outcome)?;
    println!(
        "{}: {}; USBKEY {} [{}]; next: deliver {} --mail … | --pickup SITE",
        out.application.id,
        if out.resumed {
            "certificates were already issued by an interrupted run; application finished"
        } else {
            "issued"
        },
        out.application.token_label.as_deref().unwrap_or("-"),
        out.application.token_serial.as_deref().unwrap_or("-"),
        out.application.id
    );
    Ok(())
}
