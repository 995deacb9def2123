//! Crime batches: 13 columns, no header, one file per force per day, the configured share of
//! malformed rows, every validation error of the domain page planted and actually wrong.

mod common;

use std::collections::{BTreeSet, HashMap};

const FORCES: [&str; 19] = [
    "AvonSomerset",
    "Bedfordshire",
    "Cheshire",
    "CoLP",
    "Cumbria",
    "Derbyshire",
    "Durham",
    "Essex",
    "Gloucestershire",
    "Gwent",
    "Hampshire",
    "Hertfordshire",
    "Humberside",
    "Kent",
    "Metropolitan",
    "NorthWales",
    "Nottinghamshire",
    "Sussex",
    "WestMidlands",
];
const CODES: [&str; 19] = [
    "AVS", "BFD", "CHS", "CoLP", "CMB", "DBY", "DUR", "ESX", "GLC", "GWP", "HAM", "HRT", "HMB",
    "KNT", "MPS", "NWL", "NOT", "SXP", "WMP",
];
const TYPES: [&str; 7] = ["RB", "BIAD", "AB", "BOTD", "TOMV", "TFP", "TFMV"];

fn stamp_ok(s: &str) -> Option<chrono::NaiveDateTime> {
    (s.len() == 14)
        .then(|| chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok())
        .flatten()
}

/// The domain page's row checks, as error names (the simulator's names for them). `file_batch` is
/// the batch id the file is named after.
fn row_errors(f: &[String], file_batch: &str) -> BTreeSet<&'static str> {
    let mut e = BTreeSet::new();
    if f.len() != 13 {
        e.insert("wrong_column_count");
        return e;
    }
    if !FORCES.contains(&f[0].as_str()) {
        e.insert("unknown_police_force");
    } else if f[0] != "AvonSomerset" {
        e.insert("several_forces_in_batch");
    }
    if !TYPES.contains(&f[1].as_str()) {
        e.insert("unknown_crime_type");
    }
    if f[2].parse::<f64>().is_ok() {
        e.insert("field_must_be_text");
    }
    if f[3].is_empty() {
        e.insert("missing_batch_id");
    } else {
        let code = CODES.iter().find(|c| f[3].starts_with(**c));
        let code_ok = code.is_some();
        let rest = &f[3][code.map_or(0, |c| c.len()).min(f[3].len())..];
        let date = rest.get(..8).unwrap_or("");
        let suffix = rest.get(8..).unwrap_or("");
        let suffix_ok = ["", "-R", "-A"].contains(&suffix) || suffix.starts_with('-');
        if !code_ok || date.len() != 8 || !date.chars().all(|c| c.is_ascii_digit()) || !suffix_ok {
            e.insert("invalid_batch_id_format");
        } else if chrono::NaiveDate::parse_from_str(date, "%Y%m%d").is_err() {
            e.insert("invalid_batch_id_date");
        } else if f[3] != file_batch && f[0] == "AvonSomerset" {
            e.insert("several_batch_ids_in_batch");
        }
    }
    if f[4].is_empty() {
        e.insert("missing_crime_reference");
    }
    match (stamp_ok(&f[5]), stamp_ok(&f[6])) {
        (Some(a), Some(b)) => {
            if b < a {
                e.insert("to_before_from");
            } else if (b - a).num_seconds() > 12 * 3600 {
                e.insert("window_too_long");
            }
        }
        _ => {
            e.insert("bad_date_format");
        }
    }
    let present: Vec<bool> = (7..=10).map(|i| !f[i].is_empty()).collect();
    let numbers_ok = (7..=10).all(|i| f[i].is_empty() || f[i].parse::<f64>().is_ok());
    if !numbers_ok {
        e.insert("field_must_be_number");
    }
    let bng = present[0] && present[1];
    let wgs = present[2] && present[3];
    if present.iter().all(|p| !p) {
        e.insert("no_location");
    } else if bng && wgs {
        e.insert("both_coordinate_types");
    } else if !(bng || wgs)
        || (bng && (present[2] || present[3]))
        || (wgs && (present[0] || present[1]))
    {
        e.insert("half_coordinate_pair");
    } else if numbers_ok {
        let v = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let ok = if bng {
            (0.0..=600_000.0).contains(&v(7))
                && (0.0..=1_300_000.0).contains(&v(8))
                && f[11] == "OSGB36"
        } else {
            (49.5..=61.5).contains(&v(9)) && (-8.5..=2.6).contains(&v(10)) && f[11] == "WGS84"
        };
        if !ok {
            e.insert("coordinates_out_of_range");
        }
    }
    e
}

