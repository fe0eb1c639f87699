//! The CA's vocabulary as the store keeps it: application numbers, states and the one state
//! table, channels and sites, revocation reasons, holders and bindings. Pure values with their
//! stored forms; the layers above (the CA, the counter) decide what to do with them.

use hljca_rules::Rule;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Result, StoreError};

pub use hljca_pki::Reason;

/// An application's number. Displays as `APP-7`; parses `APP-7`, `app-000007` or `7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AppId(pub i64);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "APP-{}", self.0)
    }
}

impl FromStr for AppId {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<AppId, String> {
        let t = s.trim();
        let digits = t
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("APP-"))
            .map_or(t, |_| &t[4..]);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(AppId)
            .ok_or_else(|| format!("`{s}` is not an application number (e.g. APP-7 or 7)"))
    }
}

/// Where an application is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppState {
    /// Created, still being completed.
    Draft,
    /// Handed in for review.
    Submitted,
    /// Approved by a reviewer; waiting for payment.
    Approved,
    /// Refused by a reviewer (final).
    Rejected,
    /// Paid; waiting for issuance.
    Paid,
    /// Claimed by an issuance in progress (`issue APP`); becomes issued when it commits, or
    /// paid again when it is voided (by the issuing process or `hljca recover`).
    Issuing,
    /// Certificate(s) issued onto the USBKEY.
    Issued,
    /// The USBKEY reached the applicant (final).
    Delivered,
    /// Withdrawn (final).
    Cancelled,
}

impl AppState {
    /// Every state, in workflow order.
    pub const ALL: [AppState; 9] = [
        AppState::Draft,
        AppState::Submitted,
        AppState::Approved,
        AppState::Rejected,
        AppState::Paid,
        AppState::Issuing,
        AppState::Issued,
        AppState::Delivered,
        AppState::Cancelled,
    ];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Draft => "draft",
            AppState::Submitted => "submitted",
            AppState::Approved => "approved",
            AppState::Rejected => "rejected",
            AppState::Paid => "paid",
            AppState::Issuing => "issuing",
            AppState::Issued => "issued",
            AppState::Delivered => "delivered",
            AppState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppState {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<AppState, String> {
        let w = s.trim().to_ascii_lowercase();
        AppState::ALL
            .into_iter()
            .find(|st| st.as_str() == w)
            .ok_or_else(|| {
                format!(
                    "unknown application state `{s}` (states: {})",
                    AppState::ALL.map(AppState::as_str).join(", ")
                )
            })
    }
}

/// A step of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppEventKind {
    /// `submit`.
    Submit,
    /// `review approve`.
    Approve,
    /// `review reject`.
    Reject,
    /// `pay`.
    Pay,
    /// `issue APP`: the issuance engine claims the application (`paid → issuing`).
    Issue,
    /// The issuance committed (`issuing → issued`).
    Complete,
    /// The issuance was voided, by the issuing process or `recover` (`issuing → paid`).
    Release,
    /// `deliver --mail` or `deliver --pickup` (the state stays `issued`).
    Dispatch,
    /// `deliver --collected`.
    Collect,
    /// `cancel`.
    Cancel,
}

impl AppEventKind {
    /// Every step.
    pub const ALL: [AppEventKind; 10] = [
        AppEventKind::Submit,
        AppEventKind::Approve,
        AppEventKind::Reject,
        AppEventKind::Pay,
        AppEventKind::Issue,
        AppEventKind::Complete,
        AppEventKind::Release,
        AppEventKind::Dispatch,
        AppEventKind::Collect,
        AppEventKind::Cancel,
    ];

    /// Stored form (and the audit action's suffix).
    pub fn as_str(self) -> &'static str {
        match self {
            AppEventKind::Submit => "submit",
            AppEventKind::Approve => "approve",
            AppEventKind::Reject => "reject",
            AppEventKind::Pay => "pay",
            AppEventKind::Issue => "claim",
            AppEventKind::Complete => "issue",
            AppEventKind::Release => "release",
            AppEventKind::Dispatch => "dispatch",
            AppEventKind::Collect => "collect",
            AppEventKind::Cancel => "cancel",
        }
    }

    /// The command that performs the step.
    pub fn command(self) -> &'static str {
        match self {
            AppEventKind::Submit => "submit",
            AppEventKind::Approve => "review approve",
            AppEventKind::Reject => "review reject",
            AppEventKind::Pay => "pay",
            AppEventKind::Issue => "issue",
            AppEventKind::Complete => "issue (finishing)",
            AppEventKind::Release => "recover",
            AppEventKind::Dispatch => "deliver --mail/--pickup",
            AppEventKind::Collect => "deliver --collected",
            AppEventKind::Cancel => "cancel",
        }
    }

    /// The one state table of the workflow: the states this step may start from, and the state
    /// it leads to.
    pub fn edge(self) -> (&'static [AppState], AppState) {
        use AppState::*;
        match self {
            AppEventKind::Submit => (&[Draft], Submitted),
            AppEventKind::Approve => (&[Submitted], Approved),
            AppEventKind::Reject => (&[Submitted], Rejected),
            AppEventKind::Pay => (&[Approved], Paid),
            // The issuance engine claims the application; it moves on to issued (or back to
            // paid) in the engine's own transactions, see `engine`.
            AppEventKind::Issue => (&[Paid], Issuing),
            AppEventKind::Complete => (&[Issuing], Issued),
            AppEventKind::Release => (&[Issuing], Paid),
            AppEventKind::Dispatch => (&[Issued], Issued),
            AppEventKind::Collect => (&[Issued], Delivered),
            AppEventKind::Cancel => (&[Draft, Submitted, Approved, Paid], Cancelled),
        }
    }

    /// The states this step may start from.
    pub fn sources(self) -> &'static [AppState] {
        self.edge().0
    }
}

