//! `hljca serve`: the OCSP responder and CRL / CA certificate publication, checked from
//! outside with `openssl ocsp`, `curl`, `openssl crl`, `openssl x509` and `openssl verify`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A running `hljca serve`, killed (and reaped) when dropped, so a failing test leaves no
/// server behind.
pub(crate) struct Server {
    child: Child,
    pub base: String,
    /// `https://ADDRESS` of the client-certificate API, when it was asked for.
    pub api: Option<String>,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(env: &Env) -> Server {
        Server::start_with(env, &[])
    }

    /// Starts `hljca -v serve --listen 127.0.0.1:0` with `extra` arguments; with
    /// `--api-listen`, waits for the API's line too.
    pub(crate) fn start_with(env: &Env, extra: &[&str]) -> Server {
        let mut args = vec!["-v", "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::spawn(env, env.cmd(&args), extra.contains(&"--api-listen"))
    }

    /// Starts `hljca serve` from `cmd` (made by `env.cmd`, perhaps with more environment);
    /// with `api`, waits for the API's line too.
    pub(crate) fn spawn(env: &Env, mut cmd: Command, api: bool) -> Server {
        let log = env.dir.path().join("serve.log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Sends every line, so the server never blocks on stdout.
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            api: None,
            log,
        };
        let Ok(first) = rx.recv_timeout(Duration::from_secs(120)) else {
            panic!("hljca serve printed nothing:\n{}", server.logs());
        };
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line `{first}`"));
        server.base = addr.to_owned();
        if api {
            while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
                if let Some(rest) = l.strip_prefix("api ") {
                    let url = rest.split_whitespace().next().unwrap_or("");
                    let host = url.trim_end_matches("/api/v1/certificates");
                    server.api = Some(host.to_owned());
                    break;
                }
            }
            assert!(server.api.is_some(), "no api line:\n{}", server.logs());
        }
        std::thread::spawn(move || for _ in rx {});
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `openssl ocsp` against the server for this home; stdout and stderr together.
fn ocsp(env: &Env, server: &Server, args: &[&str]) -> String {
    let o = Command::new("openssl")
        .arg("ocsp")
        .arg("-issuer")
        .arg(env.issuing())
        .arg("-CAfile")
        .arg(env.root())
        .arg("-url")
        .arg(server.url("/ocsp"))
        .args(args)
        .output()
        .expect("openssl is needed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is needed: run ./softhsm-setup.sh")
}

/// The HTTP status of a curl call with `-o FILE -w %{http_code}`.
fn status(o: &Output) -> u16 {
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Polls `f` for up to a minute.
fn eventually(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        match f() {
            Some(v) => return v,
            None => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    panic!("not within a minute: {what}");
}

fn issue_one(env: &Env, token: &str) -> (String, PathBuf) {
    let v = env.issue("medical", token);
    let serial = v["certificates"][0]["serial"].as_str().unwrap().to_owned();
    let pem = PathBuf::from(v["certificates"][0]["pem"].as_str().unwrap());
    (serial, pem)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn serve_answers_ocsp_good_revoked_unknown_and_held() {
    let env = Env::new();
    env.init_ca();
    env.token("u1");
    env.token("u2");
    let (serial, pem) = issue_one(&env, "u1");
    let (held, held_pem) = issue_one(&env, "u2");
    // The certificate names the OCSP responder of the home's configuration.
    let uri = openssl(&["x509", "-in", p(&pem), "-noout", "-ocsp_uri"]);
    let cfg = std::fs::read_to_string(env.home.join("hljca.toml")).unwrap();
    let want = String::from_utf8_lossy(&uri.stdout).trim().to_owned();
    assert!(want.ends_with("/ocsp"), "{want}");
    assert!(cfg.contains(&format!("ocsp = \"{want}\"")), "{cfg}");

    let server = Server::start(&env);
    let out = ocsp(&env, &server, &["-cert", p(&pem)]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", p(&pem))), "{out}");
    // Without a nonce (RFC 5019): the same answer, from signed responses kept in memory.
    let out = ocsp(&env, &server, &["-cert", p(&pem), "-no_nonce"]);
    assert!(
        out.contains(": good") && out.contains("Response verify OK"),
        "{out}"
    );

    // A serial this CA never issued.
    let out = ocsp(&env, &server, &["-serial", "0x1234"]);
    assert!(out.contains("0x1234: unknown"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");

    env.ok(&["revoke", &serial, "--reason", "keyCompromise"]);
    for nonce in [&[][..], &["-no_nonce"][..]] {
        let mut args = vec!["-cert", p(&pem)];
        args.extend_from_slice(nonce);
        let out = eventually("revoked over OCSP", || {
            let out = ocsp(&env, &server, &args);
            out.contains(": revoked").then_some(out)
        });
        assert!(out.contains("Reason: keyCompromise"), "{out}");
        assert!(out.contains("Revocation Time:"), "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
    }

    // On hold: revoked with reason certificateHold; released: good again.
    env.ok(&["revoke", &held, "--reason", "certificateHold"]);
    let out = eventually("held over OCSP", || {
        let out = ocsp(&env, &server, &["-cert", p(&held_pem), "-no_nonce"]);
        out.contains(": revoked").then_some(out)
    });
    assert!(out.contains("Reason: certificateHold"), "{out}");
    env.ok(&["release", &held]);
    eventually("released over OCSP", || {
        let out = ocsp(&env, &server, &["-cert", p(&held_pem), "-no_nonce"]);
        out.contains(": good").then_some(out)
    });
    let logs = server.logs();
    assert!(logs.contains("ocsp=\"revoked\""), "{logs}");
}

#[test]
fn serve_publishes_crl_and_ca_certificates() {
    let env = Env::new();
    env.init_ca();
    env.token("u1");
    let (serial, pem) = issue_one(&env, "u1");
    let server = Server::start(&env);
    let d = env.dir.path();

    // Both CA certificates, DER, the same as the home's.
    for (path, pem_file) in [
        ("/ca/root.cer", env.root()),
        ("/ca/issuing.cer", env.issuing()),
    ] {
        let file = d.join("ca.der");
        let o = curl(&["-o", p(&file), "-w", "%{http_code}", &server.url(path)]);
        assert_eq!(status(&o), 200, "{path}");
        let served = openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            p(&file),
            "-noout",
            "-fingerprint",
        ]);
        assert!(served.status.success(), "{path}");
        let home = openssl(&["x509", "-in", p(&pem_file), "-noout", "-fingerprint"]);
        assert_eq!(served.stdout, home.stdout, "{path}");
    }

    // The CRL with caching headers from its nextUpdate, checked by openssl.
    let fetch_crl = |name: &str| -> (PathBuf, String) {
        let der = d.join(format!("{name}.crl"));
        let o = curl(&["-D", "-", "-o", p(&der), &server.url("/crl/issuing.crl")]);
        let headers = String::from_utf8_lossy(&o.stdout).to_lowercase();
        assert!(headers.starts_with("http/1.1 200"), "{headers}");
        let pem = d.join(format!("{name}.pem"));
        openssl_ok(&["crl", "-inform", "DER", "-in", p(&der), "-out", p(&pem)]);
        (pem, headers)
    };
    let (crl1, headers) = fetch_crl("first");
    assert!(
        headers.contains("content-type: application/pkix-crl"),
        "{headers}"
    );
    assert!(
        headers.contains("cache-control: public, max-age="),
        "{headers}"
    );
    assert!(headers.contains("etag: \""), "{headers}");
    assert!(headers.contains("last-modified: "), "{headers}");
    assert!(headers.contains("expires: "), "{headers}");
    let verify = |crl: &Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            p(&env.root()),
            "-untrusted",
            p(&env.issuing()),
            "-CRLfile",
            p(crl),
            p(&pem),
        ])
    };
    let v = verify(&crl1);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // A conditional GET with the entity tag: 304.
    let etag = headers
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_owned();
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("If-None-Match: {etag}"),
        &server.url("/crl/issuing.crl"),
    ]);
    assert_eq!(status(&o), 304);

    // After a revocation the server publishes a newer CRL listing it.
    env.ok(&["revoke", &serial, "--reason", "affiliationChanged"]);
    let number = |crl: &Path| {
        let o = openssl(&["crl", "-in", p(crl), "-noout", "-crlnumber"]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let first = number(&crl1);
    let crl2 = PathBuf::from(eventually("a new CRL", || {
        let (crl, _) = fetch_crl("second");
        (number(&crl) != first).then(|| p(&crl).to_owned())
    }));
    let text = openssl(&["crl", "-in", p(&crl2), "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout).to_uppercase();
    assert!(text.contains(&serial.to_uppercase()), "{text}");
    let v = verify(&crl2);
    assert!(!v.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(said.contains("certificate revoked"), "{said}");
}

#[test]
fn serve_refuses_bad_input_and_keeps_answering() {
    let env = Env::new();
    env.init_ca();
    env.token("u1");
    let (_, pem) = issue_one(&env, "u1");
    let server = Server::start(&env);
    let d = env.dir.path();
    let url = server.url("/ocsp");
    let post = |body: &Path, ctype: &str| -> (u16, PathBuf) {
        let out = d.join("resp.der");
        let o = curl(&[
            "-o",
            p(&out),
            "-w",
            "%{http_code}",
            "-H",
            &format!("Content-Type: {ctype}"),
            "--data-binary",
            &format!("@{}", p(body)),
            &url,
        ]);
        (status(&o), out)
    };
    let resp_text = |resp: &Path| {
        let o = openssl(&["ocsp", "-respin", p(resp), "-resp_text", "-noverify"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let good = || {
        let out = ocsp(&env, &server, &["-cert", p(&pem)]);
        assert!(
            out.contains(": good") && out.contains("Response verify OK"),
            "{out}"
        );
    };

    // Garbage: an OCSP malformedRequest, and the next request is answered.
    let garbage = d.join("garbage");
    std::fs::write(&garbage, b"this is not DER").unwrap();
    let (code, resp) = post(&garbage, "application/ocsp-request");
    assert_eq!(code, 200);
    assert!(
        resp_text(&resp).contains("malformedrequest"),
        "{}",
        resp_text(&resp)
    );
    good();

    // A truncated request: malformedRequest.
    let req = d.join("req.der");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        p(&env.issuing()),
        "-cert",
        p(&pem),
        "-no_nonce",
        "-reqout",
        p(&req),
    ]);
    let full = std::fs::read(&req).unwrap();
    let cut = d.join("cut.der");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let (code, resp) = post(&cut, "application/ocsp-request");
    assert_eq!(code, 200);
    assert!(resp_text(&resp).contains("malformedrequest"));

    // Another issuer's certificate: unauthorized.
    let (okey, ocert) = (d.join("other.key"), d.join("other.pem"));
    self_signed_ec(&okey, &ocert, "/CN=Some other CA", "30");
    let other = d.join("other-req.der");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        p(&ocert),
        "-serial",
        "0x01",
        "-no_nonce",
        "-reqout",
        p(&other),
    ]);
    let (code, resp) = post(&other, "application/ocsp-request");
    assert_eq!(code, 200);
    assert!(
        resp_text(&resp).contains("unauthorized"),
        "{}",
        resp_text(&resp)
    );

    // Wrong content type, unknown route, oversized body: HTTP errors.
    assert_eq!(post(&req, "text/plain").0, 415);
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.url("/nothing/here"),
    ]);
    assert_eq!(status(&o), 404);
    let big = d.join("big");
    std::fs::write(&big, vec![0x30u8; 100_000]).unwrap();
    assert_eq!(post(&big, "application/ocsp-request").0, 413);
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "DELETE",
        &url,
    ]);
    assert_eq!(status(&o), 405);

    // GET with the url-encoded base64 request (RFC 6960 appendix A), cacheable (RFC 5019).
    let b64 = openssl(&["base64", "-A", "-in", p(&req)]);
    let b64 = String::from_utf8_lossy(&b64.stdout)
        .trim()
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let got = d.join("get.der");
    let o = curl(&["-D", "-", "-o", p(&got), &format!("{url}/{b64}")]);
    let headers = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(
        headers.contains("content-type: application/ocsp-response"),
        "{headers}"
    );
    assert!(headers.contains("cache-control: max-age="), "{headers}");
    let text = resp_text(&got);
    assert!(text.contains("Cert Status: good"), "{text}");
    let o = curl(&[
        "-o",
        p(&got),
        "-w",
        "%{http_code}",
        &format!("{url}/!!notbase64"),
    ]);
    assert_eq!(status(&o), 200);
    assert!(resp_text(&got).contains("malformedrequest"));

    // A slow client holding a half-sent request does not stop others.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n")
        .unwrap();
    good();
    drop(slow);

    // Health and metrics.
    let o = curl(&["-w", "\n%{http_code}", &server.url("/healthz")]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.ends_with("\n200"), "{text}");
    let health: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["writable"], true, "{health}");
    let o = curl(&[&server.url("/metrics")]);
    let metrics = String::from_utf8_lossy(&o.stdout).into_owned();
    for want in [
        "hljca_ocsp_responses_total{status=\"malformedRequest\"} 3",
        "hljca_ocsp_responses_total{status=\"unauthorized\"} 1",
        "hljca_http_requests_total{route=\"ocsp_post\",code=\"415\"} 1",
        "hljca_http_request_duration_seconds_count{route=\"ocsp_post\"}",
    ] {
        assert!(metrics.contains(want), "{want} in\n{metrics}");
    }
    let logs = server.logs();
    assert!(logs.contains("refused=malformedRequest"), "{logs}");

    // SIGTERM: a graceful stop, exit code 0.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let until = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "{code:?}\n{}", server.logs());
    assert!(server.logs().contains("stopped"));
}
