//! Operators for automated jobs, which have no USBKEY: the job makes its own P-256 key and
//! sends a PKCS#10 request; the operator certificate (the same profile, roles and audit as a
//! USBKEY operator's) is issued for that key. Such an operator authenticates to the API of
//! `hljca serve` with its certificate and key; it cannot log in to the CLI (no USBKEY).

use crate::Rule;
use hljca_pki::csr::{Pkcs10Error, parse_pkcs10};
use sha2::{Digest, Sha256};

use super::Role;
use super::enrol::check_name;
use crate::Ca;
use crate::applications::Site;
use crate::engine::Authority;
use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::profile::SubjectKey;
use crate::store::OperatorRecord;
use crate::time_fmt::ts;

/// Token label recorded for an operator whose key is the job's own (no USBKEY).
pub const CSR_OPERATOR_TOKEN: &str = "(csr)";

/// An operator to enrol for a key the job holds.
#[derive(Debug, Clone)]
pub struct NewCsrOperator {
    /// The job's name (CN of the operator certificate).
    pub name: String,
    /// The site it works for (OU).
    pub site: Site,
    /// Its roles.
    pub roles: Vec<Role>,
    /// The PKCS#10 request (PEM or DER).
    pub csr: Vec<u8>,
}

fn bad(rule: &str, what: String) -> CoreError {
    CoreError::refuse_on(Rule::Csr, "csr", format!("--csr: {what} [rule: {rule}]"))
}

/// The request's P-256 public key (uncompressed point), after the one PKCS#10 check
/// (signature) and checking that it asks for nothing a CA has.
fn checked_key(bytes: &[u8]) -> Result<Vec<u8>> {
    let req = parse_pkcs10(bytes).map_err(|e| match e {
        Pkcs10Error::Parse(m) => bad("a PKCS#10 request in PEM or DER", m),
        Pkcs10Error::Signature(m) => bad(
            "a PKCS#10 request is signed by its own key",
            format!("the signature does not verify ({m})"),
        ),
    })?;
    if !req.is_uncompressed_p256() {
        return Err(bad(
            "operator keys are EC P-256",
            format!("the key is {}, not an uncompressed EC P-256 key", req.key),
        ));
    }
    if let Some(what) = req.asks_for_ca {
        return Err(bad(
            "an operator certificate is never a CA",
            format!("the request asks for {what}"),
        ));
    }
    Ok(req.key_bits)
}

impl Ca {
    /// Enrols an operator for an automated job (ca-admin) from its PKCS#10 request: the
    /// request's signature and P-256 key are checked, a CA-like request is refused, and its
    /// subject is ignored (the certificate names `name` and `site`, as for a USBKEY operator).
    /// Returns the operator row; its `der` is the certificate to give the job.
    pub fn enrol_csr_operator(
        &mut self,
        module: Option<&hljca_token::Module>,
        secrets: &Secrets,
        new: &NewCsrOperator,
    ) -> Result<OperatorRecord> {
        self.require(Role::CaAdmin, "operator add --csr")?;
        check_name(&new.name)?;
        if new.roles.is_empty() {
            return Err(CoreError::refuse_on(
                Rule::OperatorRoles,
                "roles",
                "--roles needs at least one role",
            ));
        }
        let bits = checked_key(&new.csr)?;
        // One operator per key: the key id is the SHA-256 of the public key.
        let key_id = hex::encode(Sha256::digest(&bits));
        if let Some(o) = self
            .store
            .operators()?
            .into_iter()
            .find(|o| o.key_id == key_id && o.status == "active")
        {
            return Err(CoreError::refuse_on(
                Rule::OperatorKeyReused,
                "csr",
                format!(
                    "this key already belongs to operator {} ({}); a job makes a new key for a new operator",
                    o.name, o.cert_serial
                ),
            ));
        }
        let keys = self.ca_keys(module, secrets)?;
        let auth = Authority::new(self, &keys)?;
        let key = SubjectKey {
            bits,
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
        };
        let (serial, der, not_after) = self.sign_operator_cert(&auth, &new.name, new.site, &key)?;
        let rec = OperatorRecord {
            cert_serial: serial,
            name: new.name.trim().to_owned(),
            site: new.site.as_str().to_owned(),
            roles: new.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            token_label: CSR_OPERATOR_TOKEN.into(),
            token_serial: String::new(),
            key_id,
            der,
            status: "active".into(),
            not_after: ts(not_after),
            enrolled_at: ts(crate::time_fmt::now()),
            enrolled_by: self.actor.name().to_owned(),
        };
        let op = self.actor.name().to_owned();
        self.record_operator(
            &op,
            &rec,
            serde_json::json!({ "first": false, "source": "csr" }),
        )?;
        Ok(rec)
    }
}
