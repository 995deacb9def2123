//! The offline retention commands, over a stopped server's data directory: `tagstream retention
//! run` (the same purge as the server's, with the log opened — and recovered — by the command
//! itself) and `tagstream people export` (the subject access export, with sober days derived by
//! replaying the log as the server would at start). Both hold the data directory's lock, so they
//! refuse to run beside a server.

use super::purge::{wall_clock_ms, PurgeReport, Purger, RetentionError};
use super::subject_access::{write_export, ExportError, ExportSummary, Sources};
use crate::alerts::alert_store::{AlertStore, AlertStoreError};
use crate::config::ServerConfig;
use crate::data_lock::{lock_data_dir, DataDirLock, LockError};
use crate::log::{LogConfig, LogError, LogWriter};
use crate::model::TimeMs;
use crate::replay::{catch_up_trails, replay, ReplayError};
use crate::store::crime_store::CrimeStore;
use crate::store::metadata::{Metadata, MetadataError, NewAuditEntry};
use crate::store::trails::{TrailError, TrailStore};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{0} is not a tagstream data directory (no log/ inside; a cluster node keeps its log on the stream: see below)")]
    NotADataDir(PathBuf),
    #[error("the log is a JetStream stream shared by running nodes: purge with POST /v1/admin/retention/run on the node holding the retention lease, export with GET /v1/admin/people/{{id}}/export on any node")]
    LogIsAStream,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Alerts(#[from] AlertStoreError),
    #[error(transparent)]
    Crimes(#[from] crate::store::crime_store::CrimeStoreError),
    #[error("trail store: {0}")]
    Trails(#[from] TrailError),
    #[error("bringing the trail store up to date: {0}")]
    TrailCatchUp(ReplayError),
    #[error("durable log: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Purge(#[from] RetentionError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("deriving sober days: {0}")]
    Replay(#[from] ReplayError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The stores of a stopped server's data directory, opened under its lock.
struct Opened {
    _lock: DataDirLock,
    metadata: Metadata,
    alert_store: AlertStore,
    trails: TrailStore,
}

fn open(data_dir: &Path, config: &ServerConfig) -> Result<Opened, OfflineError> {
    if config.jetstream().is_some() {
        return Err(OfflineError::LogIsAStream);
    }
    if !data_dir.join("log").is_dir() {
        return Err(OfflineError::NotADataDir(data_dir.to_path_buf()));
    }
    let lock = lock_data_dir(data_dir)?;
    let metadata = Metadata::open(data_dir)?;
    // A server stopped hard leaves positions after the trail checkpoint only in the log: bring
    // the trail store up to date first, as the server does at start.
    let (trails, _) = TrailStore::open(&data_dir.join("trails"), config.trails)?;
    catch_up_trails(
        &data_dir.join("log"),
        &trails,
        config.pipeline,
        &config.rules,
    )
    .map_err(OfflineError::TrailCatchUp)?;
    Ok(Opened {
        _lock: lock,
        metadata,
        alert_store: AlertStore::open(data_dir)?,
        trails,
    })
}

/// `tagstream retention run`: one purge judged at `now_ms`.
pub fn run_retention(
    data_dir: &Path,
    config: &ServerConfig,
    now_ms: TimeMs,
) -> Result<PurgeReport, OfflineError> {
    let opened = open(data_dir, config)?;
    let (writer, _) = LogWriter::open(
        &data_dir.join("log"),
        LogConfig {
            segment_max_bytes: config.segment_bytes,
            ..LogConfig::default()
        },
    )?;
    let purger = Purger::new(
        config.retention,
        data_dir.to_path_buf(),
        opened.metadata,
        opened.alert_store,
        opened.trails,
        Arc::new(Mutex::new(writer)),
        None,
        None,
    )
    .with_target(Arc::new(CrimeStore::open(data_dir)?));
    Ok(purger.run(now_ms, "cli")?)
}

/// `tagstream people export`: audits the export (as `cli:$USER`, with `purpose`), then writes it
/// to `out`.
pub fn export_person(
    data_dir: &Path,
    config: &ServerConfig,
    person: &str,
    purpose: &str,
    out: &Path,
) -> Result<ExportSummary, OfflineError> {
    let opened = open(data_dir, config)?;
    if opened.metadata.person(person)?.is_none() {
        return Err(ExportError::NotFound(person.to_string()).into());
    }
    let now_ms = wall_clock_ms();
    opened.metadata.audit(
        &NewAuditEntry {
            action: "sar.export".into(),
            person: Some(person.to_string()),
            format: Some("json".into()),
            purpose: Some(purpose.to_string()),
            detail: Some(format!("to {}", out.display())),
            ..NewAuditEntry::default()
        }
        .by_cli(now_ms),
    )?;
    let orders = opened.metadata.orders_document()?;
    let (outputs, _) = replay(&orders, data_dir, &[], config.pipeline, &config.rules)?;
    let sober_days = outputs.sober_days.sorted();
    let write_err = |source| OfflineError::Write {
        path: out.to_path_buf(),
        source,
    };
    let crimes = CrimeStore::open(data_dir)?;
    let file = std::fs::File::create(out).map_err(write_err)?;
    let log_dir = data_dir.join("log");
    let sources = Sources {
        metadata: &opened.metadata,
        alert_store: &opened.alert_store,
        trails: &opened.trails,
        batches: &|each| crate::log::for_each_batch_in(&log_dir, each),
        sober_days: &sober_days,
        crimes: Some(&crimes),
    };
    let summary = write_export(&sources, person, now_ms, BufWriter::new(file))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offline_commands_refuse_a_cluster_nodes_data_directory_and_say_what_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let config: ServerConfig = toml::from_str(
            "[log]\nbackend = \"jetstream\"\n[log.jetstream]\nurls = [\"nats://127.0.0.1:1\"]\n",
        )
        .unwrap();
        let err = run_retention(dir.path(), &config, 0).unwrap_err();
        assert!(matches!(err, OfflineError::LogIsAStream), "{err}");
        assert!(err.to_string().contains("retention lease"), "{err}");
        let out = dir.path().join("export.json");
        let err = export_person(dir.path(), &config, "P1", "test", &out).unwrap_err();
        assert!(matches!(err, OfflineError::LogIsAStream), "{err}");
    }
}
