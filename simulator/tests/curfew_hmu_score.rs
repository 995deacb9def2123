//! End to end for the `hmu` contract addition: tagsim generates two-address curfews with the home
//! monitoring unit at one address (RF only there, GPS alone at the other), tagstream replays the
//! readings, and the curfew alerts of those people score precision and recall 1.0 against the
//! simulator's truth (`tagstream score`'s matching).

mod common;

use std::collections::HashSet;
use tagstream::pipeline::PipelineConfig;
use tagstream::rules::RulesConfig;
use tagstream::score::{score, Record};

#[test]
fn two_address_curfews_with_one_home_unit_score_precision_and_recall_one() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 120, 4, 5);
        // Thursday to Sunday: home nights and the second address's Friday and Saturday nights.
        o.start_ms = tagstream::model::time::parse_time("2026-03-05T00:00:00Z").expect("start");
        o.hmu_split_share = 1.0;
        o.gps_share = 0.9;
        o.rf_share = 0.05;
        o.bin = false;
        // More curfew breaches than usual, so both kinds of address see some.
        o.rates.late_return = 0.12;
        o.rates.leave_during_curfew = 0.1;
        o.rates.out_at_end = 0.08;
        o.rates.whole_night_absence = 0.05;
        o
    });
    let orders_doc = common::orders(dir.path());
    // People whose curfew marks the unit's address, and that address.
    let mut split_people = HashSet::new();
    let mut hmu_address = std::collections::HashMap::new();
    for order in orders_doc["orders"].as_array().expect("orders") {
        for c in order["conditions"].as_array().into_iter().flatten() {
            for a in c["addresses"].as_array().into_iter().flatten() {
                if a["hmu"] == true {
                    split_people.insert(order["person"].as_str().expect("person").to_string());
                    hmu_address.insert(
                        order["id"].as_str().expect("order id").to_string(),
                        a["id"].as_str().expect("address id").to_string(),
                    );
                }
            }
        }
    }
    assert!(
        split_people.len() >= 10,
        "only {} two-address orders with a unit",
        split_people.len()
    );
    let ours = |r: &Record| {
        r.kind == "curfew_violation"
            && r.activation.as_deref().is_some_and(|a| {
                orders_doc["activations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| {
                        x["id"] == a && split_people.contains(x["person"].as_str().unwrap_or(""))
                    })
            })
    };

    let (orders, errors) =
        tagstream::replay::load_orders(&dir.path().join("orders.json")).expect("orders");
    assert!(errors.is_empty(), "{errors:?}");
    let (outputs, _) = tagstream::replay::replay(
        &orders,
        &dir.path().join("readings.jsonl"),
        &[],
        PipelineConfig::default(),
        &RulesConfig::default(),
    )
    .expect("replay");
    let out = dir.path().join("out");
    tagstream::replay::write_outputs(&outputs, &out).expect("write outputs");

    let truth: Vec<Record> = tagstream::score::read_records(&dir.path().join("truth.jsonl"))
        .expect("truth")
        .into_iter()
        .filter(ours)
        .collect();
    let alerts: Vec<Record> = tagstream::score::read_records(&out.join("alerts.jsonl"))
        .expect("alerts")
        .into_iter()
        .filter(ours)
        .collect();

    // Breaches at both kinds of address, judged from RF at the unit and from GPS elsewhere.
    let truth_json = common::truth(dir.path());
    let at = |unit: bool| {
        truth_json
            .iter()
            .filter(|t| t["type"] == "curfew_violation" && t["detectable"] == true)
            .filter(|t| {
                let order = t["order"].as_str().unwrap_or("");
                hmu_address
                    .get(order)
                    .is_some_and(|a| (t["address"].as_str() == Some(a.as_str())) == unit)
            })
            .count()
    };
    assert!(
        at(true) >= 2 && at(false) >= 2,
        "detectable breaches: {} at the unit's address, {} at the other",
        at(true),
        at(false)
    );

    let report = score(
        &truth,
        &alerts,
        None,
        tagstream::score::DEFAULT_TOLERANCE_MS,
    );
    let row = report
        .rows
        .iter()
        .find(|r| r.key == "curfew_violation")
        .expect("curfew row");
    eprintln!(
        "{} people; breaches {} at the unit, {} elsewhere\n{}",
        split_people.len(),
        at(true),
        at(false),
        report.to_table()
    );
    assert_eq!(
        (row.precision, row.recall),
        (Some(1.0), Some(1.0)),
        "\n{}",
        report.to_table()
    );
}
