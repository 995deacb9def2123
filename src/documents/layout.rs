//! A document as a list of blocks (headings, paragraphs, fields, tables, figures, signature
//! lines), flowed onto A4 pages and written as PDF with krilla. Layout is a pure function of the
//! blocks: the same document gives the same bytes (no dates, no random ids; krilla derives the
//! file id from the content).

use super::fonts::{Fonts, Weight};
use super::DocumentError;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::TextDirection;
use krilla::Document as PdfDocument;
use krilla_svg::{SurfaceExt, SvgSettings};

const PAGE_W_PT: f32 = 595.28;
const PAGE_H_PT: f32 = 841.89;
const MARGIN_X_PT: f32 = 50.0;
const MARGIN_TOP_PT: f32 = 56.0;
const MARGIN_BOTTOM_PT: f32 = 64.0;
const TEXT_W_PT: f32 = PAGE_W_PT - 2.0 * MARGIN_X_PT;
const BODY_PT: f32 = 9.5;
const TABLE_PT: f32 = 7.5;
const LINE_FACTOR: f32 = 1.35;
const CELL_PAD_PT: f32 = 2.5;

/// One piece of a document, in reading order.
#[derive(Clone, Debug)]
pub enum Block {
    /// The document's title, once, at the top of the first page.
    Title(String),
    Heading(String),
    Paragraph(String),
    /// Small grey text: explanations, provenance.
    Note(String),
    /// Label and value pairs, one per line (values wrap).
    Fields(Vec<(String, String)>),
    Table(Table),
    Figure(Figure),
    /// Lines to write on, one per label (a statement's signature, date, …).
    Signature(Vec<String>),
    PageBreak,
}

/// A table whose header repeats on every page it spans.
#[derive(Clone, Debug)]
pub struct Table {
    /// Header and relative width of each column.
    pub columns: Vec<(String, f32)>,
    pub rows: Vec<Vec<String>>,
}

/// An SVG drawing (map, chart) at the text width, or a fraction of it.
#[derive(Clone, Debug)]
pub struct Figure {
    pub svg: String,
    /// Share of the text width, 0–1.
    pub width_share: f32,
    pub caption: String,
}

/// A whole document.
#[derive(Clone, Debug)]
pub struct Document {
    pub title: String,
    /// Printed at the foot of every page beside the page number (what the document is about).
    pub footer: String,
    pub blocks: Vec<Block>,
}

/// What one page draws, in page coordinates (points, origin top left, y down).
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        weight: Weight,
        grey: bool,
        text: String,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
    },
    Shade {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
    Svg {
        figure: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
}

/// Greedy word wrap of `text` to `width_pt`; a word longer than a line is cut where it must be.
/// Explicit newlines start new lines.
pub fn wrap(text: &str, weight: Weight, size_pt: f32, width_pt: f32) -> Vec<String> {
    let fonts = Fonts::get();
    let fits = |s: &str| fonts.width_pt(s, weight, size_pt) <= width_pt;
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if fits(&candidate) {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: cut it into pieces that fit.
            let mut piece = String::new();
            for c in word.chars() {
                piece.push(c);
                if !fits(&piece) && piece.chars().count() > 1 {
                    piece.pop();
                    lines.push(std::mem::take(&mut piece));
                    piece.push(c);
                }
            }
            line = piece;
        }
        lines.push(line);
    }
    lines
}

struct Flow<'a> {
    pages: Vec<Vec<Op>>,
    y: f32,
    figures: &'a mut Vec<usvg::Tree>,
    title: String,
}

