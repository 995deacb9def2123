//! Trail store behaviour over real files: ordering, idempotent re-application after a restart or
//! crash, torn tails, the spatio-temporal candidates query, retention, and the trail
//! computations on a known fixture.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use tagstream::formats::readings_jsonl::read_batches;
use tagstream::model::time::parse_time;
use tagstream::model::{Position, PositionSource, Reading, ReadingBody};
use tagstream::store::trails::{QueryBox, TrailConfig, TrailError, TrailStore};
use tagstream::trail::{find_stays, gap_flags, sequence_labels, GapConfig, Place, StayConfig};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn fix(t_ms: i64, lat: f64, lon: f64) -> Reading {
    Reading {
        t_ms,
        battery_pct: Some(70),
        body: ReadingBody::Position(Position {
            lat_e7: (lat * 1e7).round() as i32,
            lon_e7: (lon * 1e7).round() as i32,
            precision_cm: 600,
            source: PositionSource::Gps,
            speed_ckmh: Some(500),
            heading_cdeg: Some(4500),
            satellites: Some(8),
        }),
    }
}

fn lat_of(r: &Reading) -> f64 {
    match &r.body {
        ReadingBody::Position(p) => p.lat(),
        _ => f64::NAN,
    }
}

/// The fixture's batches, numbered as log records in file order.
fn fixture_records() -> Vec<(u64, Vec<Reading>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/trails/day.jsonl");
    let file = std::fs::File::open(&path).unwrap();
    let mut out = Vec::new();
    let errors = read_batches(std::io::BufReader::new(file), |b| {
        out.push((out.len() as u64, b.readings));
    })
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    out
}

fn small_chunks() -> TrailConfig {
    TrailConfig {
        chunk_ms: 10 * MIN,
        seal_grace_ms: 2 * MIN,
        ..TrailConfig::default()
    }
}

fn apply(store: &TrailStore, records: &[(u64, Vec<Reading>)], from: u64, checkpoint_each: bool) {
    for (n, readings) in records.iter().filter(|(n, _)| *n >= from) {
        store.append("ACT-1", *n, readings).unwrap();
        if checkpoint_each {
            store.checkpoint(n + 1).unwrap();
        }
    }
}

fn reference(records: &[(u64, Vec<Reading>)]) -> Vec<Reading> {
    let mut all: Vec<Reading> = records.iter().flat_map(|(_, r)| r.clone()).collect();
    all.sort_by_key(|r| r.t_ms);
    all
}

#[test]
fn out_of_order_appends_read_back_sorted_with_ties_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
    let t0 = parse_time("2026-03-28T10:00:00Z").unwrap();
    store
        .append(
            "A",
            0,
            &[fix(t0 + 10 * MIN, 51.0, 0.0), fix(t0 + 20 * MIN, 51.1, 0.0)],
        )
        .unwrap();
    // A late upload from the hour before, and a tie with an earlier arrival.
    store
        .append(
            "A",
            1,
            &[
                fix(t0 - 30 * MIN, 50.0, 0.0),
                fix(t0 + 10 * MIN, 51.2, 0.0),
                fix(t0 - 50 * MIN, 49.0, 0.0),
            ],
        )
        .unwrap();
    let check = |store: &TrailStore| {
        let got = store.positions("A", t0 - HOUR, t0 + HOUR).unwrap();
        let lats: Vec<f64> = got.iter().map(lat_of).collect();
        assert_eq!(lats, [49.0, 50.0, 51.0, 51.2, 51.1]);
    };
    check(&store);
    store.flush(2).unwrap();
    check(&store);
    // More late data for a sealed chunk goes in an extra block; reads still merge in order.
    store
        .append(
            "A",
            2,
            &[fix(t0 + 10 * MIN, 51.3, 0.0), fix(t0 + 5 * MIN, 50.5, 0.0)],
        )
        .unwrap();
    store.flush(3).unwrap();
    let lats: Vec<f64> = store
        .positions("A", t0, t0 + HOUR)
        .unwrap()
        .iter()
        .map(lat_of)
        .collect();
    assert_eq!(lats, [50.5, 51.0, 51.2, 51.3, 51.1]);
    drop(store);
    let (store, cp) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
    assert_eq!(cp, 3);
    let lats: Vec<f64> = store
        .positions("A", t0, t0 + HOUR)
        .unwrap()
        .iter()
        .map(lat_of)
        .collect();
    assert_eq!(lats, [50.5, 51.0, 51.2, 51.3, 51.1]);
    assert_eq!(store.stats().blocks, 3);
    // Window bounds are inclusive; unknown activations are empty.
    assert_eq!(
        store
            .positions("A", t0 + 10 * MIN, t0 + 10 * MIN)
            .unwrap()
            .len(),
        3
    );
    assert!(store.positions("nobody", 0, i64::MAX).unwrap().is_empty());
}

