//! The in-memory index, loaded from the manifest on open: activation names, every sealed
//! block's reference per activation (sorted by time), the unsealed per-chunk buffers the writer
//! is filling, and the R-tree of block envelopes kept in step with both.
//!
//! Locking: the store holds the index in a read-write lock. Appends take only the read lock
//! and the mutex of one of [`SHARDS`] buffer shards (activation id modulo the shard count);
//! readers take the read lock and their activation's shard while copying; only sealing (64
//! blocks at a time), activation creation and retention take the write lock.
//!
//! Envelope rule (see [`super::spatial`]): a block's envelope is its own box and time range,
//! plus the boxes of blocks of the same activation that overlap it in time, plus the fix just
//! before it when the gap is within the segment limit. Every segment of the trail is then inside
//! some envelope: between blocks that overlap in time, in either's envelope; between blocks that
//! follow each other, in the later one's. When a block is added or removed, only blocks whose
//! envelope can change are recomputed: blocks are chunk-aligned, so a block spans less than one
//! chunk, and that bounds the neighbourhood.

use super::manifest::{BboxE7, BlockRecord, FixE7};
use super::spatial::{Envelope, QueryBox, SpatialEntry};
use crate::model::{BatchSeq, Reading, ReadingBody, TimeMs};
use parking_lot::Mutex;
use rstar::RTree;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// A sealed block as the index holds it.
#[derive(Clone, Debug)]
pub struct BlockMeta {
    pub rec: BlockRecord,
    /// The envelope of this block's R-tree entry.
    pub env: Envelope,
}

impl BlockMeta {
    pub fn t_min(&self) -> TimeMs {
        self.rec.first.t_ms
    }
    pub fn t_max(&self) -> TimeMs {
        self.rec.last.t_ms
    }
}

/// Positions of one activation in one chunk that are not sealed yet.
#[derive(Clone, Debug)]
pub struct ChunkBuffer {
    /// In arrival order.
    pub readings: Vec<Reading>,
    /// The batch each reading came in, as runs: `(index of the run's first reading, batch)`
    /// (one run per append, not one entry per reading; an hour's few held inline, so a
    /// buffer costs no extra allocation).
    batch_runs: BatchRuns,
    /// The first log record that put a position here: the checkpoint may not pass it.
    pub first_record: u64,
    pub bbox: BboxE7,
    pub first: FixE7,
    pub last: FixE7,
}

impl ChunkBuffer {
    fn new(first_record: u64, r: &Reading, lat_e7: i32, lon_e7: i32) -> Self {
        let fix = FixE7 {
            t_ms: r.t_ms,
            lat_e7,
            lon_e7,
        };
        ChunkBuffer {
            readings: Vec::new(),
            batch_runs: BatchRuns::new(),
            first_record,
            bbox: BboxE7::point(lat_e7, lon_e7),
            first: fix,
            last: fix,
        }
    }

    fn push(&mut self, r: Reading, batch: Option<BatchSeq>, lat_e7: i32, lon_e7: i32) {
        if self.batch_runs.last().is_none_or(|(_, b)| *b != batch) {
            self.batch_runs.push((self.readings.len() as u32, batch));
        }
        self.bbox.add(lat_e7, lon_e7);
        let fix = FixE7 {
            t_ms: r.t_ms,
            lat_e7,
            lon_e7,
        };
        if r.t_ms < self.first.t_ms {
            self.first = fix;
        }
        if r.t_ms >= self.last.t_ms {
            self.last = fix;
        }
        self.readings.push(r);
    }

    /// The batch of each reading, in the order of `readings`.
    pub fn batches(&self) -> Vec<Option<BatchSeq>> {
        expand_batch_runs(&self.batch_runs, self.readings.len())
    }

