//! One module per command group; `run` dispatches.

mod apps;
mod apps_view;
mod batch;
mod certs;
mod demo;
mod init;
mod issue;
mod lifecycle;
mod policy;
mod seal;
mod status;
mod token;

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use hljca_core::{Ca, Home};

use crate::Failure;
use crate::args::{Cli, Command};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    use_home_softhsm(&cli.home);
    match &cli.command {
        Command::Init(a) => init::run(&cli, a),
        Command::Ca(c) => init::ca(&cli, c),
        Command::Policy(c) => policy::run(&cli, c),
        Command::Token(c) => token::run(&cli, c),
        Command::Issue(a) => issue::run(&cli, a),
        Command::Cert(c) => certs::run(&cli, c),
        Command::Seal(c) => seal::run(&cli, c),
        Command::Revoke(a) => lifecycle::revoke(&cli, a),
        Command::Release { serial } => lifecycle::release(&cli, serial),
        Command::Renew(a) => lifecycle::renew(&cli, a),
        Command::Bind(a) => lifecycle::bind(&cli, a),
        Command::Bindings(_) => lifecycle::bindings(&cli),
        Command::Crl(c) => lifecycle::crl(&cli, c),
        Command::Audit(c) => lifecycle::audit(&cli, c),
        Command::Status => status::run(&cli),
        Command::Config(_) => status::config(&cli),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "hljca", &mut std::io::stdout());
            Ok(())
        }
        Command::Demo => demo::run(&cli),
        Command::Apps(c) => apps::run(&cli, c),
        Command::Batch(c) => batch::run(&cli, c),
    }
}

/// The operator for the audit log: --operator / HLJCA_OPERATOR, else the login name.
pub fn operator(cli: &Cli) -> String {
    cli.operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// Opens the CA home.
pub fn open_ca(cli: &Cli) -> Result<Ca, Failure> {
    #[allow(unused_mut)] // set only in test builds
    let mut ca = Ca::open(Home::new(&cli.home), operator(cli))?;
    // Test builds only: HLJCA_NOW (RFC 3339) sets the CA's clock, so renewal windows, expiry
    // and reminders are tested without faketime. Release builds read the system clock.
    #[cfg(debug_assertions)]
    if let Ok(t) = std::env::var("HLJCA_NOW") {
        let t = hljca_core::time_fmt::parse_ts(&t)
            .ok_or_else(|| Failure::input(anyhow::anyhow!("HLJCA_NOW `{t}` is not RFC 3339")))?;
        ca.set_clock(t);
    }
    Ok(ca)
}

/// The SoftHSM configuration a demo home carries.
pub fn home_softhsm_conf(home: &Path) -> PathBuf {
    home.join("softhsm").join("softhsm2.conf")
}

/// A home made by `hljca demo` carries its own SoftHSM configuration; use it when the caller
/// has not chosen one, so every command works on that home without extra set-up.
#[allow(unsafe_code)]
fn use_home_softhsm(home: &Path) {
    let conf = home_softhsm_conf(home);
    if std::env::var_os("SOFTHSM2_CONF").is_none() && conf.is_file() {
        // SAFETY: called at the top of `run`, before this process starts any thread; the
        // variable is read by the PKCS#11 module when it is loaded later.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    }
}

/// Parses "30d" or "30" into days.
pub fn parse_days(s: &str) -> Result<i64, Failure> {
    let t = s.trim().trim_end_matches(['d', 'D']);
    t.parse::<i64>()
        .ok()
        .filter(|d| *d >= 0)
        .ok_or_else(|| Failure::input(anyhow::anyhow!("`{s}` is not a number of days (e.g. 30d)")))
}
