//! `tagsim basemap`: renders the synthetic street network (`streets`) around the simulated area's
//! centre into raster map tiles (256 px PNG, Web Mercator XYZ) and packs them into an MBTiles
//! archive (SQLite: `metadata` and `tiles`, TMS row numbering) that `tagstream serve
//! --tile-archive` serves to the console. The archive is marked `synthetic = true` and its
//! attribution says the streets are not real, so it can never pass for evidence.
//!
//! Tiles are drawn with tiny-skia (pure Rust, anti-aliased strokes and fills, PNG encoding), all
//! from the seed: the same seed and options give the same tiles, byte for byte.

use crate::area::{Area, AreaError};
use crate::geo::{Frame, Xy};
use crate::streets::{self, Network, RoadClass};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tiny_skia::{
    Color, FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Stroke, Transform,
};

/// Tile size in pixels.
pub const TILE_PX: u32 = 256;
/// What the archive says about itself (and the console shows beside the map).
pub const ATTRIBUTION: &str = "Synthetic demo streets (tagstream) — not real, not evidence";

/// Why a basemap could not be built.
#[derive(Debug, Error)]
pub enum BasemapError {
    #[error(transparent)]
    Area(#[from] AreaError),
    #[error("zooms {min}..{max}: need min <= max <= 20")]
    Zooms { min: u8, max: u8 },
    #[error("cannot encode tile {z}/{x}/{y} as PNG: {reason}")]
    Png {
        z: u8,
        x: u32,
        y: u32,
        reason: String,
    },
    #[error("cannot write the tile archive {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot write the tile archive {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BasemapOptions {
    pub seed: u64,
    /// Police force area name, as `tagsim generate --area` ("Bristol" by default): the network is
    /// centred where that area's simulated people cluster.
    pub area: String,
    /// The network covers a square of twice this on a side around the centre.
    pub half_size_m: f64,
    pub min_zoom: u8,
    pub max_zoom: u8,
}

impl Default for BasemapOptions {
    fn default() -> Self {
        BasemapOptions {
            seed: 1,
            area: "Bristol".into(),
            half_size_m: 5000.0,
            min_zoom: 11,
            max_zoom: 16,
        }
    }
}

/// What was built.
#[derive(Clone, Debug)]
pub struct BasemapReport {
    pub tiles: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// West, south, east, north (degrees).
    pub bounds: [f64; 4],
}

/// A tile address (XYZ: y counts down from the north).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    /// MBTiles stores rows the TMS way, counting up from the south.
    pub fn tms_row(self) -> u32 {
        (1u32 << self.z) - 1 - self.y
    }
}

