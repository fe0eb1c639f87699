//! Reading a batch file: JSON Lines or CSV (with a header row), chosen by extension.

use hljca_core::Rule;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use hljca_policies::Applicant;
use serde::Serialize;
use sha2::{Digest, Sha256};

use hljca_core::{CoreError, Result};

/// Largest batch file read, in bytes (256 MiB); split bigger batches into several files.
pub const MAX_BATCH_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// What a batch problem concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorScope {
    /// One row (application) of the file.
    Row,
    /// The file as a whole: its header, its quoting, no rows at all.
    File,
    /// The command line (e.g. a `--tokens` entry).
    CommandLine,
}

/// One problem with one row of a batch file (or with the file, or the command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// What the problem concerns.
    pub scope: ErrorScope,
    /// Line number in the file (1-based; 0 when no line is concerned: the command line, or the
    /// file as a whole).
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

impl RowError {
    /// True for a problem with one row (not with the file or the command line).
    pub fn is_row(&self) -> bool {
        self.scope == ErrorScope::Row
    }

    /// True for a problem with the command line (e.g. a `--tokens` entry).
    pub fn is_command_line(&self) -> bool {
        self.scope == ErrorScope::CommandLine
    }

    /// A problem with the file as a whole (at `line`, or 0 for none in particular).
    pub fn file(line: u64, problem: String, rule: &str) -> RowError {
        RowError {
            scope: ErrorScope::File,
            line,
            external_id: None,
            field: "(file)".into(),
            problem,
            rule: rule.into(),
        }
    }
}

impl std::fmt::Display for RowError {
    /// `line 3 (E-1): field `uscc`: … [rule: …]`, `file, line 7: … [rule: …]`,
    /// `file: … [rule: …]` or `command line: option `--tokens`: … [rule: …]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope {
            ErrorScope::CommandLine => write!(f, "command line: option `{}`", self.field)?,
            ErrorScope::File if self.line == 0 => write!(f, "file")?,
            ErrorScope::File => write!(f, "file, line {}", self.line)?,
            ErrorScope::Row => {
                write!(f, "line {}", self.line)?;
                if let Some(id) = &self.external_id {
                    write!(f, " ({id})")?;
                }
                write!(f, ": field `{}`", self.field)?;
            }
        }
        write!(f, ": {} [rule: {}]", self.problem, self.rule)
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

/// Reads a batch file (at most `MAX_BATCH_FILE_BYTES`, 256 MiB).
pub fn read(path: &Path) -> Result<BatchFile> {
    let format = FileFormat::of(path)?;
    let bytes = read_limited(path, MAX_BATCH_FILE_BYTES)?;
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

/// Reads a whole file of at most `limit` bytes; a bigger one is bad input naming the file and
/// the limit. The limit is checked while reading, so a pipe or a growing file cannot get past
/// it either.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    hljca_core::home::read_limited(path, limit, "batch file").map_err(|e| match e {
        CoreError::Refused(r) if r.rule == Rule::FileTooLarge => CoreError::refuse_on(
            Rule::FileTooLarge,
            "file",
            format!(
                "batch file {} is larger than the limit of {} MiB ({limit} bytes); split it into \
             smaller files",
                path.display(),
                limit / (1024 * 1024)
            ),
        ),
        CoreError::Io { path, source, .. } => CoreError::Io {
            action: "reading batch file",
            path,
            source,
        },
        other => other,
    })
}

