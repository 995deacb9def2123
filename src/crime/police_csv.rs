//! The police crime batch CSV (domain page section 4): one force's daily batch, 13 columns, no
//! header, UTF-8 with an optional byte-order mark, quoted free text.
//!
//! [`parse_police_batch`] reads one file's bytes and returns a [`BatchReport`]: the rows that are
//! good become [`PoliceCrime`]s (a model type: the crime store keeps them) with a WGS84 location, every other row is reported once as a
//! [`RowError`] with its 1-based file line, a code, the column, a message naming the value, and the
//! action the sender must take. Messages count columns from 1, as a spreadsheet shows them
//! (column 1 is the force); the domain page and this code's indexes count from 0. Good rows are imported whatever the others hold; the batch is
//! `successful` (no error), `partial` (some crimes, some errors) or `failed` (no crime).
//!
//! Error codes are the simulator's `ROW_ERRORS` vocabulary ([`ROW_ERRORS`] here, the same strings),
//! plus three the vocabulary has no word for: [`INVALID_DATUM`] (row level), [`EMPTY_BATCH`] and
//! [`ALL_ROWS_FAILED`] (batch level, `line: None`).
//!
//! # Which rows are "the batch"
//! A file is one batch of one force. When the caller knows which force sent the file (the hub
//! receives each force's batches on that force's own channel), [`parse_police_batch_from`] takes
//! that force as the batch's. Otherwise [`parse_police_batch`] takes the force named by most rows
//! with 13 columns and a known force (ties: the one seen first, so a file of one good row and one
//! stray row of another force may pick the stray). Its batch id is the id carried by most of
//! that force's rows whose id is valid (ties: the later batch date, then the one seen first). A row
//! of another force is rejected with `several_forces_in_batch`, a row of the batch's force with
//! another valid batch id with `several_batch_ids_in_batch`.
//!
//! # One error per row, in this order
//! A row with several faults is reported with the first that applies:
//! 1. `wrong_column_count` (not 13 columns);
//! 2. `field_must_be_text` (a field that is not UTF-8); then `field_too_long` (a field over its
//!    length limit: free text 1,000 characters, any other field 100);
//! 3. `unknown_police_force` (column 0 empty or not an EMAC identifier);
//! 4. `missing_batch_id`, 5. `invalid_batch_id_format` (not the row's force code + 8 digits +
//!    optional `-N` + optional `-R`/`-A`), 6. `invalid_batch_id_date` (not a real date);
//! 7. `several_forces_in_batch`, 8. `several_batch_ids_in_batch`;
//! 9. `missing_crime_reference`; 10. `unknown_crime_type`;
//! 11. `field_must_be_text` (the crime type description is a number, not text);
//! 12. `bad_date_format` (from, then to, not `yyyyMMddHHmmss`); 13. `to_before_from`;
//!     14. `window_too_long` (over [`PoliceCsvRules::max_window_ms`]);
//! 15. `field_must_be_number` (easting, northing, latitude, longitude, in that order);
//! 16. `both_coordinate_types`; 17. `no_location`; 18. `half_coordinate_pair`;
//! 19. `coordinates_out_of_range` (easting 0–700,000 (the page says 600,000: see
//!     `EASTING_RANGE_M`), northing 0–1,300,000, latitude 49.5–61.5,
//!     longitude −8.5–2.6, or a grid reference that does not convert);
//! 20. `invalid_datum` (column 11 is not `OSGB36` for an easting/northing pair or `WGS84` for a
//!     latitude/longitude pair; compared without regard to case).
//!
//! Fields are trimmed of surrounding spaces, except the free text, which is kept as sent.

