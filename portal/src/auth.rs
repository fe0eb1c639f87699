//! Accounts: registration (Argon2id password hash), log-in with the arithmetic captcha and
//! the lockout of `applications::online`, log-out.

use hljca_ra::prelude::*;
use std::collections::HashMap;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hljca_policies::Mobile;
use hljca_ra::applications::{AccountKind, LoginCheck, NewAccount};
use hyper::StatusCode;
use maud::{Markup, html};

use crate::session::{self, Session};
use crate::view::{csrf, message, page};
use crate::web::Answer;
use crate::{Portal, PortalError};

/// The one answer to a wrong password, an unknown account and a locked one.
const BAD_LOGIN_ZH: &str = "账号或密码错误。连续失败 5 次后账号将锁定 15 分钟。";
const BAD_LOGIN_EN: &str =
    "Wrong account or password. After 5 failures in a row the account is locked for 15 minutes.";

fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist (the same work either way).
fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash("not a password of anyone").unwrap_or_default())
}

fn field(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default()
}

pub(crate) fn register_page(
    s: &Session,
    error: Option<&str>,
    f: &HashMap<String, String>,
) -> Answer {
    let l = s.lang;
    let kind = f.get("kind").map(String::as_str).unwrap_or("organization");
    let body = html! {
        @if let Some(e) = error { (message(true, e)) }
        form method="post" action="/register" {
            (csrf(s))
            fieldset {
                legend { (l.t("用户类型", "Account type")) }
                label { input type="radio" name="kind" value="organization" checked[kind != "person"]; " " (l.t("单位", "Organisation")) }
                label { input type="radio" name="kind" value="person" checked[kind == "person"]; " " (l.t("个人（专家）", "Person (expert)")) }
            }
            label for="display_name" { (l.t("单位名称或姓名", "Organisation or person's name")) }
            input id="display_name" name="display_name" required maxlength="64" value=(field(f, "display_name"));
            label for="mobile" { (l.t("手机号码（登录账号）", "Mobile number (your log-in)")) }
            input id="mobile" name="mobile" type="tel" required inputmode="numeric" autocomplete="username" value=(field(f, "mobile"));
            label for="password" { (l.t("密码（至少 8 位）", "Password (at least 8 characters)")) }
            input id="password" name="password" type="password" required minlength="8" autocomplete="new-password";
            label for="password2" { (l.t("确认密码", "Password again")) }
            input id="password2" name="password2" type="password" required minlength="8" autocomplete="new-password";
            button type="submit" { (l.t("立即注册", "Register")) }
        }
    };
    let code = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Answer::html(code, page(s, l.t("注册用户", "Register"), body))
}

pub(crate) async fn register(p: &Portal, s: &Session, f: &HashMap<String, String>) -> Answer {
    let l = s.lang;
    let bad = |zh: &str, en: &str, log: &str| {
        register_page(s, Some(l.t(zh, en)), f).refused(log.to_owned())
    };
    let kind = match f.get("kind").map(String::as_str) {
        Some("person") => AccountKind::Person,
        Some("organization") | None => AccountKind::Organization,
        Some(_) => {
            return bad(
                "字段「用户类型」：只能是单位或个人。",
                "Account type: organisation or person.",
                "bad kind",
            );
        }
    };
    let name = field(f, "display_name");
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return bad(
            "字段「单位名称或姓名」：必填，最多 64 个字符。",
            "Name: required, at most 64 characters.",
            "bad display_name",
        );
    }
    let mobile: Mobile = match field(f, "mobile").parse() {
        Ok(m) => m,
        Err(_) => {
            return bad(
                "字段「手机号码」：应为 11 位中国大陆手机号码（1 开头）。",
                "Mobile: an 11-digit mainland China mobile number starting with 1.",
                "bad mobile",
            );
        }
    };
    let pw = f.get("password").cloned().unwrap_or_default();
    if pw.chars().count() < 8 || pw.chars().count() > 128 {
        return bad(
            "字段「密码」：长度应为 8 到 128 个字符。",
            "Password: 8 to 128 characters.",
            "bad password length",
        );
    }
    if f.get("password2") != Some(&pw) {
        return bad(
            "字段「确认密码」：两次输入的密码不一致。",
            "Password again: the two passwords differ.",
            "passwords differ",
        );
    }
    let phc = match tokio::task::spawn_blocking(move || hash(&pw)).await {
        Ok(Ok(h)) => h,
        _ => return crate::pages::failed(s, PortalError::Busy),
    };
    let new = NewAccount {
        kind,
        display_name: name,
        mobile: mobile.clone(),
        password_hash: phc,
    };
    let actor = format!("applicant:{}", mobile.as_str());
    match p
        .ca
        .run(move |ca| ca.act_for(&actor, &[], |ca| ca.online_register(&new)))
        .await
    {
        Ok(acct) => {
            tracing::info!(account = acct.id, "portal account registered");
            login_page(
                p,
                s,
                Some((
                    false,
                    l.t("注册成功，请登录。", "Registered. Please log in."),
                )),
            )
        }
        Err(PortalError::Core(hljca_core::CoreError::Refused(r)))
            if r.rule == hljca_core::Rule::AlreadyRegistered =>
        {
            bad(
                "该手机号码已注册，请直接登录。",
                "This mobile number is already registered; log in.",
                &r.message,
            )
        }
        Err(e) => crate::pages::failed(s, e),
    }
}

