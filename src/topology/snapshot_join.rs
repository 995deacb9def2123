//! Cluster mode: a node's snapshot in the stream's snapshot bucket (`cluster::snapshot_store`),
//! so that a node joining on an empty data directory starts from it and reads only the stream
//! after it. A snapshot is a data directory's worth of state at a point past the node
//! checkpoint's record: the checkpoint itself, a copy of each SQLite store (`VACUUM INTO`, a
//! consistent copy) and the trail store's files (sealed at the checkpoint's record first). Keys
//! and tokens are never in it.
//!
//! Who uploads and when: every node, at the end of its start-up, when its checkpoint is newer
//! than the bucket's newest. That is the one consistent cut this code has (the pipeline runs
//! inline there, and no live stage writes a store yet); a live node's pipeline runs on its own
//! tasks, so a later cut would need an inline follower (not built). Snapshots with the same
//! record are equivalent (the pipeline state is the same bytes on every node), so two nodes
//! uploading at once do no harm.
//!
//! A purge deletes every snapshot in the bucket ([`BucketPurge`], a purge target run on every
//! node that purges an activation): they were taken before the purge record and may hold it.
//!
//! Package layout: magic `TSNODEPK`, version (u16 LE), file count (u32 LE), then per file its
//! name's length (u16 LE), name (UTF-8, relative, `trails/` the only directory), length (u64 LE)
//! and bytes; then the CRC-32 of everything before it (u32 LE).

use crate::cluster::jetstream::JetStreamLog;
use crate::cluster::snapshot_store::SnapshotStore;
use crate::config::ServerConfig;
use crate::store::checkpoint_file;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"TSNODEPK";
const VERSION: u16 = 1;
/// The SQLite stores a data directory holds (each copied with `VACUUM INTO`).
const SQLITE_STORES: [&str; 3] = ["metadata.sqlite3", "alerts.sqlite3", "crimes.sqlite3"];
const TRAILS: &str = "trails";

/// A consistent copy of each SQLite store, made in `scratch`: (name, bytes).
fn copy_stores(data_dir: &Path, scratch: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for name in SQLITE_STORES {
        let copy = scratch.join(name);
        let conn = rusqlite::Connection::open(data_dir.join(name))
            .with_context(|| format!("opening {name}"))?;
        conn.execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])
            .with_context(|| format!("copying {name}"))?;
        files.push((
            name.to_string(),
            std::fs::read(&copy).with_context(|| format!("reading the copy of {name}"))?,
        ));
    }
    Ok(files)
}