use super::coordinates::bng_to_wgs84;
use super::forces::{crime_type_by_id, force_by_id, Force};
use super::records::{parse_number, read_records, Record, LATITUDE_RANGE_DEG, LONGITUDE_RANGE_DEG};
use crate::config::CrimeApiConfig;
use crate::model::{OriginalCoordinates, PoliceCrime, TimeMs};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub const INVALID_BATCH_ID_FORMAT: &str = "invalid_batch_id_format";
pub const INVALID_BATCH_ID_DATE: &str = "invalid_batch_id_date";
pub const WRONG_COLUMN_COUNT: &str = "wrong_column_count";
pub const FIELD_MUST_BE_TEXT: &str = "field_must_be_text";
pub const FIELD_MUST_BE_NUMBER: &str = "field_must_be_number";
pub const UNKNOWN_POLICE_FORCE: &str = "unknown_police_force";
pub const UNKNOWN_CRIME_TYPE: &str = "unknown_crime_type";
pub const BAD_DATE_FORMAT: &str = "bad_date_format";
pub const TO_BEFORE_FROM: &str = "to_before_from";
pub const WINDOW_TOO_LONG: &str = "window_too_long";
pub const NO_LOCATION: &str = "no_location";
pub const HALF_COORDINATE_PAIR: &str = "half_coordinate_pair";
pub const BOTH_COORDINATE_TYPES: &str = "both_coordinate_types";
pub const COORDINATES_OUT_OF_RANGE: &str = "coordinates_out_of_range";
pub const MISSING_BATCH_ID: &str = "missing_batch_id";
pub const MISSING_CRIME_REFERENCE: &str = "missing_crime_reference";
pub const SEVERAL_FORCES_IN_BATCH: &str = "several_forces_in_batch";
pub const SEVERAL_BATCH_IDS_IN_BATCH: &str = "several_batch_ids_in_batch";
/// Row level, not in the simulator's vocabulary: the datum does not name the pair given.
pub const INVALID_DATUM: &str = "invalid_datum";
/// Row level, not in the simulator's vocabulary: a field longer than its limit (free text
/// [`FREE_TEXT_MAX_CHARS`], any other field [`FIELD_MAX_CHARS`] characters).
pub const FIELD_TOO_LONG: &str = "field_too_long";
/// Batch level, not in the simulator's vocabulary: the file holds no row at all.
pub const EMPTY_BATCH: &str = "empty_batch";
/// Batch level, not in the simulator's vocabulary: rows were sent but none could be imported.
pub const ALL_ROWS_FAILED: &str = "all_rows_failed";

/// A row's free text (column 12) may hold at most this many characters; a longer row is
/// rejected in the batch report.
pub const FREE_TEXT_MAX_CHARS: usize = 1_000;
/// Any other field of a row (references, descriptions, numbers) may hold at most this many.
pub const FIELD_MAX_CHARS: usize = 100;

/// The simulator's `ROW_ERRORS`, in its order: the codes scoring compares.
pub const ROW_ERRORS: [&str; 18] = [
    INVALID_BATCH_ID_FORMAT,
    INVALID_BATCH_ID_DATE,
    WRONG_COLUMN_COUNT,
    FIELD_MUST_BE_TEXT,
    FIELD_MUST_BE_NUMBER,
    UNKNOWN_POLICE_FORCE,
    UNKNOWN_CRIME_TYPE,
    BAD_DATE_FORMAT,
    TO_BEFORE_FROM,
    WINDOW_TOO_LONG,
    NO_LOCATION,
    HALF_COORDINATE_PAIR,
    BOTH_COORDINATE_TYPES,
    COORDINATES_OUT_OF_RANGE,
    MISSING_BATCH_ID,
    MISSING_CRIME_REFERENCE,
    SEVERAL_FORCES_IN_BATCH,
    SEVERAL_BATCH_IDS_IN_BATCH,
];

/// The 13 columns, by position, as [`RowError::field`] names them.
pub const COLUMNS: [&str; 13] = [
    "police_force",
    "crime_type",
    "crime_type_description",
    "batch_id",
    "crime_reference",
    "from",
    "to",
    "easting",
    "northing",
    "latitude",
    "longitude",
    "datum",
    "free_text",
];

const HOUR_MS: i64 = 3_600_000;
/// Eastings the grid covers. The domain page says 0–600,000, but the National Grid runs to
/// 700,000 m and the east of Kent and Essex, two EMAC forces (Canterbury, Dover, Margate,
/// Clacton: 603,000–640,000 m), lies beyond 600,000; the simulator writes such rows as good ones.
/// 700,000 is used so that those crimes import (a deliberate departure from the page).
const EASTING_RANGE_M: (f64, f64) = (0.0, 700_000.0);
const NORTHING_RANGE_M: (f64, f64) = (0.0, 1_300_000.0);

