//! Alcohol monitoring on synthetic timelines driven through the real dispatcher and partitions:
//! body-like curves either side of the 0.02 g/dL threshold, environmental spikes, obstruction,
//! removal, gaps, days across the daylight-saving changes, late data, level mode, the AAMR cap,
//! and determinism.

use std::f64::consts::FRAC_PI_2;
use std::sync::Arc;
use tagstream::formats::orders_file::OrdersFile;
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::{
    alert_id, Activation, AlcoholCondition, AlcoholMode, Alert, AlertType, Batch, Condition,
    DayReason, DeviceEvent, Order, Person, Reading, ReadingBody, SoberDay, SoberDayStatus,
    TacSample, TimeMs,
};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{ActivationDirectory, PipelineConfig};
use tagstream::replay::OutputCollector;
use tagstream::rules::alcohol::{sober_day_rate, tac_chart_svg};
use tagstream::rules::StandardRules;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn at(text: &str) -> TimeMs {
    parse_time(text).unwrap()
}

fn tac(t_ms: TimeMs, tac_gdl: f64, ir_v: f64, temp_c: f64) -> Reading {
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

/// A worn bracelet: IR about 1.0 V and skin about 33 °C with a little deterministic wobble.
fn worn(i: i64) -> (f64, f64) {
    (
        1.0 + 0.04 * (i as f64).sin(),
        33.0 + 0.8 * (i as f64 / 7.0).cos(),
    )
}

/// `n` readings every `every` ms from `from`, TAC from `tac_of(t)`, a worn bracelet.
fn series(from: TimeMs, every: i64, n: i64, tac_of: impl Fn(TimeMs) -> f64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            let t = from + i * every;
            let (ir, temp) = worn(i);
            tac(t, tac_of(t), ir, temp)
        })
        .collect()
}

/// A body-like TAC curve: sin² rise from `onset` to the peak over `rise_h`, fall over `fall_h`.
fn body(t: TimeMs, onset: TimeMs, peak_gdl: f64, rise_h: f64, fall_h: f64) -> f64 {
    let dt = (t - onset) as f64 / HOUR as f64;
    if dt <= 0.0 || dt >= rise_h + fall_h {
        0.0
    } else if dt < rise_h {
        peak_gdl * (FRAC_PI_2 * dt / rise_h).sin().powi(2)
    } else {
        peak_gdl * (FRAC_PI_2 * (1.0 - (dt - rise_h) / fall_h)).sin().powi(2)
    }
}

/// One person `P1` with activation `A1` on tag `T1` and one alcohol order `O1`.
fn doc(activation_from: TimeMs, order_from: &str, order_to: &str, mode: AlcoholMode) -> OrdersFile {
    OrdersFile {
        people: vec![Person {
            id: "P1".into(),
            name: String::new(),
            date_of_birth: None,
            nomis_id: None,
            pnc_ref: None,
            address: None,
            offender_manager: None,
            restricted: false,
        }],
        activations: vec![Activation {
            id: "A1".into(),
            person: "P1".into(),
            tag: "T1".into(),
            from: activation_from,
            to: None,
        }],
        orders: vec![Order {
            id: "O1".into(),
            person: "P1".into(),
            from: order_from.parse().unwrap(),
            to: Some(order_to.parse().unwrap()),
            conditions: vec![Condition::Alcohol(AlcoholCondition {
                mode,
                requirement: None,
            })],
        }],
    }
}

fn abstinence(activation_from: TimeMs) -> OrdersFile {
    doc(
        activation_from,
        "2026-01-01",
        "2026-04-30",
        AlcoholMode::Abstinence,
    )
}

/// Uploads of four readings each, in order; then the event-time clock moves to `clock_to`.
fn uploads(readings: Vec<Reading>, clock_to: TimeMs) -> Vec<(String, Vec<Reading>)> {
    let mut out: Vec<(String, Vec<Reading>)> = readings
        .chunks(4)
        .map(|c| ("T1".to_string(), c.to_vec()))
        .collect();
    out.extend(clock(clock_to));
    out
}

