//! Curfew rule timelines through the real pipeline (`InlineDriver`): every code AL08–AL12, both
//! 2026 clock changes, grace boundaries, RF and GPS presence (with imprecise fixes and drift), a
//! window with no data, late data that changes a verdict, several addresses and order dates.

use std::sync::Arc;
use tagstream::formats::orders_file::{parse_orders, OrdersFile};
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::{Alert, AlertType, Batch, Position, PositionSource, Reading, ReadingBody};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{
    ActivationDirectory, ActivationInfo, PipelineConfig, Rule, RuleContext, VecSink,
};
use tagstream::replay::OutputCollector;
use tagstream::rules::curfew::timetable::CurfewPlan;
use tagstream::rules::curfew::{CurfewConfig, CurfewRule};
use tagstream::rules::StandardRules;

const HOME: (f64, f64) = (51.4545, -2.5879);
const PARTNER: (f64, f64) = (51.4800, -2.6200);
/// About 1.1 km north of home.
const TOWN: (f64, f64) = (51.4645, -2.5879);
const MIN: i64 = 60_000;

fn t(text: &str) -> i64 {
    parse_time(text).unwrap_or_else(|e| panic!("{e}"))
}

fn fix_at(t_ms: i64, at: (f64, f64), precision_m: f64, source: PositionSource) -> Reading {
    Reading {
        t_ms,
        battery_pct: None,
        body: ReadingBody::Position(Position {
            lat_e7: (at.0 * 1e7).round() as i32,
            lon_e7: (at.1 * 1e7).round() as i32,
            precision_cm: (precision_m * 100.0) as u32,
            source,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: None,
        }),
    }
}

/// GPS fixes every `step_min` minutes over `[from, to)` at one place, 8 m precision.
fn track(from: &str, to: &str, step_min: i64, at: (f64, f64)) -> Vec<Reading> {
    let (a, b) = (t(from), t(to));
    (0..)
        .map(|k| a + k * step_min * MIN)
        .take_while(|x| *x < b)
        .map(|x| fix_at(x, at, 8.0, PositionSource::Gps))
        .collect()
}

fn rf(at: &str, in_range: bool) -> Reading {
    Reading {
        t_ms: t(at),
        battery_pct: None,
        body: ReadingBody::Rf { in_range },
    }
}

/// Orders: P1 (tag T1) has the curfew given as JSON condition text; P2 (tag T2) has none and
/// drives the event-time clock when needed.
fn orders(curfew: &str, from: &str, to: &str) -> OrdersFile {
    let doc = format!(
        r#"{{"people":[{{"id":"P1"}},{{"id":"P2"}}],
 "activations":[{{"id":"A1","person":"P1","tag":"T1","from":"2026-01-01T00:00:00Z"}},
                {{"id":"A2","person":"P2","tag":"T2","from":"2026-01-01T00:00:00Z"}}],
 "orders":[{{"id":"O1","person":"P1","from":"{from}","to":"{to}","conditions":[{curfew}]}}]}}"#
    );
    let load = parse_orders(&doc).expect("orders document");
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    load.accepted
}

fn daily(grace_min: u32) -> String {
    format!(
        r#"{{"type":"curfew","grace_min":{grace_min},
   "addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":50}}],
   "timetable":[{{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"19:00","end":"07:00","address":"home"}}]}}"#,
        HOME.0, HOME.1
    )
}

fn run(orders: &OrdersFile, batches: Vec<(&str, Vec<Reading>)>) -> Vec<Alert> {
    let config = PipelineConfig {
        no_contact_ms: 30 * 24 * 3600 * 1000,
        ..PipelineConfig::default()
    };
    let directory = Arc::new(ActivationDirectory::new(&orders.activations));
    let factory = Box::new(StandardRules::new(config, Default::default(), orders));
    assert!(factory.build_errors().is_empty());
    let mut out = OutputCollector::default();
    let mut driver = InlineDriver::new(directory, config, factory, 2, &mut out);
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
    out.alerts
        .sorted()
        .into_iter()
        .filter(|a| a.alert_type == AlertType::CurfewViolation)
        .collect()
}

fn hhmm(t_ms: i64) -> String {
    format_time(t_ms)[5..16].to_string()
}

/// `code start..end confidence [late] [withdrawn]`, times as `MM-DDTHH:MM` UTC.
fn summary(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            let conf = match a.confidence {
                Some(tagstream::model::Confidence::Confirmed) => "confirmed",
                Some(tagstream::model::Confidence::Possible) => "possible",
                None => "-",
            };
            format!(
                "{} {}..{} {}{}{}",
                a.code.as_deref().unwrap_or("-"),
                hhmm(a.start),
                a.end.map(hhmm).unwrap_or("open".into()),
                conf,
                if a.late { " late" } else { "" },
                if a.withdrawn.is_some() {
                    " withdrawn"
                } else {
                    ""
                }
            )
        })
        .collect()
}

