//! Generation of the standard round red seal as a PNG, the default picture.
//!
//! Outside seal readers show PNG and JPEG pictures but not SVG ones (ofdrw decodes
//! pictures with ImageIO, easyofd extracts nothing from an SVG seal), so the generated
//! seal is drawn here: a transparent RGBA image at [`PRINT_DPI`] of the policy's size,
//! with a red ring, the name along the upper arc and a five-pointed star in the centre.
//!
//! Glyph outlines come from a CJK font (see [`find_font`](super::find_font)) through
//! `ttf-parser`; every shape is filled with the anti-aliasing `ab_glyph_rasterizer`
//! after rotating it onto the circle, so no glyph bitmap is ever resampled.

use super::error::SealError;
use super::font::SealFont;
use super::picture::{MAX_IMAGE_PIXELS, MIN_IMAGE_PIXELS, SealPicture};
use ab_glyph_rasterizer::{Point, Rasterizer, point};
use std::f32::consts::PI;
use std::path::Path;
use ttf_parser::{Face, OutlineBuilder};

/// Resolution of generated PNG seals, in dots per inch (a 40 mm seal is 472 pixels).
pub const PRINT_DPI: u32 = 300;

/// The seal red as RGB, the same colour as [`SEAL_RED`](super::SEAL_RED).
pub const SEAL_RED_RGB: [u8; 3] = [0xD7, 0x00, 0x0F];

/// Ring width as a fraction of the seal radius (1.2 mm on a 40 mm seal).
const RING: f32 = 0.06;
/// Gap between the ring and the top of the name.
const TEXT_GAP: f32 = 0.05;
/// Height of the name's em box.
const TEXT_HEIGHT: f32 = 0.30;
/// Circumradius of the star (14 mm across on a 40 mm seal).
const STAR: f32 = 0.35;
/// Angle between two neighbouring characters of a short name, in degrees.
const NATURAL_PITCH_DEG: f32 = 30.0;
/// Arc covered by names of up to 13 characters, in degrees; longer names get up to
/// [`MAX_SPAN_DEG`].
const SPAN_DEG: f32 = 240.0;
/// Widest arc any name covers, in degrees.
const MAX_SPAN_DEG: f32 = 290.0;
/// Narrowest width/height ratio of a character before the name is set smaller.
const MIN_ASPECT: f32 = 0.6;

impl SealPicture {
    /// Generates the standard round red seal as a PNG: a transparent image of
    /// `width_mm` × `height_mm` at [`PRINT_DPI`] (kept within
    /// [`MIN_IMAGE_PIXELS`]..=[`MAX_IMAGE_PIXELS`] pixels a side) holding a red ring,
    /// `name` along its upper arc (clockwise, each character upright towards the rim)
    /// and a filled five-pointed star in the centre. The circle fills the shorter
    /// side. `font` is a TrueType/OpenType font or collection with glyphs for the
    /// name (see [`find_font`](super::find_font)). A zero size is raised to 1 mm.
    ///
    /// Errors ([`SealError::Picture`]) name the font when it cannot be read or has no
    /// glyph for a character of the name.
    pub fn generate_round_png(
        name: &str,
        width_mm: u32,
        height_mm: u32,
        font: &Path,
    ) -> Result<SealPicture, SealError> {
        let width_mm = width_mm.max(1);
        let height_mm = height_mm.max(1);
        let text = seal_text(name);
        let font = SealFont::load(font)?;
        let face = font.face_for(&text)?;
        let px_per_mm = pixels_per_mm(width_mm, height_mm);
        let w = to_pixels(width_mm, px_per_mm);
        let h = to_pixels(height_mm, px_per_mm);
        let coverage = render_round(&face, &text, w, h)?;
        let png = encode_png(w, h, &coverage, px_per_mm)?;
        SealPicture::from_image(png, width_mm, height_mm)
    }
}

