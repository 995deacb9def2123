//! Damage inside the log never costs more than the damaged record: a flipped bit in a record's
//! payload or length field, in the active or a sealed segment, is quarantined (segment copied
//! aside, damage reported) and every other record stays readable with its number; a genuinely
//! torn tail is still cut; `inspect` fails on damage; the server and `tagstream replay` skip
//! exactly the same records, so live still equals replay.

mod common;

use common::{bin, Server};
use proptest::prelude::*;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tagstream::log::{
    summarize, LogConfig, LogReader, LogResult, LogWriter, RecoveryReport, QUARANTINE_DIR,
};
use tagstream::model::{Batch, DeviceEvent, Position, PositionSource, Reading, ReadingBody};

/// A batch whose content is a function of `(tag, seq, count)`.
fn batch(tag: &str, seq: u64, count: usize) -> Batch {
    let base_ms = 1_774_722_600_000 + seq as i64 * 60_000;
    let readings = (0..count)
        .map(|i| Reading {
            t_ms: base_ms + i as i64 * 1000,
            battery_pct: Some(60),
            body: if i % 2 == 0 {
                ReadingBody::Position(Position {
                    lat_e7: 514_545_000 + i as i32,
                    lon_e7: -25_879_000 - seq as i32,
                    precision_cm: 700,
                    source: PositionSource::Gps,
                    speed_ckmh: None,
                    heading_cdeg: Some(1200),
                    satellites: Some(8),
                })
            } else {
                ReadingBody::Event(DeviceEvent::ALL[i % DeviceEvent::ALL.len()])
            },
        })
        .collect();
    Batch {
        tag: tag.to_owned(),
        seq,
        epoch: 0,
        arrival_ms: base_ms + 3_000,
        readings,
    }
}

fn originals(n: u64) -> Vec<Batch> {
    (1..=n)
        .map(|seq| {
            batch(
                &format!("tag-{}", seq % 3),
                seq,
                1 + (seq as usize * 5) % 11,
            )
        })
        .collect()
}

fn write_log(dir: &Path, batches: &[Batch], segment_max_bytes: u64) {
    let config = LogConfig {
        segment_max_bytes,
        ..LogConfig::default()
    };
    let (mut writer, _) = LogWriter::open(dir, config).unwrap();
    for b in batches {
        writer.append(b).unwrap();
    }
    writer.sync().unwrap();
}

fn read_all(dir: &Path) -> Vec<(u64, Batch)> {
    LogReader::open(dir)
        .unwrap()
        .batches()
        .collect::<LogResult<Vec<_>>>()
        .unwrap()
}

/// `(offset, frame length)` of each record of an undamaged segment.
fn frames(segment: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 8;
    let mut out = Vec::new();
    while at < segment.len() {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize + 8;
        out.push((at, len));
        at += len;
    }
    out
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    paths
}

/// Every record but `lost` is read back, each with its original number.
fn assert_all_but(dir: &Path, all: &[Batch], lost: u64) {
    let read = read_all(dir);
    let expected: Vec<(u64, Batch)> = all
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, b)| (i as u64, b))
        .filter(|(i, _)| *i != lost)
        .collect();
    assert_eq!(read, expected);
}

/// Flips `bit` at byte `at` of the one-segment log in `dir`, reopens it, and checks that only
/// record `k` is lost and the damage is quarantined and reported.
fn flip_and_recover(at_in_frame: impl Fn(usize) -> usize, bit: u8) {
    let dir = tempfile::tempdir().unwrap();
    let all = originals(40);
    write_log(dir.path(), &all, 64 << 20);
    let segment = dir.path().join("00000000000000000000.seg");
    let pristine = fs::read(&segment).unwrap();
    let k = 20;
    let (start, len) = frames(&pristine)[k];
    let mut damaged = pristine.clone();
    damaged[start + at_in_frame(len)] ^= bit;
    fs::write(&segment, &damaged).unwrap();

    let (mut writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.records, 39, "{report:?}");
    assert_eq!(report.records_lost, 1);
    assert_eq!((report.truncated_bytes, &report.torn_tail), (0, &None));
    assert_eq!(report.damage.len(), 1, "{report:?}");
    let d = &report.damage[0];
    assert_eq!(
        (d.segment.as_str(), d.start, d.end, d.first_record),
        (
            "00000000000000000000.seg",
            start as u64,
            (start + len) as u64,
            k as u64
        )
    );
    // The original bytes are kept aside, with a durable report naming the damage.
    assert_eq!(
        fs::read(dir.path().join(&d.quarantine_file)).unwrap(),
        damaged
    );
    let stored: serde_json::Value = serde_json::from_slice(
        &fs::read(dir.path().join(format!("{}.json", d.quarantine_file))).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["damage"][0]["start"], start as u64);
    assert_eq!(stored["damage"][0]["records_lost"], 1);
    assert_eq!(fs::read(&segment).unwrap(), damaged, "nothing cut");
    assert_all_but(dir.path(), &all, k as u64);

    // Appends continue after the damage with the next number; a reopen agrees.
    let extra = batch("tag-new", 1, 3);
    assert_eq!(writer.append(&extra).unwrap(), 40);
    writer.sync().unwrap();
    drop(writer);
    let (_, again) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((again.records, again.records_lost), (40, 1));
    let mut with_extra = all.clone();
    with_extra.push(extra);
    assert_all_but(dir.path(), &with_extra, k as u64);
}

