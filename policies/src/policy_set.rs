//! The seven policies: embedded TOML files, optionally replaced from an override directory.

use std::path::Path;

use crate::cert_type::CertType;
use crate::error::PolicyError;
use crate::policy::Policy;

/// The embedded policy files, in [`CertType::ALL`] order.
const BUILTIN: [(&str, &str); 7] = [
    ("enterprise.toml", include_str!("../types/enterprise.toml")),
    (
        "legal-person.toml",
        include_str!("../types/legal-person.toml"),
    ),
    ("medical.toml", include_str!("../types/medical.toml")),
    ("expert.toml", include_str!("../types/expert.toml")),
    (
        "procurement.toml",
        include_str!("../types/procurement.toml"),
    ),
    (
        "enterprise-secondary.toml",
        include_str!("../types/enterprise-secondary.toml"),
    ),
    (
        "authorized-rep.toml",
        include_str!("../types/authorized-rep.toml"),
    ),
];

/// One policy per certificate type.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Indexed by [`CertType::index`].
    policies: [Policy; 7],
}

impl PolicySet {
    /// The seven policies embedded in the crate (`policies/types/<key>.toml`).
    pub fn builtin() -> Result<PolicySet, PolicyError> {
        let mut out = Vec::with_capacity(7);
        for (t, (file, text)) in CertType::ALL.into_iter().zip(BUILTIN) {
            out.push(Policy::from_toml(t, file, text)?);
        }
        PolicySet::from_vec(out)
    }

    /// The builtin policies, with each `<key>.toml` file in `override_dir` replacing the
    /// builtin policy of that type. No directory, or one that does not exist, gives the
    /// builtin set. Files not ending in `.toml` and subdirectories are ignored; a `.toml` file
    /// whose name is not a type key is an error naming the file.
    pub fn load(override_dir: Option<&Path>) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet::builtin()?;
        let Some(dir) = override_dir else {
            return Ok(set);
        };
        if !dir.exists() {
            return Ok(set);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PolicyError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = file.strip_suffix(".toml").unwrap_or(&file);
            let t = CertType::ALL
                .into_iter()
                .find(|t| t.key() == stem)
                .ok_or_else(|| PolicyError::UnknownFile { file: file.clone() })?;
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            set.policies[t.index()] = Policy::from_toml(t, &path.display().to_string(), &text)?;
        }
        Ok(set)
    }

    /// The policy of a type.
    pub fn get(&self, t: CertType) -> &Policy {
        &self.policies[t.index()]
    }

    /// All seven policies, in [`CertType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.iter()
    }

    fn from_vec(v: Vec<Policy>) -> Result<PolicySet, PolicyError> {
        let policies: [Policy; 7] =
            v.try_into()
                .map_err(|v: Vec<Policy>| PolicyError::Invalid {
                    file: "(builtin set)".to_owned(),
                    reason: format!("{} policies instead of 7", v.len()),
                })?;
        Ok(PolicySet { policies })
    }
}

impl Policy {
    /// Parses and checks one policy file that must declare type `expected`. `file` names the
    /// file in errors.
    pub fn from_toml(expected: CertType, file: &str, text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|source| PolicyError::Parse {
            file: file.to_owned(),
            source,
        })?;
        if policy.cert_type != expected {
            return Err(PolicyError::Mismatch {
                file: file.to_owned(),
                declared: policy.cert_type.key().to_owned(),
            });
        }
        policy.check().map_err(|reason| PolicyError::Invalid {
            file: file.to_owned(),
            reason,
        })?;
        Ok(policy)
    }
}
