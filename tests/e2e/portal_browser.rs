//! The applicant's journey in a real browser: headless Chromium through chromedriver
//! (WebDriver, the `fantoccini` crate). Register, log in (the captcha answer read through the
//! test-only hook), apply, download the form, upload the materials, confirm; an operator
//! approves at the CLI; the signed gateway notification arrives; the applicant chooses
//! pickup; `hljca issue APP` puts the certificate on a SoftHSM token; the status page shows
//! it. A screenshot of each step goes to `target/portal-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::portal_client::*;
use crate::support::*;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed: run ./softhsm-setup.sh (installs chromium-driver)");
        let d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null"])
                .arg(format!("{}/status", d.url))
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return d;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("chromedriver did not start");
    }
}

fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("portal-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) -> Res<()> {
    let png = c.screenshot().await?;
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(shots_dir().join(format!("{name}.png")), png)?;
    Ok(())
}

/// Waits until the page source contains `text`.
async fn wait_text(c: &Client, text: &str) -> Res<String> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let src = c.source().await?;
        if src.contains(text) {
            return Ok(src);
        }
        if Instant::now() > until {
            panic!("page never showed `{text}`:\n{src}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fill(c: &Client, name: &str, value: &str) -> Res<()> {
    let e = c
        .find(Locator::Css(&format!("main [name=\"{name}\"]")))
        .await?;
    e.clear().await?;
    e.send_keys(value).await?;
    Ok(())
}

async fn submit(c: &Client) -> Res<()> {
    c.find(Locator::Css("main form button[type=submit]"))
        .await?
        .click()
        .await?;
    Ok(())
}

/// The session cookie's value.
async fn session(c: &Client) -> Res<String> {
    Ok(c.get_named_cookie("hljca_portal").await?.value().to_owned())
}

async fn journey(
    env: &Env,
    c: &Client,
    server: &crate::serve::Server,
    downloads: &Path,
) -> Res<()> {
    let base = server.base.clone();
    c.goto(&format!("{base}/")).await?;
    wait_text(c, "证书类型与收费标准").await?;
    shot(c, "01-front").await?;
    // Register.
    c.find(Locator::Css("header a[href='/register']"))
        .await?
        .click()
        .await?;
    wait_text(c, "立即注册").await?;
    fill(c, "display_name", "哈尔滨北方康复医院").await?;
    fill(c, "mobile", "13800138000").await?;
    fill(c, "password", "browser password 1").await?;
    fill(c, "password2", "browser password 1").await?;
    shot(c, "02-register").await?;
    submit(c).await?;
    wait_text(c, "注册成功").await?;
    // Log in with the captcha answer from the test-only hook.
    let cookie = session(c).await?;
    let answer = Command::new("curl")
        .args(["-s", "-H", &format!("Cookie: hljca_portal={cookie}")])
        .arg(format!("{base}/__test/captcha"))
        .output()?;
    let answer = String::from_utf8(answer.stdout)?;
    fill(c, "login", "13800138000").await?;
    fill(c, "password", "browser password 1").await?;
    fill(c, "captcha", answer.trim()).await?;
    shot(c, "03-login").await?;
    submit(c).await?;
    wait_text(c, "<h1>服务申办").await?;
    // 新办 → department → type → form.
    c.find(Locator::Css("main a[href='/apply']"))
        .await?
        .click()
        .await?;
    wait_text(c, "黑龙江省公共资源交易平台").await?;
    submit(c).await?;
    wait_text(c, "请选择证书类型").await?;
    shot(c, "04-types").await?;
    c.find(Locator::Css("a[href='/apply/form?type=medical']"))
        .await?
        .click()
        .await?;
    wait_text(c, "保存并进入下一步").await?;
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("medical"))?)?;
    for (k, v) in data.as_object().unwrap() {
        fill(c, k, v.as_str().unwrap()).await?;
    }
    shot(c, "05-form").await?;
    submit(c).await?;
    let src = wait_text(c, "申请状态").await?;
    assert!(src.contains("待确认（草稿）"));
    let url = c.current_url().await?;
    let id: i64 = url.path().trim_start_matches("/apps/").parse()?;
    let app = format!("APP-{id}");
    // Download the pre-filled form.
    c.find(Locator::Css(&format!("a[href='/apps/{id}/form.pdf']")))
        .await?
        .click()
        .await?;
    let pdf = downloads.join(format!("application-form-{id}.pdf"));
    let until = Instant::now() + Duration::from_secs(30);
    while !pdf.is_file() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bytes = std::fs::read(&pdf).map_err(|e| format!("the form was not downloaded: {e}"))?;
    assert!(bytes.starts_with(b"%PDF-"));
    // One file into each material slot.
    let mut n = 0;
    loop {
        let inputs = c
            .find_all(Locator::Css("main form.upload input[type=file]"))
            .await?;
        let Some(input) = inputs.first() else { break };
        n += 1;
        let f = pdf_file(env, &format!("scan-{n}.pdf"));
        input.send_keys(&f.display().to_string()).await?;
        c.find(Locator::Css("main form.upload button[type=submit]"))
            .await?
            .click()
            .await?;
        wait_text(c, &format!("scan-{n}.pdf")).await?;
    }
    assert_eq!(n, 4, "medical lists four materials");
    shot(c, "06-uploaded").await?;
    c.find(Locator::Css(&format!(
        "main form[action='/apps/{id}/submit'] button"
    )))
    .await?
    .click()
    .await?;
    wait_text(c, "待审核").await?;
    shot(c, "07-submitted").await?;
    // The counter approves.
    env.ok(&["review", "approve", &app]);
    c.refresh().await?;
    wait_text(c, "已通过（待付款）").await?;
    c.find(Locator::Css(&format!(
        "main form[action='/apps/{id}/pay'] button"
    )))
    .await?
    .click()
    .await?;
    wait_text(c, "class=\"order-no\"").await?;
    shot(c, "08-pay-qr").await?;
    let order = c.find(Locator::Css(".order-no")).await?.text().await?;
    let (code, body) = notify(
        server,
        &notification("N-B1", "nonce-b1", order.trim(), 30000, "WX-B1"),
        SECRET,
    );
    assert_eq!(code, 200, "{body}");
    c.refresh().await?;
    wait_text(c, "已付款").await?;
    c.goto(&format!("{base}/apps/{id}")).await?;
    wait_text(c, "选择领取方式").await?;
    c.find(Locator::Css("input[value='pickup-harbin']"))
        .await?
        .click()
        .await?;
    shot(c, "09-delivery").await?;
    submit(c).await?;
    wait_text(c, "自取：").await?;
    // The counter issues onto a USBKEY.
    env.token("browser-usbkey");
    env.ok(&["issue", &app, "--token", "browser-usbkey"]);
    env.ok(&["deliver", &app, "--pickup", "harbin"]);
    c.refresh().await?;
    let src = wait_text(c, "已签发").await?;
    assert!(src.contains("USBKEY 已制作完成，可以领取"));
    let serial = env.sql(&format!(
        "SELECT serial FROM certificates WHERE application_id = {id} AND status = 'issued'"
    ));
    assert!(src.contains(serial.trim()));
    shot(c, "10-issued").await?;
    // Phone width: the status page still reads.
    c.set_window_size(390, 1400).await?;
    shot(c, "11-issued-phone").await?;
    Ok(())
}

#[test]
fn the_applicant_journey_in_headless_chromium() {
    if std::env::var("HLJCA_BROWSER_TESTS").map_or(true, |v| v != "1") {
        eprintln!("skipped: needs Chromium (HLJCA_BROWSER_TESTS=1, as scripts/test.sh sets)");
        return;
    }
    let env = Env::new();
    env.init_ca();
    let server = portal_server(&env);
    let driver = Driver::start();
    let downloads = env.dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result: Res<()> = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1000,1400", "--lang=zh-CN"],
                "prefs": { "download.default_directory": downloads.display().to_string(),
                           "download.prompt_for_download": false }
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await?;
        let r = journey(&env, &c, &server, &downloads).await;
        if r.is_err() {
            let _ = shot(&c, "zz-failure").await;
        }
        let _ = c.close().await;
        r
    });
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", server.logs());
    }
}
