//! Server configuration: a TOML file, overridden by command-line flags. Secrets (the tag key,
//! API tokens) are never in the file: they come from the environment or from key files in the
//! data directory that the server creates with owner-only permissions.
//!
//! The sections of the parts downstream of the stores (`[trail_api]`, `[crime_api]`, `[console]`,
//! `[retention]`) are defined here, in `config/`, and those parts import them: config never
//! imports the API, the console or retention (see docs/architecture.md).

mod console;
mod crime_api;
mod documents;
mod retention;
#[cfg(test)]
mod sections_tests;
mod snapshots;
mod trail_api;

pub use console::ConsoleConfig;
pub use crime_api::{CrimeApiConfig, ForceLimits};
pub use documents::DocumentsConfig;
pub use retention::RetentionConfig;
pub use snapshots::SnapshotsConfig;
pub use trail_api::TrailApiConfig;

use crate::pipeline::PipelineConfig;
use crate::rules::RulesConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where tags connect (native protocol).
    pub ingest_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The durable store: log segments, keys, metadata.
    pub data_dir: PathBuf,
    /// People, activations and orders to load at start (until the API manages them).
    pub orders: Option<PathBuf>,
    /// Largest frame a tag may send.
    pub max_frame_bytes: usize,
    /// Log segment size before rolling to a new one.
    pub segment_bytes: u64,
    /// Partitions (owner tasks) of the pipeline.
    pub partitions: usize,
    pub pipeline: PipelineConfig,
    pub rules: RulesConfig,
    /// Endpoints that receive every alert event (at least once, in order).
    pub webhooks: Vec<crate::delivery::webhooks::WebhookConfig>,
    pub trails: crate::store::trails::TrailConfig,
    pub trail_api: TrailApiConfig,
    /// The web console: its files and the map tile server, if any.
    pub console: ConsoleConfig,
    /// Crime uploads and what police may see (`[crime_api]`).
    pub crime_api: CrimeApiConfig,
    /// What the documents people hand on carry (`[documents]`): the witness declaration.
    pub documents: DocumentsConfig,
    /// How long data is kept after an activation ends, and how often the purge runs.
    pub retention: RetentionConfig,
    /// Tag connections under load or attack: timeouts and connection limits (`[ingest]`).
    pub ingest: crate::ingest::IngestConfig,
    /// HTTP listener limits (`[http]`).
    pub http: crate::ingest::HttpConfig,
    /// Teltonika trackers (`[teltonika]`): off unless `listen` is set.
    pub teltonika: crate::ingest::teltonika::TeltonikaConfig,
    /// OsmAnd clients (`[osmand]`): off unless `listen` is set.
    pub osmand: crate::ingest::osmand::OsmandConfig,
    /// The ingest-silence watchdog (`[watchdog]`): a system alert when no tag sends anything.
    pub watchdog: crate::metrics::silence_watch::WatchdogConfig,
    /// Where the durable log is (`[log]`): embedded segments in the data directory (the
    /// default), or a NATS JetStream stream shared by the nodes of a cluster.
    pub log: LogSection,
    /// Node checkpoints (`[snapshots]`): start from the last start-up's state, not the log's
    /// first record.
    pub snapshots: SnapshotsConfig,
}