/// Readings from tags nobody wears: move the event-time clock only. Three of them, because no
/// single tag can move the clock (see docs/rules.md, "The event-time clock").
fn clock(t_ms: TimeMs) -> Vec<(String, Vec<Reading>)> {
    ["CLOCK1", "CLOCK2", "CLOCK3"]
        .iter()
        .map(|tag| {
            (
                tag.to_string(),
                vec![Reading {
                    t_ms,
                    battery_pct: None,
                    body: ReadingBody::Rf { in_range: true },
                }],
            )
        })
        .collect()
}

fn run_with(
    doc: &OrdersFile,
    batches: &[(String, Vec<Reading>)],
    partitions: usize,
) -> OutputCollector {
    let config = PipelineConfig {
        no_contact_ms: 30 * 24 * HOUR,
        ..PipelineConfig::default()
    };
    let directory = Arc::new(ActivationDirectory::new(&doc.activations));
    let factory = Box::new(StandardRules::new(config, Default::default(), doc));
    let mut out = OutputCollector::default();
    let mut driver = InlineDriver::new(directory, config, factory, partitions, &mut out);
    for (seq, (tag, readings)) in batches.iter().enumerate() {
        let batch = Batch {
            tag: tag.clone(),
            epoch: 0,
            seq: seq as u64 + 1,
            arrival_ms: 0,
            readings: readings.clone(),
        };
        driver.feed(&Arc::new(batch), &mut out);
    }
    out
}

fn run(doc: &OrdersFile, batches: &[(String, Vec<Reading>)]) -> OutputCollector {
    run_with(doc, batches, 2)
}

fn alerts_of(out: &OutputCollector, alert_type: AlertType) -> Vec<Alert> {
    out.alerts
        .sorted()
        .into_iter()
        .filter(|a| a.alert_type == alert_type)
        .collect()
}

fn alcohol_alerts(out: &OutputCollector) -> Vec<Alert> {
    out.alerts
        .sorted()
        .into_iter()
        .filter(|a| a.rule == "alcohol/1")
        .collect()
}

fn day(out: &OutputCollector, date: &str) -> SoberDay {
    out.sober_days
        .sorted()
        .into_iter()
        .find(|d| d.date.to_string() == date)
        .unwrap_or_else(|| panic!("no sober day {date}: {:#?}", out.sober_days.sorted()))
}

fn span(a: &Alert) -> String {
    format!(
        "{}..{}",
        format_time(a.start),
        a.end.map(format_time).unwrap_or_else(|| "open".into())
    )
}

/// Two and a half days of half-hourly readings (8–10 March 2026, GMT) with an evening curve on
/// the 9th peaking at `peak_gdl` at 22:00.
fn evening_curve(peak_gdl: f64) -> (OrdersFile, Vec<(String, Vec<Reading>)>) {
    let from = at("2026-03-08T00:00:00Z");
    let onset = at("2026-03-09T20:00:00Z");
    let readings = series(from, 30 * MIN, 48 * 3, |t| {
        body(t, onset, peak_gdl, 2.0, 5.0)
    });
    (
        abstinence(from),
        uploads(readings, at("2026-03-12T12:00:00Z")),
    )
}

#[test]
fn a_body_like_curve_just_above_the_threshold_is_confirmed_drinking() {
    let (doc, batches) = evening_curve(0.021);
    let out = run(&doc, &batches);
    let drinking = alerts_of(&out, AlertType::DrinkingEvent);
    assert_eq!(drinking.len(), 1, "{:#?}", alcohol_alerts(&out));
    let a = &drinking[0];
    let d = a.details.as_ref().unwrap();
    assert_eq!(d.peak, Some(at("2026-03-09T22:00:00Z")));
    assert_eq!(d.peak_tac_gdl, Some(0.021));
    assert!(
        a.start > at("2026-03-09T20:00:00Z") && a.start <= at("2026-03-09T21:00:00Z"),
        "{}",
        span(a)
    );
    let end = a.end.expect("the curve returned");
    // The end is the first reading back within 0.01 g/dL of the baseline.
    assert_eq!(end, at("2026-03-10T01:00:00Z"), "{}", span(a));
    assert!(d.absorption_gdl_per_h.unwrap() <= 0.05 && d.elimination_gdl_per_h.unwrap() <= 0.025);
    assert!(
        d.auc_gdl_h.unwrap() > 0.05 && d.auc_gdl_h.unwrap() < 0.15,
        "{d:?}"
    );
    assert_eq!(
        a.id,
        alert_id("A1", "drinking_event", a.start),
        "ids are a function of activation, rule key, start"
    );
    assert!(!a.evidence.is_empty());
    assert_eq!(
        alcohol_alerts(&out).len(),
        1,
        "nothing else: {:#?}",
        alcohol_alerts(&out)
    );
    assert_eq!(day(&out, "2026-03-08").status, SoberDayStatus::Sober);
    assert_eq!(day(&out, "2026-03-09").status, SoberDayStatus::Drinking);
    assert_eq!(day(&out, "2026-03-09").alerts, vec![a.id.clone()]);
    assert_eq!(
        day(&out, "2026-03-10").status,
        SoberDayStatus::Drinking,
        "alcohol still in the body after midnight"
    );
}