fn cat(parts: Vec<Vec<Reading>>) -> Vec<Reading> {
    parts.into_iter().flatten().collect()
}

// 2026-03-02 is a Monday; March before the 29th is GMT, so local time = UTC.

#[test]
fn al08_late_return_is_updated_in_place_and_closed_by_al09() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let readings = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-02T19:40:00Z", 2, TOWN),
        track("2026-03-02T19:40:00Z", "2026-03-03T07:30:00Z", 2, HOME),
    ]);
    let alerts = run(&o, vec![("T1", readings)]);
    assert_eq!(
        summary(&alerts),
        vec![
            "AL08 03-02T19:00..03-02T19:40 confirmed",
            "AL09 03-02T19:40..03-02T19:40 confirmed"
        ]
    );
    assert!(alerts
        .iter()
        .all(|a| a.rule == "curfew/5" && a.person == "P1"));
    assert!(!alerts[0].evidence.is_empty());
}

#[test]
fn al08_is_raised_while_still_out_and_the_same_alert_is_closed_later() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let alerts_open = run(
        &o,
        vec![(
            "T1",
            track("2026-03-02T18:00:00Z", "2026-03-02T19:30:00Z", 2, TOWN),
        )],
    );
    assert_eq!(
        summary(&alerts_open),
        vec!["AL08 03-02T19:00..open confirmed"]
    );
    let alerts = run(
        &o,
        vec![
            (
                "T1",
                track("2026-03-02T18:00:00Z", "2026-03-02T19:30:00Z", 2, TOWN),
            ),
            (
                "T1",
                track("2026-03-02T19:30:00Z", "2026-03-02T20:00:00Z", 2, HOME),
            ),
        ],
    );
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].id, alerts_open[0].id, "updated in place, same id");
}

#[test]
fn al12_out_for_the_whole_window() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let alerts = run(
        &o,
        vec![(
            "T1",
            track("2026-03-02T18:00:00Z", "2026-03-03T08:00:00Z", 2, TOWN),
        )],
    );
    assert_eq!(
        summary(&alerts),
        vec!["AL12 03-02T19:00..03-03T07:00 confirmed"]
    );
}

#[test]
fn al10_left_during_the_window_and_came_back() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let readings = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-02T22:00:00Z", 2, HOME),
        track("2026-03-02T22:00:00Z", "2026-03-02T23:00:00Z", 2, TOWN),
        track("2026-03-02T23:00:00Z", "2026-03-03T08:00:00Z", 2, HOME),
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", readings)])),
        vec!["AL10 03-02T22:00..03-02T23:00 confirmed"]
    );
}

#[test]
fn al11_left_before_the_end_and_not_back() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let readings = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-03T06:00:00Z", 2, HOME),
        track("2026-03-03T06:00:00Z", "2026-03-03T09:00:00Z", 2, TOWN),
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", readings)])),
        vec!["AL11 03-03T06:00..03-03T07:00 confirmed"]
    );
}

#[test]
fn windows_across_both_2026_clock_changes_have_their_real_length() {
    let o = orders(&daily(0), "2026-03-28", "2026-03-28");
    // Saturday 28 March 19:00 GMT to Sunday 29 March 07:00 BST: 11 hours.
    let spring = run(
        &o,
        vec![(
            "T1",
            track("2026-03-28T18:00:00Z", "2026-03-29T07:00:00Z", 2, TOWN),
        )],
    );
    assert_eq!(
        summary(&spring),
        vec!["AL12 03-28T19:00..03-29T06:00 confirmed"]
    );
    assert_eq!(spring[0].end.unwrap() - spring[0].start, 11 * 60 * MIN);
    // Saturday 24 October 19:00 BST to Sunday 25 October 07:00 GMT: 13 hours.
    let o = orders(&daily(0), "2026-10-24", "2026-10-24");
    let autumn = run(
        &o,
        vec![(
            "T1",
            track("2026-10-24T17:00:00Z", "2026-10-25T08:00:00Z", 2, TOWN),
        )],
    );
    assert_eq!(
        summary(&autumn),
        vec!["AL12 10-24T18:00..10-25T07:00 confirmed"]
    );
    assert_eq!(autumn[0].end.unwrap() - autumn[0].start, 13 * 60 * MIN);
}

#[test]
fn grace_boundaries_with_rf_presence() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let night = |back: &str| {
        vec![(
            "T1",
            vec![
                rf("2026-03-02T18:00:00Z", false),
                rf(back, true),
                rf("2026-03-03T07:10:00Z", true),
            ],
        )]
    };
    // Back exactly at window start + grace: inside the grace period.
    assert!(run(&o, night("2026-03-02T19:05:00Z")).is_empty());
    // One minute later: AL08 then AL09.
    assert_eq!(
        summary(&run(&o, night("2026-03-02T19:06:00Z"))),
        vec![
            "AL08 03-02T19:00..03-02T19:06 confirmed",
            "AL09 03-02T19:06..03-02T19:06 confirmed"
        ]
    );
}

