//! `tagstream report …` over a stopped server's data directory: the same documents the API
//! serves, from the same stores, with the same settings (config file), so they are byte for byte
//! what the server would have given. Holds the data directory's lock; audits each document as
//! `cli:$USER` with the purpose given.

use super::breach_report::breach_report;
use super::hit_pack::{hit_pack, HitPackFiles, DEFAULT_DECLARATION};
use super::map_figure::TileSource;
use super::sober_day_report::sober_day_report;
use super::sources::{
    BreachRequestError, BreachSources, HitPackSources, SoberDayRequest, SoberDayRequestError,
    SoberDaySources,
};
use super::DocumentError;
use crate::alerts::alert_store::AlertStore;
use crate::config::ServerConfig;
use crate::data_lock::{lock_data_dir, LockError};
use crate::model::{Alert, SoberDay};
use crate::store::crime_store::CrimeStore;
use crate::store::metadata::{Metadata, NewAuditEntry};
use crate::store::tac_book::TacBook;
use crate::store::trails::TrailStore;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OfflineReportError {
    #[error("{0} is not a tagstream data directory (no metadata database inside)")]
    NotADataDir(PathBuf),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("hit '{0}' not found")]
    HitNotFound(String),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Metadata(#[from] crate::store::metadata::MetadataError),
    #[error(transparent)]
    Crimes(#[from] crate::store::crime_store::CrimeStoreError),
    #[error(transparent)]
    Request(#[from] SoberDayRequestError),
    #[error("alert '{0}' not found")]
    AlertNotFound(String),
    #[error(transparent)]
    Breach(#[from] BreachRequestError),
    #[error(transparent)]
    Alerts(#[from] crate::alerts::alert_store::AlertStoreError),
    #[error("trail store: {0}")]
    Trails(#[from] crate::store::trails::TrailError),
    #[error("the log is a JetStream stream: ask a node for the report (GET /v1/people/{{id}}/sober-day-report.pdf)")]
    LogIsAStream,
    #[error("rebuilding from the log: {0}")]
    Derive(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `files` into `out_dir` (created if missing): the PDF, the JSON and
/// `<hit>-manifest.json`. The paths written.
pub fn write_pack(
    files: &HitPackFiles,
    hit: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    write_files(
        out_dir,
        [
            (files.manifest.files[0].name.clone(), files.pdf.clone()),
            (files.manifest.files[1].name.clone(), files.json.clone()),
            (format!("{hit}-manifest.json"), files.manifest.to_bytes()),
        ],
    )
}

/// Writes each (name, bytes) into `out_dir` (created if missing). The paths written.
fn write_files(
    out_dir: &Path,
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OfflineReportError::Write { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(failed(out_dir))?;
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = out_dir.join(name);
        std::fs::write(&path, bytes).map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Audits `entry` as the command's user (`cli:$USER`, admin), now.
fn audit_as_cli(metadata: &Metadata, entry: NewAuditEntry) -> Result<(), OfflineReportError> {
    metadata.audit(&entry.by_cli(chrono::Utc::now().timestamp_millis()))?;
    Ok(())
}

/// `tagstream report hit-pack`: the pack of hit `hit` from `data_dir`, audited, into `out_dir`.
pub fn hit_pack_offline(
    data_dir: &Path,
    config: &ServerConfig,
    tiles: Option<&dyn TileSource>,
    hit: &str,
    purpose: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    if !data_dir.join("metadata.sqlite3").is_file() {
        return Err(OfflineReportError::NotADataDir(data_dir.to_path_buf()));
    }
    let _lock = lock_data_dir(data_dir)?;
    let metadata = Metadata::open(data_dir)?;
    let crimes = CrimeStore::open(data_dir)?;
    let stored = crimes
        .hit(hit)?
        .ok_or_else(|| OfflineReportError::HitNotFound(hit.to_string()))?;
    audit_as_cli(
        &metadata,
        NewAuditEntry {
            action: "documents.hit_pack".into(),
            person: Some(stored.hit.person.clone()),
            format: Some("pack".into()),
            purpose: Some(purpose.to_string()),
            detail: Some(format!("hit {hit} to {}", out_dir.display())),
            ..NewAuditEntry::default()
        },
    )?;
    let (trails, _) = TrailStore::open(&data_dir.join("trails"), config.trails)?;
    let sources = HitPackSources::read(&crimes, &metadata, &trails, stored)?;
    let declaration = config
        .documents
        .witness_declaration
        .clone()
        .unwrap_or_else(|| DEFAULT_DECLARATION.to_string());
    let files = hit_pack(&sources.input(&declaration, tiles))?;
    write_pack(&files, hit, out_dir)
}

/// What replaying a data directory's log rebuilds for the sober-day report (documents never
/// run the pipeline themselves: the caller replays, as `tagstream people export` does).
pub struct ReplayedAlcohol {
    pub sober_days: Vec<SoberDay>,
    pub alerts: Vec<Alert>,
    pub tac: std::sync::Arc<TacBook>,
}

/// `tagstream report sober-days`: the sober-day report of `person` from `data_dir`, audited,
/// into `out_dir`; `replayed` rebuilds the alerts, days and TAC readings from the log (called
/// under the data directory's lock).
#[allow(clippy::too_many_arguments)]
pub fn sober_day_report_offline(
    data_dir: &Path,
    config: &ServerConfig,
    person: &str,
    request: &SoberDayRequest,
    purpose: &str,
    out_dir: &Path,
    replayed: &dyn Fn() -> Result<ReplayedAlcohol, String>,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    if config.jetstream().is_some() {
        return Err(OfflineReportError::LogIsAStream);
    }
    if !data_dir.join("metadata.sqlite3").is_file() {
        return Err(OfflineReportError::NotADataDir(data_dir.to_path_buf()));
    }
    let _lock = lock_data_dir(data_dir)?;
    let metadata = Metadata::open(data_dir)?;
    let found = metadata
        .person(person)?
        .ok_or_else(|| SoberDayRequestError::PersonNotFound(person.to_string()))?;
    let replayed = replayed().map_err(OfflineReportError::Derive)?;
    let sources = SoberDaySources::gather(
        &metadata,
        found,
        request,
        replayed.sober_days,
        replayed.alerts,
        &replayed.tac,
    )?;
    audit_as_cli(
        &metadata,
        NewAuditEntry {
            action: "documents.sober_day_report".into(),
            person: Some(person.to_string()),
            format: Some("report".into()),
            purpose: Some(purpose.to_string()),
            detail: Some(format!(
                "order {} {} to {}, to {}",
                sources.order.id,
                sources.from,
                sources.to,
                out_dir.display()
            )),
            ..NewAuditEntry::default()
        },
    )?;
    write_files(out_dir, sober_day_report(&sources.input())?.into_named())
}

/// `tagstream report breach`: the breach report of alert `alert` from `data_dir`, audited,
/// into `out_dir`, from the stores as they are (the command brings them up to the log first:
/// `tagstream::server::catch_up`).
pub fn breach_report_offline(
    data_dir: &Path,
    config: &ServerConfig,
    tiles: Option<&dyn TileSource>,
    alert: &str,
    purpose: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    if config.jetstream().is_some() {
        return Err(OfflineReportError::LogIsAStream);
    }
    if !data_dir.join("metadata.sqlite3").is_file() {
        return Err(OfflineReportError::NotADataDir(data_dir.to_path_buf()));
    }
    let _lock = lock_data_dir(data_dir)?;
    let metadata = Metadata::open(data_dir)?;
    let alerts = AlertStore::open(data_dir)?;
    let stored = alerts
        .get(alert)?
        .ok_or_else(|| OfflineReportError::AlertNotFound(alert.to_string()))?;
    let history = alerts.review_history(alert)?;
    let (trails, _) = TrailStore::open(&data_dir.join("trails"), config.trails)?;
    let sources = BreachSources::read(stored, history, &metadata, &trails)?;
    audit_as_cli(
        &metadata,
        NewAuditEntry {
            action: "documents.breach_report".into(),
            person: Some(sources.alert.person.clone()),
            format: Some("report".into()),
            purpose: Some(purpose.to_string()),
            detail: Some(format!("alert {alert} to {}", out_dir.display())),
            ..NewAuditEntry::default()
        },
    )?;
    write_files(
        out_dir,
        breach_report(&sources.input(tiles))?.into_named(alert),
    )
}
