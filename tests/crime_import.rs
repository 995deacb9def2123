//! Crime imports end to end: hand-written police batches (`fixtures/crimes/`), the simulator's
//! batches checked against its truth, and the real data.police.uk files (`fixtures/crimes/police-uk`).
//!
//! The simulator test needs the `tagsim` binary (built by `cargo build -p tagsim`, which
//! `scripts/test.sh` runs first).

mod common;

use common::tagsim;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use tagstream::crime::police_csv::{self, ALL_ROWS_FAILED, EMPTY_BATCH, INVALID_DATUM};
use tagstream::crime::{
    force_by_id, force_by_name, parse_police_batch, parse_police_batch_from, parse_public_csv,
    BatchReport, BatchStatus, PoliceCsvRules, PublicImport,
};
use tagstream::model::{OriginalCoordinates, PoliceCrime};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/crimes")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_fixture(name: &str) -> BatchReport {
    parse_police_batch(&fixture(name), &PoliceCsvRules::default())
}

/// (line, code) of every row error, batch-level ones as line 0.
fn error_lines(report: &BatchReport) -> Vec<(u64, &'static str)> {
    report
        .errors
        .iter()
        .map(|e| (e.line.unwrap_or(0), e.code))
        .collect()
}

fn ms(stamp: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
        .expect("test stamp")
        .and_utc()
        .timestamp_millis()
}

#[test]
fn mixed_batch_reports_every_bad_row_with_its_line_and_code() {
    let report = parse_fixture("mixed.csv");
    assert_eq!(report.status, BatchStatus::Partial);
    assert_eq!(report.rows, 24, "row 3 spans lines 3 and 4");
    assert_eq!(report.batch_id.as_deref(), Some("MPS20260310"));
    assert_eq!(report.force.map(|f| f.id), Some("Metropolitan"));
    let expected = vec![
        (5, "wrong_column_count"),
        (6, "wrong_column_count"),
        (7, "field_must_be_text"),
        (8, "field_must_be_number"),
        (9, "unknown_police_force"),
        (10, "unknown_crime_type"),
        (11, "bad_date_format"),
        (12, "to_before_from"),
        (13, "window_too_long"),
        (14, "no_location"),
        (15, "half_coordinate_pair"),
        (16, "both_coordinate_types"),
        (17, "coordinates_out_of_range"),
        (18, "missing_batch_id"),
        (19, "missing_crime_reference"),
        (20, "several_forces_in_batch"),
        (21, "several_batch_ids_in_batch"),
        (22, "invalid_batch_id_format"),
        (23, "invalid_batch_id_date"),
        (24, INVALID_DATUM),
    ];
    assert_eq!(error_lines(&report), expected);
    // Every code of the simulator's vocabulary is exercised by this fixture.
    let seen: BTreeSet<&str> = report.errors.iter().map(|e| e.code).collect();
    for code in police_csv::ROW_ERRORS {
        assert!(seen.contains(code), "{code} not exercised");
    }
    for e in &report.errors {
        assert!(!e.message.is_empty() && !e.action.is_empty(), "{e:?}");
    }
    let by_line: BTreeMap<u64, _> = report
        .errors
        .iter()
        .map(|e| (e.line.unwrap_or(0), e))
        .collect();
    assert_eq!(by_line[&8].field, Some("easting"));
    assert!(by_line[&8].message.contains("52A381"), "{:?}", by_line[&8]);
    assert_eq!(by_line[&9].field, Some("police_force"));
    assert!(by_line[&9].message.contains("Atlantis"));
    assert!(by_line[&13].action.contains("12 hours"));
    assert!(by_line[&20].message.contains("CoLP"));
}

