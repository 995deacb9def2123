//! The data.police.uk street-level crime CSV (domain page section 4): a month of a force's crimes
//! with anonymised locations, for map overlays and area context (never for hits).
//!
//! [`parse_public_csv`] checks the header, then keeps every row that has a month and a location,
//! quirks and all: anti-social-behaviour rows have no Crime ID (kept, `crime_id: None`), and an ID
//! may stand on several rows (all kept; [`PublicImport::duplicate_ids`] counts the kept rows whose
//! ID a kept row before them already had). A row that cannot be placed on a map is skipped and
//! listed in [`PublicImport::skipped`] with its line and a code from the police batch vocabulary:
//! `wrong_column_count`, `field_must_be_text` (not UTF-8), `bad_date_format` (month not
//! `YYYY-MM`), `no_location`, `half_coordinate_pair`, `field_must_be_number`,
//! `coordinates_out_of_range` (outside latitude 49.5–61.5, longitude −8.5–2.6), checked in that
//! order.

use super::police_csv::{
    BAD_DATE_FORMAT, COORDINATES_OUT_OF_RANGE, FIELD_MUST_BE_NUMBER, FIELD_MUST_BE_TEXT,
    HALF_COORDINATE_PAIR, NO_LOCATION, WRONG_COLUMN_COUNT,
};
use super::records::{parse_number, read_records, LATITUDE_RANGE_DEG, LONGITUDE_RANGE_DEG};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The header every data.police.uk street-level file starts with.
pub const PUBLIC_HEADER: [&str; 12] = [
    "Crime ID",
    "Month",
    "Reported by",
    "Falls within",
    "Longitude",
    "Latitude",
    "Location",
    "LSOA code",
    "LSOA name",
    "Crime type",
    "Last outcome category",
    "Context",
];

/// The acquisitive crime types among data.police.uk's categories.
pub const ACQUISITIVE_TYPES: [&str; 7] = [
    "Burglary",
    "Robbery",
    "Theft from the person",
    "Vehicle crime",
    "Shoplifting",
    "Bicycle theft",
    "Other theft",
];

const C_ID: usize = 0;
const C_MONTH: usize = 1;
const C_REPORTED_BY: usize = 2;
const C_FALLS_WITHIN: usize = 3;
const C_LONGITUDE: usize = 4;
const C_LATITUDE: usize = 5;
const C_LOCATION: usize = 6;
const C_LSOA_CODE: usize = 7;
const C_LSOA_NAME: usize = 8;
const C_TYPE: usize = 9;
const C_OUTCOME: usize = 10;
const C_CONTEXT: usize = 11;

/// Why a file is not a street-level crime file at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicCsvError {
    #[error("the file is empty: a data.police.uk street-level file starts with its header")]
    Empty,
    #[error("line {line}: the header is `{found}`, not the data.police.uk street-level header `{expected}`")]
    BadHeader {
        line: u64,
        found: String,
        expected: String,
    },
}

/// One street-level crime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicCrime {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// `None` for the rows that have none (anti-social behaviour).
    pub crime_id: Option<String>,
    /// `YYYY-MM`.
    pub month: String,
    pub reported_by: String,
    pub falls_within: String,
    /// WGS84 latitude of the anonymised point, degrees.
    pub lat: f64,
    /// WGS84 longitude of the anonymised point, degrees.
    pub lon: f64,
    /// E.g. `On or near Whytewaters`.
    pub location: String,
    pub lsoa_code: String,
    pub lsoa_name: String,
    pub crime_type: String,
    /// Empty where the file has none (anti-social behaviour).
    pub last_outcome: String,
    pub context: String,
    /// Whether `crime_type` is one of [`ACQUISITIVE_TYPES`].
    pub acquisitive: bool,
}

/// A data row that was not imported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedRow {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// A code of the police batch vocabulary (see the module doc).
    pub code: &'static str,
    /// What is wrong, naming the value and the column.
    pub message: String,
}

/// The result of importing one street-level file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicImport {
    /// Data rows read (the header excepted).
    pub rows: usize,
    pub crimes: Vec<PublicCrime>,
    pub skipped: Vec<SkippedRow>,
    /// Kept rows whose Crime ID an earlier kept row already had.
    pub duplicate_ids: usize,
}

