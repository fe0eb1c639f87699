//! Cross-platform binding (跨平台CA绑定) of certificates from the former Daqing platform.

use crate::Rule;
pub use crate::store::vocab::Binding;
use std::path::PathBuf;

use hljca_token::{KeyId, Module, TokenSelector};
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;

use crate::applications::{Site, check_file, material_hash};
use crate::error::{CoreError, Result};
use crate::keys::Secrets;
use crate::time_fmt::ts;
use crate::{Ca, audit};

/// Where a certificate to bind comes from.
#[derive(Debug, Clone)]
pub enum BindSource {
    /// A PEM or DER file.
    File(PathBuf),
    /// A token: the first certificate on it, or the one with `key_id`.
    Token {
        /// Label or serial.
        token: TokenSelector,
        /// Which certificate.
        key_id: Option<KeyId>,
    },
}

/// A counter material for a binding: kind and file.
#[derive(Debug, Clone)]
pub struct BindMaterial {
    /// business-licence, legal-rep-id-copy, agent-id-copy.
    pub kind: String,
    /// The scanned file.
    pub file: PathBuf,
}

/// The materials the seed lists for a cross-platform binding (besides the token itself).
pub const BIND_MATERIALS: [&str; 3] = ["business-licence", "legal-rep-id-copy", "agent-id-copy"];

impl Ca {
    /// Registers and activates a certificate of the former platform's CA (configured in
    /// `[binding]`) at the counter of `site`: it must chain to that CA, be valid now and not be
    /// on its configured CRL.
    pub fn bind(
        &mut self,
        source: &BindSource,
        materials: &[BindMaterial],
        site: Site,
        module: Option<&Module>,
        secrets: &Secrets,
    ) -> Result<Binding> {
        self.require(crate::operators::Role::Issuer, "bind")?;
        let missing: Vec<&str> = BIND_MATERIALS
            .iter()
            .copied()
            .filter(|k| !materials.iter().any(|m| m.kind == *k))
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::refuse(
                Rule::Binding,
                format!(
                    "binding needs the materials {} (missing: {})",
                    BIND_MATERIALS.join(", "),
                    missing.join(", ")
                ),
            ));
        }
        if let Some(m) = materials
            .iter()
            .find(|m| !BIND_MATERIALS.contains(&m.kind.as_str()))
        {
            return Err(CoreError::refuse(
                Rule::Binding,
                format!(
                    "unknown binding material `{}` (expected {})",
                    m.kind,
                    BIND_MATERIALS.join(", ")
                ),
            ));
        }
        let (der, src, token_label, token_serial) = match source {
            BindSource::File(p) => (read_cert_file(p)?, "pem", None, None),
            BindSource::Token { token, key_id } => {
                let module = module.ok_or_else(|| {
                    CoreError::refuse(
                        Rule::Pkcs11Module,
                        "reading a token needs the PKCS#11 module",
                    )
                })?;
                let s = module.login(token, secrets.user_pin()?)?;
                let der = match key_id {
                    Some(id) => s.certificate(id)?,
                    None => s.first_certificate()?,
                };
                let info = s.info().clone();
                (der, "token", Some(info.label), Some(info.serial))
            }
        };
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).map_err(|e| {
            CoreError::Parse {
                what: "certificate to bind".into(),
                reason: e.to_string(),
            }
        })?;
        let serial = hex::encode(cert.raw_serial());
        let t = self.now();
        let (nb, na) = (
            cert.validity().not_before.to_datetime(),
            cert.validity().not_after.to_datetime(),
        );
        if t < nb || t > na {
            return Err(CoreError::refuse_on(
                Rule::Binding,
                "serial",
                format!(
                    "certificate {serial} is not within its validity ({} .. {}); it cannot be activated",
                    ts(nb),
                    ts(na)
                ),
            ));
        }
        let ours = crate::ca::issuing_der(&self.home)?;
        if let Ok((_, our)) = x509_parser::certificate::X509Certificate::from_der(&ours)
            && cert.issuer() == our.subject()
        {
            return Err(CoreError::refuse_on(
                Rule::Binding,
                "serial",
                format!(
                    "certificate {serial} was issued by this CA: it needs no cross-platform binding"
                ),
            ));
        }
        let verified = self.verify_former(&cert)?;
        let fingerprint = hex::encode(Sha256::digest(&der));
        let mut stored = Vec::new();
        let mut contents = Vec::new();
        for m in materials {
            let bytes = super::former::read_bounded(
                &m.file,
                crate::applications::MAX_MATERIAL_BYTES,
                "material",
            )?;
            let name = m.file.display().to_string();
            let media = check_file(&name, &bytes).map_err(|e| {
                CoreError::refuse(Rule::FileUnreadable, format!("material {}: {e}", m.kind))
            })?;
            let hash = material_hash(&bytes);
            stored.push(serde_json::json!({
                "kind": m.kind, "sha256": hash, "size": bytes.len(), "media_type": media.as_str(),
            }));
            contents.push(bytes);
        }
        let bound_at = ts(t);
        let (issuer, subject) = (cert.issuer().to_string(), cert.subject().to_string());
        let tx = self.store.begin("begin binding")?;
        for bytes in &contents {
            crate::store::blobs::put(&tx, bytes)?;
        }
        let materials = serde_json::Value::Array(stored).to_string();
        let new = crate::store::bindings::NewBinding {
            fingerprint: &fingerprint,
            issuer: &issuer,
            subject: &subject,
            serial: &serial,
            not_before: &ts(nb),
            not_after: &ts(na),
            der: &der,
            source: src,
            token_label: token_label.as_deref(),
            token_serial: token_serial.as_deref(),
            materials: &materials,
            operator: self.actor.name(),
            bound_at: &bound_at,
            site: site.as_str(),
        };
        let Some(id) = crate::store::bindings::insert(&tx, &new)? else {
            return Err(CoreError::refuse_on(
                Rule::Binding,
                "serial",
                format!("certificate {serial} is already bound (fingerprint {fingerprint})"),
            ));
        };
        audit::append(
            &tx,
            self.actor.name(),
            "binding.activate",
            &serial,
            &serde_json::json!({
                "issuer": issuer, "subject": subject, "fingerprint": fingerprint, "source": src,
                "anchor": verified.anchor, "crls_checked": verified.crls_checked, "site": site.as_str(),
            }),
        )?;
        self.commit(tx, "commit binding")?;
        Ok(Binding {
            id,
            fingerprint,
            issuer,
            subject,
            serial,
            not_after: ts(na),
            source: src.into(),
            token_label,
            status: "active".into(),
            operator: self.actor.name().to_owned(),
            bound_at,
            site: Some(site),
        })
    }

    /// Every binding, newest first.
    pub fn bindings(&self) -> Result<Vec<Binding>> {
        Ok(crate::store::bindings::list(&self.store.conn)?)
    }
}

fn read_cert_file(p: &std::path::Path) -> Result<Vec<u8>> {
    super::former::read_der(p, "certificate")
}