    /// Keeps only the readings `keep` accepts (with their batches). Returns how many went.
    pub fn retain(&mut self, keep: impl Fn(&Reading) -> bool) -> usize {
        let before = self.readings.len();
        let batches = self.batches();
        let (mut readings, mut runs) = (Vec::with_capacity(before), BatchRuns::new());
        for (r, batch) in self.readings.iter().zip(batches) {
            if keep(r) {
                if runs.last().is_none_or(|(_, b)| *b != batch) {
                    runs.push((readings.len() as u32, batch));
                }
                readings.push(*r);
            }
        }
        self.readings = readings;
        self.batch_runs = runs;
        before - self.readings.len()
    }
}

/// A chunk buffer's batch runs (see [`ChunkBuffer`]).
pub type BatchRuns = smallvec::SmallVec<[(u32, Option<BatchSeq>); 8]>;

/// Batch runs (`(index of the run's first reading, batch)`) as one batch per reading, for `len`
/// readings.
pub fn expand_batch_runs(runs: &[(u32, Option<BatchSeq>)], len: usize) -> Vec<Option<BatchSeq>> {
    let mut out = Vec::with_capacity(len);
    for (i, (start, batch)) in runs.iter().enumerate() {
        let end = runs.get(i + 1).map_or(len, |(next, _)| *next as usize);
        out.extend(std::iter::repeat_n(
            *batch,
            end.saturating_sub(*start as usize),
        ));
    }
    out
}

/// Everything the index knows about one activation.
#[derive(Clone, Debug)]
pub struct ActivationState {
    pub name: String,
    /// Sorted by (first time, file, offset).
    pub blocks: Vec<BlockMeta>,
    /// Positions before this are purged and never accepted again.
    pub purged_before_ms: TimeMs,
}

/// An activation's unsealed state: written by the writer's appends under its shard's mutex,
/// so appends never need the index's write lock.
#[derive(Clone, Debug, Default)]
pub struct OpenState {
    /// Keyed by chunk start.
    pub buffers: BTreeMap<TimeMs, ChunkBuffer>,
    /// The last log record applied in this process (not persisted).
    pub last_record: Option<u64>,
    /// Latest event time seen, for deciding when a chunk is over.
    pub max_t_ms: Option<TimeMs>,
}

/// Number of buffer shards (activation id modulo this).
pub const SHARDS: usize = 64;

/// Open states of the activations whose id falls in one shard.
pub type Shard = HashMap<u32, OpenState>;

/// Time range and geometry of a block or buffer, for envelope computation.
#[derive(Clone, Copy, Debug)]
struct Item {
    bbox: BboxE7,
    first: FixE7,
    last: FixE7,
}

impl Item {
    fn own(&self) -> Envelope {
        Envelope::new(self.bbox, self.first.t_ms, self.last.t_ms)
    }
}

fn block_item(b: &BlockRecord) -> Item {
    Item {
        bbox: b.bbox,
        first: b.first,
        last: b.last,
    }
}

fn meta_item(b: &BlockMeta) -> Item {
    block_item(&b.rec)
}

fn buffer_item(b: &ChunkBuffer) -> Item {
    Item {
        bbox: b.bbox,
        first: b.first,
        last: b.last,
    }
}

/// The envelope of `items[i]` (items sorted by first time, each spanning less than `chunk_ms`).
fn envelope_of<T>(
    items: &[T],
    item: impl Fn(&T) -> Item,
    i: usize,
    chunk_ms: i64,
    max_gap_ms: i64,
    with_successor: bool,
) -> Envelope {
    let me = item(&items[i]);
    let mut env = me.own();
    let mut preds: Vec<FixE7> = Vec::new();
    for o in items[..i].iter().rev().map(&item) {
        let best = preds.first().map(|p| p.t_ms);
        let cannot_overlap = o.first.t_ms + chunk_ms <= me.first.t_ms;
        if cannot_overlap && best.is_some_and(|b| o.first.t_ms + chunk_ms <= b) {
            break;
        }
        if o.last.t_ms >= me.first.t_ms {
            env.union(&o.own());
        } else {
            match best {
                Some(b) if o.last.t_ms < b => {}
                Some(b) if o.last.t_ms == b => preds.push(o.last),
                _ => preds = vec![o.last],
            }
        }
    }
    for p in &preds {
        if me.first.t_ms - p.t_ms <= max_gap_ms {
            env.add_fix(p);
        }
    }
    for o in items[i + 1..].iter().map(&item) {
        if o.first.t_ms > me.last.t_ms {
            if with_successor && o.first.t_ms - me.last.t_ms <= max_gap_ms {
                env.add_fix(&o.first);
            }
            break;
        }
        env.union(&o.own());
    }
    env
}

