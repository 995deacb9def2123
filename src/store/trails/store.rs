//! [`TrailStore`]: the handle the pipeline writes through and the API reads through.
//!
//! One writer (the pipeline's trail sink) calls [`TrailStore::append`] for each activation's
//! readings of each log record, in log order, and [`TrailStore::checkpoint`] from time to time.
//! Appends go to per-(activation, chunk) buffers in memory. A checkpoint seals the chunks that
//! are over (the activation's event time has moved a grace period past the chunk's end) or have
//! been open for too many log records, as blocks: written to the data file, fsynced, referenced
//! in the manifest with a checkpoint record, fsynced. The checkpoint is the lowest log record
//! still only held in an open buffer (or the caller's next record): on restart the server replays
//! the log from there. Re-applying is idempotent: every block records the log record it is
//! complete through for its chunk, and positions of already-complete records are skipped.
//!
//! Readers take a read lock only to copy block references and buffered positions; block I/O and
//! decoding happen outside any lock. The writer takes the write lock only to move positions into
//! buffers or to swap sealed buffers for block references, a few hundred at a time.

use super::chunk_file::{self, data_path, DATA_HEADER};
use super::codec::{decode_block, decode_block_with_batches, encode_block_with_batches};
use super::error::TrailError;
use super::index::{expand_batch_runs, Index, SealJob};
use super::manifest::{scan_frames, BboxE7, BlockRecord, FixE7, Record, ScanEnd, MANIFEST_HEADER};
use super::spatial::{path_meets_box, QueryBox};
use crate::model::{BatchSeq, Reading, ReadingBody, TimeMs};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MANIFEST_NAME: &str = "trails.manifest";
const MAX_NAME_BYTES: usize = 1024;
/// Sealed buffers swapped for block references per write-lock section.
const INSTALL_BATCH: usize = 64;

/// Trail store settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrailConfig {
    /// Length of a time chunk (one block per activation per chunk, normally).
    pub chunk_ms: i64,
    /// A chunk is sealed once the activation's latest event time is this far past its end
    /// (late positions after that go into an extra block of the same chunk).
    pub seal_grace_ms: i64,
    /// A chunk is sealed anyway once its first log record is this many records behind the
    /// checkpoint request (bounds how much log a restart replays).
    pub max_unsealed_records: u64,
    /// Above this many buffered positions, a checkpoint seals everything (memory bound).
    pub max_buffered_positions: u64,
    /// Consecutive fixes further apart than this are not joined by a path (envelopes and
    /// crime-matching refinement).
    pub max_segment_gap_ms: i64,
    /// A data file is rolled once it is this large.
    pub data_file_max_bytes: u64,
    /// fsync data and manifest at every checkpoint (off only for benchmarks that say so).
    pub fsync: bool,
}

impl Default for TrailConfig {
    fn default() -> Self {
        TrailConfig {
            chunk_ms: 3_600_000,
            seal_grace_ms: 10 * 60_000,
            max_unsealed_records: 2_000_000,
            max_buffered_positions: 20_000_000,
            max_segment_gap_ms: 15 * 60_000,
            data_file_max_bytes: 256 << 20,
            fsync: true,
        }
    }
}

/// Counts for `/metrics`, `inspect` and the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TrailStats {
    pub activations: u64,
    /// Sealed and buffered.
    pub positions: u64,
    pub sealed_positions: u64,
    pub buffered_positions: u64,
    pub blocks: u64,
    pub data_files: u64,
    /// Data files plus manifest.
    pub bytes_on_disk: u64,
    pub manifest_bytes: u64,
    /// `bytes_on_disk / sealed_positions`.
    pub bytes_per_position: f64,
    pub checkpoint: u64,
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    pub checkpoint: u64,
    /// Manifest bytes after the last checkpoint record that were cut off (torn or uncommitted).
    pub manifest_bytes_dropped: u64,
    /// Where the manifest's damage started, if it had any.
    pub manifest_damage: Option<(u64, String)>,
    /// Data file bytes after the checkpointed length that were cut off.
    pub data_bytes_dropped: u64,
    /// Data files created after the last checkpoint, removed.
    pub data_files_removed: Vec<u32>,
    pub blocks: u64,
}

/// An activation whose path may pass a box during a window (from the R-tree of envelopes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub activation: String,
    /// Blocks (and open buffers) whose envelope meets the query.
    pub chunks: u32,
    /// Union of their envelopes' time ranges.
    pub from_ms: TimeMs,
    pub to_ms: TimeMs,
}

struct Writer {
    data_file: u32,
    data: Arc<File>,
    data_len: u64,
    manifest: File,
    manifest_len: u64,
    checkpoint: u64,
    /// Activations created since the last manifest write.
    pending_names: Vec<u32>,
    /// Highest `complete_through_record` of any sealed block: records above it need no
    /// duplicate check.
    max_complete_record: Option<u64>,
}

