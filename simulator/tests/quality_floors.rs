//! The quality floors of `docs/quality.md`: a small simulated population, replayed with its crime
//! batches as `tagstream replay --final` does, scored by output, and held to the floors that
//! document states (the test reads its table, so the document is the contract).

mod common;

use tagstream::pipeline::PipelineConfig;
use tagstream::replay::InputEnd;
use tagstream::rules::RulesConfig;
use tagstream::score::{read_records, score, DEFAULT_TOLERANCE_MS};

/// (output, precision floor, recall floor) from the table between the floors markers.
fn documented_floors() -> Vec<(String, f64, f64)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/quality.md"),
    )
    .expect("docs/quality.md");
    let start = doc.find("<!-- floors").expect("floors marker");
    let end = doc.find("<!-- /floors -->").expect("floors end marker");
    doc[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            match cells.as_slice() {
                [output, p, r] => Some((output.to_string(), p.parse().ok()?, r.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn every_output_holds_its_documented_floor() {
    let floors = documented_floors();
    assert!(floors.len() >= 8, "floors table not read: {floors:?}");
    let dir = common::generated(|d| {
        let mut o = common::options(d, 160, 5, 20261);
        o.bin = false;
        // More violations and faults than usual, so that every output has items to score.
        o.rates.rate_scale = 2.0;
        o
    });
    let (orders, errors) =
        tagstream::replay::load_orders(&dir.path().join("orders.json")).expect("orders");
    assert!(errors.is_empty(), "{errors:?}");
    let mut crimes: Vec<_> = std::fs::read_dir(dir.path().join("crimes"))
        .expect("crimes directory")
        .map(|e| e.expect("crime file").path())
        .collect();
    crimes.sort();
    let (outputs, _) = tagstream::replay::replay_to(
        &orders,
        &dir.path().join("readings.jsonl"),
        &crimes,
        PipelineConfig::default(),
        &RulesConfig::default(),
        InputEnd::Final,
    )
    .expect("replay");
    let out = dir.path().join("out");
    tagstream::replay::write_outputs(&outputs, &out).expect("write outputs");
    let truth = read_records(&dir.path().join("truth.jsonl")).expect("truth");
    let alerts = read_records(&out.join("alerts.jsonl")).expect("alerts");
    let hits = read_records(&out.join("hits.jsonl")).expect("hits");
    let report = score(&truth, &alerts, Some(&hits), DEFAULT_TOLERANCE_MS);
    let table = report.to_table();
    eprintln!("{table}");
    let groups = report.grouped();
    let mut below = Vec::new();
    for (output, precision_floor, recall_floor) in &floors {
        let row = groups
            .iter()
            .find(|g| &g.key == output)
            .unwrap_or_else(|| panic!("no output {output} in the report"));
        assert!(
            row.detectable >= 3,
            "{output}: only {} detectable items, too few to hold a floor\n{table}",
            row.detectable
        );
        let (precision, recall) = (row.precision.unwrap_or(0.0), row.recall.unwrap_or(0.0));
        if precision < *precision_floor || recall < *recall_floor {
            below.push(format!(
                "{output}: precision {precision:.3} (floor {precision_floor:.3}), recall {recall:.3} (floor {recall_floor:.3})"
            ));
        }
    }
    assert!(
        below.is_empty(),
        "below the floors of docs/quality.md:\n{}\n{table}",
        below.join("\n")
    );
}