/// The index; readers share it behind a lock, the single writer updates it in short sections.
pub struct Index {
    pub chunk_ms: i64,
    pub max_gap_ms: i64,
    pub by_name: HashMap<String, u32>,
    pub acts: Vec<ActivationState>,
    pub rtree: RTree<SpatialEntry>,
    pub sealed_positions: u64,
    pub buffered_positions: AtomicU64,
    pub blocks: u64,
    /// Unsealed buffers, sharded by activation id: an append locks one shard; a reader holds
    /// the index read lock and its activation's shard while copying.
    pub shards: Vec<Mutex<Shard>>,
}

/// What a read needs: sealed blocks (in write order) and copies of buffered positions.
#[derive(Debug, Default)]
pub struct ReadPlan {
    pub blocks: Vec<BlockRecord>,
    pub buffered: Vec<Reading>,
    /// With `with_batches`: the batch of each of `buffered`.
    pub buffered_batches: Vec<Option<BatchSeq>>,
}

/// Which (activation, chunk) buffers a checkpoint seals.
pub struct SealJob {
    pub activation: u32,
    pub chunk_ms: TimeMs,
    pub readings: Vec<Reading>,
    /// The batches of `readings` as runs (see [`expand_batch_runs`]): expanded outside the
    /// shard's lock.
    pub batch_runs: BatchRuns,
    pub complete_through_record: u64,
}

fn lat_lon(r: &Reading) -> Option<(i32, i32)> {
    match &r.body {
        ReadingBody::Position(p) => Some((p.lat_e7, p.lon_e7)),
        _ => None,
    }
}

impl Index {
    pub fn new(chunk_ms: i64, max_gap_ms: i64) -> Self {
        Index {
            chunk_ms,
            max_gap_ms,
            by_name: HashMap::new(),
            acts: Vec::new(),
            rtree: RTree::new(),
            sealed_positions: 0,
            buffered_positions: AtomicU64::new(0),
            blocks: 0,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
        }
    }

    pub fn shard(&self, id: u32) -> &Mutex<Shard> {
        &self.shards[id as usize % SHARDS]
    }

    pub fn buffered(&self) -> u64 {
        self.buffered_positions.load(Ordering::Relaxed)
    }

    /// Whether the activation has sealed blocks or open buffers.
    /// The event time of the activation's latest position, sealed or buffered.
    pub fn latest_ms(&self, id: u32) -> Option<TimeMs> {
        let sealed = self
            .acts
            .get(id as usize)
            .and_then(|a| a.blocks.iter().map(BlockMeta::t_max).max());
        let open = self.shard(id).lock().get(&id).and_then(|st| {
            st.buffers
                .values()
                .flat_map(|b| b.readings.iter().map(|r| r.t_ms))
                .max()
        });
        sealed.max(open)
    }

    pub fn has_positions(&self, id: u32) -> bool {
        self.acts
            .get(id as usize)
            .is_some_and(|a| !a.blocks.is_empty())
            || self
                .shard(id)
                .lock()
                .get(&id)
                .is_some_and(|st| !st.buffers.is_empty())
    }

    pub fn chunk_of(&self, t_ms: TimeMs) -> TimeMs {
        t_ms.div_euclid(self.chunk_ms) * self.chunk_ms
    }

    /// Adds an activation under a given id (from the manifest, or a new one).
    pub fn add_activation(&mut self, id: u32, name: &str) {
        let idx = id as usize;
        while self.acts.len() <= idx {
            self.acts.push(ActivationState {
                name: String::new(),
                blocks: Vec::new(),
                purged_before_ms: TimeMs::MIN,
            });
        }
        self.acts[idx].name = name.to_string();
        self.by_name.insert(name.to_string(), id);
    }