#[test]
fn reapplying_from_the_checkpoint_after_reopen_is_idempotent() {
    let records = fixture_records();
    let want = reference(&records);
    let dir = tempfile::tempdir().unwrap();
    let (store, cp) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    assert_eq!(cp, 0);
    apply(&store, &records, 0, true);
    let cp_before = store.stats().checkpoint;
    assert!(
        cp_before > 0 && cp_before < records.len() as u64,
        "checkpoint {cp_before}"
    );
    store.flush(records.len() as u64).unwrap();
    drop(store);
    // Clean reopen: checkpoint is the end; re-applying everything changes nothing.
    let (store, cp) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    assert_eq!(cp, records.len() as u64);
    apply(&store, &records, 0, false);
    store.flush(records.len() as u64).unwrap();
    assert_eq!(store.positions("ACT-1", 0, i64::MAX).unwrap(), want);
    assert_eq!(store.stats().positions, 101);
}

#[test]
fn a_crash_loses_only_what_the_checkpoint_did_not_cover_and_replay_restores_it() {
    let records = fixture_records();
    let want = reference(&records);
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records[..8], 0, true);
    let durable = store.stats().checkpoint;
    // More records applied but never checkpointed, then the process dies.
    apply(&store, &records[8..], 0, false);
    assert_eq!(store.positions("ACT-1", 0, i64::MAX).unwrap(), want);
    drop(store);
    let (store, cp) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    assert_eq!(cp, durable);
    assert!(cp < 8);
    let partial = store.positions("ACT-1", 0, i64::MAX).unwrap().len();
    assert!(
        partial > 0 && partial < 101,
        "{partial} sealed positions survived"
    );
    // Replay the log from the checkpoint, twice over for good measure.
    apply(&store, &records, cp, true);
    apply(&store, &records, cp, true);
    assert_eq!(store.positions("ACT-1", 0, i64::MAX).unwrap(), want);
    // And again after another crash, from the new checkpoint.
    drop(store);
    let (store, cp) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records, cp, false);
    store.flush(records.len() as u64).unwrap();
    assert_eq!(store.positions("ACT-1", 0, i64::MAX).unwrap(), want);
}

#[test]
fn torn_tails_are_cut_and_damage_inside_is_reported_with_file_and_offset() {
    let records = fixture_records();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records, 0, false);
    store.flush(records.len() as u64).unwrap();
    let stats = store.stats();
    drop(store);
    // A crash mid-checkpoint: block bytes written, manifest frame half written.
    let data = dir.path().join("00000001.trail");
    let len = std::fs::metadata(&data).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&data)
        .unwrap()
        .write_all(&[7u8; 300])
        .unwrap();
    let manifest = dir.path().join("trails.manifest");
    OpenOptions::new()
        .append(true)
        .open(&manifest)
        .unwrap()
        .write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 2, 9])
        .unwrap();
    let (store, cp) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    assert_eq!(cp, records.len() as u64);
    let rec = store.recovery().clone();
    assert_eq!(rec.data_bytes_dropped, 300);
    assert_eq!(rec.manifest_bytes_dropped, 10);
    assert!(rec.manifest_damage.is_some());
    assert_eq!(std::fs::metadata(&data).unwrap().len(), len);
    assert_eq!(
        store.positions("ACT-1", 0, i64::MAX).unwrap(),
        reference(&records)
    );
    assert_eq!(store.stats().bytes_on_disk, stats.bytes_on_disk);
    drop(store);
    // Damage inside a checkpointed block is an error naming the file and offset.
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    let err = store.positions("ACT-1", 0, i64::MAX).unwrap_err();
    assert!(
        matches!(err, TrailError::Checksum { offset: 8, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("00000001.trail at offset 8"),
        "{err}"
    );
}

#[test]
fn a_data_file_shorter_than_its_checkpoint_is_refused() {
    let records = fixture_records();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records, 0, false);
    store.flush(records.len() as u64).unwrap();
    drop(store);
    let data = dir.path().join("00000001.trail");
    let len = std::fs::metadata(&data).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let err = TrailStore::open(dir.path(), small_chunks()).err().unwrap();
    assert!(
        matches!(err, TrailError::DataShorterThanCheckpoint { .. }),
        "{err}"
    );
}

