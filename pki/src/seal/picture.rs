//! The seal picture: validation of supplied PNG/JPEG images, and the choice of
//! generated picture.
//!
//! Generated round seals are drawn as PNG in `round_png.rs` (the default) or as SVG
//! in `svg.rs`.

use super::error::SealError;
use super::font::find_font;
use std::path::Path;

/// Largest image accepted by [`SealPicture::from_image`] (512 KiB).
pub const MAX_IMAGE_BYTES: usize = 512 * 1024;
/// Smallest accepted width or height of a supplied image, in pixels.
pub const MIN_IMAGE_PIXELS: usize = 64;
/// Largest accepted width or height of a supplied image, in pixels.
pub const MAX_IMAGE_PIXELS: usize = 4096;

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];

/// The image format of a seal picture, as written in `SES_ESPictrueInfo.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureKind {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpg,
    /// SVG drawing.
    Svg,
}

impl PictureKind {
    /// The IA5String written into the seal: "PNG", "JPG" or "SVG".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpg => "JPG",
            Self::Svg => "SVG",
        }
    }
}

impl std::fmt::Display for PictureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A seal picture together with its printed size in millimetres.
#[derive(Debug, Clone)]
pub struct SealPicture {
    /// Image format.
    pub kind: PictureKind,
    /// The image file bytes.
    pub data: Vec<u8>,
    /// Printed width in millimetres.
    pub width_mm: u32,
    /// Printed height in millimetres.
    pub height_mm: u32,
}