    /// Applies one activation's readings from one log record. `dedup` is set while re-applying
    /// records that sealed blocks may already hold. Returns the positions buffered.
    pub fn append(
        &self,
        id: u32,
        log_record: u64,
        batch: Option<BatchSeq>,
        readings: &[Reading],
        dedup: bool,
    ) -> u64 {
        let chunk_ms = self.chunk_ms;
        let act = &self.acts[id as usize];
        let mut shard = self.shard(id).lock();
        let st = shard.entry(id).or_default();
        if st.last_record.is_some_and(|last| log_record <= last) {
            return 0;
        }
        st.last_record = Some(log_record);
        let mut added = 0u64;
        for r in readings {
            let Some((lat, lon)) = lat_lon(r) else {
                continue;
            };
            if r.t_ms < act.purged_before_ms {
                continue;
            }
            let chunk = r.t_ms.div_euclid(chunk_ms) * chunk_ms;
            if dedup
                && complete_through(&act.blocks, chunk, chunk_ms).is_some_and(|c| log_record <= c)
            {
                continue;
            }
            st.max_t_ms = Some(st.max_t_ms.map_or(r.t_ms, |m| m.max(r.t_ms)));
            match st.buffers.get_mut(&chunk) {
                Some(buf) => buf.push(*r, batch, lat, lon),
                None => {
                    let mut buf = ChunkBuffer::new(log_record, r, lat, lon);
                    buf.push(*r, batch, lat, lon);
                    st.buffers.insert(chunk, buf);
                }
            }
            added += 1;
        }
        self.buffered_positions.fetch_add(added, Ordering::Relaxed);
        added
    }

    /// Chooses the buffers to seal: all if `force`, else chunks that are over (the activation's
    /// latest event time is `grace_ms` past the chunk's end) or whose first log record is more
    /// than `max_unsealed_records` behind `next_record`. Returns the jobs and the lowest first
    /// record among buffers left open.
    pub fn plan_seal(
        &self,
        next_record: u64,
        grace_ms: i64,
        max_unsealed_records: u64,
        force: bool,
    ) -> (Vec<SealJob>, Option<u64>) {
        let mut jobs = Vec::new();
        let mut keep_min: Option<u64> = None;
        for shard in &self.shards {
            let shard = shard.lock();
            for (&id, st) in shard.iter() {
                let max_t_ms = st.max_t_ms.unwrap_or(TimeMs::MIN);
                for (chunk, buf) in &st.buffers {
                    let over =
                        chunk.saturating_add(self.chunk_ms).saturating_add(grace_ms) <= max_t_ms;
                    let stale =
                        buf.first_record.saturating_add(max_unsealed_records) <= next_record;
                    if force || over || stale {
                        jobs.push(SealJob {
                            activation: id,
                            chunk_ms: *chunk,
                            readings: buf.readings.clone(),
                            batch_runs: buf.batch_runs.clone(),
                            complete_through_record: st.last_record.unwrap_or(buf.first_record),
                        });
                    } else {
                        keep_min =
                            Some(keep_min.map_or(buf.first_record, |k| k.min(buf.first_record)));
                    }
                }
            }
        }
        (jobs, keep_min)
    }

    /// Replaces a sealed buffer by its block.
    pub fn install_sealed(&mut self, chunk: TimeMs, rec: BlockRecord) {
        let shard = self.shards[rec.activation as usize % SHARDS].get_mut();
        if let Some(buf) = shard
            .get_mut(&rec.activation)
            .and_then(|st| st.buffers.remove(&chunk))
        {
            *self.buffered_positions.get_mut() -= buf.readings.len() as u64;
        }
        self.insert_block(rec);
    }

