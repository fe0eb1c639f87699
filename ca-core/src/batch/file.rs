//! Reading a batch file: JSON Lines or CSV (with a header row), chosen by extension.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

/// One problem with one row of a batch file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Line number in the file (1-based; 0 for a problem with the command line itself).
    pub line: u64,
    /// The row's external id, when it has one.
    pub external_id: Option<String>,
    /// The field concerned (`external_id`, `type`, `token`, or an applicant field).
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// The rule broken.
    pub rule: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "command line")?;
        } else {
            write!(f, "line {}", self.line)?;
        }
        if let Some(id) = &self.external_id {
            write!(f, " ({id})")?;
        }
        write!(
            f,
            ": field `{}`: {} [rule: {}]",
            self.field, self.problem, self.rule
        )
    }
}

/// A row as read, before validation: its line and its fields (all strings).
#[derive(Debug, Clone)]
pub struct RawRow {
    /// Line number (1-based).
    pub line: u64,
    /// Field name to value; empty CSV cells are left out.
    pub fields: BTreeMap<String, String>,
}

/// The format of a batch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object per line (`.jsonl`, `.json`).
    Jsonl,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
}

impl FileFormat {
    /// The format named by the file's extension.
    pub fn of(path: &Path) -> Result<FileFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "jsonl" | "json" | "ndjson" => Ok(FileFormat::Jsonl),
            "csv" => Ok(FileFormat::Csv),
            _ => Err(CoreError::Parse {
                what: path.display().to_string(),
                reason: "a batch file must end in .jsonl, .json or .csv".into(),
            }),
        }
    }
}

/// A batch file read into rows, with the rows that could not even be read.
#[derive(Debug, Clone)]
pub struct BatchFile {
    /// Its format.
    pub format: FileFormat,
    /// SHA-256 of the file's bytes (hex).
    pub sha256: String,
    /// Rows that parsed.
    pub rows: Vec<RawRow>,
    /// Rows that did not.
    pub errors: Vec<RowError>,
}

/// Reads a batch file.
pub fn read(path: &Path) -> Result<BatchFile> {
    let format = FileFormat::of(path)?;
    let bytes = std::fs::read(path).map_err(CoreError::io("reading batch file", path))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let text = String::from_utf8(bytes).map_err(|e| CoreError::Parse {
        what: path.display().to_string(),
        reason: format!("not UTF-8 text: {e}"),
    })?;
    let (rows, errors) = match format {
        FileFormat::Jsonl => read_jsonl(&text),
        FileFormat::Csv => read_csv(&text),
    };
    Ok(BatchFile {
        format,
        sha256,
        rows,
        errors,
    })
}

fn line_error(line: u64, problem: String, rule: &str) -> RowError {
    RowError {
        line,
        external_id: None,
        field: "(row)".into(),
        problem,
        rule: rule.into(),
    }
}

fn read_jsonl(text: &str) -> (Vec<RawRow>, Vec<RowError>) {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(serde_json::Value::Object(map)) => {
                let mut fields = BTreeMap::new();
                let mut bad = false;
                for (k, v) in map {
                    match v {
                        serde_json::Value::String(s) => {
                            fields.insert(k, s);
                        }
                        serde_json::Value::Null => {}
                        other => {
                            bad = true;
                            errors.push(RowError {
                                line,
                                external_id: None,
                                field: k,
                                problem: format!("value is {other}, not a string"),
                                rule: "every value is a JSON string".into(),
                            });
                        }
                    }
                }
                if !bad {
                    rows.push(RawRow { line, fields });
                }
            }
            Ok(_) => errors.push(line_error(
                line,
                "not a JSON object".into(),
                "one JSON object per line",
            )),
            Err(e) => errors.push(line_error(
                line,
                format!("invalid JSON: {e}"),
                "one JSON object per line",
            )),
        }
    }
    (rows, errors)
}

fn read_csv(text: &str) -> (Vec<RawRow>, Vec<RowError>) {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(line_error(
                1,
                format!("unreadable header row: {e}"),
                "a CSV file starts with a header row",
            ));
            return (rows, errors);
        }
    };
    for (i, rec) in reader.records().enumerate() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
                let fields = headers
                    .iter()
                    .zip(r.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                rows.push(RawRow { line, fields });
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
                errors.push(line_error(
                    line,
                    format!("unreadable CSV record: {e}"),
                    "every record has as many cells as the header row",
                ));
            }
        }
    }
    (rows, errors)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn jsonl_lines_and_errors() {
        let (rows, errors) =
            read_jsonl("{\"a\":\"1\"}\n\n{\"b\":2}\nnot json\n[1]\n{\"c\":\"3\",\"d\":null}\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 1);
        assert_eq!(rows[1].line, 6);
        assert_eq!(rows[1].fields.len(), 1);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
    }

    #[test]
    fn csv_lines_and_empty_cells() {
        let (rows, errors) = read_csv("external_id,type,x\nA,medical,\nB,expert,y\n");
        assert!(errors.is_empty());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 3);
        assert!(!rows[0].fields.contains_key("x"));
        assert_eq!(rows[1].fields["x"], "y");
    }
}
