//! Acceptance on real data: the 13 SCRAM bracelet exports of the UCI bar-crawl study
//! (`fixtures/alcohol/scram-barcrawl/`, temperature in °F) driven through the real pipeline, each
//! with its own activation and an abstinence alcohol order. Every participant drank heavily on
//! the night of 2–3 May 2017 after alcohol-free hours following fitting, and wore the bracelet
//! throughout (ankle temperatures 19–38 °C, brief IR jumps).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tagstream::formats::orders_file::OrdersFile;
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::{
    Activation, AlcoholCondition, AlcoholMode, Alert, AlertType, Batch, Condition, Order, Person,
    Reading, ReadingBody, SoberDay, SoberDayStatus, TacSample, TimeMs,
};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{ActivationDirectory, PipelineConfig};
use tagstream::replay::OutputCollector;
use tagstream::rules::alcohol::AlcoholConfig;
use tagstream::rules::{RulesConfig, StandardRules};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/alcohol/scram-barcrawl")
}

struct Export {
    name: String,
    readings: Vec<Reading>,
}

/// Reads `time_utc,tac_gdl,ir_voltage,temperature_f`, converting °F to °C.
fn load(path: &Path) -> Export {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("time_utc,tac_gdl,ir_voltage,temperature_f")
    );
    let readings = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 4, "{line}");
            let num = |i: usize| {
                f[i].trim()
                    .parse::<f64>()
                    .unwrap_or_else(|e| panic!("{line}: {e}"))
            };
            let temp_c = (num(3) - 32.0) * 5.0 / 9.0;
            Reading {
                t_ms: parse_time(f[0]).unwrap(),
                battery_pct: None,
                body: ReadingBody::Tac(TacSample {
                    tac_ugdl: (num(1) * 1e6).round() as i32,
                    ir_uv: (num(2) * 1e6).round() as i32,
                    temp_mc: (temp_c * 1e3).round() as i32,
                }),
            }
        })
        .collect();
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    Export { name, readings }
}

fn exports() -> Vec<Export> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("fixtures/alcohol/scram-barcrawl is in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 13, "the 13 bar-crawl exports");
    paths.iter().map(|p| load(p)).collect()
}

fn orders(exports: &[Export]) -> OrdersFile {
    let mut doc = OrdersFile::default();
    for e in exports {
        doc.people.push(Person {
            id: format!("P-{}", e.name),
            name: String::new(),
            date_of_birth: None,
            nomis_id: None,
            pnc_ref: None,
            address: None,
            offender_manager: None,
            restricted: false,
        });
        doc.activations.push(Activation {
            id: format!("A-{}", e.name),
            person: format!("P-{}", e.name),
            tag: e.name.clone(),
            from: e.readings[0].t_ms,
            to: None,
        });
        doc.orders.push(Order {
            id: format!("O-{}", e.name),
            person: format!("P-{}", e.name),
            from: "2017-05-02".parse().unwrap(),
            to: Some("2017-05-31".parse().unwrap()),
            conditions: vec![Condition::Alcohol(AlcoholCondition {
                mode: AlcoholMode::Abstinence,
                requirement: None,
            })],
        });
    }
    doc
}

/// The tags upload four readings at a time; the uploads of all tags reach the log in time order.
/// Then three tags nobody wears report every hour up to `clock_to`, moving the event-time clock
/// on so the days settle (no single tag can move the clock, nor jump it hours ahead: see
/// docs/rules.md, "The event-time clock").
fn batches(exports: &[Export], clock_to: &str) -> Vec<Batch> {
    let mut batches = vec![];
    for e in exports {
        for (seq, chunk) in e.readings.chunks(4).enumerate() {
            batches.push(Batch {
                tag: e.name.clone(),
                epoch: 0,
                seq: seq as u64 + 1,
                arrival_ms: 0,
                readings: chunk.to_vec(),
            });
        }
    }
    batches.sort_by_key(|b| (b.readings.last().map(|r| r.t_ms), b.tag.clone()));
    let last_ms = batches
        .iter()
        .filter_map(|b| b.readings.last().map(|r| r.t_ms))
        .max()
        .unwrap();
    let clock_to_ms = parse_time(clock_to).unwrap();
    let mut seq = 0;
    let mut t_ms = last_ms;
    while t_ms < clock_to_ms {
        t_ms = (t_ms + 3_600_000).min(clock_to_ms);
        seq += 1;
        for tag in ["CLOCK1", "CLOCK2", "CLOCK3"] {
            batches.push(Batch {
                tag: tag.into(),
                epoch: 0,
                seq,
                arrival_ms: 0,
                readings: vec![Reading {
                    t_ms,
                    battery_pct: None,
                    body: ReadingBody::Rf { in_range: true },
                }],
            });
        }
    }
    batches
}

