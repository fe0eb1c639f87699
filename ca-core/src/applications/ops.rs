//! The workflow steps as methods on [`Ca`]: each checks, changes, records the event, queues the
//! SMS and appends the audit row in one transaction.

use crate::store::db::{Tx, params};
use hljca_policies::{Applicant, CertType, Fen};
use serde::Serialize;

use super::notify::{SERVICE_PHONE, enqueue};
use super::{
    AppEvent, AppEventKind, AppId, AppState, Channel, Payment, Site, check_material,
    contact_mobile, transition,
};
use crate::eligibility::{Eligible, Request, Step};
use crate::error::{CoreError, Result};
use crate::home::{create_private_dir, write_file};
use crate::issue::IssueOutcome;
use crate::store::applications::{self as rows, Application, MaterialRecord, Order};
use crate::time_fmt::{now, ts};
use crate::{Ca, audit};

/// What `apply` needs.
#[derive(Debug, Clone)]
pub struct NewApplication {
    /// The certificate type.
    pub cert_type: CertType,
    /// Raw applicant data (validated by the policy before anything is stored).
    pub applicant: Applicant,
    /// Counter or online.
    pub channel: Channel,
    /// The counter's site (required for the counter channel).
    pub site: Option<Site>,
    /// For a renewal: the certificate renewed (the annual fee applies instead of the first-time fee).
    pub renewal_of: Option<String>,
}

/// What `issue APP` did.
#[derive(Debug, Clone, Serialize)]
pub struct AppIssueOutcome {
    /// The application after the step.
    pub application: Application,
    /// True when the certificates had already been issued by an interrupted run and only the
    /// application's state was finished now.
    pub resumed: bool,
    /// The certificates (and seal).
    #[serde(flatten)]
    pub outcome: IssueOutcome,
}

pub(super) fn app_object(id: AppId) -> String {
    format!("APP-{}", id.0)
}

