//! Log-in through the trading platform's OpenID Connect single sign-on (seed steps 1–3),
//! when `[portal.sso]` is configured: the authorization code flow with `state` and `nonce`
//! kept in the session, the code exchanged at the token endpoint (plain HTTP), and the ID
//! token (a JWT signed HS256 with the client secret) checked for signature, `iss`, `aud`,
//! `exp` and `nonce` before the session logs in as the account of its `sub`.

use hljca_ra::prelude::*;
use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use hljca_core::config::SsoConfig;
use hljca_policies::Mobile;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{StatusCode, header};
use serde::Deserialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Portal;
use crate::pages::{failed, refuse};
use crate::session::{self, Session, token};
use crate::web::Answer;

/// The provider and this portal's secret with it.
pub(crate) struct Sso {
    pub cfg: SsoConfig,
    pub secret: Zeroizing<Vec<u8>>,
}

/// The claims the portal reads.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    aud: serde_json::Value,
    exp: i64,
    sub: String,
    nonce: Option<String>,
    name: Option<String>,
    phone_number: Option<String>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// Checks an HS256 ID token; the claims or why not.
fn verify(sso: &Sso, jwt: &str, nonce: &str, now: i64) -> Result<Claims, String> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWS compact token".into());
    };
    let header: serde_json::Value = serde_json::from_slice(&b64(h).ok_or("header not base64url")?)
        .map_err(|e| e.to_string())?;
    if header["alg"] != "HS256" {
        return Err(format!("alg {} (only HS256)", header["alg"]));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&sso.secret).map_err(|e| e.to_string())?;
    mac.update(format!("{h}.{p}").as_bytes());
    mac.verify_slice(&b64(sig).ok_or("signature not base64url")?)
        .map_err(|_| "bad signature".to_owned())?;
    let c: Claims = serde_json::from_slice(&b64(p).ok_or("payload not base64url")?)
        .map_err(|e| e.to_string())?;
    if c.iss != sso.cfg.issuer {
        return Err(format!("iss {}", c.iss));
    }
    let aud_ok = match &c.aud {
        serde_json::Value::String(a) => *a == sso.cfg.client_id,
        serde_json::Value::Array(a) => a.iter().any(|x| *x == *sso.cfg.client_id),
        _ => false,
    };
    if !aud_ok {
        return Err("aud is not this client".into());
    }
    if c.exp <= now {
        return Err("expired".into());
    }
    if c.nonce.as_deref() != Some(nonce) {
        return Err("nonce does not match".into());
    }
    Ok(c)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /sso/login`: to the provider, with a fresh state and nonce.
pub(crate) fn login(p: &Portal, s: &Session) -> Answer {
    let Some(sso) = &p.sso else {
        return crate::pages::not_found(s, "single sign-on is not configured");
    };
    let (state, nonce) = (token(), token());
    let (st, no) = (state.clone(), nonce.clone());
    p.sessions.update(&s.id, |x| x.sso = Some((st, no)));
    let c = &sso.cfg;
    let sep = if c.authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    Answer::redirect(&format!(
        "{}{sep}response_type=code&scope=openid&client_id={}&redirect_uri={}&state={}&nonce={}",
        c.authorize_url,
        enc(&c.client_id),
        enc(&c.redirect_url),
        state,
        nonce
    ))
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

async fn exchange(sso: &Sso, code: &str) -> Result<String, String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &sso.cfg.redirect_url)
        .append_pair("client_id", &sso.cfg.client_id)
        .append_pair("client_secret", &String::from_utf8_lossy(&sso.secret))
        .finish();
    let req = hyper::Request::post(&sso.cfg.token_url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| "token endpoint timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        return Err(format!("token endpoint answered {}", resp.status()));
    }
    let bytes = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let t: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(t.id_token)
}

/// `GET /sso/callback?code=…&state=…`.
pub(crate) async fn callback(p: &Portal, s: &Session, q: &HashMap<String, String>) -> Answer {
    let Some(sso) = &p.sso else {
        return crate::pages::not_found(s, "single sign-on is not configured");
    };
    let bad = |why: &str| {
        refuse(
            s,
            StatusCode::FORBIDDEN,
            "统一身份认证登录失败，请重新登录。",
            "Single sign-on failed; log in again.",
            &format!("sso: {why}"),
        )
    };
    let mut pending = None;
    p.sessions.update(&s.id, |x| pending = x.sso.take());
    let Some((state, nonce)) = pending else {
        return bad("no log-in in progress in this session");
    };
    if !q.get("state").is_some_and(|v| crate::web::same(v, &state)) {
        return bad("state does not match");
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty() && c.len() <= 512) else {
        return bad("no code");
    };
    let jwt = match exchange(sso, code).await {
        Ok(j) => j,
        Err(e) => return bad(&e),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = match verify(sso, &jwt, &nonce, now) {
        Ok(c) => c,
        Err(e) => return bad(&format!("ID token refused: {e}")),
    };
    let Some(mobile) = claims
        .phone_number
        .as_deref()
        .and_then(|m| m.parse::<Mobile>().ok())
    else {
        return bad("the ID token has no mainland mobile phone_number");
    };
    let sub = claims.sub.clone();
    let name = claims.name.clone().unwrap_or_default();
    let actor = format!("applicant:sso:{sub}");
    let acct = match p
        .ca
        .run(move |ca| {
            ca.act_for(&actor, &[], |ca| {
                ca.online_sso_account(&sub, &name, &mobile)
            })
        })
        .await
    {
        Ok(a) => a,
        Err(e) => return failed(s, e),
    };
    let new = p.sessions.login(&s.id, acct.id, &acct.login);
    tracing::info!(account = acct.id, "portal log-in through single sign-on");
    Answer::redirect("/apps").with_cookie(&session::set_cookie(&new.id, p.cfg.secure_cookies))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sso() -> Sso {
        Sso {
            cfg: SsoConfig {
                issuer: "http://idp".into(),
                authorize_url: "http://idp/authorize".into(),
                token_url: "http://idp/token".into(),
                client_id: "hljca".into(),
                redirect_url: "http://portal/sso/callback".into(),
                client_secret_file: None,
            },
            secret: Zeroizing::new(b"client-secret-0123456789".to_vec()),
        }
    }

    fn jwt(secret: &[u8], claims: &serde_json::Value) -> String {
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let h = e(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = e(claims.to_string().as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", e(&mac.finalize().into_bytes()))
    }

    #[test]
    fn id_tokens_are_checked() {
        let s = sso();
        let good = serde_json::json!({"iss":"http://idp","aud":"hljca","exp":2000,"sub":"u1","nonce":"n1"});
        assert!(verify(&s, &jwt(&s.secret, &good), "n1", 1000).is_ok());
        assert!(
            verify(&s, &jwt(b"other", &good), "n1", 1000)
                .unwrap_err()
                .contains("signature")
        );
        assert!(
            verify(&s, &jwt(&s.secret, &good), "n2", 1000)
                .unwrap_err()
                .contains("nonce")
        );
        assert!(
            verify(&s, &jwt(&s.secret, &good), "n1", 3000)
                .unwrap_err()
                .contains("expired")
        );
        let mut aud = good.clone();
        aud["aud"] = "someone-else".into();
        assert!(verify(&s, &jwt(&s.secret, &aud), "n1", 1000).is_err());
        let mut iss = good;
        iss["iss"] = "http://evil".into();
        assert!(verify(&s, &jwt(&s.secret, &iss), "n1", 1000).is_err());
        assert!(verify(&s, "a.b", "n1", 1000).is_err());
    }
}