impl SealPicture {
    /// Validates an image supplied with an application.
    ///
    /// Accepts PNG or JPEG, recognised by magic bytes, whose header decodes fully
    /// (a PNG is decoded completely to make sure it is not truncated; a JPEG must
    /// end with its end-of-image marker), at most [`MAX_IMAGE_BYTES`] long, with
    /// each pixel dimension between [`MIN_IMAGE_PIXELS`] and [`MAX_IMAGE_PIXELS`].
    /// The printed size must be non-zero. Errors start with "seal image:" and name
    /// the problem.
    pub fn from_image(bytes: Vec<u8>, width_mm: u32, height_mm: u32) -> Result<Self, SealError> {
        if width_mm == 0 || height_mm == 0 {
            return Err(SealError::image(format!(
                "printed size must be non-zero (got {width_mm} x {height_mm} mm)"
            )));
        }
        if bytes.is_empty() {
            return Err(SealError::image("empty file"));
        }
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(SealError::image(format!(
                "{} bytes is larger than the {MAX_IMAGE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let kind = if bytes.starts_with(PNG_MAGIC) {
            PictureKind::Png
        } else if bytes.starts_with(JPEG_MAGIC) {
            PictureKind::Jpg
        } else {
            return Err(SealError::image(format!(
                "not a PNG or JPEG (starts with {})",
                hex_prefix(&bytes, 3)
            )));
        };
        let size = imagesize::blob_size(&bytes)
            .map_err(|e| SealError::image(format!("cannot read the {kind} header: {e}")))?;
        check_dimensions(size.width, size.height)?;
        match kind {
            PictureKind::Png => check_png(&bytes, size.width, size.height)?,
            PictureKind::Jpg => check_jpeg_end(&bytes)?,
            PictureKind::Svg => {}
        }
        Ok(Self {
            kind,
            data: bytes,
            width_mm,
            height_mm,
        })
    }
}

impl SealPicture {
    /// The generated round red seal for `name`, as the `[seal]` configuration asks:
    /// `picture` is `None` or "png" for a PNG (see [`SealPicture::generate_round_png`])
    /// set in `font`, or in the first installed font of
    /// [`DEFAULT_FONT_PATHS`](super::DEFAULT_FONT_PATHS) when `font` is `None`; "svg"
    /// for the SVG of [`SealPicture::generate_round`], which needs no font. Case and
    /// surrounding blanks of `picture` are ignored.
    ///
    /// There is no silent fallback to SVG: a missing or unusable font is an error
    /// ([`SealError::Picture`]) that names the font, or the places looked in and that
    /// `softhsm-setup.sh` installs `fonts-noto-cjk`. Another `picture` value is an error too.
    pub fn generate(
        name: &str,
        width_mm: u32,
        height_mm: u32,
        picture: Option<&str>,
        font: Option<&Path>,
    ) -> Result<Self, SealError> {
        match picture.map(|p| p.trim().to_ascii_lowercase()).as_deref() {
            None | Some("png") => {
                let font = find_font(font)?;
                Self::generate_round_png(name, width_mm, height_mm, &font)
            }
            Some("svg") => Ok(Self::generate_round(name, width_mm, height_mm)),
            Some(other) => Err(SealError::picture(format!(
                "[seal] picture = \"{other}\" is not known: use \"png\" (the default) or \"svg\""
            ))),
        }
    }
}

/// Upper-case hex of the first `n` bytes, space separated ("47 49 46").
fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes
        .iter()
        .take(n)
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_dimensions(width: usize, height: usize) -> Result<(), SealError> {
    let ok = |v: usize| (MIN_IMAGE_PIXELS..=MAX_IMAGE_PIXELS).contains(&v);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(SealError::image(format!(
            "{width} x {height} pixels is outside the accepted range \
             ({MIN_IMAGE_PIXELS}..={MAX_IMAGE_PIXELS} on each side)"
        )))
    }
}

/// Decodes the whole PNG row by row (bounded memory) and reads up to `IEND`.
fn check_png(bytes: &[u8], width: usize, height: usize) -> Result<(), SealError> {
    let bad = |e: png::DecodingError| SealError::image(format!("PNG does not decode: {e}"));
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(bad)?;
    let info = reader.info();
    if usize::try_from(info.width).ok() != Some(width)
        || usize::try_from(info.height).ok() != Some(height)
    {
        return Err(SealError::image("PNG header dimensions are inconsistent"));
    }
    let mut rows = 0usize;
    while reader.next_row().map_err(bad)?.is_some() {
        rows += 1;
    }
    if rows == 0 {
        return Err(SealError::image("PNG has no image rows"));
    }
    reader.finish().map_err(bad)?;
    Ok(())
}

/// A JPEG must end with the EOI marker (FF D9), trailing zero padding allowed.
fn check_jpeg_end(bytes: &[u8]) -> Result<(), SealError> {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if bytes[..end].ends_with(&[0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(SealError::image(
            "JPEG is truncated (no end-of-image marker FF D9)",
        ))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A `w` x `h` opaque red RGB PNG made with the png crate (also used by `seal::tests`).
    pub(in crate::seal) fn red_png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().unwrap();
            let pixels: Vec<u8> = (0..w * h).flat_map(|_| [0xD7u8, 0x00, 0x0F]).collect();
            writer.write_image_data(&pixels).unwrap();
        }
        out
    }

    #[test]
    fn generate_chooses_the_format() {
        let svg = SealPicture::generate("某公司", 40, 40, Some(" SVG "), None).unwrap();
        assert_eq!(svg.kind, PictureKind::Svg);
        let err = SealPicture::generate("某公司", 40, 40, Some("gif"), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "seal picture: [seal] picture = \"gif\" is not known: use \"png\" (the default) or \"svg\""
        );
        let err = SealPicture::generate(
            "某公司",
            40,
            40,
            Some("png"),
            Some(Path::new("/no/font.ttc")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/no/font.ttc ([seal] font)"), "{err}");
        if let Some(font) = super::super::font::tests::installed_font() {
            for choice in [None, Some("png"), Some("PNG")] {
                let pic = SealPicture::generate("某公司", 40, 40, choice, Some(&font)).unwrap();
                assert_eq!(pic.kind.as_str(), "PNG");
            }
            let pic = SealPicture::generate("某公司", 40, 40, None, None).unwrap();
            assert_eq!(pic.kind, PictureKind::Png);
        }
    }

    #[test]
    fn accepts_small_png() {
        let pic = SealPicture::from_image(red_png(64, 64), 40, 40).unwrap();
        assert_eq!(pic.kind, PictureKind::Png);
        assert_eq!(pic.kind.as_str(), "PNG");
        assert_eq!((pic.width_mm, pic.height_mm), (40, 40));
    }

    #[test]
    fn rejects_gif() {
        let gif = b"GIF89a\x40\x00\x40\x00\x00\x00\x00;".to_vec();
        let err = SealPicture::from_image(gif, 40, 40)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "seal image: not a PNG or JPEG (starts with 47 49 46)");
    }

    #[test]
    fn rejects_truncated_png() {
        let png = red_png(64, 64);
        for cut in [20, 40, png.len() / 2, png.len() - 13, png.len() - 1] {
            let err = SealPicture::from_image(png[..cut].to_vec(), 40, 40);
            assert!(
                matches!(err, Err(SealError::Image { .. })),
                "cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn rejects_oversize() {
        let mut big = red_png(64, 64);
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        let err = SealPicture::from_image(big, 40, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn rejects_tiny_png() {
        let err = SealPicture::from_image(red_png(10, 10), 40, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10 x 10 pixels"), "{err}");
    }

    #[test]
    fn rejects_zero_size_and_empty() {
        assert!(SealPicture::from_image(red_png(64, 64), 0, 40).is_err());
        assert!(SealPicture::from_image(Vec::new(), 40, 40).is_err());
    }

    #[test]
    fn jpeg_without_eoi_is_rejected() {
        // SOI, then an SOF0 segment for 64x64, then nothing.
        let mut jpg = vec![
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x40, 0x00, 0x40,
        ];
        jpg.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        let err = SealPicture::from_image(jpg.clone(), 40, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        jpg.extend_from_slice(&[0xFF, 0xD9]);
        let pic = SealPicture::from_image(jpg, 40, 40).unwrap();
        assert_eq!(pic.kind.as_str(), "JPG");
    }
}