impl Flow<'_> {
    fn page(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("a flow always has a page")
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN_TOP_PT;
        if self.pages.len() > 1 {
            let title = self.title.clone();
            self.page().push(Op::Text {
                x: MARGIN_X_PT,
                y: MARGIN_TOP_PT - 24.0,
                size: 7.5,
                weight: Weight::Regular,
                grey: true,
                text: title,
            });
        }
    }

    /// Makes room for `height_pt` more, on a new page if this one has not got it.
    fn room(&mut self, height_pt: f32) -> bool {
        if self.y + height_pt > PAGE_H_PT - MARGIN_BOTTOM_PT && self.y > MARGIN_TOP_PT {
            self.new_page();
            return true;
        }
        false
    }

    fn text_lines(&mut self, lines: &[String], x: f32, size: f32, weight: Weight, grey: bool) {
        let line_h = size * LINE_FACTOR;
        for line in lines {
            self.room(line_h);
            self.y += line_h;
            let y = self.y - line_h * 0.25;
            self.page().push(Op::Text {
                x,
                y,
                size,
                weight,
                grey,
                text: line.clone(),
            });
        }
    }

    fn block(&mut self, block: &Block) -> Result<(), DocumentError> {
        match block {
            Block::Title(text) => {
                let lines = wrap(text, Weight::Bold, 16.0, TEXT_W_PT);
                self.text_lines(&lines, MARGIN_X_PT, 16.0, Weight::Bold, false);
                self.y += 6.0;
            }
            Block::Heading(text) => {
                // Keep a heading with at least three lines of what follows.
                self.room(12.0 * LINE_FACTOR + 3.0 * BODY_PT * LINE_FACTOR + 10.0);
                self.y += 8.0;
                let lines = wrap(text, Weight::Bold, 12.0, TEXT_W_PT);
                self.text_lines(&lines, MARGIN_X_PT, 12.0, Weight::Bold, false);
                let y = self.y + 2.0;
                self.page().push(Op::Line {
                    x1: MARGIN_X_PT,
                    y1: y,
                    x2: PAGE_W_PT - MARGIN_X_PT,
                    y2: y,
                    width: 0.5,
                });
                self.y += 6.0;
            }
            Block::Paragraph(text) => {
                let lines = wrap(text, Weight::Regular, BODY_PT, TEXT_W_PT);
                self.text_lines(&lines, MARGIN_X_PT, BODY_PT, Weight::Regular, false);
                self.y += 4.0;
            }
            Block::Note(text) => {
                let lines = wrap(text, Weight::Regular, 7.5, TEXT_W_PT);
                self.text_lines(&lines, MARGIN_X_PT, 7.5, Weight::Regular, true);
                self.y += 4.0;
            }
            Block::Fields(fields) => {
                let label_w = TEXT_W_PT * 0.3;
                for (label, value) in fields {
                    let labels = wrap(label, Weight::Bold, BODY_PT, label_w - 6.0);
                    let values = wrap(value, Weight::Regular, BODY_PT, TEXT_W_PT - label_w);
                    let rows = labels.len().max(values.len());
                    let line_h = BODY_PT * LINE_FACTOR;
                    self.room(rows as f32 * line_h);
                    for i in 0..rows {
                        self.y += line_h;
                        let y = self.y - line_h * 0.25;
                        if let Some(l) = labels.get(i) {
                            self.page().push(Op::Text {
                                x: MARGIN_X_PT,
                                y,
                                size: BODY_PT,
                                weight: Weight::Bold,
                                grey: false,
                                text: l.clone(),
                            });
                        }
                        if let Some(v) = values.get(i) {
                            self.page().push(Op::Text {
                                x: MARGIN_X_PT + label_w,
                                y,
                                size: BODY_PT,
                                weight: Weight::Regular,
                                grey: false,
                                text: v.clone(),
                            });
                        }
                    }
                }
                self.y += 4.0;
            }
            Block::Table(table) => self.table(table),
            Block::Figure(figure) => self.figure(figure)?,
            Block::Signature(labels) => {
                for label in labels {
                    self.room(28.0);
                    self.y += 26.0;
                    let y = self.y;
                    let label_w = TEXT_W_PT * 0.3;
                    self.page().push(Op::Text {
                        x: MARGIN_X_PT,
                        y,
                        size: BODY_PT,
                        weight: Weight::Bold,
                        grey: false,
                        text: label.clone(),
                    });
                    self.page().push(Op::Line {
                        x1: MARGIN_X_PT + label_w,
                        y1: y + 1.0,
                        x2: PAGE_W_PT - MARGIN_X_PT,
                        y2: y + 1.0,
                        width: 0.5,
                    });
                }
                self.y += 8.0;
            }
            Block::PageBreak => {
                if self.y > MARGIN_TOP_PT {
                    self.new_page();
                }
            }
        }
        Ok(())
    }

    fn table(&mut self, table: &Table) {
        let total: f32 = table.columns.iter().map(|c| c.1).sum::<f32>().max(1e-6);
        let widths: Vec<f32> = table
            .columns
            .iter()
            .map(|c| c.1 / total * TEXT_W_PT)
            .collect();
        let line_h = TABLE_PT * LINE_FACTOR;
        let wrap_row = |cells: &[String], weight: Weight| -> Vec<Vec<String>> {
            widths
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let cell = cells.get(i).map(String::as_str).unwrap_or("");
                    wrap(cell, weight, TABLE_PT, w - 2.0 * CELL_PAD_PT)
                })
                .collect()
        };
        let header: Vec<String> = table.columns.iter().map(|c| c.0.clone()).collect();
        let header_cells = wrap_row(&header, Weight::Bold);
        let header_h = height_of(&header_cells, line_h);
        let draw_row = |flow: &mut Flow, cells: &[Vec<String>], weight: Weight, shade: bool| {
            let h = height_of(cells, line_h);
            let top = flow.y;
            if shade {
                flow.page().push(Op::Shade {
                    x: MARGIN_X_PT,
                    y: top,
                    w: TEXT_W_PT,
                    h,
                });
            }
            let mut x = MARGIN_X_PT;
            for (i, lines) in cells.iter().enumerate() {
                for (j, line) in lines.iter().enumerate() {
                    flow.page().push(Op::Text {
                        x: x + CELL_PAD_PT,
                        y: top + CELL_PAD_PT + (j as f32 + 1.0) * line_h - line_h * 0.25,
                        size: TABLE_PT,
                        weight,
                        grey: false,
                        text: line.clone(),
                    });
                }
                x += widths[i];
            }
            flow.y = top + h;
            let y = flow.y;
            flow.page().push(Op::Line {
                x1: MARGIN_X_PT,
                y1: y,
                x2: PAGE_W_PT - MARGIN_X_PT,
                y2: y,
                width: 0.25,
            });
        };
        let first = table
            .rows
            .first()
            .map(|r| height_of(&wrap_row(r, Weight::Regular), line_h))
            .unwrap_or(0.0);
        self.room(header_h + first);
        draw_row(self, &header_cells, Weight::Bold, true);
        for row in &table.rows {
            let cells = wrap_row(row, Weight::Regular);
            if self.room(height_of(&cells, line_h)) {
                draw_row(self, &header_cells, Weight::Bold, true);
            }
            draw_row(self, &cells, Weight::Regular, false);
        }
        self.y += 8.0;
    }

    fn figure(&mut self, figure: &Figure) -> Result<(), DocumentError> {
        let options = usvg::Options {
            fontdb: Fonts::get().svg_fonts(),
            font_family: super::fonts::FAMILY.to_string(),
            ..usvg::Options::default()
        };
        let tree = usvg::Tree::from_str(&figure.svg, &options)
            .map_err(|e| DocumentError::Figure(format!("{}: {e}", figure.caption)))?;
        let w = TEXT_W_PT * figure.width_share.clamp(0.1, 1.0);
        let h = w * tree.size().height() / tree.size().width().max(1.0);
        let caption = wrap(&figure.caption, Weight::Regular, 7.5, TEXT_W_PT);
        self.room(h + caption.len() as f32 * 7.5 * LINE_FACTOR + 6.0);
        self.figures.push(tree);
        let index = self.figures.len() - 1;
        let y = self.y + 4.0;
        self.page().push(Op::Svg {
            figure: index,
            x: MARGIN_X_PT + (TEXT_W_PT - w) / 2.0,
            y,
            w,
            h,
        });
        self.y = y + h;
        self.text_lines(&caption, MARGIN_X_PT, 7.5, Weight::Regular, true);
        self.y += 6.0;
        Ok(())
    }
}