// Column positions.
const C_FORCE: usize = 0;
const C_TYPE: usize = 1;
const C_DESCRIPTION: usize = 2;
const C_BATCH: usize = 3;
const C_REF: usize = 4;
const C_FROM: usize = 5;
const C_TO: usize = 6;
const C_EASTING: usize = 7;
const C_NORTHING: usize = 8;
const C_LATITUDE: usize = 9;
const C_LONGITUDE: usize = 10;
const C_DATUM: usize = 11;
const C_TEXT: usize = 12;

/// Validation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoliceCsvRules {
    /// The longest from–to window a crime may have.
    pub max_window_ms: i64,
}

impl From<&CrimeApiConfig> for PoliceCsvRules {
    fn from(config: &CrimeApiConfig) -> Self {
        PoliceCsvRules {
            max_window_ms: config.max_window_h * HOUR_MS,
        }
    }
}

/// The `[crime_api]` defaults (a 12-hour window): one place holds the default, the config.
impl Default for PoliceCsvRules {
    fn default() -> Self {
        Self::from(&CrimeApiConfig::default())
    }
}

/// How much of a batch was imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// Every row imported.
    Successful,
    /// Some rows imported, some rejected.
    Partial,
    /// No row imported (or no row at all).
    Failed,
}

/// One rejected row, or a batch-level problem (`line: None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    /// 1-based line of the file where the row starts; `None` for the batch as a whole.
    pub line: Option<u64>,
    /// A [`ROW_ERRORS`] code, or [`INVALID_DATUM`], [`EMPTY_BATCH`], [`ALL_ROWS_FAILED`].
    pub code: &'static str,
    /// The [`COLUMNS`] name at fault, when one is.
    pub field: Option<&'static str>,
    /// What is wrong, naming the value and the column.
    pub message: String,
    /// What the sender must do.
    pub action: String,
}

/// The result of parsing one batch file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    /// The batch's id (see the module doc for how it is chosen), if any row had a valid one.
    pub batch_id: Option<String>,
    /// The batch's force, if any row named a known one.
    pub force: Option<&'static Force>,
    pub status: BatchStatus,
    /// Rows read (CSV records, blank lines excepted).
    pub rows: usize,
    /// The imported crimes, in file order.
    pub crimes: Vec<PoliceCrime>,
    /// Batch-level errors first, then one per rejected row in file order.
    pub errors: Vec<RowError>,
}

/// The force and batch id the batch is taken to be.
struct Batch {
    force: Option<&'static Force>,
    batch_id: Option<String>,
}

/// A check that failed: code, column and message; the action is chosen from the code.
struct Fault {
    code: &'static str,
    column: Option<usize>,
    message: String,
}

fn fault(code: &'static str, column: usize, message: String) -> Fault {
    Fault {
        code,
        column: Some(column),
        message,
    }
}

/// Parses and validates one police batch file.
///
/// The batch's force is the one most rows name (see the module doc).
pub fn parse_police_batch(bytes: &[u8], rules: &PoliceCsvRules) -> BatchReport {
    parse(None, bytes, rules)
}

/// Parses and validates one police batch file that `sender` sent: rows of any other force are
/// `several_forces_in_batch`.
pub fn parse_police_batch_from(
    sender: &'static Force,
    bytes: &[u8],
    rules: &PoliceCsvRules,
) -> BatchReport {
    parse(Some(sender), bytes, rules)
}