struct Inner {
    dir: PathBuf,
    config: TrailConfig,
    index: RwLock<Index>,
    files: RwLock<HashMap<u32, Arc<File>>>,
    writer: Mutex<Writer>,
    recovery: RecoveryReport,
}

/// Handle to the trail store; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct TrailStore {
    inner: Arc<Inner>,
}

fn position_fix(r: &Reading) -> Option<(FixE7, u32)> {
    match &r.body {
        ReadingBody::Position(p) => Some((
            FixE7 {
                t_ms: r.t_ms,
                lat_e7: p.lat_e7,
                lon_e7: p.lon_e7,
            },
            p.precision_cm,
        )),
        _ => None,
    }
}

/// Encodes one sealed chunk (`batches`: the batch of each reading, or empty when not known);
/// returns its record (file and offset still to be filled in).
fn encode_job(
    activation: u32,
    readings: &mut Vec<Reading>,
    batches: &mut Vec<Option<BatchSeq>>,
    complete_through: u64,
    out: &mut Vec<u8>,
) -> Option<BlockRecord> {
    if batches.len() != readings.len() {
        batches.clear();
    }
    // Usually in time order already (arrival order); otherwise sorted with their batches
    // (stable: ties keep arrival order).
    if !readings.is_sorted_by_key(|r| r.t_ms) {
        let mut order: Vec<usize> = (0..readings.len()).collect();
        order.sort_by_key(|&i| readings[i].t_ms);
        *readings = order.iter().map(|&i| readings[i]).collect();
        if !batches.is_empty() {
            *batches = order.iter().map(|&i| batches[i]).collect();
        }
    }
    let mut fixes = readings.iter().filter_map(position_fix);
    let (first, mut max_precision_cm) = fixes.next()?;
    let mut bbox = BboxE7::point(first.lat_e7, first.lon_e7);
    let mut last = first;
    for (f, p) in fixes {
        bbox.add(f.lat_e7, f.lon_e7);
        max_precision_cm = max_precision_cm.max(p);
        last = f;
    }
    let start = out.len();
    let count = encode_block_with_batches(readings, batches, out);
    Some(BlockRecord {
        activation,
        file: 0,
        offset: start as u64,
        len_bytes: (out.len() - start) as u32,
        crc: crc32fast::hash(&out[start..]),
        count: count as u32,
        complete_through_record: complete_through,
        bbox,
        first,
        last,
        max_precision_cm,
    })
}

impl TrailStore {
    /// Opens (or creates) the store in `dir`. Returns the store and the checkpoint: the log
    /// record number from which the log must be replayed into it.
    pub fn open(dir: &Path, config: TrailConfig) -> Result<(TrailStore, u64), TrailError> {
        std::fs::create_dir_all(dir).map_err(TrailError::io("creating directory", dir))?;
        let manifest_path = dir.join(MANIFEST_NAME);
        let mut report = RecoveryReport::default();
        let bytes = match std::fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(TrailError::io("reading", &manifest_path)(e)),
        };
        if !bytes.is_empty() && (bytes.len() < 8 || &bytes[..8] != MANIFEST_HEADER) {
            return Err(TrailError::BadHeader {
                path: manifest_path,
                found: bytes[..bytes.len().min(8)].to_vec(),
            });
        }
        let (records, end) = if bytes.len() >= 8 {
            scan_frames(&bytes[8..], 8)
        } else {
            (Vec::new(), ScanEnd::Clean)
        };
        if let ScanEnd::Damaged { offset, reason } = end {
            report.manifest_damage = Some((offset, reason));
        }
        let last_checkpoint = records
            .iter()
            .rposition(|(r, _)| matches!(r, Record::Checkpoint { .. }));

