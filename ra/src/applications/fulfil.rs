//! The fulfilment steps as methods on [`Ca`]: payment, issuance onto the USBKEY, delivery.
//! Each checks, changes, records the event, queues the SMS and appends the audit row in one
//! transaction.

use super::CounterSteps;
use hljca_core::Rule;
use hljca_core::store::workflow;
use hljca_policies::{Applicant, Mobile};
use hljca_token::{Module, TokenSelector};

use super::notify::SERVICE_PHONE;
use super::ops::{AppIssueOutcome, notify_with};
use super::{AppEventKind, AppId, Payment, Site, transition};
use hljca_core::Ca;
use hljca_core::eligibility::Step;
use hljca_core::engine::IssueParams;
use hljca_core::keys::Secrets;
use hljca_core::store::applications::{Application, Delivery, Order};
use hljca_core::{CoreError, Result};

/// One line describing a delivery.
pub fn delivery_summary(d: &Delivery) -> String {
    match d {
        Delivery::Mail {
            recipient,
            tracking_no,
            ..
        } => format!("mail to {recipient}, tracking {tracking_no}"),
        Delivery::Pickup { site, address } => format!("pickup at {site} ({address})"),
    }
}

/// Paying, issuing and delivering an application on [`Ca`].
pub trait Fulfil {
    /// `pay`: approved → paid with an order whose amount is the policy's first-time fee (USBKEY
    /// included) or, for a renewal, its annual fee. Queues the "payment received" SMS.
    fn pay_application(&mut self, id: AppId, payment: &Payment) -> Result<(Application, Order)>;

    /// `issue APP`: issues a paid application onto the holder's USBKEY through the issuance
    /// engine, which claims it (`paid → issuing`) before any key is made, so two runs cannot
    /// both issue it; it becomes issued when the engine commits (or paid again if voided). A
    /// renewal application goes onto the renewed certificate's own USBKEY, inside the window.
    fn issue_application(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        id: AppId,
        token: &TokenSelector,
    ) -> Result<AppIssueOutcome>;

    /// `deliver --mail`: records the postal delivery and queues the "mailed" SMS.
    fn deliver_by_mail(
        &mut self,
        id: AppId,
        recipient: &str,
        phone: &Mobile,
        address: &str,
        tracking_no: &str,
    ) -> Result<Application>;

    /// `deliver --pickup SITE`: the USBKEY waits at a site; queues the "ready for pickup" SMS.
    fn deliver_by_pickup(&mut self, id: AppId, site: Site) -> Result<Application>;

    /// `deliver --collected`: issued → delivered, once the delivery was arranged.
    fn deliver_collected(&mut self, id: AppId) -> Result<Application>;
}

impl Fulfil for Ca {
    fn pay_application(&mut self, id: AppId, payment: &Payment) -> Result<(Application, Order)> {
        self.pay_application_with(id, payment, |_, _| Ok(()))
    }

    fn issue_application(
        &mut self,
        module: &Module,
        secrets: &Secrets,
        id: AppId,
        token: &TokenSelector,
    ) -> Result<AppIssueOutcome> {
        self.require(hljca_core::operators::Role::Issuer, "issue")?;
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Issue)?;
        let mut params = IssueParams::new(app.cert_type, Applicant(app.applicant.clone()));
        params.application_id = Some(id.0);
        // The fee was taken by `pay` (the annual fee for a renewal).
        params.renewal_of = app.renewal_of.clone();
        let outcome = self.issue(module, secrets, token, &params)?;
        Ok(AppIssueOutcome {
            application: self.application(id)?,
            resumed: false,
            outcome,
        })
    }

    fn deliver_by_mail(
        &mut self,
        id: AppId,
        recipient: &str,
        phone: &Mobile,
        address: &str,
        tracking_no: &str,
    ) -> Result<Application> {
        self.require(hljca_core::operators::Role::Issuer, "deliver")?;
        for (what, v) in [
            ("--recipient", recipient),
            ("--address", address),
            ("--tracking", tracking_no),
        ] {
            if v.trim().is_empty() {
                return Err(CoreError::refuse_on(
                    Rule::DeliveryDetails,
                    what,
                    format!("delivery by mail needs {what}"),
                ));
            }
        }
        let text = format!(
            "【黑龙江CA】您的数字证书USBKEY（{id}）已寄出，快递单号{}，收件人{}，请注意查收。",
            tracking_no.trim(),
            recipient.trim()
        );
        let delivery = Delivery::Mail {
            recipient: recipient.trim().to_owned(),
            phone: phone.as_str().to_owned(),
            address: address.trim().to_owned(),
            tracking_no: tracking_no.trim().to_owned(),
        };
        self.dispatch(id, delivery, "mailed", text)
    }

    fn deliver_by_pickup(&mut self, id: AppId, site: Site) -> Result<Application> {
        self.require(hljca_core::operators::Role::Issuer, "deliver")?;
        let text = format!(
            "【黑龙江CA】您的数字证书USBKEY（{id}）已制作完成，请携带有效证件到{}领取。客服电话{SERVICE_PHONE}。",
            site.address()
        );
        let delivery = Delivery::Pickup {
            site,
            address: site.address().to_owned(),
        };
        self.dispatch(id, delivery, "ready-for-pickup", text)
    }

    fn deliver_collected(&mut self, id: AppId) -> Result<Application> {
        self.require(hljca_core::operators::Role::Issuer, "deliver")?;
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Collect)?;
        if app.delivery.is_none() {
            return Err(CoreError::refuse(
                Rule::Delivery,
                format!(
                    "application {} is issued but its delivery is not arranged: run `deliver {id} --mail …` or `deliver {id} --pickup SITE` first",
                    id.0
                ),
            ));
        }
        self.step(
            id,
            AppEventKind::Collect,
            serde_json::json!({}),
            |tx, _, at| {
                workflow::set_collected(tx, id, at)?;
                Ok(serde_json::json!({}))
            },
        )
    }
}