fn parse(sender: Option<&'static Force>, bytes: &[u8], rules: &PoliceCsvRules) -> BatchReport {
    let records = read_records(bytes);
    let batch = choose_batch(sender, &records);
    let mut crimes = Vec::new();
    let mut errors = Vec::new();
    for record in &records {
        match check_row(record, &batch, rules) {
            Ok(crime) => crimes.push(crime),
            Err(f) => errors.push(RowError {
                line: Some(record.line),
                code: f.code,
                field: f.column.map(|c| COLUMNS[c]),
                message: f.message,
                action: action(f.code, &batch, rules),
            }),
        }
    }
    let batch_level = if records.is_empty() {
        Some((EMPTY_BATCH, "the file holds no row".to_string()))
    } else if crimes.is_empty() {
        Some((
            ALL_ROWS_FAILED,
            format!("none of the {} rows could be imported", records.len()),
        ))
    } else {
        None
    };
    if let Some((code, message)) = batch_level {
        errors.insert(
            0,
            RowError {
                line: None,
                code,
                field: None,
                message,
                action: action(code, &batch, rules),
            },
        );
    }
    let status = match (crimes.is_empty(), errors.is_empty()) {
        (true, _) => BatchStatus::Failed,
        (false, true) => BatchStatus::Successful,
        (false, false) => BatchStatus::Partial,
    };
    BatchReport {
        batch_id: batch.batch_id,
        force: batch.force,
        status,
        rows: records.len(),
        crimes,
        errors,
    }
}

/// The most frequent item, ties going to the item `prefer`s and then to the first seen.
fn most_frequent<T: PartialEq>(
    items: impl Iterator<Item = T>,
    prefer: impl Fn(&T, &T) -> bool,
) -> Option<T> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(t, _)| *t == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    let mut best: Option<(T, usize)> = None;
    for (item, n) in counts {
        let replace = match &best {
            None => true,
            Some((b, bn)) => n > *bn || (n == *bn && prefer(&item, b)),
        };
        if replace {
            best = Some((item, n));
        }
    }
    best.map(|(item, _)| item)
}

fn choose_batch(sender: Option<&'static Force>, records: &[Record]) -> Batch {
    let thirteen = || {
        records
            .iter()
            .filter_map(|r| r.fields.as_ref().ok())
            .filter(|f| f.len() == COLUMNS.len())
    };
    let force = sender.or_else(|| {
        most_frequent(
            thirteen().filter_map(|f| force_by_id(f[C_FORCE].trim())),
            |_, _| false,
        )
    });
    let batch_id = force.and_then(|force| {
        most_frequent(
            thirteen()
                .filter(|f| f[C_FORCE].trim() == force.id)
                .map(|f| f[C_BATCH].trim())
                .filter_map(|id| check_batch_id(id, force).ok().map(|date| (id, date))),
            |(_, date), (_, best_date)| date > best_date,
        )
        .map(|(id, _)| id.to_string())
    });
    Batch { force, batch_id }
}

/// Checks a batch id against its row's force; the batch date when it is valid.
fn check_batch_id(id: &str, force: &Force) -> Result<NaiveDate, Fault> {
    let bad_format = |why: String| {
        fault(
            INVALID_BATCH_ID_FORMAT,
            C_BATCH,
            format!("batch id '{id}' (column 4, batch_id) {why}"),
        )
    };
    let Some(rest) = id.strip_prefix(force.code) else {
        return Err(bad_format(format!(
            "does not start with {}'s code {}",
            force.id, force.code
        )));
    };
    let digits = rest
        .get(..8)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let Some(digits) = digits else {
        return Err(bad_format(format!(
            "does not have 8 digits (yyyyMMdd) right after the code {}",
            force.code
        )));
    };
    let suffix: Vec<&str> = match &rest[8..] {
        "" => Vec::new(),
        s => match s.strip_prefix('-') {
            Some(s) => s.split('-').collect(),
            None => vec![""],
        },
    };
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_kind = |s: &str| s == "R" || s == "A";
    let suffix_ok = match suffix.as_slice() {
        [] => true,
        [one] => is_number(one) || is_kind(one),
        [n, kind] => is_number(n) && is_kind(kind),
        _ => false,
    };
    if !suffix_ok {
        return Err(bad_format(format!(
            "ends in '{}' after the date, where only an optional -N and an optional -R or -A may stand",
            &rest[8..]
        )));
    }
    let number = |range: std::ops::Range<usize>| digits[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4) as i32, number(4..6), number(6..8));
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        fault(
            INVALID_BATCH_ID_DATE,
            C_BATCH,
            format!("batch id '{id}' (column 4, batch_id) has '{digits}', which is not a real date (yyyyMMdd)"),
        )
    })
}

/// Parses `yyyyMMddHHmmss` (UTC) to milliseconds.
fn parse_stamp(text: &str) -> Option<TimeMs> {
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |range: std::ops::Range<usize>| text[range].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)?
        .and_hms_opt(n(8..10)?, n(10..12)?, n(12..14)?)
        .map(|t| t.and_utc().timestamp_millis())
}

