//! Pipeline snapshots (issue 15): a driver snapshotted after record k, restored into a fresh
//! driver and fed the rest must give exactly the outputs (and the final state) of a driver fed
//! the whole log without interruption, for every k sampled. The input exercises every rule and
//! every piece of pipeline state: curfew by GPS and by RF (AL08–AL12), an exclusion zone, strap
//! tamper, battery, home-unit power, no contact, alcohol (a drinking episode and sober days),
//! readings held back by the reorder window, a store-and-forward backlog processed late, a
//! device clock ahead (held readings), a reading far ahead of its arrival, a backdated order
//! variation (re-evaluation and amendments), an activation ended and a tag swap whose new tag
//! reported before its activation existed (unassigned readings).

mod common;

use std::f64::consts::FRAC_PI_2;
use std::sync::Arc;
use tagstream::formats::orders_file::parse_orders;
use tagstream::model::{
    Batch, ControlRecord, DeviceEvent, LogEntry, OrdersFile, Reading, ReadingBody, TacSample,
    TimeMs,
};
use tagstream::orders::OrderBook;
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::snapshot::SnapshotError;
use tagstream::pipeline::{Output, PipelineConfig, Provenance, RuleFactory, Sink};
use tagstream::rules::{RulesConfig, StandardRules};

/// Monday 2 March 2026, 00:00 UTC (GMT: UK local time is UTC).
const T0: TimeMs = 1_772_409_600_000;
const MIN: TimeMs = 60_000;
const HOUR: TimeMs = 60 * MIN;
const DAY: TimeMs = 24 * HOUR;
const DAYS: TimeMs = 3;
const PARTITIONS: usize = 3;

const HOME1: (f64, f64) = (51.4545, -2.5879);
/// About 1.1 km north of HOME1, inside the exclusion zone.
const TOWN: (f64, f64) = (51.4645, -2.5879);
const HOME4: (f64, f64) = (51.4700, -2.5500);
const HOME6: (f64, f64) = (51.4300, -2.5700);

fn config() -> PipelineConfig {
    PipelineConfig {
        // Readings wait 10 minutes to be put in order: at every record some are in the buffers.
        reorder_ms: 10 * MIN,
        ..PipelineConfig::default()
    }
}

/// [`config`] with a clock per partition of tags (`clock_partitions`): each clock's state and
/// each partition's deadline heaps per clock must survive a snapshot too.
fn config_with_clocks(clock_partitions: u32) -> PipelineConfig {
    PipelineConfig {
        clock_partitions,
        ..config()
    }
}

const ORDERS: &str = r#"{
  "people": [{"id":"P1"},{"id":"P2"},{"id":"P3"},{"id":"P4"},{"id":"P5"}],
  "activations": [
    {"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z"},
    {"id":"A2","person":"P2","tag":"T2","from":"2026-03-01T00:00:00Z"},
    {"id":"A3","person":"P3","tag":"T3","from":"2026-03-01T00:00:00Z"},
    {"id":"A4","person":"P4","tag":"T4","from":"2026-03-01T00:00:00Z"},
    {"id":"A6","person":"P5","tag":"T6","from":"2026-03-01T00:00:00Z"}
  ],
  "orders": [
    {"id":"O1","person":"P1","from":"2026-03-01","conditions":[
      {"type":"curfew","grace_min":0,
       "addresses":[{"id":"home","lat":51.4545,"lon":-2.5879,"radius_m":60}],
       "timetable":[{"days":["mon","tue","wed","thu","fri","sat","sun"],
                     "start":"19:00","end":"07:00","address":"home"}]},
      {"type":"exclusion_zone","id":"Z1","name":"town",
       "geometry":{"type":"Point","coordinates":[-2.5879,51.4645]},"radius_m":250},
      {"type":"trail"}]},
    {"id":"O2","person":"P2","from":"2026-03-01","conditions":[
      {"type":"curfew","grace_min":5,
       "addresses":[{"id":"home","lat":51.44,"lon":-2.6,"radius_m":60}],
       "timetable":[{"days":["mon","tue","wed","thu","fri","sat","sun"],
                     "start":"19:00","end":"07:00","address":"home"}]}]},
    {"id":"O3","person":"P3","from":"2026-03-01","conditions":[
      {"type":"alcohol","mode":"abstinence"}]},
    {"id":"O4","person":"P4","from":"2026-03-01","conditions":[
      {"type":"curfew","grace_min":0,
       "addresses":[{"id":"home","lat":51.47,"lon":-2.55,"radius_m":60}],
       "timetable":[{"days":["mon","tue","wed","thu","fri","sat","sun"],
                     "start":"20:00","end":"06:00","address":"home"}]}]}
  ]
}"#;

