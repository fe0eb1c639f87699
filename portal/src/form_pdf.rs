//! The pre-filled application form (《…数字证书和电子印章申请表》) as a one-page A4 PDF to
//! print, sign, stamp, scan and upload.
//!
//! The page is drawn as a greyscale image with the CJK font the seal pictures use (Noto CJK,
//! see `hljca_core::seal::find_font`; glyph outlines through `ttf-parser`, filled by
//! `ab_glyph_rasterizer`) and written as a minimal PDF 1.4 with that image (Flate) as its only
//! content, so no font has to be embedded or subset. The PDF's Info dictionary carries the
//! title and the application number as text.

use std::io::Write;
use std::sync::OnceLock;

use ab_glyph_rasterizer::{Point, Rasterizer, point};
use hljca_policies::Policy;
use hljca_ra::applications::{AppId, Application};
use hyper::{StatusCode, header};
use ttf_parser::{Face, OutlineBuilder};

use crate::Portal;
use crate::pages::{account, failed, not_found, refuse};
use crate::session::Session;
use crate::web::Answer;

/// Pixels per inch of the page image.
const DPI: f32 = 150.0;
/// A4 in PDF points.
const PAGE_W_PT: f32 = 595.0;
const PAGE_H_PT: f32 = 842.0;

/// The form's title: the 《…》 of the policy's application-form material.
pub(crate) fn title(pol: &Policy) -> String {
    pol.materials
        .iter()
        .find(|m| m.kind == "application-form")
        .and_then(|m| {
            let a = m.name_zh.find('《')?;
            let b = m.name_zh.find('》')?;
            (b > a).then(|| m.name_zh[a..b + '》'.len_utf8()].to_owned())
        })
        .unwrap_or_else(|| format!("《{}申请表》", pol.name_zh))
}

/// The lines of the form.
fn lines(pol: &Policy, app: &Application) -> Vec<(f32, String)> {
    let mut out = vec![
        (30.0, title(pol)),
        (16.0, String::new()),
        (16.0, format!("申请编号：{}", app.id)),
        (16.0, "业务部门：黑龙江省公共资源交易平台".to_owned()),
        (16.0, format!("证书类型：{}", pol.name_zh)),
        (
            16.0,
            format!(
                "收费标准：首次办理 {}（含 USBKEY），年费 {}；{}",
                pol.fees.first,
                pol.fees.annual,
                if pol.seal.is_some() {
                    "含电子印章"
                } else {
                    "不含电子印章"
                }
            ),
        ),
        (16.0, String::new()),
    ];
    for f in &pol.fields {
        let v = app.applicant.get(&f.name).map(String::as_str).unwrap_or("");
        out.push((16.0, format!("{}：{v}", f.label_zh)));
    }
    out.extend([
        (16.0, String::new()),
        (16.0, "申请单位（盖章）：______________________".to_owned()),
        (16.0, String::new()),
        (
            16.0,
            "法定代表人或经办人（签字）：______________________".to_owned(),
        ),
        (16.0, String::new()),
        (16.0, "日期：________年____月____日".to_owned()),
        (16.0, String::new()),
        (
            13.0,
            "请打印本表，签字盖章后扫描上传。黑龙江省数字证书认证有限公司 0451-55918888".to_owned(),
        ),
    ]);
    out
}

/// The font file, read once.
fn font_data(configured: Option<&std::path::Path>) -> Result<&'static [u8], String> {
    static DATA: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    DATA.get_or_init(|| {
        let path = hljca_core::seal::find_font(configured).map_err(|e| e.to_string())?;
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
    .as_ref()
    .map(Vec::as_slice)
    .map_err(Clone::clone)
}

/// The Simplified Chinese face of a collection (or the font itself).
fn face(data: &[u8]) -> Option<Face<'_>> {
    let n = ttf_parser::fonts_in_collection(data).unwrap_or(1);
    let faces: Vec<Face<'_>> = (0..n).filter_map(|i| Face::parse(data, i).ok()).collect();
    let sc = faces.iter().position(|f| {
        f.names()
            .into_iter()
            .filter_map(|x| x.to_string())
            .any(|x| x.trim_end().ends_with(" SC"))
    });
    let i = sc.unwrap_or(0);
    faces.into_iter().nth(i)
}

struct Pen<'a> {
    raster: &'a mut Rasterizer,
    scale: f32,
    dx: f32,
    dy: f32,
    start: Point,
    last: Point,
}

impl Pen<'_> {
    fn at(&self, x: f32, y: f32) -> Point {
        point(x * self.scale + self.dx, self.dy - y * self.scale)
    }
}

impl OutlineBuilder for Pen<'_> {
    fn move_to(&mut self, x: f32, y: f32) {
        self.close();
        let p = self.at(x, y);
        self.start = p;
        self.last = p;
    }
    fn line_to(&mut self, x: f32, y: f32) {
        let p = self.at(x, y);
        self.raster.draw_line(self.last, p);
        self.last = p;
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let (c, p) = (self.at(x1, y1), self.at(x, y));
        self.raster.draw_quad(self.last, c, p);
        self.last = p;
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let (c1, c2, p) = (self.at(x1, y1), self.at(x2, y2), self.at(x, y));
        self.raster.draw_cubic(self.last, c1, c2, p);
        self.last = p;
    }
    fn close(&mut self) {
        if self.last != self.start {
            self.raster.draw_line(self.last, self.start);
        }
        self.last = self.start;
    }
}

