//! SQL of the online portal (migration 011): applicant accounts, which account owns which
//! application, payment orders waiting for the gateway, the gateway's notifications and the
//! applicant's delivery choice. Only `applications::online` calls these.

use crate::db::{Db, Row, Tx, params};
use hljca_rules::Rule;
use serde::Serialize;

use crate::error::{Result, StoreError};

/// An applicant account of the online portal.
#[derive(Debug, Clone, Serialize)]
pub struct PortalAccount {
    /// Its number.
    pub id: i64,
    /// What the applicant logs in with (the mobile number).
    pub login: String,
    /// `organization` or `person`.
    pub kind: String,
    /// The organisation's or person's name.
    pub display_name: String,
    /// Mobile number.
    pub mobile: String,
    /// The Argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Failed log-ins in a row.
    pub failed_logins: i64,
    /// Locked until then (RFC 3339), after too many failures.
    pub locked_until: Option<String>,
    /// When it was registered.
    pub created_at: String,
}

const ACCOUNT_COLS: &str = "id, login, kind, display_name, mobile, password_hash, failed_logins, \
                            locked_until, created_at";

fn account_row(r: &Row<'_>) -> crate::db::DbResult<PortalAccount> {
    Ok(PortalAccount {
        id: r.get(0)?,
        login: r.get(1)?,
        kind: r.get(2)?,
        display_name: r.get(3)?,
        mobile: r.get(4)?,
        password_hash: r.get(5)?,
        failed_logins: r.get(6)?,
        locked_until: r.get(7)?,
        created_at: r.get(8)?,
    })
}

/// Inserts an account; `None` when the login is taken.
pub fn insert_account(tx: &Tx<'_>, a: &PortalAccount) -> Result<Option<PortalAccount>> {
    tx.query_opt(
        &format!(
            "INSERT INTO portal_accounts (login, kind, display_name, mobile, password_hash, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (login) DO NOTHING RETURNING {ACCOUNT_COLS}"
        ),
        params![a.login, a.kind, a.display_name, a.mobile, a.password_hash, a.created_at],
        account_row,
    )
    .map_err(StoreError::db("insert portal account"))
}

/// The account with this login.
pub fn account_by_login(conn: &Db, login: &str) -> Result<Option<PortalAccount>> {
    conn.query_opt(
        &format!("SELECT {ACCOUNT_COLS} FROM portal_accounts WHERE login = ?1"),
        params![login],
        account_row,
    )
    .map_err(StoreError::db("portal account"))
}

/// The account with this number.
pub fn account(conn: &Db, id: i64) -> Result<Option<PortalAccount>> {
    conn.query_opt(
        &format!("SELECT {ACCOUNT_COLS} FROM portal_accounts WHERE id = ?1"),
        params![id],
        account_row,
    )
    .map_err(StoreError::db("portal account"))
}

/// Records the outcome of a log-in: the failure count and lock.
pub fn set_login_state(
    tx: &Tx<'_>,
    id: i64,
    failed: i64,
    locked_until: Option<&str>,
) -> Result<()> {
    tx.execute(
        "UPDATE portal_accounts SET failed_logins = ?2, locked_until = ?3 WHERE id = ?1",
        params![id, failed, locked_until],
    )
    .map_err(StoreError::db("record log-in"))?;
    Ok(())
}

/// Records that `account` owns application `app`.
pub fn link_application(tx: &Tx<'_>, app: i64, account: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO portal_applications (application_id, account_id) VALUES (?1, ?2)",
        params![app, account],
    )
    .map_err(StoreError::db("link application to account"))?;
    Ok(())
}

/// The account that owns application `app`, if it came through the portal.
pub fn owner(conn: &Db, app: i64) -> Result<Option<i64>> {
    conn.query_opt(
        "SELECT account_id FROM portal_applications WHERE application_id = ?1",
        params![app],
        |r| r.get(0),
    )
    .map_err(StoreError::db("application owner"))
}