#[test]
fn rf_presence_is_used_where_the_activation_has_rf_readings() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    // GPS drifts far away (indoors, multipath) but the home monitoring unit hears the tag.
    let readings = cat(vec![
        vec![rf("2026-03-02T18:30:00Z", true)],
        track("2026-03-02T18:00:00Z", "2026-03-03T08:00:00Z", 5, TOWN),
        vec![
            rf("2026-03-02T23:00:00Z", false),
            rf("2026-03-02T23:40:00Z", true),
        ],
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", readings)])),
        vec!["AL10 03-02T23:00..03-02T23:40 confirmed"]
    );
}

#[test]
fn gps_presence_takes_fix_precision_into_account() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let near = (HOME.0 + 0.0004, HOME.1); // about 44 m from home, radius 50 m
    let mut readings = track("2026-03-02T18:00:00Z", "2026-03-02T18:50:00Z", 2, HOME);
    // Indoors all evening: fixes 44 m out with 30 m precision (uncertain), Wi-Fi fixes at 90 m
    // precision (uncertain), and one drifting GPS fix 1 km away with a good precision estimate.
    let (a, b) = (t("2026-03-02T18:50:00Z"), t("2026-03-03T08:00:00Z"));
    for (k, x) in (0..)
        .map(|k| (k, a + k * 2 * MIN))
        .take_while(|(_, x)| *x < b)
    {
        readings.push(match k % 3 {
            0 => fix_at(x, near, 30.0, PositionSource::Gps),
            1 => fix_at(x, HOME, 90.0, PositionSource::Wifi),
            _ => fix_at(x, near, 5.0, PositionSource::Gps),
        });
    }
    readings.push(fix_at(
        t("2026-03-02T23:01:00Z"),
        TOWN,
        10.0,
        PositionSource::Gps,
    ));
    assert!(
        run(&o, vec![("T1", readings.clone())]).is_empty(),
        "no breach without evidence of absence"
    );

    // Imprecise fixes out in town still show absence when the whole circle is outside the radius.
    let out = track("2026-03-02T18:00:00Z", "2026-03-03T08:00:00Z", 3, TOWN)
        .into_iter()
        .map(|mut r| {
            if let ReadingBody::Position(p) = &mut r.body {
                p.precision_cm = 40_000;
                p.source = PositionSource::Lbs;
            }
            r
        })
        .collect();
    assert_eq!(
        summary(&run(&o, vec![("T1", out)])),
        vec!["AL12 03-02T19:00..03-03T07:00 confirmed"]
    );
}

#[test]
fn a_window_with_no_data_is_judged_when_the_clock_passes_it() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let home_before = track("2026-03-02T17:00:00Z", "2026-03-02T18:00:00Z", 2, HOME);
    // T2 drives the event-time clock past the commencement check plus the settle time (15 min).
    let clock = |until: &str| ("T2", track("2026-03-02T18:00:00Z", until, 5, TOWN));
    let alerts = run(
        &o,
        vec![("T1", home_before.clone()), clock("2026-03-02T19:25:00Z")],
    );
    assert_eq!(summary(&alerts), vec!["AL08 03-02T19:00..open possible"]);
    let alerts = run(
        &o,
        vec![("T1", home_before.clone()), clock("2026-03-03T07:30:00Z")],
    );
    assert_eq!(
        summary(&alerts),
        vec!["AL12 03-02T19:00..03-03T07:00 possible"]
    );
    // The backlog arrives after a signal loss: home all night. The possible breach is withdrawn
    // (kept as it was, with `withdrawn`: no change, later data) and marked late.
    let alerts = run(
        &o,
        vec![
            ("T1", home_before),
            clock("2026-03-03T07:30:00Z"),
            (
                "T1",
                track("2026-03-02T18:00:00Z", "2026-03-03T07:30:00Z", 2, HOME),
            ),
        ],
    );
    assert_eq!(
        summary(&alerts),
        vec!["AL12 03-02T19:00..03-03T07:00 possible late withdrawn"]
    );
}

