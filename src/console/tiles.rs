//! The console's local map tiles: an MBTiles archive (SQLite, `metadata` and `tiles` tables, TMS
//! row numbering) of PNG raster tiles, read-only, served at `/console/tiles/{z}/{x}/{y}.png`, so
//! a deployment on a closed network shows streets with no request leaving the machine.
//!
//! The archive is opened and its metadata read once at start; a missing or unusable archive stops
//! the start with an error naming the path and what is wrong. Tile reads are SQLite queries that
//! may wait on the disk, so they run on tokio's blocking pool, each on a connection taken from a
//! small pool (a connection serves one thread at a time; opening one per request would re-read
//! the schema every time).

use crate::config::ConsoleConfig;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The URL template the console is given for the archive's tiles.
pub const TILE_URL: &str = "/console/tiles/{z}/{x}/{y}.png";
/// Connections kept for reuse (more are opened under load and closed after).
const POOL_SIZE: usize = 4;
/// Deepest zoom level accepted in a request (2^30 tiles a side; MBTiles go nowhere near it).
pub const MAX_ZOOM: u8 = 30;

/// Why the tile archive cannot be used.
#[derive(Debug, Error)]
pub enum TileArchiveError {
    #[error("[console] tile_archive ({archive}) and tile_url ({url}) are both set: the console's tiles come from one or the other")]
    BothSources { archive: PathBuf, url: String },
    #[error("tile archive {path}: no such file")]
    Missing { path: PathBuf },
    #[error("tile archive {path}: cannot open it: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("tile archive {path} is not an MBTiles archive: {reason}")]
    NotMbtiles { path: PathBuf, reason: String },
    #[error("tile archive {path} holds '{format}' tiles; only png raster tiles are served (vector tiles and PMTiles are not read)")]
    Format { path: PathBuf, format: String },
    #[error("tile archive {path}: metadata {key} = '{value}' is not valid: {reason}")]
    Metadata {
        path: PathBuf,
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("tile archive {path} holds no tiles")]
    Empty { path: PathBuf },
    #[error("tile archive {path}: reading tile {z}/{x}/{y}: {source}")]
    Read {
        path: PathBuf,
        z: u8,
        x: u32,
        y: u32,
        source: rusqlite::Error,
    },
}

/// What the archive says about itself (read once at start).
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveInfo {
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// West, south, east, north in degrees, when the archive says.
    pub bounds: Option<[f64; 4]>,
    pub attribution: Option<String>,
    /// `synthetic = true`: made-up streets (the demo's), never to be shown as real.
    pub synthetic: bool,
}

/// An open MBTiles archive of PNG tiles.
pub struct TileArchive {
    path: PathBuf,
    info: ArchiveInfo,
    pool: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for TileArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileArchive")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

/// The configured archive, opened and checked; `None` when there is none. Refuses an archive
/// together with a remote `tile_url`.
pub fn open_configured(config: &ConsoleConfig) -> Result<Option<TileArchive>, TileArchiveError> {
    match (&config.tile_archive, &config.tile_url) {
        (None, _) => Ok(None),
        (Some(archive), Some(url)) => Err(TileArchiveError::BothSources {
            archive: archive.clone(),
            url: url.clone(),
        }),
        (Some(path), None) => TileArchive::open(path).map(Some),
    }
}

fn connect(path: &Path) -> Result<Connection, TileArchiveError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| TileArchiveError::Open {
        path: path.to_path_buf(),
        source,
    })
}