fn line_error(line: u64, problem: String, rule: &str) -> RowError {
    RowError {
        scope: ErrorScope::Row,
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
                if let Some(key) = Applicant::duplicate_key(trimmed) {
                    errors.push(RowError {
                        scope: ErrorScope::Row,
                        line,
                        external_id: None,
                        field: key,
                        problem: "given more than once in this row".into(),
                        rule: "each field once per row".into(),
                    });
                    continue;
                }
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
                                scope: ErrorScope::Row,
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
    // The csv reader takes a quote that is never closed as a field running to the end of the
    // file, silently: find it first, and keep only the records before the one it swallowed.
    let unclosed = unclosed_quote(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(RowError::file(
                1,
                format!("unreadable header row: {e}"),
                "a CSV file starts with a header row",
            ));
            return (rows, errors);
        }
    };
    if let Some(q) = unclosed {
        errors.push(RowError::file(
            q.quote_line,
            format!(
                "the quoted field opened on line {} is never closed, so everything from there \
                 to the end of the file would be read as one field",
                q.quote_line
            ),
            "every quoted CSV field ends with a closing quote (a quote inside a field is \
             written twice: \"\")",
        ));
    }
    let header_line = headers.position().map_or(1, csv::Position::line);
    if unclosed.is_some_and(|q| q.record_line <= header_line) {
        return (rows, errors);
    }
    let before = errors.len();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in headers.iter().enumerate() {
        if name.is_empty() {
            errors.push(RowError::file(
                header_line,
                format!("column {} of the header has no name", i + 1),
                "every header column names a field",
            ));
        } else if let Some(first) = first_seen.insert(name, i) {
            errors.push(RowError::file(
                header_line,
                format!(
                    "column `{name}` is in the header twice (columns {} and {})",
                    first + 1,
                    i + 1
                ),
                "each header column names a different field",
            ));
        }
    }
    if errors.len() > before {
        return (rows, errors);
    }
    for (i, rec) in reader.records().enumerate() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
                if unclosed.is_some_and(|q| line >= q.record_line) {
                    break;
                }
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
                if unclosed.is_some_and(|q| line >= q.record_line) {
                    break;
                }
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

/// Where a CSV quote that is never closed was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UnclosedQuote {
    /// The line of the opening quote.
    quote_line: u64,
    /// The line on which the record holding it starts.
    record_line: u64,
}

