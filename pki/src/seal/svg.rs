//! Generation of the standard round red seal as SVG.
//!
//! The text stays text (no font files are embedded): the name is set along the
//! upper arc with `<textPath>`, so the viewer's CJK serif font renders it.
//! Drawing units are tenths of a millimetre, so `viewBox="0 0 400 400"` is a
//! 40 × 40 mm seal.

use super::picture::{PictureKind, SealPicture};
use std::f64::consts::PI;
use std::fmt::Write as _;

/// The seal red.
pub const SEAL_RED: &str = "#d7000f";

impl SealPicture {
    /// Generates the standard round red seal as SVG: a red circle border, a
    /// five-pointed star in the centre and `name` along the upper arc. No bottom
    /// line; see [`SealPicture::generate_round_with_footer`]. A zero size is
    /// raised to 1 mm.
    pub fn generate_round(name: &str, width_mm: u32, height_mm: u32) -> SealPicture {
        Self::generate_round_with_footer(name, None, width_mm, height_mm)
    }

    /// Like [`SealPicture::generate_round`], with an optional horizontal line of
    /// text under the star (e.g. "电子印章" or "合同专用章").
    pub fn generate_round_with_footer(
        name: &str,
        footer: Option<&str>,
        width_mm: u32,
        height_mm: u32,
    ) -> SealPicture {
        let width_mm = width_mm.max(1);
        let height_mm = height_mm.max(1);
        let svg = round_svg(name, footer, width_mm, height_mm);
        SealPicture {
            kind: PictureKind::Svg,
            data: svg.into_bytes(),
            width_mm,
            height_mm,
        }
    }
}

/// Escapes the five XML special characters.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0; drop them.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A point on a circle, `deg` measured clockwise from twelve o'clock.
fn on_circle(cx: f64, cy: f64, r: f64, deg: f64) -> (f64, f64) {
    let a = deg * PI / 180.0;
    (cx + r * a.sin(), cy - r * a.cos())
}