/// A new captcha question for the session: its text and id (the answer stays on the server).
/// The id goes back with the form, so an old form replayed cannot pass even when the new
/// question happens to have the same answer.
fn new_captcha(p: &Portal, s: &Session) -> (String, String) {
    let a = 10 + session::below(90);
    let b = 10 + session::below(90);
    let id = session::token();
    let stored = id.clone();
    p.sessions
        .update(&s.id, move |x| x.captcha = Some((stored, a + b)));
    (format!("{a} + {b} = ?"), id)
}

pub(crate) fn login_page(p: &Portal, s: &Session, msg: Option<(bool, &str)>) -> Answer {
    let l = s.lang;
    let (question, captcha_id) = new_captcha(p, s);
    let form: Markup = html! {
        @if let Some((err, m)) = msg { (message(err, m)) }
        form method="post" action="/login" {
            (csrf(s))
            label for="login" { (l.t("账号（手机号码）", "Account (mobile number)")) }
            input id="login" name="login" required autocomplete="username" inputmode="numeric";
            label for="password" { (l.t("密码", "Password")) }
            input id="password" name="password" type="password" required autocomplete="current-password";
            label for="captcha" { (l.t("验证码：请计算 ", "Captcha: work out ")) span class="captcha" { (question) } }
            input id="captcha" name="captcha" required inputmode="numeric" autocomplete="off";
            input type="hidden" name="captcha_id" value=(captcha_id);
            button type="submit" { (l.t("登录", "Log in")) }
        }
        p { (l.t("还没有账号？", "No account yet? ")) a href="/register" { (l.t("注册用户", "Register")) } }
        @if p.sso.is_some() {
            p { a class="button secondary" href="/sso/login" { (l.t("使用黑龙江省公共资源交易平台账号登录", "Log in with the trading platform's account")) } }
        }
    };
    let code = match msg {
        Some((true, _)) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    };
    Answer::html(code, page(s, l.t("用户登录", "Log in"), form))
}

pub(crate) async fn login(p: &Portal, s: &Session, f: &HashMap<String, String>) -> Answer {
    let l = s.lang;
    let expected = p.sessions.take_captcha(&s.id);
    let given = field(f, "captcha").parse::<u32>().ok();
    let given_id = field(f, "captcha_id");
    if !expected.is_some_and(|(id, answer)| id == given_id && given == Some(answer)) {
        return login_page(
            p,
            s,
            Some((
                true,
                l.t(
                    "验证码错误，请重新计算。",
                    "Wrong captcha; try the new one.",
                ),
            )),
        )
        .refused("wrong or missing captcha");
    }
    let login = field(f, "login");
    let pw = f.get("password").cloned().unwrap_or_default();
    let lookup = login.clone();
    let acct = match p
        .ca
        .run(move |ca| ca.online_account_by_login(&lookup))
        .await
    {
        Ok(a) => a,
        Err(e) => return crate::pages::failed(s, e),
    };
    let phc = acct
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let ok = tokio::task::spawn_blocking(move || verify(&pw, &phc))
        .await
        .unwrap_or(false);
    let Some(acct) = acct else {
        return login_page(p, s, Some((true, l.t(BAD_LOGIN_ZH, BAD_LOGIN_EN))))
            .refused("log-in: unknown account");
    };
    let (id, actor) = (acct.id, format!("applicant:{}", acct.login));
    let check =
        p.ca.run(move |ca| ca.act_for(&actor, &[], |ca| ca.online_login_attempt(id, ok)))
            .await;
    match check {
        Ok(LoginCheck::Allowed) => {
            let new = p.sessions.login(&s.id, acct.id, &acct.login);
            tracing::info!(account = acct.id, "portal log-in");
            Answer::redirect("/apps")
                .with_cookie(&session::set_cookie(&new.id, p.cfg.secure_cookies))
        }
        Ok(LoginCheck::Refused { locked }) => {
            login_page(p, s, Some((true, l.t(BAD_LOGIN_ZH, BAD_LOGIN_EN)))).refused(if locked {
                "log-in: account locked"
            } else {
                "log-in: wrong password"
            })
        }
        Err(e) => crate::pages::failed(s, e),
    }
}
