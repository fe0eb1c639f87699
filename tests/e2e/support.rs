//! Test helpers: a temporary home with its own SoftHSM2 token directory, and runners for
//! `hljca` and the outside verifiers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const USER_PIN: &str = "12345678";
pub const SO_PIN: &str = "87654321";
pub const CA_PIN: &str = "11223344";
/// The first CA administrator's operator USBKEY, made by `hljca init` (every role).
pub const ADMIN_TOKEN: &str = "hljca-admin";

pub fn module() -> String {
    for m in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ] {
        if Path::new(m).exists() {
            return m.to_owned();
        }
    }
    panic!("SoftHSM2 is not installed: run ./softhsm-setup.sh first");
}

/// One test's world: a temp dir with a SoftHSM2 config, a home, and PINs in the environment.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub conf: PathBuf,
    pub module: String,
    /// The CA's clock for the commands run (`HLJCA_NOW`, honoured by test builds).
    pub now: std::cell::RefCell<Option<String>>,
    /// The PostgreSQL database (name, URL) of this test, when it runs on PostgreSQL.
    pub pg: Option<(String, String)>,
}

/// True when the tests run on PostgreSQL (`HLJCA_TEST_DB=postgres`), SQLite otherwise.
pub fn on_postgres() -> bool {
    std::env::var("HLJCA_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// True (and said on stderr) on a PostgreSQL run, for a test that reads the SQLite file with
/// SQLite's own SQL: it returns early there, and runs on the SQLite run.
pub fn sqlite_only() -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: this test reads the SQLite file itself");
    }
    on_postgres()
}

impl Env {
    /// A fresh env on the backend the run asks for (`HLJCA_TEST_DB`).
    pub fn new() -> Env {
        Env::with_backend(on_postgres())
    }

    /// A fresh env on a fresh database of the test cluster.
    pub fn new_pg() -> Env {
        Env::with_backend(true)
    }

    /// A fresh env on SQLite, whatever the run asks for.
    pub fn with_sqlite() -> Env {
        Env::with_backend(false)
    }

    fn with_backend(postgres: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let home = dir.path().join("home");
        Env {
            dir,
            home,
            conf,
            module: module(),
            now: std::cell::RefCell::new(None),
            pg: postgres.then(crate::pg_cluster::database),
        }
    }