#[test]
fn a_body_like_curve_just_below_the_threshold_is_not_drinking_and_the_day_stays_sober() {
    let (doc, batches) = evening_curve(0.019);
    let out = run(&doc, &batches);
    assert!(
        alcohol_alerts(&out).is_empty(),
        "{:#?}",
        alcohol_alerts(&out)
    );
    let evening = day(&out, "2026-03-09");
    assert_eq!(evening.status, SoberDayStatus::Sober);
    assert_eq!(evening.reasons, vec![DayReason::UnconfirmedAlcohol]);
}

#[test]
fn an_environmental_spike_is_recorded_but_never_confirmed() {
    let from = at("2026-03-08T00:00:00Z");
    let mut readings = series(from, 30 * MIN, 48 * 3, |_| 0.0);
    // One reading at 0.05 (hand gel), and on the next day two high readings either side of 14:00.
    let set = |rs: &mut Vec<Reading>, t: &str, v: f64| {
        let r = rs.iter_mut().find(|r| r.t_ms == at(t)).unwrap();
        if let ReadingBody::Tac(s) = &mut r.body {
            s.tac_ugdl = (v * 1e6) as i32;
        }
    };
    set(&mut readings, "2026-03-09T12:00:00Z", 0.05);
    set(&mut readings, "2026-03-10T14:00:00Z", 0.06);
    set(&mut readings, "2026-03-10T14:30:00Z", 0.04);
    let out = run(
        &abstinence(from),
        &uploads(readings, at("2026-03-12T12:00:00Z")),
    );
    assert!(alerts_of(&out, AlertType::DrinkingEvent).is_empty());
    let env = alerts_of(&out, AlertType::EnvironmentalAlcohol);
    assert_eq!(
        env.iter().map(span).collect::<Vec<_>>(),
        vec![
            "2026-03-09T12:00:00Z..2026-03-09T12:30:00Z".to_string(),
            "2026-03-10T14:00:00Z..2026-03-10T15:00:00Z".to_string(),
        ]
    );
    assert_eq!(env[0].details.as_ref().unwrap().max_raw_tac_gdl, Some(0.05));
    let d = day(&out, "2026-03-09");
    assert_eq!(
        (d.status, d.reasons.clone()),
        (
            SoberDayStatus::Sober,
            vec![DayReason::EnvironmentalExposure]
        )
    );
    assert_eq!(d.alerts, vec![env[0].id.clone()]);
}

/// 8–10 March, half-hourly, with the wearer's IR and temperature replaced on 9 March from 10:00
/// for `hours` by `(ir_v, temp_c)`; TAC 0 throughout.
fn sensor_episode(hours: i64, ir_v: f64, temp_c: f64) -> OutputCollector {
    let from = at("2026-03-08T00:00:00Z");
    let (t0, t1) = (
        at("2026-03-09T10:00:00Z"),
        at("2026-03-09T10:00:00Z") + hours * HOUR,
    );
    let readings: Vec<Reading> = series(from, 30 * MIN, 48 * 3, |_| 0.0)
        .into_iter()
        .map(|r| {
            if r.t_ms >= t0 && r.t_ms < t1 {
                tac(r.t_ms, 0.0, ir_v, temp_c)
            } else {
                r
            }
        })
        .collect();
    run(
        &abstinence(from),
        &uploads(readings, at("2026-03-12T12:00:00Z")),
    )
}

