//! The cluster's snapshots: a JetStream object store bucket per stream, `<stream>_SNAPSHOTS`,
//! replicated like the stream, holding node snapshots named by the log record they were taken
//! at (`snapshot-<record, 20 digits>`). The newest is what a node starting on an empty data
//! directory restores; the newest two are kept. What a snapshot holds is not this module's
//! business (bytes: `topology::snapshot_join` packs and unpacks them).

use super::jetstream::JetStreamConfig;
use async_nats::jetstream::{self, object_store, stream};
use futures::StreamExt;

/// Snapshots kept in the bucket (the newest, and one older in case the newest cannot be used).
pub const KEEP: usize = 2;

/// A snapshot bucket request failed.
#[derive(Debug, thiserror::Error)]
#[error("snapshot bucket {bucket}: {message}")]
pub struct SnapshotStoreError {
    pub bucket: String,
    pub message: String,
}

/// The bucket, opened.
pub struct SnapshotStore {
    bucket: String,
    objects: object_store::ObjectStore,
}

/// The bucket's name for a stream.
pub fn bucket_name(config: &JetStreamConfig) -> String {
    format!("{}_SNAPSHOTS", config.stream)
}

/// The object name of the snapshot taken at `record`.
fn object_name(record: u64) -> String {
    format!("snapshot-{record:020}")
}

/// The record an object name says, if it names a snapshot.
fn record_of(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?.parse().ok()
}

impl SnapshotStore {
    /// Opens (creating if needed) the stream's snapshot bucket.
    pub async fn open(
        js: &jetstream::Context,
        config: &JetStreamConfig,
    ) -> Result<Self, SnapshotStoreError> {
        let bucket = bucket_name(config);
        let objects = match js.get_object_store(&bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    description: Some("tagstream: node snapshots, named by log record".into()),
                    num_replicas: config.replicas,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| SnapshotStoreError {
                    bucket: bucket.clone(),
                    message: format!("creating: {e}"),
                })?,
        };
        Ok(Self { bucket, objects })
    }

    fn error(&self, message: String) -> SnapshotStoreError {
        SnapshotStoreError {
            bucket: self.bucket.clone(),
            message,
        }
    }

    /// The records of the snapshots held, newest first.
    pub async fn records(&self) -> Result<Vec<u64>, SnapshotStoreError> {
        let mut list = self
            .objects
            .list()
            .await
            .map_err(|e| self.error(format!("listing: {e}")))?;
        let mut records = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| self.error(format!("listing: {e}")))?;
            if let Some(record) = record_of(&info.name).filter(|_| !info.deleted) {
                records.push(record);
            }
        }
        records.sort_unstable_by(|a, b| b.cmp(a));
        records.dedup();
        Ok(records)
    }

    /// Stores the snapshot taken at `record` and drops all but the newest [`KEEP`].
    pub async fn put(&self, record: u64, bytes: Vec<u8>) -> Result<(), SnapshotStoreError> {
        let name = object_name(record);
        let mut reader = std::io::Cursor::new(bytes);
        self.objects
            .put(name.as_str(), &mut reader)
            .await
            .map_err(|e| self.error(format!("putting {name}: {e}")))?;
        for old in self.records().await?.into_iter().skip(KEEP) {
            self.delete(old).await?;
        }
        Ok(())
    }

    /// The snapshot taken at `record`, whole (the object store checks its digest).
    pub async fn get(&self, record: u64) -> Result<Vec<u8>, SnapshotStoreError> {
        use tokio::io::AsyncReadExt;
        let name = object_name(record);
        let mut object = self
            .objects
            .get(name.as_str())
            .await
            .map_err(|e| self.error(format!("fetching {name}: {e}")))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| self.error(format!("reading {name}: {e}")))?;
        Ok(bytes)
    }

    /// Deletes the snapshot taken at `record` (one already gone is not an error).
    pub async fn delete(&self, record: u64) -> Result<(), SnapshotStoreError> {
        let name = object_name(record);
        match self.objects.delete(name.as_str()).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format!("deleting {name}: {e}"))),
        }
    }

    /// Deletes every snapshot taken at or before `record` (a purge record's: they may hold
    /// what it purged). Returns how many.
    pub async fn delete_through(&self, record: u64) -> Result<u64, SnapshotStoreError> {
        let mut deleted = 0;
        for old in self.records().await?.into_iter().filter(|r| *r <= record) {
            self.delete(old).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_record_and_sort_with_it() {
        assert_eq!(object_name(42), "snapshot-00000000000000000042");
        assert_eq!(record_of(&object_name(42)), Some(42));
        assert_eq!(record_of("r-abc"), None);
        assert!(object_name(9) < object_name(10));
    }
}