#[test]
fn a_flipped_bit_in_a_payload_mid_segment_loses_only_that_record() {
    flip_and_recover(|len| len / 2, 0x08);
    flip_and_recover(|_| 8, 0x01); // the record type byte
    flip_and_recover(|_| 5, 0x80); // the checksum
}

#[test]
fn a_flipped_bit_in_a_length_field_mid_segment_loses_only_that_record() {
    flip_and_recover(|_| 0, 0x01); // a little shorter
    flip_and_recover(|_| 0, 0x80); // longer, into the next records
    flip_and_recover(|_| 1, 0x10); // 4 KiB longer
    flip_and_recover(|_| 3, 0x80); // past the largest valid length
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_loses_only_that_record_and_numbering_holds() {
    let dir = tempfile::tempdir().unwrap();
    let all = originals(60);
    write_log(dir.path(), &all, 1_500);
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 5, "{segments:?}");
    let sealed = &segments[2];
    let first_record: u64 = sealed
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let pristine = fs::read(sealed).unwrap();
    let layout = frames(&pristine);
    let (i, (start, len)) = (layout.len() - 1, layout[layout.len() - 1]);
    let mut damaged = pristine.clone();
    damaged[start + 2] ^= 0x04; // the last record's length field: no record after it here
    fs::write(sealed, &damaged).unwrap();
    let (_, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((report.records, report.records_lost), (59, 1), "{report:?}");
    let d = &report.damage[0];
    assert_eq!(
        (d.start, d.end, d.first_record),
        (start as u64, (start + len) as u64, first_record + i as u64)
    );
    assert!(dir.path().join(&d.quarantine_file).is_file());
    assert_all_but(dir.path(), &all, first_record + i as u64);
}

#[test]
fn a_torn_tail_is_still_cut_with_nothing_else_lost() {
    let dir = tempfile::tempdir().unwrap();
    let all = originals(12);
    write_log(dir.path(), &all, 64 << 20);
    let segment = dir.path().join("00000000000000000000.seg");
    let pristine = fs::read(&segment).unwrap();
    let layout = frames(&pristine);
    let (k, _) = layout[4];
    let (last, last_len) = layout[11];
    let mut torn = pristine[..last + last_len / 2].to_vec();
    torn[k + 12] ^= 0x02; // and one damaged record earlier on
    fs::write(&segment, &torn).unwrap();
    let (_, report): (_, RecoveryReport) =
        LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.truncated_bytes, (last_len / 2) as u64);
    assert_eq!(report.truncated_records, 0);
    assert_eq!(
        report.torn_tail.as_ref().map(|t| t.offset),
        Some(last as u64)
    );
    assert_eq!((report.records, report.records_lost), (10, 1));
    assert_eq!(fs::metadata(&segment).unwrap().len(), last as u64);
    // The quarantine copy holds the bytes as found, torn tail included.
    let copy = dir.path().join(&report.damage[0].quarantine_file);
    assert_eq!(fs::read(copy).unwrap(), torn);
    let read = read_all(dir.path());
    let expected: Vec<(u64, Batch)> = all
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, b)| (i as u64, b))
        .filter(|(i, _)| *i != 4 && *i != 11)
        .collect();
    assert_eq!(read, expected);

    // A torn tail alone: cut, nothing quarantined.
    let clean = tempfile::tempdir().unwrap();
    write_log(clean.path(), &all, 64 << 20);
    let segment = clean.path().join("00000000000000000000.seg");
    fs::write(&segment, &pristine[..pristine.len() - 3]).unwrap();
    let (_, report) = LogWriter::open(clean.path(), LogConfig::default()).unwrap();
    assert_eq!((report.records, report.records_lost), (11, 0));
    assert_eq!(report.truncated_bytes, (last_len - 3) as u64);
    assert!(report.damage.is_empty());
    assert!(!clean.path().join(QUARANTINE_DIR).exists());
}