#[test]
fn mixed_batch_imports_the_good_rows_with_converted_coordinates() {
    let report = parse_fixture("mixed.csv");
    let lines: Vec<u64> = report.crimes.iter().map(|c| c.line).collect();
    assert_eq!(lines, [1, 2, 3, 25]);
    // BOM stripped: the first row's force is read as `Metropolitan`.
    let first = &report.crimes[0];
    assert_eq!(first.force, "Metropolitan");
    assert_eq!(first.crime_type, "BIAD");
    assert_eq!(first.crime_type_description, "Burglary in a dwelling");
    assert_eq!(first.batch_id, "MPS20260310");
    assert_eq!(first.crime_ref, "MPS/26/000001");
    assert_eq!(first.from_ms, ms("20260309180000"));
    assert_eq!(first.to_ms, ms("20260309213000"));
    assert_eq!(first.datum, "OSGB36");
    assert_eq!(
        first.original,
        OriginalCoordinates::Bng {
            easting_m: 529_381.0,
            northing_m: 179_534.0
        }
    );
    // The domain page's conversion check values.
    for (crime, lon, lat) in [
        (&report.crimes[0], -0.137433, 51.499946),
        (&report.crimes[1], -0.024452, 51.504652),
    ] {
        assert!((crime.lat - lat).abs() < 1e-5, "{} vs {lat}", crime.lat);
        assert!((crime.lon - lon).abs() < 1e-5, "{} vs {lon}", crime.lon);
    }
    // A window of exactly 12 hours is allowed.
    assert_eq!(
        report.crimes[1].to_ms - report.crimes[1].from_ms,
        12 * 3_600_000
    );
    // Quoted free text keeps its comma, embedded quotes and line break.
    let robbery = &report.crimes[2];
    assert_eq!(
        robbery.other_info,
        "Suspect said \"give me that\", then ran,\ntowards the river"
    );
    assert_eq!(
        robbery.original,
        OriginalCoordinates::Wgs84 {
            lat: 51.5131,
            lon: -0.0983
        }
    );
    assert_eq!((robbery.lat, robbery.lon), (51.5131, -0.0983));
    // The datum is compared without regard to case and written canonically.
    assert_eq!(report.crimes[3].datum, "WGS84");
    assert_eq!(report.crimes[3].other_info, "");
}

#[test]
fn clean_batch_with_crlf_is_successful() {
    let report = parse_fixture("clean.csv");
    assert_eq!(report.status, BatchStatus::Successful);
    assert_eq!(report.rows, 3);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.crimes.len(), 3);
    assert_eq!(report.batch_id.as_deref(), Some("AVS20260303"));
    assert_eq!(
        report.crimes[1].other_info,
        "Two suspects, one on an e-scooter"
    );
    for c in &report.crimes {
        assert!(
            (51.2..51.7).contains(&c.lat) && (-2.9..-2.4).contains(&c.lon),
            "{c:?}"
        );
    }
    // The report serialises with a lowercase status and the force as an object.
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["status"], "successful");
    assert_eq!(json["force"]["code"], "AVS");
    assert_eq!(json["crimes"][0]["original"]["system"], "bng");
    let crimes: Vec<PoliceCrime> =
        serde_json::from_value(json["crimes"].clone()).expect("crimes deserialise");
    assert_eq!(crimes, report.crimes);
}

#[test]
fn multi_force_batch_keeps_the_majority_force_and_batch_id() {
    let report = parse_fixture("multi_force.csv");
    assert_eq!(report.force.map(|f| f.id), Some("Kent"));
    assert_eq!(report.batch_id.as_deref(), Some("KNT20260315-2-R"));
    assert_eq!(report.status, BatchStatus::Partial);
    assert_eq!(
        error_lines(&report),
        [
            (2, "several_forces_in_batch"),
            (4, "several_forces_in_batch"),
            (5, "several_batch_ids_in_batch"),
        ]
    );
    let lines: Vec<u64> = report.crimes.iter().map(|c| c.line).collect();
    assert_eq!(lines, [1, 3, 6]);
    // Dover, east of easting 600,000 (beyond the domain page's range, inside the grid's).
    let dover = &report.crimes[1];
    assert!(
        (dover.lat - 51.125).abs() < 0.01 && (dover.lon - 1.31).abs() < 0.01,
        "{dover:?}"
    );
}

#[test]
fn all_bad_batch_fails_with_a_batch_level_error_first() {
    let report = parse_fixture("all_bad.csv");
    assert_eq!(report.status, BatchStatus::Failed);
    assert!(report.crimes.is_empty());
    assert_eq!(
        error_lines(&report),
        [
            (0, ALL_ROWS_FAILED),
            (1, "no_location"),
            (2, "to_before_from"),
            (3, "wrong_column_count"),
        ]
    );
    assert_eq!(report.errors[0].line, None);
}

