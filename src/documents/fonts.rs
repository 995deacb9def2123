//! The documents' fonts: DejaVu Sans and DejaVu Sans Bold, carried in the binary (Bitstream Vera
//! licence, free to redistribute: `fixtures/fonts/LICENSE-DejaVu.txt`), so a document looks the
//! same on every machine and embeds exactly the glyphs it uses. Text is measured here (advance
//! widths, from `skrifa`) so the layout can wrap it; krilla draws and subsets it.

use skrifa::instance::{LocationRef, Size};
use skrifa::MetadataProvider;
use std::sync::{Arc, OnceLock};

static REGULAR_TTF: &[u8] = include_bytes!("../../fixtures/fonts/DejaVuSans.ttf");
static BOLD_TTF: &[u8] = include_bytes!("../../fixtures/fonts/DejaVuSans-Bold.ttf");
/// The family name SVG figures ask for (`font-family`).
pub const FAMILY: &str = "DejaVu Sans";

/// A weight of the documents' typeface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    Regular,
    Bold,
}

/// Both weights, loaded once per process.
pub struct Fonts {
    regular: krilla::text::Font,
    bold: krilla::text::Font,
    /// For SVG figures (`usvg` resolves `font-family` against it).
    svg_fonts: Arc<usvg::fontdb::Database>,
}

impl Fonts {
    /// The process's fonts (parsed on first use).
    pub fn get() -> &'static Fonts {
        static FONTS: OnceLock<Fonts> = OnceLock::new();
        FONTS.get_or_init(|| {
            // Both files are part of the binary and known good: failing here is a build defect.
            let load = |bytes: &'static [u8]| {
                krilla::text::Font::new(bytes.into(), 0).expect("embedded DejaVu font parses")
            };
            let mut db = usvg::fontdb::Database::new();
            db.load_font_data(REGULAR_TTF.to_vec());
            db.load_font_data(BOLD_TTF.to_vec());
            db.set_sans_serif_family(FAMILY);
            Fonts {
                regular: load(REGULAR_TTF),
                bold: load(BOLD_TTF),
                svg_fonts: Arc::new(db),
            }
        })
    }

    pub fn font(&self, weight: Weight) -> krilla::text::Font {
        match weight {
            Weight::Regular => self.regular.clone(),
            Weight::Bold => self.bold.clone(),
        }
    }

    pub fn svg_fonts(&self) -> Arc<usvg::fontdb::Database> {
        self.svg_fonts.clone()
    }

    /// The advance width of `text` at `size_pt`, in points (no kerning: a slight overestimate,
    /// which only makes a line wrap a little early).
    pub fn width_pt(&self, text: &str, weight: Weight, size_pt: f32) -> f32 {
        let bytes = match weight {
            Weight::Regular => REGULAR_TTF,
            Weight::Bold => BOLD_TTF,
        };
        let Ok(font) = skrifa::FontRef::new(bytes) else {
            return 0.6 * size_pt * text.chars().count() as f32;
        };
        let charmap = font.charmap();
        let metrics = font.glyph_metrics(Size::new(size_pt), LocationRef::default());
        text.chars()
            .map(|c| {
                let glyph = charmap.map(c).unwrap_or_default();
                metrics.advance_width(glyph).unwrap_or(0.6 * size_pt)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_grow_with_text_size_and_weight() {
        let f = Fonts::get();
        let w = f.width_pt("Crime reference", Weight::Regular, 10.0);
        assert!(w > 50.0 && w < 100.0, "{w}");
        assert!((f.width_pt("Crime reference", Weight::Regular, 20.0) - 2.0 * w).abs() < 0.01);
        assert!(f.width_pt("Crime reference", Weight::Bold, 10.0) > w);
        assert_eq!(f.width_pt("", Weight::Regular, 10.0), 0.0);
    }
}
