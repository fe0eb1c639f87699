//! The CJK font that sets the name on generated PNG seals: where it is looked for,
//! and which face of a font collection (`.ttc`) is used.

use super::error::SealError;
use std::path::{Path, PathBuf};
use ttf_parser::{Face, name_id};

/// Where a CJK font is looked for when `[seal] font` is not configured, best first:
/// the Noto CJK fonts of Debian's `fonts-noto-cjk` package, which `softhsm-setup.sh`
/// installs. Serif (Song style, as on Chinese official seals) before sans, bold before
/// regular.
pub const DEFAULT_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
];

/// The font file for a generated PNG seal: `configured` (the `[seal] font` setting)
/// when given, which must then be a readable file, otherwise the first of
/// [`DEFAULT_FONT_PATHS`] that exists.
///
/// Errors name the configured path, or every place looked in and how to install or
/// configure a font.
pub fn find_font(configured: Option<&Path>) -> Result<PathBuf, SealError> {
    if let Some(path) = configured {
        return match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(path.to_path_buf()),
            Ok(_) => Err(SealError::picture(format!(
                "the font {} ([seal] font) is not a file",
                path.display()
            ))),
            Err(e) => Err(SealError::picture(format!(
                "cannot read the font {} ([seal] font): {e}",
                path.display()
            ))),
        };
    }
    DEFAULT_FONT_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            SealError::picture(format!(
                "no CJK font for the generated PNG seal: [seal] font is not set and none of {} \
                 exists; run softhsm-setup.sh (it installs the Debian package fonts-noto-cjk), \
                 set [seal] font to a TrueType/OpenType font with Chinese glyphs, \
                 or set [seal] picture = \"svg\"",
                DEFAULT_FONT_PATHS.join(", ")
            ))
        })
}

/// A font file read into memory.
pub(crate) struct SealFont {
    path: PathBuf,
    data: Vec<u8>,
}

impl SealFont {
    /// Reads the font file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, SealError> {
        let data = std::fs::read(path).map_err(|e| {
            SealError::picture(format!("cannot read the font {}: {e}", path.display()))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            data,
        })
    }

    /// The face that sets `text`: in a collection, the first face with a glyph for
    /// every character, preferring a Simplified Chinese one (family name ending in
    /// "SC", as in Noto CJK); in a single font, that font. Errors name the font and
    /// the first character it has no glyph for.
    pub(crate) fn face_for(&self, text: &str) -> Result<Face<'_>, SealError> {
        let count = ttf_parser::fonts_in_collection(&self.data).unwrap_or(1);
        let mut faces: Vec<Face<'_>> = (0..count)
            .filter_map(|i| Face::parse(&self.data, i).ok())
            .collect();
        if faces.is_empty() {
            return Err(SealError::picture(format!(
                "{} is not a TrueType/OpenType font or font collection",
                self.path.display()
            )));
        }
        let covers = |face: &Face<'_>| missing_glyph(face, text).is_none();
        if let Some(i) = faces
            .iter()
            .position(|f| covers(f) && is_simplified_chinese(f))
            .or_else(|| faces.iter().position(covers))
        {
            return Ok(faces.swap_remove(i));
        }
        let c = faces
            .first()
            .and_then(|f| missing_glyph(f, text))
            .unwrap_or('\u{FFFD}');
        Err(SealError::picture(format!(
            "the font {} has no glyph for '{c}' (U+{:04X}) of the seal name; \
             set [seal] font to a font with Chinese glyphs",
            self.path.display(),
            u32::from(c)
        )))
    }
}

/// The first non-blank character of `text` that `face` has no glyph for.
fn missing_glyph(face: &Face<'_>, text: &str) -> Option<char> {
    text.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .find(|&c| face.glyph_index(c).is_none_or(|g| g.0 == 0))
}

/// Whether the face's family name ends in "SC" (Noto CJK's Simplified Chinese face).
fn is_simplified_chinese(face: &Face<'_>) -> bool {
    face.names()
        .into_iter()
        .filter(|n| n.name_id == name_id::FAMILY || n.name_id == name_id::TYPOGRAPHIC_FAMILY)
        .filter_map(|n| n.to_string())
        .any(|family| family.trim_end().ends_with(" SC"))
}

#[cfg(test)]
pub(in crate::seal) mod tests {
    use super::*;

    /// The installed default font, if any (tests that need one skip without it).
    pub(in crate::seal) fn installed_font() -> Option<PathBuf> {
        let found = find_font(None).ok();
        if found.is_none() {
            eprintln!(
                "SKIPPED: no CJK font in {DEFAULT_FONT_PATHS:?}; run softhsm-setup.sh \
                 (installs fonts-noto-cjk) to run this test"
            );
        }
        found
    }

    #[test]
    fn configured_font_must_exist() {
        let err = find_font(Some(Path::new("/nonexistent/seal-font.ttf")))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "seal picture: cannot read the font /nonexistent/seal-font.ttf ([seal] font)"
            ),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = find_font(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("is not a file"), "{err}");
    }

    #[test]
    fn not_a_font_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ttf");
        std::fs::write(&path, b"not a font at all").unwrap();
        let font = SealFont::load(&path).unwrap();
        let err = font.face_for("某").err().unwrap().to_string();
        assert!(
            err.contains("x.ttf is not a TrueType/OpenType font"),
            "{err}"
        );
    }

    #[test]
    fn picks_the_simplified_chinese_face() {
        let Some(path) = installed_font() else { return };
        let font = SealFont::load(&path).unwrap();
        let face = font.face_for("哈尔滨龙江建设工程有限公司").unwrap();
        if ttf_parser::fonts_in_collection(&font.data).is_some() {
            assert!(is_simplified_chinese(&face));
        }
        // A character outside every face (a private-use code point) is named.
        let err = font.face_for("某\u{E000}").err().unwrap().to_string();
        assert!(err.contains("U+E000"), "{err}");
    }
}