    /// Adds a block and refreshes the envelopes it can change.
    pub fn insert_block(&mut self, rec: BlockRecord) {
        let act_id = rec.activation;
        let act = &mut self.acts[act_id as usize];
        let key = (rec.first.t_ms, rec.file, rec.offset);
        let at = act
            .blocks
            .partition_point(|b| (b.t_min(), b.rec.file, b.rec.offset) < key);
        let own = Envelope::new(rec.bbox, rec.first.t_ms, rec.last.t_ms);
        act.blocks.insert(at, BlockMeta { rec, env: own });
        // Its final envelope goes straight into the tree; neighbours are refreshed after.
        let env = envelope_of(
            &act.blocks,
            meta_item,
            at,
            self.chunk_ms,
            self.max_gap_ms,
            false,
        );
        act.blocks[at].env = env;
        self.sealed_positions += rec.count as u64;
        self.blocks += 1;
        self.rtree
            .insert(SpatialEntry::new(&env, act_id, rec.file, rec.offset));
        self.refresh_around(act_id, rec.first.t_ms, rec.last.t_ms);
    }

    /// Removes a block (and its R-tree entry); returns its record.
    pub fn remove_block(&mut self, act_id: u32, file: u32, offset: u64) -> Option<BlockRecord> {
        let act = &mut self.acts[act_id as usize];
        let at = act
            .blocks
            .iter()
            .position(|b| b.rec.file == file && b.rec.offset == offset)?;
        let meta = act.blocks.remove(at);
        self.rtree
            .remove(&SpatialEntry::new(&meta.env, act_id, file, offset));
        self.sealed_positions -= meta.rec.count as u64;
        self.blocks -= 1;
        self.refresh_around(act_id, meta.t_min(), meta.t_max());
        Some(meta.rec)
    }

    /// Recomputes envelopes of blocks that a block spanning `[t_min, t_max]` can affect: those
    /// overlapping it, and those that may have it (or had it) as the block just before.
    fn refresh_around(&mut self, act_id: u32, t_min: TimeMs, t_max: TimeMs) {
        let chunk_ms = self.chunk_ms;
        let blocks = &self.acts[act_id as usize].blocks;
        let lo = t_min.saturating_sub(chunk_ms);
        let hi = match blocks.get(blocks.partition_point(|b| b.t_min() <= t_max)) {
            Some(f) => f.t_min().saturating_add(chunk_ms),
            None => TimeMs::MAX,
        };
        let start = blocks.partition_point(|b| b.t_min() <= lo);
        let end = blocks.partition_point(|b| b.t_min() <= hi);
        self.refresh_range(act_id, start, end);
    }

    fn refresh_range(&mut self, act_id: u32, start: usize, end: usize) {
        let (chunk_ms, max_gap_ms) = (self.chunk_ms, self.max_gap_ms);
        let act = &mut self.acts[act_id as usize];
        for i in start..end {
            let env = envelope_of(&act.blocks, meta_item, i, chunk_ms, max_gap_ms, false);
            let meta = &mut act.blocks[i];
            if env != meta.env {
                let (file, offset) = (meta.rec.file, meta.rec.offset);
                self.rtree
                    .remove(&SpatialEntry::new(&meta.env, act_id, file, offset));
                meta.env = env;
                self.rtree
                    .insert(SpatialEntry::new(&env, act_id, file, offset));
            }
        }
    }

    /// After loading every block from the manifest: sort, compute envelopes, bulk-load the tree.
    pub fn build_after_load(&mut self) {
        let (chunk_ms, max_gap_ms) = (self.chunk_ms, self.max_gap_ms);
        let mut entries = Vec::new();
        for (id, act) in self.acts.iter_mut().enumerate() {
            act.blocks
                .sort_by_key(|b| (b.t_min(), b.rec.file, b.rec.offset));
            let envs: Vec<Envelope> = (0..act.blocks.len())
                .map(|i| envelope_of(&act.blocks, meta_item, i, chunk_ms, max_gap_ms, false))
                .collect();
            for (meta, env) in act.blocks.iter_mut().zip(envs) {
                meta.env = env;
                entries.push(SpatialEntry::new(
                    &meta.env,
                    id as u32,
                    meta.rec.file,
                    meta.rec.offset,
                ));
                self.sealed_positions += meta.rec.count as u64;
                self.blocks += 1;
            }
        }
        self.rtree = super::spatial::load_rtree(entries);
    }