/// The field at `column`, or `code` when it is empty.
fn required<'a>(
    f: &[&'a str],
    column: usize,
    code: &'static str,
    what: &str,
) -> Result<&'a str, Fault> {
    match f[column] {
        "" => Err(fault(
            code,
            column,
            format!(
                "the {what} (column {}, {}) is empty",
                column + 1,
                COLUMNS[column]
            ),
        )),
        value => Ok(value),
    }
}

fn check_row(record: &Record, batch: &Batch, rules: &PoliceCsvRules) -> Result<PoliceCrime, Fault> {
    if record.columns != COLUMNS.len() {
        return Err(Fault {
            code: WRONG_COLUMN_COUNT,
            column: None,
            message: format!("the row has {} columns, not 13", record.columns),
        });
    }
    let raw = match &record.fields {
        Ok(fields) => fields,
        Err(column) => {
            return Err(fault(
                FIELD_MUST_BE_TEXT,
                *column,
                format!("column {column} ({}) is not UTF-8 text", COLUMNS[*column]),
            ));
        }
    };
    for (column, field) in raw.iter().enumerate() {
        let max = if column == C_TEXT {
            FREE_TEXT_MAX_CHARS
        } else {
            FIELD_MAX_CHARS
        };
        if field.len() > max && field.chars().count() > max {
            return Err(fault(
                FIELD_TOO_LONG,
                column,
                format!(
                    "column {column} ({}) has {} characters; at most {max} are allowed",
                    COLUMNS[column],
                    field.chars().count()
                ),
            ));
        }
    }
    let f: Vec<&str> = raw.iter().map(|s| s.trim()).collect();

    let force = force_by_id(f[C_FORCE]).ok_or_else(|| {
        fault(
            UNKNOWN_POLICE_FORCE,
            C_FORCE,
            format!(
                "police force '{}' (column 1, police_force) is not an EMAC force",
                f[C_FORCE]
            ),
        )
    })?;
    let batch_id = required(&f, C_BATCH, MISSING_BATCH_ID, "batch id")?;
    check_batch_id(batch_id, force)?;
    if let Some(batch_force) = batch.force.filter(|b| b.id != force.id) {
        return Err(fault(
            SEVERAL_FORCES_IN_BATCH,
            C_FORCE,
            format!(
                "police force '{}' (column 1, police_force) differs from the batch's force {}",
                force.id, batch_force.id
            ),
        ));
    }
    if let Some(id) = batch.batch_id.as_deref().filter(|b| *b != batch_id) {
        return Err(fault(
            SEVERAL_BATCH_IDS_IN_BATCH,
            C_BATCH,
            format!("batch id '{batch_id}' (column 4, batch_id) differs from the batch's id {id}"),
        ));
    }
    let crime_ref = required(&f, C_REF, MISSING_CRIME_REFERENCE, "crime reference")?;
    let crime_type = crime_type_by_id(f[C_TYPE]).ok_or_else(|| {
        fault(
            UNKNOWN_CRIME_TYPE,
            C_TYPE,
            format!("crime type '{}' (column 2, crime_type) is not one of RB, BIAD, AB, BOTD, TOMV, TFP, TFMV", f[C_TYPE]),
        )
    })?;
    if parse_number(f[C_DESCRIPTION]).is_some() {
        return Err(fault(
            FIELD_MUST_BE_TEXT,
            C_DESCRIPTION,
            format!(
                "crime type description '{}' (column 3, crime_type_description) is a number, not text",
                f[C_DESCRIPTION]
            ),
        ));
    }
    let stamp = |column: usize| {
        parse_stamp(f[column]).ok_or_else(|| {
            fault(
                BAD_DATE_FORMAT,
                column,
                format!(
                    "'{}' (column {}, {}) is not a yyyyMMddHHmmss time",
                    f[column],
                    column + 1,
                    COLUMNS[column]
                ),
            )
        })
    };
    let (from_ms, to_ms) = (stamp(C_FROM)?, stamp(C_TO)?);
    if to_ms < from_ms {
        return Err(fault(
            TO_BEFORE_FROM,
            C_TO,
            format!(
                "to '{}' (column 7, to) is before from '{}' (column 6, from)",
                f[C_TO], f[C_FROM]
            ),
        ));
    }
    if to_ms - from_ms > rules.max_window_ms {
        return Err(fault(
            WINDOW_TOO_LONG,
            C_TO,
            format!(
                "the window from '{}' (column 6) to '{}' (column 7) lasts {:.1} h, over the {:.1} h allowed",
                f[C_FROM],
                f[C_TO],
                (to_ms - from_ms) as f64 / HOUR_MS as f64,
                rules.max_window_ms as f64 / HOUR_MS as f64
            ),
        ));
    }
    let (original, lat, lon, datum) = check_location(&f)?;
    Ok(PoliceCrime {
        line: record.line,
        force: force.id.to_string(),
        crime_type: crime_type.id.to_string(),
        crime_type_description: crime_type.description.to_string(),
        batch_id: batch_id.to_string(),
        crime_ref: crime_ref.to_string(),
        from_ms,
        to_ms,
        lat,
        lon,
        original,
        datum: datum.to_string(),
        other_info: raw[C_TEXT].clone(),
    })
}

