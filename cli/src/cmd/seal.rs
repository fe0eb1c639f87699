//! `hljca seal show | verify`.

use hljca_core::seal_check::summarize;
use hljca_token::{KeyId, TokenSelector};

use crate::Failure;
use crate::args::{Cli, SealCmd, SealSource};
use crate::files;
use crate::output;
use crate::secrets;

fn load(cli: &Cli, src: &SealSource) -> Result<Vec<u8>, Failure> {
    if let Some(f) = &src.file {
        return files::read_limited(f, files::MAX_SEAL_FILE, "seal file");
    }
    let serial = src
        .serial
        .as_deref()
        .ok_or_else(|| Failure::input(anyhow::anyhow!("give --file FILE or --serial SERIAL")))?;
    let ca = super::open_ca(cli)?;
    let rec = ca.cert(serial)?;
    if src.from_token {
        let s = secrets::gather(cli)?;
        let module = ca.module(cli.pkcs11_module.as_deref())?;
        let session = module.login(&TokenSelector(rec.token_serial.clone()), s.user_pin()?)?;
        let id = KeyId::from_hex(&rec.key_id)
            .ok_or_else(|| anyhow::anyhow!("stored key id `{}` is not hex", rec.key_id))?;
        return Ok(session.data(&id)?);
    }
    rec.seal.ok_or_else(|| {
        Failure::input(anyhow::anyhow!(
            "certificate {} has no seal (seals belong to seal certificates)",
            rec.summary.serial
        ))
    })
}

pub fn run(cli: &Cli, c: &SealCmd) -> Result<(), Failure> {
    match c {
        SealCmd::Show(src) => {
            let der = load(cli, src)?;
            let (_, s) = summarize(&der)?;
            print(cli, &s, None)
        }
        SealCmd::Verify { source, at } => {
            let at = match at {
                Some(t) => {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| {
                        Failure::input(anyhow::anyhow!("--at `{t}`: not an RFC 3339 time ({e})"))
                    })?
                }
                None => hljca_core::time_fmt::now(),
            };
            let der = load(cli, source)?;
            let ca = super::open_ca(cli)?;
            let s = ca.verify_seal_at(&der, at)?;
            print(
                cli,
                &s,
                Some(
                    "valid: signature by the issuing CA, unchanged, seal certificate issued and in date",
                ),
            )
        }
    }
}

fn print(
    cli: &Cli,
    s: &hljca_core::seal_check::SealSummary,
    verdict: Option<&str>,
) -> Result<(), Failure> {
    if cli.json {
        let mut v = serde_json::to_value(s)?;
        if verdict.is_some() {
            v["valid"] = serde_json::json!(true);
        }
        return Ok(output::json(&v)?);
    }
    output::fields(&[
        (
            "header",
            format!("{} v{} vendor {}", s.header_id, s.version, s.vendor_id),
        ),
        ("esID", s.es_id.clone()),
        (
            "type",
            if s.seal_type == 1 {
                "1 (organisation)".into()
            } else {
                format!("{} (personal)", s.seal_type)
            },
        ),
        ("name", s.name.clone()),
        ("certificates", s.cert_serials.join(", ")),
        ("valid", format!("{} .. {}", s.valid_start, s.valid_end)),
        (
            "picture",
            format!(
                "{} {} bytes, {}x{} mm",
                s.picture_type, s.picture_bytes, s.width_mm, s.height_mm
            ),
        ),
        ("maker", s.maker.clone()),
        ("algorithm", s.signature_algorithm.clone()),
    ]);
    if let Some(v) = verdict {
        println!("{v}");
    }
    Ok(())
}
