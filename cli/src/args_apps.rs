//! Arguments of the counter workflow (issue 5): application, materials, review, payment,
//! issuance, delivery, notifications. Each variant is a top-level command.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

/// Counter workflow commands.
#[derive(Debug, Subcommand)]
pub enum AppsCmd {
    /// Start an application (a draft): type, applicant data, channel and site.
    Apply(ApplyArgs),
    /// Hand a draft in for review.
    Submit {
        /// Application number (APP-7 or 7).
        app: String,
    },
    /// Withdraw an application (from draft, submitted, approved or paid).
    ///
    /// A paid application is cancelled with the refund of its fee, recorded as a refund order:
    /// --refund-method (and --refund-reference for every method but cash).
    Cancel {
        /// Application number (APP-7 or 7).
        app: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// How the fee is paid back: qr-wechat, qr-alipay, cash, card, bank-transfer.
        #[arg(long)]
        refund_method: Option<String>,
        /// The refund's reference (transaction id, slip number); not for cash.
        #[arg(long)]
        refund_reference: Option<String>,
    },
    /// Approve or reject a submitted application (not by the operator who submitted it).
    #[command(subcommand)]
    Review(ReviewCmd),
    /// Materials handed in with an application (PDF, PNG or JPEG, at most 10 MiB).
    #[command(subcommand)]
    Materials(MaterialsCmd),
    /// Take the payment of an approved application (first-time or annual fee from the policy).
    Pay(PayArgs),
    /// Deliver the USBKEY of an issued application: by mail or pickup, then --collected.
    Deliver(DeliverArgs),
    /// Applications.
    #[command(subcommand)]
    Apps(AppsListCmd),
    /// Payments.
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// Notifications queued for SMS.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Queue one expiry reminder per certificate expiring within the window.
    Remind {
        /// The window, e.g. 30d.
        #[arg(long, default_value = "30d")]
        within: String,
    },
}

/// `apply` options.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Certificate type (enterprise, legal-person, medical, expert, procurement,
    /// enterprise-secondary, authorized-rep).
    #[arg(long = "type")]
    pub cert_type: String,
    /// Applicant data: a flat JSON object (see examples/applicants/).
    #[arg(long)]
    pub applicant: PathBuf,
    /// counter or online (default: counter when --site is given, else online).
    #[arg(long, value_parser = ["counter", "online"])]
    pub channel: Option<String>,
    /// The counter's site: harbin, hegang or qiqihar.
    #[arg(long)]
    pub site: Option<String>,
    /// Renewal of this certificate (serial): the annual fee applies.
    #[arg(long)]
    pub renewal_of: Option<String>,
}

/// `review` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Approve (every required material must be there); the applicant gets an SMS.
    Approve {
        /// Application number.
        app: String,
    },
    /// Reject, with the reason.
    Reject {
        /// Application number.
        app: String,
        /// Why (told to the applicant).
        #[arg(long)]
        reason: String,
    },
}

/// `materials` subcommands.
#[derive(Debug, Subcommand)]
pub enum MaterialsCmd {
    /// Add a file as one of the type's materials (see `policy show TYPE`).
    Add {
        /// Application number.
        app: String,
        /// Material kind, e.g. application-form, business-licence.
        kind: String,
        /// The file (PDF, PNG or JPEG).
        file: PathBuf,
    },
    /// Write a material handed in (at any site) to a new file.
    Get {
        /// Application number.
        app: String,
        /// Material kind, e.g. application-form; the newest of that kind.
        kind: String,
        /// The file to write (must not exist yet; created 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// The type's materials and what was handed in.
    List {
        /// Application number.
        app: String,
    },
}

/// `pay` options.
#[derive(Debug, Args)]
pub struct PayArgs {
    /// Application number.
    pub app: String,
    /// How it was paid.
    #[arg(long, value_parser = ["qr-wechat", "qr-alipay", "cash", "card", "bank-transfer"])]
    pub method: String,
    /// Payment reference (transaction or receipt number); required except for cash.
    #[arg(long)]
    pub reference: Option<String>,
}

/// `deliver` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("how").required(true).args(["mail", "pickup", "collected"])))]
pub struct DeliverArgs {
    /// Application number.
    pub app: String,
    /// Send by mail (needs --tracking, and --recipient, --phone, --address unless the
    /// applicant chose mail online, whose recipient, phone and address are then the defaults).
    #[arg(long, requires = "tracking")]
    pub mail: bool,
    /// Recipient's name.
    #[arg(long, requires = "mail")]
    pub recipient: Option<String>,
    /// Recipient's mobile.
    #[arg(long, requires = "mail")]
    pub phone: Option<String>,
    /// Postal address.
    #[arg(long, requires = "mail")]
    pub address: Option<String>,
    /// Tracking number.
    #[arg(long, requires = "mail")]
    pub tracking: Option<String>,
    /// Ready for pickup at this site: harbin, hegang or qiqihar.
    #[arg(long)]
    pub pickup: Option<String>,
    /// The applicant has the USBKEY: the application is delivered.
    #[arg(long)]
    pub collected: bool,
}

/// `apps` subcommands.
#[derive(Debug, Subcommand)]
pub enum AppsListCmd {
    /// Applications, newest first.
    List {
        /// Only this state (draft, submitted, approved, rejected, paid, issued, delivered, cancelled).
        #[arg(long)]
        state: Option<String>,
    },
    /// One application with its steps, materials, orders and certificates.
    Show {
        /// Application number.
        app: String,
    },
}

/// `orders` subcommands.
#[derive(Debug, Subcommand)]
pub enum OrdersCmd {
    /// Every payment, oldest first.
    List {
        /// Only the orders of this application.
        #[arg(long)]
        app: Option<String>,
    },
}

/// `outbox` subcommands.
#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Every queued message, oldest first.
    List,
}