#[test]
fn an_obstruction_is_ir_moving_away_from_the_baseline_and_staying() {
    let out = sensor_episode(5, 1.6, 33.0);
    let obstruction = alerts_of(&out, AlertType::AlcoholObstruction);
    assert_eq!(
        obstruction.iter().map(span).collect::<Vec<_>>(),
        vec!["2026-03-09T10:00:00Z..2026-03-09T15:00:00Z"]
    );
    let d = obstruction[0].details.as_ref().unwrap();
    assert_eq!(d.ir_v, Some(1.6));
    assert!((d.ir_baseline_v.unwrap() - 1.0).abs() < 0.05, "{d:?}");
    assert_eq!(alcohol_alerts(&out).len(), 1);
    let day9 = day(&out, "2026-03-09");
    assert_eq!(
        (day9.status, day9.reasons.clone()),
        (SoberDayStatus::Tamper, vec![DayReason::Obstruction])
    );
    assert_eq!(day(&out, "2026-03-08").status, SoberDayStatus::Sober);

    // Downward too, and nothing for a shift that does not last.
    let out = sensor_episode(4, 0.55, 33.0);
    assert_eq!(alerts_of(&out, AlertType::AlcoholObstruction).len(), 1);
    let out = sensor_episode(1, 1.8, 33.0);
    assert!(
        alcohol_alerts(&out).is_empty(),
        "an hour of IR change is not sustained: {:#?}",
        alcohol_alerts(&out)
    );
}

#[test]
fn a_removal_is_temperature_out_of_skin_range_together_with_ir_change() {
    let out = sensor_episode(4, 0.25, 21.0);
    let removal = alerts_of(&out, AlertType::AlcoholRemoval);
    assert_eq!(
        removal.iter().map(span).collect::<Vec<_>>(),
        vec!["2026-03-09T10:00:00Z..2026-03-09T14:00:00Z"]
    );
    assert!(
        alerts_of(&out, AlertType::AlcoholObstruction).is_empty(),
        "a removal is not also an obstruction"
    );
    assert_eq!(day(&out, "2026-03-09").status, SoberDayStatus::Tamper);
    assert_eq!(day(&out, "2026-03-09").reasons, vec![DayReason::Removal]);

    // A cold ankle (temperature alone) or IR alone is not removal.
    let out = sensor_episode(8, 1.0, 19.0);
    assert!(
        alcohol_alerts(&out).is_empty(),
        "{:#?}",
        alcohol_alerts(&out)
    );
    assert_eq!(day(&out, "2026-03-09").status, SoberDayStatus::Sober);
}

#[test]
fn strap_tamper_from_the_device_makes_a_tamper_day() {
    let from = at("2026-03-08T00:00:00Z");
    let mut readings = series(from, 30 * MIN, 48 * 3, |_| 0.0);
    let event = |t: &str, e| Reading {
        t_ms: at(t),
        battery_pct: None,
        body: ReadingBody::Event(e),
    };
    readings.push(event("2026-03-09T09:10:00Z", DeviceEvent::StrapOpen));
    readings.push(event("2026-03-09T09:20:00Z", DeviceEvent::StrapClosed));
    readings.sort_by_key(|r| r.t_ms);
    let out = run(
        &abstinence(from),
        &uploads(readings, at("2026-03-12T12:00:00Z")),
    );
    assert_eq!(day(&out, "2026-03-09").status, SoberDayStatus::Tamper);
    assert_eq!(
        day(&out, "2026-03-09").reasons,
        vec![DayReason::StrapTamper]
    );
    assert_eq!(day(&out, "2026-03-10").status, SoberDayStatus::Sober);
    assert_eq!(
        alerts_of(&out, AlertType::StrapTamper).len(),
        1,
        "the health rule raises the alert"
    );
}

