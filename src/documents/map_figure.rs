//! A map drawn server-side for a document, as SVG: the deployment's street tiles composited
//! underneath (raster PNG tiles from the archive the console serves), then areas and places,
//! confidence circles, the track, the positions labelled A1…, the crime's vicinity and the crime
//! on top, with a scale bar and a north arrow. Web Mercator at a whole zoom level chosen to fit
//! the evidence.
//!
//! A synthetic archive (the demo's made-up streets) is never drawn into a document: documents
//! are evidence, and the map says why it has no streets instead.

use std::fmt::Write;

/// Raster street tiles a map can be drawn on (the console's MBTiles archive implements it).
pub trait TileSource: Send + Sync {
    /// The PNG of XYZ tile `z/x/y` (y counted from the north), `None` where the archive has none.
    fn tile_png(&self, z: u8, x: u32, y: u32) -> Result<Option<Vec<u8>>, String>;
    /// The zoom levels the archive holds.
    fn zoom_range(&self) -> (u8, u8);
    /// Made-up streets, never to be offered as evidence.
    fn synthetic(&self) -> bool;
    fn attribution(&self) -> Option<String>;
}

/// One position of the evidence on the map.
#[derive(Clone, Debug)]
pub struct MapPosition {
    pub label: String,
    pub lat: f64,
    pub lon: f64,
    pub precision_m: f64,
    /// Not GPS (cell or Wi-Fi): drawn hollow.
    pub weaker: bool,
}