#[test]
fn late_data_that_changes_a_verdict_updates_the_alert_marked_late() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let out = track("2026-03-02T18:00:00Z", "2026-03-02T20:00:00Z", 2, TOWN);
    let after = track("2026-03-02T21:00:00Z", "2026-03-03T08:00:00Z", 2, HOME);
    let first = run(&o, vec![("T1", out.clone()), ("T1", after.clone())]);
    assert_eq!(
        summary(&first),
        vec![
            "AL08 03-02T19:00..03-02T21:00 confirmed",
            "AL09 03-02T21:00..03-02T21:00 confirmed"
        ]
    );
    // The 20:00–21:00 backlog shows the person home from 20:20.
    let backlog = cat(vec![
        track("2026-03-02T20:00:00Z", "2026-03-02T20:20:00Z", 2, TOWN),
        track("2026-03-02T20:20:00Z", "2026-03-02T21:00:00Z", 2, HOME),
    ]);
    let second = run(&o, vec![("T1", out), ("T1", after), ("T1", backlog)]);
    assert_eq!(
        summary(&second),
        vec![
            "AL08 03-02T19:00..03-02T20:20 confirmed late",
            "AL09 03-02T20:20..03-02T20:20 confirmed late"
        ]
    );
    assert_eq!(first[0].id, second[0].id);
    assert_eq!(first[1].id, second[1].id);
}

#[test]
fn several_addresses_are_checked_against_the_window_address() {
    let curfew = format!(
        r#"{{"type":"curfew","grace_min":0,
   "addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":50}},{{"id":"partner","lat":{},"lon":{},"radius_m":60}}],
   "timetable":[{{"days":["mon","tue","wed","thu"],"start":"19:00","end":"07:00","address":"home"}},
                {{"days":["fri","sat","sun"],"start":"20:00","end":"08:00","address":"partner"}}]}}"#,
        HOME.0, HOME.1, PARTNER.0, PARTNER.1
    );
    let o = orders(&curfew, "2026-03-05", "2026-03-31");
    // Thursday 5 March at home, Friday 6 March at the partner's: compliant.
    let ok = cat(vec![
        track("2026-03-05T18:00:00Z", "2026-03-06T18:00:00Z", 2, HOME),
        track("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", 2, PARTNER),
    ]);
    assert!(run(&o, vec![("T1", ok)]).is_empty());
    // Friday night at home instead of the partner's: out for the whole window.
    let wrong = track("2026-03-05T18:00:00Z", "2026-03-07T09:00:00Z", 2, HOME);
    assert_eq!(
        summary(&run(&o, vec![("T1", wrong)])),
        vec!["AL12 03-06T20:00..03-07T08:00 confirmed"]
    );
}

#[test]
fn only_windows_starting_on_the_order_dates_are_monitored() {
    let o = orders(&daily(5), "2026-03-03", "2026-03-04");
    let alerts = run(
        &o,
        vec![(
            "T1",
            track("2026-03-02T12:00:00Z", "2026-03-06T12:00:00Z", 3, TOWN),
        )],
    );
    assert_eq!(
        summary(&alerts),
        vec![
            "AL12 03-03T19:00..03-04T07:00 confirmed",
            "AL12 03-04T19:00..03-05T07:00 confirmed"
        ]
    );
}

#[test]
fn release_day_curfew_is_an_order_of_two_days_with_a_17_to_00_window() {
    let curfew = format!(
        r#"{{"type":"curfew","grace_min":0,"addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":75}}],
   "timetable":[{{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"17:00","end":"00:00","address":"home"}}]}}"#,
        HOME.0, HOME.1
    );
    let o = orders(&curfew, "2026-03-10", "2026-03-11");
    let readings = cat(vec![
        track("2026-03-10T12:00:00Z", "2026-03-10T18:00:00Z", 2, TOWN),
        track("2026-03-10T18:00:00Z", "2026-03-13T00:30:00Z", 2, HOME),
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", readings)])),
        vec![
            "AL08 03-10T17:00..03-10T18:00 confirmed",
            "AL09 03-10T18:00..03-10T18:00 confirmed"
        ]
    );
}

#[test]
fn replaying_the_same_readings_gives_identical_alerts() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let batches = || {
        vec![(
            "T1",
            track("2026-03-02T18:00:00Z", "2026-03-03T08:00:00Z", 2, TOWN),
        )]
    };
    let (a, b) = (run(&o, batches()), run(&o, batches()));
    assert_eq!(a, b);
    let json = |v: &[Alert]| {
        v.iter()
            .map(|x| serde_json::to_string(x).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(json(&a), json(&b));
}

#[test]
fn total_absence_time_is_tracked_per_order() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let Some(tagstream::model::Condition::Curfew(c)) = o.orders[0].conditions.first() else {
        panic!("curfew")
    };
    let plan = Arc::new(CurfewPlan::compile(&o.orders[0], 0, c).unwrap());
    let info = ActivationInfo {
        id: "A1".into(),
        person: "P1".into(),
        tag: "T1".into(),
        from_ms: t("2026-03-01T00:00:00Z"),
        to_ms: None,
    };
    let mut rule = CurfewRule::new(plan, CurfewConfig::default(), &info);
    let mut sink = VecSink::default();
    let readings = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-02T19:30:00Z", 2, TOWN), // AL08 19:00–19:30
        track("2026-03-02T19:30:00Z", "2026-03-02T22:00:00Z", 2, HOME),
        track("2026-03-02T22:00:00Z", "2026-03-02T22:40:00Z", 2, TOWN), // AL10 22:00–22:40
        track("2026-03-02T22:40:00Z", "2026-03-03T08:00:00Z", 2, HOME),
    ]);
    for r in &readings {
        let mut ctx = RuleContext::new(&info, &mut sink, None);
        rule.on_reading(&mut ctx, r, false);
    }
    let tally = rule.absence();
    assert_eq!(tally.order, "O1");
    assert_eq!(tally.confirmed_ms, 70 * MIN);
    assert_eq!(tally.possible_ms, 0);
    assert_eq!(tally.breached_windows, 1);
}

