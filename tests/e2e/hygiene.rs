//! Issue 10, items 11 and 12: output and error hygiene (broken pipes, causes printed once, PIN
//! hints, colour codes, capped error lists, the DER issuing certificate), and input hygiene
//! (identifiers refused rather than changed, invisible characters, RFC 5280 bounds, duplicate
//! keys and columns, unterminated quotes, external ids, size bounds on every file read whole).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

use crate::support::*;

/// The example applicant of `ty` as a JSON object.
fn applicant(ty: &str) -> Map<String, Value> {
    let text = std::fs::read_to_string(example(ty)).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        other => panic!("{other}"),
    }
}

/// Writes `text` to a file named `name` in the test's directory.
fn file(env: &Env, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes the example applicant of `ty` with `field` set to `value`.
fn applicant_with(env: &Env, ty: &str, field: &str, value: &str) -> PathBuf {
    let mut a = applicant(ty);
    a.insert(field.into(), json!(value));
    file(
        env,
        &format!("{ty}-{field}.json"),
        Value::Object(a).to_string(),
    )
}

/// `hljca issue --type TY --token TOKEN --applicant FILE` must fail with exit 2; returns stderr.
fn issue_refused(env: &Env, ty: &str, token: &str, app: &Path) -> String {
    env.fails(
        &[
            "issue",
            "--type",
            ty,
            "--token",
            token,
            "--applicant",
            app.to_str().unwrap(),
        ],
        2,
    )
}

/// Runs hljca with stdout a pipe whose reading end is already closed: every write to stdout
/// fails with EPIPE. Returns the exit code and stderr.
fn run_into_closed_pipe(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = env
        .cmd(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs the bash pipeline `hljca ARGS | CONSUMER` with pipefail; returns the pipeline's exit
/// status (hljca's, as the consumer succeeds) and stderr.
fn pipeline(env: &Env, args: &str, consumer: &str) -> (Option<i32>, String) {
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; \"$HLJCA_BIN\" {args} | {consumer} >/dev/null"
        ))
        .env("HLJCA_BIN", env!("CARGO_BIN_EXE_hljca"))
        .env("SOFTHSM2_CONF", &env.conf)
        .env("HLJCA_HOME", &env.home)
        .env("HLJCA_OPERATOR_TOKEN", ADMIN_TOKEN)
        .env("HLJCA_OPERATOR_PIN", USER_PIN)
        .env("CI", "true")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_on_stdout_ends_quietly_with_exit_0() {
    let env = Env::new();
    env.init_ca();
    // Enough audit rows that `head -1` leaves while hljca is still writing.
    for _ in 0..3 {
        env.ok(&["crl", "generate"]);
    }
    for args in [
        &["audit", "list"][..],
        &["audit", "list", "--json"],
        &["policy", "list"],
        &["policy", "show", "enterprise"],
        &["ca", "export"],
        &["ca", "export", "--der"],
        &["cert", "list"],
        &["completions", "bash"],
    ] {
        let (code, err) = run_into_closed_pipe(&env, args);
        assert_eq!(code, Some(0), "hljca {args:?} into a closed pipe: {err}");
        assert!(
            err.is_empty(),
            "hljca {args:?}: nothing on stderr, got:\n{err}"
        );
    }
    for i in 0..6 {
        let (code, err) = pipeline(&env, "policy list", "true");
        assert_eq!(
            code,
            Some(0),
            "run {i} of `hljca policy list | true`: {err}"
        );
        assert!(err.is_empty(), "{err}");
    }
    let (code, err) = pipeline(&env, "audit list", "head -1");
    assert_eq!(code, Some(0), "`hljca audit list | head -1`: {err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn each_cause_of_an_error_is_printed_once() {
    let env = Env::new();
    env.init_ca();
    let dir = env.dir.path().join("rows.jsonl");
    std::fs::create_dir(&dir).unwrap();
    let err = env.fails(&["batch", "issue", dir.to_str().unwrap()], 1);
    assert_eq!(count(&err, "Is a directory"), 1, "{err}");
    assert!(err.contains("reading batch file"), "{err}");
}

#[test]
fn a_wrong_ca_pin_is_named_as_the_ca_token_pin() {
    let env = Env::new();
    env.init_ca();
    let o = env
        .cmd(&["crl", "generate"])
        .env("HLJCA_CA_PIN", "99999999")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hljca-ca"), "{err}");
    assert!(
        err.contains("CA's HSM token") && err.contains("HLJCA_CA_PIN"),
        "the CA token's PIN is named: {err}"
    );
    // A wrong USBKEY user PIN gets no such hint.
    env.token("holder");
    let app = example("medical");
    let o = env
        .cmd(&[
            "issue",
            "--type",
            "medical",
            "--token",
            "holder",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env("HLJCA_USER_PIN", "99999999")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrong user PIN for token `holder`"), "{err}");
    assert!(!err.contains("HLJCA_CA_PIN"), "{err}");
}

#[test]
fn a_missing_secret_names_its_real_file_option() {
    let env = Env::new();
    env.init_ca();
    let o = env
        .cmd(&["crl", "generate"])
        .env_remove("HLJCA_CA_PIN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HLJCA_CA_PIN") && err.contains("--ca-pin-file"),
        "{err}"
    );
    assert!(!err.contains("--pin-file"), "no such option: {err}");
    env.token("t1");
    let app = example("medical");
    let o = env
        .cmd(&[
            "issue",
            "--type",
            "medical",
            "--token",
            "t1",
            "--applicant",
            app.to_str().unwrap(),
        ])
        .env_remove("HLJCA_USER_PIN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--user-pin-file"), "{err}");
    // Every option a message names exists.
    let help = env.ok(&["--help"]);
    for flag in ["--ca-pin-file", "--user-pin-file", "--so-pin-file"] {
        assert!(help.contains(flag), "{flag} is not in --help");
    }
}

#[test]
fn problems_with_the_file_or_command_line_are_not_bad_rows() {
    let env = Env::new();
    env.init_ca();
    let empty = file(&env, "empty.jsonl", "\n");
    let err = env.fails(&["batch", "issue", empty.to_str().unwrap()], 2);
    assert!(!err.contains("bad row"), "{err}");
    assert!(err.contains("a problem with the file"), "{err}");
    assert!(err.contains("file: the file has no rows"), "{err}");

    let mut row = applicant("medical");
    row.insert("external_id".into(), json!("M-1"));
    row.insert("type".into(), json!("medical"));
    let one = file(&env, "one.jsonl", format!("{}\n", Value::Object(row)));
    let err = env.fails(
        &["batch", "issue", one.to_str().unwrap(), "--tokens", "nope"],
        2,
    );
    assert!(!err.contains("0 bad row"), "{err}");
    assert!(err.contains("a problem with the command line"), "{err}");
    assert!(err.contains("command line: option `--tokens`"), "{err}");
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let env = Env::new();
    env.init_ca();
    let o = env
        .cmd(&["-v", "token", "init", "--label", "colour"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("INFO") && err.contains("operator logged in"),
        "a log line: {err}"
    );
    assert!(!err.contains('\u{1b}'), "no escape codes: {err:?}");
}

#[test]
fn the_list_of_bad_rows_is_capped() {
    let env = Env::new();
    env.init_ca();
    let n = 300;
    let text: String = (0..n)
        .map(|i| format!("{{\"external_id\":\"B-{i}\",\"type\":\"notary\"}}\n"))
        .collect();
    let f = file(&env, "bad.jsonl", text);
    let o = env.run(&["batch", "issue", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{n} bad row(s)")), "{err}");
    assert!(err.lines().count() <= 60, "{} lines", err.lines().count());
    let listed = err
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .count();
    assert_eq!(listed, 50, "{err}");
    // Every row also lacks a token: two problems a row.
    assert!(
        err.contains(&format!("… and {} more problem(s)", 2 * n - 50)),
        "{err}"
    );

    let o = env.run(&["batch", "issue", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bad_rows"], n);
    assert_eq!(v["errors"].as_array().unwrap().len(), 50);
    assert_eq!(v["more"], 2 * n - 50);
    assert_eq!(v["errors"][0]["scope"], "row");
}

#[test]
fn init_writes_the_issuing_certificate_as_der_and_ca_export_der_gives_it() {
    let env = Env::new();
    env.init_ca();
    let cer = env.home.join("ca/issuing.cer");
    let meta = std::fs::metadata(&cer).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    // openssl reads it as DER, and it is the certificate of issuing.pem.
    let from_der = env.dir.path().join("from-der.pem");
    openssl_ok(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        cer.to_str().unwrap(),
        "-out",
        from_der.to_str().unwrap(),
    ]);
    let pem_der = env.dir.path().join("pem.der");
    openssl_ok(&[
        "x509",
        "-in",
        env.issuing().to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        pem_der.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&cer).unwrap(),
        std::fs::read(&pem_der).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&from_der).unwrap(),
        std::fs::read_to_string(env.issuing())
            .unwrap()
            .replace("\r\n", "\n"),
        "issuing.cer is the certificate of issuing.pem"
    );
    // The AIA URL names that file.
    let cfg = std::fs::read_to_string(env.home.join("hljca.toml")).unwrap();
    assert!(cfg.contains("issuing.cer"), "{cfg}");
    // `ca export --der`: to a file and to stdout.
    let out = env.dir.path().join("exported.cer");
    env.ok(&["ca", "export", "--der", "--out", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&cer).unwrap());
    let o = env.run(&["ca", "export", "--der"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&cer).unwrap());
    let err = env.fails(&["ca", "export", "--der", "--json"], 2);
    assert!(err.contains("--out"), "{err}");
    // Without --der: the PEM chain, as before.
    let chain = env.ok(&["ca", "export"]);
    assert_eq!(count(&chain, "BEGIN CERTIFICATE"), 2);
}

#[test]
fn identifiers_are_refused_not_changed() {
    let env = Env::new();
    env.init_ca();
    env.token("ids");
    let app = applicant_with(&env, "enterprise", "uscc", "91230103ma1cxk7r51");
    let err = issue_refused(&env, "enterprise", "ids", &app);
    assert!(err.contains("field `uscc`"), "{err}");
    assert!(err.contains("lower case"), "{err}");
    assert!(err.contains("GB 32100-2015"), "{err}");
    let app = applicant_with(&env, "enterprise", "agent_id", "23010319720611402x");
    let err = issue_refused(&env, "enterprise", "ids", &app);
    assert!(
        err.contains("field `agent_id`") && err.contains("upper-case 'X'"),
        "{err}"
    );
    assert_eq!(
        env.sql(
            "SELECT COUNT(*) FROM certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
}

#[test]
fn invisible_characters_long_subjects_and_duplicate_keys_are_refused() {
    let env = Env::new();
    env.init_ca();
    env.token("txt");
    for (field, value, expect) in [
        ("organization", "哈尔滨\u{202E}某医院", "U+202E"),
        ("organization", "哈尔滨\u{200B}某医院", "U+200B"),
        ("agent_name", "\u{FEFF}李\u{FEFF}晓梅", "U+FEFF"),
        ("agent_name", "\u{200B}\u{200D}", "is empty"),
        ("organization", &"医".repeat(65), "RFC 5280"),
    ] {
        let app = applicant_with(&env, "medical", field, value);
        let err = issue_refused(&env, "medical", "txt", &app);
        assert!(err.contains(&format!("field `{field}`")), "{err}");
        assert!(err.contains(expect), "{field}={value:?}: {err}");
    }
    // 64 characters fit (the seal and the subject both take it).
    let app = applicant_with(&env, "medical", "organization", &"医".repeat(64));
    env.ok(&[
        "issue",
        "--type",
        "medical",
        "--token",
        "txt",
        "--applicant",
        app.to_str().unwrap(),
    ]);
    // A key given twice.
    let text = std::fs::read_to_string(example("medical")).unwrap();
    let dup = text.replacen('{', "{\"city\": \"大庆市\",", 1);
    let app = file(&env, "dup.json", dup);
    let err = issue_refused(&env, "medical", "txt", &app);
    assert!(err.contains("`city` is given more than once"), "{err}");
}

#[test]
fn batch_files_with_broken_quoting_duplicate_columns_or_bad_external_ids_are_refused() {
    let env = Env::new();
    env.init_ca();
    env.token("csv1");
    let a = applicant("medical");
    let header: Vec<&str> = a.keys().map(String::as_str).collect();
    let cells = |id: &str| -> String {
        let vals: Vec<String> = a.values().map(|v| v.as_str().unwrap().to_owned()).collect();
        format!("{id},medical,csv1,{}", vals.join(","))
    };
    let head = format!("external_id,type,token,{}", header.join(","));
    // A quote opened on line 3 and never closed: alone, the csv reader would read lines 3-5
    // as one record whose last cell swallows the rest of the file.
    let broken = format!(
        "{head}\n{}\nC-2,\"medical,csv1,x\n{}\n{}\n",
        cells("C-1"),
        cells("C-3"),
        cells("C-4")
    );
    let f = file(&env, "quote.csv", broken);
    let err = env.fails(&["batch", "issue", f.to_str().unwrap(), "--dry-run"], 2);
    assert!(err.contains("file, line 3"), "{err}");
    assert!(err.contains("never closed"), "{err}");
    // A column named twice.
    let dup = format!("{head},city\n{},哈尔滨市\n", cells("D-1"));
    let f = file(&env, "dup.csv", dup);
    let err = env.fails(&["batch", "issue", f.to_str().unwrap(), "--dry-run"], 2);
    assert!(err.contains("file, line 1"), "{err}");
    assert!(err.contains("`city` is in the header twice"), "{err}");
    // A valid file passes the dry run.
    let good = format!("{head}\n{}\n", cells("G-1"));
    let f = file(&env, "good.csv", good);
    env.ok(&["batch", "issue", f.to_str().unwrap(), "--dry-run"]);
    // External ids: 1-64 characters of A-Z a-z 0-9 . _ : -
    let long = "x".repeat(65);
    let bad = format!(
        "{head}\n{}\n{}\n{}\n",
        cells("E 1"),
        cells(&long),
        cells("ok.id_1:2-3")
    );
    let f = file(&env, "ids.csv", bad);
    let err = env.fails(&["batch", "issue", f.to_str().unwrap(), "--dry-run"], 2);
    assert!(err.contains("2 bad row(s)"), "{err}");
    assert!(err.contains("line 2: field `external_id`"), "{err}");
    assert!(err.contains("line 3: field `external_id`"), "{err}");
    assert!(err.contains("65 characters"), "{err}");
    assert!(
        err.contains("1-64 characters of A-Z a-z 0-9 . _ : -"),
        "{err}"
    );
    // JSON Lines rows with a key given twice.
    let mut row = applicant("medical");
    row.insert("external_id".into(), json!("J-1"));
    row.insert("type".into(), json!("medical"));
    row.insert("token".into(), json!("csv1"));
    let line = Value::Object(row)
        .to_string()
        .replacen('{', "{\"token\":\"other\",", 1);
    let f = file(&env, "dup.jsonl", format!("{line}\n"));
    let err = env.fails(&["batch", "issue", f.to_str().unwrap(), "--dry-run"], 2);
    assert!(err.contains("field `token`: given more than once"), "{err}");
}

#[test]
fn files_read_whole_have_size_bounds() {
    let env = Env::new();
    env.init_ca();
    env.token("big");
    // Applicant JSON over 1 MiB.
    let mut a = applicant("medical");
    a.insert("padding".into(), json!("x".repeat(1024 * 1024)));
    let app = file(&env, "big.json", Value::Object(a).to_string());
    let err = issue_refused(&env, "medical", "big", &app);
    assert!(
        err.contains("applicant file") && err.contains("1 MiB"),
        "{err}"
    );
    // A PIN file over 1 KiB.
    let pin = file(&env, "pin", "1".repeat(2000));
    let good_app = example("medical");
    let err = env.fails(
        &[
            "issue",
            "--type",
            "medical",
            "--token",
            "big",
            "--applicant",
            good_app.to_str().unwrap(),
            "--user-pin-file",
            pin.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("PIN file") && err.contains("1 KiB"), "{err}");
    // A CSR over 64 KiB.
    let csr = file(&env, "big.csr", vec![b'A'; 65 * 1024]);
    let err = env.fails(
        &[
            "issue",
            "--type",
            "medical",
            "--csr",
            csr.to_str().unwrap(),
            "--applicant",
            good_app.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("CSR") && err.contains("64 KiB"), "{err}");
    // A seal image over the picture limit (512 KiB).
    let img = file(&env, "big.png", vec![0u8; 600 * 1024]);
    let err = env.fails(
        &[
            "issue",
            "--type",
            "enterprise",
            "--token",
            "big",
            "--applicant",
            example("enterprise").to_str().unwrap(),
            "--seal-image",
            img.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        err.contains("seal image") && err.contains("512 KiB"),
        "{err}"
    );
    // A seal file over 4 MiB, and a device that never ends.
    let seal = file(&env, "big.seal", vec![0u8; 5 * 1024 * 1024]);
    let err = env.fails(&["seal", "show", "--file", seal.to_str().unwrap()], 2);
    assert!(err.contains("seal file") && err.contains("4 MiB"), "{err}");
    let err = env.fails(&["seal", "show", "--file", "/dev/zero"], 2);
    assert!(err.contains("4 MiB"), "{err}");
    // A batch file over 256 MiB (sparse: no disk is used).
    let batch = env.dir.path().join("huge.jsonl");
    std::fs::File::create(&batch)
        .unwrap()
        .set_len(257 * 1024 * 1024)
        .unwrap();
    let err = env.fails(&["batch", "issue", batch.to_str().unwrap()], 2);
    assert!(
        err.contains("huge.jsonl") && err.contains("256 MiB"),
        "{err}"
    );
    assert_eq!(
        env.sql(
            "SELECT COUNT(*) FROM certificates where role IN ('identity', 'seal', 'encryption')"
        ),
        "0"
    );
}
