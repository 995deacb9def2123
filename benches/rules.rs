//! Criterion bench of rule evaluation per position: 100,000 live activations, each with a curfew
//! (19:00–07:00 every day, grace 5 min) and three zones (a polygon exclusion zone, a point +
//! radius exclusion zone on a schedule, a polygon inclusion zone). Each visit hands GPS fixes of
//! one activation (round robin, five minutes of event time apart per activation, wandering
//! between home, the zones and elsewhere) to that activation's rules — health, no contact, curfew
//! and zones — and runs `on_clock` when a rule's deadline has passed, as a partition does.
//! Reports the cost per position on one core.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use tagstream::formats::orders_file::OrdersFile;
use tagstream::model::{
    Activation, Condition, CurfewAddress, CurfewCondition, Day, Order, Person, Position,
    PositionSource, Reading, ReadingBody, ScheduleEntry, TimetableEntry, ZoneCondition,
};
use tagstream::pipeline::{
    ActivationInfo, PipelineConfig, Rule, RuleContext, RuleFactory, VecSink,
};
use tagstream::rules::StandardRules;

/// Live activations (`TAGSTREAM_BENCH_ACTIVATIONS` overrides, for a quick look at compute cost
/// without cache misses).
fn activations() -> usize {
    std::env::var("TAGSTREAM_BENCH_ACTIVATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
/// 2026-03-02T16:00:00Z, a Monday.
const T0_MS: i64 = 1_772_467_200_000;
const STEP_MS: i64 = 5 * 60_000;

fn home_of(i: usize) -> (f64, f64) {
    // Spread over roughly 50 km × 50 km around Bristol.
    let (a, b) = ((i % 317) as f64, ((i / 317) % 317) as f64);
    (51.2 + a * 0.0015, -2.9 + b * 0.0024)
}

fn square(lat: f64, lon: f64, half_deg: f64) -> serde_json::Value {
    let (a, b, c, d) = (
        lon - half_deg,
        lon + half_deg,
        lat - half_deg * 0.6,
        lat + half_deg * 0.6,
    );
    json!({"type":"Polygon","coordinates":[[[a,c],[b,c],[b,d],[a,d],[a,c]]]})
}

fn orders() -> OrdersFile {
    let all_days = vec![
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];
    let mut file = OrdersFile::default();
    for i in 0..activations() {
        let (lat, lon) = home_of(i);
        file.people.push(Person {
            id: format!("P{i}"),
            name: String::new(),
            date_of_birth: None,
            nomis_id: None,
            pnc_ref: None,
            address: None,
            offender_manager: None,
            restricted: false,
        });
        file.activations.push(Activation {
            id: format!("A{i}"),
            person: format!("P{i}"),
            tag: format!("T{i}"),
            from: T0_MS,
            to: None,
        });
        let zone = |id: &str,
                    geometry: serde_json::Value,
                    radius_m: Option<f64>,
                    schedule: Option<Vec<ScheduleEntry>>| ZoneCondition {
            id: id.into(),
            name: String::new(),
            geometry,
            radius_m,
            schedule,
        };
        file.orders.push(Order {
            id: format!("O{i}"),
            person: format!("P{i}"),
            from: chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"),
            to: None,
            conditions: vec![
                Condition::Curfew(CurfewCondition {
                    grace_min: 5,
                    addresses: vec![CurfewAddress {
                        id: "home".into(),
                        lat,
                        lon,
                        radius_m: 50.0,
                        hmu: false,
                    }],
                    timetable: vec![TimetableEntry {
                        days: all_days.clone(),
                        start: "19:00".into(),
                        end: "07:00".into(),
                        address: "home".into(),
                    }],
                }),
                Condition::ExclusionZone(zone("X1", square(lat + 0.01, lon, 0.003), None, None)),
                Condition::ExclusionZone(zone(
                    "X2",
                    json!({"type":"Point","coordinates":[lon + 0.01, lat]}),
                    Some(300.0),
                    Some(vec![ScheduleEntry {
                        days: vec![Day::Sat, Day::Sun],
                        start: "10:00".into(),
                        end: "18:00".into(),
                    }]),
                )),
                Condition::InclusionZone(zone("I1", square(lat, lon, 0.05), None, None)),
            ],
        });
    }
    file
}

/// How the simulated people move.
#[derive(Clone, Copy)]
enum Pattern {
    /// Home at night with an imprecise fix every 23rd and a drift outlier every 97th; about town
    /// by day, moving on every hour, and into exclusion zone X1 for three fixes every 50th.
    Typical,
    /// A presence change every few fixes: home / uncertain / two fixes in a zone, all night.
    Adversarial,
}

/// Where activation `i` is at its `n`-th fix.
fn fix(pattern: Pattern, i: usize, n: u64) -> Reading {
    let (lat, lon) = home_of(i);
    let t_ms = T0_MS + n as i64 * STEP_MS + (i % 300) as i64;
    let hour = ((t_ms / 3_600_000) % 24) as u64;
    let night = matches!(hour, 19..=23 | 0..=6);
    let (dlat, dlon, precision_cm) = match pattern {
        Pattern::Typical => {
            if night {
                match (n % 23, n % 97) {
                    (_, 0) => (0.003, 0.0, 800),
                    (0, _) => (0.0001, 0.0, 15_000),
                    _ => (0.0001, 0.0, 800),
                }
            } else if n % 50 < 3 {
                (0.0100, 0.0, 800)
            } else {
                (0.004 + ((n / 12) % 5) as f64 * 0.001, -0.003, 800)
            }
        }
        Pattern::Adversarial => {
            let k = (n + i as u64) % 11;
            match (night, k) {
                (_, 7) => (0.0100, 0.0, 800), // in exclusion zone X1
                (_, 8) => (0.0, 0.0100, 800), // in scheduled zone X2
                (_, 3) => (0.0001, 0.0, 15_000),
                (true, _) => (0.0001, 0.0, 800),
                _ => (0.004 + k as f64 * 0.001, -0.003, 800),
            }
        }
    };
    Reading {
        t_ms,
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: ((lat + dlat) * 1e7) as i32,
            lon_e7: ((lon + dlon) * 1e7) as i32,
            precision_cm,
            source: PositionSource::Gps,
            speed_ckmh: Some(400),
            heading_cdeg: Some(9000),
            satellites: Some(9),
        }),
    }
}