#[test]
fn gaps_are_not_monitored_time_never_sober() {
    // Fitted 8 March 10:00; 9 March only until 10:00; nothing on 10 March; 11 March with an
    // eight-hour gap; 12 March whole.
    let fitted = at("2026-03-08T10:00:00Z");
    let mut readings = series(fitted, 30 * MIN, 28, |_| 0.0);
    readings.extend(series(at("2026-03-09T00:00:00Z"), 30 * MIN, 20, |_| 0.0));
    readings.extend(
        series(at("2026-03-11T00:00:00Z"), 30 * MIN, 48, |_| 0.0)
            .into_iter()
            .filter(|r| {
                r.t_ms < at("2026-03-11T08:00:00Z") || r.t_ms >= at("2026-03-11T16:00:00Z")
            }),
    );
    readings.extend(series(at("2026-03-12T00:00:00Z"), 30 * MIN, 48, |_| 0.0));
    let out = run(
        &abstinence(fitted),
        &uploads(readings, at("2026-03-14T12:00:00Z")),
    );
    let summary: Vec<(String, SoberDayStatus, Vec<DayReason>, u32)> = out
        .sober_days
        .sorted()
        .into_iter()
        .map(|d| (d.date.to_string(), d.status, d.reasons, d.readings))
        .collect();
    use DayReason::*;
    use SoberDayStatus::*;
    assert_eq!(
        summary,
        vec![
            (
                "2026-03-08".into(),
                Partial,
                vec![FittingDay, LowCoverage],
                28
            ),
            (
                "2026-03-09".into(),
                Partial,
                vec![FewReadings, LowCoverage],
                20
            ),
            ("2026-03-10".into(), NotWorn, vec![NoReadings], 0),
            ("2026-03-11".into(), Partial, vec![LowCoverage], 32),
            ("2026-03-12".into(), Sober, vec![], 48),
            ("2026-03-13".into(), NotWorn, vec![NoReadings], 0),
        ]
    );
    let rate = sober_day_rate(&out.sober_days.sorted());
    assert_eq!(
        (rate.worn, rate.sober, rate.partial, rate.not_worn),
        (1, 1, 3, 2)
    );
    assert_eq!(rate.rate, Some(1.0));
}

/// Readings every 30 minutes from local midnight of `date` (Europe/London), `n` of them.
fn from_local_midnight(date: &str, n: i64) -> Vec<Reading> {
    let start = tagstream::rules::alcohol::sober_days::local_midnight_ms(date.parse().unwrap());
    series(start, 30 * MIN, n, |_| 0.0)
}

/// Each `(date, day_hours, status, coverage)` as expected.
fn expect_days(out: &OutputCollector, expected: &[(&str, u8, SoberDayStatus, f64)]) {
    for &(date, hours, status, coverage) in expected {
        let d = day(out, date);
        assert_eq!(
            (d.day_hours, d.status, d.coverage),
            (hours, status, coverage),
            "{date}"
        );
    }
}

#[test]
fn coverage_is_judged_on_the_true_length_of_days_across_the_clock_changes() {
    // 35 half-hours: 76% of the 23-hour 29 March (46 slots), 73% of 28 March (48 slots).
    let mut spring = from_local_midnight("2026-03-28", 35);
    spring.extend(from_local_midnight("2026-03-29", 35));
    spring.extend(from_local_midnight("2026-03-30", 48));
    let out = run(
        &abstinence(at("2026-03-27T00:00:00Z")),
        &uploads(spring, at("2026-04-01T12:00:00Z")),
    );
    expect_days(
        &out,
        &[
            ("2026-03-28", 24, SoberDayStatus::Partial, 0.729),
            ("2026-03-29", 23, SoberDayStatus::Sober, 0.761),
            ("2026-03-30", 24, SoberDayStatus::Sober, 1.0),
        ],
    );

    // 37 half-hours: 74% of the 25-hour 25 October (50 slots), 77% of 24 October.
    let mut autumn = from_local_midnight("2026-10-24", 37);
    autumn.extend(from_local_midnight("2026-10-25", 37));
    autumn.extend(from_local_midnight("2026-10-26", 48));
    let orders = doc(
        at("2026-10-23T00:00:00Z"),
        "2026-10-01",
        "2026-12-31",
        AlcoholMode::Abstinence,
    );
    let out = run(&orders, &uploads(autumn, at("2026-10-28T12:00:00Z")));
    expect_days(
        &out,
        &[
            ("2026-10-24", 24, SoberDayStatus::Sober, 0.771),
            ("2026-10-25", 25, SoberDayStatus::Partial, 0.74),
            ("2026-10-26", 24, SoberDayStatus::Sober, 1.0),
        ],
    );
    assert_eq!(day(&out, "2026-10-25").readings, 37);
}

