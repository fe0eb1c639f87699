//! Three sites with three homes on one PostgreSQL database reached over TLS (issue 17): site A
//! (harbin) made by `demo`, B (hegang) and C (qiqihar) by `site join` from the database alone,
//! each on its own HSM (a copy of the CA token, as cloned HSMs would be). Materials handed in at
//! one site are read at another; an application goes forward at a second site; a certificate and
//! a CRL made at C are answered for and served by A's `serve`, which survives a database
//! restart. The database is a cluster of this module's own (initdb + pg_ctl): TCP on 127.0.0.1
//! with `ssl = on`, a server certificate from a throwaway CA made with openssl, `hostssl` with a
//! password and plain TCP rejected — as `../shared/checks/17-sites.sh` sets it up. It is not the
//! shared Unix-socket cluster of `pg_cluster.rs`, because one test here restarts its database.
//! Checked with psql, openssl (x509, verify, ocsp, crl) and curl.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;

use crate::pg_cluster;
use crate::support::{example, module, openssl, openssl_ok};

// --- the TLS-only PostgreSQL cluster ---

/// A throwaway PostgreSQL cluster of one test: TCP on 127.0.0.1 over TLS only (the Unix socket
/// for psql as the superuser), a database `hljca`; stopped and removed when dropped (and by a
/// watchdog when the test process dies first).
struct TlsCluster {
    dir: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    /// The CA that issued the server's certificate (the right `sslrootcert`).
    ca: PathBuf,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let b = e.path().join("bin");
            b.join("initdb").exists().then_some((v, b))
        })
        .collect();
    found.sort();
    if let Some((_, b)) = found.pop() {
        return b;
    }
    let o = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .unwrap();
    let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(
        o.status.success() && p.parent().is_some(),
        "PostgreSQL is not installed (no initdb): run ./softhsm-setup.sh first"
    );
    p.parent().unwrap().to_path_buf()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `tool args…`, as the `postgres` user when running as root (PostgreSQL refuses root).
fn as_postgres(tool: &Path, args: &[&str]) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    };
    c.args(args);
    c
}