/// A place drawn as a marker with a circle (a curfew address and its radius).
#[derive(Clone, Debug)]
pub struct MapPlace {
    pub label: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// An area drawn as a polygon (an exclusion or inclusion zone), ring of (lat, lon).
#[derive(Clone, Debug)]
pub struct MapArea {
    pub label: String,
    pub ring: Vec<(f64, f64)>,
}

/// What one map shows.
#[derive(Clone, Debug, Default)]
pub struct MapLayers {
    /// The crime: position and vicinity radius.
    pub crime: Option<(f64, f64, f64)>,
    pub areas: Vec<MapArea>,
    pub places: Vec<MapPlace>,
    /// In time order; a new label letter starts a new stretch of track.
    pub positions: Vec<MapPosition>,
}

/// A drawn map and what its caption must say about the streets.
pub struct DrawnMap {
    pub svg: String,
    /// Where the streets came from, or why there are none.
    pub basemap_note: String,
    pub zoom: u8,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 540.0;
const PAD: f64 = 40.0;
const TILE: f64 = 256.0;
const MAX_ZOOM: u8 = 19;
/// Confidence circles larger than this do not widen the view (a 1.5 km cell fix would shrink
/// the crime to a dot); they are still drawn, clipped by the frame.
const FIT_CIRCLE_MAX_M: f64 = 400.0;
const MAX_LABELS: usize = 60;

/// Web Mercator world pixel of (lat, lon) at `zoom`.
fn world_px(lat: f64, lon: f64, zoom: u8) -> (f64, f64) {
    let size = TILE * f64::from(1u32 << zoom);
    let lat = lat.clamp(-85.05, 85.05).to_radians();
    let x = (lon + 180.0) / 360.0 * size;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * size;
    (x, y)
}

/// Metres per pixel at `lat`, `zoom`.
fn metres_per_px(lat: f64, zoom: u8) -> f64 {
    156_543.033_92 * lat.to_radians().cos() / f64::from(1u32 << zoom)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A round length for a scale bar at most `max_m` long.
fn scale_length_m(max_m: f64) -> f64 {
    [
        5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
    ]
    .into_iter()
    .rev()
    .find(|l| *l <= max_m)
    .unwrap_or(5.0)
}

/// Everything the view must hold: (lat, lon, radius_m) points.
fn extent(layers: &MapLayers) -> Vec<(f64, f64, f64)> {
    let mut pts: Vec<(f64, f64, f64)> = Vec::new();
    if let Some((lat, lon, r)) = layers.crime {
        pts.push((lat, lon, r));
    }
    for p in &layers.positions {
        pts.push((p.lat, p.lon, p.precision_m.min(FIT_CIRCLE_MAX_M)));
    }
    for p in &layers.places {
        pts.push((p.lat, p.lon, p.radius_m.min(FIT_CIRCLE_MAX_M)));
    }
    for a in &layers.areas {
        pts.extend(a.ring.iter().map(|(lat, lon)| (*lat, *lon, 0.0)));
    }
    pts
}

/// The deepest zoom at which the extent fits the frame, and the frame's centre in world pixels.
fn fit(pts: &[(f64, f64, f64)]) -> (u8, f64, f64) {
    if pts.is_empty() {
        return (2, 0.0, 0.0);
    }
    for zoom in (2..=MAX_ZOOM).rev() {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for (lat, lon, r) in pts {
            let (x, y) = world_px(*lat, *lon, zoom);
            let rp = r / metres_per_px(*lat, zoom);
            x0 = x0.min(x - rp);
            x1 = x1.max(x + rp);
            y0 = y0.min(y - rp);
            y1 = y1.max(y + rp);
        }
        if x1 - x0 <= WIDTH - 2.0 * PAD && y1 - y0 <= HEIGHT - 2.0 * PAD || zoom == 2 {
            return (zoom, (x0 + x1) / 2.0, (y0 + y1) / 2.0);
        }
    }
    (2, 0.0, 0.0)
}

/// Draws `layers` over the streets of `tiles` (when given and not synthetic).
pub fn draw_map(layers: &MapLayers, tiles: Option<&dyn TileSource>) -> DrawnMap {
    let (zoom, cx, cy) = fit(&extent(layers));
    let (left, top) = (cx - WIDTH / 2.0, cy - HEIGHT / 2.0);
    let px = |lat: f64, lon: f64| {
        let (x, y) = world_px(lat, lon, zoom);
        (x - left, y - top)
    };
    let centre_lat = layers
        .crime
        .map(|c| c.0)
        .or_else(|| layers.positions.first().map(|p| p.lat))
        .unwrap_or(51.5);
    let mpp = metres_per_px(centre_lat, zoom);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans" font-size="11"><rect width="{WIDTH}" height="{HEIGHT}" fill="#f2efe9"/>"##
    );
    let basemap_note = match tiles {
        None => {
            let _ = write!(
                s,
                r##"<text x="{:.0}" y="24" text-anchor="middle" fill="#666666">No street map: this deployment has no tile archive the server can draw</text>"##,
                WIDTH / 2.0
            );
            "No street map: the deployment has no local tile archive.".to_string()
        }
        Some(t) if t.synthetic() => {
            let _ = write!(
                s,
                r##"<text x="{:.0}" y="24" text-anchor="middle" fill="#666666">No street map: the deployment's streets are synthetic (demo) and never used in evidence</text>"##,
                WIDTH / 2.0
            );
            "No street map: the deployment's tile archive holds synthetic demo streets, which are never drawn into evidence.".to_string()
        }
        Some(t) => draw_tiles(&mut s, t, zoom, left, top),
    };
    for area in &layers.areas {
        let points: Vec<String> = area
            .ring
            .iter()
            .map(|(lat, lon)| {
                let (x, y) = px(*lat, *lon);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            s,
            r##"<polygon points="{}" fill="#7b1fa2" fill-opacity="0.12" stroke="#7b1fa2" stroke-width="1.5"/>"##,
            points.join(" ")
        );
        if let Some((lat, lon)) = area.ring.first() {
            let (x, y) = px(*lat, *lon);
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#4a148c">{}</text>"##,
                x + 4.0,
                y - 4.0,
                escape(&area.label)
            );
        }
    }
    for place in &layers.places {
        let (x, y) = px(place.lat, place.lon);
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{:.1}" fill="#2e7d32" fill-opacity="0.1" stroke="#2e7d32" stroke-width="1.2"/><rect x="{:.1}" y="{:.1}" width="9" height="9" fill="#2e7d32"/><text x="{:.1}" y="{:.1}" fill="#1b5e20">{}</text>"##,
            place.radius_m / mpp,
            x - 4.5,
            y - 4.5,
            x + 8.0,
            y + 4.0,
            escape(&place.label)
        );
    }
    // Confidence circles under everything else of the evidence.
    for p in &layers.positions {
        let (x, y) = px(p.lat, p.lon);
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{:.1}" fill="#1565c0" fill-opacity="0.06" stroke="#1565c0" stroke-opacity="0.5" stroke-width="0.6"/>"##,
            (p.precision_m / mpp).max(1.0)
        );
    }
    // The track: one line per sequence letter (a new letter means a gap, not a path).
    let letter = |label: &str| -> String {
        label
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect()
    };
    let mut track = String::new();
    let mut current = None::<String>;
    for p in &layers.positions {
        let (x, y) = px(p.lat, p.lon);
        let l = letter(&p.label);
        let verb = if current.as_deref() == Some(l.as_str()) {
            "L"
        } else {
            "M"
        };
        current = Some(l);
        let _ = write!(track, "{verb}{x:.1},{y:.1} ");
    }
    if !track.is_empty() {
        let _ = write!(
            s,
            r##"<path d="{}" fill="none" stroke="#0d47a1" stroke-width="1.6"/>"##,
            track.trim_end()
        );
    }
    let every = layers.positions.len().div_ceil(MAX_LABELS).max(1);
    for (i, p) in layers.positions.iter().enumerate() {
        let (x, y) = px(p.lat, p.lon);
        let fill = if p.weaker { "#ffffff" } else { "#0d47a1" };
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{fill}" stroke="#0d47a1" stroke-width="1.2"/>"##
        );
        if i % every == 0 || i + 1 == layers.positions.len() {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#0d47a1" stroke="#ffffff" stroke-width="2.5" paint-order="stroke">{}</text>"##,
                x + 5.0,
                y - 5.0,
                escape(&p.label)
            );
        }
    }
    // The crime on top of everything.
    if let Some((lat, lon, radius_m)) = layers.crime {
        let (x, y) = px(lat, lon);
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{:.1}" fill="none" stroke="#c62828" stroke-width="2" stroke-dasharray="6 4"/><path d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}" stroke="#c62828" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-weight="bold" fill="#b71c1c" stroke="#ffffff" stroke-width="3" paint-order="stroke">Crime</text>"##,
            radius_m / mpp,
            x - 7.0,
            y - 7.0,
            x + 7.0,
            y + 7.0,
            x - 7.0,
            y + 7.0,
            x + 7.0,
            y - 7.0,
            x + 10.0,
            y + 16.0
        );
    }
    // Scale bar (bottom left) and north arrow (top right).
    let bar_m = scale_length_m(WIDTH / 4.0 * mpp);
    let bar_px = bar_m / mpp;
    let bar_label = if bar_m >= 1000.0 {
        format!("{:.0} km", bar_m / 1000.0)
    } else {
        format!("{bar_m:.0} m")
    };
    let _ = write!(
        s,
        r##"<rect x="12" y="{:.1}" width="{:.1}" height="26" fill="#ffffff" fill-opacity="0.85"/><path d="M20,{2:.1} L20,{3:.1} L{4:.1},{3:.1} L{4:.1},{2:.1}" fill="none" stroke="#000000" stroke-width="1.5"/><text x="{5:.1}" y="{6:.1}">{7}</text>"##,
        HEIGHT - 38.0,
        bar_px + 70.0,
        HEIGHT - 24.0,
        HEIGHT - 18.0,
        20.0 + bar_px,
        28.0 + bar_px,
        HEIGHT - 18.0,
        bar_label
    );
    let _ = write!(
        s,
        r##"<g transform="translate({:.1},20)"><circle cx="0" cy="18" r="17" fill="#ffffff" fill-opacity="0.85"/><path d="M0,4 L8,28 L0,22 L-8,28 Z" fill="#000000"/><text x="0" y="46" text-anchor="middle" font-weight="bold">N</text></g>"##,
        WIDTH - 30.0
    );
    let _ = write!(
        s,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="none" stroke="#555555" stroke-width="1"/></svg>"##
    );
    DrawnMap {
        svg: s,
        basemap_note,
        zoom,
    }
}