struct Slot {
    info: ActivationInfo,
    rules: Vec<Box<dyn Rule>>,
    n: u64,
}

fn rules_per_position(c: &mut Criterion) {
    let config = PipelineConfig::default();
    let orders = orders();
    let factory = StandardRules::new(config, Default::default(), &orders);
    assert!(factory.build_errors().is_empty());
    let mut group = c.benchmark_group("rules");
    // (name, pattern, fixes handed over per visit to an activation: one upload batch)
    let cases = [
        ("typical, 10-fix batches", Pattern::Typical, 10u64),
        ("typical, 1-fix batches", Pattern::Typical, 1),
        ("adversarial, 1-fix batches", Pattern::Adversarial, 1),
    ];
    for (name, pattern, batch) in cases {
        let mut slots: Vec<Slot> = orders
            .activations
            .iter()
            .map(|a| {
                let info = ActivationInfo {
                    id: a.id.clone(),
                    person: a.person.clone(),
                    tag: a.tag.clone(),
                    from_ms: a.from,
                    to_ms: a.to,
                };
                let rules = factory.rules_for(&info);
                Slot { info, rules, n: 0 }
            })
            .collect();
        let n_activations = slots.len();
        let mut sink = VecSink::default();
        let mut next = 0usize;
        let mut visit = |slots: &mut Vec<Slot>, sink: &mut VecSink| {
            let i = next;
            next = (next + 7919) % n_activations;
            let slot = &mut slots[i];
            // As a partition does: every reading through every rule, then contact and due
            // deadlines once per batch.
            let mut last_ms = 0;
            for _ in 0..batch {
                slot.n += 1;
                let reading = fix(pattern, i, slot.n);
                last_ms = reading.t_ms;
                let mut ctx = RuleContext::new(&slot.info, sink, None);
                for rule in slot.rules.iter_mut() {
                    rule.on_reading(&mut ctx, &reading, false);
                }
            }
            let mut ctx = RuleContext::new(&slot.info, sink, None);
            for rule in slot.rules.iter_mut() {
                rule.on_contact(&mut ctx, last_ms);
                if rule.next_deadline().is_some_and(|d| d <= last_ms) {
                    rule.on_clock(&mut ctx, last_ms);
                }
            }
            if sink.outputs.len() > 4096 {
                sink.outputs.clear();
            }
        };
        // Warm every activation up to about 20:00 (48 fixes) so that a curfew window is live.
        for _ in 0..n_activations * (48 / batch as usize) {
            visit(&mut slots, &mut sink);
        }
        group.throughput(Throughput::Elements(batch));
        group.bench_function(
            format!("health+curfew+3 zones per position, {n_activations} activations, {name}"),
            |b| b.iter(|| visit(&mut slots, &mut sink)),
        );
        drop(slots);
    }
    group.finish();
}

criterion_group!(benches, rules_per_position);
criterion_main!(benches);