fn must(mut c: Command, what: &str) -> String {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A self-signed CA certificate `cert` (key `key`) made by openssl.
fn openssl_ca(key: &Path, cert: &Path, cn: &str) {
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(key),
        "-out",
        s(cert),
        "-days",
        "2",
        "-subj",
        &format!("/CN={cn}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
}

impl TlsCluster {
    #[allow(clippy::zombie_processes)] // the watchdog outlives this process by design
    fn start() -> TlsCluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "hljca-pgtls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (data, sock) = (dir.join("data"), dir.join("sock"));
        for d in [&dir, &data, &sock] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            let mut c = Command::new("chown");
            c.arg("postgres").arg(&data).arg(&sock);
            must(c, "chown");
        }
        // The watchdog first: whatever happens next, the cluster goes with this process.
        let pg_ctl = bin.join("pg_ctl");
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- {} -D {} stop -m immediate",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!(
                "{} -D {} stop -m immediate",
                pg_ctl.display(),
                data.display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster watchdog");
        must(
            as_postgres(
                &bin.join("initdb"),
                &[
                    "-D",
                    s(&data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        // The database's own CA and the server's certificate for localhost and 127.0.0.1.
        let ca = dir.join("pgca.pem");
        openssl_ca(&dir.join("pgca.key"), &ca, "hljca test database CA");
        let (key, crt) = (data.join("server.key"), data.join("server.crt"));
        let csr = dir.join("server.csr");
        openssl_ok(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            s(&key),
            "-subj",
            "/CN=localhost",
            "-out",
            s(&csr),
        ]);
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl_ok(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca),
            "-CAkey",
            s(&dir.join("pgca.key")),
            "-set_serial",
            &format!("{}", 1_000_000 + u64::from(std::process::id())),
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-out",
            s(&crt),
        ]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let mut c = Command::new("chown");
            c.arg("postgres").arg(&key).arg(&crt);
            must(c, "chown");
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all all reject\n",
        )
        .unwrap();
        let conf = data.join("postgresql.conf");
        let mut base = std::fs::read_to_string(&conf).unwrap();
        base.push_str(&format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n\
             max_connections = 100\n",
            sock.display()
        ));
        // A free port; another process may take it between the probe and the start: try again.
        let log = data.join("server.log");
        let mut port = 0;
        for attempt in 0..5 {
            port = free_port();
            std::fs::write(&conf, format!("{base}port = {port}\n")).unwrap();
            let o = as_postgres(
                &pg_ctl,
                &["-D", s(&data), "-l", s(&log), "-w", "-t", "60", "start"],
            )
            .output()
            .unwrap();
            if o.status.success() {
                break;
            }
            assert!(
                attempt < 4,
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&o.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let password = String::from_utf8_lossy(&openssl(&["rand", "-hex", "12"]).stdout)
            .trim()
            .to_owned();
        assert_eq!(password.len(), 24);
        let c = TlsCluster {
            dir,
            data,
            sock,
            bin,
            port,
            password,
            ca,
        };
        c.psql(
            "postgres",
            &format!("ALTER USER postgres PASSWORD '{}'", c.password),
        );
        c.psql("postgres", "CREATE DATABASE hljca");
        c
    }

    /// psql as the superuser over the Unix socket (trust): unaligned, tuples only.
    fn psql(&self, db: &str, sql: &str) -> String {
        let mut c = Command::new(self.bin.join("psql"));
        c.arg("-h")
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-Atc", sql]);
        must(c, &format!("psql {sql}"))
    }

    /// psql over TCP to 127.0.0.1 with libpq's `sslmode` and more keywords: its output.
    fn psql_tcp(&self, conninfo: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .arg(format!(
                "host=127.0.0.1 port={} dbname=hljca user=postgres password={} connect_timeout=10 {conninfo}",
                self.port, self.password
            ))
            .args(["-Atc", sql])
            .output()
            .unwrap()
    }

    /// The URL of database `hljca` with `query` (`sslmode=…&sslrootcert=…`).
    fn url_with(&self, query: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/hljca?{query}",
            self.password, self.port
        )
    }

    /// The URL the sites use: TLS, the server's certificate checked against its CA and name.
    fn url(&self) -> String {
        self.url_with(&format!(
            "sslmode=verify-full&sslrootcert={}",
            self.ca.display()
        ))
    }

    /// `pg_ctl -m fast restart`: every connection is cut, the server comes back on its port.
    fn restart(&self) {
        let log = self.data.join("server.log");
        must(
            as_postgres(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    s(&self.data),
                    "-l",
                    s(&log),
                    "-w",
                    "-t",
                    "60",
                    "-m",
                    "fast",
                    "restart",
                ],
            ),
            "pg_ctl restart",
        );
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", s(&self.data), "stop", "-m", "immediate"],
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// --- sites ---

/// What `demo --json` reports: the PINs and the operator who logs in.
struct Login {
    ca_pin: String,
    so_pin: String,
    user_pin: String,
    module: String,
    operator_token: String,
    operator_pin: String,
}

/// One site: its home, and the database URL it is given in the environment (site A only:
/// the joined homes name their database in their own hljca.toml).
struct Site {
    code: &'static str,
    home: PathBuf,
    url: Option<String>,
}

impl Site {
    /// `hljca args…` at this site, as the operator of `login` (`cmd_as`: another USBKEY). No
    /// SOFTHSM2_CONF: each home's own token configuration is used.
    fn cmd(&self, login: &Login, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hljca"));
        c.args(args)
            .env("HLJCA_HOME", &self.home)
            .env("HLJCA_CA_PIN", &login.ca_pin)
            .env("HLJCA_SO_PIN", &login.so_pin)
            .env("HLJCA_USER_PIN", &login.user_pin)
            .env("HLJCA_PKCS11_MODULE", &login.module)
            .env("HLJCA_OPERATOR_TOKEN", &login.operator_token)
            .env("HLJCA_OPERATOR_PIN", &login.operator_pin)
            .env("CI", "true")
            .env_remove("SOFTHSM2_CONF")
            .env_remove("HLJCA_OPERATOR")
            .env_remove("HLJCA_SITE")
            .env_remove("HLJCA_NOW")
            .env_remove("HLJCA_CA_PASSPHRASE");
        match &self.url {
            Some(u) => c.env("HLJCA_DATABASE_URL", u),
            None => c.env_remove("HLJCA_DATABASE_URL"),
        };
        c
    }

    fn cmd_as(&self, login: &Login, op: &(String, String), args: &[&str]) -> Command {
        let mut c = self.cmd(login, args);
        c.env("HLJCA_OPERATOR_TOKEN", &op.0)
            .env("HLJCA_OPERATOR_PIN", &op.1);
        c
    }

    fn ok(&self, login: &Login, args: &[&str]) -> String {
        ok(self.cmd(login, args), &format!("{} {args:?}", self.code))
    }

    fn json(&self, login: &Login, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        parse(&self.ok(login, &a))
    }

    fn json_as(&self, login: &Login, op: &(String, String), args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        parse(&ok(
            self.cmd_as(login, op, &a),
            &format!("{} as {} {args:?}", self.code, op.0),
        ))
    }
}

fn ok(mut c: Command, what: &str) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "hljca {what} failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn parse(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{out}"))
}

