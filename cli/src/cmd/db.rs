//! `db status`, `db migrate`, `db copy`, `backup`, `restore`.

use std::path::Path;

use hljca_core::store::copy;
use hljca_core::store::{Location, redact};
use hljca_core::{Config, Home};

use crate::Failure;
use crate::args::{Cli, DbCmd};
use crate::output;

/// The database of the home (HLJCA_DATABASE_URL, hljca.toml, or the SQLite file).
fn location(cli: &Cli) -> Result<Location, Failure> {
    let home = Home::new(&cli.home);
    let configured = Config::load(&home.config()).ok().and_then(|c| c.database);
    Ok(Location::resolve(
        home.dir(),
        home.db(),
        configured.as_deref(),
    )?)
}

/// `hljca db …`.
pub fn run(cli: &Cli, c: &DbCmd) -> Result<(), Failure> {
    match c {
        DbCmd::Status => {
            let st = copy::status(&location(cli)?)?;
            if cli.json {
                return Ok(output::json(&st)?);
            }
            println!("database           {} ({})", st.database, st.backend);
            let state = match st.schema_version {
                0 => "no hljca schema (`hljca init` creates one)".to_owned(),
                v if v == st.newest => format!("{v} (current)"),
                v if v < st.newest => {
                    format!("{v}, this hljca has {} (`hljca db migrate`)", st.newest)
                }
                v => format!("{v}, newer than this hljca ({}): upgrade hljca", st.newest),
            };
            println!("schema version     {state}");
            for (t, n) in &st.tables {
                println!("  {t:<22} {n} rows");
            }
            Ok(())
        }
        DbCmd::Migrate => {
            let loc = location(cli)?;
            let (found, now) = copy::migrate(&loc)?;
            if cli.json {
                return Ok(output::json(
                    &serde_json::json!({ "database": loc.display(), "from": found, "to": now }),
                )?);
            }
            if found == now {
                println!("schema of {} is current (version {now})", loc.display());
            } else {
                println!(
                    "migrated {} from schema version {found} to {now}",
                    loc.display()
                );
            }
            Ok(())
        }
        DbCmd::Copy { to } => {
            let ca = super::open_ca_login(cli)?;
            let target = Location::parse(to, ca.home().dir())?;
            if &target == ca.location() {
                return Err(Failure::input(anyhow::anyhow!(
                    "--to names the database the CA already uses ({})",
                    redact(to)
                )));
            }
            let report = ca.copy_database(&target)?;
            if cli.json {
                return Ok(output::json(&report)?);
            }
            for (t, n) in &report.tables {
                println!("  {t:<22} {n} rows");
            }
            println!(
                "copied {} to {}: row counts match, audit log verified ({} rows); the old database is retired: set `database = \"{}\"` in hljca.toml (or HLJCA_DATABASE_URL) to use the new one",
                ca.location().display(),
                target.display(),
                report.audit_rows,
                target.display()
            );
            Ok(())
        }
    }
}

/// `hljca backup DIR`.
pub fn backup(cli: &Cli, dir: &Path) -> Result<(), Failure> {
    let ca = super::open_ca_login(cli)?;
    let conf = std::env::var_os("SOFTHSM2_CONF").map(std::path::PathBuf::from);
    let m = ca.backup(dir, conf.as_deref())?;
    if cli.json {
        return Ok(output::json(&m)?);
    }
    println!(
        "backup written to {}: {} files, database snapshot at schema version {} ({} audit rows){}; manifest {}",
        dir.display(),
        m.files.len(),
        m.schema_version,
        m.audit_rows,
        if m.softhsm_tokens {
            ", SoftHSM token directory included"
        } else {
            ", no SoftHSM token directory (SOFTHSM2_CONF not set)"
        },
        dir.join(hljca_core::backup::MANIFEST).display()
    );
    Ok(())
}

/// `hljca restore DIR --home NEW`.
pub fn restore(cli: &Cli, dir: &Path) -> Result<(), Failure> {
    let new_home = &cli.home;
    // Only the URL from the environment: the backup's hljca.toml names the old database.
    let db = match std::env::var("HLJCA_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => Location::parse(&url, Home::new(new_home).dir())?,
        None => Location::Sqlite(Home::new(new_home).db()),
    };
    let r = hljca_core::backup::restore(dir, new_home, &db)?;
    // A ca-admin of the restored CA confirms it (their USBKEY in SOFTHSM2_CONF, or in the
    // restored token directory): checked and audited in the restored database.
    if std::env::var_os("SOFTHSM2_CONF").is_none()
        && let Some(conf) = &r.softhsm2_conf
    {
        super::use_softhsm_conf(conf);
    }
    let ca = super::open_ca_login(cli).map_err(|f| crate::Failure {
        code: f.code,
        error: f.error.context(format!(
            "restored {} into {}, but it is not confirmed: log in (HLJCA_OPERATOR_TOKEN) with a \
             ca-admin's USBKEY and run `hljca audit verify` there before using it",
            dir.display(),
            r.home.display()
        )),
    })?;
    ca.confirm_restore(dir)?;
    if cli.json {
        return Ok(output::json(&r)?);
    }
    println!(
        "restored {} into {}: database {}, audit log verified ({} rows)",
        dir.display(),
        r.home.display(),
        r.database,
        r.audit_rows
    );
    match &r.softhsm2_conf {
        Some(c) => println!(
            "the restored CA token is in SOFTHSM2_CONF={} (used by default for this home)",
            c.display()
        ),
        None => {
            println!("the backup holds no SoftHSM token directory: bring the CA token yourself")
        }
    }
    Ok(())
}

/// `hljca site …`.
pub fn site(cli: &Cli, c: &crate::args::SiteCmd) -> Result<(), Failure> {
    use crate::args::SiteCmd;
    match c {
        SiteCmd::Join { database, site } => {
            let loc = hljca_core::store::Location::parse(database, &cli.home)?;
            let conf = std::env::var_os("SOFTHSM2_CONF").map(std::path::PathBuf::from);
            let joined = hljca_ra::sites::join(&loc, site, &cli.home, conf.as_deref())?;
            if cli.json {
                return Ok(output::json(&joined)?);
            }
            println!(
                "site {} joined: home {} on {} ({} files from the database{})",
                joined.site,
                joined.home.display(),
                joined.database,
                joined.files.len(),
                joined
                    .softhsm2_conf
                    .as_ref()
                    .map(|c| format!(", token configuration {}", c.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        SiteCmd::Publish => {
            let ca = super::open_ca_login(cli)?;
            ca.require(hljca_core::operators::Role::CaAdmin, "site publish")?;
            let names = ca.share_documents()?;
            if cli.json {
                return Ok(output::json(&serde_json::json!({ "documents": names }))?);
            }
            println!("recorded in the database: {}", names.join(", "));
            Ok(())
        }
    }
}
