//! Durability of the log: round trips across reopen, torn tails cut at every byte, damage in sealed
//! segments, group commit with deduplication, and kill -9 of a process mid-stream losing no
//! acknowledged batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tagstream::log::{
    summarize, AppendOutcome, CommitHandle, GroupCommitter, LogConfig, LogError, LogReader,
    LogResult, LogWriter,
};
use tagstream::model::{
    Batch, DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample,
};
use tokio::sync::mpsc;

/// A batch whose content is a function of `(tag, seq, count)`, so readers can check it.
fn batch(tag: &str, seq: u64, count: usize) -> Batch {
    let base_ms = 1_774_722_600_000 + seq as i64 * 60_000;
    let readings = (0..count)
        .map(|i| {
            let body = match (i + seq as usize) % 4 {
                0 => ReadingBody::Position(Position {
                    lat_e7: 514_545_000 + i as i32,
                    lon_e7: -25_879_000 - (seq % 1000) as i32,
                    precision_cm: 500 + i as u32,
                    source: PositionSource::Gps,
                    speed_ckmh: None,
                    heading_cdeg: Some(9000),
                    satellites: Some(7),
                }),
                1 => ReadingBody::Tac(TacSample {
                    tac_ugdl: 20_000 + i as i32,
                    ir_uv: 1_500_000,
                    temp_mc: 33_000,
                }),
                2 => ReadingBody::Rf {
                    in_range: i % 2 == 0,
                },
                _ => ReadingBody::Event(DeviceEvent::ALL[i % DeviceEvent::ALL.len()]),
            };
            Reading {
                t_ms: base_ms + i as i64 * 1000,
                battery_pct: if i % 3 == 0 { None } else { Some(55) },
                body,
            }
        })
        .collect();
    Batch {
        tag: tag.to_owned(),
        epoch: 0,
        seq,
        arrival_ms: base_ms + 7_000,
        readings,
    }
}

/// Readings per batch used by the kill -9 child: a function of the seq so it can be rebuilt.
fn child_count(seq: u64) -> usize {
    1 + (seq as usize * 7) % 40
}

fn read_all(dir: &Path) -> Vec<(u64, Batch)> {
    LogReader::open(dir)
        .unwrap()
        .batches()
        .collect::<LogResult<Vec<_>>>()
        .unwrap()
}

fn small_segments(segment_max_bytes: u64) -> LogConfig {
    LogConfig {
        segment_max_bytes,
        ..LogConfig::default()
    }
}

