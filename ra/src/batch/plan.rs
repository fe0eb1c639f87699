//! Reading and validating a batch file as a whole, before any token is touched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use hljca_policies::{Applicant, CertType};
use hljca_token::{Module, TokenInfo};
use serde::Serialize;

use super::csr::{CSR_TOKEN_LABEL, CheckedCsr, read_row_csr, read_row_csrs};
use super::file::{self, ErrorScope, FileFormat, RowError};
use super::{CSR, EXTERNAL_ID, TOKEN, TYPE};
use hljca_core::Ca;
use hljca_core::Result;
use hljca_core::eligibility::{Holder, holder_of};
use hljca_core::store::vocab::one_holder;
use hljca_core::{Class, CoreError, Refusal};

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
    /// The row's PKCS#10 request (`csr` field, relative to the batch file): issued from it,
    /// onto no token.
    pub csr: Option<PathBuf>,
    /// That request, checked (signature, key algorithm) when the file was planned.
    #[serde(skip)]
    pub checked_csr: Option<CheckedCsr>,
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

impl BatchPlan {
    /// How many rows have at least one problem.
    pub fn bad_rows(&self) -> usize {
        let lines: HashSet<u64> = self
            .errors
            .iter()
            .filter(|e| e.is_row())
            .map(|e| e.line)
            .collect();
        lines.len()
    }

    /// How many problems concern the file as a whole (its header, its quoting, no rows).
    pub fn file_problems(&self) -> usize {
        self.errors
            .iter()
            .filter(|e| !e.is_row() && !e.is_command_line())
            .count()
    }

    /// How many problems concern the command line (e.g. `--tokens` entries).
    pub fn command_line_problems(&self) -> usize {
        self.errors.iter().filter(|e| e.is_command_line()).count()
    }
}

/// The rule an external id keeps to.
const EXTERNAL_ID_RULE: &str = "external_id is 1-64 characters of A-Z a-z 0-9 . _ : -";
/// Longest external id, in characters.
const MAX_EXTERNAL_ID: usize = 64;

/// Why a (trimmed, non-empty) external id breaks [`EXTERNAL_ID_RULE`], if it does.
fn external_id_problem(id: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    let mut preview: String = id.chars().take(24).flat_map(char::escape_debug).collect();
    if id.chars().count() > 24 {
        preview.push('…');
    }
    if let Some((i, c)) = id.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        let shown = if c.is_ascii_graphic() {
            format!("'{c}'")
        } else {
            format!("U+{:04X}", u32::from(c))
        };
        return Some(format!(
            "`{preview}`: character {shown} at position {} is not allowed",
            i + 1
        ));
    }
    let n = id.chars().count();
    (n > MAX_EXTERNAL_ID)
        .then(|| format!("`{preview}` has {n} characters; at most {MAX_EXTERNAL_ID} are allowed"))
}

/// A refusal of a rule as a value (the plan reports it on its row); any other error, and the
/// CA's own trouble, stop the plan.
fn refusal(r: Result<()>) -> Result<Option<Refusal>> {
    match r {
        Ok(()) => Ok(None),
        Err(CoreError::Refused(r)) if r.class() != Class::Internal => Ok(Some(r)),
        Err(e) => Err(e),
    }
}

fn token_matches(t: &TokenInfo, sel: &str) -> bool {
    t.initialized && (t.label == sel || t.serial == sel)
}

/// Planning a batch file on [`Ca`] before any token is touched.
pub trait BatchPlanning {
    /// Reads and validates a batch file without touching any token: missing or duplicate
    /// external ids, unknown types, applicant data against each type's policy, the target
    /// tokens among those present (`tokens` is the `--tokens` round-robin list for rows that
    /// name none), and the enterprise certificate an enterprise-secondary row needs.
    fn batch_plan(&self, module: &Module, path: &Path, tokens: &[String]) -> Result<BatchPlan>;
}