fn run(exports: &[Export], clock_to: &str) -> OutputCollector {
    run_with(exports, clock_to, AlcoholConfig::default())
}

fn run_with(exports: &[Export], clock_to: &str, alcohol: AlcoholConfig) -> OutputCollector {
    let doc = orders(exports);
    let config = PipelineConfig::default();
    let directory = Arc::new(ActivationDirectory::new(&doc.activations));
    let factory = Box::new(StandardRules::new(
        config,
        RulesConfig {
            alcohol,
            ..Default::default()
        },
        &doc,
    ));
    let mut out = OutputCollector::default();
    let mut driver = InlineDriver::new(directory, config, factory, 2, &mut out);
    for batch in batches(exports, clock_to) {
        driver.feed(&Arc::new(batch), &mut out);
    }
    out
}

fn alcohol_alerts(out: &OutputCollector, activation: &str) -> Vec<Alert> {
    out.alerts
        .sorted()
        .into_iter()
        .filter(|a| a.activation == activation && a.rule.starts_with("alcohol/"))
        .collect()
}

fn first_alcohol_ms(e: &Export) -> TimeMs {
    e.readings
        .iter()
        .find(|r| matches!(r.body, ReadingBody::Tac(s) if s.tac_ugdl > 0))
        .map(|r| r.t_ms)
        .unwrap()
}