/// Box: lon -2.600..-2.590, lat 51.450..51.460; window 10:30..11:30.
fn query(t0: i64) -> QueryBox {
    QueryBox {
        min_lon: -2.600,
        min_lat: 51.450,
        max_lon: -2.590,
        max_lat: 51.460,
        from_ms: t0 + 30 * MIN,
        to_ms: t0 + 90 * MIN,
    }
}

/// Activations around the box; returns the names expected to meet it.
fn populate_around_box(store: &TrailStore, t0: i64) -> Vec<&'static str> {
    let far = (51.60, -2.80);
    // A: a fix inside the box at 10:45.
    let a: Vec<Reading> = (0..120)
        .map(|m| {
            let inside = m == 45;
            let (lat, lon) = if inside {
                (51.455, -2.595)
            } else {
                (far.0, far.1 + m as f64 * 1e-4)
            };
            fix(t0 + m * MIN, lat, lon)
        })
        .collect();
    // B: two fixes either side of the box, 10:59 and 11:01 (different hour chunks).
    let b = vec![
        fix(t0 + 40 * MIN, 51.455, -2.640),
        fix(t0 + 50 * MIN, 51.455, -2.620),
        fix(t0 + 59 * MIN, 51.455, -2.605),
        fix(t0 + 61 * MIN, 51.455, -2.585),
        fix(t0 + 70 * MIN, 51.455, -2.560),
    ];
    // C: a segment passing outside the box's north-west corner (envelope overlaps, path not).
    let c = vec![
        fix(t0 + 40 * MIN, 51.458, -2.603),
        fix(t0 + 41 * MIN, 51.463, -2.598),
    ];
    // D: through the box, but at 13:00, outside the window.
    let d = vec![fix(t0 + 180 * MIN, 51.455, -2.595)];
    // E: like B but 20 minutes between the fixes: beyond the segment gap limit.
    let e = vec![
        fix(t0 + 50 * MIN, 51.455, -2.605),
        fix(t0 + 70 * MIN, 51.455, -2.585),
    ];
    for (n, (name, readings)) in [("A", a), ("B", b), ("C", c), ("D", d), ("E", e)]
        .into_iter()
        .enumerate()
    {
        // Each activation's late fixes first: out of order on purpose.
        let (late, early): (Vec<Reading>, Vec<Reading>) =
            readings.into_iter().partition(|r| r.t_ms >= t0 + 60 * MIN);
        store.append(name, 2 * n as u64, &late).unwrap();
        store.append(name, 2 * n as u64 + 1, &early).unwrap();
    }
    vec!["A", "B"]
}

#[test]
fn candidates_find_paths_through_the_box_including_between_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
    let t0 = parse_time("2026-03-28T10:00:00Z").unwrap();
    let want = populate_around_box(&store, t0);
    let q = query(t0);
    let check = |store: &TrailStore, state: &str| {
        let cands: Vec<String> = store
            .candidates(&q)
            .into_iter()
            .map(|c| c.activation)
            .collect();
        for w in &want {
            assert!(
                cands.iter().any(|c| c == w),
                "{state}: {w} missing from {cands:?}"
            );
        }
        assert!(
            !cands.iter().any(|c| c == "D" || c == "E"),
            "{state}: {cands:?}"
        );
        // C's envelope meets the box, its path does not: refinement drops it.
        assert!(cands.iter().any(|c| c == "C"), "{state}: {cands:?}");
        assert_eq!(store.activations_meeting(&q).unwrap(), want, "{state}");
    };
    check(&store, "buffered");
    store.flush(10).unwrap();
    assert_eq!(store.stats().buffered_positions, 0);
    check(&store, "sealed");
    drop(store);
    let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
    check(&store, "reopened");
    // B is in the box only between 10:59 and 11:01: a window ending at 10:58 does not have it.
    let early = QueryBox {
        to_ms: t0 + 58 * MIN,
        ..q
    };
    assert_eq!(store.activations_meeting(&early).unwrap(), vec!["A"]);
    // positions_in gives the fixes around the window too.
    let around = store
        .positions_in("B", t0 + 60 * MIN, t0 + 60 * MIN)
        .unwrap();
    assert_eq!(
        around.iter().map(|r| r.t_ms).collect::<Vec<_>>(),
        [t0 + 59 * MIN, t0 + 61 * MIN]
    );
}