#[test]
fn empty_files_fail_with_a_clear_batch_level_error() {
    for bytes in [&b""[..], b"\xEF\xBB\xBF", b"\n\n"] {
        let report = parse_police_batch(bytes, &PoliceCsvRules::default());
        assert_eq!(report.status, BatchStatus::Failed);
        assert_eq!(report.rows, 0);
        assert_eq!(error_lines(&report), [(0, EMPTY_BATCH)]);
        assert!(report.errors[0].message.contains("no row"));
    }
}

#[test]
fn a_field_that_is_not_utf8_is_reported_not_fatal() {
    let mut bytes = fixture("clean.csv");
    let at = bytes
        .windows(7)
        .position(|w| w == b"Robbery")
        .expect("fixture has a robbery");
    bytes[at] = 0xFF;
    let report = parse_police_batch(&bytes, &PoliceCsvRules::default());
    assert_eq!(report.status, BatchStatus::Partial);
    assert_eq!(error_lines(&report), [(1, "field_must_be_text")]);
    assert_eq!(report.errors[0].field, Some("crime_type_description"));
    assert_eq!(report.crimes.len(), 2);
}

#[test]
fn the_window_limit_is_configurable() {
    let rules = PoliceCsvRules {
        max_window_ms: 2 * 3_600_000,
    };
    let report = parse_police_batch(&fixture("clean.csv"), &rules);
    assert_eq!(
        error_lines(&report),
        [(2, "window_too_long"), (3, "window_too_long")]
    );
    assert!(report.errors[0].action.contains("2 hours"));
}

#[test]
fn codes_are_the_simulators_vocabulary() {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("simulator/src/crimes.rs"),
    )
    .expect("simulator source");
    let start = source
        .find("pub const ROW_ERRORS")
        .expect("ROW_ERRORS in the simulator");
    let list = &source[start..start + source[start..].find("];").expect("end of list")];
    let simulator: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    assert_eq!(simulator, police_csv::ROW_ERRORS);
}

/// What one simulator run held.
#[derive(Default)]
struct SimRun {
    files: usize,
    crimes: usize,
    empty_files: usize,
    /// The codes planted.
    codes: BTreeSet<String>,
}

/// Runs `tagsim generate` with `options` and checks every batch it wrote against its truth: every
/// row planted as malformed is reported at its line with its code, every other row imports.
/// Batches are parsed as the hub receives them, knowing the sending force (named in the file).
fn check_simulator_run(options: &[&str]) -> SimRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("sim");
    let generated = Command::new(tagsim())
        .arg("generate")
        .args(["--no-bin", "--no-json"])
        .args(options)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run tagsim");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let mut planted: BTreeSet<(String, u64, String)> = BTreeSet::new();
    let truth = std::fs::read_to_string(out.join("truth.jsonl")).expect("truth.jsonl");
    for line in truth.lines() {
        let item: serde_json::Value = serde_json::from_str(line).expect("truth line");
        if item["type"] == "crime_row_error" {
            planted.insert((
                item["file"].as_str().expect("file").to_string(),
                item["line"].as_u64().expect("line"),
                item["error"].as_str().expect("error").to_string(),
            ));
        }
    }

    let mut reported = BTreeSet::new();
    let mut run = SimRun::default();
    let mut entries: Vec<_> = std::fs::read_dir(out.join("crimes"))
        .expect("crimes dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        // `<Force>-<yyyyMMdd>.csv`
        let sender = name
            .split('-')
            .next()
            .and_then(force_by_id)
            .unwrap_or_else(|| panic!("{name}: no force in the name"));
        let bytes = std::fs::read(&path).expect("read batch");
        let report = parse_police_batch_from(sender, &bytes, &PoliceCsvRules::default());
        run.files += 1;
        run.crimes += report.crimes.len();
        assert_eq!(report.force, Some(sender));
        let row_errors: Vec<_> = report.errors.iter().filter(|e| e.line.is_some()).collect();
        assert_eq!(
            report.crimes.len() + row_errors.len(),
            report.rows,
            "{name}"
        );
        for e in &report.errors {
            match e.line {
                Some(line) => {
                    reported.insert((name.clone(), line, e.code.to_string()));
                }
                None if e.code == EMPTY_BATCH => {
                    assert_eq!(report.rows, 0, "{name}");
                    run.empty_files += 1;
                }
                None if e.code == ALL_ROWS_FAILED => assert!(report.crimes.is_empty()),
                None => panic!("{name}: batch-level {e:?}"),
            }
        }
    }
    let missed: Vec<_> = planted.difference(&reported).collect();
    let extra: Vec<_> = reported.difference(&planted).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "{options:?}: missed {missed:?}, extra {extra:?}"
    );
    run.codes = planted.into_iter().map(|(_, _, c)| c).collect();
    run
}