#[test]
fn every_bar_crawl_export_yields_a_confirmed_drinking_event_that_night_and_no_tamper() {
    let exports = exports();
    let out = run(&exports, "2017-05-05T12:00:00Z");
    let night_from = parse_time("2017-05-02T20:00:00Z").unwrap(); // 21:00 BST
    let night_to = parse_time("2017-05-03T04:00:00Z").unwrap(); // 05:00 BST
    let mut report = vec![];
    for e in &exports {
        let activation = format!("A-{}", e.name);
        let alerts = alcohol_alerts(&out, &activation);
        let drinking: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.alert_type == AlertType::DrinkingEvent)
            .collect();
        let tamper: Vec<&Alert> = alerts
            .iter()
            .filter(|a| {
                matches!(
                    a.alert_type,
                    AlertType::AlcoholObstruction | AlertType::AlcoholRemoval
                )
            })
            .collect();
        assert!(
            tamper.is_empty(),
            "{}: worn throughout, yet {tamper:#?}",
            e.name
        );

        let last_ms = e.readings.last().unwrap().t_ms;
        let night = drinking
            .iter()
            .find(|a| a.start < night_to && a.end.unwrap_or(last_ms) > night_from)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no confirmed drinking event on the night of 2–3 May: {alerts:#?}",
                    e.name
                )
            });

        // None during the alcohol-free hours after fitting.
        let alcohol_free_until = first_alcohol_ms(e);
        for a in &alerts {
            assert!(
                a.start >= alcohol_free_until,
                "{}: {} starts in the alcohol-free hours",
                e.name,
                a.id
            );
        }
        for a in &drinking {
            let d = a
                .details
                .as_ref()
                .expect("drinking alerts carry their measurements");
            assert!(d.peak.unwrap() >= alcohol_free_until);
            assert!(d.peak_tac_gdl.unwrap() >= 0.02, "{}: {d:?}", e.name);
            assert!(d.absorption_gdl_per_h.unwrap() <= 0.05, "{}: {d:?}", e.name);
            assert!(
                d.elimination_gdl_per_h.unwrap() <= 0.025,
                "{}: {d:?}",
                e.name
            );
            assert!(d.auc_gdl_h.unwrap() > 0.0);
            assert_eq!(d.orders, vec![format!("O-{}", e.name)]);
            assert_eq!(a.rule, "alcohol/1");
        }

        // The sober-day record: the fitting day and the morning after are drinking days.
        let days: Vec<SoberDay> = out
            .sober_days
            .sorted()
            .into_iter()
            .filter(|d| d.activation == activation)
            .collect();
        let status = |date: &str| {
            days.iter()
                .find(|d| d.date.to_string() == date)
                .map(|d| d.status)
        };
        assert_eq!(
            status("2017-05-02"),
            Some(SoberDayStatus::Drinking),
            "{}: {days:#?}",
            e.name
        );
        assert_eq!(
            status("2017-05-03"),
            Some(SoberDayStatus::Drinking),
            "{}: {days:#?}",
            e.name
        );
        assert_eq!(
            status("2017-05-04"),
            Some(SoberDayStatus::NotWorn),
            "{}: no readings after the export ends",
            e.name
        );

        let env = alerts
            .iter()
            .filter(|a| a.alert_type == AlertType::EnvironmentalAlcohol)
            .count();
        for a in &drinking {
            let d = a.details.as_ref().unwrap();
            report.push(format!(
                "{}{}: drinking {}..{} peak {} g/dL at {} UTC, auc {} g/dL·h, absorption {} elimination {} g/dL/h, {} readings{}",
                e.name,
                if std::ptr::eq(*a, *night) { "*" } else { " " },
                &format_time(a.start)[5..16],
                a.end.map(|t| format_time(t)[5..16].to_string()).unwrap_or_else(|| "open       ".into()),
                d.peak_tac_gdl.unwrap(),
                &format_time(d.peak.unwrap())[5..16],
                d.auc_gdl_h.unwrap(),
                d.absorption_gdl_per_h.unwrap(),
                d.elimination_gdl_per_h.unwrap(),
                d.readings.unwrap(),
                if env > 0 { format!("; {env} environmental") } else { String::new() },
            ));
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_alcohol_free_hours_after_fitting_raise_nothing_and_make_a_partial_fitting_day() {
    let exports: Vec<Export> = exports()
        .into_iter()
        .map(|e| {
            let until = first_alcohol_ms(&e);
            Export {
                name: e.name,
                readings: e.readings.into_iter().filter(|r| r.t_ms < until).collect(),
            }
        })
        .collect();
    let out = run(&exports, "2017-05-04T12:00:00Z");
    for e in &exports {
        let activation = format!("A-{}", e.name);
        assert!(alcohol_alerts(&out, &activation).is_empty(), "{}", e.name);
        let day = out
            .sober_days
            .sorted()
            .into_iter()
            .find(|d| d.activation == activation && d.date.to_string() == "2017-05-02")
            .unwrap();
        assert_eq!(day.status, SoberDayStatus::Partial, "{}: {day:?}", e.name);
        assert!(day
            .reasons
            .contains(&tagstream::model::DayReason::FittingDay));
    }
}

#[test]
fn replaying_the_real_data_twice_writes_identical_alerts_and_sober_days() {
    let exports = exports();
    let dir = tempfile::tempdir().unwrap();
    let doc = orders(&exports);
    std::fs::write(
        dir.path().join("orders.json"),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
    let mut jsonl = String::new();
    for b in batches(&exports, "2017-05-06T00:00:00Z") {
        for r in &b.readings {
            let tagged = tagstream::model::TaggedReading {
                tag: b.tag.clone(),
                reading: *r,
            };
            jsonl.push_str(&serde_json::to_string(&tagged).unwrap());
            jsonl.push('\n');
        }
    }
    std::fs::write(dir.path().join("readings.jsonl"), jsonl).unwrap();
    let (orders, errors) = tagstream::replay::load_orders(&dir.path().join("orders.json")).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let mut written = vec![];
    for round in 0..2 {
        let (outputs, summary) = tagstream::replay::replay(
            &orders,
            &dir.path().join("readings.jsonl"),
            &[],
            PipelineConfig::default(),
            &Default::default(),
        )
        .unwrap();
        assert!(summary.readings_errors.is_empty());
        let out_dir = dir.path().join(format!("out{round}"));
        tagstream::replay::write_outputs(&outputs, &out_dir).unwrap();
        let alerts = std::fs::read_to_string(out_dir.join("alerts.jsonl")).unwrap();
        let days = std::fs::read_to_string(out_dir.join("sober_days.jsonl")).unwrap();
        assert!(alerts.contains("\"type\":\"drinking_event\""));
        assert!(days.lines().count() >= 13 * 3, "{days}");
        let parsed: Vec<SoberDay> = days
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut sorted = parsed.clone();
        sorted.sort_by(|a, b| a.key().cmp(&b.key()));
        assert_eq!(
            parsed, sorted,
            "sober_days.jsonl is sorted by (activation, order, date)"
        );
        written.push((alerts, days));
    }
    assert_eq!(written[0], written[1]);
}

/// How the results on the real data move with the main parameters (the table in
/// `docs/alcohol.md`). `cargo test --test alcohol_real_data -- --ignored --nocapture`
#[test]
#[ignore]
fn parameter_sensitivity_on_the_bar_crawl_data() {
    let exports = exports();
    let night_from = parse_time("2017-05-02T20:00:00Z").unwrap();
    let night_to = parse_time("2017-05-03T04:00:00Z").unwrap();
    let (h, m) = (3_600_000i64, 60_000i64);
    let d = AlcoholConfig::default;
    let variants: Vec<(&str, AlcoholConfig)> = vec![
        ("defaults", d()),
        (
            "rates on the despiked curve",
            AlcoholConfig {
                rate_half_window_ms: 0,
                ..d()
            },
        ),
        (
            "rate half-window 60 min",
            AlcoholConfig {
                rate_half_window_ms: h,
                ..d()
            },
        ),
        (
            "rate half-window 90 min",
            AlcoholConfig {
                rate_half_window_ms: 90 * m,
                ..d()
            },
        ),
        (
            "rate half-window 105 min",
            AlcoholConfig {
                rate_half_window_ms: 105 * m,
                ..d()
            },
        ),
        (
            "rate half-window 3 h",
            AlcoholConfig {
                rate_half_window_ms: 3 * h,
                ..d()
            },
        ),
        (
            "no spike filter",
            AlcoholConfig {
                spike_tolerance_tac_gdl: 10.0,
                ..d()
            },
        ),
        (
            "5 readings near the peak",
            AlcoholConfig {
                min_readings_near_peak: 5,
                ..d()
            },
        ),
        (
            "IR tolerance 0.2 V",
            AlcoholConfig {
                obstruction_tolerance_v: 0.2,
                removal_ir_tolerance_v: 0.2,
                ..d()
            },
        ),
        (
            "removal after 30 min / 2 readings",
            AlcoholConfig {
                removal_min_ms: 30 * m,
                removal_min_readings: 2,
                ..d()
            },
        ),
    ];
    for (i, (name, cfg)) in variants.into_iter().enumerate() {
        let out = run_with(&exports, "2017-05-05T12:00:00Z", cfg);
        let (mut confirmed, mut missed, mut tamper, mut env) = (0, vec![], 0, 0);
        for e in &exports {
            let activation = format!("A-{}", e.name);
            let alerts = alcohol_alerts(&out, &activation);
            let last_ms = e.readings.last().unwrap().t_ms;
            let night = alerts.iter().any(|a| {
                a.alert_type == AlertType::DrinkingEvent
                    && a.start < night_to
                    && a.end.unwrap_or(last_ms) > night_from
            });
            if night {
                confirmed += 1;
            } else {
                missed.push(e.name.clone());
            }
            tamper += alerts
                .iter()
                .filter(|a| {
                    matches!(
                        a.alert_type,
                        AlertType::AlcoholObstruction | AlertType::AlcoholRemoval
                    )
                })
                .count();
            env += alerts
                .iter()
                .filter(|a| a.alert_type == AlertType::EnvironmentalAlcohol)
                .count();
        }
        println!(
            "| {name} | {confirmed}/13 | {} | {tamper} | {env} |",
            missed.join(", ")
        );
        if i == 0 {
            assert_eq!((confirmed, tamper), (13, 0));
        }
    }
}