/// The applications of an account, newest first.
pub fn applications_of(conn: &Db, account: i64) -> Result<Vec<i64>> {
    conn.query_vec(
        "SELECT application_id FROM portal_applications WHERE account_id = ?1 \
             ORDER BY application_id DESC",
        params![account],
        |r| r.get(0),
    )
    .map_err(StoreError::db("account applications"))
}

/// A payment order waiting for (or settled by) the gateway.
#[derive(Debug, Clone, Serialize)]
pub struct PayOrder {
    /// The order number shown in the QR code and named by the gateway.
    pub order_no: String,
    /// The application paid for.
    pub application_id: i64,
    /// The account that opened it.
    pub account_id: i64,
    /// The amount, in fen (the policy's fee).
    pub amount_fen: u64,
    /// When it was opened.
    pub created_at: String,
    /// The `orders` row once paid.
    pub paid_order_id: Option<i64>,
    /// The notification that paid it.
    pub notification_id: Option<String>,
}

const PAY_COLS: &str =
    "order_no, application_id, account_id, amount_fen, created_at, paid_order_id, notification_id";

fn pay_row(r: &Row<'_>) -> crate::db::DbResult<PayOrder> {
    Ok(PayOrder {
        order_no: r.get(0)?,
        application_id: r.get(1)?,
        account_id: r.get(2)?,
        amount_fen: u64::try_from(r.get::<i64>(3)?).unwrap_or(0),
        created_at: r.get(4)?,
        paid_order_id: r.get(5)?,
        notification_id: r.get(6)?,
    })
}

/// Opens a payment order.
pub fn insert_pay_order(tx: &Tx<'_>, o: &PayOrder) -> Result<()> {
    tx.execute(
        "INSERT INTO portal_pay_orders (order_no, application_id, account_id, amount_fen, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            o.order_no,
            o.application_id,
            o.account_id,
            o.amount_fen as i64,
            o.created_at
        ],
    )
    .map_err(StoreError::db("insert payment order"))?;
    Ok(())
}

/// One payment order.
pub fn pay_order(conn: &Db, order_no: &str) -> Result<Option<PayOrder>> {
    conn.query_opt(
        &format!("SELECT {PAY_COLS} FROM portal_pay_orders WHERE order_no = ?1"),
        params![order_no],
        pay_row,
    )
    .map_err(StoreError::db("payment order"))
}

/// The payment orders of an application, oldest first.
pub fn pay_orders_of(conn: &Db, app: i64) -> Result<Vec<PayOrder>> {
    conn
        .query_vec(&format!(
            "SELECT {PAY_COLS} FROM portal_pay_orders WHERE application_id = ?1 ORDER BY created_at, order_no"
        ), params![app], pay_row)
        .map_err(StoreError::db("payment orders"))
}

/// A notification the gateway sent, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayNotification {
    /// The gateway's id of the notification.
    pub notification_id: String,
    /// Its single-use nonce.
    pub nonce: String,
    /// The order it pays.
    pub order_no: String,
    /// The amount it reports, in fen.
    pub amount_fen: u64,
    /// The gateway's transaction id.
    pub transaction_id: String,
}

/// The stored notification with this id, or the one that used this nonce.
pub fn notification_seen(conn: &Db, id: &str, nonce: &str) -> Result<Option<GatewayNotification>> {
    conn.query_opt(
        "SELECT notification_id, nonce, order_no, amount_fen, transaction_id FROM gateway_notifications \
         WHERE notification_id = ?1 OR nonce = ?2",
        params![id, nonce],
        |r| {
            Ok(GatewayNotification {
                notification_id: r.get(0)?,
                nonce: r.get(1)?,
                order_no: r.get(2)?,
                amount_fen: u64::try_from(r.get::<i64>(3)?).unwrap_or(0),
                transaction_id: r.get(4)?,
            })
        },
    )
    .map_err(StoreError::db("gateway notification"))
}

