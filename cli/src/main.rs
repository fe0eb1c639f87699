//! `hljca`: the command-line front end of the Heilongjiang CA service.
//!
//! Only this crate touches the terminal: it parses arguments into typed values, reads secrets
//! from the environment, files or a prompt, calls `hljca-core`, and prints a table for people or
//! JSON for machines. Exit codes: 0 ok, 1 operation failed, 2 bad usage or bad input.

mod args;
mod args_apps;
mod args_batch;
mod cmd;
mod files;
mod output;
mod secrets;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use hljca_token::{PinRole, TokenError};

use crate::args::{Cli, Command};

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// Bad usage or bad input (exit 2).
    pub fn input(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        let error: anyhow::Error = e.into();
        let code = match error.downcast_ref::<hljca_core::CoreError>() {
            Some(c) if c.is_bad_input() => 2,
            _ => match error.downcast_ref::<hljca_policies::PolicyError>() {
                Some(_) => 2,
                None => 1,
            },
        };
        Failure { code, error }
    }
}

fn main() -> ExitCode {
    // Whatever the caller's umask, nothing hljca (or the PKCS#11 library it loads) creates is
    // open to other users unless hljca sets that mode explicitly (CRLs and certificates 0644).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    quiet_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let home = cli.home.clone();
    let init_ca_token = match &cli.command {
        Command::Init(a) => Some(a.ca_token.clone()),
        _ => None,
    };
    let operator_token = cli.operator_token.clone();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`hljca audit list | head -1`): not a failure.
        Err(f) if is_broken_pipe(&f.error) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", error_chain(&f.error));
            if let Some(hint) = ca_pin_hint(&f.error, &home, init_ca_token.as_deref())
                .or_else(|| operator_pin_hint(&f.error, operator_token.as_deref()))
            {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(f.code)
        }
    }
}

/// Ends the process quietly with exit code 0 when stdout is a pipe whose reader has gone
/// (`hljca audit list | head -1`): Rust ignores SIGPIPE, so the write fails with EPIPE and
/// `println!` panics with "failed printing to stdout: Broken pipe". Other panics are reported
/// as usual.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        let broken_pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string();
        if message.starts_with("failed printing to stdout")
            && (message.contains("Broken pipe") || message.contains(&broken_pipe))
        {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// True when the error comes from writing to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes joined by `: `, each cause once: a cause whose text the message
/// before it already contains (`{source}` in a thiserror message) is left out.
fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out.push_str(&text);
        } else if !previous.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

/// A hint when a PIN error concerns the operator's own USBKEY: its PIN is HLJCA_OPERATOR_PIN.
fn operator_pin_hint(error: &anyhow::Error, operator_token: Option<&str>) -> Option<String> {
    let op = operator_token?;
    let token = pin_error_token(error)?;
    (token == op).then(|| {
        format!(
            "`{token}` is your operator USBKEY: its PIN is HLJCA_OPERATOR_PIN (or \
             --operator-pin-file FILE)"
        )
    })
}

/// The token a user-PIN error names.
fn pin_error_token(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|e| {
        let t = e.downcast_ref::<TokenError>().or_else(|| {
            match e.downcast_ref::<hljca_core::CoreError>() {
                Some(hljca_core::CoreError::Token(t)) => Some(t),
                _ => None,
            }
        })?;
        match t {
            TokenError::PinIncorrect {
                token,
                role: PinRole::User,
                ..
            }
            | TokenError::PinLocked {
                token,
                role: PinRole::User,
            }
            | TokenError::PinLength {
                token,
                role: PinRole::User,
                ..
            } => Some(token.clone()),
            _ => None,
        }
    })
}

/// A hint when a PIN error concerns the CA's own HSM token: its PIN is HLJCA_CA_PIN, while the
/// token crate (which does not know which token is the CA's) calls it the token's user PIN.
fn ca_pin_hint(error: &anyhow::Error, home: &Path, init_ca_token: Option<&str>) -> Option<String> {
    let token = pin_error_token(error)?;
    let label = match init_ca_token {
        Some(t) => t.to_owned(),
        None => {
            hljca_core::Config::load(&hljca_core::Home::new(home).config())
                .ok()?
                .ca
                .token_label?
        }
    };
    (token == label).then(|| {
        format!(
            "`{token}` is the CA's HSM token: its PIN is the CA token PIN, HLJCA_CA_PIN (or \
             --ca-pin-file FILE), not a USBKEY user PIN"
        )
    })
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HLJCA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour codes only for a terminal: not in logs, pipes or files.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
