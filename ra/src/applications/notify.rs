//! The SMS outbox (no real gateway: rows for a sender to pick up) and expiry reminders.

use hljca_core::store::db::Db;
use hljca_core::store::workflow;
use hljca_policies::{CertType, PolicySet};
use serde::Serialize;

use super::{AppId, contact_mobile};
use hljca_core::Result;
use hljca_core::store::summary::{DueReminder, due_reminders, reminded_count};
use hljca_core::time_fmt::{now, ts};
use hljca_core::{Ca, audit};

/// Customer service phone (SPEC.md section 5).
pub(super) const SERVICE_PHONE: &str = "0451-55918888";

pub use hljca_core::store::workflow::OutboxEntry;

/// Queues one message (inside the caller's transaction); returns its id.
pub(super) fn enqueue(
    conn: &Db,
    mobile: &str,
    text: &str,
    kind: &str,
    app: Option<AppId>,
    cert_serial: Option<&str>,
) -> Result<i64> {
    Ok(workflow::enqueue(
        conn,
        &workflow::NewMessage {
            at: &ts(now()),
            mobile,
            text,
            kind,
            application: app,
            cert_serial,
        },
    )?)
}

/// One expiry reminder queued.
#[derive(Debug, Clone, Serialize)]
pub struct Reminder {
    /// The identity certificate.
    pub serial: String,
    /// Its type.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// Its notAfter (RFC 3339).
    pub not_after: String,
    /// Where the SMS goes.
    pub mobile: String,
    /// The outbox row.
    pub outbox_id: i64,
}

/// What `remind` did.
#[derive(Debug, Clone, Serialize)]
pub struct RemindOutcome {
    /// The window, in days.
    pub within_days: i64,
    /// Reminders queued now.
    pub queued: Vec<Reminder>,
    /// Certificates in the window already reminded for this window.
    pub already_reminded: usize,
    /// Certificates in the window whose applicant data has no mobile.
    pub no_mobile: Vec<String>,
}

fn expiry_text(policies: &PolicySet, cert_type: CertType, serial: &str, not_after: &str) -> String {
    let name = &policies.get(cert_type).name_zh;
    let date = not_after.get(..10).unwrap_or(not_after);
    format!(
        "【黑龙江CA】您的{name}（序列号{serial}）将于{date}到期，请在到期前办理续费，逾期将无法使用。客服电话{SERVICE_PHONE}。"
    )
}

/// Certificates read per page by `remind`.
const PAGE: i64 = 500;

/// The SMS outbox and expiry reminders on [`Ca`].
pub trait Notify {
    /// Every queued message, oldest first.
    fn outbox(&self) -> Result<Vec<OutboxEntry>>;

    /// Queues one expiry reminder for every issued identity certificate whose notAfter falls
    /// within `within_days` from now, at most once per certificate and window length: running it
    /// again with the same window queues nothing new.
    fn remind(&mut self, within_days: i64) -> Result<RemindOutcome>;
}

impl Notify for Ca {
    fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        Ok(self.store().outbox()?)
    }

    fn remind(&mut self, within_days: i64) -> Result<RemindOutcome> {
        self.require(hljca_core::operators::Role::Issuer, "remind")?;
        // Expired certificates are not "expiring": the window starts now. Pages of rows without
        // DER, soonest expiry first: a million-certificate CA is never loaded whole.
        let window = (self.now(), self.now() + time::Duration::days(within_days));
        let tx = self.store().begin("begin reminders")?;
        let mut out = RemindOutcome {
            within_days,
            queued: Vec::new(),
            already_reminded: reminded_count(&tx, window, within_days)? as usize,
            no_mobile: Vec::new(),
        };
        let mut after: Option<String> = None;
        loop {
            let page = due_reminders(&tx, window, within_days, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.summary.serial.clone());
            for due in page {
                self.remind_one(&tx, &due, within_days, &mut out)?;
            }
        }
        self.commit(tx, "commit reminders")?;
        Ok(out)
    }
}

/// The steps behind [`Notify`].
pub(crate) trait NotifySteps {
    /// Queues the reminder of one certificate (or notes it has no mobile number).
    fn remind_one(
        &self,
        tx: &hljca_core::store::Tx<'_>,
        due: &DueReminder,
        within_days: i64,
        out: &mut RemindOutcome,
    ) -> Result<()>;
}

impl NotifySteps for Ca {
    fn remind_one(
        &self,
        tx: &hljca_core::store::Tx<'_>,
        due: &DueReminder,
        within_days: i64,
        out: &mut RemindOutcome,
    ) -> Result<()> {
        let c = &due.summary;
        let Some(cert_type) = c.cert_type else {
            return Ok(());
        };
        let applicant: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&due.applicant_json).unwrap_or_default();
        let mobile = contact_mobile(self.policies().get(cert_type), &applicant);
        let Some(mobile) = mobile else {
            out.no_mobile.push(c.serial.clone());
            return Ok(());
        };
        let not_after = c.not_after.map(ts).unwrap_or_default();
        let text = expiry_text(self.policies(), cert_type, &c.serial, &not_after);
        let outbox_id = enqueue(
            tx,
            &mobile,
            &text,
            "expiry",
            c.application_id.map(AppId),
            Some(&c.serial),
        )?;
        workflow::insert_reminder(
            tx,
            &c.serial,
            within_days,
            &not_after,
            outbox_id,
            &ts(now()),
        )?;
        audit::append(
            tx,
            self.operator(),
            "cert.remind",
            &c.serial,
            &serde_json::json!({
                "within_days": within_days, "not_after": not_after, "mobile": mobile, "outbox_id": outbox_id,
            }),
        )?;
        out.queued.push(Reminder {
            serial: c.serial.clone(),
            cert_type,
            not_after,
            mobile,
            outbox_id,
        });
        Ok(())
    }
}
