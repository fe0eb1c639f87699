//! Automation commands (issue 6): `batch issue`, `recover`, and `issue --csr`.

use hljca_ra::prelude::*;
use std::io::IsTerminal;
use std::path::Path;

use hljca_policies::{Applicant, CertType};
use hljca_ra::batch::{BatchPlan, BatchReport, RecoverAction, RecoverReport, RowStatus, check_csr};
use hljca_token::{Pin, TokenInfo, TokenSelector};

use crate::Failure;
use crate::args::{Cli, IssueArgs};
use crate::args_batch::{BatchCmd, BatchIssueArgs, BatchSub, RecoverArgs};
use crate::files;
use crate::output;
use crate::secrets;

pub fn run(cli: &Cli, c: &BatchCmd) -> Result<(), Failure> {
    match c {
        BatchCmd::Batch(BatchSub::Issue(a)) => batch_issue(cli, a),
        BatchCmd::Recover(a) => recover(cli, a),
    }
}

/// A progress bar on stderr, only for a person at a terminal (not with CI set, not with -q).
fn progress(cli: &Cli, len: usize) -> Option<indicatif::ProgressBar> {
    if cli.quiet || std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::with_draw_target(
        Some(len as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}",
    ) {
        pb.set_style(style);
    }
    Some(pb)
}

fn batch_issue(cli: &Cli, a: &BatchIssueArgs) -> Result<(), Failure> {
    let mut ca = if a.dry_run {
        super::open_ca(cli)?
    } else {
        super::open_ca_login(cli)?
    };
    let module = ca.module(cli.pkcs11_module.as_deref())?;
    let plan = ca.batch_plan(&module, &a.file, &a.tokens)?;
    if !plan.errors.is_empty() {
        return Err(refuse_plan(cli, &plan));
    }
    if a.dry_run {
        return print_plan(cli, &plan);
    }
    let mut s = secrets::gather(cli)?;
    if plan.rows.iter().any(|r| r.checked_csr.is_none()) {
        secrets::prompt_if_missing(&mut s.user_pin, "USBKEY user PIN (HLJCA_USER_PIN)");
    }
    secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
    let pb = progress(cli, plan.rows.len());
    let stop =
        interrupt_flag("hljca: stopping after the row in progress (Ctrl-C again to stop at once)");
    let mut on_row = |r: &hljca_ra::batch::RowResult| {
        if let Some(pb) = &pb {
            pb.set_message(format!("{} {}", r.external_id, r.status_word()));
            pb.inc(1);
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    };
    let report = ca.batch_issue(&module, &s, &plan, &mut on_row)?;
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    print_report(cli, &report)?;
    if report.interrupted {
        return Err(Failure::from(anyhow::anyhow!(
            "interrupted: {} row(s) not attempted; run the same file again to finish them",
            report.not_attempted
        )));
    }
    if report.failed > 0 {
        return Err(Failure::from(anyhow::anyhow!(
            "{} of {} row(s) failed (see the summary); fix the cause and run the same file again — \
             issued rows are skipped",
            report.failed,
            report.rows
        )));
    }
    Ok(())
}

/// The first Ctrl-C (SIGINT or SIGTERM) asks the command to stop after the issuance (or batch
/// row) in progress, so nothing is left half-issued, and says so (`said`); a second one ends
/// the process at once (`hljca recover` then finishes or voids what was in flight).
pub(super) fn interrupt_flag(said: &'static str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("{said}");
    });
    if let Err(e) = installed {
        tracing::warn!(error = %e, "no Ctrl-C handler: an interruption stops the batch at once");
    }
    flag
}

trait StatusWord {
    fn status_word(&self) -> &'static str;
}

impl StatusWord for hljca_ra::batch::RowResult {
    fn status_word(&self) -> &'static str {
        match self.status {
            RowStatus::Issued => "issued",
            RowStatus::Skipped => "skipped",
            RowStatus::Failed => "failed",
        }
    }
}

/// At most this many problems of a refused batch are printed (text and JSON); the rest are
/// counted, so a file of 200 000 bad rows does not write megabytes to the terminal.
const MAX_PRINTED_PROBLEMS: usize = 50;

