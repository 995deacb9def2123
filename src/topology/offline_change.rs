//! [`append_offline`]: one change made while no server runs (`tagstream users add`, `users
//! disable`, `tags revoke` and `tags rotate`): appended to the data directory's durable log
//! under the directory's lock, like any API write, then applied to the view it changes, so the
//! server that starts next finds it already taken (its mark) and a rebuild finds it in the log.

use crate::data_lock::{lock_data_dir, LockError};
use crate::log::{LogConfig, LogError, LogWriter};
use crate::model::{Change, ControlRecord};
use crate::store::metadata::{Metadata, MetadataError};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum OfflineChangeError {
    #[error("{0} (while the server runs, make the change through its API)")]
    Lock(#[from] LockError),
    #[error("the data directory's log: {0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    /// Stored in the log and refused, the same way on every replay.
    #[error("{0}")]
    Refused(String),
    #[error("{0} is not a change this command makes")]
    NotOffline(&'static str),
    #[error("{} says this data directory's log is a JetStream stream (cluster mode): make the change through a node's API", .0.display())]
    LogIsAStream(std::path::PathBuf),
}

/// Appends `change` (made by `actor`) to the log of `data_dir`, durably, and applies it to the
/// users table. Returns its log record number.
pub fn append_offline(
    data_dir: &Path,
    metadata: &Metadata,
    actor: &str,
    change: Change,
) -> Result<u64, OfflineChangeError> {
    if !change.is_user() {
        return Err(OfflineChangeError::NotOffline(change.op()));
    }
    let _lock = lock_data_dir(data_dir)?;
    // A local log here would be one no node reads.
    let marker = data_dir.join(super::log_source::STREAM_MARKER);
    if marker.exists() {
        return Err(OfflineChangeError::LogIsAStream(marker));
    }
    let recorded = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let control = ControlRecord {
        recorded,
        actor: actor.to_string(),
        effective: None,
        change,
    };
    let (mut writer, _) = LogWriter::open(&data_dir.join("log"), LogConfig::default())?;
    let record = writer.append_control(&control)?;
    writer.sync()?;
    metadata
        .apply_user_record(record, &control)?
        .map_err(OfflineChangeError::Refused)?;
    Ok(record)
}
