//! 服务申办: the applicant's applications, one application's status page (materials, 确认申请,
//! payment, delivery), uploads and downloads of its materials. Another account's application
//! or material is "not found", exactly like one that does not exist.

use hljca_core::Rule;
use hljca_core::operators::Role;
use hljca_core::store::{CertFilter, CertSummary, DeliveryChoice, PayOrder};
use hljca_core::{Ca, CoreError};
use hljca_policies::Fen;
use hljca_ra::applications::{AppId, AppState, Application, MaterialRecord};
use hljca_ra::prelude::*;
use hyper::{StatusCode, header};
use maud::html;

use crate::pages::{Posted, account, failed, not_found, refuse};
use crate::session::Session;
use crate::view::{Lang, csrf, message, page, state_name};
use crate::web::Answer;
use crate::{Portal, PortalError};

/// Everything the status page shows.
pub(crate) struct AppView {
    pub app: Application,
    pub materials: Vec<MaterialRecord>,
    pub missing: Vec<String>,
    pub orders: Vec<PayOrder>,
    pub choice: Option<DeliveryChoice>,
    pub fee: Fen,
    pub certs: Vec<CertSummary>,
}

/// The application if `acct` owns it.
pub(crate) fn owned(ca: &Ca, id: AppId, acct: i64) -> Result<Option<Application>, CoreError> {
    if ca.online_owner(id)? != Some(acct) {
        return Ok(None);
    }
    ca.find_application(id)
}

pub(crate) async fn load(p: &Portal, acct: i64, id: AppId) -> Result<Option<AppView>, PortalError> {
    p.ca.run(move |ca| {
        let Some(app) = owned(ca, id, acct)? else {
            return Ok(None);
        };
        let certs = ca.cert_summaries(&CertFilter {
            application_id: Some(id.0),
            ..CertFilter::default()
        })?;
        Ok(Some(AppView {
            materials: ca.application_materials(id)?,
            missing: ca.missing_materials(&app)?,
            orders: ca.online_pay_orders(id)?,
            choice: ca.online_delivery_choice(id)?,
            fee: ca.application_fee(&app),
            certs,
            app,
        }))
    })
    .await
}

/// The account's applications.
pub(crate) async fn list(p: &Portal, s: &Session) -> Answer {
    let (acct, _) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let l = s.lang;
    let apps = match p.ca.run(move |ca| ca.online_applications(acct)).await {
        Ok(a) => a,
        Err(e) => return failed(s, e),
    };
    let body = html! {
        p { a class="button" href="/apply" { (l.t("新办", "New application")) } }
        @if apps.is_empty() {
            p { (l.t("暂无申请。", "No applications yet.")) }
        } @else {
            div class="table-wrap" { table {
                thead { tr {
                    th scope="col" { (l.t("申请编号", "Number")) }
                    th scope="col" { (l.t("证书类型", "Type")) }
                    th scope="col" { (l.t("状态", "State")) }
                    th scope="col" { (l.t("操作", "Action")) }
                } }
                tbody { @for a in &apps {
                    tr {
                        td { (a.id) }
                        td { (p.cfg.policies.get(a.cert_type).name_zh) }
                        td { (state_name(l, a.state)) }
                        td {
                            a href={ "/apps/" (a.id.0) } { (l.t("查看", "Open")) }
                            @if a.state == AppState::Approved {
                                " " a href={ "/apps/" (a.id.0) "/pay" } { (l.t("去付款", "Pay")) }
                            }
                        }
                    }
                } }
            } }
        }
    };
    Answer::html(
        StatusCode::OK,
        page(s, l.t("服务申办", "My applications"), body),
    )
}

fn pickup_line(l: Lang, site: &str) -> String {
    match site.parse::<hljca_ra::applications::Site>() {
        Ok(x) => format!("{}（{}0451-55918888）", x.address(), l.t("电话 ", "phone ")),
        Err(_) => site.to_owned(),
    }
}