/// Imports one data.police.uk street-level CSV file.
pub fn parse_public_csv(bytes: &[u8]) -> Result<PublicImport, PublicCsvError> {
    let records = read_records(bytes);
    let Some((header, rows)) = records.split_first() else {
        return Err(PublicCsvError::Empty);
    };
    let header_ok = matches!(&header.fields, Ok(f) if f.iter().map(|s| s.trim()).eq(PUBLIC_HEADER));
    if !header_ok {
        let found = match &header.fields {
            Ok(f) => f.join(","),
            Err(_) => "(not UTF-8)".to_string(),
        };
        return Err(PublicCsvError::BadHeader {
            line: header.line,
            found,
            expected: PUBLIC_HEADER.join(","),
        });
    }
    let mut import = PublicImport {
        rows: rows.len(),
        crimes: Vec::new(),
        skipped: Vec::new(),
        duplicate_ids: 0,
    };
    let mut seen_ids = HashSet::new();
    for record in rows {
        let skip = |code: &'static str, message: String| SkippedRow {
            line: record.line,
            code,
            message,
        };
        if record.columns != PUBLIC_HEADER.len() {
            let message = format!("the row has {} columns, not 12", record.columns);
            import.skipped.push(skip(WRONG_COLUMN_COUNT, message));
            continue;
        }
        let fields = match &record.fields {
            Ok(fields) => fields,
            Err(column) => {
                let message = format!(
                    "column {column} ({}) is not UTF-8 text",
                    PUBLIC_HEADER[*column]
                );
                import.skipped.push(skip(FIELD_MUST_BE_TEXT, message));
                continue;
            }
        };
        match check_row(record.line, fields) {
            Ok(crime) => {
                if let Some(id) = &crime.crime_id {
                    if !seen_ids.insert(id.clone()) {
                        import.duplicate_ids += 1;
                    }
                }
                import.crimes.push(crime);
            }
            Err((code, message)) => import.skipped.push(skip(code, message)),
        }
    }
    Ok(import)
}

/// `YYYY-MM` with a month 01–12.
fn is_month(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(text[5..].parse::<u8>(), Ok(1..=12))
}