/// Reports why a batch plan cannot be issued (problems with rows, with the file as a whole,
/// or with the command line), the first [`MAX_PRINTED_PROBLEMS`] of them listed, and returns
/// the bad-input failure.
fn refuse_plan(cli: &Cli, plan: &BatchPlan) -> Failure {
    let bad_rows = plan.bad_rows();
    let shown = &plan.errors[..plan.errors.len().min(MAX_PRINTED_PROBLEMS)];
    let more = plan.errors.len() - shown.len();
    if cli.json
        && let Err(e) = output::json(&serde_json::json!({
            "file": plan.file,
            "sha256": plan.sha256,
            "rows": plan.rows.len() + bad_rows,
            "bad_rows": bad_rows,
            "file_problems": plan.file_problems(),
            "command_line_problems": plan.command_line_problems(),
            "errors": shown,
            "more": more,
        }))
    {
        return Failure::from(e);
    }
    let mut what = Vec::new();
    if bad_rows > 0 {
        what.push(format!("{bad_rows} bad row(s)"));
    }
    match plan.file_problems() {
        0 => {}
        1 => what.push("a problem with the file".to_owned()),
        n => what.push(format!("{n} problems with the file")),
    }
    match plan.command_line_problems() {
        0 => {}
        1 => what.push("a problem with the command line".to_owned()),
        n => what.push(format!("{n} problems with the command line")),
    }
    let mut lines: Vec<String> = shown.iter().map(|e| format!("  {e}")).collect();
    if more > 0 {
        lines.push(format!("  … and {more} more problem(s) not listed"));
    }
    Failure::input(anyhow::anyhow!(
        "{}: {}; nothing issued, no token touched:\n{}",
        plan.file.display(),
        what.join(", "),
        lines.join("\n")
    ))
}

