//! Issue 12: the streamed CRL, checked by openssl (the database keeps its hash and file name,
//! not the DER), and the expiring list paged soonest first.

use std::process::Command;

use crate::support::*;

fn sha256_file(path: &std::path::Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn streamed_crl_lists_entries_in_serial_order_with_reasons_and_verifies() {
    let env = Env::new();
    env.init_ca();
    let mut serials = Vec::new();
    for (i, reason) in ["keyCompromise", "certificateHold", "unspecified"]
        .iter()
        .enumerate()
    {
        let label = format!("crl-{i}");
        env.token(&label);
        let v = env.issue("medical", &label);
        let serial = v["certificates"][0]["serial"].as_str().unwrap().to_owned();
        env.ok(&["revoke", &serial, "--reason", reason]);
        serials.push((serial, *reason));
    }
    let report = env.json(&["crl", "generate"]);
    assert_eq!(report["revoked"], 3, "{report}");
    let der = env.home.join("crl/issuing.crl");
    // openssl checks the signature over the streamed TBS with the issuing CA's key.
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-CAfile",
        env.issuing().to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("verify OK"), "{err}");
    assert!(text.contains("CRL Number"), "{text}");
    // Entries come in serial order (the hex serials are all 16 bytes long).
    let listed: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(str::to_ascii_lowercase)
        .collect();
    let mut want: Vec<String> = serials.iter().map(|(s, _)| s.clone()).collect();
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(count(&text, "Key Compromise"), 1, "{text}");
    assert_eq!(count(&text, "Certificate Hold"), 1, "{text}");
    assert_eq!(
        count(&text, "CRL Reason Code"),
        2,
        "unspecified is left out of its entry: {text}"
    );
    // The database keeps the number, the hash and the file name; the DER lives in the file.
    let number = report["number"].as_i64().unwrap();
    let row = env.sql(&format!(
        "select sha256 || '|' || file || '|' || revoked from crls where number = {number}"
    ));
    let numbered = env.home.join(format!("crl/issuing-{number}.crl"));
    assert_eq!(
        row,
        format!("{}|issuing-{number}.crl|3", sha256_file(&numbered))
    );
    assert_eq!(sha256_file(&numbered), sha256_file(&der));
    let columns = env.sql("select group_concat(name) from pragma_table_info('crls')");
    assert!(!columns.contains("der"), "{columns}");
    // The PEM copy is the same CRL.
    let pem = openssl(&[
        "crl",
        "-in",
        env.home.join("crl/issuing.pem").to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    assert!(pem.status.success());
    assert_eq!(pem.stdout, std::fs::read(&der).unwrap());
    // No spool or staged file is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(env.home.join("crl"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("spool") || n.starts_with(".issuing-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.audit_intact();
}

#[test]
fn expiring_list_pages_soonest_first_and_status_counts_them() {
    let env = Env::new();
    env.init_ca();
    // Issued 20, 10 and 0 days apart by the CA's clock: they expire in that order reversed.
    let mut by_expiry = Vec::new();
    for (i, day) in [20, 10, 0].iter().enumerate() {
        env.days_from_now(*day);
        let label = format!("exp-{i}");
        env.token(&label);
        let v = env.issue("medical", &label);
        by_expiry.push(v["certificates"][0]["serial"].as_str().unwrap().to_owned());
    }
    by_expiry.reverse();
    // 350 days on, all three expire within 60 days; the list runs soonest first.
    env.days_from_now(350);
    let page = |extra: &[&str]| {
        let mut args = vec!["cert", "list", "--expiring-within", "60d", "--limit", "2"];
        args.extend_from_slice(extra);
        let v = env.json(&args);
        let serials: Vec<String> = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["serial"].as_str().unwrap().to_owned())
            .collect();
        (serials, v["next"].as_str().map(str::to_owned))
    };
    let (first, next) = page(&[]);
    assert_eq!(first, by_expiry[..2].to_vec());
    let next = next.expect("a second page");
    let (second, last) = page(&["--after", &next]);
    assert_eq!(second, by_expiry[2..].to_vec());
    assert_eq!(last, None);
    let st = env.json(&["status"]);
    assert_eq!(st["certificates"]["expiring_within_30_days"], 2, "{st}");
    assert_eq!(st["certificates"]["issued"], 3, "{st}");
}