#[test]
fn a_damaged_last_record_is_cut_as_a_torn_tail_but_its_bytes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let all = originals(10);
    write_log(dir.path(), &all, 64 << 20);
    let segment = dir.path().join("00000000000000000000.seg");
    let mut bytes = fs::read(&segment).unwrap();
    let (last, last_len) = frames(&bytes)[9];
    bytes[last + last_len - 2] ^= 0x10;
    fs::write(&segment, &bytes).unwrap();
    let (_, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((report.records, report.records_lost), (9, 0));
    let tail = report.torn_tail.expect("cut as a torn tail");
    assert_eq!(tail.offset, last as u64);
    let copy = tail.quarantine_file.expect("kept aside");
    assert_eq!(fs::read(dir.path().join(copy)).unwrap(), bytes);
    assert_eq!(fs::metadata(&segment).unwrap().len(), last as u64);
    assert_all_but(dir.path(), &all[..9], u64::MAX);
}

#[test]
fn a_damaged_segment_header_costs_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let all = originals(60);
    write_log(dir.path(), &all, 1_500);
    let segments = segment_paths(dir.path());
    // A flipped bit in a sealed segment's header, a zeroed header on the active one (which
    // used to be taken for a segment whose creation never reached the disk, and emptied).
    let sealed = &segments[1];
    let mut sealed_bytes = fs::read(sealed).unwrap();
    sealed_bytes[3] ^= 0x04;
    fs::write(sealed, &sealed_bytes).unwrap();
    let active = segments.last().unwrap();
    let mut active_bytes = fs::read(active).unwrap();
    active_bytes[..8].fill(0);
    fs::write(active, &active_bytes).unwrap();

    let (_, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((report.records, report.records_lost), (60, 0), "{report:?}");
    assert_eq!(report.damage.len(), 2, "{report:?}");
    assert!(report.damage.iter().all(|d| (d.start, d.end) == (0, 8)));
    assert!(report.torn_tail.is_none());
    assert_eq!(fs::read(active).unwrap(), active_bytes, "not emptied");
    assert_all_but(dir.path(), &all, u64::MAX);
}