/// The name as drawn: control characters dropped, outer blanks trimmed.
fn seal_text(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Print resolution in pixels per millimetre, lowered or raised so that the picture
/// stays within the pixel sizes [`SealPicture::from_image`] accepts.
fn pixels_per_mm(width_mm: u32, height_mm: u32) -> f32 {
    let long = width_mm.max(height_mm) as f32;
    let short = width_mm.min(height_mm) as f32;
    let mut ppm = PRINT_DPI as f32 / 25.4;
    if long * ppm > MAX_IMAGE_PIXELS as f32 {
        ppm = MAX_IMAGE_PIXELS as f32 / long;
    }
    if short * ppm < MIN_IMAGE_PIXELS as f32 {
        ppm = MIN_IMAGE_PIXELS as f32 / short;
    }
    ppm
}

fn to_pixels(mm: u32, px_per_mm: f32) -> u32 {
    // Within 1..=MAX_IMAGE_PIXELS by construction; the cast saturates in any case.
    ((mm as f32 * px_per_mm).round() as u32).max(1)
}

/// Draws the seal into a `w` × `h` coverage map (0.0 = transparent, 1.0 = red).
fn render_round(face: &Face<'_>, text: &str, w: u32, h: u32) -> Result<Vec<f32>, SealError> {
    let mut canvas = Canvas::new(w as usize, h as usize);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    // Leave one pixel for the anti-aliased rim.
    let radius = (w.min(h) as f32 / 2.0 - 1.0).max(1.0);

    let ring = radius * RING;
    canvas.fill(|pen| {
        pen.circle(cx, cy, radius, true);
        pen.circle(cx, cy, radius - ring, false);
    });
    canvas.fill(|pen| pen.star(cx, cy, radius * STAR));

    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Ok(canvas.coverage);
    }
    let layout = NameLayout::new(chars.len(), radius - ring - radius * TEXT_GAP, radius);
    let metrics = FaceMetrics::of(face);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            continue;
        }
        let glyph = face.glyph_index(c).ok_or_else(|| {
            SealError::picture(format!("the font has no glyph for '{c}' of the seal name"))
        })?;
        let advance = face
            .glyph_hor_advance(glyph)
            .map_or(metrics.units_per_em, f32::from);
        let angle = layout.angle_of(i);
        let (sin, cos) = angle.sin_cos();
        // Radial outward unit vector (screen y down) and the clockwise tangent.
        let (out_x, out_y) = (sin, -cos);
        let (tan_x, tan_y) = (cos, sin);
        let (ox, oy) = (
            cx + layout.centre_radius * out_x,
            cy + layout.centre_radius * out_y,
        );
        let sy = layout.em / metrics.units_per_em;
        let sx = sy * layout.aspect;
        // Font unit (x, y), y up: u = (x - advance/2)·sx along the tangent,
        // v = (y - middle)·sy outward.
        let t = Affine {
            a: sx * tan_x,
            b: sx * tan_y,
            c: sy * out_x,
            d: sy * out_y,
            e: ox - sx * advance / 2.0 * tan_x - sy * metrics.middle * out_x,
            f: oy - sx * advance / 2.0 * tan_y - sy * metrics.middle * out_y,
        };
        canvas.fill(|pen| {
            pen.transform = t;
            // A glyph without an outline (a blank) draws nothing.
            let _ = face.outline_glyph(glyph, pen);
        });
    }
    Ok(canvas.coverage)
}

/// Where the characters of the name go.
#[derive(Debug, Clone, Copy)]
struct NameLayout {
    /// Number of characters.
    count: usize,
    /// Angle between neighbouring characters, radians.
    pitch: f32,
    /// Height of a character's em box, pixels.
    em: f32,
    /// Width/height ratio of a character.
    aspect: f32,
    /// Radius of the em boxes' centres, pixels.
    centre_radius: f32,
}

impl NameLayout {
    /// Lays `count` characters out below the radius `top` of a seal of radius `radius`:
    /// a short name keeps a natural spacing, a longer one covers [`SPAN_DEG`] (up to
    /// [`MAX_SPAN_DEG`] for more than 13 characters) with narrower characters, and a
    /// very long one is also set smaller.
    fn new(count: usize, top: f32, radius: f32) -> Self {
        let n = count as f32;
        let span_deg = ((n - 1.0) * NATURAL_PITCH_DEG)
            .min(SPAN_DEG + (n - 13.0).max(0.0) * 5.0)
            .min(MAX_SPAN_DEG);
        let pitch = if count > 1 {
            span_deg.to_radians() / (n - 1.0)
        } else {
            NATURAL_PITCH_DEG.to_radians()
        };
        let mut em = radius * TEXT_HEIGHT;
        // The em boxes' inner edges are closest together; leave 5 % of that arc free.
        let width_at = |em: f32| (top - em) * pitch * 0.95;
        let mut aspect = (width_at(em) / em).min(1.0);
        if aspect < MIN_ASPECT {
            // Solve (top - em) * pitch * 0.95 = MIN_ASPECT * em for em.
            em = top * pitch * 0.95 / (MIN_ASPECT + pitch * 0.95);
            aspect = MIN_ASPECT;
        }
        Self {
            count,
            pitch,
            em,
            aspect,
            centre_radius: top - em / 2.0,
        }
    }

