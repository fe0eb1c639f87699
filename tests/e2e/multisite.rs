//! One CA on PostgreSQL shared by three sites (issue 15): processes of harbin, hegang and
//! qiqihar issue and revoke at once, each on its own HSM (a copy of the CA token, as cloned
//! HSMs would be); backups taken while issuing restore into a new home that keeps working.
//! Checked with psql and openssl, not with hljca's own word only.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pg_cluster;
use crate::support::{Env, example, on_postgres};

const SITES: [&str; 3] = ["harbin", "hegang", "qiqihar"];

/// The environment `env.cmd` gives a command, as owned pairs (threads build their own).
fn base_env(env: &Env) -> Vec<(OsString, Option<OsString>)> {
    env.cmd(&[])
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect()
}

fn command(
    base: &[(OsString, Option<OsString>)],
    conf: &Path,
    site: &str,
    args: &[&str],
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hljca"));
    c.args(args);
    for (k, v) in base {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("SOFTHSM2_CONF", conf).env("HLJCA_SITE", site);
    c
}

fn ok(mut c: Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A copy of the env's token directory with its own SoftHSM configuration (a site's HSM).
fn clone_hsm(env: &Env, name: &str) -> PathBuf {
    let dir = env.dir.path().join(format!("hsm-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(env.dir.path().join("tokens"))
        .arg(dir.join("tokens"))
        .status()
        .unwrap();
    assert!(st.success());
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    conf
}

/// One site's work: two issuances onto its own tokens, the first revoked, a CRL published.
fn site_work(base: &[(OsString, Option<OsString>)], conf: &Path, site: &str) -> Vec<String> {
    let app = example("medical");
    let mut serials = Vec::new();
    for i in 1..=2 {
        let label = format!("{site}-{i}");
        ok(command(
            base,
            conf,
            site,
            &["token", "init", "--label", &label],
        ));
        let out = ok(command(
            base,
            conf,
            site,
            &[
                "issue",
                "--type",
                "medical",
                "--token",
                &label,
                "--applicant",
                app.to_str().unwrap(),
                "--json",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        serials.push(v["certificates"][0]["serial"].as_str().unwrap().to_owned());
    }
    ok(command(
        base,
        conf,
        site,
        &["revoke", &serials[0], "--reason", "keyCompromise"],
    ));
    ok(command(base, conf, site, &["crl", "generate"]));
    serials
}

#[test]
fn three_sites_issue_and_revoke_at_once_on_one_postgres() {
    if !pg_cluster::wanted() {
        return;
    }
    let env = Env::new_pg();
    env.init_ca();
    let base = base_env(&env);
    let confs: Vec<PathBuf> = SITES.iter().map(|s| clone_hsm(&env, s)).collect();
    let issued: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = SITES
            .iter()
            .zip(&confs)
            .map(|(site, conf)| {
                let base = &base;
                scope.spawn(move || site_work(base, conf, site))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (db, _) = env.pg.as_ref().unwrap();
    let pg = pg_cluster::cluster();
    // Every certificate once, with the site that issued it.
    let rows = pg.psql(
        db,
        "SELECT serial, site FROM certificates WHERE role = 'identity' ORDER BY serial",
    );
    let recorded: Vec<(&str, &str)> = rows.lines().filter_map(|l| l.split_once('|')).collect();
    assert_eq!(recorded.len(), 6, "{rows}");
    for (site, serials) in SITES.iter().zip(&issued) {
        for s in serials {
            let n = recorded.iter().filter(|(serial, _)| serial == s).count();
            assert_eq!(n, 1, "serial {s} recorded {n} times");
            assert!(
                recorded.contains(&(s.as_str(), *site)),
                "{s} not recorded as {site}'s: {rows}"
            );
        }
    }
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(*) - count(DISTINCT serial) FROM certificates"
        ),
        "0"
    );
    // CRL numbers strictly increasing in time, one per publication.
    let crls = pg.psql(db, "SELECT number FROM crls ORDER BY this_update, number");
    let numbers: Vec<i64> = crls.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 3, "{crls}");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{crls}");
    // The newest CRL lists the three revoked certificates (openssl reads it).
    let latest = env.home.join(format!("crl/issuing-{}.crl", numbers[2]));
    if latest.exists() {
        let text = crate::support::openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            latest.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        let text = String::from_utf8_lossy(&text.stdout).to_ascii_uppercase();
        let listed = issued
            .iter()
            .filter(|s| text.contains(&s[0].to_ascii_uppercase()))
            .count();
        assert!(listed >= 1, "the newest CRL lists no revoked certificate");
    }
    // One audit chain, no forks; every audit row written by a site says which.
    env.audit_intact();
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(*) FROM audit_log WHERE seq > 20 AND site IS NULL"
        ),
        "0"
    );
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(DISTINCT site) FROM audit_log WHERE site IS NOT NULL"
        ),
        "3"
    );
    // The site is covered by the row's hash: moving a row to another site breaks the chain.
    pg.psql(
        db,
        "UPDATE audit_log SET site = 'qiqihar' WHERE seq = (SELECT max(seq) FROM audit_log WHERE site = 'harbin')",
    );
    let o = env.run(&["audit", "verify"]);
    assert!(!o.status.success(), "a re-attributed site went unnoticed");
}

/// `cert list` serials and `audit list` rows, to compare two homes.
fn snapshot(env: &Env, home: &Path, db_url: Option<&str>) -> (Vec<String>, Vec<String>) {
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("HLJCA_HOME", home);
        match db_url {
            Some(u) => c.env("HLJCA_DATABASE_URL", u),
            None => c.env_remove("HLJCA_DATABASE_URL"),
        };
        let out = ok(c);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let certs = run(&["cert", "list", "--json"]);
    let mut serials: Vec<String> = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_owned())
        .collect();
    serials.sort();
    let audit = run(&["audit", "list", "--json"]);
    let rows = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}|{}", r["seq"], r["hash"].as_str().unwrap()))
        .collect();
    (serials, rows)
}