#[test]
fn crime_files_follow_the_police_format_with_the_configured_malformed_share() {
    let share = 0.25;
    let dir = common::generated(|d| {
        let mut o = common::options(d, 30, 3, 21);
        o.rates.malformed_share = share;
        o.rates.unrelated_crimes = 40.0;
        o.rates.resubmitted = 0.3;
        o
    });
    let truth = common::truth(dir.path());
    let mut bad: HashMap<(String, u64), String> = HashMap::new();
    for t in truth.iter().filter(|t| t["type"] == "crime_row_error") {
        bad.insert(
            (
                t["file"].as_str().unwrap_or_default().to_string(),
                t["line"].as_u64().unwrap_or(0),
            ),
            t["error"].as_str().unwrap_or_default().to_string(),
        );
    }
    let crimes = dir.path().join("crimes");
    let mut names: Vec<String> = std::fs::read_dir(&crimes)
        .expect("crimes dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "AvonSomerset-20260303.csv",
            "AvonSomerset-20260304.csv",
            "AvonSomerset-20260305.csv"
        ]
    );
    let mut kinds_seen = BTreeSet::new();
    // Crime reference -> the files it appears in (a later file is a resubmission: a new version).
    let mut refs: HashMap<String, Vec<String>> = HashMap::new();
    for name in &names {
        let bytes = std::fs::read(crimes.join(name)).expect("read");
        assert!(
            !bytes.starts_with(&[0xEF, 0xBB, 0xBF]),
            "no byte-order mark"
        );
        let text = String::from_utf8(bytes).expect("UTF-8");
        let file_batch = format!("AVS{}", &name[13..21]);
        let lines: Vec<&str> = text.lines().collect();
        let mut n_bad = 0;
        for (i, line) in lines.iter().enumerate() {
            let f = common::csv_fields(line);
            let errors = row_errors(&f, &file_batch);
            match bad.get(&(name.clone(), i as u64 + 1)) {
                Some(kind) => {
                    n_bad += 1;
                    kinds_seen.insert(kind.clone());
                    assert!(
                        errors.contains(kind.as_str()),
                        "{name}:{}: planted {kind} but found {errors:?}: {line}",
                        i + 1
                    );
                }
                None => {
                    assert!(
                        errors.is_empty(),
                        "{name}:{}: good row has {errors:?}: {line}",
                        i + 1
                    );
                    assert!(line.ends_with('"'), "free text is quoted");
                    let files = refs.entry(f[4].clone()).or_default();
                    assert!(
                        !files.contains(name),
                        "crime reference {} twice in {name}",
                        f[4]
                    );
                    files.push(name.clone());
                }
            }
        }
        assert!(!lines.is_empty());
        assert!(
            !lines[0].starts_with("police") && FORCES.iter().any(|f| lines[0].starts_with(f))
                || bad.contains_key(&(name.clone(), 1)),
            "no header row"
        );
        let got = n_bad as f64 / lines.len() as f64;
        assert!(
            (got - share).abs() <= 1.0 / lines.len() as f64 + 0.02,
            "{name}: malformed share {got:.3}, configured {share}"
        );
    }
    // Resubmitted references carry a later version in truth when they hit.
    let resubmitted: Vec<&String> = refs
        .iter()
        .filter(|(_, f)| f.len() > 1)
        .map(|(r, _)| r)
        .collect();
    for t in truth.iter().filter(|t| t["type"] == "hit") {
        let r = t["crime_ref"].as_str().unwrap_or_default().to_string();
        let v = t["crime_version"].as_u64().unwrap_or(0);
        assert!(
            v == 1 || resubmitted.contains(&&r),
            "{r} version {v} was never resubmitted"
        );
    }
    assert!(!resubmitted.is_empty(), "some crimes are resubmitted");
    assert_eq!(
        kinds_seen.len(),
        tagsim::crimes::ROW_ERRORS.len(),
        "every error kind planted: {kinds_seen:?}"
    );
}

#[test]
fn no_malformed_rows_when_the_share_is_zero() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 10, 1, 3);
        o.rates.malformed_share = 0.0;
        o
    });
    assert!(common::truth(dir.path())
        .iter()
        .all(|t| t["type"] != "crime_row_error"));
    let text =
        std::fs::read_to_string(dir.path().join("crimes/AvonSomerset-20260303.csv")).expect("file");
    for line in text.lines() {
        assert_eq!(common::csv_fields(line).len(), 13, "{line}");
    }
}