/// A network fix just outside the address by its stated radius, next to one GPS multipath
/// outlier, is not a departure: network fixes count as away only when twice their radius clears
/// the address (`network_away_scale`), so the pair no longer makes two away fixes.
#[test]
fn a_marginal_network_fix_and_one_multipath_outlier_are_not_a_departure() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    // TOWN is about 1.1 km from HOME: outside a 50 m radius by more than 800 m, not by 1,600 m.
    let readings = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-02T23:00:00Z", 2, HOME),
        vec![
            fix_at(t("2026-03-02T23:01:00Z"), TOWN, 800.0, PositionSource::Lbs),
            fix_at(t("2026-03-02T23:02:00Z"), TOWN, 15.0, PositionSource::Gps),
        ],
        track("2026-03-02T23:03:00Z", "2026-03-03T08:00:00Z", 2, HOME),
    ]);
    assert!(summary(&run(&o, vec![("T1", readings.clone())])).is_empty());
    // The same LBS fix far enough out does count: with two more GPS fixes that is a departure
    // (`gps_away_min_fixes` = 3).
    let far = (HOME.0 + 0.05, HOME.1); // about 5.6 km
    let departed = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-02T23:00:00Z", 2, HOME),
        vec![
            fix_at(t("2026-03-02T23:01:00Z"), far, 800.0, PositionSource::Lbs),
            fix_at(t("2026-03-02T23:02:00Z"), far, 15.0, PositionSource::Gps),
            fix_at(t("2026-03-02T23:03:00Z"), far, 15.0, PositionSource::Gps),
        ],
        track("2026-03-02T23:40:00Z", "2026-03-03T08:00:00Z", 2, HOME),
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", departed)])),
        vec!["AL10 03-02T23:01..03-02T23:40 confirmed"]
    );
}

fn event(at: &str, e: tagstream::model::DeviceEvent) -> Reading {
    Reading {
        t_ms: t(at),
        battery_pct: None,
        body: ReadingBody::Event(e),
    }
}

/// A dead tag is invisible to the home unit: "out of range" after `battery_dead` (and before the
/// tag is heard from again) is no evidence of absence, so no AL12 (the health rule raises AL23).
#[test]
fn rf_absence_while_the_tag_is_dead_is_not_a_breach() {
    use tagstream::model::DeviceEvent::{BatteryDead, Charging};
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let night = cat(vec![
        vec![
            rf("2026-03-02T18:30:00Z", true),
            event("2026-03-02T18:40:00Z", BatteryDead),
        ],
        vec![rf("2026-03-02T18:41:00Z", false)],
        vec![
            event("2026-03-03T07:30:00Z", Charging),
            rf("2026-03-03T07:31:00Z", true),
        ],
    ]);
    let alerts = run(&o, vec![("T1", night)]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));

    // Once the tag is alive again (charging), the unit's "out of range" counts as before.
    let next = cat(vec![
        vec![
            rf("2026-03-02T18:30:00Z", true),
            event("2026-03-02T18:40:00Z", BatteryDead),
        ],
        vec![
            event("2026-03-02T18:45:00Z", Charging),
            rf("2026-03-02T18:50:00Z", false),
        ],
        vec![rf("2026-03-03T07:31:00Z", true)],
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", next)])),
        vec!["AL12 03-02T19:00..03-03T07:00 confirmed"]
    );
}

