//! `[console]`: where the web console's files are and which map tiles it shows. Plain data; the
//! console (`crate::console`) finds its files and serves them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Console settings (`[console]` in the server config; `--console-dir`, `--tile-url` flags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The console's files; default: `web/` in the current directory, else beside the binary's
    /// repository (`target/<profile>/tagstream` → `web/`).
    pub dir: Option<PathBuf>,
    /// A map tile URL template (`https://tiles.example/{z}/{x}/{y}.png`); none = the offline
    /// basemap of police force areas.
    pub tile_url: Option<String>,
    /// The attribution the tile server asks for.
    pub tile_attribution: Option<String>,
}
