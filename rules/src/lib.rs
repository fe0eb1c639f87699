//! Every rule a request can break, as one table, and the typed [`Refusal`] that carries one.
//!
//! A refusal is what the CA says when it will not do what was asked: bad input, an unknown
//! object, a business rule, or a state that does not allow it. Each carries a [`Rule`] with a
//! stable code (kebab-case, for programs: the API's `rule`, scripts), the field at fault when
//! there is one, and a message for people. The CLI's exit code and the API's HTTP status come
//! from the rule's [`Class`], never from the text, so rewording a message changes nothing a
//! program reads. Every layer (store, CA, RA, portal, server) refuses with this one type.

use std::borrow::Cow;
use std::fmt;

/// What kind of refusal a rule gives, which decides exit codes and HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The request itself is malformed (a field, a choice, a file): exit code 2, HTTP 400.
    Input,
    /// It names something that does not exist: exit code 2, HTTP 404.
    NotFound,
    /// A business rule or the current state refuses it: exit code 1, HTTP 409.
    Refused,
    /// The CA could not do it for reasons of its own (a broken invariant, a missing part of
    /// its set-up): exit code 1, HTTP 500.
    Internal,
}

impl Class {
    /// The CLI's exit code for a refusal of this class (DESIGN.md: 1 failed, 2 bad input).
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Input | Class::NotFound => 2,
            Class::Refused | Class::Internal => 1,
        }
    }

    /// The HTTP status code for a refusal of this class.
    pub fn http_status(self) -> u16 {
        match self {
            Class::Input => 400,
            Class::NotFound => 404,
            Class::Refused => 409,
            Class::Internal => 500,
        }
    }
}