fn print_plan(cli: &Cli, plan: &BatchPlan) -> Result<(), Failure> {
    if cli.json {
        output::json(&serde_json::json!({
            "dry_run": true,
            "file": plan.file,
            "format": plan.format,
            "sha256": plan.sha256,
            "rows": plan.rows.len(),
            "plan": plan.rows,
        }))?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = plan
        .rows
        .iter()
        .map(|r| {
            vec![
                r.line.to_string(),
                r.external_id.clone(),
                r.cert_type.to_string(),
                if r.token_assigned {
                    format!("{} (--tokens)", r.token_label)
                } else {
                    r.token_label.clone()
                },
                if r.seal { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    output::table(&["LINE", "EXTERNAL ID", "TYPE", "TOKEN", "SEAL"], &rows);
    println!(
        "dry run: {} row(s) valid in {}; nothing issued",
        plan.rows.len(),
        plan.file.display()
    );
    Ok(())
}

fn print_report(cli: &Cli, r: &BatchReport) -> Result<(), Failure> {
    if cli.json {
        output::json(r)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = r
        .results
        .iter()
        .filter(|x| x.status != RowStatus::Skipped)
        .map(|x| {
            vec![
                x.line.to_string(),
                x.external_id.clone(),
                x.cert_type.to_string(),
                x.token.clone(),
                x.status_word().into(),
                match (&x.error, x.serials.first()) {
                    (Some(e), _) => e.clone(),
                    (None, Some(s)) => s.clone(),
                    (None, None) => String::new(),
                },
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::table(
            &[
                "LINE",
                "EXTERNAL ID",
                "TYPE",
                "TOKEN",
                "STATUS",
                "SERIAL / WHY",
            ],
            &rows,
        );
        println!();
    }
    output::fields(&[
        ("job", r.job_id.to_string()),
        ("file", r.file.display().to_string()),
        ("rows", r.rows.to_string()),
        ("issued", r.issued.to_string()),
        ("skipped", r.skipped.to_string()),
        ("failed", r.failed.to_string()),
        ("not attempted", r.not_attempted.to_string()),
    ]);
    Ok(())
}

fn recover(cli: &Cli, a: &RecoverArgs) -> Result<(), Failure> {
    let mut ca = super::open_ca_login(cli)?;
    let s = secrets::gather(cli)?;
    let module = match ca.module(cli.pkcs11_module.as_deref()) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "no PKCS#11 module: issuances on tokens will be left open");
            None
        }
    };
    let only = a.token.clone().map(TokenSelector);
    let user_pin = s.user_pin.clone();
    let pin_dir = a.pin_dir.clone();
    let interactive = std::env::var_os("CI").is_none() && std::io::stdin().is_terminal();
    let mut pins = |t: &TokenInfo| -> Option<Pin> {
        if only.is_some() {
            return user_pin.clone();
        }
        if let Some(dir) = &pin_dir {
            return [&t.serial, &t.label]
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.is_file())
                .and_then(|p| secrets::pin_file(&p).ok());
        }
        if interactive {
            let mut slot = None;
            secrets::prompt_if_missing(
                &mut slot,
                &format!("user PIN of token `{}` (serial {})", t.label, t.serial),
            );
            return slot;
        }
        None
    };
    let report = ca.recover(module.as_deref(), &mut pins, only.as_ref())?;
    print_recover(cli, &report)?;
    let left = report.count(RecoverAction::Left) + report.count(RecoverAction::InProgress);
    if report.count(RecoverAction::Left) > 0 {
        return Err(Failure::from(anyhow::anyhow!(
            "{left} issuance(s) left open (see the reasons); insert the tokens, give their PINs and run `hljca recover` again"
        )));
    }
    Ok(())
}

fn print_recover(cli: &Cli, r: &RecoverReport) -> Result<(), Failure> {
    if cli.json {
        output::json(r)?;
        return Ok(());
    }
    if !r.batch_jobs_interrupted.is_empty() {
        let ids: Vec<String> = r
            .batch_jobs_interrupted
            .iter()
            .map(i64::to_string)
            .collect();
        println!(
            "batch job(s) {} marked interrupted (their process is gone); rerun their files to finish them",
            ids.join(", ")
        );
    }
    if r.issuances.is_empty() {
        println!("no open issuances: nothing to recover");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = r
        .issuances
        .iter()
        .map(|x| {
            vec![
                x.issuance.to_string(),
                x.stage.to_string(),
                x.cert_type.clone(),
                x.token_label.clone().unwrap_or_else(|| "(csr)".into()),
                x.serials.join(","),
                match x.action {
                    RecoverAction::Finished => "finished".into(),
                    RecoverAction::Voided => "voided".into(),
                    RecoverAction::Left => "left open".into(),
                    RecoverAction::InProgress => "in progress".into(),
                },
                x.reason.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "ISSUANCE", "STAGE", "TYPE", "TOKEN", "SERIALS", "ACTION", "WHY",
        ],
        &rows,
    );
    println!();
    output::fields(&[
        ("finished", r.count(RecoverAction::Finished).to_string()),
        ("voided", r.count(RecoverAction::Voided).to_string()),
        ("left", r.count(RecoverAction::Left).to_string()),
        (
            "in progress",
            r.count(RecoverAction::InProgress).to_string(),
        ),
    ]);
    Ok(())
}

pub fn issue_csr(cli: &Cli, csr: &Path, a: &IssueArgs) -> Result<(), Failure> {
    if a.token.is_some() {
        return Err(Failure::input(anyhow::anyhow!(
            "--token does not apply with --csr: the key stays with the requesting system"
        )));
    }
    let Some(applicant_path) = &a.applicant else {
        return Err(Failure::input(anyhow::anyhow!(
            "--csr needs --applicant FILE: the subject comes from the applicant data, not the CSR"
        )));
    };
    let cert_type: CertType = a.cert_type.parse().map_err(Failure::input)?;
    let bytes = files::read_limited(csr, files::MAX_CSR, "CSR")?;
    let text =
        files::read_text_limited(applicant_path, files::MAX_APPLICANT_JSON, "applicant file")?;
    let applicant = Applicant::from_json(&text).map_err(Failure::input)?;
    let fee = super::issue::direct_fee(a)?;
    let mut ca = super::open_ca_login(cli)?;
    let checked = check_csr(&bytes, ca.policies().get(cert_type))
        .map_err(|e| Failure::input(anyhow::anyhow!("{}: {e}", csr.display())))?;
    let mut s = secrets::gather(cli)?;
    secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
    let module = match ca.config().ca.key_store {
        hljca_core::KeyStore::Hsm => Some(ca.module(cli.pkcs11_module.as_deref())?),
        hljca_core::KeyStore::File => None,
    };
    let outcome = ca.issue_csr(
        module.as_deref(),
        &s,
        &checked,
        &applicant,
        a.out.as_deref(),
        &fee,
    )?;
    if cli.json {
        output::json(&outcome)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = outcome
        .certificates
        .iter()
        .map(|c| {
            vec![
                c.serial.clone(),
                c.cert_type.to_string(),
                c.role.as_str().into(),
                c.subject.clone(),
                c.pem.display().to_string(),
            ]
        })
        .collect();
    output::table(&["SERIAL", "TYPE", "ROLE", "SUBJECT", "PEM"], &rows);
    if let Some(o) = &outcome.out {
        println!("written to {}", o.display());
    }
    if let Some(n) = &outcome.note {
        println!("note: {n}");
    }
    Ok(())
}