#[test]
fn a_backup_taken_while_issuing_restores_into_a_working_home() {
    let env = Env::new();
    env.init_ca();
    env.token("before");
    env.issue("medical", "before");
    // Issue while the backup runs.
    let base = base_env(&env);
    let bk = env.dir.path().join("backup");
    let busy = std::thread::scope(|scope| {
        let base = &base;
        let conf = env.conf.clone();
        let h = scope.spawn(move || {
            ok(command(
                base,
                &conf,
                "hegang",
                &["token", "init", "--label", "during"],
            ));
            ok(command(
                base,
                &conf,
                "hegang",
                &[
                    "issue",
                    "--type",
                    "medical",
                    "--token",
                    "during",
                    "--applicant",
                    example("medical").to_str().unwrap(),
                ],
            ))
        });
        let out = env.ok(&["backup", bk.to_str().unwrap()]);
        h.join().unwrap();
        out
    });
    assert!(busy.contains("manifest"), "{busy}");
    // The backup verifies against its manifest with sha256sum too.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bk.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["softhsm_tokens"].as_bool().unwrap());
    assert!(manifest["files"]["hljca.db"].is_string());
    // A second backup into the same directory is refused, nothing changed.
    let err = env.fails(&["backup", bk.to_str().unwrap()], 1);
    assert!(err.contains("not empty"), "{err}");
    // Restore into a new home (a new PostgreSQL database on a PostgreSQL run).
    let new_home = env.dir.path().join("restored");
    let new_db = on_postgres().then(|| pg_cluster::database().1);
    let mut c = env.cmd(&[
        "restore",
        bk.to_str().unwrap(),
        "--home",
        new_home.to_str().unwrap(),
    ]);
    match &new_db {
        Some(u) => c.env("HLJCA_DATABASE_URL", u),
        None => c.env_remove("HLJCA_DATABASE_URL"),
    };
    let said = ok(c);
    let conf = new_home.join("softhsm/softhsm2.conf");
    assert!(said.contains(conf.to_str().unwrap()), "{said}");
    // The backup's state: the certificates and audit rows at backup time are all there.
    let restored = snapshot(&env, &new_home, new_db.as_deref());
    let bk_db = bk.join("hljca.db");
    let o = Command::new("sqlite3")
        .arg(&bk_db)
        .arg("SELECT seq || '|' || hash FROM audit_log ORDER BY seq")
        .output()
        .unwrap();
    let in_backup: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    // ... and one row more: the restore, confirmed by a logged-in ca-admin.
    assert_eq!(restored.1.len(), in_backup.len() + 1);
    assert_eq!(
        restored.1[..in_backup.len()],
        in_backup[..],
        "audit rows differ from the backup's"
    );
    let (orig_serials, orig_audit) =
        snapshot(&env, &env.home, env.pg.as_ref().map(|p| p.1.as_str()));
    assert!(restored.0.iter().all(|s| orig_serials.contains(s)));
    assert!(
        orig_audit.starts_with(&in_backup),
        "the backup's log is a prefix of the original"
    );
    // The original's log names the backup, the restored one the restore.
    let actions = |home: &Path, db: Option<&str>| {
        let mut c = env.cmd(&["audit", "list", "--json"]);
        c.env("HLJCA_HOME", home);
        if let Some(u) = db {
            c.env("HLJCA_DATABASE_URL", u);
        }
        ok(c)
    };
    assert!(actions(&env.home, env.pg.as_ref().map(|p| p.1.as_str())).contains("ca.backup"));
    assert!(actions(&new_home, new_db.as_deref()).contains("ca.restore"));
    // The restored home keeps working: verify, and issue with the restored CA token.
    let mut c = env.cmd(&["audit", "verify"]);
    c.env("HLJCA_HOME", &new_home).env("SOFTHSM2_CONF", &conf);
    if let Some(u) = &new_db {
        c.env("HLJCA_DATABASE_URL", u);
    }
    ok(c);
    for args in [
        vec!["token", "init", "--label", "after"],
        vec![
            "issue",
            "--type",
            "medical",
            "--token",
            "after",
            "--applicant",
            example("medical").to_str().unwrap(),
        ],
    ] {
        let mut c = env.cmd(&args);
        c.env("HLJCA_HOME", &new_home).env("SOFTHSM2_CONF", &conf);
        if let Some(u) = &new_db {
            c.env("HLJCA_DATABASE_URL", u);
        }
        ok(c);
    }
    let after = snapshot(&env, &new_home, new_db.as_deref());
    assert_eq!(after.0.len(), restored.0.len() + 1);
    // A tampered backup is refused before anything is written.
    std::fs::write(bk.join("home/hljca.toml"), "tampered").unwrap();
    let other = env.dir.path().join("other");
    let err = env.fails(
        &[
            "restore",
            bk.to_str().unwrap(),
            "--home",
            other.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("manifest"), "{err}");
    assert!(!other.exists());
}

#[test]
fn a_sqlite_ca_moves_to_postgres_with_db_copy() {
    if !pg_cluster::wanted() {
        return;
    }
    let env = Env::with_sqlite();
    env.init_ca();
    env.token("moved");
    env.issue("medical", "moved");
    let (db, url) = pg_cluster::database();
    let out = env.ok(&["db", "copy", "--to", &url]);
    assert!(out.contains("audit log verified"), "{out}");
    let pg = pg_cluster::cluster();
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM certificates"),
        env.sql("SELECT count(*) FROM certificates")
    );
    // The copy has the whole log as it was; the source's only later row says where it went.
    let copied = pg.psql(&db, "SELECT max(seq) FROM audit_log");
    assert_eq!(
        pg.psql(&db, "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1"),
        env.sql(&format!("SELECT hash FROM audit_log WHERE seq = {copied}"))
    );
    assert_eq!(
        env.sql(&format!(
            "SELECT action FROM audit_log WHERE seq > {copied}"
        )),
        "db.moved"
    );
    // The old database is retired: every command there refuses, naming the new one (no split
    // brain); `db status` still reads it.
    let err = env.fails(&["db", "copy", "--to", &url], 1);
    assert!(
        err.contains("moved to") && err.contains("postgresql://"),
        "{err}"
    );
    let err = env.fails(
        &[
            "apply",
            "--type",
            "medical",
            "--applicant",
            example("medical").to_str().unwrap(),
            "--site",
            "harbin",
        ],
        1,
    );
    assert!(err.contains("moved to"), "{err}");
    env.ok(&["db", "status"]);
    // A copy into the now non-empty database is refused.
    let other = Env::with_sqlite();
    other.init_ca();
    let err = other.fails(&["db", "copy", "--to", &url], 1);
    assert!(err.contains("not empty"), "{err}");
    // The CA runs on PostgreSQL from now on.
    let mut c = env.cmd(&["audit", "verify"]);
    c.env("HLJCA_DATABASE_URL", &url);
    ok(c);
    let mut c = env.cmd(&["db", "status", "--json"]);
    c.env("HLJCA_DATABASE_URL", &url);
    let st: serde_json::Value = serde_json::from_str(&ok(c)).unwrap();
    assert_eq!(st["backend"], "postgres");
    assert_eq!(st["schema_version"], st["newest"]);
    // Unreachable and wrong databases: one clear line, exit 1.
    let mut c = env.cmd(&["cert", "list"]);
    c.env(
        "HLJCA_DATABASE_URL",
        format!("postgresql://postgres@/nosuchdb?host={}", pg.sock.display()),
    );
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot be reached"), "{err}");
    let mut c = env.cmd(&["cert", "list"]);
    c.env(
        "HLJCA_DATABASE_URL",
        "postgresql://postgres@/x?host=/nonexistent",
    );
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    // A schema newer than this hljca is refused.
    pg.psql(&db, "INSERT INTO schema_migrations VALUES (999, 'future')");
    let mut c = env.cmd(&["cert", "list"]);
    c.env("HLJCA_DATABASE_URL", &url);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("newer than this hljca"), "{err}");
}

