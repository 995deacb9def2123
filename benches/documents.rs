//! Criterion benches of the documents people hand on: how long one takes to build, end to end
//! from the stores' records to the PDF, JSON and manifest bytes.
//!
//! `sober_day_report`: a 120-day alcohol order of one wearer (the AAMR's longest), a TAC
//! reading every 30 minutes (5,760 readings) with a drinking evening every week and an
//! obstruction every month, classified by the real `AlcoholRule` (untimed setup); timed: the
//! report's inputs gathered from the day records, alerts and TAC index
//! (`SoberDaySources::gather`) and the report built (`sober_day_report`: calendar, ~20 event
//! charts, layout, PDF). Target: ≤ 500 ms.
//!
//! `cargo bench --bench documents -- sober_day_report`

#[path = "../tests/support/tac_synth.rs"]
mod tac_synth;

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use tac_synth::{tac_stream, TacPlan};
use tagstream::alerts::{AlertBook, SoberDayBook};
use tagstream::documents::sober_day_report::sober_day_report;
use tagstream::documents::sources::{SoberDayRequest, SoberDaySources};
use tagstream::model::{
    Activation, AlcoholCondition, AlcoholMode, Condition, Order, Person, TimeMs,
};
use tagstream::pipeline::{ActivationInfo, Output, Rule, RuleContext, Sink};
use tagstream::rules::alcohol::{AlcoholConfig, AlcoholRule, Thresholds};
use tagstream::store::metadata::Metadata;
use tagstream::store::tac_book::TacBook;

const T0_MS: TimeMs = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAYS: usize = 120;

/// The rule's outputs as the live book holds them.
#[derive(Default)]
struct Books {
    alerts: AlertBook,
    days: SoberDayBook,
}

impl Sink for Books {
    fn emit(&mut self, output: Output, _cause: Option<TimeMs>) {
        match output {
            Output::Alert(a) => {
                self.alerts.upsert(a);
            }
            Output::SoberDay(d) => {
                self.days.upsert(d);
            }
            _ => {}
        }
    }
}

fn sober_day_report_bench(c: &mut Criterion) {
    // One more day of readings than the order, so its last day settles.
    let readings = tac_stream(T0_MS, &TacPlan::periodic(DAYS + 2, 7, 30));
    let order = Order {
        id: "O1".into(),
        person: "P1".into(),
        from: "2026-01-01".parse().unwrap(),
        to: Some("2026-04-30".parse().unwrap()),
        conditions: vec![Condition::Alcohol(AlcoholCondition {
            mode: AlcoholMode::Abstinence,
            requirement: None,
        })],
    };
    let activation = ActivationInfo {
        id: "A1".into(),
        person: "P1".into(),
        tag: "T1".into(),
        from_ms: T0_MS,
        to_ms: None,
    };
    let th = Arc::new(Thresholds::new(&AlcoholConfig::default()));
    let mut rule =
        AlcoholRule::new(th, &activation, &[Arc::new(order.clone())], 0).expect("an alcohol order");
    let mut books = Books::default();
    {
        let mut ctx = RuleContext::new(&activation, &mut books, None);
        for (i, r) in readings.iter().enumerate() {
            rule.on_reading(&mut ctx, r, false);
            if i % 4 == 3 {
                rule.on_contact(&mut ctx, r.t_ms);
            }
        }
    }
    let (days, alerts) = (books.days.sorted(), books.alerts.sorted());
    let tac = TacBook::default();
    tac.add("A1", &readings);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let metadata = Metadata::open(dir.path()).expect("metadata");
    let person = Person {
        id: "P1".into(),
        name: "Bench Wearer".into(),
        date_of_birth: None,
        nomis_id: None,
        pnc_ref: None,
        address: None,
        offender_manager: None,
        restricted: false,
    };
    metadata.upsert_person(&person).expect("person");
    metadata
        .upsert_activation(&Activation {
            id: "A1".into(),
            person: "P1".into(),
            tag: "T1".into(),
            from: T0_MS,
            to: None,
        })
        .expect("activation");
    metadata.upsert_order(&order).expect("order");
    let request = SoberDayRequest::default();
    let build = || {
        let sources = SoberDaySources::gather(
            &metadata,
            person.clone(),
            &request,
            days.clone(),
            alerts.clone(),
            &tac,
        )
        .expect("sources");
        sober_day_report(&sources.input()).expect("report")
    };
    let sample = build();
    let report: serde_json::Value = serde_json::from_slice(&sample.json).expect("JSON");
    assert_eq!(
        report["calendar"].as_array().map(Vec::len),
        Some(DAYS),
        "a {DAYS}-day period"
    );
    eprintln!(
        "sober_day_report: {} day records, {} events, {} TAC readings drawn, PDF {} bytes",
        report["days"].as_array().map_or(0, Vec::len),
        report["events"].as_array().map_or(0, Vec::len),
        sample.manifest.inputs["tac_readings"]["readings"],
        sample.pdf.len()
    );
    let mut group = c.benchmark_group("documents");
    group.sample_size(10);
    group.bench_function("sober_day_report_120_days", |b| b.iter(build));
    group.finish();
}

criterion_group!(benches, sober_day_report_bench);
criterion_main!(benches);
