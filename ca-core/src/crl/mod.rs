//! CRLs: v2, signed by the issuing CA, with a CRL number that only goes up, reason codes and AKI,
//! published as DER and PEM.

use hljca_pki::crl_stream as stream;

use std::path::Path;

use serde::Serialize;
use time::Duration;

use hljca_token::Module;

use crate::engine::Authority;
use crate::error::{CoreError, Result};
use crate::home::write_file;
use crate::keys::Secrets;
use crate::store::crls;
use crate::time_fmt::{now, ts};
use crate::{Ca, audit};

/// What `crl generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CrlReport {
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: String,
    /// nextUpdate.
    pub next_update: String,
    /// Revoked entries.
    pub revoked: usize,
    /// DER file.
    pub der: std::path::PathBuf,
    /// PEM file.
    pub pem: std::path::PathBuf,
}

impl Ca {
    /// Generates and publishes the next CRL. Its number is allocated, the entries streamed from
    /// the database in serial order into the file, the digest signed on the token, and the CRL
    /// recorded (number, dates, hash, file) with the audit head anchored, in one IMMEDIATE
    /// transaction, so concurrent runs get distinct, increasing numbers; `issuing.crl` is only
    /// ever replaced by a newer CRL. Memory stays flat in the number of revoked certificates.
    pub fn generate_crl(
        &mut self,
        module: Option<&Module>,
        secrets: &Secrets,
    ) -> Result<CrlReport> {
        self.require(crate::operators::Role::CaAdmin, "crl generate")?;
        let keys = self.ca_keys(module, secrets)?;
        let auth = Authority::new(self, &keys)?;
        let aki = subject_key_id(auth.issuing_der())?;
        let op = self.actor.name();
        let dir = self.home.dir().join(&self.config.crl.publish_dir);
        // Published: readable by the web server that serves it, writable by the CA only.
        crate::home::create_dir_mode(&dir, 0o755)?;
        remove_abandoned(&dir);
        let pid = std::process::id();
        let staged = self.write("generate CRL", |tx| {
            let number = crls::next_number(tx)?;
            let this_update = after_last_crl(tx, crate::validity::ca(now(), 0).0)?;
            let next_update =
                this_update + Duration::hours(i64::from(self.config.crl.next_update_hours));
            let mut entries =
                stream::Entries::create(&dir.join(format!(".crl-{number}.{pid}.spool")))?;
            crls::for_each_revoked(tx, |r| {
                let serial = hex::decode(&r.serial).map_err(|e| CoreError::Parse {
                    what: format!("stored serial {}", r.serial),
                    reason: e.to_string(),
                })?;
                Ok::<_, CoreError>(entries.push(&serial, r.at.unwrap_or(this_update), r.reason)?)
            })?;
            let n_revoked = entries.count();
            let head = stream::Head {
                issuer: auth.issuing_subject(),
                aki: &aki,
                number,
                this_update,
                next_update,
            };
            // Staged under a temporary name: the file becomes issuing-N.crl only once the
            // database has recorded CRL N.
            let staged = dir.join(format!(".issuing-{number}.crl.{pid}"));
            let signer = auth.issuer().key();
            let written = stream::finish(entries, &head, &|d| signer.sign_digest(d), &staged)?;
            // The DER goes into the database with its record: any site's `serve` serves it.
            let mut file =
                std::fs::File::open(&staged).map_err(CoreError::io("reading", &staged))?;
            crate::store::blobs::put_from(tx, &written.sha256, written.size, &mut file)?;
            crls::insert(
                tx,
                number,
                this_update,
                next_update,
                n_revoked,
                &written.sha256,
                &file_name(number),
            )?;
            audit::append(
                tx,
                op,
                "crl.generate",
                &number.to_string(),
                &serde_json::json!({
                    "revoked": n_revoked, "next_update": ts(next_update),
                    "sha256": written.sha256, "size": written.size,
                }),
            )?;
            // The audit head is signed with every CRL (by the seal maker), so a log cut
            // later shows (`audit verify`).
            audit::anchor(tx, auth.seal_signer())?;
            Ok((number, this_update, next_update, n_revoked, staged))
        });
        let (number, this_update, next_update, n_revoked, staged) = match staged {
            Ok(v) => v,
            Err(e) => {
                remove_staged(&dir, pid);
                return Err(e);
            }
        };
        let der_path = dir.join(file_name(number));
        let pem_path = dir.join(format!("issuing-{number}.pem"));
        std::fs::rename(&staged, &der_path)
            .map_err(CoreError::io("renaming into place", &der_path))?;
        write_pem(&der_path, &pem_path)?;
        // Published: readable by the web server that serves them, whatever the umask (the
        // copies `publish_latest` makes keep these modes).
        for p in [&der_path, &pem_path] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))
                .map_err(CoreError::io("setting permissions on", p))?;
        }
        publish_latest(&dir, number, &der_path, &pem_path)?;
        Ok(CrlReport {
            number,
            this_update: ts(this_update),
            next_update: ts(next_update),
            revoked: n_revoked,
            der: der_path,
            pem: pem_path,
        })
    }

    /// Refuses to sign when the CA's clock is more than [`CLOCK_TOLERANCE`] behind the newest
    /// CRL (made here or at another site): certificates dated before it would be out of order.
    pub fn refuse_clock_behind(&self) -> Result<()> {
        let Some(last) = crls::latest(&self.store.conn)? else {
            return Ok(());
        };
        let now = self.now();
        match crate::time_fmt::parse_ts(&last.this_update) {
            Some(at) if now + CLOCK_TOLERANCE < at => Err(clock_behind(now, &last)),
            _ => Ok(()),
        }
    }

    /// The newest CRL's number, thisUpdate and nextUpdate.
    pub fn last_crl(&self) -> Result<Option<(i64, String, String)>> {
        Ok(self.store.last_crl()?)
    }
}