/// A command's non-zero exit: its stderr.
fn refused(mut c: Command, what: &str) -> String {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success() && o.status.code().is_some_and(|c| c != 0),
        "{what} succeeded (or died by a signal): {:?}\n{}{err}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// `directories.tokendir` of a SoftHSM2 configuration.
fn tokendir(conf: &Path) -> PathBuf {
    let text = std::fs::read_to_string(conf).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("directories.tokendir"))
        .unwrap_or_else(|| panic!("no tokendir in {}:\n{text}", conf.display()));
    PathBuf::from(line.trim_start_matches([' ', '=']).trim())
}

/// A copy of the token directory of `conf` with its own SoftHSM2 configuration under `dir`.
fn clone_hsm(conf: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(tokendir(conf))
        .arg(dir.join("tokens"))
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(conf).unwrap();
    let mine: String = text
        .lines()
        .map(|l| {
            if l.starts_with("directories.tokendir") {
                format!("directories.tokendir = {}\n", dir.join("tokens").display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let out = dir.join("softhsm2.conf");
    std::fs::write(&out, mine).unwrap();
    out
}

/// Every path under `dir` (files and directories, not following links).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// `n` random bytes behind a PDF header (materials are checked by their magic).
fn pdf_bytes(n: usize) -> Vec<u8> {
    let mut body = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut body)
        .unwrap();
    let mut out = b"%PDF-1.4\n% ".to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n%%EOF\n");
    out
}

fn hex_sha256(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

// --- A's serve, seen from outside ---

struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(mut cmd: Command, log: PathBuf) -> Serve {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let _ = tx.send(l);
            }
        });
        let mut serve = Serve {
            child,
            base: String::new(),
            log,
        };
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!("hljca serve printed nothing:\n{}", serve.logs());
            });
        serve.base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line `{first}`"))
            .to_owned();
        std::thread::spawn(move || for _ in rx {});
        serve
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `openssl ocsp` for `serial` (hex) against the server: (status word if any, full output).
fn ocsp(serve: &Serve, issuing: &Path, chain: &Path, serial: &str) -> (Option<String>, String) {
    let o = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "ocsp",
            "-issuer",
            s(issuing),
            "-CAfile",
            s(chain),
        ])
        .args(["-serial", &format!("0x{serial}")])
        .args(["-url", &format!("{}/ocsp", serve.base)])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let word = ["good", "revoked", "unknown"]
        .into_iter()
        .find(|w| text.contains(&format!(": {w}")))
        .filter(|_| o.status.success() && text.contains("Response verify OK"))
        .map(str::to_owned);
    (word, text)
}

