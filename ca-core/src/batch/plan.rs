//! Reading and validating a batch file as a whole, before any token is touched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use hljca_policies::{Applicant, CertType};
use hljca_token::{Module, TokenInfo};
use serde::Serialize;

use super::file::{self, FileFormat, RowError};
use super::{EXTERNAL_ID, TOKEN, TYPE};
use crate::Ca;
use crate::eligibility::holder_of;
use crate::error::Result;

/// One validated row, ready to issue.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRow {
    /// Line in the file.
    pub line: u64,
    /// The caller's id (unique within the file).
    pub external_id: String,
    /// Certificate type.
    #[serde(rename = "type")]
    pub cert_type: CertType,
    /// Target token, as named in the file or by `--tokens`.
    pub token: String,
    /// Label of that token.
    pub token_label: String,
    /// True when the token came from the `--tokens` round-robin rather than the row.
    pub token_assigned: bool,
    /// True when the type carries an electronic seal (a second key and certificate).
    pub seal: bool,
    /// Applicant data (without `external_id`, `type`, `token`).
    #[serde(skip)]
    pub applicant: Applicant,
}

/// A validated batch: the rows to issue, or every reason it cannot be issued.
#[derive(Debug, Clone, Serialize)]
pub struct BatchPlan {
    /// The file.
    pub file: PathBuf,
    /// Its format.
    pub format: FileFormat,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
    /// Rows in file order.
    pub rows: Vec<PlannedRow>,
    /// Every problem found; issuance is refused unless this is empty.
    pub errors: Vec<RowError>,
}