/// Checks columns 7–11: exactly one whole pair, numbers in range, a datum that names the pair.
fn check_location(f: &[&str]) -> Result<(OriginalCoordinates, f64, f64, &'static str), Fault> {
    let mut values = [None; 4];
    for (i, column) in (C_EASTING..=C_LONGITUDE).enumerate() {
        if f[column].is_empty() {
            continue;
        }
        values[i] = Some(parse_number(f[column]).ok_or_else(|| {
            fault(
                FIELD_MUST_BE_NUMBER,
                column,
                format!(
                    "'{}' (column {}, {}) is not a number",
                    f[column],
                    column + 1,
                    COLUMNS[column]
                ),
            )
        })?);
    }
    let [easting, northing, latitude, longitude] = values;
    let grid = easting.is_some() || northing.is_some();
    let wgs = latitude.is_some() || longitude.is_some();
    if grid && wgs {
        return Err(Fault {
            code: BOTH_COORDINATE_TYPES,
            column: None,
            message: format!(
                "the row has both easting/northing ('{}', '{}', columns 8–9) and latitude/longitude ('{}', '{}', columns 10–11)",
                f[C_EASTING], f[C_NORTHING], f[C_LATITUDE], f[C_LONGITUDE]
            ),
        });
    }
    if !grid && !wgs {
        return Err(Fault {
            code: NO_LOCATION,
            column: None,
            message: "the row has no easting/northing (columns 8–9) and no latitude/longitude (columns 10–11)".into(),
        });
    }
    let half = |missing: usize, given: usize| {
        fault(
            HALF_COORDINATE_PAIR,
            missing,
            format!(
                "{} '{}' (column {}) is given without its {} (column {})",
                COLUMNS[given],
                f[given],
                given + 1,
                COLUMNS[missing],
                missing + 1
            ),
        )
    };
    let out_of_range = |column: usize, (lo, hi): (f64, f64)| {
        fault(
            COORDINATES_OUT_OF_RANGE,
            column,
            format!(
                "{} '{}' (column {}) is outside {lo}–{hi}",
                COLUMNS[column],
                f[column],
                column + 1
            ),
        )
    };
    let in_range = |v: f64, (lo, hi): (f64, f64)| (lo..=hi).contains(&v);
    let (original, lat, lon, datum) = match (easting, northing, latitude, longitude) {
        (Some(e), Some(n), _, _) => {
            if !in_range(e, EASTING_RANGE_M) {
                return Err(out_of_range(C_EASTING, EASTING_RANGE_M));
            }
            if !in_range(n, NORTHING_RANGE_M) {
                return Err(out_of_range(C_NORTHING, NORTHING_RANGE_M));
            }
            let p = bng_to_wgs84(e, n).map_err(|err| {
                fault(
                    COORDINATES_OUT_OF_RANGE,
                    C_EASTING,
                    format!(
                        "easting '{}', northing '{}' (columns 8–9) do not convert to WGS84: {err}",
                        f[C_EASTING], f[C_NORTHING]
                    ),
                )
            })?;
            let original = OriginalCoordinates::Bng {
                easting_m: e,
                northing_m: n,
            };
            (original, p.lat, p.lon, "OSGB36")
        }
        (Some(_), None, _, _) => return Err(half(C_NORTHING, C_EASTING)),
        (None, Some(_), _, _) => return Err(half(C_EASTING, C_NORTHING)),
        (None, None, Some(lat), Some(lon)) => {
            if !in_range(lat, LATITUDE_RANGE_DEG) {
                return Err(out_of_range(C_LATITUDE, LATITUDE_RANGE_DEG));
            }
            if !in_range(lon, LONGITUDE_RANGE_DEG) {
                return Err(out_of_range(C_LONGITUDE, LONGITUDE_RANGE_DEG));
            }
            (OriginalCoordinates::Wgs84 { lat, lon }, lat, lon, "WGS84")
        }
        (None, None, Some(_), None) => return Err(half(C_LONGITUDE, C_LATITUDE)),
        (None, None, _, _) => return Err(half(C_LATITUDE, C_LONGITUDE)),
    };
    if !f[C_DATUM].eq_ignore_ascii_case(datum) {
        return Err(fault(
            INVALID_DATUM,
            C_DATUM,
            format!(
                "datum '{}' (column 12, datum) does not match the {} pair given, whose datum is {datum}",
                f[C_DATUM],
                if datum == "OSGB36" { "easting/northing" } else { "latitude/longitude" }
            ),
        ));
    }
    Ok((original, lat, lon, datum))
}