/// The CRL served at `path`, fetched with curl into `file`: its number (openssl crl).
fn served_crl(serve: &Serve, path: &str, file: &Path) -> Option<u64> {
    let o = Command::new("curl")
        .args(["-fsS", "--max-time", "5", "-o", s(file)])
        .arg(format!("{}{path}", serve.base))
        .output()
        .expect("curl is needed: run ./softhsm-setup.sh");
    if !o.status.success() {
        return None;
    }
    crl_number(file)
}

fn crl_number(file: &Path) -> Option<u64> {
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(file),
        "-noout",
        "-crlnumber",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    let n = text.trim().strip_prefix("crlNumber=")?;
    u64::from_str_radix(n.trim_start_matches("0x"), 16).ok()
}

/// The HTTP status of GET `url` (curl), 0 when nothing answered.
fn http_status(url: &str) -> u16 {
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Polls `f` every 300 ms for up to `secs` seconds; the last value when it never held.
fn within<T>(secs: u64, mut f: impl FnMut() -> (bool, T)) -> (bool, T) {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let (done, v) = f();
        if done || Instant::now() >= until {
            return (done, v);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The path of the first URI of the certificate's CRL distribution point (`/crl/issuing.crl`).
fn crl_dp_path(pem: &Path) -> String {
    let o = openssl(&[
        "x509",
        "-in",
        s(pem),
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    let uri = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("no CRL DP URI in {}: {text}", pem.display()));
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    format!("/{}", rest.split_once('/').map_or("", |(_, p)| p))
}

/// Waits up to 15 s for TCP sessions on database `hljca` (the server's view, pg_stat_ssl):
/// at least one, and every one over TLS.
fn all_tcp_sessions_tls(pg: &TlsCluster, when: &str) {
    let (tls, rows) = within(15, || {
        let r = pg.psql(
            "hljca",
            "SELECT count(*) || '|' || count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = 'hljca' AND a.client_addr IS NOT NULL",
        );
        let ok = r
            .split_once('|')
            .is_some_and(|(n, plain)| n != "0" && plain == "0");
        (ok, r)
    });
    assert!(
        tls,
        "{when}: TCP sessions on hljca (count|without TLS): {rows}"
    );
}

// --- the tests ---

#[test]
fn three_sites_three_homes_one_postgres_over_tls() {
    if !pg_cluster::wanted() {
        return;
    }
    let pg = TlsCluster::start();
    let url = pg.url();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // 1. Site A by `demo` on the database over TLS (verify-full).
    let a_home = t.join("a");
    let mut c = Command::new(env!("CARGO_BIN_EXE_hljca"));
    c.args(["demo", "--home", s(&a_home), "--json"])
        .env("HLJCA_DATABASE_URL", &url)
        .env("HLJCA_PKCS11_MODULE", module())
        .env("CI", "true");
    for k in [
        "SOFTHSM2_CONF",
        "HLJCA_HOME",
        "HLJCA_CA_PIN",
        "HLJCA_SO_PIN",
        "HLJCA_USER_PIN",
        "HLJCA_OPERATOR",
        "HLJCA_OPERATOR_TOKEN",
        "HLJCA_OPERATOR_PIN",
        "HLJCA_SITE",
        "HLJCA_NOW",
        "HLJCA_CA_PASSPHRASE",
    ] {
        c.env_remove(k);
    }
    let demo = parse(&ok(c, "demo --json over TLS"));
    let field = |k: &str| {
        demo[k]
            .as_str()
            .unwrap_or_else(|| panic!("demo --json has no `{k}`: {demo}"))
            .to_owned()
    };
    let login = Login {
        ca_pin: field("ca_pin"),
        so_pin: field("so_pin"),
        user_pin: field("user_pin"),
        module: field("pkcs11_module"),
        operator_token: field("operator_token"),
        operator_pin: field("operator_pin"),
    };
    let a_conf = PathBuf::from(field("softhsm2_conf"));
    let (issuing, root) = (
        PathBuf::from(field("ca_issuing")),
        PathBuf::from(field("ca_root")),
    );
    let chain = t.join("chain.pem");
    let mut both = std::fs::read(&issuing).unwrap();
    both.extend(std::fs::read(&root).unwrap());
    std::fs::write(&chain, both).unwrap();
    // The demo's CA lives in PostgreSQL (psql), not in a file of the home.
    let tables = pg.psql(
        "hljca",
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert!(tables.parse::<u32>().unwrap() > 10, "tables: {tables}");
    assert_ne!(pg.psql("hljca", "SELECT count(*) FROM certificates"), "0");
    let a = Site {
        code: "harbin",
        home: a_home,
        url: Some(url.clone()),
    };

    // A second operator (four eyes: who submits does not review), enrolled at A before the HSM
    // is copied, so every site's HSM holds their USBKEY too. The USBKEY's PIN is the user PIN.
    a.ok(&login, &["token", "init", "--label", "op-qq"]);
    a.json(
        &login,
        &[
            "operator",
            "add",
            "--name",
            "齐齐哈尔审核员",
            "--site",
            "qiqihar",
            "--roles",
            "registrar,reviewer,cashier,issuer",
            "--token",
            "op-qq",
        ],
    );
    let reviewer = ("op-qq".to_owned(), login.user_pin.clone());

    // B and C by `site join` from the database alone, each on its own copy of the HSM.
    let mut sites = Vec::new();
    for (code, dir) in [("hegang", "b"), ("qiqihar", "c")] {
        let conf = clone_hsm(&a_conf, &t.join(format!("hsm-{dir}")));
        let home = t.join(dir);
        let mut c = Command::new(env!("CARGO_BIN_EXE_hljca"));
        c.args(["site", "join", "--database", &url, "--site", code])
            .args(["--home", s(&home), "--json"])
            .env("SOFTHSM2_CONF", &conf)
            .env("HLJCA_PKCS11_MODULE", &login.module)
            .env_remove("HLJCA_DATABASE_URL")
            .env_remove("HLJCA_HOME")
            .env_remove("HLJCA_SITE");
        let v = parse(&ok(c, &format!("site join --site {code}")));
        assert_eq!(v["site"], code, "{v}");
        // The password is not printed.
        assert!(!v.to_string().contains(&pg.password), "{v}");
        // The home names its site and database (hljca.toml, 0600: it holds the password) and
        // its token configuration is the site's HSM.
        let toml = std::fs::read_to_string(home.join("hljca.toml")).unwrap();
        assert!(toml.contains(&format!("site = \"{code}\"")), "{toml}");
        assert!(toml.contains(&url), "{toml}");
        let mode = std::fs::metadata(home.join("hljca.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "hljca.toml of {code} is {mode:o}");
        assert_eq!(
            tokendir(&home.join("softhsm/softhsm2.conf")),
            t.join(format!("hsm-{dir}/tokens")),
            "{code}'s token configuration"
        );
        sites.push(Site {
            code,
            home,
            url: None,
        });
    }
    let (b, c) = (&sites[0], &sites[1]);
    // No home shares a directory with another (nor its token store); no home has a database
    // file: they all work on PostgreSQL.
    let homes: Vec<PathBuf> = [&a, b, c]
        .iter()
        .map(|x| x.home.canonicalize().unwrap())
        .collect();
    for (i, x) in homes.iter().enumerate() {
        for (j, y) in homes.iter().enumerate() {
            assert!(
                i == j || !x.starts_with(y),
                "{} is inside {}",
                x.display(),
                y.display()
            );
        }
    }
    let stores: Vec<PathBuf> = [
        a.home.join("softhsm/softhsm2.conf"),
        b.home.join("softhsm/softhsm2.conf"),
        c.home.join("softhsm/softhsm2.conf"),
    ]
    .iter()
    .map(|f| tokendir(f).canonicalize().unwrap())
    .collect();
    for (i, x) in stores.iter().enumerate() {
        for y in &stores[i + 1..] {
            assert!(
                !x.starts_with(y) && !y.starts_with(x),
                "token stores {x:?} {y:?}"
            );
        }
    }
    for x in [&a, b, c] {
        let dbs: Vec<PathBuf> = walk(&x.home)
            .into_iter()
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("hljca.db") || n.ends_with(".sqlite")
            })
            .collect();
        assert!(
            dbs.is_empty(),
            "{}'s home holds a database: {dbs:?}",
            x.code
        );
    }

    // 2. Apply at hegang, hand the policy's required materials in there; qiqihar reads the very
    // same bytes; the application goes forward at qiqihar.
    let app = b.json(
        &login,
        &[
            "apply",
            "--type",
            "medical",
            "--applicant",
            s(&example("medical")),
            "--site",
            "hegang",
        ],
    );
    assert_eq!(app["state"], "draft", "{app}");
    assert_eq!(app["site"], "hegang", "{app}");
    let id = app["id"].as_i64().unwrap().to_string();
    let policy = b.json(&login, &["policy", "show", "medical"]);
    let kinds: Vec<String> = policy["materials"]
        .as_array()
        .unwrap_or_else(|| panic!("no materials: {policy}"))
        .iter()
        .filter(|m| m["required"] != false)
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(!kinds.is_empty(), "{policy}");
    let mut handed = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        // The first spans several of the store's 1 MiB chunks.
        let bytes = pdf_bytes(if i == 0 { 2_500_000 } else { 100_000 + i * 7 });
        let f = t.join(format!("in-{k}.pdf"));
        std::fs::write(&f, &bytes).unwrap();
        let v = b.json(&login, &["materials", "add", &id, k, s(&f)]);
        assert_eq!(v["kind"], k.as_str(), "{v}");
        assert_eq!(v["sha256"], hex_sha256(&bytes).as_str(), "{v}");
        handed.push((k.clone(), bytes));
    }
    for (k, bytes) in &handed {
        let out = t.join(format!("got-{k}"));
        c.ok(&login, &["materials", "get", &id, k, "--out", s(&out)]);
        let got = std::fs::read(&out).unwrap();
        assert!(
            got == *bytes,
            "materials get {id} {k} at qiqihar: {} bytes (sha256 {}), hegang added {} (sha256 {})",
            got.len(),
            hex_sha256(&got),
            bytes.len(),
            hex_sha256(bytes)
        );
    }
    let (k0, b0) = &handed[0];
    let out = t.join("got-at-a");
    a.ok(&login, &["materials", "get", &id, k0, "--out", s(&out)]);
    assert!(
        std::fs::read(&out).unwrap() == *b0,
        "materials get at harbin"
    );
    let v = b.json(&login, &["submit", &id]);
    assert_eq!(v["state"], "submitted", "{v}");
    let shown = c.json(&login, &["apps", "show", &id]);
    let listed: Vec<(String, String)> = shown["materials"]
        .as_array()
        .unwrap_or_else(|| panic!("apps show at qiqihar lists no materials: {shown}"))
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (k, bytes) in &handed {
        assert!(
            listed.contains(&(k.clone(), hex_sha256(bytes))),
            "apps show at qiqihar lacks {k}: {shown}"
        );
    }
    // Four eyes across sites: the submitter may not review at qiqihar either.
    let err = refused(
        c.cmd(&login, &["review", "approve", &id]),
        "review approve by the submitter at qiqihar",
    );
    assert!(err.contains("four eyes"), "{err}");
    let v = c.json_as(&login, &reviewer, &["review", "approve", &id]);
    assert_eq!(v["state"], "approved", "{v}");
    let v = c.json_as(
        &login,
        &reviewer,
        &["pay", &id, "--method", "cash", "--reference", "QQ-CASH-1"],
    );
    assert_eq!(v["application"]["state"], "paid", "{v}");

    // 3. Issue at qiqihar (from the application, onto a USBKEY of qiqihar's HSM) and make a
    // CRL there; harbin's serve answers for that certificate and serves that CRL.
    c.ok(&login, &["token", "init", "--label", "qq-key-1"]);
    let issued = c.json_as(
        &login,
        &reviewer,
        &["issue", &format!("APP-{id}"), "--token", "qq-key-1"],
    );
    assert_eq!(issued["application"]["state"], "issued", "{issued}");
    let serial = issued["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = PathBuf::from(issued["certificates"][0]["pem"].as_str().unwrap());
    assert!(pem.starts_with(&c.home), "{}", pem.display());
    let v = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            s(&root),
            "-untrusted",
            s(&issuing),
            s(&pem),
        ])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert_eq!(
        pg.psql(
            "hljca",
            &format!("SELECT site || '|' || status FROM certificates WHERE serial = '{serial}'")
        ),
        "qiqihar|issued"
    );
    assert_eq!(
        pg.psql(
            "hljca",
            &format!("SELECT site || '|' || state FROM applications WHERE id = {id}")
        ),
        "hegang|issued"
    );
    let n1 = c.json(&login, &["crl", "generate"])["number"]
        .as_u64()
        .expect("crl generate --json names the number");
    let crl_path = crl_dp_path(&pem);
    let serve = Serve::start(
        a.cmd(&login, &["serve", "--listen", "127.0.0.1:0"]),
        t.join("serve-a.log"),
    );
    let (up, code) = within(15, || {
        let c = http_status(&format!("{}/healthz", serve.base));
        (c == 200, c)
    });
    assert!(up, "harbin's /healthz: {code}\n{}", serve.logs());
    // Its connection to the database is TLS (the server's own view).
    all_tcp_sessions_tls(&pg, "harbin's serve");
    let (good, said) = within(15, || {
        let (w, text) = ocsp(&serve, &issuing, &chain, &serial);
        (w.as_deref() == Some("good"), text)
    });
    assert!(
        good,
        "harbin's OCSP for {serial} issued at qiqihar:\n{said}\n{}",
        serve.logs()
    );
    let crl_file = t.join("served.crl");
    let (fresh, n) = within(15, || {
        let n = served_crl(&serve, &crl_path, &crl_file);
        (n.is_some_and(|n| n >= n1), n)
    });
    assert!(
        fresh,
        "harbin serves CRL {n:?} at {crl_path}, qiqihar made {n1}"
    );
    let v = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&crl_file),
        "-CAfile",
        s(&chain),
        "-noout",
    ]);
    assert!(
        v.status.success() && String::from_utf8_lossy(&v.stderr).contains("verify OK"),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );

    // 4. The database restarts under harbin's serve: it answers again within 15 s, and sees
    // what qiqihar does next, without being restarted itself.
    pg.restart();
    let (back, said) = within(15, || {
        let (w, text) = ocsp(&serve, &issuing, &chain, &serial);
        (w.as_deref() == Some("good"), text)
    });
    assert!(
        back,
        "harbin's OCSP after the restart:\n{said}\n{}",
        serve.logs()
    );
    let (healthy, code) = within(15, || {
        let c = http_status(&format!("{}/healthz", serve.base));
        (c == 200, c)
    });
    assert!(
        healthy,
        "harbin's /healthz after the restart: {code}\n{}",
        serve.logs()
    );
    let out = c.ok(&login, &["revoke", &serial, "--reason", "keyCompromise"]);
    assert!(out.contains(&serial), "{out}");
    let made = c.json(&login, &["crl", "generate"]);
    let n2 = made["number"].as_u64().unwrap();
    assert!(n2 > n1, "{n2} after {n1}");
    let (revoked, said) = within(15, || {
        let (w, text) = ocsp(&serve, &issuing, &chain, &serial);
        (w.as_deref() == Some("revoked"), text)
    });
    assert!(
        revoked,
        "harbin's OCSP for {serial}, revoked at qiqihar:\n{said}\n{}",
        serve.logs()
    );
    assert!(said.contains("Reason: keyCompromise"), "{said}");
    let (fresh, n) = within(15, || {
        let n = served_crl(&serve, &crl_path, &crl_file);
        (n.is_some_and(|n| n >= n2), n)
    });
    assert!(
        fresh,
        "after the restart harbin serves CRL {n:?}, qiqihar made {n2}"
    );
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&crl_file),
        "-CAfile",
        s(&chain),
        "-noout",
        "-text",
    ]);
    let listing = String::from_utf8_lossy(&text.stdout).to_ascii_uppercase();
    assert!(
        listing.contains(&serial.to_ascii_uppercase()),
        "the served CRL does not list {serial}:\n{listing}"
    );
    // The very CRL qiqihar made (its file in qiqihar's home), when it is still the newest.
    if n == Some(n2) {
        let der = PathBuf::from(made["der"].as_str().expect("crl generate --json names der"));
        assert!(
            std::fs::read(&der).unwrap() == std::fs::read(&crl_file).unwrap(),
            "harbin serves other bytes than qiqihar's {}",
            der.display()
        );
    }
    // Its connection came back over TLS.
    all_tcp_sessions_tls(&pg, "harbin's serve after the restart");
    assert!(
        !serve.logs().contains(&pg.password),
        "serve logged the database password"
    );
    drop(serve);

    // The schema of the database and of this binary, at a joined site.
    let st = b.json(&login, &["db", "status"]);
    assert_eq!(st["backend"], "postgres", "{st}");
    assert!(st["schema"].is_u64() && st["binary"].is_u64(), "{st}");
    assert_eq!(st["schema"], st["binary"], "{st}");
    assert!(!st.to_string().contains(&pg.password), "{st}");
}