fn orders() -> OrdersFile {
    parse_orders(ORDERS).expect("orders").accepted
}

fn factory(orders: &OrdersFile) -> Box<dyn RuleFactory> {
    Box::new(StandardRules::new(config(), RulesConfig::default(), orders))
}

fn gps(t_ms: i64, at: (f64, f64)) -> Reading {
    common::gps_fix_at(t_ms, at)
}

fn rf(t_ms: TimeMs, in_range: bool) -> Reading {
    Reading {
        t_ms,
        battery_pct: Some(70),
        body: ReadingBody::Rf { in_range },
    }
}

fn event(t_ms: TimeMs, event: DeviceEvent) -> Reading {
    Reading {
        t_ms,
        battery_pct: None,
        body: ReadingBody::Event(event),
    }
}

/// A worn alcohol bracelet's sample: a body-like TAC curve from Monday 20:00 (peak 0.1 g/dL).
fn tac(i: i64, t_ms: TimeMs) -> Reading {
    let onset = T0 + 20 * HOUR;
    let dt_h = (t_ms - onset) as f64 / HOUR as f64;
    let tac_gdl = if dt_h <= 0.0 || dt_h >= 7.0 {
        0.0
    } else if dt_h < 2.0 {
        0.1 * (FRAC_PI_2 * dt_h / 2.0).sin().powi(2)
    } else {
        0.1 * (FRAC_PI_2 * (1.0 - (dt_h - 2.0) / 5.0)).sin().powi(2)
    };
    let (ir_v, temp_c) = (
        1.0 + 0.04 * (i as f64).sin(),
        33.0 + 0.8 * (i as f64 / 7.0).cos(),
    );
    Reading {
        t_ms,
        battery_pct: Some(90),
        body: ReadingBody::Tac(TacSample {
            tac_ugdl: (tac_gdl * 1e6).round() as i32,
            ir_uv: (ir_v * 1e6).round() as i32,
            temp_mc: (temp_c * 1e3).round() as i32,
        }),
    }
}

/// Whether `t_ms` is within `[from, to)` hours from T0.
fn between(t_ms: TimeMs, from_h: f64, to_h: f64) -> bool {
    let h = (t_ms - T0) as f64 / HOUR as f64;
    h >= from_h && h < to_h
}

/// Every tag's readings, by tag.
fn readings() -> Vec<(&'static str, Vec<Reading>)> {
    let end = T0 + DAYS * DAY;
    let mut t1 = Vec::new();
    let mut t = T0;
    while t < end {
        // Monday 22:00–23:00 and Tuesday 18:00–20:30 in town (curfew breaches, in the zone);
        // Tuesday 10:30–11:00 (uploaded late) and Wednesday 14:00–14:40 in town (the zone only).
        let away = between(t, 22.0, 23.0)
            || between(t, 34.5, 35.0)
            || between(t, 42.0, 44.5)
            || between(t, 62.0, 62.67);
        t1.push(gps(t, if away { TOWN } else { HOME1 }));
        t += 2 * MIN;
    }
    t1.push(event(T0 + 12 * HOUR + 30_000, DeviceEvent::StrapOpen));
    t1.push(event(
        T0 + 12 * HOUR + 20 * MIN + 30_000,
        DeviceEvent::StrapClosed,
    ));

    let mut t2 = Vec::new();
    let mut t = T0;
    while t < end {
        // Tuesday 09:00–12:00 the tag is silent (no contact).
        if !between(t, 33.0, 36.0) {
            // Out of range Monday 18:30–19:40: absent at curfew start, back later.
            t2.push(rf(t, !between(t, 18.5, 19.67)));
        }
        t += 5 * MIN;
    }
    t2.push(event(T0 + 26 * HOUR + 60_000, DeviceEvent::HmuPowerLoss));
    t2.push(event(
        T0 + 27 * HOUR + 60_000,
        DeviceEvent::HmuPowerRestored,
    ));

    let t3: Vec<Reading> = (0..DAYS * 48).map(|i| tac(i, T0 + i * 30 * MIN)).collect();

    let mut t4 = Vec::new();
    let mut t = T0;
    // The tag is removed on Tuesday 11:55 (its activation ends at 12:00).
    while t < T0 + DAY + 11 * HOUR + 55 * MIN {
        // Monday 20:00–21:00 away at curfew start.
        t4.push(gps(t, if between(t, 20.0, 21.0) { TOWN } else { HOME4 }));
        t += 5 * MIN;
    }
    t4.push(event(T0 + DAY + 11 * HOUR + 55 * MIN, DeviceEvent::Removed));

    let mut t5 = vec![event(T0 + DAY + 12 * HOUR + 5 * MIN, DeviceEvent::Fitted)];
    let mut t = T0 + DAY + 12 * HOUR + 6 * MIN;
    while t < end {
        t5.push(gps(t, HOME4));
        t += 5 * MIN;
    }

    let mut t6 = Vec::new();
    let mut t = T0;
    while t < end {
        t6.push(gps(t, HOME6));
        t += 5 * MIN;
    }
    t6.push(event(T0 + 9 * HOUR + 30_000, DeviceEvent::BatteryLow));
    t6.push(event(T0 + 10 * HOUR + 30_000, DeviceEvent::Charging));

    let mut all = vec![
        ("T1", t1),
        ("T2", t2),
        ("T3", t3),
        ("T4", t4),
        ("T5", t5),
        ("T6", t6),
    ];
    for (_, list) in &mut all {
        list.sort_by_key(|r| r.t_ms);
    }
    all
}

