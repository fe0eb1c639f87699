//! Log-in through the trading platform's OpenID Connect single sign-on, against a small
//! provider the test runs (its token endpoint answers an HS256 ID token signed with
//! `openssl dgst -hmac`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::portal_client::*;
use crate::support::*;

const CLIENT_SECRET: &str = "sso-client-secret-0123456789";

fn openssl_stdin(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut c = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap().stdout
}

fn b64url(bytes: &[u8]) -> String {
    let s = String::from_utf8(openssl_stdin(&["base64", "-A"], bytes)).unwrap();
    s.trim()
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// An HS256 JWT of `claims` under `secret`.
fn jwt(secret: &str, claims: &serde_json::Value) -> String {
    let signing = format!(
        "{}.{}",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let sig = openssl_stdin(
        &["dgst", "-sha256", "-hmac", secret, "-binary"],
        signing.as_bytes(),
    );
    format!("{signing}.{}", b64url(&sig))
}

/// The provider's token endpoint: answers each POST with the ID token `make` gives for the
/// posted form.
fn provider(make: impl Fn(&str) -> String + Send + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let answer = serde_json::json!({
                "access_token": "at", "token_type": "Bearer",
                "id_token": make(&String::from_utf8_lossy(&body)),
            })
            .to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

fn query_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').unwrap().1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

#[test]
fn single_sign_on_logs_the_platform_user_in() {
    let env = Env::new();
    env.init_ca();
    let nonce = Arc::new(Mutex::new(String::new()));
    let signer = Arc::new(Mutex::new(CLIENT_SECRET.to_owned()));
    let (n, k) = (nonce.clone(), signer.clone());
    let idp = provider(move |form| {
        assert!(form.contains("grant_type=authorization_code") && form.contains("code=the-code"));
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        jwt(
            &k.lock().unwrap(),
            &serde_json::json!({
                "iss": "http://idp.test", "aud": "hljca-portal", "exp": exp, "sub": "platform-user-1",
                "nonce": *n.lock().unwrap(), "name": "哈尔滨北方康复医院", "phone_number": "13800138077",
            }),
        )
    });
    let cfg = env.home.join("hljca.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[portal.sso]\nissuer = \"http://idp.test\"\nauthorize_url = \"http://idp.test/authorize\"\n\
         token_url = \"{idp}/token\"\nclient_id = \"hljca-portal\"\nredirect_url = \"http://portal.test/sso/callback\"\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let mut cmd = env.cmd(&["-v", "serve", "--listen", "127.0.0.1:0"]);
    cmd.env("HLJCA_SSO_CLIENT_SECRET", CLIENT_SECRET)
        .env("HLJCA_PORTAL_TEST_HOOKS", "1");
    let server = crate::serve::Server::spawn(&env, cmd, false);
    let b = Browser::new(&env, &server, "sso");
    assert!(b.get("/login").text().contains("/sso/login"));
    // To the provider, with state and nonce; back with a code.
    let go = b.get("/sso/login");
    assert_eq!(go.code, 303, "{}\n{}", go.text(), server.logs());
    let loc = go.header("location").unwrap();
    assert!(
        loc.starts_with("http://idp.test/authorize?response_type=code"),
        "{loc}"
    );
    assert!(loc.contains("client_id=hljca-portal"));
    let state = query_param(&loc, "state");
    *nonce.lock().unwrap() = query_param(&loc, "nonce");
    // A wrong state is refused (and ends the attempt).
    let bad = b.get("/sso/callback?code=the-code&state=forged");
    assert_eq!(bad.code, 403);
    assert!(bad.text().contains("统一身份认证登录失败"));
    let again = b.get(&format!("/sso/callback?code=the-code&state={state}"));
    assert_eq!(again.code, 403, "the state was single use");
    // A token signed with another key is refused.
    let loc = b.get("/sso/login").header("location").unwrap();
    *nonce.lock().unwrap() = query_param(&loc, "nonce");
    *signer.lock().unwrap() = "not-the-client-secret-000".into();
    let forged = b.get(&format!(
        "/sso/callback?code=the-code&state={}",
        query_param(&loc, "state")
    ));
    assert_eq!(forged.code, 403);
    assert!(server.logs().contains("bad signature"));
    // The real one logs in; the account is made on the first log-in and reused after.
    *signer.lock().unwrap() = CLIENT_SECRET.into();
    for _ in 0..2 {
        let loc = b.get("/sso/login").header("location").unwrap();
        *nonce.lock().unwrap() = query_param(&loc, "nonce");
        let ok = b.get(&format!(
            "/sso/callback?code=the-code&state={}",
            query_param(&loc, "state")
        ));
        assert_eq!(ok.code, 303, "{}", ok.text());
        assert_eq!(ok.header("location").as_deref(), Some("/apps"));
        assert!(b.get("/apps").text().contains("sso:platform-user-1"));
    }
    assert_eq!(
        env.sql("SELECT login || ' ' || mobile FROM portal_accounts"),
        "sso:platform-user-1 13800138077"
    );
    // Such an account has no password.
    let p = b.login("sso:platform-user-1", "!sso");
    assert_eq!(p.code, 401);
    env.audit_intact();
}