/// Longitude/latitude (degrees) to Web Mercator "world" pixels at zoom 0 (0..256 each way).
pub fn world_px(lat_deg: f64, lon_deg: f64) -> (f64, f64) {
    let x = (lon_deg + 180.0) / 360.0 * TILE_PX as f64;
    let lat = lat_deg.to_radians();
    let y =
        (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * TILE_PX as f64;
    (x, y)
}

/// The tiles at zoom `z` that cover `bounds` (west, south, east, north), row by row.
pub fn tiles_covering(bounds: [f64; 4], z: u8) -> Vec<TileId> {
    let [w, s, e, n] = bounds;
    let scale = (1u64 << z) as f64;
    let last = (1u32 << z) - 1;
    let tile = |px: f64| ((px * scale / TILE_PX as f64).floor().max(0.0) as u32).min(last);
    let (x0, y0) = world_px(n, w);
    let (x1, y1) = world_px(s, e);
    let mut out = Vec::new();
    for x in tile(x0)..=tile(x1) {
        for y in tile(y0)..=tile(y1) {
            out.push(TileId { z, x, y });
        }
    }
    out
}

/// A polyline or ring in world pixels (zoom 0), with its bounding box for quick culling.
struct Shape {
    points: Vec<(f64, f64)>,
    lo: (f64, f64),
    hi: (f64, f64),
}

impl Shape {
    fn new(frame: &Frame, points: &[Xy]) -> Shape {
        let points: Vec<(f64, f64)> = points
            .iter()
            .map(|p| {
                let (lat, lon) = frame.to_latlon(*p);
                world_px(lat, lon)
            })
            .collect();
        let mut lo = (f64::MAX, f64::MAX);
        let mut hi = (f64::MIN, f64::MIN);
        for &(x, y) in &points {
            lo = (lo.0.min(x), lo.1.min(y));
            hi = (hi.0.max(x), hi.1.max(y));
        }
        Shape { points, lo, hi }
    }
}

/// The network projected for rendering, with the ground scale at the centre.
pub struct Renderer {
    residential: Vec<Shape>,
    arterial: Vec<Shape>,
    parks: Vec<Shape>,
    river: Shape,
    river_width_m: f64,
    /// Metres per world pixel at zoom 0 at the centre's latitude.
    m_per_px0: f64,
    pub bounds: [f64; 4],
}

/// Colours: a light plain, white streets with grey casing, pale yellow arterials.
const BACKGROUND: [u8; 3] = [0xf2, 0xef, 0xe9];
const PARK: [u8; 3] = [0xc8, 0xe6, 0xb0];
const WATER: [u8; 3] = [0xa7, 0xcd, 0xe2];
const STREET: [u8; 3] = [0xff, 0xff, 0xff];
const STREET_CASING: [u8; 3] = [0xc2, 0xbd, 0xb5];
const ARTERIAL: [u8; 3] = [0xf8, 0xed, 0xa8];
const ARTERIAL_CASING: [u8; 3] = [0xc9, 0xae, 0x6a];
const STREET_WIDTH_M: f64 = 9.0;
const ARTERIAL_WIDTH_M: f64 = 16.0;

impl Renderer {
    pub fn new(frame: &Frame, net: &Network) -> Renderer {
        let shapes = |class| {
            net.roads
                .iter()
                .filter(|r| r.class == class)
                .map(|r| Shape::new(frame, &r.points))
                .collect()
        };
        let h = net.half_size_m + 100.0; // room for the widest stroke
        let (s, w) = frame.to_latlon(Xy::new(-h, -h));
        let (n, e) = frame.to_latlon(Xy::new(h, h));
        Renderer {
            residential: shapes(RoadClass::Residential),
            arterial: shapes(RoadClass::Arterial),
            parks: net.parks.iter().map(|p| Shape::new(frame, p)).collect(),
            river: Shape::new(frame, &net.river),
            river_width_m: net.river_width_m,
            m_per_px0: 2.0 * std::f64::consts::PI * 6_378_137.0 / TILE_PX as f64
                * frame.lat0_deg.to_radians().cos(),
            bounds: [w, s, e, n],
        }
    }

    /// The tile's pixels, PNG-encoded.
    pub fn render_png(&self, t: TileId) -> Result<Vec<u8>, BasemapError> {
        let png_error = |reason: String| BasemapError::Png {
            z: t.z,
            x: t.x,
            y: t.y,
            reason,
        };
        let mut pixmap =
            Pixmap::new(TILE_PX, TILE_PX).ok_or_else(|| png_error("no pixmap".into()))?;
        let [r, g, b] = BACKGROUND;
        pixmap.fill(Color::from_rgba8(r, g, b, 255));
        let scale = (1u64 << t.z) as f64;
        let m_per_px = self.m_per_px0 / scale;
        let px = |m: f64| (m / m_per_px) as f32;
        let view = View {
            scale,
            ox: t.x as f64 * TILE_PX as f64,
            oy: t.y as f64 * TILE_PX as f64,
            margin: 40.0,
        };

        for park in &self.parks {
            if let Some(path) = view.path(std::slice::from_ref(park), true) {
                pixmap.fill_path(
                    &path,
                    &paint(PARK),
                    FillRule::Winding,
                    Transform::identity(),
                    None,
                );
            }
        }
        // Streets, then the river (cutting them), then arterials (bridging it).
        let street_px = px(STREET_WIDTH_M);
        if t.z >= 13 {
            if let Some(path) = view.path(&self.residential, false) {
                if street_px >= 2.0 {
                    stroke(&mut pixmap, &path, STREET_CASING, street_px + 1.5);
                    stroke(&mut pixmap, &path, STREET, street_px);
                } else {
                    stroke(&mut pixmap, &path, STREET, street_px.max(0.8));
                }
            }
        }
        if let Some(path) = view.path(std::slice::from_ref(&self.river), false) {
            stroke(&mut pixmap, &path, WATER, px(self.river_width_m).max(1.5));
        }
        if let Some(path) = view.path(&self.arterial, false) {
            let w = px(ARTERIAL_WIDTH_M).max(1.6);
            stroke(&mut pixmap, &path, ARTERIAL_CASING, w + 2.0);
            stroke(&mut pixmap, &path, ARTERIAL, w);
        }
        encode_png(&pixmap).map_err(|e| png_error(e.to_string()))
    }
}

/// The opaque pixmap as a PNG: palette (exact) when it has at most 256 colours, which street
/// tiles almost always do and which makes them several times smaller than RGBA; else RGB.
fn encode_png(pixmap: &Pixmap) -> Result<Vec<u8>, png::EncodingError> {
    let rgb: Vec<[u8; 3]> = pixmap
        .data()
        .chunks_exact(4)
        .map(|p| [p[0], p[1], p[2]]) // every pixel is opaque: premultiplied = straight
        .collect();
    let mut palette: Vec<[u8; 3]> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut indexed = Vec::with_capacity(rgb.len());
    for c in &rgb {
        let next = palette.len();
        let i = *index.entry(*c).or_insert(next);
        if i == next {
            palette.push(*c);
        }
        indexed.push(i);
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
        encoder.set_compression(png::Compression::Best);
        let data: Vec<u8> = if palette.len() <= 256 {
            encoder.set_color(png::ColorType::Indexed);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_palette(palette.concat());
            encoder.set_filter(png::FilterType::NoFilter);
            indexed.iter().map(|&i| i as u8).collect()
        } else {
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
            rgb.concat()
        };
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&data)?;
        writer.finish()?;
    }
    Ok(out)
}