/// Two consecutive multipath outliers (seen in the simulator: 387 m then 186 m out, each with a
/// "good" precision, indoors at 05:37) are not a departure: a departure needs three away fixes
/// with no home fix between (`gps_away_min_fixes`), and a third outlier in a row is far rarer.
#[test]
fn two_consecutive_multipath_outliers_are_not_a_departure() {
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let readings = cat(vec![
        track("2026-03-02T18:00:00Z", "2026-03-03T05:37:00Z", 2, HOME),
        vec![
            fix_at(t("2026-03-03T05:37:00Z"), TOWN, 23.0, PositionSource::Gps),
            fix_at(t("2026-03-03T05:38:00Z"), TOWN, 30.0, PositionSource::Gps),
        ],
        track("2026-03-03T05:39:00Z", "2026-03-03T08:00:00Z", 2, HOME),
    ]);
    let alerts = run(&o, vec![("T1", readings)]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
}

/// Arriving home indoors: the last fix on the way places the person 120 m out, then GPS fails
/// and the tag sends Wi-Fi/LBS fixes whose circles overlap the address (uncertain), and the
/// first precise home fix comes minutes later. The return is dated from the first fix that no
/// longer places the person away, not from that precise fix.
#[test]
fn an_indoor_arrival_is_dated_from_the_first_fix_that_no_longer_places_the_person_away() {
    let street = (HOME.0 + 0.0011, HOME.1); // about 120 m out
    let arrival = |grace: u32, last_out: &str, first_in: &str| {
        let o = orders(&daily(grace), "2026-03-02", "2026-03-31");
        let (a, b) = (t(last_out), t(first_in));
        let mut readings = track("2026-03-02T18:00:00Z", last_out, 1, TOWN);
        readings.push(fix_at(a, street, 5.0, PositionSource::Gps));
        let mut x = a + 3 * MIN;
        while x < b {
            readings.push(fix_at(x, HOME, 250.0, PositionSource::Wifi));
            x += 3 * MIN;
        }
        readings.extend(track(first_in, "2026-03-03T08:00:00Z", 2, HOME));
        summary(&run(&o, vec![("T1", readings)]))
    };
    // Late return: in at about 19:43 (first Wi-Fi fix), first GPS fix at home at 19:52.
    assert_eq!(
        arrival(5, "2026-03-02T19:40:00Z", "2026-03-02T19:52:00Z"),
        vec![
            "AL08 03-02T19:00..03-02T19:43 confirmed",
            "AL09 03-02T19:43..03-02T19:43 confirmed"
        ]
    );
    // Within a 10-minute grace: in at 19:01, first GPS fix at home only at 19:12 (after the
    // commencement check at 19:10). No breach.
    assert_eq!(
        arrival(10, "2026-03-02T18:58:00Z", "2026-03-02T19:12:00Z"),
        Vec::<String>::new()
    );
    // Grace 5: 120 m out at 19:01, Wi-Fi from 19:04, first GPS fix at home at 19:09. Arrival by
    // the check (19:05) cannot be excluded until that fix: the rule waits for it (up to
    // `settle_ms`) rather than raising an AL08 it would withdraw four minutes later.
    assert_eq!(
        arrival(5, "2026-03-02T19:01:00Z", "2026-03-02T19:09:00Z"),
        Vec::<String>::new()
    );
}

/// A GPS tag that went flat before the window: nothing is seen all night, and that is the
/// battery alert's business (AL23), not a possible AL08/AL12 — nor a "confirmed" breach from
/// the last away fixes before it died.
#[test]
fn a_tag_that_is_dead_at_the_window_start_raises_no_curfew_alert() {
    use tagstream::model::DeviceEvent::{BatteryDead, Charging};
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let clock = (
        "T2",
        track("2026-03-02T12:00:00Z", "2026-03-03T09:00:00Z", 5, TOWN),
    );
    for last_seen in [HOME, TOWN] {
        let readings = cat(vec![
            track("2026-03-02T16:00:00Z", "2026-03-02T16:40:00Z", 1, last_seen),
            vec![event("2026-03-02T16:40:00Z", BatteryDead)],
        ]);
        let revived = vec![
            event("2026-03-03T08:30:00Z", Charging),
            fix_at(t("2026-03-03T08:31:00Z"), HOME, 8.0, PositionSource::Gps),
        ];
        let alerts = run(&o, vec![("T1", readings), clock.clone(), ("T1", revived)]);
        assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
    }
    // The same silence without a dead battery is still a possible breach.
    let silent = track("2026-03-02T16:00:00Z", "2026-03-02T16:40:00Z", 1, HOME);
    assert_eq!(
        summary(&run(&o, vec![("T1", silent), clock])),
        vec!["AL12 03-02T19:00..03-03T07:00 possible"]
    );
}

/// The home unit lost power while the wearer was out (its last report: out of range) and got it
/// back at 20:30; the tag's fixes show the wearer home from 18:00. The unit's stale report is no
/// evidence for the window: a window the unit was off for is judged from the fixes.
#[test]
fn a_window_the_home_unit_was_off_for_is_judged_from_the_tags_fixes() {
    use tagstream::model::DeviceEvent::{HmuPowerLoss, HmuPowerRestored};
    let o = orders(&daily(5), "2026-03-02", "2026-03-31");
    let readings = cat(vec![
        vec![rf("2026-03-02T12:00:00Z", false)],
        track("2026-03-02T12:00:00Z", "2026-03-02T18:00:00Z", 2, TOWN),
        vec![
            rf("2026-03-02T16:30:00Z", false),
            event("2026-03-02T16:47:00Z", HmuPowerLoss),
        ],
        track("2026-03-02T18:00:00Z", "2026-03-03T08:00:00Z", 2, HOME),
        vec![
            event("2026-03-02T20:30:00Z", HmuPowerRestored),
            rf("2026-03-02T20:31:00Z", true),
        ],
    ]);
    let mut readings = readings;
    readings.sort_by_key(|r| r.t_ms);
    let alerts = run(&o, vec![("T1", readings.clone())]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
    // Out at the window start by the fixes too: the breach is still seen.
    let out: Vec<Reading> = readings
        .into_iter()
        .map(|mut r| {
            if r.t_ms < t("2026-03-02T19:30:00Z") {
                if let ReadingBody::Position(p) = &mut r.body {
                    p.lat_e7 = (TOWN.0 * 1e7).round() as i32;
                }
            }
            r
        })
        .collect();
    assert_eq!(
        summary(&run(&o, vec![("T1", out)])),
        vec![
            "AL08 03-02T19:00..03-02T19:30 confirmed",
            "AL09 03-02T19:30..03-02T19:30 confirmed"
        ]
    );
}

/// Home Mon–Thu 19:00–07:00, partner Fri–Sun 20:00–08:00; `hmu` marks the address with the home
/// monitoring unit (none when `None`).
fn two_addresses(hmu: Option<&str>) -> String {
    let mark = |id: &str| {
        if hmu == Some(id) {
            r#","hmu":true"#
        } else {
            ""
        }
    };
    format!(
        r#"{{"type":"curfew","grace_min":0,
   "addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":50{}}},{{"id":"partner","lat":{},"lon":{},"radius_m":60{}}}],
   "timetable":[{{"days":["mon","tue","wed","thu"],"start":"19:00","end":"07:00","address":"home"}},
                {{"days":["fri","sat","sun"],"start":"20:00","end":"08:00","address":"partner"}}]}}"#,
        HOME.0,
        HOME.1,
        mark("home"),
        PARTNER.0,
        PARTNER.1,
        mark("partner")
    )
}

