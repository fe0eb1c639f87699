//! 新办: business department → certificate type → the policy's form → a draft application
//! (the counter's `apply`, on behalf of the applicant account).

use hljca_ra::prelude::*;
use std::collections::{BTreeMap, HashMap};

use hljca_core::CoreError;
use hljca_core::operators::Role;
use hljca_policies::{Applicant, CertType, FieldKind, ValidationErrors};
use hljca_ra::applications::{Channel, NewApplication};
use hyper::StatusCode;
use maud::html;

use crate::pages::{account, failed, refuse};
use crate::session::{Session, token};
use crate::view::{csrf, page};
use crate::web::Answer;
use crate::{Portal, PortalError};

/// The one business department of the seed.
pub(crate) const DEPARTMENT: &str = "hlj-ggzy";

/// Step 1: the business department.
pub(crate) fn department(s: &Session) -> Answer {
    if let Err(a) = account(s) {
        return *a;
    }
    let l = s.lang;
    let body = html! {
        p { (l.t("请选择办理的业务部门：", "Choose the business department:")) }
        form method="get" action="/apply/type" {
            fieldset {
                legend { (l.t("业务部门", "Business department")) }
                label { input type="radio" name="dept" value=(DEPARTMENT) checked required; " 黑龙江省公共资源交易平台" }
            }
            button type="submit" { (l.t("开始办理", "Start")) }
        }
    };
    Answer::html(
        StatusCode::OK,
        page(
            s,
            l.t("新办：选择业务部门", "New: business department"),
            body,
        ),
    )
}

/// Step 2: the certificate type, with its fees and seal.
pub(crate) fn types(p: &Portal, s: &Session) -> Answer {
    if let Err(a) = account(s) {
        return *a;
    }
    let l = s.lang;
    let body = html! {
        p { (l.t("业务部门：黑龙江省公共资源交易平台。请选择证书类型：", "Department: Heilongjiang public resource trading platform. Choose the certificate type:")) }
        ul class="types" {
            @for pol in p.cfg.policies.iter() {
                li {
                    strong { (pol.name_zh) }
                    " — " (l.t("首次", "first")) " " (pol.fees.first) "，" (l.t("年费", "annual")) " " (pol.fees.annual) "，"
                    @if pol.seal.is_some() { (l.t("含电子印章", "seal included")) } @else { (l.t("不含电子印章", "no seal")) }
                    " "
                    a class="button" href={ "/apply/form?type=" (pol.cert_type.key()) } { (l.t("办理", "Apply")) }
                }
            }
        }
    };
    Answer::html(
        StatusCode::OK,
        page(s, l.t("新办：选择证书类型", "New: certificate type"), body),
    )
}

/// The Chinese name of a rule family of the policy checks (the rule itself is shown as well).
fn rule_zh(rule: &str) -> &'static str {
    let r = rule.to_ascii_lowercase();
    if r.starts_with("required field") {
        "必填项"
    } else if r.starts_with("not a field") {
        "该证书类型没有此字段"
    } else if r.contains("gb 32100") {
        "统一社会信用代码（GB 32100-2015）"
    } else if r.contains("registration number") {
        "营业执照注册号（15 位）"
    } else if r.contains("gb 11643") {
        "居民身份证号码（GB 11643-1999）"
    } else if r.contains("mobile") {
        "中国大陆手机号码（11 位，1 开头）"
    } else if r.contains("characters") {
        "长度与字符（不含控制字符或不可见字符）"
    } else {
        "填写规则"
    }
}

fn error_text(l: crate::view::Lang, e: &hljca_policies::FieldError) -> String {
    let label = if e.label_zh.is_empty() {
        e.field.as_str()
    } else {
        e.label_zh.as_str()
    };
    match l {
        crate::view::Lang::Zh => {
            let problem = if e.problem == "is missing" {
                "未填写".to_owned()
            } else {
                e.problem.clone()
            };
            format!(
                "字段「{label}」（{}）不符合{}：{problem}［规则：{}］",
                e.field,
                rule_zh(&e.rule),
                e.rule
            )
        }
        crate::view::Lang::En => format!("field `{}`: {} [rule: {}]", e.field, e.problem, e.rule),
    }
}