/// A tiny xorshift generator: enough randomness for offsets and kill times, no dependency.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn append_sync_reopen_returns_every_batch_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for session in 0..3u64 {
        let (mut writer, report) = LogWriter::open(dir.path(), small_segments(2_048)).unwrap();
        assert_eq!(report.records, expected.len() as u64);
        for i in 0..25u64 {
            let seq = session * 100 + i + 1;
            let b = batch(&format!("tag-{}", i % 3), seq, (i % 9) as usize);
            assert_eq!(writer.append(&b).unwrap(), expected.len() as u64);
            expected.push(b);
        }
        writer.sync().unwrap();
    }
    let read = read_all(dir.path());
    assert_eq!(read.len(), expected.len());
    for (i, ((record, got), want)) in read.iter().zip(&expected).enumerate() {
        assert_eq!(*record, i as u64);
        assert_eq!(got, want);
    }
    let summary = summarize(dir.path()).unwrap();
    assert!(summary.segments.len() > 3, "{:?}", summary.segments);
    assert_eq!(summary.records, 75);
    assert_eq!(summary.segments.iter().map(|s| s.records).sum::<u64>(), 75);
    let readings: usize = expected.iter().map(|b| b.readings.len()).sum();
    assert_eq!(summary.readings.total(), readings as u64);
    assert_eq!(summary.distinct_tags, 3);
    assert_eq!(summary.last_seq_by_tag.get("tag-0"), Some(&225));
    assert!(summary.torn_tail.is_none());
    serde_json::to_string(&summary).unwrap();
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record_is_cut_and_appending_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // Frames of 6 readings with a 5-byte tag are 8 + 22 + 5 + 192 = 227 bytes: two per segment.
    let frame_len = 227u64;
    let config = small_segments(8 + 2 * frame_len + 1);
    let originals: Vec<Batch> = (1..=6).map(|seq| batch("tag-x", seq, 6)).collect();
    {
        let (mut writer, _) = LogWriter::open(dir.path(), config.clone()).unwrap();
        for b in &originals {
            writer.append(b).unwrap();
        }
        writer.sync().unwrap();
    }
    let last_segment = dir.path().join("00000000000000000004.seg");
    let pristine = fs::read(&last_segment).unwrap();
    assert_eq!(pristine.len() as u64, 8 + 2 * frame_len);
    let last_record_start = pristine.len() - frame_len as usize;
    // A fixed seed: the garbage is arbitrary but the run is reproducible.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let garbage: Vec<u8> = (0..61).map(|_| rng.next() as u8).collect();

    for cut in last_record_start..pristine.len() {
        for garbage_len in [0, garbage.len()] {
            let mut damaged = pristine[..cut].to_vec();
            damaged.extend_from_slice(&garbage[..garbage_len]);
            fs::write(&last_segment, &damaged).unwrap();
            let expected_dropped = (cut - last_record_start + garbage_len) as u64;

            let (mut writer, report) = LogWriter::open(dir.path(), config.clone()).unwrap();
            assert_eq!(report.records, 5, "cut at {cut} + {garbage_len} garbage");
            assert_eq!(report.truncated_bytes, expected_dropped, "cut at {cut}");
            assert_eq!(report.truncated_records, 0, "cut at {cut}");
            assert_eq!(report.torn_tail.is_some(), expected_dropped > 0);
            assert_eq!(report.last_seq_by_tag.get("tag-x"), Some(&5));
            assert_eq!(
                fs::metadata(&last_segment).unwrap().len(),
                last_record_start as u64
            );
            let replacement = batch("tag-y", 1_000 + cut as u64, 2);
            assert_eq!(writer.append(&replacement).unwrap(), 5);
            writer.sync().unwrap();
            drop(writer);

            let read = read_all(dir.path());
            assert_eq!(read.len(), 6);
            for (i, (_, b)) in read.iter().take(5).enumerate() {
                assert_eq!(*b, originals[i]);
            }
            assert_eq!(read[5], (5, replacement));
        }
    }
}

#[test]
fn reader_stops_cleanly_at_a_torn_tail_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut writer, _) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        for seq in 1..=3 {
            writer.append(&batch("tag-r", seq, 3)).unwrap();
        }
        writer.sync().unwrap();
    }
    let path = dir.path().join("00000000000000000000.seg");
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut reader = LogReader::open(dir.path()).unwrap();
    let read: Vec<_> = reader.by_ref().collect::<LogResult<_>>().unwrap();
    assert_eq!(read.len(), 2);
    let tail = reader.torn_tail().expect("torn tail reported");
    assert_eq!(tail.offset, 8 + 2 * (len - 8) / 3);
    assert_eq!(tail.bytes(), (len - 8) / 3 - 10);
    let summary = summarize(dir.path()).unwrap();
    assert_eq!(summary.records, 2);
    assert_eq!(summary.torn_tail.map(|t| t.bytes), Some((len - 8) / 3 - 10));
    // Reading and summarizing never modify the log.
    assert_eq!(fs::metadata(&path).unwrap().len(), len - 10);
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_costs_only_that_record_and_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Batch> = (1..=10).map(|seq| batch("tag-s", seq, 4)).collect();
    {
        let (mut writer, _) = LogWriter::open(dir.path(), small_segments(600)).unwrap();
        for b in &written {
            writer.append(b).unwrap();
        }
        writer.sync().unwrap();
    }
    let segments = summarize(dir.path()).unwrap().segments;
    assert!(segments.len() >= 3);
    let sealed = dir.path().join(&segments[1].name);
    let pristine = fs::read(&sealed).unwrap();
    let frame_len = (pristine.len() - 8) / segments[1].records as usize;
    for (flip_at, frame_start) in [(8 + 40, 8), (8 + frame_len + 3, 8 + frame_len)] {
        let mut damaged = pristine.clone();
        damaged[flip_at] ^= 0x01;
        fs::write(&sealed, &damaged).unwrap();
        // Readers skip the damaged record, report it, and read everything after it.
        let mut batches = LogReader::open(dir.path()).unwrap().batches();
        let read: Vec<(u64, Batch)> = batches.by_ref().collect::<LogResult<_>>().unwrap();
        let reader = batches.reader();
        let lost = segments[0].records + (frame_start as u64 - 8) / frame_len as u64;
        let expected: Vec<(u64, Batch)> = written
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, b)| (i as u64, b))
            .filter(|(i, _)| *i != lost)
            .collect();
        assert_eq!(read, expected);
        let damage = reader.damage();
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].segment.path, sealed);
        assert_eq!(
            (damage[0].start, damage[0].end, damage[0].first_record),
            (frame_start as u64, (frame_start + frame_len) as u64, lost)
        );
        // Recovery quarantines the segment and changes nothing in the log.
        let (_, report) = LogWriter::open(dir.path(), small_segments(600)).unwrap();
        assert_eq!(report.damage[0].segment, segments[1].name);
        assert_eq!(report.damage[0].start, frame_start as u64);
        assert_eq!(report.records_lost, 1);
        assert_eq!(fs::read(&sealed).unwrap(), damaged);
        let copy = dir.path().join(&report.damage[0].quarantine_file);
        assert_eq!(fs::read(copy).unwrap(), damaged);
    }
}

