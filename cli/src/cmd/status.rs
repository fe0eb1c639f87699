//! `hljca status` and `hljca config show`.

use hljca_core::store::CertFilter;
use hljca_core::time_fmt::ts;

use crate::Failure;
use crate::args::Cli;
use crate::output;

/// How many pending issuances and expiring certificates `status` names (it counts them all).
const SHOWN: u64 = 20;

/// The warning `status` gives when the CA's HSM token is not among the tokens found.
fn ca_token_missing(ca: &hljca_core::Ca, tokens: &serde_json::Value) -> Option<String> {
    let c = &ca.config().ca;
    let serial = c.token_serial.as_deref()?;
    let label = c.token_label.as_deref().unwrap_or("the CA token");
    let found = tokens.as_array().is_some_and(|all| {
        all.iter()
            .any(|t| t["serial"].as_str() == Some(serial) || t["label"].as_str() == Some(label))
    });
    (!found).then(|| {
        format!(
            "the CA token `{label}` (serial {serial}) cannot be found{}: without it nothing can be issued or revoked. Restore it from a backup: `hljca restore BACKUP --home NEW` rebuilds a home whose softhsm/softhsm2.conf holds the CA token (or point SOFTHSM2_CONF at the SoftHSM configuration that holds it)",
            std::env::var("SOFTHSM2_CONF")
                .map(|c| format!(" in the SoftHSM of {c}"))
                .unwrap_or_default()
        )
    })
}

pub fn run(cli: &Cli) -> Result<(), Failure> {
    let ca = super::open_ca(cli)?;
    let root = super::init::cert_summary("root", &hljca_core::ca::root_der(ca.home())?)?;
    let issuing = super::init::cert_summary("issuing", &hljca_core::ca::issuing_der(ca.home())?)?;
    let tokens = match ca
        .module(cli.pkcs11_module.as_deref())
        .and_then(|m| Ok(m.tokens()?))
    {
        Ok(t) => serde_json::to_value(t)?,
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    // A CA whose keys are on an HSM token: is that token here?
    let ca_token_warning = ca_token_missing(&ca, &tokens);
    if let Some(w) = &ca_token_warning {
        eprintln!("warning: {w}");
    }
    let counts = ca.cert_counts(time::Duration::days(30))?;
    // Counts for everything; rows only for the first few (a million-certificate CA expires
    // tens of thousands a month: `cert list --expiring-within 30d` pages through them).
    let pending = ca.cert_summaries(&CertFilter {
        status: Some(hljca_core::store::CertStatus::Pending),
        limit: Some(SHOWN),
        ..CertFilter::default()
    })?;
    let expiring = ca.cert_summaries(&CertFilter {
        expiring_before: Some(ca.now() + time::Duration::days(30)),
        limit: Some(SHOWN),
        ..CertFilter::default()
    })?;
    let crl = ca.last_crl()?;
    use hljca_ra::applications::AppState;
    let mut waiting = serde_json::Map::new();
    for st in [AppState::Submitted, AppState::Approved, AppState::Paid] {
        waiting.insert(
            st.as_str().into(),
            serde_json::json!(ca.application_count(st)?),
        );
    }
    let v = serde_json::json!({
        "home": ca.home().dir(),
        "ca": { "root": root, "issuing": issuing, "key_store": ca.config().ca.key_store },
        "tokens": tokens,
        "certificates": { "issued": counts.issued, "expired": counts.expired, "revoked": counts.revoked, "superseded": counts.superseded, "pending": counts.pending, "expiring_within_30_days": counts.expiring },
        "pending_applications": waiting,
        "pending_issuances": pending.iter().map(|c| &c.serial).collect::<Vec<_>>(),
        "expiring_within_30_days": expiring.iter().map(|c| serde_json::json!({"serial": c.serial, "not_after": c.not_after.map(ts), "subject": c.subject})).collect::<Vec<_>>(),
        "last_crl": crl.as_ref().map(|(n, t, u)| serde_json::json!({"number": n, "this_update": t, "next_update": u})),
        "audit_rows": ca.audit_count()?,
        "database": ca.location().display(),
        "ca_token_warning": ca_token_warning,
    });
    if cli.json {
        return Ok(output::json(&v)?);
    }
    output::fields(&[
        ("home", ca.home().dir().display().to_string()),
        (
            "issuing CA",
            format!(
                "{} (until {})",
                issuing["subject"].as_str().unwrap_or_default(),
                issuing["not_after"].as_str().unwrap_or_default()
            ),
        ),
        (
            "tokens",
            v["tokens"]
                .as_array()
                .map(|a| a.len().to_string())
                .unwrap_or_else(|| v["tokens"]["error"].to_string()),
        ),
        ("issued", counts.issued.to_string()),
        ("expired", counts.expired.to_string()),
        ("revoked", counts.revoked.to_string()),
        ("pending issuances", counts.pending.to_string()),
        (
            "applications",
            format!(
                "{} submitted (to review), {} approved (to pay), {} paid (to issue)",
                waiting["submitted"], waiting["approved"], waiting["paid"]
            ),
        ),
        ("expiring ≤30d", counts.expiring.to_string()),
        (
            "last CRL",
            crl.map(|(n, t, u)| format!("#{n} at {t}, next update {u}"))
                .unwrap_or_else(|| "none yet".into()),
        ),
    ]);
    Ok(())
}

pub fn config(cli: &Cli) -> Result<(), Failure> {
    let ca = super::open_ca(cli)?;
    if cli.json {
        output::json(&ca.config())?;
    } else {
        print!("{}", ca.config().to_toml()?);
    }
    Ok(())
}