/// What the sender must do about an error with `code`.
fn action(code: &'static str, batch: &Batch, rules: &PoliceCsvRules) -> String {
    let code_hint = batch.force.map_or("the force's code", |f| f.code);
    match code {
        WRONG_COLUMN_COUNT => "Send exactly 13 comma-separated columns; quote free text that holds commas, quotes or line breaks.".into(),
        FIELD_MUST_BE_TEXT => "Send the file as UTF-8 and put the crime type's description (text) in column 3.".into(),
        FIELD_MUST_BE_NUMBER => "Write easting/northing in metres and latitude/longitude in decimal degrees, as plain numbers.".into(),
        UNKNOWN_POLICE_FORCE => "Put one of the 19 EMAC force identifiers in column 1 (e.g. AvonSomerset, Metropolitan, CoLP).".into(),
        UNKNOWN_CRIME_TYPE => "Use one of the crime type ids RB, BIAD, AB, BOTD, TOMV, TFP, TFMV in column 2.".into(),
        MISSING_BATCH_ID => format!("Fill in the batch id in column 4: {code_hint} + yyyyMMdd (e.g. {code_hint}20260310)."),
        INVALID_BATCH_ID_FORMAT => format!("Write the batch id as the row's force code + yyyyMMdd, optionally -N and -R or -A (e.g. {code_hint}20260310-2-R)."),
        INVALID_BATCH_ID_DATE => "Use a real calendar date (yyyyMMdd) in the batch id.".into(),
        SEVERAL_FORCES_IN_BATCH => "Send each force's crimes in a batch file of their own; resend this row in its force's batch.".into(),
        SEVERAL_BATCH_IDS_IN_BATCH => "Send one batch id per file: correct this row's batch id or resend it with its own batch.".into(),
        MISSING_CRIME_REFERENCE => "Fill in the force's crime reference in column 5.".into(),
        BAD_DATE_FORMAT => "Write from and to as yyyyMMddHHmmss in UTC (e.g. 20260310143000).".into(),
        TO_BEFORE_FROM => "Correct the window so that to (column 7) is at or after from (column 6).".into(),
        WINDOW_TOO_LONG => format!(
            "Narrow the from–to window to at most {} hours.",
            rules.max_window_ms as f64 / HOUR_MS as f64
        ),
        NO_LOCATION => "Give one coordinate pair: easting and northing (OSGB36) or latitude and longitude (WGS84).".into(),
        HALF_COORDINATE_PAIR => "Give both values of the pair: easting with northing, or latitude with longitude.".into(),
        BOTH_COORDINATE_TYPES => "Give one pair only: clear either easting/northing or latitude/longitude.".into(),
        COORDINATES_OUT_OF_RANGE => "Check the location: easting 0–700,000, northing 0–1,300,000, latitude 49.5–61.5, longitude −8.5–2.6.".into(),
        FIELD_TOO_LONG => "Shorten the field to the limit given (free text: 1,000 characters; other fields: 100) and resend the row.".into(),
        INVALID_DATUM => "Set the datum (column 12) to OSGB36 for easting/northing or WGS84 for latitude/longitude.".into(),
        EMPTY_BATCH => "Resend the batch with its crime rows: 13 columns, no header row.".into(),
        ALL_ROWS_FAILED => "No crime was imported: correct the rows listed and resend the whole batch.".into(),
        _ => "Correct the row and resend it.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn force(id: &str) -> &'static Force {
        force_by_id(id).expect("known force")
    }

    #[test]
    fn batch_ids_follow_code_date_number_and_kind() {
        let avs = force("AvonSomerset");
        for ok in [
            "AVS20260310",
            "AVS20260310-2",
            "AVS20260310-R",
            "AVS20260310-12-A",
        ] {
            assert!(check_batch_id(ok, avs).is_ok(), "{ok}");
        }
        for (bad, code) in [
            ("AVS-20260310", INVALID_BATCH_ID_FORMAT),
            ("MPS20260310", INVALID_BATCH_ID_FORMAT),
            ("AVS2026031", INVALID_BATCH_ID_FORMAT),
            ("AVS20260310-X", INVALID_BATCH_ID_FORMAT),
            ("AVS20260310-R-2", INVALID_BATCH_ID_FORMAT),
            ("AVS20260310R", INVALID_BATCH_ID_FORMAT),
            ("AVS20260310-", INVALID_BATCH_ID_FORMAT),
            ("AVS20260231", INVALID_BATCH_ID_DATE),
            ("AVS20261301", INVALID_BATCH_ID_DATE),
        ] {
            assert_eq!(
                check_batch_id(bad, avs).err().map(|f| f.code),
                Some(code),
                "{bad}"
            );
        }
        assert!(check_batch_id("CoLP20260310", force("CoLP")).is_ok());
    }

    #[test]
    fn messages_count_columns_from_one_as_a_spreadsheet_does() {
        let good = "AvonSomerset,BIAD,Burglary,AVS20260310,C1,20260310100000,20260310110000,,,51.45,-2.59,WGS84,";
        let bad_type = good.replace(",BIAD,", ",XX,");
        let report = parse_police_batch(
            format!("{good}\n{bad_type}\n").as_bytes(),
            &PoliceCsvRules::default(),
        );
        let error = &report.errors[0];
        assert_eq!(error.field, Some("crime_type"));
        assert!(
            error.message.contains("(column 2, crime_type)"),
            "{}",
            error.message
        );
        assert!(error.action.contains("in column 2"), "{}", error.action);
    }

    #[test]
    fn stamps_are_fourteen_digits_of_a_real_utc_time() {
        assert_eq!(parse_stamp("19700101000001"), Some(1000));
        for bad in [
            "2026031014000",
            "2026-03-10 14:00",
            "20260230120000",
            "20260310250000",
            "+0260310120000",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn most_frequent_breaks_ties_by_preference_then_first_seen() {
        assert_eq!(
            most_frequent([1, 2, 2, 1, 3].into_iter(), |_, _| false),
            Some(1)
        );
        assert_eq!(
            most_frequent([1, 2, 2, 1, 3].into_iter(), |a, b| a > b),
            Some(2)
        );
        assert_eq!(most_frequent(std::iter::empty::<u8>(), |_, _| false), None);
    }

    #[test]
    fn every_code_has_its_own_action() {
        let batch = Batch {
            force: None,
            batch_id: None,
        };
        let rules = PoliceCsvRules::default();
        let fallback = action("?", &batch, &rules);
        for code in
            ROW_ERRORS
                .iter()
                .chain(&[INVALID_DATUM, FIELD_TOO_LONG, EMPTY_BATCH, ALL_ROWS_FAILED])
        {
            assert_ne!(action(code, &batch, &rules), fallback, "{code}");
        }
    }
}
