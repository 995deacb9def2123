//! `tagstream rebuild` (server stopped): every store that is a view of the log is set aside and
//! built again from the log by the server's own start-up (the same code that brings the stores
//! up to date after a crash). Set aside, never deleted: the old stores go into
//! `DATA/rebuild-<unix ms>/` for whoever wants to compare or roll back.
//!
//! What is rebuilt: the alert store (alerts, sober days, reviews), the trail store, the hits and
//! their reviews, and the metadata database's people, activations, orders, change history,
//! users and caseloads, tag credentials, and the police crime batches. What is kept, because
//! only that store holds it: the audit trail, the record of purge runs, the public crime
//! overlay, and crime batches imported before batches were log records. Alert
//! event numbers continue above every number handed out before, and webhook cursors are kept,
//! so no client ever sees one number for two changes; each rebuilt alert is a new event.

use crate::alerts::alert_store::{AlertStore, AlertStoreError};
use crate::cluster::jetstream::{JetStreamConfig, JetStreamError, JetStreamLog};
use crate::log::{LogError, LogReader};
use crate::model::{Change, LogEntry};
use crate::store::crime_store::{CrimeStore, CrimeStoreError};
use crate::store::metadata::{Metadata, MetadataError};
use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("reading the log: {0}")]
    Log(#[from] LogError),
    #[error("reading the log stream: {0}")]
    Stream(String),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("{0}")]
    Crimes(#[from] CrimeStoreError),
    #[error("{0}")]
    Alerts(#[from] AlertStoreError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the metadata database holds {0} that the log does not: start the server once (it writes them to the log), then rebuild")]
    NotInLog(String),
}

/// What [`set_aside`] moved and what the new stores must carry on from.
#[derive(Debug, Clone, Default)]
pub struct SetAside {
    pub backup_dir: PathBuf,
    /// The highest alert event number ever handed out (0 if the old store could not say).
    pub event_numbers_through: i64,
    pub delivery_cursors: Vec<(String, i64)>,
}

/// Sets the log's views in `data_dir` aside (the caller holds the directory's lock and opens
/// the stores afresh afterwards).
/// `stream`: the node's log is this JetStream stream (cluster mode), not `DATA/log`.
pub fn set_aside(
    data_dir: &Path,
    now_ms: i64,
    stream: Option<&JetStreamConfig>,
) -> Result<SetAside, RebuildError> {
    let metadata = Metadata::open(data_dir)?;
    let in_log = match stream {
        None => scan_log(data_dir)?,
        // On the runtime's blocking side: the stream is read through its handle.
        Some(config) => tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(scan_stream(config))
        })?,
    };
    check_all_in_log(&in_log, &metadata)?;
    let backup_dir = data_dir.join(format!("rebuild-{now_ms}"));
    std::fs::DirBuilder::new()
        .mode(crate::data_dir::DIR_MODE)
        .create(&backup_dir)
        .map_err(|source| RebuildError::Io {
            what: "creating",
            path: backup_dir.clone(),
            source,
        })?;
    let mut aside = SetAside {
        backup_dir: backup_dir.clone(),
        ..SetAside::default()
    };
    if data_dir.join("alerts.sqlite3").exists() {
        // A damaged store must not stop its own rebuild: numbering then starts afresh, and
        // the warning says so.
        match AlertStore::open(data_dir)
            .and_then(|old| Ok((old.event_seq_high_water()?, old.delivery_cursors()?)))
        {
            Ok((through, cursors)) => {
                aside.event_numbers_through = through;
                aside.delivery_cursors = cursors;
            }
            Err(e) => tracing::warn!(error = %e,
                "the old alert store cannot be read: alert event numbers start again from 1"),
        }
        for name in ["alerts.sqlite3", "alerts.sqlite3-wal", "alerts.sqlite3-shm"] {
            move_into(&data_dir.join(name), &backup_dir)?;
        }
    }
    move_into(&data_dir.join("trails"), &backup_dir)?;
    metadata.backup_to(&backup_dir.join("metadata.sqlite3"))?;
    metadata.clear_log_views()?;
    if data_dir.join("crimes.sqlite3").exists() {
        let crimes = CrimeStore::open(data_dir)?;
        crimes.backup_to(&backup_dir.join("crimes.sqlite3"))?;
        // Batches imported before they were log records stay (with their mark): the log cannot
        // give them back.
        let stored = crimes.batch_ids()?;
        let legacy: Vec<&String> = stored
            .iter()
            .filter(|id| !in_log.crime_batches.contains(*id))
            .collect();
        if !legacy.is_empty() {
            tracing::warn!(
                ?legacy,
                "crime batches older than the log's crime batch records are kept as they are"
            );
        }
        crimes.clear_log_views(legacy.is_empty())?;
    }
    Ok(aside)
}

