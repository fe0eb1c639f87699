//! Consistency checks on a parsed policy: what serde's shape checks cannot catch.

use std::collections::BTreeSet;

use crate::policy::{CertProfile, FieldKind, KeyAlgorithm, KeyUsage, Policy};

impl Policy {
    /// Checks that the policy is self-consistent: unique fields, the subject, seal and
    /// extensions naming fields of the right kind, sane numbers and OID suffixes.
    /// Returns every problem found, or `Ok` if there are none.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for f in &self.fields {
            if f.name.trim().is_empty() || f.label_zh.trim().is_empty() {
                problems.push("a field has an empty name or Chinese label".to_owned());
            }
            if !seen.insert(f.name.as_str()) {
                problems.push(format!("field `{}` is declared twice", f.name));
            }
        }
        let mut refer =
            |role: &str, name: &str, kinds: &[FieldKind], required: bool| match self.field(name) {
                None => problems.push(format!("{role} names `{name}`, which is not a field")),
                Some(f) if !kinds.contains(&f.kind) => problems.push(format!(
                    "{role} names `{name}`, whose kind {:?} is not one of {kinds:?}",
                    f.kind
                )),
                Some(f) if required && !f.required => problems.push(format!(
                    "{role} names `{name}`, which must be a required field"
                )),
                Some(_) => {}
            };
        let names = [FieldKind::OrgName, FieldKind::PersonName];
        let any = [
            FieldKind::OrgName,
            FieldKind::PersonName,
            FieldKind::City,
            FieldKind::Text,
        ];
        refer("subject cn", &self.subject.cn, &names, true);
        for (role, f) in [
            ("subject o", &self.subject.o),
            ("subject ou", &self.subject.ou),
            ("subject l", &self.subject.l),
        ] {
            if let Some(f) = f {
                refer(role, f, &any, false);
            }
        }
        if let Some(f) = &self.extensions.uscc_field {
            refer("extensions.uscc_field", f, &[FieldKind::OrgId], false);
        }
        if let Some(f) = &self.extensions.resident_id_field {
            refer(
                "extensions.resident_id_field",
                f,
                &[FieldKind::ResidentId],
                false,
            );
        }
        if let Some(seal) = &self.seal {
            refer("seal.name_field", &seal.name_field, &names, true);
            if seal.width_mm == 0 || seal.height_mm == 0 {
                problems.push("seal size must not be zero".to_owned());
            }
        }
        if self.validity_days == 0 {
            problems.push("validity_days must be positive".to_owned());
        }
        let mut profiles = vec![("identity", &self.identity)];
        if let Some(seal) = &self.seal {
            profiles.push(("seal.cert", &seal.cert));
        }
        for (role, p) in profiles {
            problems.extend(check_profile(role, p, self.key_algorithm));
        }
        let mut kinds = BTreeSet::new();
        for m in &self.materials {
            if !kinds.insert(m.kind.as_str()) {
                problems.push(format!("material `{}` is listed twice", m.kind));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn check_profile(role: &str, p: &CertProfile, alg: KeyAlgorithm) -> Vec<String> {
    let mut problems = Vec::new();
    if p.key_usage.is_empty() {
        problems.push(format!("{role}.key_usage is empty"));
    }
    if alg == KeyAlgorithm::EcP256 && p.key_usage.contains(&KeyUsage::KeyEncipherment) {
        problems.push(format!(
            "{role}.key_usage has key-encipherment, which EC keys cannot do"
        ));
    }
    let oid_ok = !p.policy_oid_suffix.is_empty()
        && p.policy_oid_suffix
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if !oid_ok {
        problems.push(format!(
            "{role}.policy_oid_suffix `{}` is not dotted decimal arcs",
            p.policy_oid_suffix
        ));
    }
    problems
}
