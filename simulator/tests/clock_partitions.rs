//! Partitioned processing (issue 15 item 4): with a clock per partition of tags
//! (`[pipeline] clock_partitions`), a replay of only some partitions' readings (every control
//! record still applied) gives exactly the outputs the full replay gives for those partitions'
//! activations; so processing nodes that each own some partitions together give the full
//! replay's outputs, byte for byte.

mod common;

use std::path::{Path, PathBuf};
use tagstream::model::tag_partition::PartitionSet;
use tagstream::pipeline::PipelineConfig;
use tagstream::replay::{replay_input, write_outputs, InputEnd, Recorded, ReplayError};
use tagstream::rules::RulesConfig;

const CLOCKS: u32 = 8;

fn replay_into(dir: &Path, out: &str, config: PipelineConfig, owned: Option<&str>) -> PathBuf {
    let (orders, errors) =
        tagstream::replay::load_orders(&dir.join("orders.json")).expect("orders");
    assert!(errors.is_empty(), "{errors:?}");
    let mut crimes: Vec<_> = std::fs::read_dir(dir.join("crimes"))
        .expect("crimes directory")
        .map(|e| e.expect("crime file").path())
        .collect();
    crimes.sort();
    let owned = owned.map(|text| PartitionSet::parse(text, CLOCKS).expect("partition list"));
    let (outputs, _) = replay_input(
        &orders,
        &Recorded::Path(&dir.join("readings.jsonl")),
        &crimes,
        config,
        &RulesConfig::default(),
        InputEnd::Final,
        owned.as_ref(),
    )
    .expect("replay");
    let out = dir.join(out);
    write_outputs(&outputs, &out).expect("write outputs");
    out
}

fn sorted_lines(paths: &[PathBuf], file: &str) -> Vec<String> {
    let mut lines: Vec<String> = paths
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", p.join(file).display()))
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn nodes_owning_some_partitions_together_give_the_full_replay() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 160, 4, 4242);
        o.bin = false;
        o.rates.rate_scale = 2.0;
        o
    });
    let config = PipelineConfig {
        clock_partitions: CLOCKS,
        ..PipelineConfig::default()
    };
    let full = replay_into(dir.path(), "full", config, None);
    for split in [&["0-3", "4-7"][..], &["0,3,6", "1,4,7", "2,5"][..]] {
        let parts: Vec<PathBuf> = split
            .iter()
            .enumerate()
            .map(|(i, owned)| replay_into(dir.path(), &format!("part{i}"), config, Some(owned)))
            .collect();
        for file in ["alerts.jsonl", "hits.jsonl", "sober_days.jsonl"] {
            let expected = sorted_lines(std::slice::from_ref(&full), file);
            assert!(expected.len() > 10, "{file}: only {} lines", expected.len());
            for part in &parts {
                assert!(
                    !sorted_lines(std::slice::from_ref(part), file).is_empty(),
                    "{file}: a node owning some partitions gave nothing ({split:?})"
                );
            }
            let together = sorted_lines(&parts, file);
            if together != expected {
                let extra: Vec<_> = together.iter().filter(|l| !expected.contains(l)).collect();
                let missing: Vec<_> = expected.iter().filter(|l| !together.contains(l)).collect();
                panic!(
                    "{file} split {split:?}: {} lines not in the full replay, {} missing; first extra {:?}, first missing {:?}",
                    extra.len(),
                    missing.len(),
                    extra.first(),
                    missing.first()
                );
            }
        }
    }
}

#[test]
fn owning_partitions_of_a_single_clock_is_refused() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 10, 1, 7);
        o.bin = false;
        o
    });
    let (orders, _) =
        tagstream::replay::load_orders(&dir.path().join("orders.json")).expect("orders");
    let owned = PartitionSet::parse("0-3", CLOCKS).expect("partition list");
    // With one clock over every tag, a node seeing only some tags would see another clock.
    let refused = replay_input(
        &orders,
        &Recorded::Path(&dir.path().join("readings.jsonl")),
        &[],
        PipelineConfig::default(),
        &RulesConfig::default(),
        InputEnd::Final,
        Some(&owned),
    );
    assert!(
        matches!(
            refused,
            Err(ReplayError::PartitionsWithoutClocks {
                named: CLOCKS,
                configured: 1
            })
        ),
        "{:?}",
        refused.err()
    );
}

/// What a driver gives: its rule outputs (alerts and sober days as JSON) and the stores' share
/// (each reading filed under its activation), each sorted.
fn drive(dir: &Path, config: PipelineConfig, owned: Option<&str>) -> (Vec<String>, Vec<String>) {
    use tagstream::pipeline::{Output, VecSink};
    let (orders, _) = tagstream::replay::load_orders(&dir.join("orders.json")).expect("orders");
    let mut sink = VecSink::default();
    let mut driver = tagstream::topology::inline::PipelineDesc {
        start: &orders,
        pipeline: config,
        rules: RulesConfig::default(),
        partitions: 2,
    }
    .build(&mut sink);
    if let Some(text) = owned {
        driver
            .own_partitions(PartitionSet::parse(text, CLOCKS).expect("partition list"))
            .expect("own");
    }
    tagstream::replay::read_recorded(&dir.join("readings.jsonl"), &mut |entry| {
        driver.feed_entry(&entry, &mut sink)
    })
    .expect("read");
    driver.finish(&mut sink);
    let (mut rules, mut stores) = (Vec::new(), Vec::new());
    for (output, _) in sink.outputs {
        match output {
            Output::Alert(a) => rules.push(serde_json::to_string(&a).expect("json")),
            Output::SoberDay(d) => rules.push(serde_json::to_string(&d).expect("json")),
            Output::Readings {
                record,
                batch,
                activation,
                readings,
            } => {
                for r in readings.readings() {
                    stores.push(format!("{record} {batch:?} {} {}", activation.id, r.t_ms));
                }
            }
            Output::Purged { .. } | Output::Activations { .. } => {}
        }
    }
    rules.sort();
    stores.sort();
    (rules, stores)
}

#[test]
fn a_dispatcher_owning_some_partitions_runs_their_rules_and_files_every_reading() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 60, 2, 99);
        o.bin = false;
        o
    });
    let config = PipelineConfig {
        clock_partitions: CLOCKS,
        ..PipelineConfig::default()
    };
    let (all_rules, all_stores) = drive(dir.path(), config, None);
    let (rules_a, stores_a) = drive(dir.path(), config, Some("0-3"));
    let (rules_b, stores_b) = drive(dir.path(), config, Some("4-7"));
    // Every reading is filed on every node, whoever runs its rules.
    assert!(all_stores.len() > 1000);
    assert_eq!(stores_a, all_stores);
    assert_eq!(stores_b, all_stores);
    // Each node's rule outputs are its own share of the full run's.
    assert!(!rules_a.is_empty() && !rules_b.is_empty());
    assert!(rules_a.len() < all_rules.len() && rules_b.len() < all_rules.len());
    let mut together = [rules_a, rules_b].concat();
    together.sort();
    assert_eq!(together, all_rules);
}