/// One application's status page.
pub(crate) async fn show(p: &Portal, s: &Session, id: AppId) -> Answer {
    let (acct, _) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let v = match load(p, acct, id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(s, &format!("{id} is not this account's")),
        Err(e) => return failed(s, e),
    };
    let l = s.lang;
    let pol = p.cfg.policies.get(v.app.cert_type);
    let app = &v.app;
    let body = html! {
        dl class="facts" {
            dt { (l.t("申请编号", "Number")) } dd { (app.id) }
            dt { (l.t("证书类型", "Type")) } dd { (pol.name_zh) }
            dt { (l.t("状态", "State")) } dd class="state" { strong { (state_name(l, app.state)) } }
            @if let Some(r) = &app.rejection_reason {
                dt { (l.t("驳回原因", "Reason")) } dd { (r) }
            }
            dt { (l.t("应缴金额", "Fee")) } dd { (v.fee) }
        }
        h2 { (l.t("申请信息", "Applicant data")) }
        dl class="facts" {
            @for f in &pol.fields {
                @if let Some(val) = app.applicant.get(&f.name) {
                    dt { (if l == Lang::Zh { &f.label_zh } else { &f.label_en }) } dd { (val) }
                }
            }
        }
        h2 { (l.t("申请材料", "Materials")) }
        p { a href={ "/apps/" (app.id.0) "/form.pdf" } { (l.t("下载模板：", "Download the form: ")) (crate::form_pdf::title(pol)) (l.t("（PDF，打印后签字盖章再扫描上传）", " (PDF: print, sign, stamp, scan and upload)")) } }
        p { (l.t("每项材料上传一个 PDF、PNG 或 JPEG 文件，不超过 10 MiB。", "One PDF, PNG or JPEG file per material, at most 10 MiB.")) }
        ul class="materials" {
            @for m in &pol.materials {
                li {
                    strong { (if l == Lang::Zh { &m.name_zh } else { &m.name_en }) }
                    @if m.required { " *" }
                    @let have: Vec<&MaterialRecord> = v.materials.iter().filter(|x| x.kind == m.kind).collect();
                    @for h in &have {
                        " — " a href={ "/apps/" (app.id.0) "/materials/" (h.id) } { (h.file_name) } " (" (h.size) " B) ✓"
                    }
                    @if have.is_empty() && app.state == AppState::Draft {
                        form method="post" action={ "/apps/" (app.id.0) "/materials" } enctype="multipart/form-data" class="upload" {
                            (csrf(s))
                            input type="hidden" name="kind" value=(m.kind);
                            @let fid = format!("file_{}", m.kind);
                            label for=(fid) class="sr" { (m.name_zh) }
                            input id=(fid) type="file" name="file" accept=".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg" required;
                            button type="submit" { (l.t("上传", "Upload")) }
                        }
                    }
                }
            }
        }
        @match app.state {
            AppState::Draft => {
                @if v.missing.is_empty() {
                    form method="post" action={ "/apps/" (app.id.0) "/submit" } {
                        (csrf(s))
                        button type="submit" { (l.t("确认申请", "Confirm the application")) }
                    }
                } @else {
                    (message(false, l.t("上传全部必需材料后即可确认申请。", "Upload every required material, then confirm.")))
                }
            }
            AppState::Submitted => { (message(false, l.t("申请已提交，请等待审核。审核通过后将以短信通知。", "Submitted: awaiting review. You get an SMS when it is approved."))) }
            AppState::Rejected => { (message(true, l.t("申请已被驳回，请按驳回原因修改后重新新办。", "Rejected: see the reason and apply again."))) }
            AppState::Approved => {
                form method="post" action={ "/apps/" (app.id.0) "/pay" } {
                    (csrf(s))
                    button type="submit" { (l.t("去付款", "Pay")) }
                }
            }
            _ => {}
        }
        @if matches!(app.state, AppState::Paid | AppState::Issuing | AppState::Issued) && v.choice.is_none() && app.delivery.is_none() {
            (crate::pay::delivery_form(s, app.id))
        }
        @if let Some(c) = &v.choice {
            h2 { (l.t("领取方式", "Delivery")) }
            @if c.method == "mail" {
                p { (l.t("邮寄：", "By mail: ")) (c.recipient.as_deref().unwrap_or("")) "，" (c.phone.as_deref().unwrap_or("")) "，" (c.address.as_deref().unwrap_or("")) }
            } @else {
                p { (l.t("自取：", "Pickup: ")) (pickup_line(l, c.pickup_site.as_deref().unwrap_or(""))) }
            }
        }
        @if !v.certs.is_empty() {
            h2 { (l.t("已签发的证书", "Certificates issued")) }
            ul { @for c in &v.certs { li { (c.serial) " — " (c.subject) } } }
        }
        @match &app.delivery {
            Some(hljca_ra::applications::Delivery::Mail { tracking_no, .. }) => {
                (message(false, &format!("{}{tracking_no}", l.t("USBKEY 已寄出，快递单号：", "The USBKEY is mailed, tracking number: "))))
            }
            Some(hljca_ra::applications::Delivery::Pickup { address, .. }) => {
                (message(false, &format!("{}{address}", l.t("USBKEY 已制作完成，可以领取：", "The USBKEY is ready for pickup at: "))))
            }
            None => {}
        }
    };
    Answer::html(
        StatusCode::OK,
        page(s, l.t("申请状态", "Application status"), body),
    )
}