#[test]
fn late_readings_change_a_settled_day_and_are_marked_late() {
    // 9 March: readings until 18:00 only (36 of 48 slots: sober). 11 March uploaded next. The
    // clock passes the settle time of 9 and 10 March. Then the stored readings of 9 March 18:00
    // to 10 March 24:00 arrive late, with an evening of drinking in them.
    let from = at("2026-03-09T00:00:00Z");
    let onset = at("2026-03-09T19:00:00Z");
    let curve = |t| body(t, onset, 0.08, 3.0, 8.0);
    let all = series(from, 30 * MIN, 48 * 3, curve);
    let (early, rest): (Vec<Reading>, Vec<Reading>) = all
        .into_iter()
        .partition(|r| r.t_ms < at("2026-03-09T18:00:00Z"));
    let (late, day11): (Vec<Reading>, Vec<Reading>) = rest
        .into_iter()
        .partition(|r| r.t_ms < at("2026-03-11T00:00:00Z"));
    let mut batches: Vec<(String, Vec<Reading>)> =
        early.chunks(4).map(|c| ("T1".into(), c.to_vec())).collect();
    batches.extend(day11.chunks(4).map(|c| ("T1".to_string(), c.to_vec())));
    batches.extend(clock(at("2026-03-11T13:00:00Z")));
    let settled_count = batches.len();
    batches.extend(late.chunks(8).map(|c| ("T1".to_string(), c.to_vec())));
    batches.extend(clock(at("2026-03-13T12:00:00Z")));

    let before = run(&abstinence(from), &batches[..settled_count]);
    assert_eq!(day(&before, "2026-03-09").status, SoberDayStatus::Sober);
    assert!(!day(&before, "2026-03-09").late);
    assert_eq!(day(&before, "2026-03-10").status, SoberDayStatus::NotWorn);
    assert!(alerts_of(&before, AlertType::DrinkingEvent).is_empty());

    let after = run(&abstinence(from), &batches);
    let drinking = alerts_of(&after, AlertType::DrinkingEvent);
    assert_eq!(drinking.len(), 1, "{:#?}", alcohol_alerts(&after));
    assert!(drinking[0].late, "raised by late readings");
    let (d9, d10, d11) = (
        day(&after, "2026-03-09"),
        day(&after, "2026-03-10"),
        day(&after, "2026-03-11"),
    );
    assert_eq!((d9.status, d9.late), (SoberDayStatus::Drinking, true));
    assert_eq!(
        (d10.status, d10.late, d10.readings),
        (SoberDayStatus::Drinking, true, 48)
    );
    assert_eq!((d11.status, d11.late), (SoberDayStatus::Sober, false));

    // The same readings in order give the same event, not late.
    let in_order = run(
        &abstinence(from),
        &uploads(
            series(from, 30 * MIN, 48 * 3, curve),
            at("2026-03-13T12:00:00Z"),
        ),
    );
    let on_time = alerts_of(&in_order, AlertType::DrinkingEvent);
    assert_eq!(
        (on_time[0].start, on_time[0].end, on_time[0].late),
        (drinking[0].start, drinking[0].end, false)
    );
    assert_eq!(on_time[0].details, drinking[0].details);
}

#[test]
fn level_mode_reports_drinking_in_the_day_record_without_alerting() {
    let from = at("2026-03-08T00:00:00Z");
    let onset = at("2026-03-09T20:00:00Z");
    let readings = series(from, 30 * MIN, 48 * 3, |t| body(t, onset, 0.06, 2.0, 6.0));
    let orders = doc(from, "2026-01-01", "2026-12-31", AlcoholMode::Level);
    let out = run(&orders, &uploads(readings, at("2026-03-12T12:00:00Z")));
    assert!(alerts_of(&out, AlertType::DrinkingEvent).is_empty());
    let d = day(&out, "2026-03-09");
    assert_eq!(
        (d.status, d.mode, d.alerts.len()),
        (SoberDayStatus::Drinking, AlcoholMode::Level, 0)
    );
    assert_eq!(d.reasons, vec![DayReason::ConfirmedDrinking]);
}

