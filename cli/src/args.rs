//! Command-line arguments (help text comes from these doc comments).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hljca — the Heilongjiang CA service: certificates and electronic seals on PKCS#11 USBKEYs.
///
/// Secrets never go on the command line: HLJCA_USER_PIN, HLJCA_SO_PIN, HLJCA_CA_PIN and
/// HLJCA_CA_PASSPHRASE come from the environment, a --*-pin-file, or a prompt on a terminal.
///
/// Exit codes: 0 ok, 1 operation failed, 2 bad usage or bad input.
#[derive(Debug, Parser)]
#[command(name = "hljca", version, about, long_about)]
pub struct Cli {
    /// Home directory (configuration, database, CA certificates, CRLs).
    #[arg(long, global = true, env = "HLJCA_HOME", default_value = "hljca-data")]
    pub home: PathBuf,
    /// Print JSON for machines instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The operator's USBKEY (label or serial): commands that change anything log in with it
    /// (its PIN from HLJCA_OPERATOR_PIN, --operator-pin-file or a prompt).
    #[arg(long, global = true, env = "HLJCA_OPERATOR_TOKEN")]
    pub operator_token: Option<String>,
    /// Read the operator USBKEY's PIN from this file instead of HLJCA_OPERATOR_PIN.
    #[arg(long, global = true)]
    pub operator_pin_file: Option<PathBuf>,
    /// PKCS#11 module (default: SoftHSM2 from its usual places).
    #[arg(long, global = true, env = "HLJCA_PKCS11_MODULE")]
    pub pkcs11_module: Option<PathBuf>,
    /// Read the USBKEY user PIN from this file instead of HLJCA_USER_PIN.
    #[arg(long, global = true)]
    pub user_pin_file: Option<PathBuf>,
    /// Read the CA token PIN from this file instead of HLJCA_CA_PIN.
    #[arg(long, global = true)]
    pub ca_pin_file: Option<PathBuf>,
    /// Read the SO PIN from this file instead of HLJCA_SO_PIN.
    #[arg(long, global = true)]
    pub so_pin_file: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the root and issuing CA (keys on the CA HSM token by default) and enrol the first
    /// CA administrator onto their operator USBKEY (the key ceremony).
    Init(InitArgs),
    /// Operators: members of staff with an operator USBKEY and roles.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// CA certificates.
    #[command(subcommand)]
    Ca(CaCmd),
    /// The certificate types: fields, fees, materials, seal.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// USBKEYs (PKCS#11 tokens).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Issue a certificate (and its electronic seal) onto a USBKEY.
    Issue(IssueArgs),
    /// Issued certificates.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Electronic seals.
    #[command(subcommand)]
    Seal(SealCmd),
    /// Renew an identity certificate before it expires (annual fee): new keys on the same token.
    Renew(RenewArgs),
    /// Revoke a certificate (free of charge); its seal certificate goes with it.
    ///
    /// Revoking the last valid enterprise certificate of a USCC also revokes that USCC's
    /// enterprise-secondary (副锁) certificates, unless --keep-secondary. A certificate on hold
    /// (certificateHold) may be revoked again for a final reason, or released.
    Revoke(RevokeArgs),
    /// Release a certificate from hold (certificateHold): issued again, off the next CRL.
    Release {
        /// Serial (hex).
        serial: String,
    },
    /// Cross-platform binding (跨平台CA绑定): activate a former Daqing platform certificate.
    Bind(BindArgs),
    /// Cross-platform bindings.
    #[command(subcommand)]
    Bindings(BindingsCmd),
    /// Certificate revocation lists.
    #[command(subcommand)]
    Crl(CrlCmd),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Run the OCSP responder and publish the CRL and CA certificates over HTTP.
    ///
    /// One long-running process: it opens the CA keys once, answers OCSP (POST and GET), serves
    /// the CRL and CA certificates at the paths of `[urls]` in hljca.toml, regenerates the CRL
    /// before its nextUpdate and after revocations, and stops gracefully on SIGTERM or Ctrl-C.
    /// The first line on stdout is `listening on http://ADDRESS`. Needs the CA token PIN and an
    /// operator with the ca-admin role.
    ///
    /// With --api-listen (or `[serve] api_listen`) it also serves the API for automated jobs:
    /// JSON over HTTPS under /api/v1, the client certificate an operator's (see `operator add
    /// --csr`).
    Serve(ServeArgs),
    /// One screen: the CA, tokens, certificates expiring soon, the last CRL.
    Status,
    /// The database: its schema, migrations, and moving a CA to PostgreSQL.
    #[command(subcommand)]
    Db(DbCmd),
    /// Sites of one CA on one PostgreSQL database: make a site's home from the database.
    #[command(subcommand)]
    Site(SiteCmd),
    /// Back the CA up into an empty directory while it runs: a consistent database snapshot,
    /// the home (configuration, CA certificates), the SoftHSM token directory, and
    /// manifest.json with the SHA-256 of every file.
    Backup {
        /// The backup directory (new or empty).
        dir: PathBuf,
    },
    /// Build a working home from a backup: `hljca restore DIR --home NEW` (NEW new or empty;
    /// the manifest is checked first). The database goes into HLJCA_DATABASE_URL when set (an
    /// empty PostgreSQL database), else the new home's SQLite file.
    Restore {
        /// The backup directory.
        dir: PathBuf,
    },
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The whole flow on a fresh SoftHSM token, for a newcomer.
    Demo,
    /// The counter workflow: applications, materials, review, payment, delivery, notifications.
    #[command(flatten)]
    Apps(crate::args_apps::AppsCmd),
    /// Automated jobs: batch issuance, recovery.
    #[command(flatten)]
    Batch(crate::args_batch::BatchCmd),
}

