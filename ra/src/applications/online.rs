//! The online channel (线上办理, issue 14) as methods on [`Ca`]: applicant accounts and their
//! log-in lockout, applications owned by an account, payment orders settled by the payment
//! gateway's notification, and the applicant's choice of mail or pickup.
//!
//! The portal (`hljca-portal`) calls these inside [`Ca::act_for`], so the audit rows and
//! application events name the applicant account (`applicant:<login>`) or `payment-gateway`.
//! Applying, handing in materials, submitting and paying go through the same methods as at
//! the counter (`apply`, `add_material`, `submit_application`, `pay_application`), with the
//! same eligibility check and workflow.

use super::{CounterSteps, FulfilSteps};
use hljca_core::Rule;
use hljca_policies::{Fen, Mobile};
use serde::Serialize;

use super::{AppId, AppState, Application, Channel, NewApplication, PayMethod, Payment, Site};
use hljca_core::Ca;
use hljca_core::applications::app_object;
use hljca_core::audit;
use hljca_core::store::portal as sql;
use hljca_core::store::{DeliveryChoice, GatewayNotification, PayOrder, PortalAccount};
use hljca_core::time_fmt::{parse_ts, ts};
use hljca_core::{CoreError, Result};

/// Failed log-ins in a row after which an account is locked.
pub const MAX_LOGIN_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_MINUTES: i64 = 15;

/// A new applicant account (the password already hashed by the portal, Argon2id).
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Organisation or person.
    pub kind: AccountKind,
    /// The organisation's or person's name.
    pub display_name: String,
    /// The mobile number (also the log-in).
    pub mobile: Mobile,
    /// The PHC string.
    pub password_hash: String,
}

/// Who registers: an organisation or a person (专家).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountKind {
    /// 单位.
    Organization,
    /// 个人.
    Person,
}

impl AccountKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Organization => "organization",
            AccountKind::Person => "person",
        }
    }
}

/// Whether a log-in may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The password was right and the account is not locked.
    Allowed,
    /// Refused: wrong password, or the account is locked.
    Refused {
        /// The account is locked (now or from this failure on).
        locked: bool,
    },
}

/// What the applicant chose for the USBKEY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineDelivery {
    /// 邮寄.
    Mail {
        /// 收件人.
        recipient: String,
        /// 联系电话.
        phone: Mobile,
        /// 邮寄地址.
        address: String,
    },
    /// 自取 at a site.
    Pickup(Site),
}

/// What a gateway notification did.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayPaid {
    /// The application paid.
    pub application: AppId,
    /// The `orders` row of the payment.
    pub order_id: i64,
    /// True when this notification had been processed before (a retry): nothing changed.
    pub already: bool,
}

fn actor_of(a: &PortalAccount) -> String {
    format!("applicant:{}", a.login)
}

/// The online service on [`Ca`]: portal accounts, online applications, payment orders and gateway notifications, delivery choices.
pub trait Online {
    /// Registers an applicant account; a mobile number already registered is refused.
    fn online_register(&mut self, new: &NewAccount) -> Result<PortalAccount>;

    /// The account of a single sign-on subject (log-in `sso:<sub>`), made on its first log-in
    /// with the name and mobile number the provider vouched for.
    fn online_sso_account(
        &mut self,
        sub: &str,
        name: &str,
        mobile: &Mobile,
    ) -> Result<PortalAccount>;

    /// The account with this log-in (mobile number).
    fn online_account_by_login(&self, login: &str) -> Result<Option<PortalAccount>>;

    /// The account with this number.
    fn online_account(&self, id: i64) -> Result<Option<PortalAccount>>;

    /// Records a log-in attempt whose password was (or was not) right, and decides: a locked
    /// account is refused whatever the password; [`MAX_LOGIN_FAILURES`] failures in a row lock
    /// it for [`LOCK_MINUTES`]. One audit row either way.
    fn online_login_attempt(&mut self, id: i64, password_ok: bool) -> Result<LoginCheck>;

    /// Creates a draft online application owned by `account` (the counter's `apply`, with the
    /// same eligibility check), its ownership in the same transaction.
    fn online_apply(&mut self, account: i64, new: &NewApplication) -> Result<Application>;

    /// The account that owns an application (`None` for counter applications).
    fn online_owner(&self, id: AppId) -> Result<Option<i64>>;

