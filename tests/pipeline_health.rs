//! Device-health and no-contact rules driven through the real dispatcher and partitions, with
//! hand-built timelines: ordering within a batch, late readings, the reorder window, idempotence.

use std::sync::Arc;
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::{
    Activation, Alert, Batch, DeviceEvent, Position, PositionSource, Reading, ReadingBody,
};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{ActivationDirectory, PipelineConfig};
use tagstream::replay::OutputCollector;
use tagstream::rules::StandardRules;

fn t(text: &str) -> i64 {
    parse_time(&format!("2026-03-28T{text}:00Z")).unwrap()
}

fn event(at: &str, e: DeviceEvent) -> Reading {
    Reading {
        t_ms: t(at),
        battery_pct: None,
        body: ReadingBody::Event(e),
    }
}

fn fix(at: &str) -> Reading {
    Reading {
        t_ms: t(at),
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: 514_545_000,
            lon_e7: -25_879_000,
            precision_cm: 800,
            source: PositionSource::Gps,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: Some(8),
        }),
    }
}

fn activations() -> Vec<Activation> {
    ["1", "2"]
        .iter()
        .map(|n| Activation {
            id: format!("A{n}"),
            person: format!("P{n}"),
            tag: format!("T{n}"),
            from: t("00:00"),
            to: None,
        })
        .collect()
}

/// Runs batches `(tag, readings)` in order and returns the final alerts in output order.
fn run(config: PipelineConfig, batches: Vec<(&str, Vec<Reading>)>) -> Vec<Alert> {
    let directory = Arc::new(ActivationDirectory::new(&activations()));
    let mut out = OutputCollector::default();
    let mut driver = InlineDriver::new(
        directory,
        config,
        Box::new(StandardRules::new(
            config,
            Default::default(),
            &Default::default(),
        )),
        2,
        &mut out,
    );
    for (seq, (tag, readings)) in batches.into_iter().enumerate() {
        let batch = Batch {
            tag: tag.into(),
            epoch: 0,
            seq: seq as u64 + 1,
            arrival_ms: 0,
            readings,
        };
        driver.feed(&Arc::new(batch), &mut out);
    }
    out.alerts.sorted()
}

fn summary(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}..{} late={}",
                a.activation,
                a.alert_type.as_str(),
                a.code.as_deref().unwrap_or("-"),
                &format_time(a.start)[11..16],
                a.end
                    .map(|e| format_time(e)[11..16].to_string())
                    .unwrap_or("open".into()),
                a.late
            )
        })
        .collect()
}

fn quiet() -> PipelineConfig {
    PipelineConfig {
        no_contact_ms: 24 * 3600 * 1000,
        ..PipelineConfig::default()
    }
}

#[test]
fn device_events_open_and_close_alerts_with_domain_codes() {
    use DeviceEvent::*;
    let alerts = run(
        quiet(),
        vec![(
            "T1",
            vec![
                event("10:00", StrapOpen),
                event("10:01", StrapOpen),
                event("10:05", StrapClosed),
                event("11:00", BatteryLow),
                event("11:30", BatteryDead),
                event("12:00", Charging),
                event("13:00", HmuPowerLoss),
                event("13:20", HmuPowerRestored),
                event("14:00", HmuMoved),
                event("15:00", DeviceFault),
                event("16:00", Fitted),
            ],
        )],
    );
    assert_eq!(
        summary(&alerts),
        vec![
            "A1 strap_tamper - 10:00..10:05 late=false",
            "A1 battery_low AL21 11:00..12:00 late=false",
            "A1 battery_dead AL23 11:30..12:00 late=false",
            "A1 hmu_power_loss AL04 13:00..13:20 late=false",
            "A1 hmu_moved AL05 14:00..14:00 late=false",
            "A1 device_fault AL24 15:00..15:00 late=false",
        ]
    );
    assert_eq!(
        alerts[0].evidence.len(),
        2,
        "opening and closing readings are the evidence"
    );
    assert_eq!(alerts[0].person, "P1");
}

#[test]
fn readings_out_of_order_within_a_batch_are_put_in_event_time_order() {
    use DeviceEvent::*;
    let alerts = run(
        quiet(),
        vec![(
            "T1",
            vec![event("10:05", StrapClosed), event("10:00", StrapOpen)],
        )],
    );
    assert_eq!(
        summary(&alerts),
        vec!["A1 strap_tamper - 10:00..10:05 late=false"]
    );
}

#[test]
fn a_reading_older_than_the_watermark_is_processed_and_its_alert_marked_late() {
    use DeviceEvent::*;
    let alerts = run(
        quiet(),
        vec![
            ("T1", vec![fix("10:10"), fix("10:11")]),
            (
                "T1",
                vec![event("10:00", StrapOpen), event("10:02", StrapClosed)],
            ),
        ],
    );
    assert_eq!(
        summary(&alerts),
        vec!["A1 strap_tamper - 10:00..10:02 late=true"]
    );
}

#[test]
fn a_reorder_window_absorbs_disorder_across_batches() {
    use DeviceEvent::*;
    let config = PipelineConfig {
        reorder_ms: 15 * 60 * 1000,
        ..quiet()
    };
    let alerts = run(
        config,
        vec![
            ("T1", vec![fix("10:10")]),
            (
                "T1",
                vec![event("10:00", StrapOpen), event("10:02", StrapClosed)],
            ),
            ("T1", vec![fix("10:30")]),
        ],
    );
    assert_eq!(
        summary(&alerts),
        vec!["A1 strap_tamper - 10:00..10:02 late=false"]
    );
}

#[test]
fn no_contact_is_driven_by_event_time_and_closes_when_the_tag_is_heard_again() {
    let config = PipelineConfig {
        no_contact_ms: 60 * 60 * 1000,
        ..PipelineConfig::default()
    };
    let alerts = run(
        config,
        vec![
            ("T1", vec![fix("00:10"), fix("01:00")]),
            ("T2", vec![fix("00:10"), fix("01:30")]),
            ("T2", vec![fix("01:59")]),
            ("T2", vec![fix("02:00"), fix("03:00")]),
            // T1's backlog arrives while the clock stands at 03:00: contact is now, not 01:00.
            ("T1", vec![fix("01:01"), fix("03:00")]),
        ],
    );
    // T1 silent from 01:00 (its last contact) until heard again at 03:00.
    assert_eq!(
        summary(&alerts),
        vec!["A1 no_contact - 01:00..03:00 late=false"]
    );
}

#[test]
fn an_activation_that_never_reports_raises_no_contact_from_its_start() {
    let config = PipelineConfig {
        no_contact_ms: 60 * 60 * 1000,
        ..PipelineConfig::default()
    };
    let alerts = run(config, vec![("T2", vec![fix("00:30"), fix("01:30")])]);
    assert_eq!(
        summary(&alerts),
        vec!["A1 no_contact - 00:00..open late=false"]
    );
}

#[test]
fn reprocessing_is_idempotent_and_ids_are_stable() {
    use DeviceEvent::*;
    let batches = || {
        vec![(
            "T1",
            vec![event("10:00", StrapOpen), event("10:05", StrapClosed)],
        )]
    };
    let first = run(quiet(), batches());
    let second = run(quiet(), batches());
    assert_eq!(first, second);
    assert!(first[0].id.starts_with("al-"));
}
