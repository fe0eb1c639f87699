//! `hljca`: the command-line front end of the Heilongjiang CA service.
//!
//! Only this crate touches the terminal: it parses arguments into typed values, reads secrets
//! from the environment, files or a prompt, calls `hljca-core`, and prints a table for people or
//! JSON for machines. Exit codes: 0 ok, 1 operation failed, 2 bad usage or bad input.

mod args;
mod args_apps;
mod args_batch;
mod cmd;
mod output;
mod secrets;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
