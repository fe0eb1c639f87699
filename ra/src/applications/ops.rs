//! The workflow steps as methods on [`Ca`]: each checks, changes, records the event, queues the
//! SMS and appends the audit row in one transaction.

use hljca_core::Rule;
use hljca_core::applications::{app_object, material_hash};
use hljca_core::store::db::Tx;
use hljca_core::store::workflow;
use hljca_policies::{Applicant, CertType, Fen};
use serde::Serialize;

use super::notify::{SERVICE_PHONE, enqueue};
use super::{
    AppEventKind, AppId, AppState, Channel, Payment, Site, check_material, contact_mobile,
    transition,
};
use hljca_core::eligibility::{Eligible, Request, Step};
use hljca_core::issue::IssueOutcome;
use hljca_core::store::applications::{self as rows, Application, MaterialRecord};
use hljca_core::time_fmt::{now, ts};
use hljca_core::{Ca, audit};
use hljca_core::{CoreError, Result};

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

/// The counter workflow on [`Ca`]: apply, submit, review, cancel, materials.
pub trait Counter {
    /// Creates a draft application once the applicant is eligible (see [`hljca_core::eligibility`]):
    /// nothing is accepted that could not be issued.
    fn apply(&mut self, new: &NewApplication) -> Result<Application>;

    /// `submit`: draft → submitted; the submitter is remembered for the four-eyes rule.
    fn submit_application(&mut self, id: AppId) -> Result<Application>;

    /// `review approve`: submitted → approved, by someone other than the submitter, with every
    /// required material handed in. Queues the "approved, please pay" SMS.
    fn approve_application(&mut self, id: AppId) -> Result<Application>;

    /// `review reject`: submitted → rejected with its reason, by someone other than the submitter.
    fn reject_application(&mut self, id: AppId, reason: &str) -> Result<Application>;

    /// `cancel`: from draft, submitted, approved or paid. A paid application is cancelled only
    /// with its refund (`refund`), recorded as a refund order of the amount paid, in the same
    /// transaction.
    fn cancel_application(
        &mut self,
        id: AppId,
        reason: Option<&str>,
        refund: Option<&Payment>,
    ) -> Result<Application>;

    /// `materials add`: stores the file content-addressed in the database (every site reads
    /// it) and records it, in one transaction; only while the application is a draft or submitted.
    fn add_material(
        &mut self,
        id: AppId,
        kind: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<MaterialRecord>;
}

impl Counter for Ca {
    fn apply(&mut self, new: &NewApplication) -> Result<Application> {
        self.apply_with(new, |_, _| Ok(()))
    }

    fn submit_application(&mut self, id: AppId) -> Result<Application> {
        self.require(hljca_core::operators::Role::Registrar, "submit")?;
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Submit)?;
        self.app_eligible(&app, Step::Submit)?;
        let op = self.operator().to_owned();
        self.step(
            id,
            AppEventKind::Submit,
            serde_json::json!({}),
            |tx, _, _| {
                workflow::set_submitted_by(tx, id, &op)?;
                Ok(serde_json::json!({}))
            },
        )
    }