/// A material handed in, to its owner only.
pub(crate) async fn material(p: &Portal, s: &Session, id: AppId, mid: i64) -> Answer {
    let (acct, _) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let got =
        p.ca.run(move |ca| {
            if owned(ca, id, acct)?.is_none() {
                return Ok(None);
            }
            let Some(m) = ca
                .application_materials(id)?
                .into_iter()
                .find(|m| m.id == mid)
            else {
                return Ok(None);
            };
            let bytes = ca.read_material(&m)?;
            Ok(Some((m, bytes)))
        })
        .await;
    match got {
        Ok(Some((m, bytes))) => Answer::new(StatusCode::OK, &m.media_type, bytes).with(
            header::CONTENT_DISPOSITION,
            &format!("attachment; filename=\"material-{}\"", m.id),
        ),
        Ok(None) => not_found(s, &format!("material {mid} of {id} is not this account's")),
        Err(e) => failed(s, e),
    }
}

/// A file name as stored: its last path part, without control characters, at most 100
/// characters.
fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let s: String = base.chars().filter(|c| !c.is_control()).take(100).collect();
    if s.trim().is_empty() {
        "upload".into()
    } else {
        s
    }
}

/// Uploads one material into its slot.
pub(crate) async fn upload(p: &Portal, s: &Session, id: AppId, posted: Posted) -> Answer {
    let (acct, login) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let kind = posted.fields.get("kind").cloned().unwrap_or_default();
    let Some(file) = posted.files.into_iter().find(|f| f.name == "file") else {
        return refuse(
            s,
            StatusCode::BAD_REQUEST,
            "请选择要上传的文件。",
            "Choose a file to upload.",
            "upload without a file",
        );
    };
    let name = clean_name(file.file_name.as_deref().unwrap_or(""));
    let actor = format!("applicant:{login}");
    let done =
        p.ca.run(move |ca| {
            let Some(app) = owned(ca, id, acct)? else {
                return Ok(None);
            };
            if ca.application_materials(id)?.iter().any(|m| m.kind == kind) {
                return Err(CoreError::refuse(
                    Rule::MaterialOnce,
                    format!(
                        "`{kind}` of {} is already uploaded (one file per material)",
                        app.id
                    ),
                ));
            }
            ca.act_for(&actor, &[Role::Registrar], |ca| {
                ca.add_material(id, &kind, &name, &file.data).map(Some)
            })
        })
        .await;
    match done {
        Ok(Some(m)) => {
            tracing::info!(application = %id, kind = %m.kind, size = m.size, "material uploaded");
            Answer::redirect(&format!("/apps/{}", id.0))
        }
        Ok(None) => not_found(s, &format!("{id} is not this account's")),
        Err(e) => failed(s, e),
    }
}

/// 确认申请: draft → submitted (every required material handed in).
pub(crate) async fn submit(p: &Portal, s: &Session, id: AppId) -> Answer {
    let (acct, login) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let actor = format!("applicant:{login}");
    let done =
        p.ca.run(move |ca| {
            if owned(ca, id, acct)?.is_none() {
                return Ok(None);
            }
            ca.act_for(&actor, &[Role::Registrar], |ca| ca.submit_application(id))
                .map(Some)
        })
        .await;
    match done {
        Ok(Some(_)) => {
            tracing::info!(application = %id, "online application submitted");
            Answer::redirect(&format!("/apps/{}", id.0))
        }
        Ok(None) => not_found(s, &format!("{id} is not this account's")),
        Err(e) => failed(s, e),
    }
}