fn height_of(cells: &[Vec<String>], line_h: f32) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    lines as f32 * line_h + 2.0 * CELL_PAD_PT
}

/// The document flowed onto pages, and the figures the pages draw.
fn layout(doc: &Document) -> Result<(Vec<Vec<Op>>, Vec<usvg::Tree>), DocumentError> {
    let mut figures = Vec::new();
    let mut flow = Flow {
        pages: Vec::new(),
        y: MARGIN_TOP_PT,
        figures: &mut figures,
        title: doc.title.clone(),
    };
    flow.new_page();
    for block in &doc.blocks {
        flow.block(block)?;
    }
    let pages = flow.pages;
    Ok((pages, figures))
}

/// Lays the document out and writes it as PDF.
pub fn render(doc: &Document) -> Result<Vec<u8>, DocumentError> {
    let (pages, figures) = layout(doc)?;
    let count = pages.len();
    let fonts = Fonts::get();
    let mut pdf = PdfDocument::new();
    pdf.set_metadata(
        Metadata::new()
            .title(doc.title.clone())
            .creator(format!("tagstream {}", env!("CARGO_PKG_VERSION")))
            .language("en-GB".into()),
    );
    let black = || -> krilla::paint::Paint { rgb::Color::new(0, 0, 0).into() };
    for (n, ops) in pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W_PT, PAGE_H_PT)
            .ok_or_else(|| DocumentError::Pdf("page size".into()))?;
        let mut page = pdf.start_page_with(settings);
        let mut surface = page.surface();
        let footer = format!("{} · page {} of {count}", doc.footer, n + 1);
        let footer_ops = [Op::Text {
            x: MARGIN_X_PT,
            y: PAGE_H_PT - 30.0,
            size: 7.5,
            weight: Weight::Regular,
            grey: true,
            text: footer,
        }];
        for op in ops.iter().chain(footer_ops.iter()) {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    weight,
                    grey,
                    text,
                } => {
                    let shade = if *grey { 90 } else { 0 };
                    surface.set_fill(Some(Fill {
                        paint: rgb::Color::new(shade, shade, shade).into(),
                        ..Fill::default()
                    }));
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        fonts.font(*weight),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    width,
                } => {
                    let mut path = PathBuilder::new();
                    path.move_to(*x1, *y1);
                    path.line_to(*x2, *y2);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: black(),
                            width: *width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                    }
                }
                Op::Shade { x, y, w, h } => {
                    let mut path = PathBuilder::new();
                    if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                        path.push_rect(rect);
                    }
                    if let Some(path) = path.finish() {
                        surface.set_stroke(None);
                        surface.set_fill(Some(Fill {
                            paint: rgb::Color::new(230, 230, 230).into(),
                            opacity: NormalizedF32::ONE,
                            ..Fill::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Svg { figure, x, y, w, h } => {
                    let size = Size::from_wh(*w, *h)
                        .ok_or_else(|| DocumentError::Figure("empty figure".into()))?;
                    surface.push_transform(&krilla::geom::Transform::from_translate(*x, *y));
                    surface
                        .draw_svg(&figures[*figure], size, SvgSettings::default())
                        .ok_or_else(|| DocumentError::Figure("the SVG did not draw".into()))?;
                    surface.pop();
                }
            }
        }
        surface.finish();
        page.finish();
    }
    pdf.finish()
        .map_err(|e| DocumentError::Pdf(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_and_fits_the_width() {
        let text = "The person's path came within 35 m of the crime while it happened, \
                    supportedbyaverylongwordthatcannotfitononelineatallwhateverwedo fixes.";
        let lines = wrap(text, Weight::Regular, 10.0, 120.0);
        assert!(lines.len() > 3, "{lines:?}");
        for l in &lines {
            assert!(
                Fonts::get().width_pt(l, Weight::Regular, 10.0) <= 120.0,
                "{l}"
            );
        }
        assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        assert_eq!(wrap("a\nb", Weight::Regular, 10.0, 100.0), vec!["a", "b"]);
    }

    #[test]
    fn the_same_document_gives_the_same_bytes_and_long_tables_span_pages() {
        let doc = Document {
            title: "Test document".into(),
            footer: "test".into(),
            blocks: vec![
                Block::Title("Test document".into()),
                Block::Heading("Fields".into()),
                Block::Fields(vec![("Crime reference".into(), "C1".into())]),
                Block::Table(Table {
                    columns: vec![("Label".into(), 1.0), ("Time".into(), 2.0)],
                    rows: (0..200)
                        .map(|i| vec![format!("A{i}"), "2026-01-01".into()])
                        .collect(),
                }),
                Block::Figure(Figure {
                    svg: r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect width="100" height="50" fill="red"/><text x="5" y="30" font-size="12">Hi</text></svg>"#.into(),
                    width_share: 0.5,
                    caption: "A figure".into(),
                }),
                Block::Signature(vec!["Signature".into()]),
            ],
        };
        let a = render(&doc).expect("renders");
        let b = render(&doc).expect("renders");
        assert!(a.starts_with(b"%PDF-"));
        assert_eq!(a, b);
        let (pages, figures) = layout(&doc).expect("lays out");
        assert!(pages.len() >= 3, "{}", pages.len());
        assert_eq!(figures.len(), 1);
    }

    #[test]
    fn a_figure_that_is_not_svg_is_an_error_naming_it() {
        let doc = Document {
            title: "t".into(),
            footer: "f".into(),
            blocks: vec![Block::Figure(Figure {
                svg: "<not svg".into(),
                width_share: 1.0,
                caption: "Map of the crime".into(),
            })],
        };
        let err = render(&doc).unwrap_err();
        assert!(err.to_string().contains("Map of the crime"), "{err}");
    }
}