/// Composites the archive's tiles under the frame; what the caption says about them.
fn draw_tiles(s: &mut String, tiles: &dyn TileSource, zoom: u8, left: f64, top: f64) -> String {
    let (min_zoom, max_zoom) = tiles.zoom_range();
    let attribution = tiles.attribution().unwrap_or_default();
    if zoom < min_zoom {
        return format!(
            "No street map: the tile archive starts at zoom {min_zoom}, the evidence needs {zoom}."
        );
    }
    let tile_zoom = zoom.min(max_zoom);
    // Tiles of a shallower zoom are drawn magnified.
    let scale = f64::from(1u32 << (zoom - tile_zoom));
    let size = TILE * scale;
    let n = 1i64 << tile_zoom;
    let (x0, x1) = (
        (left / size).floor() as i64,
        ((left + WIDTH) / size).floor() as i64,
    );
    let (y0, y1) = (
        (top / size).floor() as i64,
        ((top + HEIGHT) / size).floor() as i64,
    );
    let (mut drawn, mut missing, mut failed) = (0, 0, 0);
    for ty in y0.max(0)..=y1.min(n - 1) {
        for tx in x0.max(0)..=x1.min(n - 1) {
            match tiles.tile_png(tile_zoom, tx as u32, ty as u32) {
                Ok(Some(png)) if png.starts_with(b"\x89PNG\r\n\x1a\n") => {
                    drawn += 1;
                    let _ = write!(
                        s,
                        r##"<image x="{:.1}" y="{:.1}" width="{size:.1}" height="{size:.1}" preserveAspectRatio="none" xlink:href="data:image/png;base64,{}"/>"##,
                        tx as f64 * size - left,
                        ty as f64 * size - top,
                        base64(&png)
                    );
                }
                Ok(Some(_)) | Err(_) => failed += 1,
                Ok(None) => missing += 1,
            }
        }
    }
    let mut note = format!("Streets: local tile archive, zoom {tile_zoom}");
    if !attribution.is_empty() {
        let _ = write!(note, " ({attribution})");
    }
    note.push('.');
    if missing > 0 {
        let _ = write!(
            note,
            " {missing} of {} tiles are outside the archive and left blank.",
            drawn + missing + failed
        );
    }
    if failed > 0 {
        let _ = write!(
            note,
            " {failed} tiles could not be read and are left blank."
        );
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct OneColour {
        synthetic: bool,
        asked: AtomicUsize,
    }

    impl TileSource for OneColour {
        fn tile_png(&self, _z: u8, _x: u32, _y: u32) -> Result<Option<Vec<u8>>, String> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            Ok(Some(solid_png()))
        }
        fn zoom_range(&self) -> (u8, u8) {
            (10, 16)
        }
        fn synthetic(&self) -> bool {
            self.synthetic
        }
        fn attribution(&self) -> Option<String> {
            Some("Test streets".into())
        }
    }

    /// A 256×256 grey PNG.
    pub fn solid_png() -> Vec<u8> {
        let mut pixmap = tiny_skia::Pixmap::new(256, 256).expect("size");
        pixmap.fill(tiny_skia::Color::from_rgba8(200, 200, 200, 255));
        pixmap.encode_png().expect("encodes")
    }

    fn layers() -> MapLayers {
        MapLayers {
            crime: Some((51.4545, -2.5879, 100.0)),
            positions: (0..5)
                .map(|i| MapPosition {
                    label: format!("A{}", i + 1),
                    lat: 51.4545 + 0.0003 * f64::from(i),
                    lon: -2.5879 + 0.0005 * f64::from(i),
                    precision_m: 10.0,
                    weaker: i == 2,
                })
                .collect(),
            ..MapLayers::default()
        }
    }

    #[test]
    fn the_view_fits_the_evidence_at_street_zoom_with_the_crime_on_top() {
        let map = draw_map(&layers(), None);
        assert!(map.zoom >= 16, "zoom {}", map.zoom);
        let crime_at = map.svg.find(">Crime</text>").expect("crime drawn");
        let last_position = map.svg.rfind(">A5</text>").expect("labels drawn");
        assert!(crime_at > last_position, "the crime is drawn last");
        assert!(map.basemap_note.starts_with("No street map"));
        assert!(map.svg.contains(">N</text>"), "north arrow");
        assert!(map.svg.contains(" m</text>"), "scale bar");
    }

    #[test]
    fn real_tiles_are_composited_and_synthetic_ones_never_are() {
        let real = OneColour {
            synthetic: false,
            asked: AtomicUsize::new(0),
        };
        let map = draw_map(&layers(), Some(&real));
        let tiles = map.svg.matches("data:image/png;base64,").count();
        assert!(tiles >= 2, "{tiles}");
        assert_eq!(tiles, real.asked.load(Ordering::Relaxed));
        assert!(
            map.basemap_note.contains("Test streets"),
            "{}",
            map.basemap_note
        );
        let fake = OneColour {
            synthetic: true,
            asked: AtomicUsize::new(0),
        };
        let map = draw_map(&layers(), Some(&fake));
        assert_eq!(map.svg.matches("data:image").count(), 0);
        assert_eq!(fake.asked.load(Ordering::Relaxed), 0);
        assert!(map.basemap_note.contains("synthetic"));
    }

    #[test]
    fn scale_bars_are_round_lengths() {
        assert_eq!(scale_length_m(180.0), 100.0);
        assert_eq!(scale_length_m(260.0), 250.0);
        assert_eq!(scale_length_m(1500.0), 1000.0);
    }
}