    /// The applications of an account, newest first.
    fn online_applications(&self, account: i64) -> Result<Vec<Application>>;

    /// The fee an application pays (first-time, or annual for a renewal), from its policy.
    fn application_fee(&self, app: &Application) -> Fen;

    /// 去付款: the open payment order of an approved application, made now (amount from the
    /// policy) unless one is already open; `order_no` names a new one.
    fn online_pay_order(&mut self, id: AppId, account: i64, order_no: &str) -> Result<PayOrder>;

    /// The payment orders of an application, oldest first.
    fn online_pay_orders(&self, id: AppId) -> Result<Vec<PayOrder>>;

    /// A payment order by number.
    fn online_pay_order_by_no(&self, order_no: &str) -> Result<Option<PayOrder>>;

    /// The gateway's (authenticated) notification that `n.order_no` was paid: checked for the
    /// order, the amount and replay, then the counter's `pay` step (approved → paid, with its
    /// order row and SMS) and the notification stored, in one transaction. The same
    /// notification again changes nothing and says so; another one reusing its nonce, or for
    /// an order already paid, is refused.
    fn online_gateway_paid(&mut self, n: &GatewayNotification) -> Result<GatewayPaid>;

    /// 邮寄 or 自取: the applicant's choice, once, after payment and before delivery is
    /// arranged at the counter.
    fn online_choose_delivery(&mut self, id: AppId, choice: &OnlineDelivery) -> Result<()>;

    /// The content of a material handed in (its content-addressed file).
    fn read_material(&self, m: &super::MaterialRecord) -> Result<Vec<u8>>;

    /// The applicant's choice of mail or pickup, if made.
    fn online_delivery_choice(&self, id: AppId) -> Result<Option<DeliveryChoice>>;
}

