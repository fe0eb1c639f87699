//! A throwaway PostgreSQL cluster for tests (the store's unit tests and the end-to-end tests
//! include this file): `initdb` and `pg_ctl` in a temporary directory, listening on a Unix
//! socket only, run as the `postgres` user when the tests run as root. One cluster per test
//! process, started on first use; a watchdog stops it and removes its directory when the
//! process exits. Each test takes a fresh database of its own ([`database`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The running cluster.
pub struct Cluster {
    /// The socket directory.
    pub sock: PathBuf,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(b) = found.pop() {
        return b;
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match which.as_deref().and_then(Path::parent) {
        Some(b) => b.to_path_buf(),
        None => panic!("PostgreSQL is not installed (no initdb): run ./softhsm-setup.sh first"),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `tool args…`, as the `postgres` user when running as root (PostgreSQL refuses root).
fn as_postgres(tool: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool).args(args);
        c
    } else {
        let mut c = Command::new(tool);
        c.args(args);
        c
    }
}

fn run(mut c: Command, what: &str) {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The cluster of this test process (started on first use).
#[allow(clippy::zombie_processes)] // the watchdog outlives this process by design
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("hljca-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        let sock = dir.join("sock");
        for d in [&dir, &data, &sock] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        }
        if is_root() {
            run(
                {
                    let mut c = Command::new("chmod");
                    c.arg("755").arg(&dir);
                    c
                },
                "chmod",
            );
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres").arg(&data).arg(&sock);
                    c
                },
                "chown",
            );
        }
        let (d, s) = (data.display().to_string(), sock.display().to_string());
        run(
            as_postgres(
                &bin.join("initdb"),
                &[
                    "-D", &d, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let log = format!("{d}/server.log");
        let opts = format!("-k {s} -c listen_addresses= -c fsync=off -c max_connections=200");
        run(
            as_postgres(
                &bin.join("pg_ctl"),
                &["-D", &d, "-o", &opts, "-l", &log, "-w", "start"],
            ),
            "pg_ctl start",
        );
        // The watchdog: when this test process is gone, stop the cluster and remove it.
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- {} -D {d} stop -m immediate",
                bin.join("pg_ctl").display()
            )
        } else {
            format!("{} -D {d} stop -m immediate", bin.join("pg_ctl").display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .or_else(|_| {
                Command::new("sh")
                    .args(["-c", &script])
                    .stdin(std::process::Stdio::null())
                    .spawn()
            })
            .expect("start the cluster watchdog");
        Cluster { sock, bin }
    })
}

impl Cluster {
    /// Runs `sql` with psql in database `db`; returns its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.sock)
            .args([
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@/{name}?host={}", self.sock.display())
    }
}

/// A fresh, empty database in the cluster: (its name, its URL).
pub fn database() -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let c = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    c.psql("postgres", &format!("CREATE DATABASE {name}"));
    let url = c.url(&name);
    (name, url)
}

/// True when this run asks for the PostgreSQL tests (`HLJCA_PG_TESTS=1`, set by
/// `scripts/test.sh`, or a PostgreSQL run `HLJCA_TEST_DB=postgres`): a plain `cargo test
/// --workspace` needs Rust and SoftHSM only.
/// A test that needs the cluster starts with `if !pg_cluster::wanted() { return; }`; the
/// skip is said on stderr.
pub fn wanted() -> bool {
    let yes = std::env::var("HLJCA_PG_TESTS").is_ok_and(|v| v == "1")
        || std::env::var("HLJCA_TEST_DB").is_ok_and(|v| v == "postgres");
    if !yes {
        eprintln!("skipped: needs PostgreSQL (HLJCA_PG_TESTS=1, as scripts/test.sh sets)");
    }
    yes
}
