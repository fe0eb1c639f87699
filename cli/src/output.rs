//! Printing: JSON for machines, aligned tables for people.

use serde::Serialize;

/// Prints `v` as pretty JSON on stdout.
pub fn json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a table with a header row; columns padded to their widest cell (by chars).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let width = |s: &str| {
        s.chars()
            .map(|c| if (c as u32) > 0x2e80 { 2 } else { 1 })
            .sum::<usize>()
    };
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(c));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i].saturating_sub(width(c)) + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

/// Prints `key: value` lines.
pub fn fields(pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k:<w$}  {v}");
    }
}

/// Writes exported bytes to `out`, or to stdout; with `--json`, reports where they went (or
/// carries the text) as one JSON object instead.
pub fn export(
    json_mode: bool,
    out: Option<&std::path::Path>,
    data: &[u8],
    what: &str,
) -> anyhow::Result<()> {
    use std::io::Write;
    match (out, json_mode) {
        (Some(p), _) => {
            std::fs::write(p, data)
                .map_err(|e| anyhow::anyhow!("writing {what} to {}: {e}", p.display()))?;
            if json_mode {
                json(&serde_json::json!({ "exported": what, "path": p, "bytes": data.len() }))?;
            }
        }
        (None, true) => {
            json(&serde_json::json!({ "exported": what, "pem": String::from_utf8_lossy(data) }))?
        }
        (None, false) => std::io::stdout().write_all(data)?,
    }
    Ok(())
}