/// Carries the old store's event numbering and webhook cursors into the new alert store,
/// before anything is numbered in it.
pub fn carry_numbering(store: &AlertStore, aside: &SetAside) -> Result<(), AlertStoreError> {
    if aside.event_numbers_through > 0 {
        store.reserve_event_seqs(aside.event_numbers_through)?;
    }
    for (endpoint, seq) in &aside.delivery_cursors {
        store.set_delivery_cursor(endpoint, *seq)?;
    }
    Ok(())
}

/// Moves `path` (a file or directory, if it exists) into `dir`.
fn move_into(path: &Path, dir: &Path) -> Result<(), RebuildError> {
    let Some(name) = path.file_name() else {
        return Ok(());
    };
    match std::fs::rename(path, dir.join(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RebuildError::Io {
            what: "setting aside",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What the log's control records name: people, users, crime batches and tags' credentials.
#[derive(Default)]
struct InLog {
    people: HashSet<String>,
    users: HashSet<String>,
    crime_batches: HashSet<String>,
    /// Tags with a credential record.
    tags: HashSet<String>,
}

impl InLog {
    fn note(&mut self, change: &Change) {
        match change {
            Change::PutPerson { person } => {
                self.people.insert(person.id.clone());
            }
            Change::PutUser { user } => {
                self.users.insert(user.name.clone());
            }
            Change::CrimeBatch { report, .. } => {
                if let Some(id) = report["batch_id"].as_str() {
                    self.crime_batches.insert(id.to_string());
                }
            }
            Change::RevokeTag { tag }
            | Change::RotateTag { tag }
            | Change::TagCredentialState { tag, .. } => {
                self.tags.insert(tag.clone());
            }
            _ => {}
        }
    }
}

fn scan_log(data_dir: &Path) -> Result<InLog, RebuildError> {
    let mut in_log = InLog::default();
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return Ok(in_log);
    }
    for item in LogReader::open(&log_dir)?.controls_only() {
        if let (_, LogEntry::Control { control, .. }) = item? {
            in_log.note(&control.change);
        }
    }
    Ok(in_log)
}

/// The same from the stream, up to its end when asked.
async fn scan_stream(config: &JetStreamConfig) -> Result<InLog, RebuildError> {
    use futures::StreamExt;
    let stream_err = |e: JetStreamError| RebuildError::Stream(e.to_string());
    let log = JetStreamLog::open(config.clone())
        .await
        .map_err(stream_err)?;
    let end = log.next_record().await.map_err(stream_err)?;
    let mut in_log = InLog::default();
    if end == 0 {
        return Ok(in_log);
    }
    let mut records = Box::pin(log.read_until(0, end).await.map_err(stream_err)?);
    while let Some(item) = records.next().await {
        let (_, entry) = item.map_err(stream_err)?;
        if let LogEntry::Control { control, .. } = &entry {
            in_log.note(&control.change);
        }
    }
    Ok(in_log)
}

/// Refuses a rebuild that would lose records: people or users a database written before they
/// were log records holds and the log does not (the next server start migrates them).
fn check_all_in_log(in_log: &InLog, metadata: &Metadata) -> Result<(), RebuildError> {
    let missing_people: Vec<String> = metadata
        .orders_document()?
        .people
        .into_iter()
        .map(|p| p.id)
        .filter(|id| !in_log.people.contains(id))
        .collect();
    let missing_users: Vec<String> = metadata
        .user_accounts()?
        .into_iter()
        .map(|(a, _)| a.name)
        .filter(|name| !in_log.users.contains(name))
        .collect();
    let missing_tags: Vec<String> = metadata
        .tag_credentials()?
        .into_iter()
        .map(|c| c.tag)
        .filter(|tag| !in_log.tags.contains(tag))
        .collect();
    let mut missing = Vec::new();
    if !missing_people.is_empty() {
        missing.push(format!("people {}", missing_people.join(", ")));
    }
    if !missing_users.is_empty() {
        missing.push(format!("users {}", missing_users.join(", ")));
    }
    if !missing_tags.is_empty() {
        missing.push(format!("credentials of tags {}", missing_tags.join(", ")));
    }
    match missing.is_empty() {
        true => Ok(()),
        false => Err(RebuildError::NotInLog(missing.join(" and "))),
    }
}
