//! One module per command group; `run` dispatches.

mod apps;
mod apps_view;
mod batch;
mod certs;
mod db;
mod demo;
mod init;
mod issue;
mod lifecycle;
mod operator;
mod policy;
mod seal;
mod serve;
mod status;
mod token;

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use hljca_core::{Ca, Home};

use crate::Failure;
use crate::args::{Cli, Command};
use crate::secrets;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    use_home_softhsm(&cli.home);
    match &cli.command {
        Command::Init(a) => init::run(&cli, a),
        Command::Operator(c) => operator::run(&cli, c),
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
        Command::Serve(a) => serve::run(&cli, a),
        Command::Status => status::run(&cli),
        Command::Db(c) => db::run(&cli, c),
        Command::Site(c) => db::site(&cli, c),
        Command::Backup { dir } => db::backup(&cli, dir),
        Command::Restore { dir } => db::restore(&cli, dir),
        Command::Config(_) => status::config(&cli),
        Command::Completions { shell } => {
            // Generated into memory first: clap_complete panics on a failed write, while a
            // failed write of ours (the reader went away) ends the command quietly.
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "hljca", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(())
        }
        Command::Demo => demo::run(&cli),
        Command::Apps(c) => apps::run(&cli, c),
        Command::Batch(c) => batch::run(&cli, c),
    }
}

/// The name a command acts under until an operator logs in (nothing can be written under it).
pub fn operator(_cli: &Cli) -> String {
    "(not logged in)".into()
}

/// Opens the CA home and logs in the operator (HLJCA_OPERATOR_TOKEN and its PIN): for
/// commands that change anything. Core methods check the roles each step needs.
pub fn open_ca_login(cli: &Cli) -> Result<Ca, Failure> {
    let mut ca = open_ca(cli)?;
    let Some(token) = &cli.operator_token else {
        return Err(hljca_core::CoreError::NotLoggedIn.into());
    };
    let pin = secrets::operator_pin(cli)?.ok_or(hljca_core::CoreError::MissingSecret {
        what: "the operator USBKEY PIN",
        env: "HLJCA_OPERATOR_PIN",
        file_flag: Some("--operator-pin-file"),
    })?;
    let module = ca.module(cli.pkcs11_module.as_deref())?;
    ca.login(&module, &hljca_token::TokenSelector(token.clone()), &pin)?;
    Ok(ca)
}

/// The PKCS#11 module the CA keys are on, with the CA PIN asked for when missing; `None` when
/// the CA keys are in files.
pub fn ca_key_module(
    cli: &Cli,
    ca: &Ca,
    s: &mut hljca_core::Secrets,
) -> Result<Option<std::sync::Arc<hljca_token::Module>>, Failure> {
    if ca.config().ca.key_store != hljca_core::KeyStore::Hsm {
        return Ok(None);
    }
    secrets::prompt_if_missing(&mut s.ca_pin, "CA token PIN (HLJCA_CA_PIN)");
    Ok(Some(ca.module(cli.pkcs11_module.as_deref())?))
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

/// Uses `conf` as this process's SoftHSM configuration (a restored home's).
#[allow(unsafe_code)]
pub(super) fn use_softhsm_conf(conf: &Path) {
    // SAFETY: called before the PKCS#11 module is loaded, while this command runs no other
    // thread that reads the environment.
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
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