#[test]
fn simulator_batches_match_their_truth() {
    let options = ["--tags", "8", "--days", "3", "--seed", "7"];
    let run = check_simulator_run(&[&options[..], &["--malformed-share", "0.25"]].concat());
    // The run exercises the whole vocabulary.
    assert_eq!(
        run.codes.len(),
        police_csv::ROW_ERRORS.len(),
        "{:?}",
        run.codes
    );
    assert!(
        run.files >= 3 && run.crimes > 30,
        "{} files, {} crimes",
        run.files,
        run.crimes
    );
}

/// Days with one or two crimes: a stray row of another force can be half the file (seed 1), and
/// a day may have no crime at all, an empty file that fails (seed 2).
#[test]
fn simulator_tiny_batches_match_their_truth() {
    let rates = ["--unrelated-crimes", "2", "--malformed-share", "0.5"];
    let (mut files, mut empty_files) = (0, 0);
    for seed in ["1", "2"] {
        let options = ["--tags", "10", "--days", "10", "--seed", seed];
        let run = check_simulator_run(&[&options[..], &rates[..]].concat());
        assert!(run.codes.contains("several_forces_in_batch"), "seed {seed}");
        files += run.files;
        empty_files += run.empty_files;
    }
    assert!(
        files >= 20 && empty_files >= 1,
        "{files} files, {empty_files} empty"
    );
}

fn import_police_uk(name: &str) -> PublicImport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/crimes/police-uk")
        .join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} is in the repository: {e}", path.display()));
    parse_public_csv(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Facts about one real file, as measured (and cross-checked with Python's csv module).
struct Expected {
    force: &'static str,
    rows: usize,
    crimes: usize,
    duplicate_ids: usize,
    without_id: usize,
    acquisitive: usize,
}

fn check_real_file(name: &str, want: Expected) {
    let import = import_police_uk(name);
    assert_eq!(import.rows, want.rows, "{name}: rows");
    assert_eq!(import.crimes.len(), want.crimes, "{name}: crimes");
    // Every skipped row is a row without coordinates.
    assert_eq!(import.skipped.len(), want.rows - want.crimes, "{name}");
    assert!(
        import.skipped.iter().all(|s| s.code == "no_location"),
        "{name}"
    );
    assert_eq!(
        import.duplicate_ids, want.duplicate_ids,
        "{name}: duplicate ids"
    );
    let without_id: Vec<_> = import
        .crimes
        .iter()
        .filter(|c| c.crime_id.is_none())
        .collect();
    assert_eq!(
        without_id.len(),
        want.without_id,
        "{name}: rows without an id"
    );
    assert!(without_id
        .iter()
        .all(|c| c.crime_type == "Anti-social behaviour"));
    let acquisitive = import.crimes.iter().filter(|c| c.acquisitive).count();
    assert_eq!(acquisitive, want.acquisitive, "{name}: acquisitive");
    for c in &import.crimes {
        assert_eq!(c.month, "2018-01");
        assert_eq!(
            force_by_name(&c.reported_by).map(|f| f.id),
            Some(want.force)
        );
    }
    assert_eq!(import.crimes[0].line, 2, "the header is line 1");
}

#[test]
fn real_city_of_london_file_imports_with_its_quirks() {
    check_real_file(
        "2018-01-city-of-london-street.csv",
        Expected {
            force: "CoLP",
            rows: 698,
            crimes: 677,
            // The file's one repeated ID is on a row without coordinates, which is skipped.
            duplicate_ids: 0,
            without_id: 141,
            acquisitive: 365,
        },
    );
}

#[test]
fn real_avon_and_somerset_file_imports_with_its_quirks() {
    check_real_file(
        "2018-01-avon-and-somerset-street.csv",
        Expected {
            force: "AvonSomerset",
            rows: 13_566,
            crimes: 11_949,
            duplicate_ids: 124,
            without_id: 2_455,
            acquisitive: 3_662,
        },
    );
}