/// Stores a notification and settles its order with the `orders` row `paid_order_id`.
pub fn settle(tx: &Tx<'_>, n: &GatewayNotification, paid_order_id: i64, at: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO gateway_notifications (notification_id, nonce, order_no, amount_fen, transaction_id, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![n.notification_id, n.nonce, n.order_no, n.amount_fen as i64, n.transaction_id, at],
    )
    .map_err(StoreError::db("store gateway notification"))?;
    let changed = tx
        .execute(
            "UPDATE portal_pay_orders SET paid_order_id = ?2, notification_id = ?3 \
             WHERE order_no = ?1 AND paid_order_id IS NULL",
            params![n.order_no, paid_order_id, n.notification_id],
        )
        .map_err(StoreError::db("settle payment order"))?;
    if changed != 1 {
        return Err(StoreError::refuse(
            Rule::Notification,
            format!("payment order {} is already settled", n.order_no),
        ));
    }
    Ok(())
}

/// The applicant's choice of how the USBKEY reaches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryChoice {
    /// `mail` or `pickup`.
    pub method: String,
    /// Mail: who receives it.
    pub recipient: Option<String>,
    /// Mail: the recipient's mobile.
    pub phone: Option<String>,
    /// Mail: the postal address.
    pub address: Option<String>,
    /// Pickup: the site key.
    pub pickup_site: Option<String>,
    /// When it was chosen.
    pub chosen_at: String,
}

/// Records the choice (once).
pub fn insert_delivery_choice(tx: &Tx<'_>, app: i64, c: &DeliveryChoice) -> Result<bool> {
    let n = tx
        .execute(
            "INSERT INTO portal_delivery_choices (application_id, method, recipient, phone, address, pickup_site, chosen_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (application_id) DO NOTHING",
            params![app, c.method, c.recipient, c.phone, c.address, c.pickup_site, c.chosen_at],
        )
        .map_err(StoreError::db("record delivery choice"))?;
    Ok(n == 1)
}

/// The choice recorded for an application.
pub fn delivery_choice(conn: &Db, app: i64) -> Result<Option<DeliveryChoice>> {
    conn.query_opt(
        "SELECT method, recipient, phone, address, pickup_site, chosen_at FROM portal_delivery_choices \
         WHERE application_id = ?1",
        params![app],
        |r| {
            Ok(DeliveryChoice {
                method: r.get(0)?,
                recipient: r.get(1)?,
                phone: r.get(2)?,
                address: r.get(3)?,
                pickup_site: r.get(4)?,
                chosen_at: r.get(5)?,
            })
        },
    )
    .map_err(StoreError::db("delivery choice"))
}

/// The portal's reads, for the workflow crate (which reads through the store, never its
/// connection).
impl crate::Store {
    /// The account with this login (a normalised mobile or e-mail).
    pub fn account_by_login(&self, login: &str) -> Result<Option<PortalAccount>> {
        account_by_login(&self.conn, login)
    }

    /// Account `id`.
    pub fn account(&self, id: i64) -> Result<Option<PortalAccount>> {
        account(&self.conn, id)
    }

    /// The account that owns online application `app`.
    pub fn owner_of(&self, app: i64) -> Result<Option<i64>> {
        owner(&self.conn, app)
    }

    /// The applications of account `account`.
    pub fn applications_of(&self, account: i64) -> Result<Vec<i64>> {
        applications_of(&self.conn, account)
    }

    /// Payment order `order_no`.
    pub fn pay_order(&self, order_no: &str) -> Result<Option<PayOrder>> {
        pay_order(&self.conn, order_no)
    }

    /// The payment orders of application `app`.
    pub fn pay_orders_of(&self, app: i64) -> Result<Vec<PayOrder>> {
        pay_orders_of(&self.conn, app)
    }

    /// A gateway notification already seen, by id or nonce.
    pub fn notification_seen(&self, id: &str, nonce: &str) -> Result<Option<GatewayNotification>> {
        notification_seen(&self.conn, id, nonce)
    }

    /// The delivery the applicant chose for application `app`.
    pub fn delivery_choice(&self, app: i64) -> Result<Option<DeliveryChoice>> {
        delivery_choice(&self.conn, app)
    }
}