#[test]
fn the_database_refuses_plain_tcp_and_a_server_certificate_of_another_ca() {
    if !pg_cluster::wanted() {
        return;
    }
    let pg = TlsCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The cluster as set up, seen with psql: TLS with verify-full; plain TCP refused.
    let o = pg.psql_tcp(
        &format!("sslmode=verify-full sslrootcert={}", pg.ca.display()),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "t",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!pg.psql_tcp("sslmode=disable", "SELECT 1").status.success());

    let hljca = |url: &str, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hljca"));
        c.args(args)
            .env("HLJCA_HOME", t.join("home"))
            .env("HLJCA_DATABASE_URL", url)
            .env("HLJCA_PKCS11_MODULE", module())
            .env_remove("HLJCA_SITE");
        c
    };
    // The right URL: `db status` of the empty database works (the control).
    let st = parse(&ok(
        hljca(&pg.url(), &["db", "status", "--json"]),
        "db status",
    ));
    assert_eq!(st["backend"], "postgres", "{st}");

    // sslmode=disable over TCP: the server's hba rule rejects it; exit non-zero.
    let plain = pg.url_with("sslmode=disable");
    let err = refused(
        hljca(&plain, &["db", "status", "--json"]),
        "db status, sslmode=disable",
    );
    assert!(
        err.contains("no encryption") || err.contains("pg_hba"),
        "sslmode=disable: {err}"
    );
    assert!(!err.contains(&pg.password), "{err}");

    // verify-full with the root of another CA (made with openssl): a certificate error.
    let other = t.join("other-ca.pem");
    openssl_ca(&t.join("other-ca.key"), &other, "another CA");
    let wrong = pg.url_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.display()
    ));
    let err = refused(
        hljca(&wrong, &["db", "status", "--json"]),
        "db status, wrong sslrootcert",
    );
    let low = err.to_ascii_lowercase();
    assert!(
        low.contains("certificate") && (low.contains("tls") || low.contains("issuer")),
        "wrong sslrootcert: {err}"
    );
    assert!(!err.contains(&pg.password), "{err}");
    // `site join` with it fails the same way and leaves no home behind.
    let home = t.join("joined");
    let mut j = hljca(
        &wrong,
        &["site", "join", "--database", &wrong, "--site", "hegang"],
    );
    j.args(["--home", s(&home)]);
    let err = refused(j, "site join, wrong sslrootcert");
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
    assert!(!home.exists(), "site join left {}", home.display());
    // And with the right URL but a database holding no CA, it fails and leaves no home.
    let mut j = hljca(
        &pg.url(),
        &["site", "join", "--database", &pg.url(), "--site", "hegang"],
    );
    j.args(["--home", s(&home)]);
    refused(j, "site join on an empty database");
    assert!(!home.exists(), "site join left {}", home.display());
}
