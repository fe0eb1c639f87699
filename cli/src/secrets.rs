//! Secrets from the environment, a file or a prompt — never from argv, never logged.

use std::io::IsTerminal;
use std::path::Path;

use hljca_core::Secrets;
use hljca_token::Pin;

use crate::args::Cli;
use crate::{Failure, files};

/// A PIN from a file (trailing newline dropped; at most [`files::MAX_PIN_FILE`] bytes).
pub fn pin_file(path: &Path) -> Result<Pin, Failure> {
    from_file(path)
}

fn from_file(path: &Path) -> Result<Pin, Failure> {
    let bytes =
        zeroize::Zeroizing::new(files::read_limited(path, files::MAX_PIN_FILE, "PIN file")?);
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Failure::input(anyhow::anyhow!(
            "PIN file {} is not UTF-8 text: {e}",
            path.display()
        ))
    })?;
    Ok(Pin::new(text.trim_end_matches(['\r', '\n']).to_owned()))
}

fn one(env: &str, file: Option<&Path>) -> Result<Option<Pin>, Failure> {
    if let Some(f) = file {
        return from_file(f).map(Some);
    }
    Ok(std::env::var(env)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Pin::new))
}

/// The operator USBKEY's PIN: HLJCA_OPERATOR_PIN, --operator-pin-file, or a prompt.
pub fn operator_pin(cli: &Cli) -> Result<Option<Pin>, Failure> {
    let mut pin = one("HLJCA_OPERATOR_PIN", cli.operator_pin_file.as_deref())?;
    prompt_if_missing(&mut pin, "operator USBKEY PIN (HLJCA_OPERATOR_PIN)");
    Ok(pin)
}

/// Every secret available without asking.
pub fn gather(cli: &Cli) -> Result<Secrets, Failure> {
    Ok(Secrets {
        ca_pin: one("HLJCA_CA_PIN", cli.ca_pin_file.as_deref())?,
        user_pin: one("HLJCA_USER_PIN", cli.user_pin_file.as_deref())?,
        so_pin: one("HLJCA_SO_PIN", cli.so_pin_file.as_deref())?,
        ca_passphrase: one("HLJCA_CA_PASSPHRASE", None)?,
    })
}

/// Fills in a missing secret by prompting, when a person is at a terminal and CI is not set.
pub fn prompt_if_missing(slot: &mut Option<Pin>, what: &str) {
    if slot.is_some() || std::env::var_os("CI").is_some() || !std::io::stdin().is_terminal() {
        return;
    }
    if let Ok(p) = rpassword::prompt_password(format!("{what}: "))
        && !p.is_empty()
    {
        *slot = Some(Pin::new(p));
    }
}