/// One tile's window onto the world: scale 2^z, origin in world pixels at that zoom.
struct View {
    scale: f64,
    ox: f64,
    oy: f64,
    margin: f64,
}

impl View {
    /// The shapes that reach this tile as one path in tile pixels (`None` if none do).
    fn path(&self, shapes: &[Shape], closed: bool) -> Option<tiny_skia::Path> {
        let mut pb = PathBuilder::new();
        let (lo_x, lo_y) = (
            (self.ox - self.margin) / self.scale,
            (self.oy - self.margin) / self.scale,
        );
        let (hi_x, hi_y) = (
            (self.ox + TILE_PX as f64 + self.margin) / self.scale,
            (self.oy + TILE_PX as f64 + self.margin) / self.scale,
        );
        for s in shapes {
            if s.hi.0 < lo_x || s.lo.0 > hi_x || s.hi.1 < lo_y || s.lo.1 > hi_y {
                continue;
            }
            for (k, &(x, y)) in s.points.iter().enumerate() {
                let (tx, ty) = (
                    (x * self.scale - self.ox) as f32,
                    (y * self.scale - self.oy) as f32,
                );
                if k == 0 {
                    pb.move_to(tx, ty);
                } else {
                    pb.line_to(tx, ty);
                }
            }
            if closed {
                pb.close();
            }
        }
        pb.finish()
    }
}

fn paint(rgb: [u8; 3]) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(rgb[0], rgb[1], rgb[2], 255);
    p.anti_alias = true;
    p
}