impl TileArchive {
    /// Opens the archive read-only and reads its metadata.
    pub fn open(path: &Path) -> Result<TileArchive, TileArchiveError> {
        if !path.is_file() {
            return Err(TileArchiveError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = connect(path)?;
        let info = read_info(&conn, path)?;
        Ok(TileArchive {
            path: path.to_path_buf(),
            info,
            pool: Mutex::new(vec![conn]),
        })
    }

    pub fn info(&self) -> &ArchiveInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tile at XYZ `z/x/y` (y counted from the north), or `None` if the archive has none.
    /// Blocking: call it off the async runtime.
    pub fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Vec<u8>>, TileArchiveError> {
        let conn = self.pool.lock().pop();
        let conn = match conn {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        // MBTiles rows count from the south (TMS).
        let tms_row = (1u64 << z) - 1 - u64::from(y);
        let found = conn
            .prepare_cached(
                "SELECT tile_data FROM tiles \
                 WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row((z, x, tms_row), |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .map_err(|source| TileArchiveError::Read {
                path: self.path.clone(),
                z,
                x,
                y,
                source,
            });
        let mut pool = self.pool.lock();
        if pool.len() < POOL_SIZE {
            pool.push(conn);
        }
        found
    }
}

/// Documents draw their maps on the same archive (and refuse to draw a synthetic one).
impl crate::documents::map_figure::TileSource for TileArchive {
    fn tile_png(&self, z: u8, x: u32, y: u32) -> Result<Option<Vec<u8>>, String> {
        self.tile(z, x, y).map_err(|e| e.to_string())
    }

    fn zoom_range(&self) -> (u8, u8) {
        (self.info.min_zoom, self.info.max_zoom)
    }

    fn synthetic(&self) -> bool {
        self.info.synthetic
    }

    fn attribution(&self) -> Option<String> {
        self.info.attribution.clone()
    }
}

fn read_info(conn: &Connection, path: &Path) -> Result<ArchiveInfo, TileArchiveError> {
    let not_mbtiles = |reason: String| TileArchiveError::NotMbtiles {
        path: path.to_path_buf(),
        reason,
    };
    let meta: HashMap<String, String> = conn
        .prepare("SELECT name, value FROM metadata")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| not_mbtiles(format!("reading its metadata table: {e}")))?;
    conn.prepare("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 0")
        .map_err(|e| not_mbtiles(format!("reading its tiles table: {e}")))?;
    match meta.get("format").map(|f| f.trim()) {
        Some("png") => {}
        Some(other) => {
            return Err(TileArchiveError::Format {
                path: path.to_path_buf(),
                format: other.to_string(),
            })
        }
        None => return Err(not_mbtiles("its metadata has no 'format'".into())),
    }
    let bad = |key: &'static str, value: &str, reason: &'static str| TileArchiveError::Metadata {
        path: path.to_path_buf(),
        key,
        value: value.to_string(),
        reason,
    };
    let zoom = |key: &'static str| -> Result<Option<u8>, TileArchiveError> {
        meta.get(key)
            .map(|v| match v.trim().parse::<u8>() {
                Ok(z) if z <= MAX_ZOOM => Ok(z),
                _ => Err(bad(key, v, "not a zoom level 0..=30")),
            })
            .transpose()
    };
    let (min_zoom, max_zoom) = match (zoom("minzoom")?, zoom("maxzoom")?) {
        (Some(lo), Some(hi)) => (lo, hi),
        // Optional in MBTiles 1.3: then the tiles say.
        (lo, hi) => {
            let (lo_t, hi_t): (Option<u8>, Option<u8>) = conn
                .query_row(
                    "SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| not_mbtiles(format!("reading its tiles table: {e}")))?;
            match (lo.or(lo_t), hi.or(hi_t)) {
                (Some(lo), Some(hi)) => (lo, hi),
                _ => {
                    return Err(TileArchiveError::Empty {
                        path: path.to_path_buf(),
                    })
                }
            }
        }
    };
    if min_zoom > max_zoom {
        return Err(bad(
            "minzoom",
            &min_zoom.to_string(),
            "greater than maxzoom",
        ));
    }
    let bounds = meta
        .get("bounds")
        .map(|v| {
            let parts: Vec<f64> = v
                .split(',')
                .map(|p| p.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("bounds", v, "not four numbers"))?;
            match parts[..] {
                [w, s, e, n]
                    if (-180.0..=180.0).contains(&w)
                        && (-180.0..=180.0).contains(&e)
                        && (-90.0..=90.0).contains(&s)
                        && (-90.0..=90.0).contains(&n)
                        && s <= n =>
                {
                    Ok([w, s, e, n])
                }
                _ => Err(bad("bounds", v, "not west,south,east,north in degrees")),
            }
        })
        .transpose()?;
    Ok(ArchiveInfo {
        min_zoom,
        max_zoom,
        bounds,
        attribution: meta.get("attribution").cloned(),
        synthetic: meta.get("synthetic").map(|v| v.trim()) == Some("true"),
    })
}

/// A request's `{z}`, `{x}` and `{y}.png`, each plain decimal digits, inside the zoom's grid.
pub fn parse_tile_path(z: &str, x: &str, y_png: &str) -> Option<(u8, u32, u32)> {
    fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
        (!s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }
    let z: u8 = digits(z)?;
    let x: u32 = digits(x)?;
    let y: u32 = digits(y_png.strip_suffix(".png")?)?;
    let side = 1u64 << z.min(MAX_ZOOM + 1);
    (z <= MAX_ZOOM && u64::from(x) < side && u64::from(y) < side).then_some((z, x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny archive: tile z3 x2 stored at TMS row 1 (XYZ y = 6), and `meta` as metadata.
    fn archive(dir: &Path, meta: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("t.mbtiles");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE metadata (name TEXT, value TEXT);
             CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER,
                                 tile_data BLOB);
             INSERT INTO tiles VALUES (3, 2, 1, x'89504E470D0A1A0A01');",
        )
        .unwrap();
        for (k, v) in meta {
            conn.execute("INSERT INTO metadata VALUES (?1, ?2)", (k, v))
                .unwrap();
        }
        path
    }

    const PNG_META: &[(&str, &str)] = &[
        ("format", "png"),
        ("minzoom", "3"),
        ("maxzoom", "3"),
        ("bounds", "-2.66,51.40,-2.51,51.50"),
        ("attribution", "Synthetic"),
        ("synthetic", "true"),
    ];

    #[test]
    fn a_tile_is_found_by_its_xyz_row() {
        let dir = tempfile::tempdir().unwrap();
        let a = TileArchive::open(&archive(dir.path(), PNG_META)).unwrap();
        assert_eq!(
            a.info(),
            &ArchiveInfo {
                min_zoom: 3,
                max_zoom: 3,
                bounds: Some([-2.66, 51.40, -2.51, 51.50]),
                attribution: Some("Synthetic".into()),
                synthetic: true,
            }
        );
        // TMS row 1 of 8 is XYZ row 6.
        assert_eq!(
            a.tile(3, 2, 6).unwrap().as_deref(),
            Some(&b"\x89PNG\r\n\x1a\n\x01"[..])
        );
        assert_eq!(a.tile(3, 2, 1).unwrap(), None, "the row is flipped");
        assert_eq!(a.tile(3, 3, 6).unwrap(), None);
        assert_eq!(a.tile(4, 2, 6).unwrap(), None);
        // Again, on the pooled connection.
        assert!(a.tile(3, 2, 6).unwrap().is_some());
    }

    #[test]
    fn zooms_come_from_the_tiles_when_the_metadata_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let a = TileArchive::open(&archive(dir.path(), &[("format", "png")])).unwrap();
        assert_eq!((a.info().min_zoom, a.info().max_zoom), (3, 3));
        assert!(!a.info().synthetic);
        assert_eq!(a.info().bounds, None);
    }

