//! `[console]`: where the web console's files are and which map tiles it shows. Plain data (and
//! where to look for the files when none is configured); the console (`crate::console`) serves it.

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

impl ConsoleConfig {
    /// The directory to serve, if one with an `index.html` can be found.
    pub fn resolve_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.dir {
            return Some(dir.clone());
        }
        let here = std::env::current_dir().ok().map(|d| d.join("web"));
        let beside_binary = std::env::current_exe().ok().and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .map(|d| d.join("web"))
                .find(|d| d.join("index.html").is_file())
        });
        here.filter(|d| d.join("index.html").is_file())
            .or(beside_binary)
    }
}
