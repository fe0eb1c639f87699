//! `hljca issue`.

use hljca_core::engine::{IssueOutcome, IssueParams};
use hljca_core::issue::DirectFee;
use hljca_policies::{Applicant, CertType};
use hljca_ra::applications::{PayMethod, Payment};
use hljca_token::TokenSelector;

use crate::Failure;
use crate::args::{Cli, IssueArgs};
use crate::files;
use crate::output;
use crate::secrets;

pub fn run(cli: &Cli, a: &IssueArgs) -> Result<(), Failure> {
    // SIGTERM or Ctrl-C while issuing: the issuance finishes (or is voided) first.
    let _stop = super::batch::interrupt_flag(
        "hljca: finishing the issuance in progress (Ctrl-C again to stop at once; `hljca recover` then finishes or voids it)",
    );
    if let Some(app) = &a.application {
        return super::apps::issue_application(cli, app, a);
    }
    if let Some(csr) = &a.csr {
        return super::batch::issue_csr(cli, csr, a);
    }
    let cert_type: CertType = a.cert_type.parse().map_err(Failure::input)?;
    let (Some(applicant_path), Some(token)) = (&a.applicant, &a.token) else {
        return Err(Failure::input(anyhow::anyhow!(
            "issue needs --token and --applicant (or an application id, or --csr)"
        )));
    };
    let text =
        files::read_text_limited(applicant_path, files::MAX_APPLICANT_JSON, "applicant file")?;
    let applicant = Applicant::from_json(&text).map_err(Failure::input)?;
    let seal_image = match &a.seal_image {
        Some(p) => Some(files::read_limited(
            p,
            hljca_core::seal::MAX_IMAGE_BYTES as u64,
            "seal image",
        )?),
        None => None,
    };
    let fee = direct_fee(a)?;
    let mut ca = super::open_ca_login(cli)?;
    let mut s = secrets::gather(cli)?;
    secrets::prompt_if_missing(&mut s.user_pin, "USBKEY user PIN (HLJCA_USER_PIN)");
    secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
    let module = ca.module(cli.pkcs11_module.as_deref())?;
    let mut params = IssueParams::new(cert_type, applicant);
    params.seal_image = seal_image;
    let outcome = ca.issue_direct(&module, &s, &TokenSelector(token.clone()), &params, &fee)?;
    print_outcome(cli, &outcome)
}

/// The fee of a direct issuance: `--free --reason`, else `--method` (cash when not given).
pub fn direct_fee(a: &IssueArgs) -> Result<DirectFee, Failure> {
    if a.free {
        return Ok(DirectFee::Free {
            reason: a.reason.clone().unwrap_or_default(),
        });
    }
    let method: PayMethod = a
        .method
        .as_deref()
        .unwrap_or("cash")
        .parse()
        .map_err(|e: String| Failure::input(anyhow::anyhow!(e)))?;
    Ok(DirectFee::Paid(Payment::new(
        method,
        a.reference.as_deref(),
    )?))
}

pub fn print_outcome(cli: &Cli, o: &IssueOutcome) -> Result<(), Failure> {
    if cli.json {
        output::json(o)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = o
        .certificates
        .iter()
        .map(|c| {
            vec![
                c.serial.clone(),
                c.cert_type.to_string(),
                c.role.as_str().into(),
                c.token_label.clone(),
                c.key_id.clone(),
                c.pem.display().to_string(),
            ]
        })
        .collect();
    output::table(&["SERIAL", "TYPE", "ROLE", "TOKEN", "KEY ID", "PEM"], &rows);
    if let Some(w) = &o.warning {
        eprintln!("warning: {w}");
    }
    if let Some(seal) = &o.seal {
        println!(
            "seal: data object `{}` on token `{}`, copy at {}",
            seal.object_label,
            seal.token_label,
            seal.file.display()
        );
    }
    Ok(())
}