    /// Angle of character `i`, radians clockwise from twelve o'clock; the name is
    /// centred on the top.
    fn angle_of(&self, i: usize) -> f32 {
        (i as f32 - (self.count as f32 - 1.0) / 2.0) * self.pitch
    }
}

/// The font measures the layout needs, in font units.
struct FaceMetrics {
    units_per_em: f32,
    /// Middle of the ideographic em box (OS/2 typographic ascender/descender, else
    /// hhea), which is centred on the text circle.
    middle: f32,
}

impl FaceMetrics {
    fn of(face: &Face<'_>) -> Self {
        let units_per_em = f32::from(face.units_per_em().max(1));
        let (asc, desc) = match (face.typographic_ascender(), face.typographic_descender()) {
            (Some(a), Some(d)) if a > d => (a, d),
            _ => (face.ascender(), face.descender()),
        };
        Self {
            units_per_em,
            middle: (f32::from(asc) + f32::from(desc)) / 2.0,
        }
    }
}

/// A coverage map the shapes are filled into, each on its own so that their
/// winding directions never cancel.
struct Canvas {
    coverage: Vec<f32>,
    raster: Rasterizer,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            coverage: vec![0.0; width * height],
            raster: Rasterizer::new(width, height),
        }
    }

    /// Fills the outline drawn by `draw` (non-zero winding) into the coverage map.
    fn fill(&mut self, draw: impl FnOnce(&mut Pen<'_>)) {
        self.raster.clear();
        {
            let mut pen = Pen::new(&mut self.raster);
            draw(&mut pen);
            pen.close();
        }
        let coverage = &mut self.coverage;
        self.raster.for_each_pixel(|i, a| {
            if let Some(c) = coverage.get_mut(i) {
                *c = c.max(a.min(1.0));
            }
        });
    }
}

/// `(x, y) ↦ (a·x + c·y + e, b·x + d·y + f)`.
#[derive(Debug, Clone, Copy)]
struct Affine {
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
    f: f32,
}

impl Affine {
    const IDENTITY: Self = Self {
        a: 1.0,
        b: 0.0,
        c: 0.0,
        d: 1.0,
        e: 0.0,
        f: 0.0,
    };

    fn apply(&self, x: f32, y: f32) -> Point {
        point(
            self.a * x + self.c * y + self.e,
            self.b * x + self.d * y + self.f,
        )
    }
}

/// Draws transformed outlines into a rasterizer, closing every contour.
struct Pen<'r> {
    raster: &'r mut Rasterizer,
    transform: Affine,
    start: Point,
    last: Point,
}

impl<'r> Pen<'r> {
    fn new(raster: &'r mut Rasterizer) -> Self {
        Self {
            raster,
            transform: Affine::IDENTITY,
            start: point(0.0, 0.0),
            last: point(0.0, 0.0),
        }
    }

    /// A circle as a fine polygon, clockwise on screen or counter-clockwise.
    fn circle(&mut self, cx: f32, cy: f32, r: f32, clockwise: bool) {
        // Segments about two pixels long, at least 64.
        let steps = ((2.0 * PI * r / 2.0).ceil() as usize).max(64);
        let dir = if clockwise { 1.0 } else { -1.0 };
        for i in 0..=steps {
            let a = dir * 2.0 * PI * i as f32 / steps as f32;
            let (x, y) = (cx + r * a.sin(), cy - r * a.cos());
            if i == 0 {
                self.move_to(x, y);
            } else {
                self.line_to(x, y);
            }
        }
        self.close();
    }