#[test]
fn purge_removes_exactly_what_is_due_and_it_stays_removed() {
    let records = fixture_records();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records[..9], 0, true);
    // Some sealed, some still buffered.
    let stats = store.stats();
    assert!(
        stats.sealed_positions > 0 && stats.buffered_positions > 0,
        "{stats:?}"
    );
    let cut = parse_time("2026-03-28T09:05:30Z").unwrap();
    let applied: Vec<Reading> = reference(&records[..9]);
    let due = applied.iter().filter(|r| r.t_ms < cut).count() as u64;
    assert_eq!(store.purge_before("ACT-1", cut).unwrap(), due);
    let left = store.positions("ACT-1", 0, i64::MAX).unwrap();
    assert_eq!(
        left,
        applied
            .iter()
            .filter(|r| r.t_ms >= cut)
            .cloned()
            .collect::<Vec<_>>()
    );
    // Purging again removes nothing; unknown activations report nothing.
    assert_eq!(store.purge_before("ACT-1", cut).unwrap(), 0);
    assert_eq!(store.purge_before("nobody", cut).unwrap(), 0);
    // A crash and a replay of the whole log does not bring purged positions back.
    drop(store);
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records, 0, true);
    store.flush(records.len() as u64).unwrap();
    let all = reference(&records);
    let want: Vec<Reading> = all.iter().filter(|r| r.t_ms >= cut).cloned().collect();
    assert_eq!(store.positions("ACT-1", 0, i64::MAX).unwrap(), want);
    // No removed position's bytes survive: every erased block is zeros.
    let total = store.delete_activation("ACT-1").unwrap();
    assert_eq!(total, want.len() as u64);
    assert!(store.positions("ACT-1", 0, i64::MAX).unwrap().is_empty());
    assert_eq!(store.stats().positions, 0);
    let data = std::fs::read(dir.path().join("00000001.trail")).unwrap();
    assert!(
        data[8..].iter().all(|b| *b == 0),
        "removed blocks were not erased"
    );
    drop(store);
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    apply(&store, &records, 0, true);
    assert!(store.positions("ACT-1", 0, i64::MAX).unwrap().is_empty());
}

#[test]
fn gap_flags_and_stays_on_the_fixture() {
    let records = fixture_records();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).unwrap();
    apply(&store, &records, 0, true);
    store.flush(records.len() as u64).unwrap();
    let trail = store.positions("ACT-1", 0, i64::MAX).unwrap();
    assert_eq!(trail.len(), 101);
    let flags = gap_flags(&trail, &GapConfig::default());
    let flagged: Vec<String> = trail
        .iter()
        .zip(&flags)
        .filter(|(_, f)| **f)
        .map(|(r, _)| tagstream::model::time::format_time(r.t_ms))
        .collect();
    assert_eq!(flagged, ["2026-03-28T08:52:00Z", "2026-03-28T09:41:00Z"]);
    let labels = sequence_labels(&trail, &GapConfig::default());
    assert_eq!(
        (
            labels[40].as_str(),
            labels[41].as_str(),
            labels[80].as_str(),
            labels[100].as_str()
        ),
        ("A41", "B1", "B40", "C20")
    );
    let home = Place::Circle {
        name: "home".into(),
        lat: 51.4545,
        lon: -2.5879,
        radius_m: 50.0,
    };
    let shop = Place::Polygon {
        name: "shop zone".into(),
        ring: vec![
            (51.462, -2.589),
            (51.462, -2.587),
            (51.463, -2.587),
            (51.463, -2.589),
        ],
    };
    let stays = find_stays(&trail, &StayConfig::default(), &[home, shop]);
    let got: Vec<(String, String, usize, Option<String>)> = stays
        .iter()
        .map(|s| {
            (
                tagstream::model::time::format_time(s.arrival),
                tagstream::model::time::format_time(s.departure),
                s.fixes,
                s.place.clone(),
            )
        })
        .collect();
    let t = |s: &str| format!("2026-03-28T{s}:00Z");
    assert_eq!(
        got,
        vec![
            (t("08:00"), t("08:30"), 31, Some("home".to_string())),
            (t("08:40"), t("09:20"), 30, Some("shop zone".to_string())),
            (t("09:32"), t("10:00"), 21, Some("home".to_string())),
        ]
    );
}

