//! `[console]`: where the web console's files are and which map tiles it shows. Plain data; the
//! console (`crate::console`) finds its files and serves them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Console settings (`[console]` in the server config; `--console-dir`, `--tile-url`,
/// `--tile-archive` flags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The console's files; default: `web/` in the current directory, else beside the binary's
    /// repository (`target/<profile>/tagstream` → `web/`).
    pub dir: Option<PathBuf>,
    /// A map tile URL template (`https://tiles.example/{z}/{x}/{y}.png`); none = the offline
    /// basemap of police force areas.
    pub tile_url: Option<String>,
    /// The attribution the tile server asks for (with `tile_archive`: instead of the archive's).
    pub tile_attribution: Option<String>,
    /// A local raster tile archive (MBTiles of PNG tiles) that `tagstream serve` itself serves at
    /// `/console/tiles/{z}/{x}/{y}.png`, so no map request leaves the machine; not with `tile_url`.
    pub tile_archive: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::ConsoleConfig;

    #[test]
    fn a_tile_archive_is_a_path_in_the_console_section() {
        let c: ConsoleConfig = toml::from_str(
            "tile_archive = \"fixtures/basemap/demo-streets.mbtiles\"\ntile_attribution = \"OS\"",
        )
        .expect("valid [console]");
        assert_eq!(
            c.tile_archive.as_deref(),
            Some(std::path::Path::new(
                "fixtures/basemap/demo-streets.mbtiles"
            ))
        );
        assert!(c.tile_url.is_none());
    }
}