fn check_row(line: u64, raw: &[String]) -> Result<PublicCrime, (&'static str, String)> {
    let f: Vec<&str> = raw.iter().map(|s| s.trim()).collect();
    if !is_month(f[C_MONTH]) {
        let message = format!("month '{}' (column 1, Month) is not YYYY-MM", f[C_MONTH]);
        return Err((BAD_DATE_FORMAT, message));
    }
    let (lon_text, lat_text) = (f[C_LONGITUDE], f[C_LATITUDE]);
    match (lon_text.is_empty(), lat_text.is_empty()) {
        (true, true) => {
            let message = "the row has no Longitude and no Latitude (columns 4–5)".to_string();
            return Err((NO_LOCATION, message));
        }
        (true, false) | (false, true) => {
            let message = format!(
                "the row has Longitude '{lon_text}' and Latitude '{lat_text}' (columns 4–5): half a pair"
            );
            return Err((HALF_COORDINATE_PAIR, message));
        }
        (false, false) => {}
    }
    let number = |text: &str, column: usize| {
        parse_number(text).ok_or_else(|| {
            let name = PUBLIC_HEADER[column];
            let message = format!("{name} '{text}' (column {column}) is not a number");
            (FIELD_MUST_BE_NUMBER, message)
        })
    };
    let (lon, lat) = (
        number(lon_text, C_LONGITUDE)?,
        number(lat_text, C_LATITUDE)?,
    );
    let in_range = |v: f64, (lo, hi): (f64, f64)| (lo..=hi).contains(&v);
    if !in_range(lat, LATITUDE_RANGE_DEG) || !in_range(lon, LONGITUDE_RANGE_DEG) {
        let message = format!(
            "Latitude {lat}, Longitude {lon} (columns 5, 4) is outside latitude 49.5–61.5, longitude −8.5–2.6"
        );
        return Err((COORDINATES_OUT_OF_RANGE, message));
    }
    let text = |column: usize| f[column].to_string();
    Ok(PublicCrime {
        line,
        crime_id: Some(text(C_ID)).filter(|id| !id.is_empty()),
        month: text(C_MONTH),
        reported_by: text(C_REPORTED_BY),
        falls_within: text(C_FALLS_WITHIN),
        lat,
        lon,
        location: text(C_LOCATION),
        lsoa_code: text(C_LSOA_CODE),
        lsoa_name: text(C_LSOA_NAME),
        crime_type: text(C_TYPE),
        last_outcome: text(C_OUTCOME),
        context: text(C_CONTEXT),
        acquisitive: ACQUISITIVE_TYPES.contains(&f[C_TYPE]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,Last outcome category,Context\n";

    fn parse(rows: &str) -> PublicImport {
        parse_public_csv(format!("\u{feff}{HEADER}{rows}").as_bytes()).expect("imports")
    }

    #[test]
    fn keeps_rows_without_an_id_counts_repeats_and_skips_rows_without_a_place() {
        let import = parse(concat!(
            "a1,2018-01,City of London Police,City of London Police,-0.106453,51.518207,On or near Charterhouse Street,E01000916,Camden 027B,Other theft,Investigation complete; no suspect identified,\n",
            ",2018-01,City of London Police,City of London Police,-0.114954,51.518632,On or near Brownlow Street,E01000914,Camden 028B,Anti-social behaviour,,\n",
            "a1,2018-01,City of London Police,City of London Police,-0.106453,51.518207,On or near Charterhouse Street,E01000916,Camden 027B,Other theft,Investigation complete; no suspect identified,\n",
            "a2,2018-01,City of London Police,City of London Police,,,No location,,,Burglary,Under investigation,\n",
            "a3,2018-1,x,x,-0.1,51.5,x,x,x,Robbery,x,\n",
            "a4,2018-01,x,x,-0.1,,x,x,x,Robbery,x,\n",
            "a5,2018-01,x,x,west,51.5,x,x,x,Robbery,x,\n",
            "a6,2018-01,x,x,-0.1,48.0,x,x,x,Robbery,x,\n",
            "a7,2018-01,x,x\n",
        ));
        assert_eq!(import.rows, 9);
        assert_eq!(import.crimes.len(), 3);
        assert_eq!(import.duplicate_ids, 1);
        assert_eq!(import.crimes[0].crime_id.as_deref(), Some("a1"));
        assert!(import.crimes[0].acquisitive);
        assert_eq!(import.crimes[1].crime_id, None);
        assert!(!import.crimes[1].acquisitive);
        assert_eq!(import.crimes[1].last_outcome, "");
        assert_eq!(import.crimes[1].line, 3);
        let skipped: Vec<_> = import.skipped.iter().map(|s| (s.line, s.code)).collect();
        assert_eq!(
            skipped,
            [
                (5, NO_LOCATION),
                (6, BAD_DATE_FORMAT),
                (7, HALF_COORDINATE_PAIR),
                (8, FIELD_MUST_BE_NUMBER),
                (9, COORDINATES_OUT_OF_RANGE),
                (10, WRONG_COLUMN_COUNT),
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_street_level_is_refused() {
        assert_eq!(parse_public_csv(b""), Err(PublicCsvError::Empty));
        let err = parse_public_csv(b"Crime ID,Month\n1,2018-01\n").expect_err("bad header");
        assert!(matches!(err, PublicCsvError::BadHeader { line: 1, .. }));
        assert!(err.to_string().contains("`Crime ID,Month`"), "{err}");
        let police_batch = b"AvonSomerset,RB,Robbery,AVS20260303,AVS/26/1,20260302021525,20260302032825,359749,172766,,,OSGB36,\"x\"\n";
        assert!(parse_public_csv(police_batch).is_err());
    }

    #[test]
    fn months_are_year_dash_month() {
        assert!(is_month("2018-01") && is_month("2026-12"));
        for bad in [
            "2018-1",
            "2018-13",
            "2018-00",
            "201801",
            "2018/01",
            "2018-01-01",
        ] {
            assert!(!is_month(bad), "{bad}");
        }
    }
}