    /// Blocks and buffered positions needed to read `[from_ms, to_ms]`; with `neighbours`, also
    /// what holds the fix just before and just after.
    pub fn plan_read(
        &self,
        id: u32,
        from_ms: TimeMs,
        to_ms: TimeMs,
        neighbours: bool,
        with_batches: bool,
    ) -> ReadPlan {
        let act = &self.acts[id as usize];
        let blocks = &act.blocks;
        let start = blocks.partition_point(|b| b.t_min() <= from_ms.saturating_sub(self.chunk_ms));
        let end = blocks.partition_point(|b| b.t_min() <= to_ms);
        let mut plan = ReadPlan::default();
        for b in &blocks[start..end] {
            if b.t_max() >= from_ms {
                plan.blocks.push(b.rec);
            }
        }
        if neighbours {
            // The block with the latest end before the window; and the first one starting after.
            let mut before: Option<&BlockMeta> = None;
            for b in blocks[..end].iter().rev() {
                if before.is_some_and(|x| b.t_min().saturating_add(self.chunk_ms) <= x.t_max()) {
                    break;
                }
                if b.t_max() < from_ms && before.is_none_or(|x| b.t_max() > x.t_max()) {
                    before = Some(b);
                }
            }
            if let Some(b) = before {
                plan.blocks.push(b.rec);
            }
            if let Some(b) = blocks.get(end) {
                plan.blocks.push(b.rec);
            }
            plan.blocks.sort_by_key(|b| (b.file, b.offset));
            plan.blocks.dedup_by_key(|b| (b.file, b.offset));
        } else {
            plan.blocks.sort_by_key(|b| (b.file, b.offset));
        }
        let shard = self.shard(id).lock();
        for buf in shard.get(&id).iter().flat_map(|st| st.buffers.values()) {
            let overlaps = buf.last.t_ms >= from_ms && buf.first.t_ms <= to_ms;
            if overlaps || neighbours {
                plan.buffered.extend_from_slice(&buf.readings);
                if with_batches {
                    plan.buffered_batches.extend(buf.batches());
                }
            }
        }
        plan
    }

    /// Whether a block is still indexed (a reader that finds a block erased checks this).
    pub fn has_block(&self, id: u32, file: u32, offset: u64) -> bool {
        self.acts.get(id as usize).is_some_and(|a| {
            a.blocks
                .iter()
                .any(|b| b.rec.file == file && b.rec.offset == offset)
        })
    }

    /// Activations (with the matching envelope time range) whose path may meet the box.
    pub fn candidates(&self, q: &QueryBox) -> BTreeMap<u32, (TimeMs, TimeMs, u32)> {
        let mut out: BTreeMap<u32, (TimeMs, TimeMs, u32)> = BTreeMap::new();
        for e in self.rtree.locate_in_envelope_intersecting(&q.to_aabb()) {
            if e.from_ms > q.to_ms || e.to_ms < q.from_ms {
                continue;
            }
            let slot = out.entry(e.activation).or_insert((e.from_ms, e.to_ms, 0));
            slot.0 = slot.0.min(e.from_ms);
            slot.1 = slot.1.max(e.to_ms);
            slot.2 += 1;
        }
        // Unsealed buffers: envelopes computed on demand, after a cheap time filter.
        for shard in &self.shards {
            let shard = shard.lock();
            for (&id, st) in shard.iter() {
                let act = &self.acts[id as usize];
                for buf in st.buffers.values() {
                    if buf.last.t_ms.saturating_add(self.max_gap_ms) < q.from_ms
                        || buf.first.t_ms.saturating_sub(self.max_gap_ms) > q.to_ms
                    {
                        continue;
                    }
                    let env = self.buffer_envelope(act, st, buf);
                    if env.intersects(q) {
                        let slot = out.entry(id).or_insert((env.from_ms, env.to_ms, 0));
                        slot.0 = slot.0.min(env.from_ms);
                        slot.1 = slot.1.max(env.to_ms);
                        slot.2 += 1;
                    }
                }
            }
        }
        out
    }