/// Packs `data_dir`'s checkpoint and stores (call it while no stage writes them: at the end of
/// start-up, with the trail store sealed and the alert writer caught up).
pub fn pack(data_dir: &Path) -> Result<Vec<u8>> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let checkpoint = checkpoint_file::read(data_dir)?.context("no node checkpoint to pack")?;
    // The copies are made here and removed once read (`VACUUM INTO` needs a new file).
    let scratch = data_dir.join("snapshot-pack.tmp");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).context("making a scratch directory for the copies")?;
    let copied = copy_stores(data_dir, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    files.extend(copied?);
    let mut trails: Vec<_> = std::fs::read_dir(data_dir.join(TRAILS))
        .context("listing the trail store")?
        .collect::<std::io::Result<Vec<_>>>()
        .context("listing the trail store")?;
    trails.sort_by_key(|e| e.file_name());
    for entry in trails {
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = format!("{TRAILS}/{}", entry.file_name().to_string_lossy());
        files.push((
            name.clone(),
            std::fs::read(entry.path()).with_context(|| format!("reading {name}"))?,
        ));
    }
    // Last: unpacking writes it last, so a half-unpacked directory has no checkpoint.
    files.push((checkpoint_file::FILE_NAME.to_string(), checkpoint));
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for (name, bytes) in &files {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Whether a package file name may be written (no absolute paths, no `..`, one directory).
fn allowed(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = |p: &str| !p.is_empty() && p != "." && p != ".." && !p.contains('\\');
    match parts.as_slice() {
        [file] => plain(file),
        [dir, file] => *dir == TRAILS && plain(file),
        _ => false,
    }
}

/// The files of a package, checked whole (magic, version, lengths, CRC, names) before any is
/// written.
fn files_of(bytes: &[u8]) -> Result<Vec<(String, &[u8])>> {
    if bytes.len() < 18 || &bytes[..8] != MAGIC {
        bail!("not a node snapshot package");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != expected {
        bail!("node snapshot package damaged (checksum)");
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != VERSION {
        bail!("node snapshot package version {version}, this build reads {VERSION}");
    }
    let count = u32::from_le_bytes([body[10], body[11], body[12], body[13]]);
    let mut at = 14usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let end = at.checked_add(n).filter(|e| *e <= body.len());
        let end = end.context("node snapshot package truncated")?;
        let out = &body[at..end];
        at = end;
        Ok(out)
    };
    let mut files = Vec::new();
    for _ in 0..count {
        let len = take(2)?;
        let name = take(u16::from_le_bytes([len[0], len[1]]) as usize)?;
        let name = std::str::from_utf8(name).context("a file name that is not UTF-8")?;
        if !allowed(name) {
            bail!("node snapshot package names a file it may not write: {name:?}");
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(take(8)?);
        let len = usize::try_from(u64::from_le_bytes(len)).context("file too large")?;
        files.push((name.to_string(), take(len)?));
    }
    if at != body.len() {
        bail!("node snapshot package has trailing bytes");
    }
    Ok(files)
}

/// Writes a package's files into `data_dir` (owner-only, synced; the checkpoint last).
pub fn unpack(bytes: &[u8], data_dir: &Path) -> Result<()> {
    let files = files_of(bytes)?;
    std::fs::create_dir_all(data_dir.join(TRAILS)).context("creating the trail store")?;
    for (name, data) in files {
        let path = data_dir.join(&name);
        let mut file = crate::data_dir::create_private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(data)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for dir in [data_dir.join(TRAILS), data_dir.to_path_buf()] {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// Whether `data_dir` holds no stores yet (a node joining).
fn is_empty(data_dir: &Path) -> bool {
    SQLITE_STORES
        .iter()
        .chain([&checkpoint_file::FILE_NAME])
        .all(|name| !data_dir.join(name).exists())
}

/// The snapshot bucket of the cluster `jetstream` names.
async fn bucket(jetstream: &crate::cluster::jetstream::JetStreamConfig) -> Result<SnapshotStore> {
    let log = JetStreamLog::open(jetstream.clone())
        .await
        .context("opening the log's JetStream stream")?;
    Ok(SnapshotStore::open(log.context(), jetstream).await?)
}

/// Cluster mode, on an empty data directory: the newest usable snapshot in the stream's bucket
/// unpacked into it (the start-up then restores its checkpoint and reads the stream after it).
/// Returns the snapshot's record; `None` when there is none (or the node is not joining).
pub async fn join_from_snapshot(config: &ServerConfig) -> Result<Option<u64>> {
    let Some(jetstream) = config.jetstream() else {
        return Ok(None);
    };
    if !config.snapshots.enabled || !is_empty(&config.data_dir) {
        return Ok(None);
    }
    crate::data_dir::secure_data_dir(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    // Held while unpacking, so two processes started on one empty directory cannot both
    // unpack into it; the one that waited finds it no longer empty (and then fails to take the
    // lock from the one serving, as any second process does).
    let _lock = crate::data_lock::lock_data_dir(&config.data_dir)
        .context("locking the data directory to join from the cluster's snapshot")?;
    if !is_empty(&config.data_dir) {
        return Ok(None);
    }
    let store = bucket(jetstream).await?;
    for record in store.records().await? {
        let unpacked = match store.get(record).await {
            Ok(bytes) => unpack(&bytes, &config.data_dir),
            Err(e) => Err(e.into()),
        };
        match unpacked {
            Ok(()) => {
                tracing::info!(record, "joined from the cluster's snapshot");
                return Ok(Some(record));
            }
            Err(e) => {
                tracing::warn!(record, error = %e, "snapshot not usable; trying an older one");
                // Nothing half-written may look like stores.
                for name in SQLITE_STORES.iter().chain([&checkpoint_file::FILE_NAME]) {
                    let _ = std::fs::remove_file(config.data_dir.join(name));
                }
                let _ = std::fs::remove_dir_all(config.data_dir.join(TRAILS));
            }
        }
    }
    Ok(None)
}

/// Cluster mode, a node owning some partitions on a data directory it has served from: when
/// its node checkpoint does not cover its partitions (its share changed, so it was taken where
/// other partitions' rules ran), the checkpoint of the bucket's newest snapshot replaces it —
/// the whole pipeline's, so the start reads the stream after that snapshot instead of all of
/// it. The node's stores stay (they are at or past any snapshot it served after); the start's
/// usual checks still apply, and one that fails replays the whole stream. Returns the
/// checkpoint's record when it took one.
pub async fn checkpoint_for_share(config: &ServerConfig) -> Result<Option<u64>> {
    let (Some(jetstream), Ok(Some(owned))) = (config.jetstream(), config.owned_partitions()) else {
        return Ok(None);
    };
    if !config.snapshots.enabled || is_empty(&config.data_dir) {
        return Ok(None);
    }
    let _lock = crate::data_lock::lock_data_dir(&config.data_dir)
        .context("locking the data directory to take the cluster's checkpoint")?;
    let own = checkpoint_file::read(&config.data_dir)
        .ok()
        .flatten()
        .and_then(|bytes| super::checkpoint::covers(&bytes, &owned).ok());
    if own.is_some_and(|(_, covered)| covered) {
        return Ok(None);
    }
    let store = bucket(jetstream).await?;
    for record in store.records().await? {
        let package = match store.get(record).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(record, error = %e, "snapshot not readable; trying an older one");
                continue;
            }
        };
        let files = match files_of(&package) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(record, error = %e, "snapshot not usable; trying an older one");
                continue;
            }
        };
        let Some((_, bytes)) = files
            .into_iter()
            .find(|(name, _)| name == checkpoint_file::FILE_NAME)
        else {
            continue;
        };
        match super::checkpoint::covers(bytes, &owned) {
            Ok((at, true)) => {
                checkpoint_file::write(&config.data_dir, &[bytes])
                    .context("writing the cluster's checkpoint into the data directory")?;
                tracing::info!(
                    record = at,
                    partitions = %owned.describe(),
                    "this node's checkpoint did not cover its partitions: continuing from the cluster's snapshot's"
                );
                return Ok(Some(at));
            }
            Ok((_, false)) => continue,
            Err(e) => {
                tracing::warn!(record, error = %e, "snapshot's checkpoint not usable; trying an older one")
            }
        }
    }
    Ok(None)
}

/// Uploads `package` (the snapshot at `record`) unless the bucket already holds one as new.
pub async fn upload(stream: &JetStreamLog, record: u64, package: Vec<u8>) -> Result<bool> {
    let store = SnapshotStore::open(stream.context(), stream.config()).await?;
    if store
        .records()
        .await?
        .first()
        .is_some_and(|newest| *newest >= record)
    {
        return Ok(false);
    }
    store.put(record, package).await?;
    Ok(true)
}

/// The purge target that deletes the bucket's snapshots (they hold the state before the purge).
pub struct BucketPurge {
    store: SnapshotStore,
    runtime: tokio::runtime::Handle,
}

impl BucketPurge {
    pub async fn open(stream: &JetStreamLog) -> Result<Self> {
        Ok(Self {
            store: SnapshotStore::open(stream.context(), stream.config()).await?,
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

impl crate::store::PurgeTarget for BucketPurge {
    fn name(&self) -> &'static str {
        "cluster_snapshots"
    }

    fn purge_activation(&self, _activation: &str) -> Result<u64, crate::store::TargetError> {
        // Already dropped before the purge began (`discard_copies`); again here in case a node
        // started since then uploaded one.
        self.discard_copies()
    }

    fn discard_copies(&self) -> Result<u64, crate::store::TargetError> {
        // Called from blocking threads and, when purge records waiting at start are followed,
        // from the runtime's own thread: the request runs on a thread of its own, waited for
        // (a purge that cannot delete them fails and is tried again).
        let deleted = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.runtime.block_on(async {
                        tokio::time::timeout(
                            std::time::Duration::from_secs(30),
                            self.store.delete_through(u64::MAX),
                        )
                        .await
                    })
                })
                .join()
        })
        .map_err(|_| "the snapshot bucket request panicked")?
        .map_err(|_| "the snapshot bucket did not answer within 30 s")??;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_is_checked_whole_and_writes_only_inside_the_data_directory() {
        assert!(allowed("metadata.sqlite3") && allowed("trails/00000001.trail"));
        for bad in [
            "../x",
            "/etc/passwd",
            "trails/../x",
            "other/x",
            "trails/a/b",
            "",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(data.join(TRAILS)).unwrap();
        for name in SQLITE_STORES {
            let conn = rusqlite::Connection::open(data.join(name)).unwrap();
            conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (7);")
                .unwrap();
        }
        std::fs::write(data.join("trails/00000001.trail"), b"positions").unwrap();
        checkpoint_file::write(&data, &[b"checkpoint"]).unwrap();
        let package = pack(&data).unwrap();
        let joined = dir.path().join("j");
        std::fs::create_dir_all(&joined).unwrap();
        unpack(&package, &joined).unwrap();
        assert_eq!(
            std::fs::read(joined.join("trails/00000001.trail")).unwrap(),
            b"positions"
        );
        assert_eq!(
            checkpoint_file::read(&joined).unwrap().as_deref(),
            Some(&b"checkpoint"[..])
        );
        let conn = rusqlite::Connection::open(joined.join("alerts.sqlite3")).unwrap();
        let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
        let mut damaged = package.clone();
        damaged[20] ^= 1;
        assert!(unpack(&damaged, &dir.path().join("k")).is_err());
    }
}