macro_rules! rules {
    ($( $(#[doc = $doc:literal])+ $name:ident = $code:literal, $class:ident; )+) => {
        /// A rule a request can break. Its [`code`](Rule::code) is stable: programs read it.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Rule {
            $( $(#[doc = $doc])+ $name, )+
        }

        impl Rule {
            /// Every rule, in table order.
            pub const ALL: &'static [Rule] = &[$(Rule::$name),+];

            /// The stable code (kebab-case).
            pub fn code(self) -> &'static str {
                match self { $(Rule::$name => $code,)+ }
            }

            /// What kind of refusal it is.
            pub fn class(self) -> Class {
                match self { $(Rule::$name => Class::$class,)+ }
            }
        }
    };
}

rules! {
    // --- input and set-up -------------------------------------------------------------------
    /// A site is one of harbin, hegang, qiqihar.
    UnknownSite = "site", Input;
    /// A file given is within its size limit.
    FileTooLarge = "file-size", Input;
    /// A file given can be read and is of a kind that is accepted.
    FileUnreadable = "file-readable", Input;
    /// A text field is within its length and has no control characters.
    FieldText = "field-text", Input;
    /// A database URL is postgres://… or sqlite:PATH.
    DatabaseUrl = "database-url", Input;
    /// The CA's validity settings are consistent (issuing CA within the root).
    CaValidity = "ca-validity", Input;
    /// A CA key file passphrase has at least 12 characters.
    CaPassphrase = "ca-passphrase", Refused;
    /// CA keys on an HSM, and reading tokens, need a PKCS#11 module.
    Pkcs11Module = "pkcs11-module", Refused;
    /// The API's TLS certificate names its hosts.
    ApiHosts = "api-hosts", Input;
    /// An Idempotency-Key is 1 to 128 visible characters.
    IdempotencyKey = "idempotency-key", Input;
    /// A batch file is used only when every row of it is valid.
    BatchRows = "batch-rows", Refused;
    // --- objects that must exist -------------------------------------------------------------
    /// An application named exists.
    UnknownApplication = "known-application", NotFound;
    /// An issuance named exists.
    UnknownIssuance = "known-issuance", NotFound;
    /// An operator named exists and is active.
    UnknownOperator = "known-operator", NotFound;
    /// A portal account named exists.
    UnknownAccount = "known-account", NotFound;
    /// A payment order named exists.
    UnknownOrder = "known-order", NotFound;
    /// A material named exists, with its content in the database.
    UnknownMaterial = "known-material", NotFound;
    // --- requests (PKCS#10) ------------------------------------------------------------------
    /// A PKCS#10 request is well formed, self-signed, and fits the certificate it asks for.
    Csr = "csr", Input;
    /// An operator's key is new: a job makes a new key for a new operator.
    OperatorKeyReused = "operator-key-new", Refused;
    // --- operators ---------------------------------------------------------------------------
    /// An operator's name is 1 to 64 visible characters (the certificate's CN).
    OperatorName = "operator-name", Input;
    /// An operator has at least one role.
    OperatorRoles = "operator-roles", Input;
    /// An operator logs in with their own operator USBKEY enrolled by this CA, valid and not
    /// revoked, proving possession of its key.
    OperatorLogin = "operator-login", Input;
    /// An operator's USBKEY is theirs alone: not a customer's, not another operator's.
    OperatorUsbkey = "operator-usbkey", Refused;
    /// The CA keeps at least one active ca-admin with a USBKEY.
    LastCaAdmin = "last-ca-admin", Refused;
    /// One actor at a time.
    ActingTwice = "one-actor", Internal;
    /// Four eyes: who took a payment does not refund it; who submitted does not review.
    FourEyes = "four-eyes", Refused;
    // --- holders and certificates ------------------------------------------------------------
    /// One holder per USBKEY.
    OneHolderPerUsbkey = "one-holder-per-usbkey", Refused;
    /// A certificate names its holder (a USCC or a resident ID field in its policy).
    HolderNamed = "holder-named", Input;
    /// An application has its required materials before it is issued.
    MaterialsRequired = "materials-required", Refused;
    /// An issuance without a fee names why.
    FreeNeedsReason = "free-needs-reason", Input;
    /// A seal picture is given only for a type with an electronic seal.
    SealImage = "seal-image", Input;
    /// The enterprise secondary lock (副锁) needs an issued, unexpired enterprise certificate of
    /// the same USCC.
    SecondaryLock = "secondary-needs-enterprise", Refused;
    /// A renewal is of a holder's identity certificate of the same type, for the same holder,
    /// onto the same USBKEY.
    RenewalSame = "renewal-same-holder", Refused;
    /// A renewal is made within the renewal window, before expiry.
    RenewalWindow = "renewal-window", Refused;
    /// The CA's own working certificates are managed by their own commands, not the counter's.
    CaCertificate = "holder-certificate", Refused;
    /// A certificate's current status allows the step.
    CertificateState = "certificate-state", Refused;
    // --- applications and the online journey -------------------------------------------------
    /// An application's state allows the step (the one state table).
    ApplicationState = "application-state", Refused;
    /// An application changed by another command meanwhile is looked at again.
    ApplicationChanged = "application-unchanged", Refused;
    /// A counter application has its site; an online application has none.
    ApplicationSite = "application-site", Refused;
    /// The portal makes online applications only.
    OnlineOnly = "online-only", Input;
    /// A rejection names its reason.
    RejectionReason = "rejection-reason", Refused;
    /// A material is a PDF, PNG or JPEG file of an accepted kind.
    MaterialFile = "material-file", Refused;
    /// One file per material; the same file is not added twice.
    MaterialOnce = "material-once", Refused;
    /// A payment other than cash names its reference.
    PaymentReference = "payment-reference", Input;
    /// A paid application cancelled is paid back by a named method; only paid ones are.
    Refund = "refund", Input;
    /// A mobile number or sign-in is registered once.
    AlreadyRegistered = "registered-once", Refused;
    /// A payment notification is fresh, for the order's amount, for an unpaid order.
    Notification = "payment-notification", Refused;
    /// Delivery is by mail with an address, phone and recipient, or pickup at a site.
    DeliveryDetails = "delivery-details", Input;
    /// Delivery is arranged once, after payment, and before the USBKEY is handed over.
    Delivery = "delivery", Refused;
    // --- seals -------------------------------------------------------------------------------
    /// A seal and its certificates are within their validity.
    SealValidity = "seal-validity", Refused;
    /// A seal's certificates are the ones this CA issued.
    SealCertificates = "seal-certificates", Refused;
    // --- cross-platform binding ---------------------------------------------------------------
    /// Binding needs its materials, a certificate within its validity, not issued by this CA,
    /// bound once.
    Binding = "binding", Refused;
    /// A former platform's CA is configured and valid, its CRL verifies and is current, and the
    /// certificate is not revoked by it.
    FormerCa = "former-ca", Refused;
    // --- storage, backup, publication --------------------------------------------------------
    /// `init`, `db copy`, `restore` and `backup` never write over existing history.
    NoOverwrite = "no-overwrite", Refused;
    /// The database exists and has the hljca schema, at a version this hljca understands.
    Schema = "schema", Refused;
    /// A backup is whole: every file in its manifest, each matching its SHA-256.
    BackupIntact = "backup-intact", Refused;
    /// A published CRL matches the digest the database recorded for it.
    CrlIntact = "crl-intact", Refused;
    /// The CA has the working key the step needs (OCSP signer, seal maker).
    WorkingKey = "working-key", Refused;
    /// The database role can copy rows as they are.
    DatabaseRole = "database-role", Refused;
    /// The CA's clock never goes backwards: nothing is signed or recorded at a time earlier than
    /// the newest CRL or audit row (beyond a small tolerance).
    ClockBehind = "clock-forward", Refused;
    /// A home whose database moved elsewhere (`db copy`) is no longer used.
    DatabaseMoved = "database-moved", Refused;
    /// A secure connection to a database on another host (TLS, as `sslmode` says).
    DatabaseTls = "database-tls", Refused;
    // --- the CA's own trouble ----------------------------------------------------------------
    /// An invariant of the CA held (a failure here is a defect or an injected failure).
    Internal = "internal", Internal;
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal: the rule broken, the field at fault when there is one, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule.
    pub rule: Rule,
    /// The field (option, header, request or form field) at fault, when one is.
    pub field: Option<Cow<'static, str>>,
    /// What happened and what to do, for people.
    pub message: String,
}

impl Refusal {
    /// A refusal of `rule`.
    pub fn new(rule: Rule, message: impl Into<String>) -> Refusal {
        Refusal {
            rule,
            field: None,
            message: message.into(),
        }
    }

    /// The same refusal naming `field`.
    pub fn on(mut self, field: impl Into<Cow<'static, str>>) -> Refusal {
        self.field = Some(field.into());
        self
    }

    /// Its class (the rule's).
    pub fn class(&self) -> Class {
        self.rule.class()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Rule::ALL {
            let c = r.code();
            assert!(seen.insert(c), "code {c} used twice");
            assert!(
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-'),
                "code {c} is not kebab-case"
            );
        }
    }

    #[test]
    fn classes_decide_exit_codes_and_statuses() {
        let cases = [
            (Rule::Csr, 2, 400),
            (Rule::UnknownApplication, 2, 404),
            (Rule::OneHolderPerUsbkey, 1, 409),
            (Rule::Internal, 1, 500),
        ];
        for (rule, exit, status) in cases {
            assert_eq!(
                (rule.class().exit_code(), rule.class().http_status()),
                (exit, status),
                "{rule}"
            );
        }
    }

    #[test]
    fn a_refusal_reads_as_its_message_and_names_its_field() {
        let r = Refusal::new(Rule::Csr, "csr: not PEM").on("csr");
        assert_eq!(r.to_string(), "csr: not PEM");
        assert_eq!(r.field.as_deref(), Some("csr"));
        assert_eq!(r.class(), Class::Input);
    }
}