    /// A buffer's envelope: like a block's, and also the fix just after it (a sealed block after
    /// an unsealed one does not know about it yet).
    fn buffer_envelope(
        &self,
        act: &ActivationState,
        st: &OpenState,
        buf: &ChunkBuffer,
    ) -> Envelope {
        let lo = buf
            .first
            .t_ms
            .saturating_sub(self.chunk_ms.saturating_add(self.max_gap_ms));
        let hi = buf
            .last
            .t_ms
            .saturating_add(self.chunk_ms.saturating_add(self.max_gap_ms));
        let start = act.blocks.partition_point(|b| b.t_min() < lo);
        let end = act.blocks.partition_point(|b| b.t_min() <= hi);
        let mut items: Vec<(bool, Item)> = act.blocks[start..end]
            .iter()
            .map(|b| (false, block_item(&b.rec)))
            .collect();
        for b in st.buffers.values() {
            items.push((std::ptr::eq(b, buf), buffer_item(b)));
        }
        items.sort_by_key(|(_, it)| it.first.t_ms);
        let me = items.iter().position(|(is_me, _)| *is_me).unwrap_or(0);
        let plain: Vec<Item> = items.into_iter().map(|(_, it)| it).collect();
        envelope_of(&plain, |x| *x, me, self.chunk_ms, self.max_gap_ms, true)
    }
}

/// The log record up to which a chunk's sealed blocks are complete.
fn complete_through(blocks: &[BlockMeta], chunk: TimeMs, chunk_ms: i64) -> Option<u64> {
    let start = blocks.partition_point(|b| b.t_min() < chunk);
    blocks[start..]
        .iter()
        .take_while(|b| b.t_min() < chunk + chunk_ms)
        .map(|b| b.rec.complete_through_record)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(t0: i64, t1: i64, lat0: i32, lat1: i32) -> Item {
        Item {
            bbox: BboxE7 {
                min_lat_e7: lat0.min(lat1),
                min_lon_e7: 0,
                max_lat_e7: lat0.max(lat1),
                max_lon_e7: 0,
            },
            first: FixE7 {
                t_ms: t0,
                lat_e7: lat0,
                lon_e7: 0,
            },
            last: FixE7 {
                t_ms: t1,
                lat_e7: lat1,
                lon_e7: 0,
            },
        }
    }

    #[test]
    fn envelope_includes_the_previous_fix_within_the_gap_limit() {
        let items = [
            item(0, 50, 0, 10),
            item(60, 90, 100, 110),
            item(1000, 1010, 500, 500),
        ];
        let e = envelope_of(&items, |x| *x, 1, 100, 20, false);
        assert_eq!(
            (e.bbox.min_lat_e7, e.bbox.max_lat_e7, e.from_ms, e.to_ms),
            (10, 110, 50, 90)
        );
        // 990 ms gap: beyond the limit, no segment assumed.
        let e = envelope_of(&items, |x| *x, 2, 100, 20, false);
        assert_eq!((e.bbox.min_lat_e7, e.from_ms), (500, 1000));
        // With the successor (buffers), the next fix is in too.
        let e = envelope_of(&items, |x| *x, 0, 100, 20, true);
        assert_eq!(e.bbox.max_lat_e7, 100);
    }

    #[test]
    fn overlapping_blocks_share_their_boxes() {
        let items = [item(0, 90, 0, 10), item(30, 40, 200, 200)];
        let e0 = envelope_of(&items, |x| *x, 0, 100, 20, false);
        let e1 = envelope_of(&items, |x| *x, 1, 100, 20, false);
        assert_eq!(e0.bbox.max_lat_e7, 200);
        assert_eq!(e1.bbox.min_lat_e7, 0);
    }
}