    #[test]
    fn unusable_archives_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.mbtiles");
        std::fs::write(&text, "this is not a database, just some text long enough").unwrap();
        let err = TileArchive::open(&text).unwrap_err().to_string();
        assert!(
            err.contains(&text.display().to_string()) && err.contains("not an MBTiles"),
            "{err}"
        );

        let missing = dir.path().join("nowhere.mbtiles");
        let err = TileArchive::open(&missing).unwrap_err().to_string();
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("no such file"),
            "{err}"
        );

        let sub = dir.path().join("jpg");
        std::fs::create_dir(&sub).unwrap();
        let jpg = archive(&sub, &[("format", "pbf")]);
        let err = TileArchive::open(&jpg).unwrap_err().to_string();
        assert!(err.contains("'pbf' tiles"), "{err}");

        let sub = dir.path().join("bounds");
        std::fs::create_dir(&sub).unwrap();
        let bad = archive(&sub, &[("format", "png"), ("bounds", "west,south")]);
        let err = TileArchive::open(&bad).unwrap_err().to_string();
        assert!(err.contains("bounds"), "{err}");
    }

    #[test]
    fn an_archive_and_a_tile_server_are_not_both_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = archive(dir.path(), PNG_META);
        let mut config = ConsoleConfig {
            tile_archive: Some(path),
            ..ConsoleConfig::default()
        };
        assert!(open_configured(&config).unwrap().is_some());
        config.tile_url = Some("https://tiles.example/{z}/{x}/{y}.png".into());
        let err = open_configured(&config).unwrap_err().to_string();
        assert!(err.contains("both set"), "{err}");
        assert!(open_configured(&ConsoleConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn tile_paths_are_plain_numbers_inside_the_grid() {
        assert_eq!(parse_tile_path("3", "2", "6.png"), Some((3, 2, 6)));
        assert_eq!(parse_tile_path("0", "0", "0.png"), Some((0, 0, 0)));
        assert_eq!(
            parse_tile_path("16", "65535", "21000.png"),
            Some((16, 65535, 21000))
        );
        for (z, x, y) in [
            ("3", "8", "0.png"),
            ("3", "0", "8.png"),
            ("31", "0", "0.png"),
            ("a", "0", "0.png"),
            ("3", "-1", "0.png"),
            ("3", "+1", "0.png"),
            ("3", "1", "1"),
            ("3", "1", "1.jpg"),
            ("3", "1", ".png"),
            ("", "1", "1.png"),
            ("3", "99999999999", "1.png"),
        ] {
            assert_eq!(parse_tile_path(z, x, y), None, "{z}/{x}/{y}");
        }
    }
}