#[test]
fn abstinence_orders_are_monitored_for_at_most_120_days() {
    // Order 1 January to 30 June; drinking on day 130 (10 May) raises nothing and no day after
    // 30 April (day 120) is classified.
    let from = at("2026-01-01T00:00:00Z");
    let orders = doc(from, "2026-01-01", "2026-06-30", AlcoholMode::Abstinence);
    let onset = at("2026-05-10T20:00:00Z");
    let readings = series(at("2026-05-10T00:00:00Z"), 30 * MIN, 96, |t| {
        body(t, onset, 0.06, 2.0, 6.0)
    });
    let out = run(&orders, &uploads(readings, at("2026-05-20T00:00:00Z")));
    assert!(alerts_of(&out, AlertType::DrinkingEvent).is_empty());
    let days = out.sober_days.sorted();
    assert_eq!(days.len(), 120);
    assert_eq!(days.last().unwrap().date.to_string(), "2026-04-30");
}

#[test]
fn only_the_alcohol_tag_keeps_sober_days_when_the_person_also_wears_a_gps_tag() {
    let from = at("2026-03-08T00:00:00Z");
    let mut orders = abstinence(from);
    orders.activations.push(Activation {
        id: "A2".into(),
        person: "P1".into(),
        tag: "G1".into(),
        from,
        to: None,
    });
    let fix = |t_ms| Reading {
        t_ms,
        battery_pct: None,
        body: ReadingBody::Position(tagstream::model::Position {
            lat_e7: 514_545_000,
            lon_e7: -25_879_000,
            precision_cm: 800,
            source: tagstream::model::PositionSource::Gps,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: None,
        }),
    };
    let mut batches = uploads(
        series(from, 30 * MIN, 48 * 2, |_| 0.0),
        at("2026-03-11T12:00:00Z"),
    );
    batches.insert(
        0,
        ("G1".into(), (0..48).map(|i| fix(from + i * HOUR)).collect()),
    );
    let out = run(&orders, &batches);
    let days = out.sober_days.sorted();
    assert!(days.iter().all(|d| d.activation == "A1"), "{days:#?}");
    assert_eq!(days.len(), 3);
}

/// A week with everything in it: drinking, a spike, an obstruction, a removal, a gap.
fn busy_week() -> (OrdersFile, Vec<(String, Vec<Reading>)>) {
    let from = at("2026-03-23T00:00:00Z");
    let drink = at("2026-03-24T19:00:00Z");
    let (obs0, obs1) = (at("2026-03-26T09:00:00Z"), at("2026-03-26T15:00:00Z"));
    let (rem0, rem1) = (at("2026-03-27T09:00:00Z"), at("2026-03-27T13:00:00Z"));
    let (gap0, gap1) = (at("2026-03-28T06:00:00Z"), at("2026-03-28T20:00:00Z"));
    let readings: Vec<Reading> = series(from, 30 * MIN, 48 * 8, |t| body(t, drink, 0.09, 3.0, 7.0))
        .into_iter()
        .filter(|r| r.t_ms < gap0 || r.t_ms >= gap1)
        .map(|r| {
            let ReadingBody::Tac(s) = r.body else {
                return r;
            };
            let tac_gdl = s.tac_gdl()
                + if r.t_ms == at("2026-03-25T13:00:00Z") {
                    0.04
                } else {
                    0.0
                };
            if r.t_ms >= obs0 && r.t_ms < obs1 {
                tac(r.t_ms, 0.0, s.ir_v() + 0.7, s.temp_c())
            } else if r.t_ms >= rem0 && r.t_ms < rem1 {
                tac(r.t_ms, 0.0, 0.3, 20.5)
            } else {
                tac(r.t_ms, tac_gdl, s.ir_v(), s.temp_c())
            }
        })
        .collect();
    (
        abstinence(from),
        uploads(readings, at("2026-04-02T12:00:00Z")),
    )
}