/// Finds a quoted field that is still open at the end of `text`, reading quotes as the csv
/// crate does (RFC 4180): a quote opens a quoted field only at the start of a field, `""` inside
/// one is a literal quote, and a closing quote may be followed by more unquoted text.
fn unclosed_quote(text: &str) -> Option<UnclosedQuote> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        StartField,
        InField,
        InQuoted,
        QuoteInQuoted,
    }
    let mut state = State::StartField;
    let mut line = 1u64;
    let mut record_line = 1u64;
    let mut quote_line = 1u64;
    let mut at_record_start = true;
    for b in text.bytes() {
        let term = b == b'\n' || b == b'\r';
        if at_record_start && !term {
            record_line = line;
            at_record_start = false;
        }
        state = match (state, b) {
            (State::StartField, b'"') => {
                quote_line = line;
                State::InQuoted
            }
            (State::InQuoted, b'"') => State::QuoteInQuoted,
            (State::InQuoted, _) => State::InQuoted,
            (State::QuoteInQuoted, b'"') => State::InQuoted,
            (_, b',') => State::StartField,
            (_, _) if term => {
                at_record_start = true;
                State::StartField
            }
            _ => State::InField,
        };
        if b == b'\n' {
            line += 1;
        }
    }
    (state == State::InQuoted).then_some(UnclosedQuote {
        quote_line,
        record_line,
    })
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

    #[test]
    fn csv_unclosed_quote_is_refused_with_its_line() {
        // The quote on line 3 is never closed: the csv crate alone would read lines 3-5 as
        // one record whose last cell holds the rest of the file.
        let text = "external_id,type,x\nA,medical,a\nB,expert,\"b\nC,medical,c\nD,expert,d\n";
        let (rows, errors) = read_csv(text);
        assert_eq!(
            rows.len(),
            1,
            "only the rows before the swallowed record: {rows:?}"
        );
        assert_eq!(rows[0].line, 2);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 3);
        assert_eq!(errors[0].scope, ErrorScope::File);
        assert!(errors[0].problem.contains("never closed"), "{}", errors[0]);
        assert!(
            errors[0].to_string().starts_with("file, line 3: "),
            "{}",
            errors[0]
        );
        // Closed quotes, doubled quotes and quoted line breaks are fine.
        let ok = "external_id,type,x\nA,medical,\"a \"\"q\"\" b\"\nB,expert,\"two\nlines\"\nC,medical,x\"y\n";
        let (rows, errors) = read_csv(ok);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].fields["x"], "a \"q\" b");
        assert_eq!(rows[2].line, 5);
        assert_eq!(rows[2].fields["x"], "x\"y");
        // An unclosed quote in the header.
        let (rows, errors) = read_csv("external_id,\"type,x\nA,medical,a\n");
        assert!(rows.is_empty());
        assert_eq!(errors[0].line, 1);
    }

    #[test]
    fn unclosed_quote_scanner() {
        assert_eq!(unclosed_quote("a,b\n1,2\n"), None);
        assert_eq!(
            unclosed_quote("a,b\r\n1,\"2\r\n"),
            Some(UnclosedQuote {
                quote_line: 2,
                record_line: 2
            })
        );
        assert_eq!(
            unclosed_quote("a,b\n\"x\ny\",\"z\n"),
            Some(UnclosedQuote {
                quote_line: 3,
                record_line: 2
            })
        );
        assert_eq!(unclosed_quote("a,b\n1,\"\"\n"), None);
        assert_eq!(
            unclosed_quote("a,b\n1, \"x\n"),
            None,
            "a quote after a space is literal"
        );
    }

    #[test]
    fn csv_duplicate_and_empty_header_columns_are_refused() {
        let (rows, errors) = read_csv("external_id,type,city,city\nA,medical,x,y\n");
        assert!(rows.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 1);
        assert_eq!(errors[0].scope, ErrorScope::File);
        assert!(
            errors[0]
                .problem
                .contains("`city` is in the header twice (columns 3 and 4)"),
            "{}",
            errors[0]
        );
        // Trimmed names compare equal.
        let (_, errors) = read_csv("external_id, type,type \nA,medical,x\n");
        assert!(errors[0].problem.contains("`type`"), "{errors:?}");
        let (_, errors) = read_csv("external_id,type,\nA,medical,x\n");
        assert!(
            errors[0]
                .problem
                .contains("column 3 of the header has no name"),
            "{errors:?}"
        );
    }

    #[test]
    fn jsonl_duplicate_keys_are_refused() {
        let (rows, errors) = read_jsonl("{\"a\":\"1\",\"a\":\"2\"}\n{\"b\":\"1\"}\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 1);
        assert_eq!(errors[0].field, "a");
        assert!(errors[0].is_row());
    }

    #[test]
    fn batch_file_size_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.jsonl");
        std::fs::write(&p, vec![b' '; 101]).unwrap();
        let e = read_limited(&p, 100).unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("b.jsonl"), "{e}");
        assert!(e.to_string().contains("100 bytes"), "{e}");
        assert_eq!(read_limited(&p, 101).unwrap().len(), 101);
    }

    #[test]
    fn error_wording_by_scope() {
        let f = RowError::file(0, "the file has no rows".into(), "r");
        assert_eq!(f.to_string(), "file: the file has no rows [rule: r]");
        let c = RowError {
            scope: ErrorScope::CommandLine,
            line: 0,
            external_id: None,
            field: "--tokens".into(),
            problem: "p".into(),
            rule: "r".into(),
        };
        assert_eq!(
            c.to_string(),
            "command line: option `--tokens`: p [rule: r]"
        );
        let r = RowError {
            scope: ErrorScope::Row,
            line: 4,
            external_id: Some("E-1".into()),
            field: "uscc".into(),
            ..c
        };
        assert_eq!(r.to_string(), "line 4 (E-1): field `uscc`: p [rule: r]");
    }
}