/// Upgrades site by site: a binary works on its own schema and on the next (an upgraded site ran
/// `db migrate`), never migrates a shared database by itself, and refuses an older schema naming
/// both versions and `db migrate`.
#[test]
fn a_shared_database_is_migrated_only_by_db_migrate() {
    if !pg_cluster::wanted() {
        return;
    }
    let env = Env::new_pg();
    env.init_ca();
    let (db, _) = env.pg.clone().unwrap();
    let pg = pg_cluster::cluster();
    let st = env.json(&["db", "status"]);
    let ours = st["binary"].as_i64().unwrap();
    assert_eq!(st["schema"], ours);
    // Another site's newer binary migrated to the next version: this one keeps working.
    pg.psql(
        &db,
        &format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ({}, 'next')",
            ours + 1
        ),
    );
    env.ok(&["cert", "list"]);
    env.token("k1");
    env.issue("medical", "k1");
    let st = env.json(&["db", "status"]);
    assert_eq!(st["schema"], ours + 1);
    assert_eq!(st["binary"], ours);
    // Two versions ahead: refused, naming what to do.
    pg.psql(
        &db,
        &format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ({}, 'after next')",
            ours + 2
        ),
    );
    let err = env.fails(&["cert", "list"], 1);
    assert!(
        err.contains("newer than this hljca") && err.contains("upgrade"),
        "{err}"
    );
    // An older schema (this binary is the upgraded one): refused until `db migrate`, which
    // no ordinary command runs by itself.
    pg.psql(
        &db,
        &format!("DELETE FROM schema_migrations WHERE version >= {ours}"),
    );
    let err = env.fails(&["cert", "list"], 1);
    assert!(
        err.contains(&format!("{}", ours - 1))
            && err.contains(&ours.to_string())
            && err.contains("hljca db migrate"),
        "{err}"
    );
    assert_eq!(
        pg.psql(&db, "SELECT max(version) FROM schema_migrations"),
        (ours - 1).to_string()
    );
}