/// `site` subcommands.
#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    /// Make a working home for SITE (--home, new or empty) from the shared database alone: the
    /// CA's certificates and shared configuration; SOFTHSM2_CONF (the site's HSM, holding a
    /// copy of the CA token) becomes the home's token configuration.
    Join {
        /// The shared database (postgresql://…; sslmode=verify-full&sslrootcert=FILE as libpq).
        #[arg(long, env = "HLJCA_DATABASE_URL", hide_env_values = true)]
        database: String,
        /// The site's code (harbin, hegang, qiqihar).
        #[arg(long)]
        site: String,
    },
    /// Record this home's CA certificates and shared configuration in the database, for
    /// `site join` (`init` does it; for a CA made before). Needs a ca-admin login.
    Publish,
}

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// The database in use (HLJCA_DATABASE_URL, `database` in hljca.toml, or the home's SQLite
    /// file): backend, schema version, rows per table.
    Status,
    /// Bring the schema to this hljca's version: the only way a shared (PostgreSQL) database is
    /// migrated (run it once, at one site); a home's SQLite file is also migrated on open.
    Migrate,
    /// Copy the whole CA database into an empty database (e.g. SQLite to PostgreSQL), verified
    /// (rows per table, the audit log) before it says done.
    Copy {
        /// The target: `postgres://user@host/db` (or `postgresql://user@/db?host=/socket/dir`),
        /// or `sqlite:PATH`.
        #[arg(long)]
        to: String,
    },
}

/// `init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where the CA keys live: `hsm` (PKCS#11 token, default) or `file` (encrypted PKCS#8, development).
    #[arg(long, default_value = "hsm", value_parser = ["hsm", "file"])]
    pub key_store: String,
    /// Label of the CA HSM token; a blank token is initialised with it when none exists.
    #[arg(long, default_value = "hljca-ca")]
    pub ca_token: String,
    /// Root CA validity in years.
    #[arg(long, default_value_t = 20)]
    pub root_years: u32,
    /// Issuing CA validity in years.
    #[arg(long, default_value_t = 10)]
    pub issuing_years: u32,
    /// CRL distribution point URL written into end-entity certificates.
    #[arg(long)]
    pub crl_url: Option<String>,
    /// AIA caIssuers URL written into end-entity certificates.
    #[arg(long)]
    pub ca_issuers_url: Option<String>,
    /// The first CA administrator's operator USBKEY (label); a blank token is initialised with
    /// it when none exists (SO PIN HLJCA_SO_PIN, PIN HLJCA_OPERATOR_PIN).
    #[arg(long, default_value = "hljca-admin")]
    pub admin_token: String,
    /// The first CA administrator's name.
    #[arg(long, default_value = "CA管理员")]
    pub admin_name: String,
    /// The first CA administrator's site.
    #[arg(long, default_value = "harbin")]
    pub admin_site: String,
}