impl BatchPlanning for Ca {
    fn batch_plan(&self, module: &Module, path: &Path, tokens: &[String]) -> Result<BatchPlan> {
        let f = file::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        // The rows' requests, read and checked on every core up front.
        let csr_jobs: Vec<(u64, String, &hljca_policies::Policy)> = f
            .rows
            .iter()
            .filter_map(|r| {
                let name = r
                    .fields
                    .get(CSR)
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())?;
                let ct = r.fields.get(TYPE)?.trim().parse::<CertType>().ok()?;
                Some((r.line, name.to_owned(), self.policies().get(ct)))
            })
            .collect();
        let mut csr_checks = read_row_csrs(base, &csr_jobs);
        let present = module.tokens()?;
        let ca_token_serial = self.config().ca.token_serial.clone();
        let mut errors = f.errors.clone();
        let err =
            |line: u64, id: Option<&str>, field: &str, problem: String, rule: &str| RowError {
                scope: ErrorScope::Row,
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
                Err(problem) => errors.push(RowError {
                    scope: ErrorScope::CommandLine,
                    ..err(
                        0,
                        None,
                        "--tokens",
                        problem,
                        "every --tokens entry is a present token (label or serial)",
                    )
                }),
            }
        }
        let mut seen: HashMap<String, u64> = HashMap::new();
        // USCCs of enterprise rows earlier in the file (an enterprise-secondary needs one).
        let mut enterprise_orgs: HashSet<String> = HashSet::new();
        let mut rows = Vec::new();
        // Token label → the holder rows planned so far put on it.
        let mut planned_owner: HashMap<String, Holder> = HashMap::new();
        // Token label → its serial and the holder the register binds it to, read once (a
        // database error stops the plan: a USBKEY is never taken for blank because its owner
        // could not be read).
        let mut registered: HashMap<String, (String, Option<Holder>)> = HashMap::new();
        for t in &present {
            registered.insert(
                t.label.clone(),
                (t.serial.clone(), self.store().token_holder(&t.serial)?),
            );
        }
        for raw in &f.rows {
            let mut fields: BTreeMap<String, String> = raw.fields.clone();
            let line = raw.line;
            let given_id = fields
                .remove(EXTERNAL_ID)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            let id_problem = given_id.as_deref().and_then(external_id_problem);
            // An external id that breaks the rule is not echoed as the row's id.
            let external_id = given_id.filter(|_| id_problem.is_none());
            let id = external_id.as_deref();
            let type_text = fields.remove(TYPE);
            let token = fields
                .remove(TOKEN)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            let csr_name = fields
                .remove(CSR)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            let before = errors.len();
            match id {
                None if id_problem.is_some() => errors.push(err(
                    line,
                    None,
                    EXTERNAL_ID,
                    id_problem.unwrap_or_default(),
                    EXTERNAL_ID_RULE,
                )),
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
                let policy = self.policies().get(ct);
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
                    && org.is_some()
                    && let Some(r) = refusal(
                        self.secondary_lock(org.as_deref(), |o| enterprise_orgs.contains(o)),
                    )?
                {
                    errors.push(err(
                        line,
                        id,
                        "uscc",
                        format!("{r}; no enterprise row for it earlier in the file either"),
                        "an enterprise-secondary (副锁) needs its enterprise certificate first",
                    ));
                }
                if ct == CertType::Enterprise
                    && let Some(o) = &org
                {
                    enterprise_orgs.insert(o.clone());
                }
            }
            // One holder per USBKEY: the rows planned before this one, else the register.
            let owner_of = |label: &str| -> Option<Holder> {
                planned_owner
                    .get(label)
                    .or_else(|| registered.get(label).and_then(|(_, h)| h.as_ref()))
                    .cloned()
            };
            // Why the USBKEY `label` cannot take this row's holder (the one rule), if it cannot.
            let misfit = |label: &str| -> Option<String> {
                let h = holder.as_ref()?;
                let serial = registered.get(label).map_or(label, |(s, _)| s.as_str());
                one_holder(serial, owner_of(label).as_ref(), h)
                    .err()
                    .map(|r| r.message)
            };
            let mut checked_csr = None;
            if let (Some(name), Some(ct)) = (&csr_name, cert_type) {
                let checked = csr_checks
                    .remove(&line)
                    .unwrap_or_else(|| read_row_csr(base, name, self.policies().get(ct)));
                match checked {
                    Ok(c) => checked_csr = Some(c),
                    Err(problem) => errors.push(err(
                        line,
                        id,
                        CSR,
                        problem,
                        "csr names a PKCS#10 request (PEM or DER, relative to the batch file) \
                         signed by its key, with the policy's key algorithm",
                    )),
                }
            }
            let (token, token_label, token_assigned) = if csr_name.is_some() {
                if let Some(t) = token {
                    errors.push(err(
                        line,
                        id,
                        TOKEN,
                        format!("`{t}` is given with a csr"),
                        "a row with a csr is issued from the request, onto no token",
                    ));
                }
                (String::new(), CSR_TOKEN_LABEL.to_owned(), false)
            } else {
                match token {
                    Some(t) => match resolve(&t) {
                        Ok(label) if misfit(&label).is_some() => {
                            let why = misfit(&label).unwrap_or_default();
                            errors.push(err(
                                line,
                                id,
                                TOKEN,
                                format!("USBKEY `{label}`: {why}"),
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
                            holder.is_some() && owner_of(l).is_some() && misfit(l).is_none()
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
                }
            };
            if let Some(h) = &holder
                && csr_name.is_none()
                && !token_label.is_empty()
            {
                planned_owner
                    .entry(token_label.clone())
                    .or_insert_with(|| h.clone());
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
                    seal: self.policies().get(cert_type).seal.is_some() && checked_csr.is_none(),
                    csr: csr_name.map(|n| base.join(n)),
                    checked_csr,
                    applicant,
                });
            }
        }
        if f.rows.is_empty() && f.errors.is_empty() {
            errors.push(RowError::file(
                0,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_id_rule() {
        for ok in ["E-1", "a.b_c:d-0", &"x".repeat(64)] {
            assert_eq!(external_id_problem(ok), None, "{ok}");
        }
        let e = external_id_problem(&"x".repeat(65)).unwrap();
        assert!(e.contains("65 characters; at most 64"), "{e}");
        assert!(e.contains('…'), "a long id is shown shortened: {e}");
        let e = external_id_problem("E 1").unwrap();
        assert!(e.contains("U+0020 at position 2"), "{e}");
        let e = external_id_problem("E/1").unwrap();
        assert!(e.contains("'/' at position 2"), "{e}");
        let e = external_id_problem("E-1\u{202e}").unwrap();
        assert!(e.contains("U+202E") && e.contains("\\u{202e}"), "{e}");
        assert!(external_id_problem("编号1").is_some());
    }
}
