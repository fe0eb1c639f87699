//! The page layout, the two languages and the words shared by several pages.

use hljca_ra::applications::AppState;
use maud::{DOCTYPE, Markup, html};

use crate::session::Session;

/// The language of the pages: Chinese unless the visitor switched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// `zh` or `en` text.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// The name of an application's state as the applicant reads it.
pub(crate) fn state_name(l: Lang, s: AppState) -> &'static str {
    match s {
        AppState::Draft => l.t("待确认（草稿）", "Draft"),
        AppState::Submitted => l.t("待审核", "Awaiting review"),
        AppState::Approved => l.t("已通过（待付款）", "Approved (awaiting payment)"),
        AppState::Rejected => l.t("已驳回", "Rejected"),
        AppState::Paid => l.t("已付款（待制证）", "Paid (being issued)"),
        AppState::Issuing => l.t("制证中", "Being issued"),
        AppState::Issued => l.t("已签发", "Issued"),
        AppState::Delivered => l.t("已领取", "Delivered"),
        AppState::Cancelled => l.t("已取消", "Cancelled"),
    }
}

/// A hidden CSRF field.
pub(crate) fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A page: header with the language switch and the account, `body`, footer.
pub(crate) fn page(s: &Session, title: &str, body: Markup) -> Markup {
    let l = s.lang;
    html! {
        (DOCTYPE)
        html lang=(l.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (l.t("黑龙江省数字证书注册服务信息系统", "HLJ CA online registration service")) }
                link rel="stylesheet" href="/static/portal.css";
            }
            body {
                a class="skip" href="#main" { (l.t("跳到正文", "Skip to content")) }
                header {
                    a class="brand" href="/" { (l.t("黑龙江CA · 数字证书线上办理", "HLJ CA · Certificates online")) }
                    nav aria-label=(l.t("导航", "Navigation")) {
                        @if let Some((_, login)) = &s.account {
                            a href="/apps" { (l.t("服务申办", "My applications")) }
                            " "
                            a href="/renew" { (l.t("续费", "Renewal")) }
                            " "
                            span class="who" { (login) }
                            form method="post" action="/logout" class="inline" {
                                (csrf(s))
                                button type="submit" { (l.t("退出", "Log out")) }
                            }
                        } @else {
                            a href="/login" { (l.t("登录", "Log in")) }
                            " "
                            a href="/register" { (l.t("注册用户", "Register")) }
                        }
                        " "
                        @match l {
                            Lang::Zh => a href="/lang/en" lang="en" { "English" },
                            Lang::En => a href="/lang/zh" lang="zh-CN" { "中文" },
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p { (l.t("黑龙江省数字证书认证有限公司 · 客户服务电话：0451-55918888",
                             "Heilongjiang Digital Certificate Authority · Service line 0451-55918888")) }
                }
            }
        }
    }
}

/// A message box: an error (`role=alert`) or a notice.
pub(crate) fn message(error: bool, text: &str) -> Markup {
    html! {
        @if error {
            p class="error" role="alert" { (text) }
        } @else {
            p class="notice" role="status" { (text) }
        }
    }
}