/// How far the clock may be behind the newest CRL (clocks of the sites' machines differ by a
/// little) before the CA refuses to sign.
pub const CLOCK_TOLERANCE: Duration = Duration::minutes(5);

/// The thisUpdate of the next CRL: `now`, or one second after the newest CRL's when the clock
/// is a little behind it (thisUpdate strictly increases); refused when the clock is more than
/// [`CLOCK_TOLERANCE`] behind it.
fn after_last_crl(
    tx: &crate::store::Tx<'_>,
    now: time::OffsetDateTime,
) -> Result<time::OffsetDateTime> {
    let Some(last) = crls::latest(tx)? else {
        return Ok(now);
    };
    let Some(last_at) = crate::time_fmt::parse_ts(&last.this_update) else {
        return Ok(now);
    };
    if now + CLOCK_TOLERANCE < last_at {
        return Err(clock_behind(now, &last));
    }
    if now > last_at {
        return Ok(now);
    }
    let next = last_at + Duration::seconds(1);
    // A CRL in the same second as the last one (times are whole seconds): wait for the next
    // second rather than date it ahead, which relying parties would call not yet valid.
    let wait = next - now;
    if wait <= Duration::seconds(2) {
        std::thread::sleep(std::time::Duration::try_from(wait).unwrap_or_default());
        return Ok(crate::validity::ca(crate::time_fmt::now(), 0).0.max(next));
    }
    tracing::warn!(
        behind = %wait,
        "the clock is behind the newest CRL (another site's clock?); this CRL is dated one second after it"
    );
    Ok(next)
}

fn clock_behind(now: time::OffsetDateTime, last: &crls::CrlRow) -> CoreError {
    CoreError::refuse(
        crate::Rule::ClockBehind,
        format!(
            "the clock says {} but CRL {} was made at {}: this machine's clock is behind; \
             set it right (NTP) before the CA signs anything",
            ts(now),
            last.number,
            last.this_update
        ),
    )
}

/// The file name of CRL `number` in the publish directory.
pub(crate) fn file_name(number: i64) -> String {
    format!("issuing-{number}.crl")
}