fn token_matches(t: &TokenInfo, sel: &str) -> bool {
    t.initialized && (t.label == sel || t.serial == sel)
}
impl Ca {
    /// Reads and validates a batch file without touching any token: missing or duplicate
    /// external ids, unknown types, applicant data against each type's policy, the target
    /// tokens among those present (`tokens` is the `--tokens` round-robin list for rows that
    /// name none), and the enterprise certificate an enterprise-secondary row needs.
    pub fn batch_plan(&self, module: &Module, path: &Path, tokens: &[String]) -> Result<BatchPlan> {
        let f = file::read(path)?;
        let present = module.tokens()?;
        let ca_token_serial = self.config.ca.token_serial.clone();
        let mut errors = f.errors.clone();
        let err =
            |line: u64, id: Option<&str>, field: &str, problem: String, rule: &str| RowError {
                line,
                external_id: id.map(str::to_owned),
                field: field.into(),
                problem,
                rule: rule.into(),
            };
        let present_names = || {
            present
                .iter()
                .filter(|t| t.initialized && Some(&t.serial) != ca_token_serial.as_ref())
                .map(|t| format!("{} ({})", t.label, t.serial))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Resolves a token name to its label, or explains why it cannot be used.
        let resolve = |sel: &str| -> std::result::Result<String, String> {
            let found: Vec<&TokenInfo> = present.iter().filter(|t| token_matches(t, sel)).collect();
            match found.as_slice() {
                [] => Err(format!(
                    "no initialised token `{sel}` is present (present: {})",
                    present_names()
                )),
                [one] if Some(&one.serial) == ca_token_serial.as_ref() => Err(format!(
                    "`{sel}` is the CA's own HSM token; certificates go onto holders' USBKEYs"
                )),
                [one] => Ok(one.label.clone()),
                _ => Err(format!("`{sel}` names several tokens; use its serial")),
            }
        };
        let mut round_robin = Vec::new();
        for t in tokens {
            match resolve(t) {
                Ok(label) => round_robin.push((t.clone(), label)),
                Err(problem) => errors.push(err(
                    0,
                    None,
                    "--tokens",
                    problem,
                    "every --tokens entry is a present token (label or serial)",
                )),
            }
        }
        let mut seen: HashMap<String, u64> = HashMap::new();
        // USCCs of enterprise rows earlier in the file (an enterprise-secondary needs one).
        let mut enterprise_orgs: HashSet<String> = HashSet::new();
        let mut rows = Vec::new();
        // Token label → the holder id rows planned so far put on it.
        let mut planned_owner: HashMap<String, String> = HashMap::new();
        for raw in &f.rows {
            let mut fields: BTreeMap<String, String> = raw.fields.clone();
            let line = raw.line;
            let external_id = fields
                .remove(EXTERNAL_ID)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            let id = external_id.as_deref();
            let type_text = fields.remove(TYPE);
            let token = fields
                .remove(TOKEN)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            let before = errors.len();
            match id {
                None => errors.push(err(
                    line,
                    None,
                    EXTERNAL_ID,
                    "missing".into(),
                    "every row has a non-empty external_id",
                )),
                Some(x) => {
                    if let Some(first) = seen.get(x) {
                        errors.push(err(
                            line,
                            id,
                            EXTERNAL_ID,
                            format!("`{x}` is already used on line {first}"),
                            "external_id is unique within the file",
                        ));
                    } else {
                        seen.insert(x.to_owned(), line);
                    }
                }
            }
            let cert_type = match type_text.as_deref().map(str::trim) {
                None | Some("") => {
                    errors.push(err(
                        line,
                        id,
                        TYPE,
                        "missing".into(),
                        "every row names its certificate type",
                    ));
                    None
                }
                Some(t) => match t.parse::<CertType>() {
                    Ok(ct) => Some(ct),
                    Err(e) => {
                        errors.push(err(
                            line,
                            id,
                            TYPE,
                            e.to_string(),
                            "type is one of the seven certificate type keys",
                        ));
                        None
                    }
                },
            };
            let applicant = Applicant(fields);
            let mut org = None;
            let mut holder = None;
            if let Some(ct) = cert_type {
                let policy = self.policies.get(ct);
                match policy.validate(&applicant) {
                    Ok(v) => {
                        org = policy
                            .extensions
                            .uscc_field
                            .as_deref()
                            .and_then(|f| v.get(f))
                            .map(str::to_owned);
                        holder = holder_of(policy, &v.fields);
                    }
                    Err(es) => {
                        for e in es.0 {
                            let field = e.field.clone();
                            let problem = if e.label_zh.is_empty() {
                                e.problem
                            } else {
                                format!("{} ({})", e.problem, e.label_zh)
                            };
                            errors.push(err(line, id, &field, problem, &e.rule));
                        }
                    }
                }
                if ct == CertType::EnterpriseSecondary
                    && let Some(o) = &org
                    && !enterprise_orgs.contains(o)
                    && self
                        .store
                        .valid_for_org(CertType::Enterprise.key(), o, self.now())?
                        .is_empty()
                {
                    errors.push(err(
                        line,
                        id,
                        "uscc",
                        format!(
                            "no issued enterprise certificate for USCC {o}, and no enterprise row for it earlier in the file"
                        ),
                        "an enterprise-secondary (副锁) needs its enterprise certificate first",
                    ));
                }
                if ct == CertType::Enterprise
                    && let Some(o) = &org
                {
                    enterprise_orgs.insert(o.clone());
                }
            }
            // One holder per USBKEY: the register, and the rows planned before this one.
            let owner_of = |label: &str| -> Option<String> {
                planned_owner.get(label).cloned().or_else(|| {
                    present
                        .iter()
                        .find(|t| t.label == label)
                        .and_then(|t| self.store.token_holder(&t.serial).ok().flatten())
                        .map(|h| h.id)
                })
            };
            let fits = |label: &str| match (&holder, owner_of(label)) {
                (Some(h), Some(o)) => o == h.id,
                _ => true,
            };
            let (token, token_label, token_assigned) = match token {
                Some(t) => match resolve(&t) {
                    Ok(label) if !fits(&label) => {
                        errors.push(err(
                            line,
                            id,
                            TOKEN,
                            format!(
                                "USBKEY `{label}` belongs to {}, not to this row's holder {}",
                                owner_of(&label).unwrap_or_default(),
                                holder.as_ref().map(|h| h.id.as_str()).unwrap_or_default()
                            ),
                            "one holder per USBKEY",
                        ));
                        (t, label, false)
                    }
                    Ok(label) => (t, label, false),
                    Err(problem) => {
                        errors.push(err(
                            line,
                            id,
                            TOKEN,
                            problem,
                            "token names a present USBKEY (label or serial)",
                        ));
                        (t, String::new(), false)
                    }
                },
                None if !tokens.is_empty() => {
                    // The holder's own USBKEY from the list, else the first free one.
                    let own = round_robin.iter().find(|(_, l)| {
                        holder.is_some() && owner_of(l) == holder.as_ref().map(|h| h.id.clone())
                    });
                    let free = || round_robin.iter().find(|(_, l)| owner_of(l).is_none());
                    match own.or_else(free) {
                        Some((t, label)) => (t.clone(), label.clone(), true),
                        None => {
                            errors.push(err(
                                line,
                                id,
                                TOKEN,
                                format!(
                                    "every USBKEY in --tokens belongs to another holder than {}",
                                    holder.as_ref().map(|h| h.to_string()).unwrap_or_default()
                                ),
                                "one holder per USBKEY: list one more blank USBKEY in --tokens",
                            ));
                            (String::new(), String::new(), false)
                        }
                    }
                }
                None => {
                    errors.push(err(
                        line,
                        id,
                        TOKEN,
                        "missing".into(),
                        "every row names its token, or --tokens lists tokens to spread rows over",
                    ));
                    (String::new(), String::new(), false)
                }
            };
            if let Some(h) = &holder
                && !token_label.is_empty()
            {
                planned_owner
                    .entry(token_label.clone())
                    .or_insert_with(|| h.id.clone());
            }
            if errors.len() == before
                && let (Some(external_id), Some(cert_type)) = (external_id, cert_type)
            {
                rows.push(PlannedRow {
                    line,
                    external_id,
                    cert_type,
                    token,
                    token_label,
                    token_assigned,
                    seal: self.policies.get(cert_type).seal.is_some(),
                    applicant,
                });
            }
        }
        if f.rows.is_empty() && f.errors.is_empty() {
            errors.push(err(
                0,
                None,
                "(file)",
                "the file has no rows".into(),
                "a batch file holds at least one application",
            ));
        }
        errors.sort_by_key(|e| e.line);
        Ok(BatchPlan {
            file: path.to_path_buf(),
            format: f.format,
            sha256: f.sha256,
            rows,
            errors,
        })
    }
}