fn control(
    recorded_ms: TimeMs,
    effective_ms: Option<TimeMs>,
    change: serde_json::Value,
) -> ControlRecord {
    let mut record = serde_json::json!({
        "recorded": tagstream::model::time::format_time(recorded_ms),
        "actor": "test",
    });
    if let Some(e) = effective_ms {
        record["effective"] = tagstream::model::time::format_time(e).into();
    }
    let object = record.as_object_mut().expect("object");
    object.extend(change.as_object().expect("object").clone());
    serde_json::from_value(record).expect("control record")
}

/// The log: each tag uploads every 30 minutes (arrival a minute after the slot), in arrival
/// order, with the anomalies of the module doc, and the control records at their times.
fn log() -> Vec<LogEntry> {
    let slot_ms = 30 * MIN;
    // (arrival, order among equal arrivals, entry)
    let mut timed: Vec<(TimeMs, u32, LogEntry)> = Vec::new();
    let mut seq = std::collections::HashMap::<&str, u64>::new();
    let mut batch = |tag: &'static str, arrival_ms: TimeMs, readings: Vec<Reading>| {
        let n = seq.entry(tag).or_insert(0);
        *n += 1;
        LogEntry::Batch(Arc::new(Batch {
            tag: tag.into(),
            seq: *n,
            epoch: 0,
            arrival_ms,
            readings,
        }))
    };
    // Stored on the tag and uploaded after newer readings (processed late): T1's Tuesday
    // 10:00–12:00 at 13:01, T3's Monday 22:00–23:00 (mid-drinking) at Tuesday 00:01.
    let backlog = |tag: &str, t_ms: TimeMs| {
        (tag == "T1" && between(t_ms, 34.0, 36.0)) || (tag == "T3" && between(t_ms, 22.0, 23.0))
    };
    let backlog_slot = |tag: &str| match tag {
        "T1" => Some(T0 + DAY + 13 * HOUR),
        "T3" => Some(T0 + 23 * HOUR + 30 * MIN),
        _ => None,
    };
    for (tag, list) in readings() {
        let mut slot_start = T0;
        while slot_start < T0 + DAYS * DAY {
            let slot_end = slot_start + slot_ms;
            let mut in_slot: Vec<Reading> = list
                .iter()
                .filter(|r| r.t_ms >= slot_start && r.t_ms < slot_end && !backlog(tag, r.t_ms))
                .copied()
                .collect();
            let mut arrival_ms = slot_end + MIN;
            if backlog_slot(tag) == Some(slot_start) {
                // Stored and forwarded, after the newer readings.
                let back: Vec<Reading> = list
                    .iter()
                    .filter(|r| backlog(tag, r.t_ms))
                    .copied()
                    .collect();
                timed.push((arrival_ms, 1, batch(tag, arrival_ms, back)));
            }
            if tag == "T1" && slot_start == T0 + DAY + 15 * HOUR {
                // A device clock 5 hours ahead for one reading: held until the clock catches up.
                in_slot.push(gps(slot_start + 5 * HOUR, HOME1));
            }
            if tag == "T2" && slot_start == T0 + DAY + 8 * HOUR {
                // A reading 30 hours ahead of its arrival.
                in_slot.push(rf(slot_start + 30 * HOUR, true));
            }
            if tag == "T5" && slot_start == T0 + DAY + 12 * HOUR {
                // The new tag's first upload comes before its activation is recorded.
                arrival_ms = slot_end + 2 * MIN;
            }
            if !in_slot.is_empty() {
                timed.push((arrival_ms, 0, batch(tag, arrival_ms, in_slot)));
            }
            slot_start = slot_end;
        }
    }
    let swap_ms = T0 + DAY + 12 * HOUR;
    let controls = [
        // The tag swap: A4 ends, A5 on T5 starts (recorded 12:45, after T5's first upload).
        (
            swap_ms + 45 * MIN,
            None,
            serde_json::json!({"op":"end_activation","activation":"A4",
                "to": tagstream::model::time::format_time(swap_ms)}),
        ),
        (
            swap_ms + 45 * MIN,
            None,
            serde_json::json!({"op":"put_activation","activation":{"id":"A5","person":"P4",
                "tag":"T5","from": tagstream::model::time::format_time(swap_ms)}}),
        ),
        // A backdated variation of P1's curfew (from 20:00), effective from Monday.
        (
            T0 + DAY + 21 * HOUR + 10 * MIN,
            Some(T0),
            serde_json::json!({"op":"put_order","order":{"id":"O1","person":"P1",
                "from":"2026-03-01","conditions":[
                {"type":"curfew","grace_min":0,
                 "addresses":[{"id":"home","lat":51.4545,"lon":-2.5879,"radius_m":60}],
                 "timetable":[{"days":["mon","tue","wed","thu","fri","sat","sun"],
                               "start":"20:00","end":"07:00","address":"home"}]},
                {"type":"exclusion_zone","id":"Z1","name":"town",
                 "geometry":{"type":"Point","coordinates":[-2.5879,51.4645]},"radius_m":250},
                {"type":"trail"}]}}),
        ),
    ];
    for (i, (at_ms, effective, change)) in controls.into_iter().enumerate() {
        let c = Arc::new(control(at_ms, effective, change));
        // Record numbers are set below; 0 for now.
        timed.push((
            at_ms,
            2 + i as u32,
            LogEntry::Control {
                record: 0,
                control: c,
            },
        ));
    }
    timed.sort_by_key(|a| (a.0, a.1));
    timed
        .into_iter()
        .enumerate()
        .map(|(record, (_, _, entry))| match entry {
            LogEntry::Control { control, .. } => LogEntry::Control {
                record: record as u64,
                control,
            },
            batch => batch,
        })
        .collect()
}