/// Writes the PEM copy of a DER file, streaming (48 bytes of DER make one 64-character line).
fn write_pem(der_path: &Path, pem_path: &Path) -> Result<()> {
    use base64::Engine;
    use std::io::{Read, Write};
    let mut r = std::io::BufReader::new(
        std::fs::File::open(der_path).map_err(CoreError::io("opening", der_path))?,
    );
    let tmp = pem_path.with_extension(format!("tmp{}", std::process::id()));
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).map_err(CoreError::io("creating", &tmp))?,
    );
    let io = |e| CoreError::io("writing", &tmp)(e);
    w.write_all(b"-----BEGIN X509 CRL-----\n").map_err(io)?;
    let mut buf = vec![0u8; 48 * 1024];
    loop {
        let mut n = 0;
        while n < buf.len() {
            let k = r
                .read(&mut buf[n..])
                .map_err(CoreError::io("reading", der_path))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        if n == 0 {
            break;
        }
        for line in buf[..n].chunks(48) {
            w.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(line)
                    .as_bytes(),
            )
            .map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
        }
        if n < buf.len() {
            break;
        }
    }
    w.write_all(b"-----END X509 CRL-----\n").map_err(io)?;
    let f = w.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, pem_path).map_err(CoreError::io("renaming into place", pem_path))
}

/// Replaces `issuing.crl`/`issuing.pem` with CRL `number` unless a newer one is already
/// there. Publishers take an exclusive lock on the directory's lock file first, so two runs
/// finishing in either order leave the newest CRL published.
fn publish_latest(dir: &Path, number: i64, der: &Path, pem: &Path) -> Result<()> {
    let lock_path = dir.join(".publish.lock");
    use std::os::unix::fs::OpenOptionsExt;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(CoreError::io("opening", &lock_path))?;
    lock.lock().map_err(CoreError::io("locking", &lock_path))?;
    let latest = dir.join("issuing.crl");
    let current = crl_number_of_file(&latest);
    if current.is_none_or(|c| c < number) {
        replace_with_copy(der, &latest)?;
        replace_with_copy(pem, &dir.join("issuing.pem"))?;
        write_file(
            &number_marker(&latest),
            number.to_string().as_bytes(),
            0o644,
        )?;
    }
    Ok(())
}

/// Copies `from` over `to` atomically (a temporary file renamed into place).
fn replace_with_copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(from, &tmp).map_err(CoreError::io("copying to", &tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(CoreError::io("syncing", &tmp))?;
    std::fs::rename(&tmp, to).map_err(CoreError::io("renaming into place", to))
}

/// The number of the published CRL, from the marker beside it (a CRL of a million entries is
/// not parsed to learn its number). No marker (a home from before streamed CRLs): any new CRL
/// is newer, since numbers only go up.
fn crl_number_of_file(latest: &Path) -> Option<i64> {
    std::fs::read_to_string(number_marker(latest))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn number_marker(latest: &Path) -> std::path::PathBuf {
    latest.with_extension("crl.number")
}

/// Removes the spool and staged files of CRL runs whose process is gone (killed mid-run).
fn remove_abandoned(dir: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for e in list.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = if name.starts_with(".crl-") {
            name.strip_suffix(".spool")
                .and_then(|n| n.rsplit('.').next())
                .map(str::to_owned)
        } else if name.starts_with(".issuing-") {
            name.rsplit('.').next().map(str::to_owned)
        } else {
            None
        };
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes this process's spool and staged files after a failed CRL run.
fn remove_staged(dir: &Path, pid: u32) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    let spool = format!(".{pid}.spool");
    let staged = format!(".{pid}");
    for e in list.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.starts_with(".crl-") && name.ends_with(&spool))
            || (name.starts_with(".issuing-") && name.ends_with(&staged))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The subjectKeyIdentifier of a CA certificate.
fn subject_key_id(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CoreError::Parse {
        what: "issuing CA certificate".into(),
        reason: e.to_string(),
    })?;
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .ok_or_else(|| CoreError::Parse {
            what: "issuing CA certificate".into(),
            reason: "no subjectKeyIdentifier".into(),
        })
}