fn round_svg(name: &str, footer: Option<&str>, width_mm: u32, height_mm: u32) -> String {
    let w = f64::from(width_mm) * 10.0;
    let h = f64::from(height_mm) * 10.0;
    let (cx, cy) = (w / 2.0, h / 2.0);
    let outer = w.min(h) / 2.0;
    let stroke = outer * 0.06;
    let border_r = outer - stroke / 2.0;

    // Name along the upper arc, from 8 o'clock clockwise over the top to 4 o'clock.
    let text_r = outer * 0.70;
    let (sweep_from, sweep_to) = (-120.0_f64, 120.0_f64);
    let arc_len = text_r * (sweep_to - sweep_from) * PI / 180.0;
    let chars = name.chars().filter(|c| !c.is_control()).count().max(1);
    let chars_f = f64::from(u32::try_from(chars).unwrap_or(u32::MAX));
    let font = (outer * 0.22).min(arc_len * 0.9 / chars_f);
    // Spread org-seal style names over the arc; short names keep natural spacing.
    let span = (chars_f * font * 1.5).min(arc_len * 0.95);
    let (x0, y0) = on_circle(cx, cy, text_r, sweep_from);
    let (x1, y1) = on_circle(cx, cy, text_r, sweep_to);

    // Five-pointed star, point up.
    let star_r = outer * 0.32;
    let star_inner = star_r * 0.382;
    let mut star = String::new();
    for i in 0..10 {
        let r = if i % 2 == 0 { star_r } else { star_inner };
        let (x, y) = on_circle(cx, cy, r, f64::from(i) * 36.0);
        let _ = write!(star, "{x:.2},{y:.2} ");
    }

    let mut svg = String::new();
    let _ = write!(
        svg,
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{wm}mm" height="{hm}mm" viewBox="0 0 {w} {h}">"#,
            "\n",
            r#"<defs><path id="seal-arc" d="M {x0:.2} {y0:.2} A {tr:.2} {tr:.2} 0 1 1 {x1:.2} {y1:.2}"/></defs>"#,
            "\n",
            r#"<circle cx="{cx:.2}" cy="{cy:.2}" r="{br:.2}" fill="none" stroke="{red}" stroke-width="{sw:.2}"/>"#,
            "\n",
            r#"<polygon points="{star}" fill="{red}"/>"#,
            "\n",
            r#"<text font-family="SimSun, Songti SC, Noto Serif CJK SC, serif" font-size="{fs:.2}" font-weight="bold" fill="{red}" text-anchor="middle">"#,
            r##"<textPath href="#seal-arc" xlink:href="#seal-arc" startOffset="50%" textLength="{span:.2}" lengthAdjust="spacingAndGlyphs">{name}</textPath></text>"##,
            "\n",
        ),
        wm = width_mm,
        hm = height_mm,
        w = w,
        h = h,
        x0 = x0,
        y0 = y0,
        x1 = x1,
        y1 = y1,
        tr = text_r,
        cx = cx,
        cy = cy,
        br = border_r,
        red = SEAL_RED,
        sw = stroke,
        star = star.trim_end(),
        fs = font,
        span = span,
        name = xml_escape(name),
    );
    if let Some(footer) = footer.filter(|f| !f.trim().is_empty()) {
        let footer_chars = footer.chars().count().max(1);
        let footer_f = f64::from(u32::try_from(footer_chars).unwrap_or(u32::MAX));
        let footer_font = (outer * 0.15).min(outer * 1.1 / footer_f);
        let _ = writeln!(
            svg,
            r#"<text x="{cx:.2}" y="{y:.2}" font-family="SimSun, Songti SC, Noto Serif CJK SC, serif" font-size="{ff:.2}" fill="{SEAL_RED}" text-anchor="middle">{text}</text>"#,
            y = cy + outer * 0.62,
            ff = footer_font,
            text = xml_escape(footer),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_text(p: &SealPicture) -> &str {
        std::str::from_utf8(&p.data).unwrap()
    }

    #[test]
    fn escapes_name_and_is_svg() {
        let p = SealPicture::generate_round("A<B&C \"有限公司\"", 40, 40);
        assert_eq!(p.kind, PictureKind::Svg);
        assert_eq!(p.kind.as_str(), "SVG");
        let s = as_text(&p);
        assert!(s.starts_with("<?xml"));
        assert!(s.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.contains(r##"xlink:href="#seal-arc""##));
        assert!(s.contains(r#"width="40mm" height="40mm" viewBox="0 0 400 400""#));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("A&lt;B&amp;C &quot;有限公司&quot;"));
        assert!(!s.contains("A<B"));
        assert!(s.contains("<textPath"));
        assert!(s.contains("<circle") && s.contains("<polygon"));
        assert!(s.contains(SEAL_RED));
        // Balanced element counts.
        assert_eq!(s.matches("<text ").count(), s.matches("</text>").count());
        assert_eq!(s.matches("<svg").count(), s.matches("</svg>").count());
        // Star has ten vertices.
        let pts = s
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(pts.split_whitespace().count(), 10);
    }

    #[test]
    fn footer_is_optional_and_escaped() {
        let plain = SealPicture::generate_round("黑龙江某某有限公司", 40, 40);
        assert_eq!(as_text(&plain).matches("<text ").count(), 1);
        let with = SealPicture::generate_round_with_footer("某公司", Some("电子<印章>"), 42, 42);
        let s = as_text(&with);
        assert_eq!(s.matches("<text ").count(), 2);
        assert!(s.contains("电子&lt;印章&gt;"));
        assert!(s.contains(r#"width="42mm""#));
    }

    #[test]
    fn zero_size_is_clamped() {
        let p = SealPicture::generate_round("x", 0, 0);
        assert_eq!((p.width_mm, p.height_mm), (1, 1));
    }
}
