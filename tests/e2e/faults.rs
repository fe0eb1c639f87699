//! A CA that stays sane when the operator's own USBKEY, the clock, the file system, the umask
//! or a signal misbehave (issue 20, items 11–17).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn objects(env: &Env, label: &str) -> usize {
    env.objects(label, USER_PIN).matches("Object;").count()
}

/// Item 11: the operator's login USBKEY is refused as a holder token on every path, although
/// the user PIN offered is the operator's PIN, and nothing on it changes.
#[test]
fn the_operators_usbkey_is_never_a_holder_token() {
    let env = Env::new();
    env.init_ca();
    let before = objects(&env, ADMIN_TOKEN);
    let app = example("medical");
    let err = env.fails(
        &[
            "issue",
            "--type",
            "medical",
            "--token",
            ADMIN_TOKEN,
            "--applicant",
            app.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("operator USBKEY"), "{err}");
    assert_eq!(objects(&env, ADMIN_TOKEN), before);
    // A batch row naming it fails alone and leaves it as it was.
    let mut row: Value = serde_json::from_str(&std::fs::read_to_string(&app).unwrap()).unwrap();
    row["external_id"] = "OPK-1".into();
    row["type"] = "medical".into();
    row["token"] = ADMIN_TOKEN.into();
    let file = env.dir.path().join("rows.jsonl");
    std::fs::write(&file, format!("{row}\n")).unwrap();
    let o = env.run(&["batch", "issue", file.to_str().unwrap(), "--json"]);
    assert!(!o.status.success());
    assert_eq!(objects(&env, ADMIN_TOKEN), before);
    assert_eq!(
        env.sql("select count(*) from certificates where role = 'identity'"),
        "0"
    );
    // The register does not name it as anybody's.
    assert_eq!(env.sql("select count(*) from token_holders"), "0");
    env.audit_intact();
}

/// Item 12: with the clock set back behind the newest CRL, no CRL and no certificate is
/// signed; CRL numbers and thisUpdate only go up; audit times never go backwards.
#[test]
fn the_ca_clock_never_goes_backwards() {
    let env = Env::new();
    let ago = |h: i64| {
        (time::OffsetDateTime::now_utc() - time::Duration::hours(h))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    // The CA and its operator made 3 h back, so that they are valid 2 h back.
    for args in [&["init"][..], &["token", "init", "--label", "k1"]] {
        let o = env.cmd(args).env("HLJCA_NOW", ago(3)).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    env.ok(&["crl", "generate"]);
    env.ok(&["crl", "generate"]);
    let crls = env.sql("select this_update from crls order by number");
    let times: Vec<&str> = crls.lines().collect();
    assert_eq!(times.len(), 2);
    assert!(
        times[0] < times[1],
        "thisUpdate went {} -> {}",
        times[0],
        times[1]
    );
    // Two hours back (test builds take the CA clock from HLJCA_NOW).
    let back = ago(2);
    let app = example("medical");
    let mut c = env.cmd(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "k1",
        "--applicant",
        app.to_str().unwrap(),
    ]);
    let o = c.env("HLJCA_NOW", &back).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("clock") && err.contains("behind"), "{err}");
    assert_eq!(
        objects(&env, "k1"),
        0,
        "keys were made with the clock behind"
    );
    // Audit rows are in time order.
    let ats = env.sql("select at from audit_log order by seq");
    let ats: Vec<&str> = ats.lines().collect();
    assert!(ats.windows(2).all(|w| w[0] <= w[1]), "{ats:?}");
    env.audit_intact();
}

/// Item 13: a home on a read-only file system can be read: audit verify, cert list, status,
/// apps list; a change is refused with the reason, and nothing is written.
#[test]
fn a_read_only_home_can_be_read() {
    let env = Env::with_sqlite();
    env.init_ca();
    env.token("k1");
    env.issue("medical", "k1");
    let ro = env.dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = Command::new("mount")
        .args(["--bind", env.home.to_str().unwrap(), ro.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("mount")
            .args(["-o", "remount,bind,ro", ro.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        let _ = Command::new("umount").arg(&ro).status();
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to bind-mount a home read-only"
        );
        eprintln!("skipped: cannot bind-mount read-only here (not root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&ro);
    assert!(
        std::fs::write(ro.join("probe"), b"x").is_err(),
        "not read-only"
    );
    let on_ro = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("HLJCA_HOME", &ro).output().unwrap()
    };
    for args in [
        &["audit", "verify"][..],
        &["cert", "list", "--json"],
        &["status"],
        &["apps", "list"],
        &["operator", "list"],
        &["crl", "show"],
    ] {
        let o = on_ro(args);
        assert!(
            o.status.success(),
            "{args:?} on a read-only home: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = on_ro(&["crl", "generate"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Read-only") || err.contains("read-only") || err.contains("readonly"),
        "{err}"
    );
}

/// Item 14: under umask 000 nothing a new home holds is writable by others.
#[test]
#[allow(unsafe_code)] // pre_exec: the child's umask, set between fork and exec
fn under_umask_000_nothing_is_world_writable() {
    let env = Env::with_sqlite();
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        // SAFETY: umask in the child between fork and exec only sets its creation mask.
        unsafe {
            c.pre_exec(|| {
                rustix::process::umask(rustix::fs::Mode::empty());
                Ok(())
            });
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["init"]);
    run(&["crl", "generate"]);
    run(&["token", "init", "--label", "k1"]);
    run(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "k1",
        "--applicant",
        example("medical").to_str().unwrap(),
    ]);
    let mut open = Vec::new();
    let mut todo = vec![env.home.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.permissions().mode() & 0o002 != 0 {
                open.push(e.path());
            }
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    assert!(open.is_empty(), "world-writable: {open:?}");
    // Published files stay readable by the web server that serves them.
    let crl = env.home.join("crl/issuing.crl");
    assert_eq!(
        std::fs::metadata(&crl).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

/// Item 15: SIGTERM to `issue` lets the issuance finish: no issuance left open, its
/// certificates issued.
#[test]
fn sigterm_lets_an_issuance_finish() {
    let env = Env::with_sqlite();
    env.init_ca();
    env.token("k1");
    let app = example("medical");
    let mut child = env
        .cmd(&[
            "issue",
            "--type",
            "medical",
            "--token",
            "k1",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env("HLJCA_FAILPOINT", "keys:sleep=2000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while env.sql("select count(*) from issuances where stage = 'keys'") != "1" {
        assert!(t0.elapsed() < Duration::from_secs(60), "never reached keys");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("finishing the issuance"), "{err}");
    assert_eq!(
        env.sql("select count(*) from issuances where stage <> 'committed' and stage <> 'void'"),
        "0"
    );
    assert_eq!(
        env.sql("select count(*) from certificates where role = 'identity' and status = 'issued'"),
        "1"
    );
    env.audit_intact();
}

/// Item 16: the only administrator's USBKEY is lost: the CA key custodian enrols a new
/// administrator with the CA PIN (witnessed by another operator when there is one), audited;
/// the new one revokes the lost one.
#[test]
fn break_glass_when_the_only_administrators_usbkey_is_lost() {
    let env = Env::new();
    env.init_ca();
    env.token("new-admin");
    let lost = env.json(&["operator", "list"])["operators"][0]["cert_serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let add = |extra: &[(&str, &str)], without_login: bool| {
        let mut c = env.cmd(&[
            "operator",
            "add",
            "--name",
            "值班管理员",
            "--site",
            "hegang",
            "--roles",
            "ca-admin,auditor",
            "--token",
            "new-admin",
            "--break-glass",
            "--json",
        ]);
        if without_login {
            c.env_remove("HLJCA_OPERATOR_TOKEN");
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // With another operator (not an administrator) active, they must witness it.
    let clerk = env.operator("clerk", "registrar");
    let o = add(&[], true);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("witness"));
    // A wrong CA PIN is no custodian.
    let o = add(
        &[
            ("HLJCA_OPERATOR_TOKEN", &clerk),
            ("HLJCA_CA_PIN", "00000000"),
        ],
        false,
    );
    assert!(!o.status.success());
    let o = add(&[("HLJCA_OPERATOR_TOKEN", &clerk)], false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["enrolled_by"], "(CA key custodian)");
    let row = env.sql(
        "select details from audit_log where action = 'operator.enrol' order by seq desc limit 1",
    );
    assert!(
        row.contains("\"break_glass\":true") && row.contains("clerk"),
        "{row}"
    );
    // The new administrator works: revokes the lost one.
    let mut c = env.cmd(&["operator", "revoke", &lost]);
    let o = c.env("HLJCA_OPERATOR_TOKEN", "new-admin").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.audit_intact();
}

/// Item 17: a CA token that is not in the HSM is named as the CA's.
#[test]
fn a_missing_ca_token_is_named_as_the_cas() {
    let env = Env::with_sqlite();
    env.init_ca();
    // Another HSM with every token but the CA's (the operator can still log in).
    let other = env.dir.path().join("other-hsm");
    let tokens = env.dir.path().join("tokens");
    let mut dropped = 0;
    for e in std::fs::read_dir(&tokens).unwrap().flatten() {
        let to = other.join("tokens").join(e.file_name());
        let meta = std::fs::read(e.path().join("token.object")).unwrap_or_default();
        if meta.windows(8).any(|w| w == b"hljca-ca") {
            dropped += 1;
            continue;
        }
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(e.path()).unwrap().flatten() {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    assert_eq!(
        dropped, 1,
        "the CA token was not found among the token files"
    );
    let conf = other.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            other.join("tokens").display()
        ),
    )
    .unwrap();
    let o = env
        .cmd(&["crl", "generate"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("the CA token") && err.contains("hljca-ca"),
        "{err}"
    );
}

/// Item 15: what a killed `crl generate` left in the publish directory is removed by the next.
#[test]
fn a_killed_crl_run_leaves_nothing_behind() {
    let env = Env::with_sqlite();
    env.init_ca();
    env.ok(&["crl", "generate"]);
    let crl = env.home.join("crl");
    // As a run killed after staging would leave them (no such process).
    let dead = 999_999_999u32;
    std::fs::write(crl.join(format!(".issuing-7.crl.{dead}")), b"x").unwrap();
    std::fs::write(crl.join(format!(".crl-7.{dead}.spool")), b"x").unwrap();
    env.ok(&["crl", "generate"]);
    let left: Vec<String> = std::fs::read_dir(&crl)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".issuing-") || n.starts_with(".crl-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