fn stroke(pixmap: &mut Pixmap, path: &tiny_skia::Path, rgb: [u8; 3], width_px: f32) {
    let stroke = Stroke {
        width: width_px,
        line_cap: LineCap::Round,
        line_join: LineJoin::Round,
        ..Stroke::default()
    };
    pixmap.stroke_path(path, &paint(rgb), &stroke, Transform::identity(), None);
}

/// The area's centre frame (as `tagsim generate` uses) and the renderer for its network.
pub fn renderer(opts: &BasemapOptions) -> Result<Renderer, BasemapError> {
    let area = Area::load_builtin(&opts.area)?;
    let net = streets::build(opts.seed, opts.half_size_m);
    Ok(Renderer::new(&area.frame, &net))
}

/// Builds the archive at `out` (written beside it and renamed into place, so a failed run leaves
/// no half archive behind).
pub fn build(opts: &BasemapOptions, out: &Path) -> Result<BasemapReport, BasemapError> {
    let started = std::time::Instant::now();
    if opts.min_zoom > opts.max_zoom || opts.max_zoom > 20 {
        return Err(BasemapError::Zooms {
            min: opts.min_zoom,
            max: opts.max_zoom,
        });
    }
    let renderer = renderer(opts)?;
    let tmp = out.with_extension("mbtiles.partial");
    let io = |source| BasemapError::Io {
        path: tmp.clone(),
        source,
    };
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let sql = |source| BasemapError::Sqlite {
        path: tmp.clone(),
        source,
    };
    let mut conn = rusqlite::Connection::open(&tmp).map_err(sql)?;
    conn.execute_batch(
        "PRAGMA page_size = 4096;
         CREATE TABLE metadata (name TEXT NOT NULL, value TEXT NOT NULL);
         CREATE UNIQUE INDEX metadata_name ON metadata (name);
         CREATE TABLE tiles (zoom_level INTEGER NOT NULL, tile_column INTEGER NOT NULL,
                             tile_row INTEGER NOT NULL, tile_data BLOB NOT NULL);
         CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);",
    )
    .map_err(sql)?;
    let [w, s, e, n] = renderer.bounds;
    let metadata = [
        ("name", "tagstream synthetic demo streets".to_string()),
        ("description", format!(
            "A made-up street network around the simulated area ({}), built by `tagsim basemap --seed {}`. Not real streets; never evidence.",
            opts.area, opts.seed
        )),
        ("format", "png".into()),
        ("type", "baselayer".into()),
        ("version", "1".into()),
        ("bounds", format!("{w:.6},{s:.6},{e:.6},{n:.6}")),
        ("center", format!("{:.6},{:.6},{}", (w + e) / 2.0, (s + n) / 2.0, opts.max_zoom.min(14))),
        ("minzoom", opts.min_zoom.to_string()),
        ("maxzoom", opts.max_zoom.to_string()),
        ("attribution", ATTRIBUTION.into()),
        ("synthetic", "true".into()),
        ("seed", opts.seed.to_string()),
    ];
    let mut tiles = 0;
    {
        let txn = conn.transaction().map_err(sql)?;
        for (name, value) in &metadata {
            txn.execute(
                "INSERT INTO metadata (name, value) VALUES (?1, ?2)",
                (name, value),
            )
            .map_err(sql)?;
        }
        {
            let mut insert = txn
                .prepare("INSERT INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql)?;
            for z in opts.min_zoom..=opts.max_zoom {
                for t in tiles_covering(renderer.bounds, z) {
                    let png = renderer.render_png(t)?;
                    insert.execute((t.z, t.x, t.tms_row(), png)).map_err(sql)?;
                    tiles += 1;
                }
            }
        }
        txn.commit().map_err(sql)?;
    }
    conn.execute_batch("VACUUM").map_err(sql)?;
    conn.close().map_err(|(_, e)| sql(e))?;
    std::fs::rename(&tmp, out).map_err(|source| BasemapError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let bytes = std::fs::metadata(out)
        .map_err(|source| BasemapError::Io {
            path: out.to_path_buf(),
            source,
        })?
        .len();
    Ok(BasemapReport {
        tiles,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        bounds: renderer.bounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BasemapOptions {
        BasemapOptions {
            half_size_m: 1500.0,
            min_zoom: 12,
            max_zoom: 14,
            ..BasemapOptions::default()
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_bytes() {
        let opts = small();
        let r = renderer(&opts).unwrap();
        // The tile holding the centre (a corner tile may hold only background).
        let (x, y) = world_px(51.4545, -2.5879);
        let t = TileId {
            z: 14,
            x: (x * 64.0) as u32,
            y: (y * 64.0) as u32,
        };
        assert!(tiles_covering(r.bounds, 14).contains(&t));
        let a = r.render_png(t).unwrap();
        assert_eq!(a, renderer(&opts).unwrap().render_png(t).unwrap());
        assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
        let other = renderer(&BasemapOptions { seed: 2, ..opts }).unwrap();
        assert_ne!(
            a,
            other.render_png(t).unwrap(),
            "another seed, other streets"
        );
    }

    #[test]
    fn rows_are_stored_the_tms_way() {
        assert_eq!(TileId { z: 0, x: 0, y: 0 }.tms_row(), 0);
        assert_eq!(TileId { z: 3, x: 1, y: 0 }.tms_row(), 7);
        assert_eq!(
            TileId {
                z: 16,
                x: 32_000,
                y: 21_000
            }
            .tms_row(),
            65_535 - 21_000
        );
    }

    #[test]
    fn tiles_cover_the_bounds_and_no_more() {
        // Central Bristol: one z0 tile, and at z16 the tiles holding each corner.
        let bounds = [-2.65, 51.42, -2.53, 51.49];
        assert_eq!(tiles_covering(bounds, 0), vec![TileId { z: 0, x: 0, y: 0 }]);
        for z in [11u8, 14, 16] {
            let tiles = tiles_covering(bounds, z);
            let scale = (1u64 << z) as f64 / TILE_PX as f64;
            let at = |lat, lon| {
                let (x, y) = world_px(lat, lon);
                ((x * scale) as u32, (y * scale) as u32)
            };
            for (lat, lon) in [(51.42, -2.65), (51.49, -2.53), (51.455, -2.59)] {
                let (x, y) = at(lat, lon);
                assert!(tiles.contains(&TileId { z, x, y }), "z{z} {lat},{lon}");
            }
            let (x0, y0) = at(51.49, -2.65);
            let (x1, y1) = at(51.42, -2.53);
            assert_eq!(tiles.len() as u32, (x1 - x0 + 1) * (y1 - y0 + 1), "z{z}");
        }
    }

    #[test]
    fn an_archive_has_its_metadata_and_every_tile() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t.mbtiles");
        let opts = small();
        let report = build(&opts, &out).unwrap();
        let conn = rusqlite::Connection::open(&out).unwrap();
        let meta = |k: &str| -> String {
            conn.query_row("SELECT value FROM metadata WHERE name = ?1", [k], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(meta("format"), "png");
        assert_eq!(meta("synthetic"), "true");
        assert_eq!(meta("minzoom"), "12");
        assert_eq!(meta("maxzoom"), "14");
        assert_eq!(meta("attribution"), ATTRIBUTION);
        let count: usize = conn
            .query_row("SELECT COUNT(*) FROM tiles", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, report.tiles);
        let expected: usize = (12..=14)
            .map(|z| tiles_covering(report.bounds, z).len())
            .sum();
        assert_eq!(count, expected);
        // The centre tile at z14, looked up by its TMS row.
        let (x, y) = world_px(51.4545, -2.5879);
        let t = TileId {
            z: 14,
            x: (x * 64.0) as u32,
            y: (y * 64.0) as u32,
        };
        let png: Vec<u8> = conn
            .query_row(
                "SELECT tile_data FROM tiles WHERE zoom_level = 14 AND tile_column = ?1 AND tile_row = ?2",
                (t.x, t.tms_row()),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(png, renderer(&opts).unwrap().render_png(t).unwrap());
    }
}