/// Draws the lines onto a white page; returns width, height and the grey pixels.
fn draw(face: &Face<'_>, lines: &[(f32, String)]) -> (u32, u32, Vec<u8>) {
    let w = (PAGE_W_PT / 72.0 * DPI) as u32;
    let h = (PAGE_H_PT / 72.0 * DPI) as u32;
    let mut px = vec![255u8; (w * h) as usize];
    let upem = f32::from(face.units_per_em());
    let margin = DPI * 0.8;
    let mut y = margin;
    for (size_pt, text) in lines {
        let size = size_pt / 72.0 * DPI;
        let scale = size / upem;
        y += size * 1.6;
        let mut x = margin;
        for c in text.chars() {
            let Some(g) = face.glyph_index(c) else {
                x += size * 0.5;
                continue;
            };
            let adv = f32::from(face.glyph_hor_advance(g).unwrap_or(0)) * scale;
            if let Some(bb) = face.glyph_bounding_box(g) {
                let gx0 = (x + f32::from(bb.x_min) * scale).floor();
                let gy0 = (y - f32::from(bb.y_max) * scale).floor();
                let gw = ((f32::from(bb.x_max - bb.x_min)) * scale).ceil() as usize + 2;
                let gh = ((f32::from(bb.y_max - bb.y_min)) * scale).ceil() as usize + 2;
                let mut r = Rasterizer::new(gw, gh);
                let mut pen = Pen {
                    raster: &mut r,
                    scale,
                    dx: x - gx0,
                    dy: y - gy0,
                    start: point(0.0, 0.0),
                    last: point(0.0, 0.0),
                };
                face.outline_glyph(g, &mut pen);
                pen.close();
                r.for_each_pixel_2d(|ux, uy, a| {
                    let (px_x, px_y) = (gx0 as i64 + ux as i64, gy0 as i64 + uy as i64);
                    if px_x >= 0 && px_y >= 0 && (px_x as u32) < w && (px_y as u32) < h {
                        let i = (px_y as u32 * w + px_x as u32) as usize;
                        let ink = (a.clamp(0.0, 1.0) * 255.0) as u8;
                        px[i] = px[i].saturating_sub(ink);
                    }
                });
            }
            x += adv;
            if x > w as f32 - margin {
                x = margin;
                y += size * 1.4;
            }
        }
    }
    (w, h, px)
}

/// A PDF text string: UTF-16BE with its BOM, in hex.
fn pdf_text(s: &str) -> String {
    let mut out = String::from("<FEFF");
    for u in s.encode_utf16() {
        out.push_str(&format!("{u:04X}"));
    }
    out.push('>');
    out
}

/// A one-page PDF showing the greyscale image.
fn pdf(w: u32, h: u32, grey: &[u8], title: &str, subject: &str) -> Result<Vec<u8>, String> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(grey).map_err(|e| e.to_string())?;
    let data = z.finish().map_err(|e| e.to_string())?;
    let content = format!("q {PAGE_W_PT} 0 0 {PAGE_H_PT} 0 0 cm /Im1 Do Q\n");
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    let mut obj = |out: &mut Vec<u8>, body: &[u8]| {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };
    obj(&mut out, b"<< /Type /Catalog /Pages 2 0 R >>");
    obj(&mut out, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    obj(
        &mut out,
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W_PT} {PAGE_H_PT}] \
             /Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>"
        )
        .as_bytes(),
    );
    let mut img = format!(
        "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray \
         /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>\nstream\n",
        data.len()
    )
    .into_bytes();
    img.extend_from_slice(&data);
    img.extend_from_slice(b"\nendstream");
    obj(&mut out, &img);
    obj(
        &mut out,
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        )
        .as_bytes(),
    );
    obj(
        &mut out,
        format!(
            "<< /Title {} /Subject ({subject}) /Producer (hljca) >>",
            pdf_text(title)
        )
        .as_bytes(),
    );
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    Ok(out)
}

/// Makes the form of an application.
pub(crate) fn render(
    pol: &Policy,
    app: &Application,
    font: Option<&std::path::Path>,
) -> Result<Vec<u8>, String> {
    let data = font_data(font)?;
    let face = face(data).ok_or("the CJK font has no usable face")?;
    let (w, h, px) = draw(&face, &lines(pol, app));
    pdf(w, h, &px, &title(pol), &app.id.to_string())
}

/// `GET /apps/{id}/form.pdf`.
pub(crate) async fn download(p: &Portal, s: &Session, id: AppId) -> Answer {
    let (acct, _) = match account(s) {
        Ok(a) => a,
        Err(a) => return *a,
    };
    let app = match p.ca.run(move |ca| crate::status::owned(ca, id, acct)).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(s, &format!("{id} is not this account's")),
        Err(e) => return failed(s, e),
    };
    let pol = p.cfg.policies.get(app.cert_type).clone();
    let font = p.cfg.font.clone();
    let made = tokio::task::spawn_blocking(move || render(&pol, &app, font.as_deref())).await;
    match made {
        Ok(Ok(bytes)) => Answer::new(StatusCode::OK, "application/pdf", bytes).with(
            header::CONTENT_DISPOSITION,
            &format!("attachment; filename=\"application-form-{}.pdf\"", id.0),
        ),
        Ok(Err(e)) => refuse(
            s,
            StatusCode::SERVICE_UNAVAILABLE,
            "暂时无法生成申请表（缺少中文字体）。",
            "The form cannot be made now (no CJK font).",
            &e,
        ),
        Err(e) => refuse(
            s,
            StatusCode::SERVICE_UNAVAILABLE,
            "暂时无法生成申请表。",
            "The form cannot be made now.",
            &e.to_string(),
        ),
    }
}