    /// A regular five-pointed star, point up, circumradius `r`.
    fn star(&mut self, cx: f32, cy: f32, r: f32) {
        // Inner radius of a regular star: r · sin 18° / sin 54°.
        let inner = r * (PI / 10.0).sin() / (3.0 * PI / 10.0).sin();
        for i in 0..10 {
            let rr = if i % 2 == 0 { r } else { inner };
            let a = i as f32 * PI / 5.0;
            let (x, y) = (cx + rr * a.sin(), cy - rr * a.cos());
            if i == 0 {
                self.move_to(x, y);
            } else {
                self.line_to(x, y);
            }
        }
        self.close();
    }
}

impl OutlineBuilder for Pen<'_> {
    fn move_to(&mut self, x: f32, y: f32) {
        self.close();
        let p = self.transform.apply(x, y);
        self.start = p;
        self.last = p;
    }

    fn line_to(&mut self, x: f32, y: f32) {
        let p = self.transform.apply(x, y);
        self.raster.draw_line(self.last, p);
        self.last = p;
    }

    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let (c, p) = (self.transform.apply(x1, y1), self.transform.apply(x, y));
        self.raster.draw_quad(self.last, c, p);
        self.last = p;
    }

    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let c1 = self.transform.apply(x1, y1);
        let c2 = self.transform.apply(x2, y2);
        let p = self.transform.apply(x, y);
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

