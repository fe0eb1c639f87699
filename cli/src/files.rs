//! Reading the files a command line names, each with a size bound checked before the whole file
//! is in memory.

use std::path::Path;

use crate::Failure;

/// Largest PIN file (1 KiB).
pub const MAX_PIN_FILE: u64 = 1024;
/// Largest applicant JSON file (1 MiB).
pub const MAX_APPLICANT_JSON: u64 = 1024 * 1024;
/// Largest PKCS#10 request (64 KiB).
pub const MAX_CSR: u64 = 64 * 1024;
/// Largest certificate file (a PEM or DER certificate, 1 MiB).
pub const MAX_CERTIFICATE: u64 = 1024 * 1024;
/// Largest electronic seal file (4 MiB: a picture of at most 512 KiB, certificates, signature).
pub const MAX_SEAL_FILE: u64 = 4 * 1024 * 1024;

/// Reads all of `path` (`what` names it in errors, e.g. "applicant file"), refusing a file
/// larger than `limit` bytes as bad input (exit 2) with the file and the limit named.
///
/// The bound holds while reading (at most `limit + 1` bytes are read), so a pipe, a device or a
/// file that grows meanwhile cannot get past it; a regular file is refused by its size first.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, Failure> {
    hljca_core::home::read_limited(path, limit, what).map_err(|e| match e {
        e if e.is(hljca_core::Rule::FileTooLarge) => Failure::input(anyhow::anyhow!(
            "{what} {} is larger than the limit of {} ({limit} bytes)",
            path.display(),
            human(limit)
        )),
        other => Failure::input(anyhow::anyhow!(
            "reading {what} {}: {other}",
            path.display()
        )),
    })
}

/// Checks that `path` is a regular file of at most `limit` bytes, for a file another crate
/// reads whole later; the error names the file and the limit. (Pipes and devices are refused:
/// their size is not known before reading.)
pub fn require_within(path: &Path, limit: u64, what: &str) -> Result<(), Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::input(anyhow::anyhow!("reading {what} {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Failure::input(anyhow::anyhow!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > limit {
        return Err(Failure::input(anyhow::anyhow!(
            "{what} {} is larger than the limit of {} ({limit} bytes)",
            path.display(),
            human(limit)
        )));
    }
    Ok(())
}

/// [`read_limited`], as UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64, what: &str) -> Result<String, Failure> {
    String::from_utf8(read_limited(path, limit, what)?).map_err(|e| {
        Failure::input(anyhow::anyhow!(
            "{what} {} is not UTF-8 text: {e}",
            path.display()
        ))
    })
}

/// `1 KiB`, `64 KiB`, `10 MiB`: a limit for people.
fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, vec![b'1'; 1025]).unwrap();
        let e = read_limited(&p, MAX_PIN_FILE, "PIN file").unwrap_err();
        assert_eq!(e.code, 2);
        let msg = e.error.to_string();
        assert!(msg.contains("PIN file") && msg.contains("pin"), "{msg}");
        assert!(msg.contains("1 KiB (1024 bytes)"), "{msg}");
        std::fs::write(&p, vec![b'1'; 1024]).unwrap();
        assert_eq!(
            read_limited(&p, MAX_PIN_FILE, "PIN file").unwrap().len(),
            1024
        );
        // A device without a size is bounded while reading.
        let e = read_limited(Path::new("/dev/zero"), 10, "seal file").unwrap_err();
        assert!(e.error.to_string().contains("10 bytes"), "{}", e.error);
        let e = read_limited(&dir.path().join("none"), 10, "CSR").unwrap_err();
        assert!(
            e.error.to_string().starts_with("reading CSR "),
            "{}",
            e.error
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(64 * 1024), "64 KiB");
        assert_eq!(human(10 * 1024 * 1024), "10 MiB");
        assert_eq!(human(512 * 1024), "512 KiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
