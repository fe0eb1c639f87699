//! Issue 12: bulk issuance from PKCS#10 requests (batch rows with a `csr`), many certificates
//! per transaction; a kill -9 in the middle of a run, then `recover`: every request issued
//! exactly once, the audit log intact.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::support::*;

/// `n` requests with keys of their own, `csr/<i>.csr` beside the batch file, and the batch
/// file of medical rows naming them.
fn csr_batch(env: &Env, n: usize, prefix: &str) -> PathBuf {
    let dir = env.dir.path().join("csr");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(example("medical")).unwrap();
    let applicant: Map<String, Value> = serde_json::from_str(&text).unwrap();
    let mut lines = String::new();
    for i in 1..=n {
        let csr = dir.join(format!("{prefix}-{i}.csr"));
        let key = dir.join(format!("{prefix}-{i}.key"));
        openssl_csr(&key, &csr, &format!("/CN=request {i}"));
        let mut row = applicant.clone();
        row.insert("external_id".into(), json!(format!("{prefix}-{i:03}")));
        row.insert("type".into(), json!("medical"));
        row.insert("csr".into(), json!(format!("csr/{prefix}-{i}.csr")));
        lines.push_str(&format!("{}\n", Value::Object(row)));
    }
    let file = env.dir.path().join(format!("{prefix}.jsonl"));
    std::fs::write(&file, lines).unwrap();
    file
}

/// Issued certificates per external id of `prefix`, and how many rows are void.
fn issued_per_id(env: &Env, prefix: &str) -> (Vec<(String, u64)>, u64) {
    let per_id = env.sql(&format!(
        "SELECT external_id, count(*) FROM certificates WHERE role IN ('identity', 'seal', 'encryption') and external_id LIKE '{prefix}-%' \
         AND status = 'issued' GROUP BY external_id ORDER BY external_id"
    ));
    let rows = per_id
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, n)| (id.to_owned(), n.parse().unwrap()))
        .collect();
    let void = env
        .sql(&format!(
            "SELECT count(*) FROM certificates WHERE role IN ('identity', 'seal', 'encryption') and external_id LIKE '{prefix}-%' AND status = 'void'"
        ))
        .parse()
        .unwrap();
    (rows, void)
}

#[test]
fn bulk_csr_batch_needs_no_token_and_issues_each_request_once() {
    let env = Env::new();
    env.init_ca();
    let file = csr_batch(&env, 12, "B");
    let report = env.json(&["batch", "issue", file.to_str().unwrap()]);
    assert_eq!(report["issued"], 12, "{report}");
    assert_eq!(report["results"][0]["token"], "(csr)");
    // Each certificate carries its request's key and verifies under the CA.
    let list = env.json(&["cert", "list", "--limit", "5"]);
    let certs = list["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 5, "a page of 5");
    assert!(list["next"].is_string(), "{list}");
    let pem = PathBuf::from(certs[0]["pem"].as_str().unwrap());
    assert!(env.openssl_verify(&pem).status.success());
    let serial = certs[0]["serial"].as_str().unwrap();
    let id = certs[0]["external_id"].as_str().unwrap();
    let n: usize = id.trim_start_matches("B-").parse().unwrap();
    let want = openssl(&[
        "req",
        "-in",
        env.dir
            .path()
            .join(format!("csr/B-{n}.csr"))
            .to_str()
            .unwrap(),
        "-noout",
        "-pubkey",
    ])
    .stdout;
    let got = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-pubkey"]).stdout;
    assert_eq!(want, got, "certificate {serial} carries the request's key");
    // The next page continues where the first ended.
    let next = env.json(&[
        "cert",
        "list",
        "--limit",
        "100",
        "--after",
        list["next"].as_str().unwrap(),
    ]);
    assert_eq!(holder_rows(&next).len(), 12 - 5, "{next}");
    // A rerun skips every row.
    let again = env.json(&["batch", "issue", file.to_str().unwrap()]);
    assert_eq!(again["skipped"], 12, "{again}");
    let (per_id, void) = issued_per_id(&env, "B");
    assert_eq!(per_id.len(), 12);
    assert!(per_id.iter().all(|(_, n)| *n == 1), "{per_id:?}");
    assert_eq!(void, 0);
    // Counted in SQL by status.
    let status = env.json(&["status"]);
    assert_eq!(status["certificates"]["issued"], 12, "{status}");
    env.audit_intact();
}

#[test]
fn bulk_csr_kill_then_recover_issues_every_request_exactly_once() {
    let env = Env::new();
    env.init_ca();
    let n = 25;
    let file = csr_batch(&env, n, "K");
    // Groups of 10; every group pauses once reserved, so the kill lands on the second group
    // reserved (the first committed, the third not started).
    let mut child = env
        .cmd(&["batch", "issue", file.to_str().unwrap()])
        .env("HLJCA_BULK_GROUP", "10")
        .env("HLJCA_FAILPOINT", "bulk-reserved:sleep=3000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let issued: u64 = env
            .sql("SELECT count(*) FROM certificates WHERE role IN ('identity', 'seal', 'encryption') and external_id LIKE 'K-%' AND status = 'issued'")
            .parse()
            .unwrap();
        let pending: u64 = env
            .sql("SELECT count(*) FROM certificates WHERE role IN ('identity', 'seal', 'encryption') and external_id LIKE 'K-%' AND status = 'pending'")
            .parse()
            .unwrap();
        if issued == 10 && pending == 10 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "batch ended before the kill"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "batch too slow");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // A rerun before recover refuses the rows the kill left pending (and issues the rest).
    let out = env.run(&["batch", "issue", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let early: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(early["skipped"], 10, "{early}");
    assert_eq!(early["failed"], 10, "{early}");
    assert_eq!(early["issued"], 5, "{early}");
    assert!(
        early["results"][10]["error"]
            .as_str()
            .unwrap()
            .contains("hljca recover"),
        "{early}"
    );
    let rec = env.json(&["recover"]);
    let issuances = rec["issuances"].as_array().unwrap();
    assert_eq!(issuances.len(), 10, "{rec}");
    assert!(
        issuances
            .iter()
            .all(|i| i["action"] == "voided" && i["stage"] == "reserved"),
        "{rec}"
    );
    env.audit_intact();
    // The rerun issues what is left, once each.
    let report = env.json(&["batch", "issue", file.to_str().unwrap()]);
    assert_eq!(report["skipped"], 15, "{report}");
    assert_eq!(report["issued"], 10, "{report}");
    let (per_id, void) = issued_per_id(&env, "K");
    assert_eq!(per_id.len(), n, "{per_id:?}");
    assert!(per_id.iter().all(|(_, c)| *c == 1), "{per_id:?}");
    assert_eq!(void, 10);
    assert_eq!(
        env.sql("SELECT count(*) FROM issuances WHERE stage NOT IN ('committed', 'void')"),
        "0"
    );
    env.audit_intact();
}
