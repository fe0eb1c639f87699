//! A small HTTP client for the portal tests: curl with a cookie jar (one applicant's browser),
//! the CSRF and form tokens read from the pages, and gateway notifications signed with
//! `openssl dgst -hmac`.

use std::path::PathBuf;
use std::process::Command;

use crate::serve::Server;
use crate::support::*;

/// The gateway secret the tests configure.
pub const SECRET: &str = "portal-test-gateway-secret-0123456789";

/// What came back.
pub struct Page {
    pub code: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of `<input … name="NAME" value="…">` (the first).
    pub fn input(&self, name: &str) -> String {
        let t = self.text();
        let key = format!("name=\"{name}\" value=\"");
        let i = t
            .find(&key)
            .unwrap_or_else(|| panic!("no input {name} in:\n{t}"));
        let rest = &t[i + key.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// One browser: a cookie jar.
pub struct Browser {
    pub base: String,
    jar: PathBuf,
    n: std::cell::Cell<u32>,
    dir: PathBuf,
}

impl Browser {
    pub fn new(env: &Env, server: &Server, name: &str) -> Browser {
        let dir = env.dir.path().join(format!("browser-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        Browser {
            base: server.base.clone(),
            jar: dir.join("jar"),
            n: std::cell::Cell::new(0),
            dir,
        }
    }

    fn curl(&self, args: &[String]) -> Page {
        let i = self.n.get() + 1;
        self.n.set(i);
        let body = self.dir.join(format!("body-{i}"));
        let head = self.dir.join(format!("head-{i}"));
        let o = Command::new("curl")
            .args(["-s", "--max-time", "60", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .arg("-o")
            .arg(&body)
            .arg("-D")
            .arg(&head)
            .args(["-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl is needed: run ./softhsm-setup.sh");
        Page {
            code: String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
            headers: std::fs::read_to_string(&head).unwrap_or_default(),
            body: std::fs::read(&body).unwrap_or_default(),
        }
    }

    pub fn get(&self, path: &str) -> Page {
        self.curl(&[format!("{}{path}", self.base)])
    }

    /// A url-encoded form post.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut a = Vec::new();
        for (k, v) in fields {
            a.push("--data-urlencode".to_owned());
            a.push(format!("{k}={v}"));
        }
        a.push(format!("{}{path}", self.base));
        self.curl(&a)
    }

    /// A multipart upload: `fields` and the file at `file` as part `file`.
    pub fn upload(&self, path: &str, fields: &[(&str, &str)], file: &std::path::Path) -> Page {
        let mut a = Vec::new();
        for (k, v) in fields {
            a.push("-F".to_owned());
            a.push(format!("{k}={v}"));
        }
        a.push("-F".to_owned());
        a.push(format!("file=@{}", file.display()));
        a.push(format!("{}{path}", self.base));
        self.curl(&a)
    }

    /// The CSRF token of the session (from any page with a form).
    pub fn csrf(&self) -> String {
        self.get("/login").input("csrf")
    }

    /// Registers `mobile` with `password`.
    pub fn register(&self, mobile: &str, name: &str, password: &str) -> Page {
        let csrf = self.get("/register").input("csrf");
        self.post(
            "/register",
            &[
                ("csrf", &csrf),
                ("kind", "organization"),
                ("display_name", name),
                ("mobile", mobile),
                ("password", password),
                ("password2", password),
            ],
        )
    }

    /// The captcha answer of the session, through the test-only hook.
    pub fn captcha(&self) -> String {
        let p = self.get("/__test/captcha");
        assert_eq!(p.code, 200, "the test hook answers in test builds");
        p.text()
    }

    /// Logs in (shows the log-in page first, so there is a captcha).
    pub fn login(&self, mobile: &str, password: &str) -> Page {
        let page = self.get("/login");
        let (csrf, captcha_id) = (page.input("csrf"), page.input("captcha_id"));
        let answer = self.captcha();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("login", mobile),
                ("password", password),
                ("captcha", &answer),
                ("captcha_id", &captcha_id),
            ],
        )
    }

    /// Opens a draft application of `ty` from its example applicant (every field given).
    pub fn apply(&self, ty: &str) -> Page {
        let form = self.get(&format!("/apply/form?type={ty}"));
        assert_eq!(form.code, 200, "{}", form.text());
        let data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(example(ty)).unwrap()).unwrap();
        let csrf = form.input("csrf");
        let token = form.input("form");
        let mut fields: Vec<(&str, &str)> = vec![("csrf", &csrf), ("type", ty), ("form", &token)];
        for (k, v) in data.as_object().unwrap() {
            fields.push((k, v.as_str().unwrap()));
        }
        self.post("/apply/form", &fields)
    }
}

/// The application number a 303 to `/apps/N` names.
pub fn app_of(p: &Page) -> i64 {
    let loc = p
        .header("location")
        .unwrap_or_else(|| panic!("no redirect ({}): {}", p.code, p.text()));
    loc.trim_start_matches("/apps/").parse().unwrap()
}

/// Posts a gateway notification signed with `secret`; returns (status, body).
pub fn notify(server: &Server, body: &str, secret: &str) -> (u16, String) {
    let sig = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-hex"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let sig = String::from_utf8_lossy(&sig.stdout);
    let sig = sig.split_whitespace().last().unwrap().to_owned();
    let o = Command::new("curl")
        .args(["-s", "--max-time", "60", "-w", "\n%{http_code}", "-H"])
        .arg(format!("X-Hljca-Signature: {sig}"))
        .args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ])
        .arg(server.url("/pay/notify"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (text, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), text.to_owned())
}

/// A notification body.
pub fn notification(id: &str, nonce: &str, order: &str, fen: u64, txn: &str) -> String {
    format!(
        r#"{{"notification_id":"{id}","nonce":"{nonce}","order_no":"{order}","amount_fen":{fen},"transaction_id":"{txn}"}}"#
    )
}

/// Starts `hljca serve` with the gateway secret and the test hooks.
pub fn portal_server(env: &Env) -> Server {
    let mut cmd = env.cmd(&["-v", "serve", "--listen", "127.0.0.1:0"]);
    cmd.env("HLJCA_GATEWAY_SECRET", SECRET)
        .env("HLJCA_PORTAL_TEST_HOOKS", "1");
    Server::spawn(env, cmd, false)
}

/// A small real PDF file (magic bytes are what the portal sniffs).
pub fn pdf_file(env: &Env, name: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(
        &p,
        format!("%PDF-1.4\n% {name}\n1 0 obj\n<<>>\nendobj\n%%EOF\n"),
    )
    .unwrap();
    p
}

/// The material kinds of a type's policy, from its status page.
pub fn material_kinds(page: &Page) -> Vec<String> {
    let t = page.text();
    t.match_indices("name=\"kind\" value=\"")
        .map(|(i, k)| {
            let rest = &t[i + k.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}