/// SHA-256 of a material, lower-case hex: its name in the store.
pub fn material_hash(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

impl Ca {
    /// One application, or `None` when there is no such number.
    pub fn find_application(&self, id: AppId) -> Result<Option<Application>> {
        Ok(rows::get(&self.store.conn, id)?)
    }

    /// One application; an unknown number is refused.
    pub fn application(&self, id: AppId) -> Result<Application> {
        self.find_application(id)?
            .ok_or_else(|| CoreError::Refused(format!("there is no application {id}")))
    }

    /// Applications, newest first, optionally only those in `state`.
    pub fn applications(&self, state: Option<AppState>) -> Result<Vec<Application>> {
        Ok(rows::list(&self.store.conn, state)?)
    }

    /// How many applications are in `state`.
    pub fn application_count(&self, state: AppState) -> Result<u64> {
        Ok(rows::count_by_state(&self.store.conn)?
            .into_iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| n))
    }

    /// The recorded steps of an application, oldest first.
    pub fn application_events(&self, id: AppId) -> Result<Vec<AppEvent>> {
        Ok(rows::events(&self.store.conn, id)?)
    }

    /// The materials handed in for an application.
    pub fn application_materials(&self, id: AppId) -> Result<Vec<MaterialRecord>> {
        Ok(rows::materials(&self.store.conn, id)?)
    }

    /// The required material kinds of the application's type not handed in yet.
    pub fn missing_materials(&self, app: &Application) -> Result<Vec<String>> {
        let have = self.application_materials(app.id)?;
        Ok(self
            .policies
            .get(app.cert_type)
            .materials
            .iter()
            .filter(|m| m.required && !have.iter().any(|h| h.kind == m.kind))
            .map(|m| m.kind.clone())
            .collect())
    }

    /// Orders, oldest first; only those of `app` when given.
    pub fn orders(&self, app: Option<AppId>) -> Result<Vec<Order>> {
        Ok(rows::orders(&self.store.conn, app)?)
    }

    /// Where `materials add` stores a file with this SHA-256.
    pub fn material_path(&self, sha256_hex: &str) -> std::path::PathBuf {
        self.home.dir().join("materials").join(sha256_hex)
    }

    /// Creates a draft application once the applicant is eligible (see [`crate::eligibility`]):
    /// nothing is accepted that could not be issued.
    pub fn apply(&mut self, new: &NewApplication) -> Result<Application> {
        self.apply_with(new, |_, _| Ok(()))
    }

    /// [`Ca::apply`], with `also` run in the same transaction once the row exists (the online
    /// portal records the applicant account that owns it).
    pub(super) fn apply_with(
        &mut self,
        new: &NewApplication,
        also: impl FnOnce(&Tx<'_>, AppId) -> Result<()>,
    ) -> Result<Application> {
        self.require(crate::operators::Role::Registrar, "apply")?;
        match (new.channel, new.site) {
            (Channel::Counter, None) => {
                return Err(CoreError::Refused(
                    "a counter application needs its site (harbin, hegang or qiqihar)".into(),
                ));
            }
            (Channel::Online, Some(s)) => {
                return Err(CoreError::Refused(format!(
                    "an online application has no site (given: {s}); use the counter channel"
                )));
            }
            _ => {}
        }
        let Eligible {
            validated, renewed, ..
        } = self.eligible(
            Step::Apply,
            &Request {
                cert_type: new.cert_type,
                applicant: &new.applicant,
                renewal_of: new.renewal_of.as_deref(),
                application: None,
                token_serial: None,
            },
        )?;
        let renewal_of = renewed.map(|c| c.summary.serial);
        let applicant_json =
            serde_json::to_string(&validated.fields).map_err(|e| CoreError::Encoding {
                what: "applicant JSON",
                reason: e.to_string(),
            })?;
        let at = ts(now());
        let tx = self.store.begin("begin apply")?;
        tx.execute(
            rows::INSERT_APPLICATION,
            params![
                new.cert_type.key(),
                new.channel.as_str(),
                new.site.map(Site::as_str),
                applicant_json,
                renewal_of,
                self.operator,
                at
            ],
        )
        .map_err(CoreError::db("insert application"))?;
        let id = AppId(tx.last_insert_id()?);
        let details = serde_json::json!({
            "type": new.cert_type.key(), "channel": new.channel.as_str(),
            "site": new.site.map(Site::as_str), "renewal_of": renewal_of,
        });
        rows::add_event(
            &tx,
            id,
            "apply",
            (None, AppState::Draft),
            &self.operator,
            &at,
            &details,
        )?;
        audit::append(&tx, &self.operator, "app.apply", &app_object(id), &details)?;
        also(&tx, id)?;
        self.store.commit(tx, "commit apply")?;
        self.application(id)
    }

    /// One step: checks the transition, runs `change` (extra updates, messages) and records the
    /// event and the audit row, all in one transaction.
    pub(super) fn step(
        &mut self,
        id: AppId,
        event: AppEventKind,
        mut details: serde_json::Value,
        change: impl FnOnce(&Tx<'_>, &Application, &str) -> Result<serde_json::Value>,
    ) -> Result<Application> {
        let app = self.application(id)?;
        let to = transition(id, app.state, event)?;
        let at = ts(now());
        let tx = self.store.begin("begin application step")?;
        // The change first: the row's CHECKs (a rejection has its reason) hold when the state moves.
        let extra = change(&tx, &app, &at)?;
        rows::set_state(&tx, id, app.state, to, &at)?;
        if let (Some(d), serde_json::Value::Object(e)) = (details.as_object_mut(), extra) {
            d.extend(e);
        }
        rows::add_event(
            &tx,
            id,
            event.as_str(),
            (Some(app.state), to),
            &self.operator,
            &at,
            &details,
        )?;
        let mut audit_details = details.clone();
        if let Some(d) = audit_details.as_object_mut() {
            d.insert("from".into(), app.state.as_str().into());
            d.insert("to".into(), to.as_str().into());
        }
        audit::append(
            &tx,
            &self.operator,
            &format!("app.{}", event.as_str()),
            &app_object(id),
            &audit_details,
        )?;
        self.store.commit(tx, "commit application step")?;
        self.application(id)
    }

    /// `submit`: draft → submitted; the submitter is remembered for the four-eyes rule.
    pub fn submit_application(&mut self, id: AppId) -> Result<Application> {
        self.require(crate::operators::Role::Registrar, "submit")?;
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Submit)?;
        self.app_eligible(&app, Step::Submit)?;
        let op = self.operator.clone();
        self.step(
            id,
            AppEventKind::Submit,
            serde_json::json!({}),
            |tx, _, _| {
                tx.execute(rows::SET_SUBMITTED_BY, params![id.0, op])
                    .map_err(CoreError::db("record submitter"))?;
                Ok(serde_json::json!({}))
            },
        )
    }

    fn check_reviewer(&self, app: &Application, event: AppEventKind) -> Result<()> {
        transition(app.id, app.state, event)?;
        if app.submitted_by.as_deref() == Some(self.operator.as_str()) {
            return Err(CoreError::Refused(format!(
                "four eyes: {} was submitted by `{}`, who may not review it; another operator must (their own operator USBKEY)",
                app.id, self.operator
            )));
        }
        Ok(())
    }

    /// `review approve`: submitted → approved, by someone other than the submitter, with every
    /// required material handed in. Queues the "approved, please pay" SMS.
    pub fn approve_application(&mut self, id: AppId) -> Result<Application> {
        self.require(crate::operators::Role::Reviewer, "review approve")?;
        let app = self.application(id)?;
        self.check_reviewer(&app, AppEventKind::Approve)?;
        self.app_eligible(&app, Step::Approve)?;
        let fee = self.fee(&app);
        let text =
            format!("【黑龙江CA】您的数字证书申请（{id}）已审核通过，请登录缴费，应缴金额{fee}。");
        self.reviewed_step(
            id,
            AppEventKind::Approve,
            serde_json::json!({}),
            "approved",
            text,
        )
    }

    /// `review reject`: submitted → rejected with its reason, by someone other than the submitter.
    pub fn reject_application(&mut self, id: AppId, reason: &str) -> Result<Application> {
        self.require(crate::operators::Role::Reviewer, "review reject")?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoreError::Refused(
                "a rejection needs its reason (--reason)".into(),
            ));
        }
        let app = self.application(id)?;
        self.check_reviewer(&app, AppEventKind::Reject)?;
        let text = format!(
            "【黑龙江CA】您的数字证书申请（{id}）未通过审核：{reason}。如有疑问请致电{SERVICE_PHONE}。"
        );
        self.reviewed_step(
            id,
            AppEventKind::Reject,
            serde_json::json!({ "reason": reason }),
            "rejected",
            text,
        )
    }

    fn reviewed_step(
        &mut self,
        id: AppId,
        event: AppEventKind,
        details: serde_json::Value,
        sms_kind: &str,
        text: String,
    ) -> Result<Application> {
        let op = self.operator.clone();
        let reason = details
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_owned);
        let policy = self.policies.get(self.application(id)?.cert_type).clone();
        self.step(id, event, details, move |tx, app, _| {
            tx.execute(rows::SET_REVIEWED, params![id.0, op, reason])
                .map_err(CoreError::db("record review"))?;
            notify_with(tx, &policy, app, sms_kind, &text)
        })
    }

    /// `cancel`: from draft, submitted, approved or paid. A paid application is cancelled only
    /// with its refund (`refund`), recorded as a refund order of the amount paid, in the same
    /// transaction.
    pub fn cancel_application(
        &mut self,
        id: AppId,
        reason: Option<&str>,
        refund: Option<&Payment>,
    ) -> Result<Application> {
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Cancel)?;
        let orders = self.orders(Some(id))?;
        let paid = orders
            .iter()
            .filter(|o| o.business == "first" || o.business == "renewal")
            .find(|o| !orders.iter().any(|r| r.refund_of == Some(o.id)))
            .cloned();
        let refund = match (&paid, refund) {
            (Some(o), None) => {
                return Err(CoreError::BadInput(format!(
                    "{id} is paid (order {}, {}): cancelling it pays the fee back; give --refund-method \
                     (and --refund-reference for every method but cash)",
                    o.id,
                    Fen(o.amount_fen)
                )));
            }
            (None, Some(_)) => {
                return Err(CoreError::BadInput(format!(
                    "{id} has no payment to refund (it is {})",
                    app.state
                )));
            }
            (Some(o), Some(p)) => Some((o.clone(), p.clone())),
            (None, None) => None,
        };
        match &refund {
            Some((order, _)) => {
                self.require(crate::operators::Role::Cashier, "cancel with a refund")?;
                if order.operator == self.operator {
                    return Err(CoreError::Refused(format!(
                        "four eyes: the payment of {id} (order {}) was taken by {}, who may not refund it; \
                         another cashier must",
                        order.id, order.operator
                    )));
                }
            }
            None => self.require(crate::operators::Role::Registrar, "cancel")?,
        }
        let op = self.operator.clone();
        self.step(
            id,
            AppEventKind::Cancel,
            serde_json::json!({ "reason": reason }),
            move |tx, app, at| {
                let Some((order, p)) = &refund else {
                    return Ok(serde_json::json!({}));
                };
                tx.execute(
                    rows::INSERT_REFUND,
                    params![
                        id.0,
                        app.cert_type.key(),
                        order.amount_fen as i64,
                        p.method.as_str(),
                        p.reference,
                        op,
                        at,
                        order.id
                    ],
                )
                .map_err(CoreError::db("record refund"))?;
                Ok(serde_json::json!({
                    "refund": { "of_order": order.id, "amount_fen": order.amount_fen,
                                "method": p.method.as_str(), "reference": p.reference, "order_id": tx.last_insert_id()? }
                }))
            },
        )
    }

    pub(super) fn fee(&self, app: &Application) -> Fen {
        let fees = self.policies.get(app.cert_type).fees;
        if app.renewal_of.is_some() {
            fees.annual
        } else {
            fees.first
        }
    }

    /// Writes a checked material file content-addressed under `<home>/materials/` (0600).
    /// Written before the row that refers to it, so a row always has its file; a file without a
    /// row (a failed commit) is harmless and reused by the next attempt.
    pub fn store_material_file(
        &self,
        sha256_hex: &str,
        bytes: &[u8],
    ) -> Result<std::path::PathBuf> {
        create_private_dir(&self.home.dir().join("materials"))?;
        let path = self.material_path(sha256_hex);
        if !path.is_file() {
            write_file(&path, bytes, 0o600)?;
        }
        Ok(path)
    }

    /// `materials add`: stores the file content-addressed under `<home>/materials/` (0600) and
    /// records it; only while the application is a draft or submitted.
    pub fn add_material(
        &mut self,
        id: AppId,
        kind: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<MaterialRecord> {
        self.require(crate::operators::Role::Registrar, "materials add")?;
        let app = self.application(id)?;
        if !matches!(app.state, AppState::Draft | AppState::Submitted) {
            return Err(CoreError::Refused(format!(
                "application {} is {}: materials can be added while it is draft or submitted",
                id.0, app.state
            )));
        }
        let policy = self.policies.get(app.cert_type);
        let media = check_material(policy, kind, file_name, bytes).map_err(CoreError::Refused)?;
        let sha = material_hash(bytes);
        let dup: Option<i64> = self
            .store
            .conn
            .query_opt(rows::FIND_MATERIAL, params![id.0, kind, sha], |r| r.get(0))
            .map_err(CoreError::db("material lookup"))?;
        if dup.is_some() {
            return Err(CoreError::Refused(format!(
                "{file_name} (sha256 {sha}) is already a `{kind}` material of {id}"
            )));
        }
        self.store_material_file(&sha, bytes)?;
        let at = ts(now());
        let tx = self.store.begin("begin material")?;
        tx.execute(
            rows::INSERT_MATERIAL,
            params![
                id.0,
                kind,
                sha,
                bytes.len() as i64,
                media.as_str(),
                file_name,
                self.operator,
                at
            ],
        )
        .map_err(CoreError::db("insert material"))?;
        let mid = tx.last_insert_id()?;
        let details = serde_json::json!({
            "kind": kind, "sha256": sha, "size": bytes.len(), "media_type": media.as_str(), "file_name": file_name,
        });
        rows::add_event(
            &tx,
            id,
            "material",
            (Some(app.state), app.state),
            &self.operator,
            &at,
            &details,
        )?;
        audit::append(
            &tx,
            &self.operator,
            "app.material",
            &app_object(id),
            &details,
        )?;
        self.store.commit(tx, "commit material")?;
        Ok(MaterialRecord {
            id: mid,
            application_id: id,
            kind: kind.to_owned(),
            sha256: sha,
            size: bytes.len() as u64,
            media_type: media.as_str().to_owned(),
            file_name: file_name.to_owned(),
            operator: self.operator.clone(),
            added_at: at,
        })
    }
}

pub(super) fn notify_with(
    tx: &Tx<'_>,
    policy: &hljca_policies::Policy,
    app: &Application,
    kind: &str,
    text: &str,
) -> Result<serde_json::Value> {
    match contact_mobile(policy, &app.applicant) {
        Some(m) => {
            let oid = enqueue(tx, &m, text, kind, Some(app.id), None)?;
            Ok(serde_json::json!({ "sms": { "outbox_id": oid, "mobile": m, "kind": kind } }))
        }
        None => {
            tracing::warn!(application = %app.id, kind, "no mobile in the applicant data: no SMS queued");
            Ok(serde_json::json!({ "sms": null }))
        }
    }
}