        let mut index = Index::new(config.chunk_ms, config.max_segment_gap_ms);
        let (checkpoint, data_file, data_len, manifest_len) = match last_checkpoint {
            None => {
                // Nothing was ever committed: start afresh.
                for f in chunk_file::list_data_files(dir)? {
                    let path = data_path(dir, f);
                    std::fs::remove_file(&path).map_err(TrailError::io("removing", &path))?;
                    report.data_files_removed.push(f);
                }
                report.manifest_bytes_dropped = bytes.len().saturating_sub(8) as u64;
                let mut fresh = Vec::from(&MANIFEST_HEADER[..]);
                Record::Checkpoint {
                    next_log_record: 0,
                    data_file: 1,
                    data_len_bytes: DATA_HEADER.len() as u64,
                }
                .write_frame(&mut fresh);
                chunk_file::create_data_file(dir, 1)?;
                let tmp = dir.join("trails.manifest.tmp");
                std::fs::write(&tmp, &fresh).map_err(TrailError::io("writing", &tmp))?;
                File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(TrailError::io("syncing", &tmp))?;
                std::fs::rename(&tmp, &manifest_path).map_err(TrailError::io("renaming", &tmp))?;
                chunk_file::sync_dir(dir)?;
                (0, 1, DATA_HEADER.len() as u64, fresh.len() as u64)
            }
            Some(last) => {
                // Blocks in manifest order; removals are rare, kept as a set.
                let mut blocks: Vec<BlockRecord> = Vec::new();
                let mut removed: std::collections::HashSet<(u32, u64)> = Default::default();
                let mut purged: HashMap<u32, i64> = HashMap::new();
                let mut cp = (0u64, 1u32, DATA_HEADER.len() as u64);
                for (record, _) in &records[..=last] {
                    match record {
                        Record::Activation { id, name } => index.add_activation(*id, name),
                        Record::Block(b) => blocks.push(*b),
                        Record::Remove { file, offset, .. } => {
                            removed.insert((*file, *offset));
                        }
                        Record::PurgedBefore {
                            activation,
                            before_ms,
                        } => {
                            let p = purged.entry(*activation).or_insert(*before_ms);
                            *p = (*p).max(*before_ms);
                        }
                        Record::Checkpoint {
                            next_log_record,
                            data_file,
                            data_len_bytes,
                        } => cp = (*next_log_record, *data_file, *data_len_bytes),
                    }
                }
                let manifest_len = records[last].1;
                report.manifest_bytes_dropped = bytes.len() as u64 - manifest_len;
                // Every referenced activation must have a name record.
                // A block written after a removal of the same place would be a new block, but
                // the data files are append-only: a (file, offset) is never reused.
                blocks.retain(|b| !removed.contains(&(b.file, b.offset)));
                for b in &blocks {
                    if index
                        .acts
                        .get(b.activation as usize)
                        .is_none_or(|a| a.name.is_empty())
                    {
                        return Err(TrailError::Corrupt {
                            path: manifest_path.clone(),
                            offset: manifest_len,
                            source: super::error::CodecError::OutOfRange {
                                field: "activation id without a name",
                                value: b.activation as i64,
                            },
                        });
                    }
                }
                for (act, before) in purged {
                    if let Some(a) = index.acts.get_mut(act as usize) {
                        a.purged_before_ms = before;
                    }
                }
                for b in blocks {
                    let own = super::spatial::Envelope::new(b.bbox, b.first.t_ms, b.last.t_ms);
                    index.acts[b.activation as usize]
                        .blocks
                        .push(super::index::BlockMeta { rec: b, env: own });
                }
                (cp.0, cp.1, cp.2, manifest_len)
            }
        };
        report.checkpoint = checkpoint;

        // Data files: cut the current one back to its checkpointed length, drop later ones.
        let mut files = HashMap::new();
        for f in chunk_file::list_data_files(dir)? {
            let path = data_path(dir, f);
            if f > data_file {
                std::fs::remove_file(&path).map_err(TrailError::io("removing", &path))?;
                report.data_files_removed.push(f);
                continue;
            }
            let file = chunk_file::open_data_file(dir, f)?;
            if f == data_file {
                let len = file
                    .metadata()
                    .map_err(TrailError::io("stat", &path))?
                    .len();
                if len < data_len {
                    return Err(TrailError::DataShorterThanCheckpoint {
                        path,
                        len_bytes: len,
                        expected_bytes: data_len,
                    });
                }
                if len > data_len {
                    file.set_len(data_len)
                        .map_err(TrailError::io("truncating torn tail of", &path))?;
                    file.sync_all().map_err(TrailError::io("syncing", &path))?;
                    report.data_bytes_dropped = len - data_len;
                }
            }
            files.insert(f, Arc::new(file));
        }
        if !files.contains_key(&data_file) {
            return Err(TrailError::MissingDataFile {
                path: data_path(dir, data_file),
            });
        }
        for act in &index.acts {
            if let Some(b) = act.blocks.iter().find(|b| !files.contains_key(&b.rec.file)) {
                return Err(TrailError::MissingDataFile {
                    path: data_path(dir, b.rec.file),
                });
            }
        }
        if !report.data_files_removed.is_empty() {
            chunk_file::sync_dir(dir)?;
        }