/// `[log]`: `backend = "embedded"` (default) or `"jetstream"` with a `[log.jetstream]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    pub backend: LogBackend,
    pub jetstream: Option<crate::cluster::jetstream::JetStreamConfig>,
    /// Embedded log: after draining the queue, the group committer waits this long once for
    /// more batches before its `fdatasync` (0, the default: sync at once). Fewer, larger groups
    /// cost less CPU per batch under many small uploads, and add up to this much to each
    /// acknowledgement.
    pub commit_delay_us: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogBackend {
    #[default]
    Embedded,
    Jetstream,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ingest_addr: "127.0.0.1:7700".parse().expect("literal address"),
            http_addr: "127.0.0.1:7800".parse().expect("literal address"),
            data_dir: PathBuf::from("tagstream-data"),
            orders: None,
            max_frame_bytes: 1 << 20,
            segment_bytes: 64 << 20,
            partitions: 2,
            pipeline: PipelineConfig::default(),
            rules: RulesConfig::default(),
            webhooks: Vec::new(),
            trails: Default::default(),
            trail_api: Default::default(),
            console: Default::default(),
            crime_api: Default::default(),
            documents: Default::default(),
            retention: Default::default(),
            ingest: Default::default(),
            http: Default::default(),
            teltonika: Default::default(),
            osmand: Default::default(),
            watchdog: Default::default(),
            log: Default::default(),
            snapshots: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config file {path}: {source}")]
    Invalid {
        path: PathBuf,
        source: crate::rules::alcohol::AlcoholConfigError,
    },
    #[error("config file {path}: [log] backend = \"jetstream\" needs a [log.jetstream] table with the NATS server urls")]
    JetStreamMissing { path: PathBuf },
    #[error("config file {path}: [log.jetstream] own_partitions: {message}")]
    OwnPartitions { path: PathBuf, message: String },
    /// `[teltonika]` or `[osmand]`.
    #[error("config file {path}: {message}")]
    Teltonika { path: PathBuf, message: String },
}

/// `own_partitions = "auto"`: a share taken by membership at start.
pub const AUTO_OWNERSHIP: &str = "auto";

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        config
            .rules
            .validate()
            .map_err(|source| ConfigError::Invalid {
                path: path.to_path_buf(),
                source,
            })?;
        config
            .teltonika
            .validate()
            .and_then(|()| config.osmand.validate())
            .map_err(|message| ConfigError::Teltonika {
                path: path.to_path_buf(),
                message,
            })?;
        if config.log.backend == LogBackend::Jetstream && config.log.jetstream.is_none() {
            return Err(ConfigError::JetStreamMissing {
                path: path.to_path_buf(),
            });
        }
        // ("auto" is checked for its clocks here; the share is taken at start.)
        let mut check = config.clone();
        if let Some(js) = check
            .log
            .jetstream
            .as_mut()
            .filter(|_| config.auto_ownership())
        {
            js.own_partitions = Some("none".into());
        }
        check
            .owned_partitions()
            .map_err(|message| ConfigError::OwnPartitions {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(config)
    }

    /// Cluster mode: the partitions whose rules this node runs (`[log.jetstream]
    /// own_partitions`); `None` runs them all. Each owned partition needs its own clock, so
    /// `[pipeline] clock_partitions` must equal the stream's partitions.
    pub fn owned_partitions(
        &self,
    ) -> Result<Option<crate::model::tag_partition::PartitionSet>, String> {
        let Some(js) = self.jetstream() else {
            return Ok(None);
        };
        let Some(text) = js.own_partitions.as_deref() else {
            return Ok(None);
        };
        if self.pipeline.clock_partitions != js.partitions {
            return Err(format!(
                "a node owning some partitions needs a clock per partition: [pipeline] clock_partitions is {}, the stream has {} partitions (set clock_partitions = {} on every node and in replay's config)",
                self.pipeline.clock_partitions, js.partitions, js.partitions
            ));
        }
        if text.trim() == AUTO_OWNERSHIP {
            return Err(
                "\"auto\" is resolved into this node's share when the server starts".into(),
            );
        }
        crate::model::tag_partition::PartitionSet::parse(text, js.partitions)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Cluster mode: whether this node takes a share of the partitions by membership
    /// (`own_partitions = "auto"`, `cluster::membership`).
    pub fn auto_ownership(&self) -> bool {
        self.jetstream()
            .and_then(|js| js.own_partitions.as_deref())
            .is_some_and(|t| t.trim() == AUTO_OWNERSHIP)
    }

    /// The JetStream stream's settings when the log is on one (`None`: the embedded log).
    pub fn jetstream(&self) -> Option<&crate::cluster::jetstream::JetStreamConfig> {
        match self.log.backend {
            LogBackend::Embedded => None,
            LogBackend::Jetstream => self.log.jetstream.as_ref(),
        }
    }
}