/// The steps behind [`Fulfil`].
pub(crate) trait FulfilSteps {
    /// [`Ca::pay_application`], with `also` run in the same transaction once the order exists
    /// (given its id): the portal records the gateway's notification with the payment.
    fn pay_application_with(
        &mut self,
        id: AppId,
        payment: &Payment,
        also: impl FnOnce(&hljca_core::store::Tx<'_>, i64) -> Result<()>,
    ) -> Result<(Application, Order)>;

    fn dispatch(
        &mut self,
        id: AppId,
        delivery: Delivery,
        sms_kind: &str,
        text: String,
    ) -> Result<Application>;
}

impl FulfilSteps for Ca {
    fn pay_application_with(
        &mut self,
        id: AppId,
        payment: &Payment,
        also: impl FnOnce(&hljca_core::store::Tx<'_>, i64) -> Result<()>,
    ) -> Result<(Application, Order)> {
        self.require(hljca_core::operators::Role::Cashier, "pay")?;
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Pay)?;
        // No fee for what cannot be issued: the whole check again, now.
        self.app_eligible(&app, Step::Pay)?;
        let method = payment.method;
        let reference = payment.reference.clone();
        let fee = self.app_fee(&app);
        let business = app.business();
        let policy = self.policies().get(app.cert_type).clone();
        let op = self.operator().to_owned();
        let text = format!(
            "【黑龙江CA】已收到您的{}申请（{id}）费用{fee}，我们将尽快为您制作证书。",
            policy.name_zh
        );
        let mut order_id = 0;
        let oid = &mut order_id;
        let app = self.step(
            id,
            AppEventKind::Pay,
            serde_json::json!({
                "business": business, "amount_fen": fee.0, "method": method.as_str(), "reference": reference,
            }),
            |tx, app, at| {
                *oid = workflow::insert_payment(
                    tx,
                    &workflow::NewPayment {
                        application: id,
                        renewal_of: app.renewal_of.as_deref(),
                        business,
                        cert_type: app.cert_type,
                        amount_fen: fee.0,
                        method: method.as_str(),
                        reference: reference.as_deref(),
                        operator: &op,
                        at,
                    },
                )?;
                also(tx, *oid)?;
                let mut v = notify_with(tx, &policy, app, "paid", &text)?;
                v["order_id"] = (*oid).into();
                Ok(v)
            },
        )?;
        let order = self
            .orders(Some(id))?
            .into_iter()
            .find(|o| o.id == order_id)
            .ok_or_else(|| {
                CoreError::refuse(Rule::Internal, format!("order {order_id} vanished"))
            })?;
        Ok((app, order))
    }

    fn dispatch(
        &mut self,
        id: AppId,
        delivery: Delivery,
        sms_kind: &str,
        text: String,
    ) -> Result<Application> {
        let app = self.application(id)?;
        transition(id, app.state, AppEventKind::Dispatch)?;
        if let Some(d) = &app.delivery {
            return Err(CoreError::refuse(
                Rule::Delivery,
                format!(
                    "application {} is issued and its delivery is already arranged ({}); next: deliver --collected",
                    id.0,
                    delivery_summary(d)
                ),
            ));
        }
        let policy = self.policies().get(app.cert_type).clone();
        let details = serde_json::to_value(&delivery).map_err(|e| CoreError::Encoding {
            what: "delivery JSON",
            reason: e.to_string(),
        })?;
        self.step(id, AppEventKind::Dispatch, details, move |tx, app, _| {
            workflow::set_delivery(tx, id, &delivery)?;
            notify_with(tx, &policy, app, sms_kind, &text)
        })
    }
}