#[test]
fn the_handle_is_shared_across_threads() {
    fn assert_send_sync<T: Clone + Send + Sync + 'static>() {}
    assert_send_sync::<TrailStore>();
    let records = fixture_records();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = TrailStore::open(dir.path(), small_chunks()).unwrap();
    let reader = store.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        // At least one read even if the writer finishes before this thread is scheduled.
        let mut reads = 0;
        loop {
            let got = reader.positions("ACT-1", 0, i64::MAX).unwrap();
            assert!(got.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
            reads += 1;
            if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
        }
        reads
    });
    apply(&store, &records, 0, true);
    store.flush(records.len() as u64).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(handle.join().unwrap() > 0);
    assert_eq!(store.positions("ACT-1", 0, i64::MAX).unwrap().len(), 101);
}

#[test]
fn the_log_feeds_the_store_through_the_pipeline_and_a_restart_catches_up_from_the_log() {
    use tagstream::log::{LogConfig, LogReader, LogWriter};
    use tagstream::model::{Batch, ControlRecord, OrdersFile};
    use tagstream::pipeline::PipelineConfig;
    use tagstream::replay::catch_up_trails;
    use tagstream::rules::RulesConfig;
    use tagstream::store::trails::TrailFeed;
    use tagstream::topology::inline::PipelineDesc;

    let records = fixture_records();
    let t_split = parse_time("2026-03-28T09:00:00Z").unwrap();
    let root = tempfile::tempdir().unwrap();
    let log_dir = root.path().join("log");
    let (mut writer, _) = LogWriter::open(
        &log_dir,
        LogConfig {
            segment_max_bytes: 1_200,
            ..LogConfig::default()
        },
    )
    .unwrap();
    // The log holds its own people and activations: the tag changes activation at 09:00.
    let control = |change: serde_json::Value| -> ControlRecord {
        let mut record = serde_json::json!({"recorded": "2026-03-28T00:00:00Z", "actor": "test"});
        record
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        serde_json::from_value(record).unwrap()
    };
    let changes = [
        serde_json::json!({"op": "put_person", "person": {"id": "P1"}}),
        serde_json::json!({"op": "put_activation", "activation":
            {"id": "ACT-1", "person": "P1", "tag": "T1", "from": "1970-01-01T00:00:00Z",
             "to": "2026-03-28T09:00:00Z"}}),
        serde_json::json!({"op": "put_activation", "activation":
            {"id": "ACT-2", "person": "P1", "tag": "T1", "from": "2026-03-28T09:00:00Z"}}),
    ];
    for change in changes {
        writer.append_control(&control(change)).unwrap();
    }
    for (n, readings) in &records {
        let batch = Batch {
            tag: "T1".into(),
            epoch: 0,
            seq: n + 1,
            arrival_ms: 0,
            readings: readings.clone(),
        };
        writer.append(&batch).unwrap();
    }
    writer.sync().unwrap();
    let log_end = writer.next_record();
    drop(writer);
    assert!(
        LogReader::open(&log_dir).unwrap().segments().len() > 3,
        "want several segments"
    );

    let store_dir = root.path().join("trails");
    let (store, cp) = TrailStore::open(&store_dir, small_chunks()).unwrap();
    assert_eq!(cp, 0);
    // Feed the first 11 records live (3 changes, 8 batches) through the pipeline, which files
    // each position under the activation it resolved; checkpointing; then crash.
    let mut feed = TrailFeed::new(store.clone(), 0, None);
    let mut driver = PipelineDesc {
        start: &OrdersFile::default(),
        pipeline: PipelineConfig::default(),
        rules: RulesConfig::default(),
        partitions: 1,
    }
    .build(&mut feed);
    for item in LogReader::open(&log_dir).unwrap().take(11) {
        let (n, entry) = item.unwrap();
        driver.feed_record(n, &entry, &mut feed);
        feed.checkpoint().unwrap();
    }
    drop((feed, driver, store));
    let (store, cp) = TrailStore::open(&store_dir, small_chunks()).unwrap();
    assert!(cp > 0);
    // The offline commands (and the server's start-up) bring it up to the log the same way.
    assert_eq!(
        catch_up_trails(
            &log_dir,
            &store,
            PipelineConfig::default(),
            &RulesConfig::default()
        )
        .unwrap(),
        log_end
    );
    store.flush(log_end).unwrap();
    let all = reference(&records);
    let one = store.positions("ACT-1", 0, i64::MAX).unwrap();
    let two = store.positions("ACT-2", 0, i64::MAX).unwrap();
    assert_eq!(
        one,
        all.iter()
            .filter(|r| r.t_ms < t_split)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        two,
        all.iter()
            .filter(|r| r.t_ms >= t_split)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(store.activations(), ["ACT-1", "ACT-2"]);
}