#[test]
fn the_same_input_gives_identical_outputs_whatever_the_partitioning() {
    let (orders, batches) = busy_week();
    let render = |out: &OutputCollector| {
        let mut alerts = vec![];
        out.alerts.write_jsonl(&mut alerts).unwrap();
        let mut days = vec![];
        out.sober_days.write_jsonl(&mut days).unwrap();
        (
            String::from_utf8(alerts).unwrap(),
            String::from_utf8(days).unwrap(),
        )
    };
    let first = render(&run_with(&orders, &batches, 1));
    let second = render(&run_with(&orders, &batches, 1));
    let other = render(&run_with(&orders, &batches, 4));
    assert_eq!(first, second);
    assert_eq!(first, other);
    for t in [
        "drinking_event",
        "environmental_alcohol",
        "alcohol_obstruction",
        "alcohol_removal",
    ] {
        assert!(
            first.0.contains(&format!("\"type\":\"{t}\"")),
            "{t} missing from {}",
            first.0
        );
    }
    let statuses: Vec<String> = first
        .1
        .lines()
        .map(|l| {
            let d: SoberDay = serde_json::from_str(l).unwrap();
            format!("{} {}", d.date, d.status.as_str())
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            "2026-03-23 sober",
            "2026-03-24 drinking",
            "2026-03-25 drinking",
            "2026-03-26 tamper",
            "2026-03-27 tamper",
            "2026-03-28 partial",
            "2026-03-29 sober",
            "2026-03-30 sober",
            "2026-03-31 partial",
            "2026-04-01 not_worn",
        ]
    );
}

#[test]
fn the_chart_is_well_formed_svg_with_every_series_event_and_day() {
    let (orders, batches) = busy_week();
    let out = run(&orders, &batches);
    let readings: Vec<(i64, TacSample)> = batches
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .filter_map(|r| match r.body {
            ReadingBody::Tac(s) => Some((r.t_ms, s)),
            _ => None,
        })
        .collect();
    let svg = tac_chart_svg(
        &readings,
        &out.alerts.sorted(),
        &out.sober_days.sorted(),
        at("2026-03-23T00:00:00Z"),
        at("2026-03-31T00:00:00Z"),
    );
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let count = |name: &str| {
        root.descendants()
            .filter(|n| n.tag_name().name() == name)
            .count()
    };
    assert_eq!(
        count("polyline") % 3,
        0,
        "TAC, IR and temperature lines (broken at the gap)"
    );
    assert!(count("polyline") >= 6, "the gap breaks each line");
    let text: String = root.descendants().filter_map(|n| n.text()).collect();
    for label in [
        "drinking_event",
        "alcohol_obstruction",
        "alcohol_removal",
        "environmental_alcohol",
        "tamper",
        "drinking",
        "sober",
    ] {
        assert!(text.contains(label), "{label} not in the chart");
    }
    assert_eq!(
        svg,
        tac_chart_svg(
            &readings,
            &out.alerts.sorted(),
            &out.sober_days.sorted(),
            at("2026-03-23T00:00:00Z"),
            at("2026-03-31T00:00:00Z")
        )
    );
    // An empty period still draws.
    roxmltree::Document::parse(&tac_chart_svg(&[], &[], &[], 0, 0)).unwrap();
}

/// The 120-day limit belongs to the AAMR: the same drinking evening on day 152 of a long order
/// is not monitored under an AAMR (unstated requirement with abstinence), and is under AML.
#[test]
fn the_120_day_cap_applies_to_an_aamr_not_to_aml() {
    let from = at("2026-05-31T00:00:00Z");
    let onset = at("2026-06-01T20:00:00Z");
    let readings = series(from, 30 * MIN, 48 * 3, |t| body(t, onset, 0.08, 2.0, 5.0));
    let batches = uploads(readings, at("2026-06-04T12:00:00Z"));
    let with = |requirement| {
        let mut d = doc(from, "2026-01-01", "2026-12-31", AlcoholMode::Abstinence);
        d.orders[0].conditions = vec![Condition::Alcohol(AlcoholCondition {
            mode: AlcoholMode::Abstinence,
            requirement,
        })];
        run(&d, &batches)
    };
    let aamr = with(None);
    assert!(
        alerts_of(&aamr, AlertType::DrinkingEvent).is_empty(),
        "past 120 days of an AAMR"
    );
    let aml = with(Some(tagstream::model::AlcoholRequirement::Aml));
    assert_eq!(
        alerts_of(&aml, AlertType::DrinkingEvent).len(),
        1,
        "{:#?}",
        alcohol_alerts(&aml)
    );
    assert_eq!(day(&aml, "2026-06-01").status, SoberDayStatus::Drinking);
}