/// RF reports every 30 minutes over `[from, to)`, all `in_range` or all not.
fn rf_heartbeats(from: &str, to: &str, in_range: bool) -> Vec<Reading> {
    let (a, b) = (t(from), t(to));
    (0..)
        .map(|k| a + k * 30 * MIN)
        .take_while(|x| *x < b)
        .map(|x| Reading {
            t_ms: x,
            battery_pct: None,
            body: ReadingBody::Rf { in_range },
        })
        .collect()
}

fn by_time(parts: Vec<Vec<Reading>>) -> Vec<Reading> {
    let mut all = cat(parts);
    all.sort_by_key(|r| r.t_ms);
    all
}

/// The unit is at home. Thursday night at home: RF in range counts there even though the fixes
/// drift 1 km away. Friday night at the partner's, out of the unit's range: judged from the
/// fixes, which place the wearer at the partner's — compliant (RF "out of range" would have been
/// a whole-night absence).
#[test]
fn rf_counts_only_for_windows_at_the_hmu_address() {
    let o = orders(&two_addresses(Some("home")), "2026-03-05", "2026-03-31");
    let readings = by_time(vec![
        rf_heartbeats("2026-03-05T18:00:00Z", "2026-03-06T18:30:00Z", true),
        track("2026-03-05T18:00:00Z", "2026-03-06T18:00:00Z", 2, TOWN),
        rf_heartbeats("2026-03-06T19:00:00Z", "2026-03-07T09:00:00Z", false),
        track("2026-03-06T19:00:00Z", "2026-03-07T09:00:00Z", 2, PARTNER),
    ]);
    let alerts = run(&o, vec![("T1", readings)]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
}

/// The unit is at home and the wearer spends Friday night there instead of at the partner's: RF
/// "in range" is no presence at the partner's address — it places the wearer at the unit, away.
/// With fixes (at home) and without any (an RF-only tag) the whole window is a confirmed AL12.
#[test]
fn rf_in_range_during_a_window_at_the_other_address_is_absence_there() {
    let o = orders(&two_addresses(Some("home")), "2026-03-06", "2026-03-31");
    let rf_home = rf_heartbeats("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", true);
    let with_fixes = by_time(vec![
        rf_home.clone(),
        track("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", 2, HOME),
    ]);
    for readings in [with_fixes, rf_home] {
        assert_eq!(
            summary(&run(&o, vec![("T1", readings)])),
            vec!["AL12 03-06T20:00..03-07T08:00 confirmed"]
        );
    }
    // Out of the unit's range and no fixes: nothing places the wearer at the partner's, nor away.
    let silent = rf_heartbeats("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", false);
    assert_eq!(
        summary(&run(&o, vec![("T1", silent)])),
        vec!["AL12 03-06T20:00..03-07T08:00 possible"]
    );
}

/// With the unit at the partner's it is the other way round: Thursday night at home is judged from
/// the fixes, and RF in range at the partner's that night is an absence from home.
#[test]
fn the_hmu_may_be_at_the_second_address() {
    let o = orders(&two_addresses(Some("partner")), "2026-03-05", "2026-03-31");
    let home_night = by_time(vec![
        rf_heartbeats("2026-03-05T18:00:00Z", "2026-03-06T08:00:00Z", false),
        track("2026-03-05T18:00:00Z", "2026-03-06T08:00:00Z", 2, HOME),
    ]);
    let alerts = run(&o, vec![("T1", home_night)]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
    let at_partner = by_time(vec![
        rf_heartbeats("2026-03-05T18:00:00Z", "2026-03-06T08:00:00Z", true),
        track("2026-03-05T18:00:00Z", "2026-03-06T08:00:00Z", 2, PARTNER),
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", at_partner)])),
        vec!["AL12 03-05T19:00..03-06T07:00 confirmed"]
    );
}

/// Backward compatibility: with no address of the person marked `hmu`, RF counts for every
/// window's address as before (a unit at each address) — RF in range at the partner's on Friday
/// is presence there whatever the drifting fixes say, out of range is absence.
#[test]
fn without_any_hmu_address_rf_counts_for_every_address() {
    let o = orders(&two_addresses(None), "2026-03-06", "2026-03-31");
    let present = by_time(vec![
        rf_heartbeats("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", true),
        track("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", 2, TOWN),
    ]);
    let alerts = run(&o, vec![("T1", present)]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
    let absent = by_time(vec![
        rf_heartbeats("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", false),
        track("2026-03-06T18:00:00Z", "2026-03-07T09:00:00Z", 2, PARTNER),
    ]);
    assert_eq!(
        summary(&run(&o, vec![("T1", absent)])),
        vec!["AL12 03-06T20:00..03-07T08:00 confirmed"]
    );
}

/// The unit is marked in one order (home); another order of the same person (a curfew at the
/// partner's, marking nothing) is judged from the fixes too, and a third order's curfew at the
/// same home (written again, unmarked) still counts RF: the unit is one device at one place.
#[test]
fn an_hmu_marked_in_one_order_applies_to_the_persons_other_orders() {
    let home_only = format!(
        r#"{{"type":"curfew","grace_min":0,
   "addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":50,"hmu":true}}],
   "timetable":[{{"days":["mon","tue","wed","thu"],"start":"19:00","end":"07:00","address":"home"}}]}}"#,
        HOME.0, HOME.1
    );
    let partner_only = format!(
        r#"{{"type":"curfew","grace_min":0,
   "addresses":[{{"id":"p","lat":{},"lon":{},"radius_m":60}}],
   "timetable":[{{"days":["fri"],"start":"20:00","end":"08:00","address":"p"}}]}}"#,
        PARTNER.0, PARTNER.1
    );
    let home_again = format!(
        r#"{{"type":"curfew","grace_min":0,
   "addresses":[{{"id":"h","lat":{},"lon":{},"radius_m":75}}],
   "timetable":[{{"days":["sat"],"start":"17:00","end":"00:00","address":"h"}}]}}"#,
        HOME.0, HOME.1
    );
    let doc = format!(
        r#"{{"people":[{{"id":"P1"}}],
 "activations":[{{"id":"A1","person":"P1","tag":"T1","from":"2026-01-01T00:00:00Z"}}],
 "orders":[{{"id":"O1","person":"P1","from":"2026-03-06","to":"2026-03-31","conditions":[{home_only}]}},
           {{"id":"O2","person":"P1","from":"2026-03-05","to":"2026-03-31","conditions":[{partner_only}]}},
           {{"id":"O3","person":"P1","from":"2026-03-05","to":"2026-03-31","conditions":[{home_again}]}}]}}"#
    );
    let load = parse_orders(&doc).expect("orders document");
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    // Friday night at the partner's (out of the unit's range), Saturday evening at home with the
    // fixes drifting away while the unit hears the tag.
    let readings = by_time(vec![
        rf_heartbeats("2026-03-06T19:00:00Z", "2026-03-07T09:00:00Z", false),
        track("2026-03-06T19:00:00Z", "2026-03-07T09:00:00Z", 2, PARTNER),
        rf_heartbeats("2026-03-07T09:00:00Z", "2026-03-08T01:00:00Z", true),
        track("2026-03-07T09:00:00Z", "2026-03-08T01:00:00Z", 2, TOWN),
    ]);
    let alerts = run(&load.accepted, vec![("T1", readings)]);
    assert!(summary(&alerts).is_empty(), "{:?}", summary(&alerts));
}