impl Online for Ca {
    fn online_register(&mut self, new: &NewAccount) -> Result<PortalAccount> {
        let name = new.display_name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(CoreError::refuse_on(
                Rule::FieldText,
                "display_name",
                "display_name: 1 to 64 characters, no control characters",
            ));
        }
        let row = PortalAccount {
            id: 0,
            login: new.mobile.as_str().to_owned(),
            kind: new.kind.as_str().to_owned(),
            display_name: name.to_owned(),
            mobile: new.mobile.as_str().to_owned(),
            password_hash: new.password_hash.clone(),
            failed_logins: 0,
            locked_until: None,
            created_at: ts(self.now()),
        };
        let op = self.operator().to_owned();
        self.write("register portal account", |tx| {
            let Some(acct) = sql::insert_account(tx, &row)? else {
                return Err(CoreError::refuse_on(
                    Rule::AlreadyRegistered,
                    "mobile",
                    format!("the mobile number {} is already registered", row.login),
                ));
            };
            audit::append(
                tx,
                &op,
                "portal.register",
                &actor_of(&acct),
                &serde_json::json!({ "account": acct.id, "kind": acct.kind }),
            )?;
            Ok(acct)
        })
    }

    fn online_sso_account(
        &mut self,
        sub: &str,
        name: &str,
        mobile: &Mobile,
    ) -> Result<PortalAccount> {
        if sub.is_empty() || sub.len() > 128 || sub.chars().any(char::is_control) {
            return Err(CoreError::refuse_on(
                Rule::FieldText,
                "sub",
                "sub: 1 to 128 characters",
            ));
        }
        let login = format!("sso:{sub}");
        if let Some(a) = self.store().account_by_login(&login)? {
            return Ok(a);
        }
        let name = name.trim();
        let row = PortalAccount {
            id: 0,
            login,
            kind: AccountKind::Organization.as_str().to_owned(),
            display_name: if name.is_empty() {
                sub.to_owned()
            } else {
                name.chars().take(64).collect()
            },
            mobile: mobile.as_str().to_owned(),
            // No password: such an account logs in through the provider only.
            password_hash: "!sso".into(),
            failed_logins: 0,
            locked_until: None,
            created_at: ts(self.now()),
        };
        let op = self.operator().to_owned();
        self.write("register sso account", |tx| {
            let Some(acct) = sql::insert_account(tx, &row)? else {
                return Err(CoreError::refuse(
                    Rule::AlreadyRegistered,
                    format!("{} is already registered", row.login),
                ));
            };
            audit::append(
                tx,
                &op,
                "portal.sso-register",
                &actor_of(&acct),
                &serde_json::json!({ "account": acct.id }),
            )?;
            Ok(acct)
        })
    }

    fn online_account_by_login(&self, login: &str) -> Result<Option<PortalAccount>> {
        Ok(self.store().account_by_login(login)?)
    }

    fn online_account(&self, id: i64) -> Result<Option<PortalAccount>> {
        Ok(self.store().account(id)?)
    }

    fn online_login_attempt(&mut self, id: i64, password_ok: bool) -> Result<LoginCheck> {
        let acct = self.store().account(id)?.ok_or_else(|| {
            CoreError::refuse(Rule::UnknownAccount, format!("no portal account {id}"))
        })?;
        let now = self.now();
        let locked = acct
            .locked_until
            .as_deref()
            .and_then(parse_ts)
            .is_some_and(|t| t > now);
        let (failed, until, check, action) = if locked {
            (
                acct.failed_logins,
                acct.locked_until.clone(),
                LoginCheck::Refused { locked: true },
                "portal.login-locked",
            )
        } else if password_ok {
            (0, None, LoginCheck::Allowed, "portal.login")
        } else {
            let failed = acct.failed_logins + 1;
            if failed >= MAX_LOGIN_FAILURES {
                (
                    0,
                    Some(ts(now + time::Duration::minutes(LOCK_MINUTES))),
                    LoginCheck::Refused { locked: true },
                    "portal.lock",
                )
            } else {
                (
                    failed,
                    None,
                    LoginCheck::Refused { locked: false },
                    "portal.login-failed",
                )
            }
        };
        let op = self.operator().to_owned();
        self.write("portal log-in", |tx| {
            sql::set_login_state(tx, id, failed, until.as_deref())?;
            audit::append(
                tx,
                &op,
                action,
                &actor_of(&acct),
                &serde_json::json!({ "account": id, "failed_logins": failed, "locked_until": until }),
            )
        })?;
        Ok(check)
    }

    fn online_apply(&mut self, account: i64, new: &NewApplication) -> Result<Application> {
        if new.channel != Channel::Online {
            return Err(CoreError::refuse_on(
                Rule::OnlineOnly,
                "channel",
                "the portal makes online applications only",
            ));
        }
        self.apply_with(new, |tx, id| Ok(sql::link_application(tx, id.0, account)?))
    }

    fn online_owner(&self, id: AppId) -> Result<Option<i64>> {
        Ok(self.store().owner_of(id.0)?)
    }

    fn online_applications(&self, account: i64) -> Result<Vec<Application>> {
        self.store()
            .applications_of(account)?
            .into_iter()
            .map(|id| self.application(AppId(id)))
            .collect()
    }

    fn application_fee(&self, app: &Application) -> Fen {
        self.app_fee(app)
    }

    fn online_pay_order(&mut self, id: AppId, account: i64, order_no: &str) -> Result<PayOrder> {
        let app = self.application(id)?;
        if app.state != AppState::Approved {
            return Err(CoreError::refuse(
                Rule::ApplicationState,
                format!("{id} is {}: payment opens once it is approved", app.state),
            ));
        }
        if let Some(open) = self
            .store()
            .pay_orders_of(id.0)?
            .into_iter()
            .find(|o| o.paid_order_id.is_none())
        {
            return Ok(open);
        }
        let order = PayOrder {
            order_no: order_no.to_owned(),
            application_id: id.0,
            account_id: account,
            amount_fen: self.app_fee(&app).0,
            created_at: ts(self.now()),
            paid_order_id: None,
            notification_id: None,
        };
        let op = self.operator().to_owned();
        self.write("open payment order", |tx| {
            sql::insert_pay_order(tx, &order)?;
            audit::append(
                tx,
                &op,
                "portal.pay-order",
                &app_object(id),
                &serde_json::json!({ "order_no": order.order_no, "amount_fen": order.amount_fen }),
            )
        })?;
        Ok(order)
    }

    fn online_pay_orders(&self, id: AppId) -> Result<Vec<PayOrder>> {
        Ok(self.store().pay_orders_of(id.0)?)
    }

    fn online_pay_order_by_no(&self, order_no: &str) -> Result<Option<PayOrder>> {
        Ok(self.store().pay_order(order_no)?)
    }

    fn online_gateway_paid(&mut self, n: &GatewayNotification) -> Result<GatewayPaid> {
        let order = self.store().pay_order(&n.order_no)?.ok_or_else(|| {
            CoreError::refuse_on(
                Rule::UnknownOrder,
                "order_no",
                format!("no payment order {}", n.order_no),
            )
        })?;
        if let Some(seen) = self
            .store()
            .notification_seen(&n.notification_id, &n.nonce)?
        {
            let same = seen.notification_id == n.notification_id
                && seen.nonce == n.nonce
                && seen.order_no == n.order_no
                && seen.amount_fen == n.amount_fen
                && seen.transaction_id == n.transaction_id;
            return match (same, order.paid_order_id) {
                (true, Some(oid)) => Ok(GatewayPaid {
                    application: AppId(order.application_id),
                    order_id: oid,
                    already: true,
                }),
                _ => Err(CoreError::refuse(
                    Rule::Notification,
                    format!(
                        "replayed notification: id {} or nonce {} was used before",
                        n.notification_id, n.nonce
                    ),
                )),
            };
        }
        if n.amount_fen != order.amount_fen {
            return Err(CoreError::refuse(
                Rule::Notification,
                format!(
                    "order {} is for {} but the notification says {}",
                    order.order_no,
                    Fen(order.amount_fen),
                    Fen(n.amount_fen)
                ),
            ));
        }
        if order.paid_order_id.is_some() {
            return Err(CoreError::refuse(
                Rule::Notification,
                format!("order {} is already paid", order.order_no),
            ));
        }
        let payment = Payment::new(PayMethod::QrWechat, Some(&n.transaction_id))?;
        let at = ts(hljca_core::time_fmt::now());
        let (_, paid) =
            self.pay_application_with(AppId(order.application_id), &payment, |tx, oid| {
                Ok(sql::settle(tx, n, oid, &at)?)
            })?;
        Ok(GatewayPaid {
            application: AppId(order.application_id),
            order_id: paid.id,
            already: false,
        })
    }

    fn online_choose_delivery(&mut self, id: AppId, choice: &OnlineDelivery) -> Result<()> {
        let app = self.application(id)?;
        if !matches!(
            app.state,
            AppState::Paid | AppState::Issuing | AppState::Issued
        ) || app.delivery.is_some()
        {
            return Err(CoreError::refuse(
                Rule::ApplicationState,
                format!(
                    "{id} is {}: mail or pickup is chosen after payment, before the USBKEY is sent",
                    app.state
                ),
            ));
        }
        let row = match choice {
            OnlineDelivery::Mail {
                recipient,
                phone,
                address,
            } => {
                for (what, v, max) in [("recipient", recipient, 32), ("address", address, 200)] {
                    let v = v.trim();
                    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
                        return Err(CoreError::refuse_on(
                            Rule::DeliveryDetails,
                            what,
                            format!("{what}: 1 to {max} characters, no control characters"),
                        ));
                    }
                }
                DeliveryChoice {
                    method: "mail".into(),
                    recipient: Some(recipient.trim().to_owned()),
                    phone: Some(phone.as_str().to_owned()),
                    address: Some(address.trim().to_owned()),
                    pickup_site: None,
                    chosen_at: ts(self.now()),
                }
            }
            OnlineDelivery::Pickup(site) => DeliveryChoice {
                method: "pickup".into(),
                recipient: None,
                phone: None,
                address: None,
                pickup_site: Some(site.as_str().to_owned()),
                chosen_at: ts(self.now()),
            },
        };
        let op = self.operator().to_owned();
        self.write("delivery choice", |tx| {
            if !sql::insert_delivery_choice(tx, id.0, &row)? {
                return Err(CoreError::refuse(
                    Rule::Delivery,
                    format!("{id}: mail or pickup was already chosen"),
                ));
            }
            let details = serde_json::to_value(&row).map_err(|e| CoreError::Encoding {
                what: "delivery choice",
                reason: e.to_string(),
            })?;
            Ok(audit::append(
                tx,
                &op,
                "portal.delivery-choice",
                &app_object(id),
                &details,
            )?)
        })
    }

    fn read_material(&self, m: &super::MaterialRecord) -> Result<Vec<u8>> {
        self.material_bytes(&m.sha256)
    }

    fn online_delivery_choice(&self, id: AppId) -> Result<Option<DeliveryChoice>> {
        Ok(self.store().delivery_choice(id.0)?)
    }
}