    fn approve_application(&mut self, id: AppId) -> Result<Application> {
        self.require(hljca_core::operators::Role::Reviewer, "review approve")?;
        let app = self.application(id)?;
        self.check_reviewer(&app, AppEventKind::Approve)?;
        self.app_eligible(&app, Step::Approve)?;
        let fee = self.app_fee(&app);
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

    fn reject_application(&mut self, id: AppId, reason: &str) -> Result<Application> {
        self.require(hljca_core::operators::Role::Reviewer, "review reject")?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoreError::refuse_on(
                Rule::RejectionReason,
                "reason",
                "a rejection needs its reason (--reason)",
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

    fn cancel_application(
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
                return Err(CoreError::refuse_on(
                    Rule::Refund,
                    "refund-method",
                    format!(
                        "{id} is paid (order {}, {}): cancelling it pays the fee back; give --refund-method \
                     (and --refund-reference for every method but cash)",
                        o.id,
                        Fen(o.amount_fen)
                    ),
                ));
            }
            (None, Some(_)) => {
                return Err(CoreError::refuse(
                    Rule::Refund,
                    format!("{id} has no payment to refund (it is {})", app.state),
                ));
            }
            (Some(o), Some(p)) => Some((o.clone(), p.clone())),
            (None, None) => None,
        };
        match &refund {
            Some((order, _)) => {
                self.require(hljca_core::operators::Role::Cashier, "cancel with a refund")?;
                if order.operator == self.operator() {
                    return Err(CoreError::refuse(
                        Rule::FourEyes,
                        format!(
                            "four eyes: the payment of {id} (order {}) was taken by {}, who may not refund it; \
                         another cashier must",
                            order.id, order.operator
                        ),
                    ));
                }
            }
            None => self.require(hljca_core::operators::Role::Registrar, "cancel")?,
        }
        let op = self.operator().to_owned();
        self.step(
            id,
            AppEventKind::Cancel,
            serde_json::json!({ "reason": reason }),
            move |tx, app, at| {
                let Some((order, p)) = &refund else {
                    return Ok(serde_json::json!({}));
                };
                let refund_id = workflow::insert_refund(
                    tx,
                    &workflow::NewRefund {
                        application: id,
                        cert_type: app.cert_type,
                        amount_fen: order.amount_fen,
                        method: p.method.as_str(),
                        reference: p.reference.as_deref(),
                        operator: &op,
                        at,
                        refund_of: order.id,
                    },
                )?;
                Ok(serde_json::json!({
                    "refund": { "of_order": order.id, "amount_fen": order.amount_fen,
                                "method": p.method.as_str(), "reference": p.reference, "order_id": refund_id }
                }))
            },
        )
    }

    fn add_material(
        &mut self,
        id: AppId,
        kind: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<MaterialRecord> {
        self.require(hljca_core::operators::Role::Registrar, "materials add")?;
        let app = self.application(id)?;
        if !matches!(app.state, AppState::Draft | AppState::Submitted) {
            return Err(CoreError::refuse(
                Rule::ApplicationState,
                format!(
                    "application {} is {}: materials can be added while it is draft or submitted",
                    id.0, app.state
                ),
            ));
        }
        let policy = self.policies().get(app.cert_type);
        let media = check_material(policy, kind, file_name, bytes)
            .map_err(|m| CoreError::refuse_on(Rule::MaterialFile, "file", m))?;
        let sha = material_hash(bytes);
        let dup = self.store().material_of(id, kind, &sha)?;
        if dup.is_some() {
            return Err(CoreError::refuse(
                Rule::MaterialOnce,
                format!("{file_name} (sha256 {sha}) is already a `{kind}` material of {id}"),
            ));
        }
        let at = ts(now());
        let tx = self.store().begin("begin material")?;
        hljca_core::store::blobs::put(&tx, bytes)?;
        let mid = workflow::insert_material(
            &tx,
            &workflow::NewMaterial {
                application: id,
                kind,
                sha256: &sha,
                size: bytes.len() as u64,
                media_type: media.as_str(),
                file_name,
                operator: self.operator(),
                at: &at,
            },
        )?;
        let details = serde_json::json!({
            "kind": kind, "sha256": sha, "size": bytes.len(), "media_type": media.as_str(), "file_name": file_name,
        });
        rows::add_event(
            &tx,
            id,
            "material",
            (Some(app.state), app.state),
            self.operator(),
            &at,
            &details,
        )?;
        audit::append(
            &tx,
            self.operator(),
            "app.material",
            &app_object(id),
            &details,
        )?;
        self.commit(tx, "commit material")?;
        Ok(MaterialRecord {
            id: mid,
            application_id: id,
            kind: kind.to_owned(),
            sha256: sha,
            size: bytes.len() as u64,
            media_type: media.as_str().to_owned(),
            file_name: file_name.to_owned(),
            operator: self.operator().to_owned(),
            added_at: at,
        })
    }
}

/// The steps behind [`Counter`].
pub(crate) trait CounterSteps {
    /// [`Ca::apply`], with `also` run in the same transaction once the row exists (the online
    /// portal records the applicant account that owns it).
    fn apply_with(
        &mut self,
        new: &NewApplication,
        also: impl FnOnce(&Tx<'_>, AppId) -> Result<()>,
    ) -> Result<Application>;

    /// One step: checks the transition, runs `change` (extra updates, messages) and records the
    /// event and the audit row, all in one transaction.
    fn step(
        &mut self,
        id: AppId,
        event: AppEventKind,
        details: serde_json::Value,
        change: impl FnOnce(&Tx<'_>, &Application, &str) -> Result<serde_json::Value>,
    ) -> Result<Application>;

    fn check_reviewer(&self, app: &Application, event: AppEventKind) -> Result<()>;

    fn reviewed_step(
        &mut self,
        id: AppId,
        event: AppEventKind,
        details: serde_json::Value,
        sms_kind: &str,
        text: String,
    ) -> Result<Application>;

    fn app_fee(&self, app: &Application) -> Fen;
}

impl CounterSteps for Ca {
    fn apply_with(
        &mut self,
        new: &NewApplication,
        also: impl FnOnce(&Tx<'_>, AppId) -> Result<()>,
    ) -> Result<Application> {
        self.require(hljca_core::operators::Role::Registrar, "apply")?;
        match (new.channel, new.site) {
            (Channel::Counter, None) => {
                return Err(CoreError::refuse_on(
                    Rule::ApplicationSite,
                    "site",
                    "a counter application needs its site (harbin, hegang or qiqihar)",
                ));
            }
            (Channel::Online, Some(s)) => {
                return Err(CoreError::refuse_on(
                    Rule::ApplicationSite,
                    "site",
                    format!(
                        "an online application has no site (given: {s}); use the counter channel"
                    ),
                ));
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
        let tx = self.store().begin("begin apply")?;
        let id = workflow::insert_application(
            &tx,
            &workflow::NewApplication {
                cert_type: new.cert_type,
                channel: new.channel,
                site: new.site,
                applicant_json: &applicant_json,
                renewal_of: renewal_of.as_deref(),
                created_by: self.operator(),
                at: &at,
            },
        )?;
        let details = serde_json::json!({
            "type": new.cert_type.key(), "channel": new.channel.as_str(),
            "site": new.site.map(Site::as_str), "renewal_of": renewal_of,
        });
        rows::add_event(
            &tx,
            id,
            "apply",
            (None, AppState::Draft),
            self.operator(),
            &at,
            &details,
        )?;
        audit::append(&tx, self.operator(), "app.apply", &app_object(id), &details)?;
        also(&tx, id)?;
        self.commit(tx, "commit apply")?;
        self.application(id)
    }

    fn step(
        &mut self,
        id: AppId,
        event: AppEventKind,
        mut details: serde_json::Value,
        change: impl FnOnce(&Tx<'_>, &Application, &str) -> Result<serde_json::Value>,
    ) -> Result<Application> {
        let app = self.application(id)?;
        let to = transition(id, app.state, event)?;
        let at = ts(now());
        let tx = self.store().begin("begin application step")?;
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
            self.operator(),
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
            self.operator(),
            &format!("app.{}", event.as_str()),
            &app_object(id),
            &audit_details,
        )?;
        self.commit(tx, "commit application step")?;
        self.application(id)
    }

    fn check_reviewer(&self, app: &Application, event: AppEventKind) -> Result<()> {
        transition(app.id, app.state, event)?;
        if app.submitted_by.as_deref() == Some(self.operator()) {
            return Err(CoreError::refuse(
                Rule::FourEyes,
                format!(
                    "four eyes: {} was submitted by `{}`, who may not review it; another operator must (their own operator USBKEY)",
                    app.id,
                    self.operator()
                ),
            ));
        }
        Ok(())
    }

    fn reviewed_step(
        &mut self,
        id: AppId,
        event: AppEventKind,
        details: serde_json::Value,
        sms_kind: &str,
        text: String,
    ) -> Result<Application> {
        let op = self.operator().to_owned();
        let reason = details
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_owned);
        let policy = self.policies().get(self.application(id)?.cert_type).clone();
        self.step(id, event, details, move |tx, app, _| {
            workflow::set_reviewed(tx, id, &op, reason.as_deref())?;
            notify_with(tx, &policy, app, sms_kind, &text)
        })
    }

    fn app_fee(&self, app: &Application) -> Fen {
        let fees = self.policies().get(app.cert_type).fees;
        if app.renewal_of.is_some() {
            fees.annual
        } else {
            fees.first
        }
    }
}