fn inspect(data_dir: &Path) -> (bool, serde_json::Value, String) {
    let out = Command::new(bin())
        .args(["inspect", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_reports_damage_and_exits_non_zero_and_exits_zero_on_a_clean_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let all = originals(30);
    write_log(&log, &all, 64 << 20);
    let (ok, json, stderr) = inspect(dir.path());
    assert!(ok, "{stderr}");
    assert_eq!(json["log"]["records"], 30);
    assert_eq!(json["log"]["records_lost"], 0);

    let segment = log.join("00000000000000000000.seg");
    let mut bytes = fs::read(&segment).unwrap();
    let (start, len) = frames(&bytes)[7];
    bytes[start + len - 1] ^= 0x20;
    fs::write(&segment, &bytes).unwrap();
    let (ok, json, stderr) = inspect(dir.path());
    assert!(!ok, "inspect must fail on damage: {json}");
    assert!(stderr.contains("damaged"), "{stderr}");
    assert_eq!(json["log"]["records"], 29);
    assert_eq!(json["log"]["records_lost"], 1);
    let d = &json["log"]["damage"][0];
    assert_eq!(d["segment"], "00000000000000000000.seg");
    assert_eq!(d["start"], start as u64);
    assert_eq!(d["end"], (start + len) as u64);
    assert_eq!(d["first_record"], 7);
    assert!(d["reason"].as_str().unwrap().contains("checksum"), "{d}");
    // Read-only: nothing copied or cut.
    assert_eq!(fs::read(&segment).unwrap(), bytes);
    assert!(!log.join(QUARANTINE_DIR).exists());
    let summary = summarize(&log).unwrap();
    assert_eq!(summary.segments[0].records, 29);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// A bit flipped anywhere in a segment of a multi-segment log: after recovery every record
    /// not containing it is read back, with its number.
    #[test]
    fn a_random_flipped_bit_costs_only_the_record_holding_it(
        segment_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let all = originals(48);
        write_log(dir.path(), &all, 4_000);
        let segments = segment_paths(dir.path());
        let i = segment_pick.index(segments.len());
        let path = &segments[i];
        let first_record: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let mut bytes = fs::read(path).unwrap();
        let layout = frames(&bytes);
        // Bytes 0..8 are the segment header: no record holds them, none may be lost.
        let at = byte_pick.index(bytes.len());
        let holder = layout.iter().position(|(s, l)| at >= *s && at < s + l);
        bytes[at] ^= 1 << bit;
        fs::write(path, &bytes).unwrap();

        let (writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        drop(writer);
        let lost = holder.map_or(u64::MAX, |h| first_record + h as u64);
        let read = read_all(dir.path());
        let expected: Vec<(u64, Batch)> = all
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, b)| (i as u64, b))
            .filter(|(i, _)| *i != lost)
            .collect();
        prop_assert_eq!(read, expected, "flip at {} of {:?}: {:?}", at, path, report);
        // Either quarantined as damage, or (the active segment's last record) cut as a torn tail.
        let quarantined = report
            .damage
            .iter()
            .any(|d| d.first_record == lost && d.records_lost == 1);
        prop_assert!(holder.is_none() || quarantined || report.torn_tail.is_some(), "{:?}", report);
    }
}

// --- the server and `tagstream replay` over a damaged data directory -------------------------

fn replay(readings: &Path, out: &Path) -> (String, String) {
    let result = Command::new(bin())
        .args(["replay", "--orders"])
        .arg(common::fixture("orders.json"))
        .arg("--readings")
        .arg(readings)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "{stderr}");
    (
        fs::read_to_string(out.join("alerts.jsonl")).unwrap(),
        stderr,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_and_replay_skip_exactly_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Some(&common::fixture("orders.json")), &[]);
    common::stream_health_fixture(&server).await;
    assert!(!server.settled_alerts().is_empty());
    server.kill9();
    drop(server);

    // Damage one record in the middle of the (active) segment: its length field.
    let log = data.join("log");
    // Every record, the start-up import's control records included; the victim is a batch.
    let stored: Vec<_> = LogReader::open(&log)
        .unwrap()
        .collect::<LogResult<Vec<_>>>()
        .unwrap();
    let segment = log.join("00000000000000000000.seg");
    let mut bytes = fs::read(&segment).unwrap();
    let layout = frames(&bytes);
    assert_eq!(layout.len(), stored.len());
    let k = (layout.len() / 2..layout.len())
        .find(|&i| stored[i].1.batch().is_some())
        .unwrap();
    let victim = stored[k].1.batch().unwrap().as_ref().clone();
    bytes[layout[k].0 + 1] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    let server = Server::start(&data, Some(&common::fixture("orders.json")), &[]);
    let live = server.settled_alerts();
    let metrics = server.get("/metrics").unwrap();
    assert!(
        metrics.contains("tagstream_log_records_lost_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("tagstream_log_damaged_ranges_total 1\n"));
    let quarantined = fs::read_dir(log.join(QUARANTINE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<HashSet<_>>();
    assert!(
        quarantined.contains("00000000000000000000.seg.1")
            && quarantined.contains("00000000000000000000.seg.1.json"),
        "{quarantined:?}"
    );
    // Every other record is still served: the live alerts are those of the recorded input
    // without the damaged batch.
    let fixture = fs::read_to_string(common::fixture("readings.jsonl")).unwrap();
    let without: String = fixture
        .lines()
        .filter(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            !(v["tag"] == victim.tag.as_str() && v["batch"] == victim.seq)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let without_path = dir.path().join("without.jsonl");
    fs::write(&without_path, without).unwrap();
    let (expected, _) = replay(&without_path, &dir.path().join("out-expected"));
    assert_eq!(
        live, expected,
        "the server lost more than the damaged batch"
    );
    let (from_log, stderr) = replay(&data, &dir.path().join("out-log"));
    assert_eq!(live, from_log, "live and replay of the damaged log differ");
    assert!(
        stderr.contains("log damage in 00000000000000000000.seg")
            && stderr.contains("1 record(s) lost"),
        "{stderr}"
    );
    let (ok, json, _) = inspect(&data);
    assert!(!ok);
    assert_eq!(json["log"]["records_lost"], 1);
    assert_eq!(json["log"]["records"], stored.len() as u64 - 1);
}