/// Every output, rendered in full (alerts and sober days in their JSON form, evidence
/// included), with the lane and record it came from and its cause's arrival.
#[derive(Default)]
struct Rendered {
    lines: Vec<String>,
    from: Provenance,
}

impl Sink for Rendered {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        let json = |v: Result<String, serde_json::Error>| v.expect("json");
        let body = match &output {
            Output::Alert(a) => format!("alert {}", json(serde_json::to_string(a))),
            Output::SoberDay(d) => format!("day {}", json(serde_json::to_string(d))),
            Output::Purged { activation } => format!("purged {activation}"),
            Output::Readings {
                record,
                batch,
                activation,
                readings,
            } => format!(
                "readings {record} {batch:?} {activation:?} {}",
                json(serde_json::to_string(readings.readings()))
            ),
            Output::Activations {
                record,
                control,
                activations,
            } => format!(
                "activations {record} {activations:?} {}",
                json(serde_json::to_string(&**control))
            ),
        };
        self.lines.push(format!(
            "{}/{} {cause_arrival_ms:?} {body}",
            self.from.lane, self.from.record
        ));
    }

    fn outputs_from(&mut self, provenance: Provenance) {
        self.from = provenance;
    }
}

fn new_driver(orders: &OrdersFile, sink: &mut dyn Sink) -> InlineDriver {
    new_driver_with(orders, config(), sink)
}

fn new_driver_with(
    orders: &OrdersFile,
    config: PipelineConfig,
    sink: &mut dyn Sink,
) -> InlineDriver {
    InlineDriver::from_book(
        OrderBook::from_document(orders),
        config,
        factory(orders),
        PARTITIONS,
        sink,
    )
}

