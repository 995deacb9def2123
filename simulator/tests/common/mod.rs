//! Shared helpers for tagsim's integration tests: a small generated data set and readers for it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tagsim::behaviour::Rates;
use tagsim::sim::{generate, GenerateOptions};
use tagstream::model::{parse_reading_line, TaggedReading};

pub fn areas_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/police-force-areas.geojson")
}

pub fn options(out: &Path, tags: usize, days: u32, seed: u64) -> GenerateOptions {
    GenerateOptions {
        tags,
        days,
        seed,
        start_ms: tagstream::model::time::parse_time("2026-03-02T00:00:00Z").expect("start"),
        out_dir: out.to_path_buf(),
        area: "Bristol".into(),
        areas_file: Some(areas_file()),
        rates: Rates::default(),
        gps_share: 0.5,
        rf_share: 0.3,
        new_release_share: 0.1,
        swap_share: 0.05,
        hmu_split_share: 0.4,
        threads: 2,
        json: true,
        bin: true,
    }
}

/// Generates into a fresh temporary directory.
pub fn generated(opts_fn: impl FnOnce(&Path) -> GenerateOptions) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = opts_fn(dir.path());
    generate(&opts).expect("generate");
    dir
}

pub fn readings(dir: &Path) -> Vec<TaggedReading> {
    std::fs::read_to_string(dir.join("readings.jsonl"))
        .expect("readings.jsonl")
        .lines()
        .enumerate()
        .map(|(i, l)| parse_reading_line(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1)))
        .collect()
}

pub fn truth(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("truth.jsonl"))
        .expect("truth.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("truth line"))
        .collect()
}

pub fn orders(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("orders.json")).expect("orders"))
        .expect("orders json")
}

/// Readings per tag, in file (upload) order.
pub fn by_tag(rs: &[TaggedReading]) -> HashMap<String, Vec<tagstream::model::Reading>> {
    let mut m: HashMap<String, Vec<_>> = HashMap::new();
    for r in rs {
        m.entry(r.tag.clone()).or_default().push(r.reading);
    }
    m
}

pub fn t(v: &serde_json::Value) -> i64 {
    tagstream::model::time::parse_time(v.as_str().expect("time string")).expect("time")
}

/// Splits one CSV line into fields, honouring double quotes.
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}