fn input_type(k: FieldKind) -> &'static str {
    match k {
        FieldKind::Mobile => "tel",
        _ => "text",
    }
}

/// Step 3: the policy's fields.
pub(crate) fn form_page(p: &Portal, s: &Session, ty: Option<&str>) -> Answer {
    render_form(p, s, ty, &HashMap::new(), None)
}

fn render_form(
    p: &Portal,
    s: &Session,
    ty: Option<&str>,
    values: &HashMap<String, String>,
    errors: Option<&ValidationErrors>,
) -> Answer {
    if let Err(a) = account(s) {
        return *a;
    }
    let l = s.lang;
    let Some(t) = ty.and_then(|t| t.parse::<CertType>().ok()) else {
        return refuse(
            s,
            StatusCode::NOT_FOUND,
            "没有这种证书类型。",
            "No such certificate type.",
            "unknown type",
        );
    };
    let pol = p.cfg.policies.get(t);
    let form_token = token();
    p.sessions.update(&s.id, |x| {
        x.forms.insert(form_token.clone());
    });
    let body = html! {
        p { (l.t("证书类型：", "Certificate type: ")) strong { (pol.name_zh) } "（" (l.t("首次办理", "first application")) " " (pol.fees.first) "）" }
        @if let Some(errs) = errors {
            div class="error" role="alert" {
                p { (l.t("填写有误，请按以下提示修改：", "Please correct:")) }
                ul { @for e in &errs.0 { li { (error_text(l, e)) } } }
            }
        }
        form method="post" action="/apply/form" {
            (csrf(s))
            input type="hidden" name="type" value=(t.key());
            input type="hidden" name="form" value=(form_token);
            @for f in &pol.fields {
                @let id = format!("f_{}", f.name);
                @let bad = errors.and_then(|e| e.for_field(&f.name)).is_some();
                label for=(id) { (if l == crate::view::Lang::Zh { &f.label_zh } else { &f.label_en }) @if f.required { " *" } }
                input id=(id) name=(f.name) type=(input_type(f.kind)) required[f.required]
                    aria-invalid=[bad.then_some("true")]
                    value=(values.get(&f.name).map(String::as_str).unwrap_or(""));
            }
            button type="submit" { (l.t("保存并进入下一步", "Save and continue")) }
        }
    };
    let code = if errors.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Answer::html(code, page(s, l.t("新办：填写信息", "New: the form"), body))
}

/// Creates the draft application.
pub(crate) async fn create(p: &Portal, s: &Session, f: &HashMap<String, String>) -> Answer {
    let (acct, login) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let Some(t) = f.get("type").and_then(|t| t.parse::<CertType>().ok()) else {
        return refuse(
            s,
            StatusCode::BAD_REQUEST,
            "没有这种证书类型。",
            "No such certificate type.",
            "unknown type",
        );
    };
    if !f
        .get("form")
        .is_some_and(|tok| p.sessions.take_form(&s.id, tok))
    {
        return refuse(
            s,
            StatusCode::CONFLICT,
            "该表单已提交过，请勿重复提交。请到“服务申办”查看申请。",
            "This form was already submitted; see My applications.",
            "double submission of the application form",
        );
    }
    let pol = p.cfg.policies.get(t);
    let fields: BTreeMap<String, String> = pol
        .fields
        .iter()
        .filter_map(|x| f.get(&x.name).map(|v| (x.name.clone(), v.clone())))
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let new = NewApplication {
        cert_type: t,
        applicant: Applicant(fields),
        channel: Channel::Online,
        site: None,
        renewal_of: None,
    };
    let actor = format!("applicant:{login}");
    let made = p
        .ca
        .run(move |ca| ca.act_for(&actor, &[Role::Registrar], |ca| ca.online_apply(acct, &new)))
        .await;
    match made {
        Ok(app) => {
            tracing::info!(application = %app.id, account = acct, "online application created");
            Answer::redirect(&format!("/apps/{}", app.id.0))
        }
        Err(PortalError::Core(CoreError::Applicant { errors, .. })) => {
            let log = errors.to_string();
            render_form(p, s, Some(t.key()), f, Some(&errors)).refused(log)
        }
        Err(e) => failed(s, e),
    }
}