fn restore(orders: &OrdersFile, bytes: &[u8]) -> Result<InlineDriver, SnapshotError> {
    restore_with(orders, config(), bytes)
}

fn restore_with(
    orders: &OrdersFile,
    config: PipelineConfig,
    bytes: &[u8],
) -> Result<InlineDriver, SnapshotError> {
    InlineDriver::restore(bytes, config, factory(orders), PARTITIONS)
}

fn feed(driver: &mut InlineDriver, log: &[LogEntry], from: usize, sink: &mut dyn Sink) {
    for (record, entry) in log.iter().enumerate().skip(from) {
        driver.feed_record(record as u64, entry, sink);
    }
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

#[test]
fn a_restored_driver_continues_exactly_as_the_uninterrupted_one() {
    restored_continues_exactly(config());
}

#[test]
fn with_a_clock_per_partition_a_restored_driver_continues_exactly_too() {
    restored_continues_exactly(config_with_clocks(4));
}

#[test]
fn a_snapshot_with_another_number_of_clocks_is_refused() {
    let orders = orders();
    let log = log();
    let mut sink = Rendered::default();
    let mut driver = new_driver_with(&orders, config_with_clocks(4), &mut sink);
    feed(&mut driver, &log[..log.len() / 2], 0, &mut sink);
    let bytes = driver.snapshot().expect("snapshot");
    // The clocks are part of the pipeline's configuration (it changes outputs).
    let e = restore(&orders, &bytes).err().expect("refused");
    assert!(matches!(e, SnapshotError::Mismatch(_)), "{e}");
    assert!(restore_with(&orders, config_with_clocks(4), &bytes).is_ok());
}

fn restored_continues_exactly(config: PipelineConfig) {
    let orders = orders();
    let log = log();
    let n = log.len();

    // The uninterrupted run, and at each record the outputs so far and a snapshot.
    let mut reference = Rendered::default();
    let mut driver = new_driver_with(&orders, config, &mut reference);
    // Every other position (batches come every 30 minutes per tag, 6 tags: positions inside
    // open curfew windows, with readings waiting in the reorder buffers, held ahead, in a
    // backlog, just before and after each control record), and every one of the first and
    // last 12.
    let dense = |k: usize| k.is_multiple_of(2) || k < 12 || n - k < 12;
    let mut taken: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for k in 0..=n {
        if dense(k) || k == n {
            let bytes = driver.snapshot().expect("snapshot");
            taken.push((k, reference.lines.len(), bytes));
        }
        if let Some(entry) = log.get(k) {
            driver.feed_record(k as u64, entry, &mut reference);
        }
    }
    let stream_end = reference.lines.len();
    driver.finish(&mut reference);
    let final_bytes = driver.snapshot().expect("snapshot");

    // The input did exercise what the module doc says.
    let lines = &reference.lines;
    for what in [
        "\"AL08\"",
        "\"AL09\"",
        "\"AL10\"",
        "\"exclusion_zone\"",
        "\"strap_tamper\"",
        "\"battery_low\"",
        "\"hmu_power_loss\"",
        "\"no_contact\"",
        "\"device_clock\"",
        "\"drinking_event\"",
        "\"status\":\"sober\"",
        "\"amended_by\"",
        "\"withdrawn\"",
        "\"late\":true",
        "activations ",
    ] {
        assert!(count(lines, what) > 0, "the input never produced {what}");
    }
    let stats = driver.partition_stats();
    assert!(stats.iter().map(|s| s.late_readings).sum::<u64>() > 0);
    assert!(stats.iter().map(|s| s.released_readings).sum::<u64>() > 0);
    assert!(stats.iter().map(|s| s.reconfigurations).sum::<u64>() > 0);
    assert!(driver.dispatch_stats().clock_ahead >= 2);

    // Every sampled position is tried; what differs is collected, by kind, so that a piece of
    // state left out shows whether the outputs (not only the final state) reveal it.
    let mut round_trip = Vec::new();
    let mut outputs = Vec::new();
    let mut final_state = Vec::new();
    for (k, emitted, bytes) in &taken {
        let mut restored =
            restore_with(&orders, config, bytes).unwrap_or_else(|e| panic!("restore at {k}: {e}"));
        // Restoring loses nothing the format holds: the restored state saves to the same bytes.
        if restored.snapshot().expect("snapshot") != *bytes {
            round_trip.push(*k);
        }
        let mut rest = Rendered::default();
        feed(&mut restored, &log, *k, &mut rest);
        restored.finish(&mut rest);
        let expected = &reference.lines[*emitted..];
        if rest.lines != expected {
            let at = rest
                .lines
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(rest.lines.len().min(expected.len()));
            outputs.push(format!(
                "restored at record {k} of {n}: outputs differ at output {} (of {} after it; \
                 {} before the input's end)\n restored: {:?}\n expected: {:?}",
                emitted + at,
                expected.len(),
                stream_end - emitted,
                rest.lines.get(at),
                expected.get(at)
            ));
        }
        if restored.snapshot().expect("snapshot") != final_bytes {
            final_state.push(*k);
        }
    }
    assert!(
        outputs.is_empty(),
        "{} of {} restores gave other outputs; the first:\n{}",
        outputs.len(),
        taken.len(),
        outputs[0]
    );
    assert!(
        round_trip.is_empty(),
        "a restored driver saves other bytes after records {round_trip:?}"
    );
    assert!(
        final_state.is_empty(),
        "the final state differs after restoring at records {final_state:?}"
    );
}

#[test]
fn the_same_state_gives_the_same_bytes() {
    let orders = orders();
    let log = log();
    let mut sink_a = Rendered::default();
    let mut sink_b = Rendered::default();
    let mut a = new_driver(&orders, &mut sink_a);
    let mut b = new_driver(&orders, &mut sink_b);
    let half = log.len() / 2;
    feed(&mut a, &log[..half], 0, &mut sink_a);
    feed(&mut b, &log[..half], 0, &mut sink_b);
    let bytes = a.snapshot().expect("snapshot");
    assert!(
        bytes == b.snapshot().expect("snapshot"),
        "two drivers, same input"
    );
    assert!(
        bytes == a.snapshot().expect("snapshot"),
        "twice the same driver"
    );
    // And a different position gives different bytes.
    a.feed_record(half as u64, &log[half], &mut sink_a);
    assert!(bytes != a.snapshot().expect("snapshot"));
}

#[test]
fn damaged_or_foreign_bytes_are_refused_with_the_reason() {
    let orders = orders();
    let log = log();
    let mut sink = Rendered::default();
    let mut driver = new_driver(&orders, &mut sink);
    feed(&mut driver, &log[..log.len() / 3], 0, &mut sink);
    let bytes = driver.snapshot().expect("snapshot");
    assert!(restore(&orders, &bytes).is_ok());

    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    assert!(matches!(
        restore(&orders, &flipped),
        Err(SnapshotError::Checksum { .. })
    ));

    assert!(matches!(
        restore(&orders, &bytes[..bytes.len() - 10]),
        Err(SnapshotError::Truncated { .. })
    ));
    assert!(matches!(
        restore(&orders, &bytes[..5]),
        Err(SnapshotError::Truncated { .. })
    ));

    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        restore(&orders, &longer),
        Err(SnapshotError::TrailingBytes(1))
    ));

    let mut other_version = bytes.clone();
    other_version[8] = other_version[8].wrapping_add(1);
    match restore(&orders, &other_version) {
        Err(e @ SnapshotError::UnsupportedVersion { .. }) => {
            assert!(e.to_string().contains("version"), "{e}")
        }
        other => panic!("expected a version error, got {:?}", other.err()),
    }

    assert!(matches!(
        restore(&orders, b"{\"not\":\"a snapshot\"} and more bytes"),
        Err(SnapshotError::BadMagic)
    ));

    // A payload that passes the checksum but is not a pipeline state.
    let foreign = tagstream::pipeline::snapshot::encode(&("something", 1, 2)).expect("encode");
    assert!(matches!(
        restore(&orders, &foreign),
        Err(SnapshotError::Decode(_))
    ));

    // The configuration must be the one the state was built with.
    assert!(matches!(
        InlineDriver::restore(&bytes, config(), factory(&orders), PARTITIONS + 1),
        Err(SnapshotError::Mismatch(_))
    ));
    let other_config = PipelineConfig {
        reorder_ms: 0,
        ..config()
    };
    assert!(matches!(
        InlineDriver::restore(&bytes, other_config, factory(&orders), PARTITIONS),
        Err(SnapshotError::Mismatch(_))
    ));
    // A factory that builds other rules (no orders at all) is refused, not half-loaded.
    let bare = Box::new(StandardRules::empty(config(), RulesConfig::default()));
    assert!(matches!(
        InlineDriver::restore(&bytes, config(), bare, PARTITIONS),
        Err(SnapshotError::Mismatch(_))
    ));
}