/// Spawns a committer on a fresh writer for `dir` and a task collecting what it forwards.
fn start_committer(
    dir: &Path,
) -> (
    CommitHandle,
    tokio::task::JoinHandle<Vec<Arc<Batch>>>,
    HashMap<String, u64>,
) {
    let (writer, report) = LogWriter::open(dir, LogConfig::default()).unwrap();
    let (committed_tx, mut committed_rx) = mpsc::channel(16);
    let handle =
        GroupCommitter::spawn(writer, report.last_seq_by_tag.clone(), committed_tx).unwrap();
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(group) = committed_rx.recv().await {
            let group: Vec<tagstream::model::LogEntry> = group;
            all.extend(group.iter().filter_map(|e| e.batch().cloned()));
        }
        all
    });
    (handle, collector, report.last_seq_by_tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_and_forwarded_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, collector, _) = start_committer(dir.path());
    let tasks = 32u64;
    let per_task = 20u64;
    let mut joins = Vec::new();
    for t in 0..tasks {
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            let tag = format!("tag-{t:03}");
            let mut records = Vec::new();
            for seq in 1..=per_task {
                match handle.append(batch(&tag, seq, 5)).await.unwrap() {
                    AppendOutcome::Stored { record } => records.push(record),
                    AppendOutcome::Duplicate => panic!("{tag} {seq} is not a duplicate"),
                }
            }
            records
        }));
    }
    let mut all_records = Vec::new();
    for join in joins {
        let records = join.await.unwrap();
        assert!(records.windows(2).all(|w| w[0] < w[1]), "{records:?}");
        all_records.extend(records);
    }
    all_records.sort_unstable();
    assert_eq!(all_records, (0..tasks * per_task).collect::<Vec<_>>());

    let stats = handle.stats();
    assert_eq!(stats.stored, tasks * per_task);
    assert_eq!(stats.readings_stored, tasks * per_task * 5);
    assert!(
        stats.syncs < stats.stored,
        "group commit should share syncs: {stats:?}"
    );
    assert!(stats.groups <= stats.syncs);
    assert_eq!(handle.last_seq("tag-007"), per_task);
    assert_eq!(handle.last_seq("no-such-tag"), 0);

    drop(handle);
    let forwarded = collector.await.unwrap();
    let logged = read_all(dir.path());
    assert_eq!(forwarded.len(), logged.len());
    for (sent, (_, stored)) in forwarded.iter().zip(&logged) {
        assert_eq!(**sent, *stored);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_acknowledged_but_written_once_and_dedup_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, collector, _) = start_committer(dir.path());
    // Eight concurrent sends of the same batch: exactly one is stored.
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.append(batch("tag-d", 1, 3)).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for send in sends {
        outcomes.push(send.await.unwrap());
    }
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, AppendOutcome::Stored { .. }))
        .count();
    assert_eq!(stored, 1, "{outcomes:?}");
    assert_eq!(
        handle.append(batch("tag-d", 2, 3)).await.unwrap(),
        AppendOutcome::Stored { record: 1 }
    );
    // An older seq than the last stored is a duplicate too.
    assert_eq!(
        handle.append(batch("tag-d", 1, 3)).await.unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(handle.stats().duplicates, 8);
    drop(handle);
    assert_eq!(collector.await.unwrap().len(), 2);

    let (handle, collector, recovered) = start_committer(dir.path());
    assert_eq!(recovered.get("tag-d"), Some(&2));
    assert_eq!(handle.last_seq("tag-d"), 2);
    assert_eq!(
        handle.append(batch("tag-d", 2, 3)).await.unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(
        handle.append(batch("tag-d", 3, 3)).await.unwrap(),
        AppendOutcome::Stored { record: 2 }
    );
    drop(handle);
    assert_eq!(collector.await.unwrap().len(), 1);
    let seqs: Vec<u64> = read_all(dir.path()).iter().map(|(_, b)| b.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstorable_batch_is_refused_without_harming_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, collector, _) = start_committer(dir.path());
    let mut bad = batch("t", 1, 1);
    bad.tag = String::new();
    assert!(matches!(
        handle.append(bad).await,
        Err(LogError::BadTag { len_bytes: 0 })
    ));
    assert!(!handle.is_poisoned());
    assert_eq!(
        handle.append(batch("t", 1, 1)).await.unwrap(),
        AppendOutcome::Stored { record: 0 }
    );
    drop(handle);
    collector.await.unwrap();
}

const KILL9_CHILD_DIR: &str = "TAGSTREAM_KILL9_CHILD_DIR";
const KILL9_CHILD_TAGS: usize = 12;

/// The child side of the kill -9 test: appends forever and prints each acknowledged batch.
/// Does nothing unless the parent test started this binary with the environment variable set.
#[test]
fn kill9_child() {
    let Some(dir) = std::env::var_os(KILL9_CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (writer, report) = LogWriter::open(Path::new(&dir), small_segments(64 * 1024)).unwrap();
        let (committed_tx, mut committed_rx) = mpsc::channel(4);
        let handle =
            GroupCommitter::spawn(writer, report.last_seq_by_tag.clone(), committed_tx).unwrap();
        tokio::spawn(async move { while committed_rx.recv().await.is_some() {} });
        let mut tasks = Vec::new();
        for t in 0..KILL9_CHILD_TAGS {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                let tag = format!("kill9-{t:02}");
                let mut seq = handle.last_seq(&tag);
                loop {
                    seq += 1;
                    let outcome = handle.append(batch(&tag, seq, child_count(seq))).await;
                    match outcome {
                        Ok(AppendOutcome::Stored { .. }) => println!("ACK {tag} {seq}"),
                        other => panic!("{tag} {seq}: {other:?}"),
                    }
                    if seq % 5 == 4 {
                        // A resend, as after a lost ack: acknowledged, not stored again.
                        let again = handle.append(batch(&tag, seq, child_count(seq))).await;
                        assert!(matches!(again, Ok(AppendOutcome::Duplicate)), "{again:?}");
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn kill9_at_a_random_moment_loses_no_acknowledged_batch() {
    if std::env::var_os(KILL9_CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_acks = 0usize;
    let started = Instant::now();
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args(["--exact", "kill9_child", "--nocapture", "--test-threads=1"])
            .env(KILL9_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
        let lines = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                // Only whole lines count: a line cut by the kill was never fully printed.
                // libtest prints "test kill9_child ... " without a newline before the first ack.
                let text = line.trim_start_matches("test kill9_child ... ");
                if line.ends_with('\n')
                    && text.starts_with("ACK ")
                    && line_tx.send(text.to_owned()).is_err()
                {
                    break;
                }
                line.clear();
            }
        });
        let first = line_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the child acknowledges something");
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        lines.join().unwrap();
        let mut round_acks = vec![first];
        round_acks.extend(line_rx.try_iter());
        total_acks += round_acks.len();
        for line in &round_acks {
            let mut parts = line.split_whitespace().skip(1);
            let (Some(tag), Some(seq)) = (parts.next(), parts.next()) else {
                panic!("bad line {line:?}");
            };
            let seq: u64 = seq.parse().unwrap();
            let last = acked.entry(tag.to_owned()).or_insert(0);
            *last = (*last).max(seq);
        }

        eprintln!(
            "kill -9 round {round}: {} acknowledged before the kill",
            round_acks.len()
        );
        // Recover exactly as the server would, then check every acknowledged batch is there.
        let (writer, report) = LogWriter::open(dir.path(), small_segments(64 * 1024))
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen failed: {e}"));
        drop(writer);
        eprintln!(
            "  recovered {} records, cut {} bytes ({} intact records)",
            report.records, report.truncated_bytes, report.truncated_records
        );
        let mut seen: HashSet<(String, u64)> = HashSet::new();
        for (_, b) in read_all(dir.path()) {
            assert_eq!(
                b,
                batch(&b.tag, b.seq, child_count(b.seq)),
                "content of {} {}",
                b.tag,
                b.seq
            );
            assert!(
                seen.insert((b.tag.clone(), b.seq)),
                "{} {} stored twice",
                b.tag,
                b.seq
            );
        }
        for (tag, last) in &acked {
            // Each tag's seqs are stored 1..=n without gaps, so the last acked seq implies all.
            for seq in 1..=*last {
                assert!(
                    seen.contains(&(tag.clone(), seq)),
                    "round {round} (seed {seed}): acknowledged {tag} {seq} lost; report {report:?}"
                );
            }
            assert!(report.last_seq_by_tag.get(tag).is_some_and(|s| s >= last));
        }
    }
    assert!(total_acks > 0);
    assert!(started.elapsed() < Duration::from_secs(60));
}

const IO_ERROR_CHILD_DIR: &str = "TAGSTREAM_IO_ERROR_CHILD_DIR";

/// The child side of the I/O error test: runs under a small file-size limit (`ulimit -f`, with
/// SIGXFSZ ignored so an oversized write fails with EFBIG) and appends until the log refuses.
#[test]
fn io_error_child() {
    let Some(dir) = std::env::var_os(IO_ERROR_CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (writer, report) = LogWriter::open(Path::new(&dir), LogConfig::default()).unwrap();
        let (committed_tx, mut committed_rx) = mpsc::channel(4);
        let handle = GroupCommitter::spawn(writer, report.last_seq_by_tag, committed_tx).unwrap();
        tokio::spawn(async move { while committed_rx.recv().await.is_some() {} });
        for seq in 1..=10_000u64 {
            match handle.append(batch("tag-io", seq, 40)).await {
                Ok(AppendOutcome::Stored { .. }) => println!("OK {seq}"),
                Ok(AppendOutcome::Duplicate) => println!("DUP {seq}"),
                Err(LogError::Io { op, .. }) => println!("IO {seq} {op}"),
                Err(LogError::Poisoned(_)) => {
                    println!("POISONED {seq}");
                    break;
                }
                Err(other) => println!("OTHER {seq} {other}"),
            }
        }
    });
}

#[test]
fn an_io_error_is_never_acknowledged_and_poisons_the_committer() {
    if std::env::var_os(IO_ERROR_CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // 128 blocks of 512 bytes (dash) or 1 KiB (bash): a segment of 64 or 128 KiB at most.
    let output = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 128; exec \"$0\" --exact io_error_child --nocapture --test-threads=1")
        .arg(&exe)
        .env(IO_ERROR_CHILD_DIR, dir.path())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // libtest prints "test io_error_child ... " without a newline before the first result.
    let lines: Vec<&str> = stdout
        .lines()
        .map(|l| l.trim_start_matches("test io_error_child ... "))
        .filter(|l| {
            ["OK ", "IO ", "POISONED ", "DUP ", "OTHER "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    let oks = lines.iter().take_while(|l| l.starts_with("OK ")).count();
    assert!(oks > 10, "{lines:?}");
    assert!(lines[oks].starts_with("IO "), "{lines:?}");
    assert!(lines[oks + 1].starts_with("POISONED "), "{lines:?}");
    assert_eq!(lines.len(), oks + 2, "{lines:?}");

    // Without the limit the log reopens with every acknowledged batch and nothing after it.
    let (_, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.last_seq_by_tag.get("tag-io"), Some(&(oks as u64)));
    let read = read_all(dir.path());
    assert_eq!(read.len(), oks);
    for (i, (_, b)) in read.iter().enumerate() {
        assert_eq!(*b, batch("tag-io", i as u64 + 1, 40));
    }
}