/// `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCmd {
    /// Show the root and issuing CA certificates.
    Show,
    /// Write the chain (issuing + root) as PEM, or with --der the issuing CA certificate as DER.
    Export {
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The issuing CA certificate alone as DER (what the AIA caIssuers URL serves, like
        /// ca/issuing.cer) instead of the PEM chain: DER holds one certificate.
        #[arg(long)]
        der: bool,
    },
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// All seven types with fees.
    List,
    /// One type in full.
    Show {
        /// Type key (enterprise, legal-person, medical, expert, procurement, enterprise-secondary, authorized-rep).
        cert_type: String,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Slots and tokens with label, serial, manufacturer and PIN state.
    List,
    /// Initialise a blank token (SO PIN from HLJCA_SO_PIN, user PIN from HLJCA_USER_PIN).
    Init {
        /// Label for the new token.
        #[arg(long)]
        label: String,
    },
    /// One token; with HLJCA_USER_PIN set, its objects too.
    Info {
        /// Token label or serial.
        #[arg(long)]
        token: String,
    },
    /// Change the user PIN (old from HLJCA_USER_PIN, new from HLJCA_NEW_USER_PIN).
    ChangePin {
        /// Token label or serial.
        #[arg(long)]
        token: String,
    },
    /// Unblock a locked user PIN with the SO PIN (HLJCA_SO_PIN), setting HLJCA_NEW_USER_PIN.
    Unblock {
        /// Token label or serial.
        #[arg(long)]
        token: String,
    },
}

/// `issue` options.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// An approved and paid application to issue (its type and applicant data are used).
    #[arg(conflicts_with_all = ["applicant", "csr"])]
    pub application: Option<String>,
    /// Certificate type.
    #[arg(long = "type", default_value = "enterprise")]
    pub cert_type: String,
    /// The holder's USBKEY (label or serial).
    #[arg(long, required_unless_present = "csr")]
    pub token: Option<String>,
    /// Applicant data: a flat JSON object (see examples/applicants/).
    #[arg(long, required_unless_present_any = ["application"])]
    pub applicant: Option<PathBuf>,
    /// Issue from a PKCS#10 request (PEM or DER) for a system that keeps its own key.
    #[arg(long, conflicts_with = "seal_image")]
    pub csr: Option<PathBuf>,
    /// Write the certificate issued from --csr here (PEM); default: `certs/<serial>.pem` only.
    #[arg(long, requires = "csr")]
    pub out: Option<PathBuf>,
    /// Seal picture (PNG or JPEG); a round red seal is generated when absent.
    #[arg(long)]
    pub seal_image: Option<PathBuf>,
    /// Direct issuance (no application, ca-admin): how the first-time fee was paid
    /// (qr-wechat, qr-alipay, cash, card, bank-transfer; cash when not given).
    #[arg(long, conflicts_with = "application")]
    pub method: Option<String>,
    /// The payment's reference (every method but cash).
    #[arg(long, conflicts_with = "application")]
    pub reference: Option<String>,
    /// Direct issuance free of charge (recorded as a zero-amount order); needs --reason.
    #[arg(long, conflicts_with_all = ["application", "method"], requires = "reason")]
    pub free: bool,
    /// Why it is free.
    #[arg(long, requires = "free")]
    pub reason: Option<String>,
}

/// `operator` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Enrol an operator onto a blank USBKEY (ca-admin; the first one needs only the CA PIN):
    /// a key born on it and an operator certificate. The USBKEY's PIN is HLJCA_USER_PIN.
    ///
    /// An automated job has no USBKEY: with --csr (instead of --token) its operator
    /// certificate is issued for the P-256 key of its PKCS#10 request, for the API of
    /// `hljca serve` (the request's subject is ignored; --out writes the certificate).
    Add {
        /// The staff member's name.
        #[arg(long)]
        name: String,
        /// Their site: harbin, hegang or qiqihar.
        #[arg(long)]
        site: String,
        /// Comma-separated roles: registrar, reviewer, cashier, issuer, ca-admin, auditor.
        #[arg(long)]
        roles: String,
        /// Their USBKEY (label or serial), initialised and blank.
        #[arg(long, required_unless_present = "csr", conflicts_with = "csr")]
        token: Option<String>,
        /// A job's PKCS#10 request (PEM or DER, P-256): the operator's key is the job's own.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// With --csr: write the operator certificate here (PEM).
        #[arg(long, value_name = "FILE", requires = "csr")]
        out: Option<PathBuf>,
        /// Break glass: no administrator's USBKEY can be used (lost, blocked). The CA key
        /// custodian enrols a new ca-admin with the CA PIN, witnessed by another active
        /// operator's login (HLJCA_OPERATOR_TOKEN) when one who is not a ca-admin exists.
        /// Audited as `operator.enrol` with `break_glass`; revoke the lost one afterwards.
        #[arg(long, requires = "token")]
        break_glass: bool,
    },
    /// Every operator.
    List,
    /// The roles and what each covers; with a serial and --set, replace an operator's roles.
    Roles {
        /// Operator certificate serial.
        serial: Option<String>,
        /// New roles (comma-separated).
        #[arg(long, requires = "serial")]
        set: Option<String>,
    },
    /// Revoke an operator: they can no longer log in.
    Revoke {
        /// Operator certificate serial.
        serial: String,
        /// Why.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}

/// `cert` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Certificates, newest first.
    List {
        /// Only this type.
        #[arg(long = "type")]
        cert_type: Option<String>,
        /// Only this status (pending, issued, void, revoked, superseded).
        #[arg(long)]
        status: Option<String>,
        /// Only issued certificates expiring within this many days (e.g. 30d or 30).
        #[arg(long)]
        expiring_within: Option<String>,
        /// At most this many certificates (a page); the JSON's `next` names the next page.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        /// The page after this serial (the `next` of the previous page).
        #[arg(long, value_name = "SERIAL")]
        after: Option<String>,
    },
    /// One certificate.
    Show {
        /// Serial (hex).
        serial: String,
    },
    /// Write a certificate as PEM (or DER).
    Export {
        /// Serial (hex).
        serial: String,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<PathBuf>,
        /// DER instead of PEM.
        #[arg(long)]
        der: bool,
    },
}