    /// A command with this env's SoftHSM, home and PINs.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hljca"));
        c.args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .env("HLJCA_HOME", &self.home)
            .env("HLJCA_USER_PIN", USER_PIN)
            .env("HLJCA_SO_PIN", SO_PIN)
            .env("HLJCA_CA_PIN", CA_PIN)
            .env("HLJCA_OPERATOR_TOKEN", ADMIN_TOKEN)
            .env("HLJCA_OPERATOR_PIN", USER_PIN)
            .env_remove("HLJCA_OPERATOR")
            .env("CI", "true")
            .env_remove("HLJCA_PKCS11_MODULE")
            .env_remove("HLJCA_CA_PASSPHRASE");
        match self.now.borrow().as_deref() {
            Some(t) => c.env("HLJCA_NOW", t),
            None => c.env_remove("HLJCA_NOW"),
        };
        match &self.pg {
            Some((_, url)) => c.env("HLJCA_DATABASE_URL", url),
            None => c.env_remove("HLJCA_DATABASE_URL"),
        };
        c.env_remove("HLJCA_SITE");
        c
    }

    /// The operator USBKEY of staff member `name` with `roles` (enrolled by the admin on first
    /// use; its PIN is USER_PIN). Returns its label.
    pub fn operator(&self, name: &str, roles: &str) -> String {
        let label = format!("op-{name}");
        let list = self.json(&["operator", "list"]);
        let known = list["operators"]
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["token_label"] == label.as_str()));
        if !known {
            self.ok(&["token", "init", "--label", &label]);
            self.ok(&[
                "operator", "add", "--name", name, "--site", "harbin", "--roles", roles, "--token",
                &label,
            ]);
        }
        label
    }

    /// A command run by operator `name` (every role but ca-admin, their own USBKEY).
    pub fn cmd_as(&self, name: &str, args: &[&str]) -> Command {
        let label = self.operator(name, "registrar,reviewer,cashier,issuer,auditor");
        let mut c = self.cmd(args);
        c.env("HLJCA_OPERATOR_TOKEN", label);
        c
    }

    /// Runs the next commands as if it were `days` days from now (the CA's clock).
    pub fn days_from_now(&self, days: i64) {
        let o = Command::new("date")
            .args(["-u", "-d", &format!("{days} days"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        *self.now.borrow_mut() = Some(String::from_utf8_lossy(&o.stdout).trim().to_owned());
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "hljca {args:?} failed ({:?}):\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs with --json and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("hljca {args:?} --json gave invalid JSON ({e}):\n{out}"))
    }

    /// Runs and requires failure with `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(code),
            "hljca {args:?}: expected exit {code}, stderr:\n{err}"
        );
        err
    }

    pub fn init_ca(&self) {
        self.ok(&["init"]);
    }

    pub fn token(&self, label: &str) {
        self.ok(&["token", "init", "--label", label]);
    }

    pub fn root(&self) -> PathBuf {
        self.home.join("ca/root.pem")
    }
    pub fn issuing(&self) -> PathBuf {
        self.home.join("ca/issuing.pem")
    }
    pub fn db(&self) -> PathBuf {
        self.home.join("hljca.db")
    }

    /// Issues `ty` from its example applicant onto `token`; returns the JSON outcome.
    pub fn issue(&self, ty: &str, token: &str) -> Value {
        let app = example(ty);
        self.json(&[
            "issue",
            "--type",
            ty,
            "--token",
            token,
            "--applicant",
            app.to_str().unwrap(),
        ])
    }

    /// `pkcs11-tool --list-objects` on a token, logged in.
    pub fn objects(&self, label: &str, pin: &str) -> String {
        let o = Command::new("pkcs11-tool")
            .args([
                "--module",
                &self.module,
                "--token-label",
                label,
                "--login",
                "--pin",
                pin,
                "--list-objects",
            ])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("pkcs11-tool (opensc) is needed: run ./softhsm-setup.sh");
        assert!(
            o.status.success(),
            "pkcs11-tool failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Generates an EC key pair on `token` with pkcs11-tool (software other than hljca).
    pub fn keypairgen(&self, token: &str, id: &str, label: &str) {
        let o = Command::new("pkcs11-tool")
            .args([
                "--module",
                &self.module,
                "--token-label",
                token,
                "--login",
                "--pin",
                USER_PIN,
                "--keypairgen",
                "--key-type",
                "EC:prime256v1",
                "--id",
                id,
                "--label",
                label,
            ])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `audit verify` succeeds and reports the chain intact.
    pub fn audit_intact(&self) {
        let v = self.json(&["audit", "verify"]);
        assert_eq!(v["intact"], true, "{v}");
    }

    /// `sqlite3` on the home's database (`psql` when the env runs on PostgreSQL).
    pub fn sql(&self, query: &str) -> String {
        if let Some((name, _)) = &self.pg {
            return crate::pg_cluster::cluster().psql(name, query);
        }
        // A busy timeout, because a test reads while the CA it watches is writing.
        let o = Command::new("sqlite3")
            .args(["-cmd", ".timeout 30000"])
            .arg(self.db())
            .arg(query)
            .output()
            .expect("sqlite3 is needed");
        assert!(
            o.status.success(),
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    /// `openssl verify` of a certificate against this home's chain.
    pub fn openssl_verify(&self, pem: &Path) -> Output {
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(self.root())
            .arg("-untrusted")
            .arg(self.issuing())
            .arg(pem)
            .output()
            .expect("openssl is needed")
    }
}

pub fn example(ty: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/applicants")
        .join(format!("{ty}.json"))
}

pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed")
}

/// Runs openssl and requires success.
pub fn openssl_ok(args: &[&str]) {
    let o = openssl(args);
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A self-signed EC P-256 certificate `cert` with its key `key`, made by openssl.
pub fn self_signed_ec(key: &Path, cert: &Path, subject: &str, days: &str) {
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        subject,
        "-days",
        days,
        "-out",
        cert.to_str().unwrap(),
    ]);
}

/// A PKCS#10 request `csr` for a fresh EC P-256 key `key` with `subject`, made by openssl.
pub fn openssl_csr(key: &Path, csr: &Path, subject: &str) {
    openssl_req_new(
        key,
        csr,
        subject,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[],
    );
}

/// A PKCS#10 request `csr` for a fresh key `key` (`newkey`: the `-newkey`/`-pkeyopt` arguments)
/// with `subject` and `extra` arguments (such as `-addext`), made by openssl.
pub fn openssl_req_new(key: &Path, csr: &Path, subject: &str, newkey: &[&str], extra: &[&str]) {
    let mut args = vec!["req", "-new"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&["-nodes", "-keyout", key.to_str().unwrap(), "-subj", subject]);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-out", csr.to_str().unwrap()]);
    openssl_ok(&args);
}

pub fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

pub const TYPES: [&str; 7] = [
    "enterprise",
    "legal-person",
    "medical",
    "expert",
    "procurement",
    "enterprise-secondary",
    "authorized-rep",
];

/// The holders' rows of a `cert list --json` answer (identity, seal, encryption), without the
/// CA's own working certificates (operator, OCSP signer, TLS, seal maker) the list also shows.
pub fn holder_rows(list: &serde_json::Value) -> Vec<&serde_json::Value> {
    list["certificates"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| matches!(c["role"].as_str(), Some("identity" | "seal" | "encryption")))
                .collect()
        })
        .unwrap_or_default()
}