/// Encodes the coverage map as an 8-bit RGBA PNG in the seal red, alpha = coverage,
/// with its print resolution in a `pHYs` chunk.
fn encode_png(w: u32, h: u32, coverage: &[f32], px_per_mm: f32) -> Result<Vec<u8>, SealError> {
    let [r, g, b] = SEAL_RED_RGB;
    let rgba: Vec<u8> = coverage
        .iter()
        .flat_map(|&c| [r, g, b, (c.clamp(0.0, 1.0) * 255.0).round() as u8])
        .collect();
    let bad = |e: png::EncodingError| SealError::picture(format!("cannot encode the PNG: {e}"));
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let ppu = (px_per_mm * 1000.0).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppu,
            yppu: ppu,
            unit: png::Unit::Meter,
        }));
        let mut writer = enc.write_header().map_err(bad)?;
        writer.write_image_data(&rgba).map_err(bad)?;
        writer.finish().map_err(bad)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::font::tests::installed_font;
    use super::super::picture::PictureKind;
    use super::*;

    const NAME: &str = "哈尔滨龙江建设工程有限公司";

    /// Decodes an RGBA PNG into (width, height, pixels).
    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn alpha(px: &[u8], w: u32, x: u32, y: u32) -> u8 {
        px[((y * w + x) * 4 + 3) as usize]
    }

    fn is_red(px: &[u8], w: u32, x: u32, y: u32) -> bool {
        let i = ((y * w + x) * 4) as usize;
        px[i..i + 3] == SEAL_RED_RGB && px[i + 3] > 200
    }

    /// Opaque pixels in the ring sector of radii `r0..r1` (fractions of the radius)
    /// and angles `a0..a1` (degrees clockwise from twelve o'clock).
    fn ink(px: &[u8], w: u32, h: u32, (r0, r1): (f32, f32), (a0, a1): (f32, f32)) -> usize {
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        let radius = w.min(h) as f32 / 2.0;
        let mut n = 0;
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let r = (dx * dx + dy * dy).sqrt() / radius;
                let a = dx.atan2(-dy).to_degrees();
                if (r0..r1).contains(&r) && (a0..a1).contains(&a) && alpha(px, w, x, y) > 128 {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn renders_a_company_seal() {
        let Some(font) = installed_font() else { return };
        let pic = SealPicture::generate_round_png(NAME, 40, 40, &font).unwrap();
        assert_eq!(pic.kind, PictureKind::Png);
        assert_eq!(pic.kind.as_str(), "PNG");
        assert_eq!((pic.width_mm, pic.height_mm), (40, 40));
        std::fs::write("/tmp/seal-test.png", &pic.data).unwrap();

        let (w, h, px) = decode(&pic.data);
        // 40 mm at 300 dpi.
        let expected = (40.0 * PRINT_DPI as f32 / 25.4).round() as u32;
        assert_eq!((w, h), (expected, expected));
        assert_eq!(expected, 472);
        let (cx, cy) = (w / 2, h / 2);
        let radius = w as f32 / 2.0 - 1.0;
        let ring_mid = (radius * (1.0 - RING / 2.0)).round() as u32;
        // The ring at 3, 6 and 9 o'clock, the star in the centre and its top point.
        assert!(is_red(&px, w, cx + ring_mid, cy));
        assert!(is_red(&px, w, cx, cy + ring_mid));
        assert!(is_red(&px, w, cx - ring_mid, cy));
        assert!(is_red(&px, w, cx, cy));
        assert!(is_red(&px, w, cx, cy - (radius * STAR * 0.8) as u32));
        // Transparent corners, and just inside the ring at the bottom.
        for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (5, 5)] {
            assert_eq!(alpha(&px, w, x, y), 0, "({x}, {y})");
        }
        assert_eq!(alpha(&px, w, cx, cy + (radius * 0.75) as u32), 0);
        // The name fills the upper arc on both sides; nothing between the star and the
        // ring at the bottom.
        let band = (0.55, 0.9);
        let left = ink(&px, w, h, band, (-125.0, -5.0));
        let right = ink(&px, w, h, band, (5.0, 125.0));
        assert!(left > 2000 && right > 2000, "name ink {left} / {right}");
        assert_eq!(ink(&px, w, h, (0.4, 0.92), (140.0, 180.0)), 0);
        assert_eq!(ink(&px, w, h, (0.4, 0.92), (-180.0, -140.0)), 0);
    }

    #[test]
    fn personal_seal_and_sizes() {
        let Some(font) = installed_font() else { return };
        let pic = SealPicture::generate_round_png("张三", 20, 20, &font).unwrap();
        let (w, h, _) = decode(&pic.data);
        assert_eq!((w, h), (236, 236));
        std::fs::write("/tmp/seal-test-personal.png", &pic.data).unwrap();
        // A non-square size keeps the circle in the shorter side; a zero size is 1 mm,
        // raised to the smallest accepted picture.
        let pic = SealPicture::generate_round_png("某某有限公司", 45, 30, &font).unwrap();
        let (w, h, _) = decode(&pic.data);
        assert_eq!((w, h), (531, 354));
        let pic = SealPicture::generate_round_png("某", 0, 0, &font).unwrap();
        assert_eq!((pic.width_mm, pic.height_mm), (1, 1));
        let (w, h, _) = decode(&pic.data);
        assert_eq!((w, h), (64, 64));
        // An empty name draws the ring and star only; a very long name still fits.
        SealPicture::generate_round_png("", 40, 40, &font).unwrap();
        let long: String = NAME.repeat(3);
        let pic = SealPicture::generate_round_png(&long, 40, 40, &font).unwrap();
        std::fs::write("/tmp/seal-test-long.png", &pic.data).unwrap();
    }

    #[test]
    fn layout_keeps_characters_apart() {
        for count in 1..60 {
            let l = NameLayout::new(count, 90.0, 100.0);
            let span = (count as f32 - 1.0) * l.pitch;
            assert!(span <= MAX_SPAN_DEG.to_radians() + 1e-4, "{count}: {span}");
            assert!(
                l.aspect >= MIN_ASPECT - 1e-4 && l.aspect <= 1.0,
                "{count}: {l:?}"
            );
            let inner_gap = (90.0 - l.em) * l.pitch - l.em * l.aspect;
            assert!(inner_gap >= -1e-3, "{count}: {l:?}");
            assert!(
                l.centre_radius - l.em / 2.0 > STAR * 100.0,
                "{count}: {l:?}"
            );
        }
        let l = NameLayout::new(13, 89.0, 100.0);
        assert!((l.angle_of(0) + SPAN_DEG.to_radians() / 2.0).abs() < 1e-4);
        assert!((l.angle_of(12) - SPAN_DEG.to_radians() / 2.0).abs() < 1e-4);
    }

    #[test]
    fn missing_font_is_named() {
        let err = SealPicture::generate_round_png(NAME, 40, 40, Path::new("/nonexistent/f.ttc"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("seal picture: cannot read the font /nonexistent/f.ttc"),
            "{err}"
        );
    }
}