/// Where a seal comes from.
#[derive(Debug, Args)]
pub struct SealSource {
    /// A seal file (DER).
    #[arg(long, conflicts_with_all = ["serial"])]
    pub file: Option<PathBuf>,
    /// The seal certificate's serial: the seal is read from the database, or with
    /// --from-token from the holder's USBKEY (needs HLJCA_USER_PIN).
    #[arg(long)]
    pub serial: Option<String>,
    /// Read the seal from the token rather than the database.
    #[arg(long, requires = "serial")]
    pub from_token: bool,
}

/// `seal` subcommands.
#[derive(Debug, Subcommand)]
pub enum SealCmd {
    /// Parse a seal and print its fields.
    Show(SealSource),
    /// Verify a seal: signature by our issuing CA, validity, seal certificate not revoked.
    Verify {
        /// The seal.
        #[command(flatten)]
        source: SealSource,
        /// Verify as of this time (RFC 3339, e.g. 2030-01-01T00:00:00Z) instead of now.
        #[arg(long)]
        at: Option<String>,
    },
}

/// `renew` options.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Serial of the identity certificate (hex).
    pub serial: String,
    /// How the annual fee was paid: qr-wechat, qr-alipay, cash, card, bank-transfer.
    #[arg(long, default_value = "qr-wechat", value_parser = ["qr-wechat", "qr-alipay", "cash", "card", "bank-transfer"])]
    pub method: String,
    /// Payment reference (transaction or receipt number).
    #[arg(long)]
    pub reference: Option<String>,
}

/// `bind` options.
#[derive(Debug, Args)]
pub struct BindArgs {
    /// The certificate as a PEM or DER file.
    #[arg(long, required_unless_present = "token", conflicts_with = "token")]
    pub pem: Option<PathBuf>,
    /// Read the certificate from this token (label or serial; needs HLJCA_USER_PIN).
    #[arg(long)]
    pub token: Option<String>,
    /// With --token: the CKA_ID (hex) of the certificate; default the first one.
    #[arg(long, requires = "token")]
    pub key_id: Option<String>,
    /// The counter's site: harbin, hegang or qiqihar. The certificate must chain to a former
    /// platform CA listed in hljca.toml (`[binding] former_ca`) and not be on its CRL
    /// (`[binding] former_crl`).
    #[arg(long)]
    pub site: String,
    /// Counter materials as KIND=FILE: business-licence, legal-rep-id-copy, agent-id-copy.
    #[arg(long = "material", value_name = "KIND=FILE")]
    pub materials: Vec<String>,
}

/// `bindings` subcommands.
#[derive(Debug, Subcommand)]
pub enum BindingsCmd {
    /// Every binding.
    List,
}

/// `revoke` options.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Serial (hex).
    pub serial: String,
    /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
    /// cessationOfOperation, certificateHold, privilegeWithdrawn.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
    /// Also delete the key pair, certificate and seal from the USBKEY (needs HLJCA_USER_PIN).
    #[arg(long)]
    pub remove_from_token: bool,
    /// Keep (and list) the enterprise-secondary certificates of the last enterprise certificate
    /// of a USCC instead of revoking them with it.
    #[arg(long)]
    pub keep_secondary: bool,
}

/// `crl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CrlCmd {
    /// Sign and publish the next CRL.
    Generate,
    /// The newest CRL.
    Show,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain: detects changed, deleted or reordered rows.
    Verify,
    /// Every row.
    List,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration with defaults filled in.
    Show,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port); default
    /// `[serve] listen` in hljca.toml.
    #[arg(long)]
    pub listen: Option<String>,
    /// Address of the client-certificate API (HTTPS), e.g. 127.0.0.1:8443 (port 0: any free
    /// port); default `[serve] api_listen`, off when neither is set.
    #[arg(long)]
    pub api_listen: Option<String>,
}