/// The state after `event` from `from` (by the one table, [`AppEventKind::edge`]), or a refusal
/// naming the current state, the state(s) the step needs and the steps allowed next.
pub fn transition(id: AppId, from: AppState, event: AppEventKind) -> Result<AppState> {
    let (sources, to) = event.edge();
    if sources.contains(&from) {
        return Ok(to);
    }
    let needs = sources
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    let next = next_steps(from);
    let next = if next.is_empty() {
        format!("{from} is final, nothing follows")
    } else {
        format!("next: {}", next.join(", "))
    };
    Err(StoreError::refuse(
        Rule::ApplicationState,
        format!(
            "application {} is {from}: `{}` needs {needs}; {next}",
            id.0,
            event.command()
        ),
    ))
}

/// The commands allowed from `state`, in workflow order.
pub fn next_steps(state: AppState) -> Vec<&'static str> {
    AppEventKind::ALL
        .into_iter()
        .filter(|e| e.sources().contains(&state))
        .map(AppEventKind::command)
        .collect()
}

/// How the application came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// At a counter (线下窗口), at one of the sites.
    Counter,
    /// Through the online registration service (线上申请).
    Online,
}

impl Channel {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Counter => "counter",
            Channel::Online => "online",
        }
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Channel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "counter" => Ok(Channel::Counter),
            "online" => Ok(Channel::Online),
            _ => Err(format!("unknown channel `{s}` (channels: counter, online)")),
        }
    }
}

/// The HLJ CA service sites (SPEC.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Site {
    /// Harbin, 市民大厦.
    Harbin,
    /// Hegang, 鹤岗市公共资源交易中心.
    Hegang,
    /// Qiqihar.
    Qiqihar,
}

impl Site {
    /// Every site.
    pub const ALL: [Site; 3] = [Site::Harbin, Site::Hegang, Site::Qiqihar];

    /// Key (stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Harbin => "harbin",
            Site::Hegang => "hegang",
            Site::Qiqihar => "qiqihar",
        }
    }

    /// The site's address.
    pub fn address(self) -> &'static str {
        match self {
            Site::Harbin => "哈尔滨市南岗区中山路181号市民大厦4楼窗口",
            Site::Hegang => {
                "鹤岗市工农区北红旗路35号鹤岗市政府人民办事中心7楼鹤岗市公共资源交易中心708室"
            }
            Site::Qiqihar => "齐齐哈尔市建华区溪水家园北区45号楼",
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Site {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Site, String> {
        let w = s.trim().to_ascii_lowercase();
        Site::ALL
            .into_iter()
            .find(|x| x.as_str() == w)
            .ok_or_else(|| {
                format!(
                    "unknown site `{s}` (sites: {})",
                    Site::ALL.map(Site::as_str).join(", ")
                )
            })
    }
}

/// What identifies the holder of a USBKEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HolderKind {
    /// An organisation, by its unified social credit code.
    Uscc,
    /// A person, by their resident identity card number.
    ResidentId,
}

impl HolderKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Uscc => "uscc",
            HolderKind::ResidentId => "resident-id",
        }
    }
}

/// The holder of a certificate (and of the USBKEY it goes on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Organisation or person.
    pub kind: HolderKind,
    /// The USCC or resident ID.
    pub id: String,
    /// The organisation's or person's name, for messages.
    pub name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            HolderKind::Uscc => write!(f, "{} (USCC {})", self.name, self.id),
            HolderKind::ResidentId => write!(f, "{} (resident ID {})", self.name, self.id),
        }
    }
}

/// The rule one holder per USBKEY, in its one place: the USBKEY `serial`, bound to `bound`
/// (the register's holder, or the holder a plan has put on it), may take a certificate for
/// `holder` only when it is blank or already that holder's.
pub fn one_holder(
    serial: &str,
    bound: Option<&Holder>,
    holder: &Holder,
) -> std::result::Result<(), hljca_rules::Refusal> {
    match bound {
        Some(b) if b.id != holder.id => Err(hljca_rules::Refusal::new(
            hljca_rules::Rule::OneHolderPerUsbkey,
            format!(
                "USBKEY {serial} belongs to {b}; it cannot hold a certificate for {holder} \
                 [rule: one holder per USBKEY]; use a USBKEY of this holder or a blank one"
            ),
        )
        .on("token")),
        _ => Ok(()),
    }
}

/// One binding.
#[derive(Debug, Clone, Serialize)]
pub struct Binding {
    /// Row id.
    pub id: i64,
    /// SHA-256 of the certificate DER.
    pub fingerprint: String,
    /// Issuer DN.
    pub issuer: String,
    /// Subject DN.
    pub subject: String,
    /// Serial (hex).
    pub serial: String,
    /// Validity end.
    pub not_after: String,
    /// pem or token.
    pub source: String,
    /// Token label when read from a token.
    pub token_label: Option<String>,
    /// active.
    pub status: String,
    /// Who activated it.
    pub operator: String,
    /// When.
    pub bound_at: String,
    /// The counter's site.
    pub site: Option<Site>,
}