        let manifest = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&manifest_path)
            .map_err(TrailError::io("opening", &manifest_path))?;
        if report.manifest_bytes_dropped > 0 {
            manifest
                .set_len(manifest_len)
                .map_err(TrailError::io("truncating torn tail of", &manifest_path))?;
            manifest
                .sync_all()
                .map_err(TrailError::io("syncing", &manifest_path))?;
        }
        index.build_after_load();
        report.blocks = index.blocks;
        let max_complete_record = index
            .acts
            .iter()
            .flat_map(|a| a.blocks.iter().map(|b| b.rec.complete_through_record))
            .max();
        let writer = Writer {
            data_file,
            data: files[&data_file].clone(),
            data_len,
            manifest,
            manifest_len,
            checkpoint,
            pending_names: Vec::new(),
            max_complete_record,
        };
        let store = TrailStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                config,
                index: RwLock::new(index),
                files: RwLock::new(files),
                writer: Mutex::new(writer),
                recovery: report,
            }),
        };
        Ok((store, checkpoint))
    }

    /// What [`TrailStore::open`] found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub fn config(&self) -> &TrailConfig {
        &self.inner.config
    }

    /// Applies one activation's readings from log record `log_record` (non-position readings
    /// are ignored). Calls must come in log order; a record already applied for this activation
    /// (in this process, or sealed before a restart) is skipped, so re-applying is idempotent.
    pub fn append(
        &self,
        activation: &str,
        log_record: u64,
        readings: &[Reading],
    ) -> Result<u64, TrailError> {
        self.append_from_batch(activation, log_record, None, readings)
    }

    /// [`TrailStore::append`], the readings having come in the tag's batch `batch` (kept with
    /// each position: documents name positions by it).
    pub fn append_from_batch(
        &self,
        activation: &str,
        log_record: u64,
        batch: Option<BatchSeq>,
        readings: &[Reading],
    ) -> Result<u64, TrailError> {
        if !readings
            .iter()
            .any(|r| matches!(r.body, ReadingBody::Position(_)))
        {
            return Ok(0);
        }
        if activation.len() > MAX_NAME_BYTES {
            return Err(TrailError::NameTooLong {
                len_bytes: activation.len(),
                max_bytes: MAX_NAME_BYTES,
            });
        }
        let mut w = self.inner.writer.lock();
        let dedup = w.max_complete_record.is_some_and(|m| log_record <= m);
        {
            // The common case: a known activation, appended under the read lock and one shard.
            let index = self.inner.index.read();
            if let Some(&id) = index.by_name.get(activation) {
                return Ok(index.append(id, log_record, batch, readings, dedup));
            }
        }
        let id = {
            let mut index = self.inner.index.write();
            let id = index.acts.len() as u32;
            index.add_activation(id, activation);
            id
        };
        w.pending_names.push(id);
        Ok(self
            .inner
            .index
            .read()
            .append(id, log_record, batch, readings, dedup))
    }

    /// Seals the chunks that are due, makes them durable and persists the checkpoint. Returns
    /// the checkpoint: `next_log_record`, or lower while open chunks hold earlier records.
    pub fn checkpoint(&self, next_log_record: u64) -> Result<u64, TrailError> {
        self.seal(next_log_record, false)
    }

    /// Seals every open chunk (shutdown, tests): the checkpoint becomes `next_log_record`.
    pub fn flush(&self, next_log_record: u64) -> Result<u64, TrailError> {
        self.seal(next_log_record, true)
    }

    fn seal(&self, next_log_record: u64, force: bool) -> Result<u64, TrailError> {
        let cfg = self.inner.config;
        let mut w = self.inner.writer.lock();
        let (jobs, keep_min) = {
            let index = self.inner.index.read();
            let force = force || index.buffered() > cfg.max_buffered_positions;
            index.plan_seal(
                next_log_record,
                cfg.seal_grace_ms,
                cfg.max_unsealed_records,
                force,
            )
        };
        let checkpoint = keep_min.map_or(next_log_record, |k| k.min(next_log_record));
        if jobs.is_empty() && w.pending_names.is_empty() && checkpoint == w.checkpoint {
            return Ok(checkpoint);
        }
        // Encode outside any lock.
        let mut data = Vec::new();
        let mut sealed: Vec<(TimeMs, BlockRecord)> = Vec::with_capacity(jobs.len());
        for SealJob {
            activation,
            chunk_ms,
            mut readings,
            batch_runs,
            complete_through_record,
        } in jobs
        {
            let mut batches = expand_batch_runs(&batch_runs, readings.len());
            if let Some(rec) = encode_job(
                activation,
                &mut readings,
                &mut batches,
                complete_through_record,
                &mut data,
            ) {
                sealed.push((chunk_ms, rec));
            }
        }
        self.write_data(&mut w, &data, &mut sealed.iter_mut().map(|(_, r)| r))?;
        let mut frames = Vec::new();
        {
            let index = self.inner.index.read();
            for id in w.pending_names.drain(..) {
                Record::Activation {
                    id,
                    name: index.acts[id as usize].name.clone(),
                }
                .write_frame(&mut frames);
            }
        }
        for (_, rec) in &sealed {
            Record::Block(*rec).write_frame(&mut frames);
        }
        self.commit_manifest(&mut w, frames, checkpoint)?;
        for (_, rec) in &sealed {
            w.max_complete_record = Some(
                w.max_complete_record
                    .map_or(rec.complete_through_record, |m| {
                        m.max(rec.complete_through_record)
                    }),
            );
        }
        // Swap buffers for blocks, a batch per write-lock section.
        for batch in sealed.chunks(INSTALL_BATCH) {
            let mut index = self.inner.index.write();
            for (chunk, rec) in batch {
                index.install_sealed(*chunk, *rec);
            }
            // Hand the lock to waiting readers: with an ordinary unlock this loop takes it
            // straight back and readers starve for the whole install (measured: 300+ ms).
            parking_lot::RwLockWriteGuard::unlock_fair(index);
        }
        Ok(checkpoint)
    }

    /// Appends encoded blocks to the data file (rolling it first if full), fsyncs, and fills in
    /// each record's file and absolute offset (records hold offsets relative to `data`).
    fn write_data(
        &self,
        w: &mut Writer,
        data: &[u8],
        records: &mut dyn Iterator<Item = &mut BlockRecord>,
    ) -> Result<(), TrailError> {
        if data.is_empty() {
            return Ok(());
        }
        let cfg = &self.inner.config;
        if w.data_len > DATA_HEADER.len() as u64
            && w.data_len + data.len() as u64 > cfg.data_file_max_bytes
        {
            let next = w.data_file + 1;
            let file = Arc::new(chunk_file::create_data_file(&self.inner.dir, next)?);
            self.inner.files.write().insert(next, file.clone());
            w.data_file = next;
            w.data = file;
            w.data_len = DATA_HEADER.len() as u64;
        }
        let path = data_path(&self.inner.dir, w.data_file);
        crate::store::write_back::write_all_at_stepwise(&w.data, data, w.data_len)
            .map_err(TrailError::io("writing blocks to", &path))?;
        if cfg.fsync {
            w.data
                .sync_data()
                .map_err(TrailError::io("syncing", &path))?;
        }
        for rec in records {
            rec.file = w.data_file;
            rec.offset += w.data_len;
        }
        w.data_len += data.len() as u64;
        Ok(())
    }

    /// Appends manifest frames and a checkpoint record, then fsyncs: the commit point.
    fn commit_manifest(
        &self,
        w: &mut Writer,
        mut frames: Vec<u8>,
        checkpoint: u64,
    ) -> Result<(), TrailError> {
        Record::Checkpoint {
            next_log_record: checkpoint,
            data_file: w.data_file,
            data_len_bytes: w.data_len,
        }
        .write_frame(&mut frames);
        let path = self.inner.dir.join(MANIFEST_NAME);
        w.manifest
            .write_all_at(&frames, w.manifest_len)
            .map_err(TrailError::io("appending to", &path))?;
        if self.inner.config.fsync {
            w.manifest
                .sync_data()
                .map_err(TrailError::io("syncing", &path))?;
        }
        w.manifest_len += frames.len() as u64;
        w.checkpoint = checkpoint;
        Ok(())
    }

    /// Reads blocks (write order) and appends their positions to `out` (and, when asked, the
    /// batch of each to `batches`).
    fn read_blocks(
        &self,
        id: u32,
        blocks: &[BlockRecord],
        out: &mut Vec<Reading>,
        batches: Option<&mut Vec<Option<BatchSeq>>>,
    ) -> Result<(), TrailError> {
        thread_local! {
            /// One block buffer per reading thread, reused across reads (crime matching reads
            /// hundreds of thousands of small blocks).
            static BLOCK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BLOCK_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            self.read_blocks_with(id, blocks, out, batches, &mut buf)
        })
    }

    fn read_blocks_with(
        &self,
        id: u32,
        blocks: &[BlockRecord],
        out: &mut Vec<Reading>,
        mut batches: Option<&mut Vec<Option<BatchSeq>>>,
        buf: &mut Vec<u8>,
    ) -> Result<(), TrailError> {
        let files: Vec<Option<Arc<File>>> = {
            let map = self.inner.files.read();
            blocks.iter().map(|b| map.get(&b.file).cloned()).collect()
        };
        // Read-ahead pays off for long reads; for the few blocks of a crime check or a short
        // trail the syscalls cost more than they save (the data is usually cached).
        if blocks.len() > 8 {
            for (b, f) in blocks.iter().zip(&files) {
                if let Some(f) = f {
                    chunk_file::prefetch(f, b.offset, b.len_bytes);
                }
            }
        }
        for (b, file) in blocks.iter().zip(files) {
            let path = data_path(&self.inner.dir, b.file);
            let Some(file) = file else {
                return Err(TrailError::MissingDataFile { path });
            };
            let result = chunk_file::read_block(&file, &path, b.offset, b.len_bytes, b.crc, buf)
                .and_then(|()| {
                    let decoded = match batches.as_deref_mut() {
                        Some(batches) => decode_block_with_batches(buf, out, batches),
                        None => decode_block(buf, out),
                    };
                    decoded.map_err(|source| TrailError::Corrupt {
                        path: path.clone(),
                        offset: b.offset,
                        source,
                    })
                });
            if let Err(e) = result {
                // Removed (and erased) by retention since the read was planned: skip it.
                if !self.inner.index.read().has_block(id, b.file, b.offset) {
                    continue;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn gather(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
        neighbours: bool,
    ) -> Result<Vec<Reading>, TrailError> {
        let (id, plan) = {
            let index = self.inner.index.read();
            let Some(&id) = index.by_name.get(activation) else {
                return Ok(Vec::new());
            };
            (id, index.plan_read(id, from_ms, to_ms, neighbours, false))
        };
        let mut all = Vec::with_capacity(plan.buffered.len() + plan.blocks.len() * 64);
        self.read_blocks(id, &plan.blocks, &mut all, None)?;
        all.extend_from_slice(&plan.buffered);
        // Stable: ties keep write order, which is arrival order.
        all.sort_by_key(|r| r.t_ms);
        Ok(all)
    }

    /// Like [`TrailStore::positions`], each with the batch it came in (`None` where the store
    /// does not know it: positions stored before it kept batches, or held before their
    /// activation existed). For the documents that name each position they quote.
    pub fn positions_with_batches(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Result<Vec<(Reading, Option<BatchSeq>)>, TrailError> {
        let (id, plan) = {
            let index = self.inner.index.read();
            let Some(&id) = index.by_name.get(activation) else {
                return Ok(Vec::new());
            };
            (id, index.plan_read(id, from_ms, to_ms, false, true))
        };
        let (mut readings, mut batches) = (Vec::new(), Vec::new());
        self.read_blocks(id, &plan.blocks, &mut readings, Some(&mut batches))?;
        readings.extend_from_slice(&plan.buffered);
        batches.extend_from_slice(&plan.buffered_batches);
        let mut all: Vec<(Reading, Option<BatchSeq>)> = readings
            .into_iter()
            .zip(batches)
            .filter(|(r, _)| r.t_ms >= from_ms && r.t_ms <= to_ms)
            .collect();
        all.sort_by_key(|(r, _)| r.t_ms);
        Ok(all)
    }

    /// Positions of an activation with `from_ms <= t <= to_ms`, sorted by event time (ties in
    /// arrival order). Unknown activations have no positions.
    pub fn positions(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Result<Vec<Reading>, TrailError> {
        let mut all = self.gather(activation, from_ms, to_ms, false)?;
        all.retain(|r| r.t_ms >= from_ms && r.t_ms <= to_ms);
        Ok(all)
    }

    /// Like [`TrailStore::positions`], plus the fix just before and the fix just after the
    /// window (the path between consecutive fixes matters to crime matching).
    pub fn positions_in(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Result<Vec<Reading>, TrailError> {
        let all = self.gather(activation, from_ms, to_ms, true)?;
        let start = all.partition_point(|r| r.t_ms < from_ms);
        let end = all.partition_point(|r| r.t_ms <= to_ms);
        let lo = start.saturating_sub(1);
        let hi = (end + 1).min(all.len());
        let mut all = all;
        all.truncate(hi);
        all.drain(..lo);
        Ok(all)
    }

    /// Activations whose path envelope meets the box during the window: an R-tree query over
    /// sealed blocks plus the open buffers. A superset of the activations whose path passes the
    /// box; [`TrailStore::activations_meeting`] refines it.
    pub fn candidates(&self, q: &QueryBox) -> Vec<Candidate> {
        let index = self.inner.index.read();
        index
            .candidates(q)
            .into_iter()
            .map(|(id, (from_ms, to_ms, chunks))| Candidate {
                activation: index.acts[id as usize].name.clone(),
                chunks,
                from_ms,
                to_ms,
            })
            .collect()
    }

    /// Activations whose path (fixes, and straight segments between fixes at most the segment
    /// gap limit apart) is inside the box at some instant of the window, sorted by name.
    pub fn activations_meeting(&self, q: &QueryBox) -> Result<Vec<String>, TrailError> {
        let mut out = Vec::new();
        for c in self.candidates(q) {
            let path = self.positions_in(&c.activation, q.from_ms, q.to_ms)?;
            if path_meets_box(&path, q, self.inner.config.max_segment_gap_ms) {
                out.push(c.activation);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes every position of the activation before `before_ms` (sealed blocks dropped or
    /// rewritten, open buffers trimmed), durably: re-applied log records will not bring them
    /// back. Removed blocks are overwritten with zeros on disk. Returns positions removed.
    pub fn purge_before(&self, activation: &str, before_ms: TimeMs) -> Result<u64, TrailError> {
        let mut w = self.inner.writer.lock();
        let (id, doomed) = {
            let index = self.inner.index.read();
            let Some(&id) = index.by_name.get(activation) else {
                return Ok(0);
            };
            let doomed: Vec<BlockRecord> = index.acts[id as usize]
                .blocks
                .iter()
                .filter(|b| b.t_min() < before_ms)
                .map(|b| b.rec)
                .collect();
            (id, doomed)
        };
        let mut removed = 0u64;
        let mut data = Vec::new();
        let mut rewritten = Vec::new();
        for b in &doomed {
            if b.last.t_ms < before_ms {
                removed += b.count as u64;
                continue;
            }
            let (mut kept, mut batches) = (Vec::new(), Vec::new());
            self.read_blocks(id, std::slice::from_ref(b), &mut kept, Some(&mut batches))?;
            let total = kept.len() as u64;
            let (mut kept, mut batches): (Vec<Reading>, Vec<Option<BatchSeq>>) = kept
                .into_iter()
                .zip(batches)
                .filter(|(r, _)| r.t_ms >= before_ms)
                .unzip();
            removed += total - kept.len() as u64;
            if let Some(rec) = encode_job(
                id,
                &mut kept,
                &mut batches,
                b.complete_through_record,
                &mut data,
            ) {
                rewritten.push(rec);
            }
        }
        self.write_data(&mut w, &data, &mut rewritten.iter_mut())?;
        let mut frames = Vec::new();
        {
            let index = self.inner.index.read();
            for pid in w.pending_names.drain(..) {
                Record::Activation {
                    id: pid,
                    name: index.acts[pid as usize].name.clone(),
                }
                .write_frame(&mut frames);
            }
        }
        for rec in &rewritten {
            Record::Block(*rec).write_frame(&mut frames);
        }
        for b in &doomed {
            Record::Remove {
                activation: id,
                file: b.file,
                offset: b.offset,
            }
            .write_frame(&mut frames);
        }
        Record::PurgedBefore {
            activation: id,
            before_ms,
        }
        .write_frame(&mut frames);
        let checkpoint = w.checkpoint;
        self.commit_manifest(&mut w, frames, checkpoint)?;
        {
            let mut index = self.inner.index.write();
            for b in &doomed {
                index.remove_block(id, b.file, b.offset);
            }
            for rec in rewritten {
                index.insert_block(rec);
            }
            let act = &mut index.acts[id as usize];
            act.purged_before_ms = act.purged_before_ms.max(before_ms);
            let mut trimmed = 0u64;
            let index = &mut *index;
            let shard = index.shards[id as usize % super::index::SHARDS].get_mut();
            let mut no_buffers = BTreeMap::new();
            let buffers = match shard.get_mut(&id) {
                Some(st) => &mut st.buffers,
                None => &mut no_buffers,
            };
            buffers.retain(|_, buf| {
                trimmed += buf.retain(|r| r.t_ms >= before_ms) as u64;
                !buf.readings.is_empty()
            });
            // Buffers keep their summaries; recompute for any that lost positions.
            for buf in buffers.values_mut() {
                if let Some((first, _)) = buf
                    .readings
                    .iter()
                    .filter_map(position_fix)
                    .min_by_key(|(f, _)| f.t_ms)
                {
                    buf.first = first;
                }
            }
            *index.buffered_positions.get_mut() -= trimmed;
            removed += trimmed;
        }
        // Erase the removed blocks' bytes.
        let mut touched = Vec::new();
        for b in &doomed {
            let path = data_path(&self.inner.dir, b.file);
            if let Some(file) = self.inner.files.read().get(&b.file).cloned() {
                chunk_file::erase_block(&file, &path, b.offset, b.len_bytes)?;
                if !touched.contains(&b.file) {
                    touched.push(b.file);
                }
            }
        }
        if self.inner.config.fsync {
            for f in touched {
                let path = data_path(&self.inner.dir, f);
                if let Some(file) = self.inner.files.read().get(&f).cloned() {
                    file.sync_data().map_err(TrailError::io("syncing", &path))?;
                }
            }
        }
        Ok(removed)
    }

    /// Removes every position of the activation and refuses any later ones (end of retention).
    pub fn delete_activation(&self, activation: &str) -> Result<u64, TrailError> {
        self.purge_before(activation, TimeMs::MAX)
    }

    /// The event time of an activation's latest position (`None`: it has none).
    pub fn latest_ms(&self, activation: &str) -> Option<TimeMs> {
        let index = self.inner.index.read();
        let id = *index.by_name.get(activation)?;
        index.latest_ms(id)
    }

    /// Names of activations with positions (sealed or buffered), sorted.
    pub fn activations(&self) -> Vec<String> {
        let index = self.inner.index.read();
        let mut names: Vec<String> = (0..index.acts.len() as u32)
            .filter(|id| index.has_positions(*id))
            .map(|id| index.acts[id as usize].name.clone())
            .collect();
        names.sort();
        names
    }

    pub fn stats(&self) -> TrailStats {
        let (activations, sealed, buffered, blocks) = {
            let index = self.inner.index.read();
            let acts = (0..index.acts.len() as u32)
                .filter(|id| index.has_positions(*id))
                .count() as u64;
            (acts, index.sealed_positions, index.buffered(), index.blocks)
        };
        let (manifest_bytes, checkpoint) = {
            let w = self.inner.writer.lock();
            (w.manifest_len, w.checkpoint)
        };
        let files: Vec<Arc<File>> = self.inner.files.read().values().cloned().collect();
        let data_bytes: u64 = files
            .iter()
            .map(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        let bytes_on_disk = data_bytes + manifest_bytes;
        TrailStats {
            activations,
            positions: sealed + buffered,
            sealed_positions: sealed,
            buffered_positions: buffered,
            blocks,
            data_files: files.len() as u64,
            bytes_on_disk,
            manifest_bytes,
            bytes_per_position: if sealed == 0 {
                0.0
            } else {
                bytes_on_disk as f64 / sealed as f64
            },
            checkpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, PositionSource};

    fn fix(t_ms: i64, lat_e7: i32) -> Reading {
        Reading {
            t_ms,
            battery_pct: Some(50),
            body: ReadingBody::Position(Position {
                lat_e7,
                lon_e7: 0,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: Some(8),
            }),
        }
    }

    #[test]
    fn checkpoint_holds_back_for_open_chunks_and_flush_seals_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cp) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
        assert_eq!(cp, 0);
        store.append("A", 0, &[fix(0, 1), fix(60_000, 2)]).unwrap();
        store.append("A", 1, &[fix(120_000, 3)]).unwrap();
        // The hour is not over: nothing sealed, checkpoint stays at the first record.
        assert_eq!(store.checkpoint(2).unwrap(), 0);
        assert_eq!(store.stats().sealed_positions, 0);
        // An hour and a grace period later, the first chunk is over.
        store
            .append("A", 2, &[fix(3_600_000 + 11 * 60_000, 4)])
            .unwrap();
        assert_eq!(store.checkpoint(3).unwrap(), 2);
        assert_eq!(store.stats().sealed_positions, 3);
        assert_eq!(store.flush(3).unwrap(), 3);
        let s = store.stats();
        assert_eq!(
            (s.sealed_positions, s.buffered_positions, s.blocks),
            (4, 0, 2)
        );
        assert_eq!(store.positions("A", 0, i64::MAX).unwrap().len(), 4);
        drop(store);
        let (store, cp) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
        assert_eq!(cp, 3);
        assert_eq!(store.positions("A", 60_000, 120_000).unwrap().len(), 2);
    }

    #[test]
    fn each_position_keeps_its_batch_buffered_sealed_reopened_and_purged() {
        let batch = |seq: u64| Some(BatchSeq { epoch: 1, seq });
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
        // Arrival order is not time order: the batches follow their positions when sorted.
        store
            .append_from_batch("A", 0, batch(7), &[fix(120_000, 1), fix(180_000, 2)])
            .unwrap();
        store
            .append_from_batch("A", 1, batch(8), &[fix(60_000, 3)])
            .unwrap();
        store.append("A", 2, &[fix(240_000, 4)]).unwrap();
        let expected = vec![
            (60_000, batch(8)),
            (120_000, batch(7)),
            (180_000, batch(7)),
            (240_000, None),
        ];
        let read = |store: &TrailStore| -> Vec<(i64, Option<BatchSeq>)> {
            store
                .positions_with_batches("A", 0, i64::MAX)
                .unwrap()
                .into_iter()
                .map(|(r, b)| (r.t_ms, b))
                .collect()
        };
        assert_eq!(read(&store), expected, "buffered");
        store.flush(3).unwrap();
        assert_eq!(store.stats().buffered_positions, 0);
        assert_eq!(read(&store), expected, "sealed");
        drop(store);
        let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
        assert_eq!(read(&store), expected, "reopened");
        // A purge rewrites the block it cuts through: the kept positions keep their batches.
        store.purge_before("A", 100_000).unwrap();
        assert_eq!(read(&store), expected[1..], "purged");
        assert_eq!(
            store.positions("A", 0, i64::MAX).unwrap().len(),
            3,
            "the plain read agrees"
        );
    }
}
