//! Operators: members of staff who act on the CA, each with an operator USBKEY holding an
//! operator key (born on the token) and an operator certificate from the issuing CA. A command
//! that changes anything runs with an operator logged in: possession of the key is proven by
//! signing a fresh challenge, the certificate must chain to the issuing CA, be unexpired and not
//! revoked, and the operator's roles say what they may do. Every audit row the command writes is
//! signed with the operator key (see `Store::commit`).

mod csr;
mod enrol;

use crate::Actor;
use crate::Rule;
use std::fmt;
use std::str::FromStr;

use hljca_token::{KeyId, Module, ObjectKind, Pin, TokenSelector, TokenSession};
use p256::ecdsa::signature::Verifier;
use rcgen::SigningKey;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Ca;
use crate::error::{CoreError, Result};
use crate::store::{AuditSigner, OperatorRecord};

pub use csr::{CSR_OPERATOR_TOKEN, NewCsrOperator};
pub use enrol::NewOperator;

/// Label prefix of operator objects on a token.
pub const OPERATOR_LABEL: &str = "hljca-operator";

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Applications: apply, materials, submit, cancel before payment.
    Registrar,
    /// Review (approve, reject).
    Reviewer,
    /// Payments, refunds, renewal fees.
    Cashier,
    /// Issuance, delivery, token initialisation and PIN reset, recover, batches.
    Issuer,
    /// The CA: init, operators, revocation, CRLs, configuration, direct issuance.
    CaAdmin,
    /// Reading and exporting the audit log.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Registrar,
        Role::Reviewer,
        Role::Cashier,
        Role::Issuer,
        Role::CaAdmin,
        Role::Auditor,
    ];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Registrar => "registrar",
            Role::Reviewer => "reviewer",
            Role::Cashier => "cashier",
            Role::Issuer => "issuer",
            Role::CaAdmin => "ca-admin",
            Role::Auditor => "auditor",
        }
    }

    /// What the role covers, for `operator roles`.
    pub fn covers(self) -> &'static str {
        match self {
            Role::Registrar => "apply, materials, submit, cancel before payment",
            Role::Reviewer => "review approve / reject (not an application they submitted)",
            Role::Cashier => "pay, refunds (not of a payment they took), renewal fees",
            Role::Issuer => "issue, deliver, token init / unblock, recover, batch, bind, remind",
            Role::CaAdmin => {
                "init, operators, revoke, release, crl, configuration, direct issuance"
            }
            Role::Auditor => "audit list / export",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Role, String> {
        let w = s.trim().to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == w)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}` (roles: {})",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })
    }
}

/// Parses a comma-separated role list (no duplicates, at least one).
pub fn parse_roles(s: &str) -> std::result::Result<Vec<Role>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let r: Role = part.parse()?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err("--roles needs at least one role".into());
    }
    Ok(out)
}

/// The logged-in operator.
pub struct OperatorSession {
    record: OperatorRecord,
    session: TokenSession,
    key: KeyId,
}

impl fmt::Debug for OperatorSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorSession")
            .field("name", &self.record.name)
            .field("cert", &self.record.cert_serial)
            .finish_non_exhaustive()
    }
}

/// Signs audit rows with the operator key on their USBKEY.
struct TokenAuditSigner {
    cert_serial: String,
    session: TokenSession,
    key: KeyId,
}

impl AuditSigner for TokenAuditSigner {
    fn cert_serial(&self) -> &str {
        &self.cert_serial
    }
    fn sign(&self, msg: &[u8]) -> hljca_store::Result<Vec<u8>> {
        let signed: Result<Vec<u8>> = self
            .session
            .signer(&self.key)
            .map_err(CoreError::from)
            .and_then(|s| s.sign(msg).map_err(CoreError::cert("operator signature")));
        Ok(signed?)
    }
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CoreError::Parse {
            what: "operator certificate".into(),
            reason: e.to_string(),
        })
}

/// The identity recorded on audit rows and application steps: name and certificate serial.
fn identity(r: &OperatorRecord) -> String {
    format!("{} ({})", r.name, r.cert_serial)
}

impl Ca {
    /// Logs in the operator whose USBKEY is `sel`: signs a fresh challenge with the operator
    /// key and checks it with the operator certificate, which must be enrolled and active here,
    /// chain to the issuing CA and be valid now. From then on every audit row is signed by them.
    pub fn login(&mut self, module: &Module, sel: &TokenSelector, pin: &Pin) -> Result<()> {
        let info = module.find(sel)?;
        super::engine::refuse_ca_token(self, None, &info, &sel.0).map_err(|_| {
            CoreError::refuse_on(Rule::OperatorLogin, "HLJCA_OPERATOR_TOKEN", format!(
                "`{sel}` is the CA's HSM token, not an operator USBKEY [rule: operators log in with their own USBKEY]"
            ))
        })?;
        let session = module.login(sel, pin)?;
        let objects = session.list_objects()?;
        let mut found = None;
        for o in objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Certificate && o.label.starts_with(OPERATOR_LABEL))
        {
            let Some(id) = KeyId::from_hex(&o.id) else {
                continue;
            };
            let der = session.certificate(&id)?;
            let serial = hex::encode(parse_cert(&der)?.raw_serial());
            if let Some(rec) = self.store.operator(&serial)? {
                found = Some((rec, id, der));
                break;
            }
        }
        let not_operator = || {
            CoreError::refuse_on(
                Rule::OperatorLogin,
                "HLJCA_OPERATOR_TOKEN",
                format!(
                    "token `{}` holds no operator certificate of this CA [rule: operators log in with an operator USBKEY enrolled by `hljca operator add`]",
                    info.label
                ),
            )
        };
        let (rec, key, der) = found.ok_or_else(not_operator)?;
        if rec.status != "active" {
            return Err(CoreError::refuse_on(
                Rule::OperatorLogin,
                "HLJCA_OPERATOR_TOKEN",
                format!(
                    "operator {} (certificate {}) is revoked [rule: a revoked operator cannot log in]",
                    rec.name, rec.cert_serial
                ),
            ));
        }
        if rec.der != der {
            return Err(not_operator());
        }
        let cert = parse_cert(&der)?;
        let issuing = crate::ca::issuing_der(&self.home)?;
        let issuing = parse_cert(&issuing)?;
        cert.verify_signature(Some(issuing.public_key())).map_err(|_| {
            CoreError::refuse_on(Rule::OperatorLogin, "HLJCA_OPERATOR_TOKEN", format!(
                "operator certificate {} is not issued by this CA's issuing CA [rule: operator certificates chain to the issuing CA]",
                rec.cert_serial
            ))
        })?;
        let now = self.now();
        let (nb, na) = (
            cert.validity().not_before.to_datetime(),
            cert.validity().not_after.to_datetime(),
        );
        if now < nb || now > na {
            return Err(CoreError::refuse_on(
                Rule::OperatorLogin,
                "HLJCA_OPERATOR_TOKEN",
                format!(
                    "operator certificate {} is not valid now ({} .. {}) [rule: operators log in with a valid certificate]",
                    rec.cert_serial,
                    crate::time_fmt::ts(nb),
                    crate::time_fmt::ts(na)
                ),
            ));
        }
        // Proof of possession: a fresh challenge signed on the token, checked with the certificate.
        let challenge: [u8; 32] = rand::random();
        let sig = session
            .signer(&key)?
            .sign(&challenge)
            .map_err(CoreError::cert("operator challenge"))?;
        let vk =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
                .map_err(|e| CoreError::Parse {
                    what: "operator public key".into(),
                    reason: e.to_string(),
                })?;
        let sig = p256::ecdsa::Signature::from_der(&sig).map_err(|e| CoreError::Parse {
            what: "operator signature".into(),
            reason: e.to_string(),
        })?;
        vk.verify(&challenge, &sig).map_err(|_| {
            CoreError::refuse_on(Rule::OperatorLogin, "HLJCA_OPERATOR_TOKEN", format!(
                "the key on `{}` does not match operator certificate {} [rule: proof of possession]",
                info.label, rec.cert_serial
            ))
        })?;
        let roles: Vec<Role> = rec.roles.iter().filter_map(|r| r.parse().ok()).collect();
        let signer_session = module.login(sel, pin)?;
        let actor = Actor::operator(identity(&rec), roles);
        let parts = self.parts_mut()?;
        parts.store.set_signer(Box::new(TokenAuditSigner {
            cert_serial: rec.cert_serial.clone(),
            session: signer_session,
            key: key.clone(),
        }));
        // Rows are recorded with the operator's site unless the installation names its own.
        if parts.store.conn.site().is_none() {
            parts.store.conn.set_site(Some(rec.site.clone()));
        }
        tracing::info!(operator = %rec.name, cert = %rec.cert_serial, token = %info.label, "operator logged in");
        parts.operator_session = Some(OperatorSession {
            record: rec,
            session,
            key,
        });
        self.actor = actor;
        Ok(())
    }

    /// The logged-in operator, if any.
    pub fn operator_record(&self) -> Option<&OperatorRecord> {
        self.operator_session.as_ref().map(|s| &s.record)
    }

    /// Refuses unless the logged-in operator holds `role` (for `what`).
    /// While the CA acts for an API client ([`Ca::acting_for`]), the client's roles count.
    pub fn require(&self, role: Role, what: &str) -> Result<()> {
        match self.actor.roles() {
            None => Err(CoreError::NotLoggedIn),
            Some(roles) if roles.contains(&role) => Ok(()),
            Some(_) => Err(CoreError::MissingRole {
                operator: self.actor.name().to_owned(),
                role: role.as_str(),
                what: what.to_owned(),
            }),
        }
    }

    /// Runs `f` on behalf of `actor` (an online applicant account, the payment gateway): `f`
    /// gets a handle of its own on this CA, acting as `actor` with only `roles`, so the audit
    /// rows and application events it writes name `actor` (still signed by the logged-in
    /// operator's key, the server's). This handle is not touched: however `f` ends — returns,
    /// fails or panics — the next call acts as this handle's own actor. The API's `acting_for`
    /// is this, for an API client.
    pub fn act_for<T>(
        &self,
        actor: &str,
        roles: &[Role],
        f: impl FnOnce(&mut Ca) -> Result<T>,
    ) -> Result<T> {
        if self.actor.is_delegated() {
            return Err(CoreError::refuse(
                Rule::ActingTwice,
                format!(
                    "already acting for {}; cannot also act for {actor}",
                    self.actor.name()
                ),
            ));
        }
        let mut acting = Ca {
            parts: std::rc::Rc::clone(&self.parts),
            actor: Actor::delegated(actor, roles),
        };
        f(&mut acting)
    }

    /// Every operator.
    pub fn operators(&self) -> Result<Vec<OperatorRecord>> {
        Ok(self.store.operators()?)
    }

    /// The operator session's token (to sign with it, e.g. the API's client authentication).
    pub fn operator_token(&self) -> Option<(&TokenSession, &KeyId)> {
        self.operator_session.as_ref().map(|s| (&s.session, &s.key))
    }
}
