//! The query form: parameters from the query string and/or an
//! `application/x-www-form-urlencoded` body → the device id, one [`Report`], and the
//! parameters kept but not mapped.
//!
//! Mapped parameters (Traccar's names; units as the OsmAnd protocol has them):
//! `id`/`deviceid`, `timestamp`, `lat` + `lon` or `location=lat,lon` (degrees), `speed`
//! (knots), `bearing`/`heading` (degrees), `accuracy` (metres, 68%), `hdop`, `batt`/`battery`
//! (%), `charge`, `valid`, `mock` (true/false/1/0). Every other parameter (`altitude`, `cell`,
//! `wifi`, `driverUniqueId`, …) is kept, in order, in the unmapped list; so are `valid` and
//! `mock`, which can make the position be left out, so that what the app said stays visible.
//!
//! A mapped parameter sent twice, or with its alias (`id` and `deviceid`, `lat` and
//! `location`), is refused: two values for one field make the report ambiguous, and tagstream
//! does not guess which one the device meant. Unmapped parameters may repeat (Traccar's `cell`
//! and `wifi` do). A mapped parameter with an empty value counts as not sent, as in Traccar.

use super::device_id::check_device_id;
use super::error::{quoted, OsmandError};
use super::fields::{self, CKMH_PER_KNOT};
use super::limits::Limits;
use super::report::Report;
use super::time::parse_timestamp;
use super::urlencoded::Param;

/// The fields a mapped parameter sets; aliases share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    DeviceId,
    Time,
    Lat,
    Lon,
    Location,
    Speed,
    Heading,
    Accuracy,
    Hdop,
    Battery,
    Charge,
    Valid,
    Mock,
}

const FIELD_COUNT: usize = 13;

fn field_of(name: &str) -> Option<Field> {
    Some(match name {
        "id" | "deviceid" => Field::DeviceId,
        "timestamp" => Field::Time,
        "lat" => Field::Lat,
        "lon" => Field::Lon,
        "location" => Field::Location,
        "speed" => Field::Speed,
        "bearing" | "heading" => Field::Heading,
        "accuracy" => Field::Accuracy,
        "hdop" => Field::Hdop,
        "batt" | "battery" => Field::Battery,
        "charge" => Field::Charge,
        "valid" => Field::Valid,
        "mock" => Field::Mock,
        _ => return None,
    })
}

/// What a query-form request decodes to.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryReport {
    pub device_id: String,
    pub report: Report,
    pub unmapped: Vec<(String, String)>,
}

/// Decodes the parameters of one request.
pub fn decode_query(params: &[Param<'_>], limits: &Limits) -> Result<QueryReport, OsmandError> {
    let mut first_name: [Option<&str>; FIELD_COUNT] = [None; FIELD_COUNT];
    let mut value_of: [&str; FIELD_COUNT] = [""; FIELD_COUNT];
    let mut unmapped = Vec::new();
    for (name, value) in params {
        let Some(field) = field_of(name) else {
            unmapped.push((name.to_string(), value.to_string()));
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let slot = field as usize;
        if let Some(first) = first_name[slot] {
            return Err(duplicate(name, first));
        }
        first_name[slot] = Some(name);
        value_of[slot] = value;
        // What made a position be left out stays visible.
        if matches!(field, Field::Valid | Field::Mock) {
            unmapped.push((name.to_string(), value.to_string()));
        }
    }
    let sent =
        |field: Field| first_name[field as usize].map(|name| (name, value_of[field as usize]));

    let device_id = sent(Field::DeviceId).ok_or(OsmandError::MissingDeviceId)?.1;
    check_device_id(device_id, limits.max_device_id_chars)?;
    let (time_param, time_text) = sent(Field::Time).ok_or(OsmandError::MissingTime)?;
    let mut report = Report::at(parse_timestamp(time_param, time_text, limits)?);

    report.lat_lon_e7 = lat_lon_e7(sent(Field::Lat), sent(Field::Lon), sent(Field::Location))?;
    if let Some((param, text)) = sent(Field::Speed) {
        report.speed_ckmh = fields::speed_ckmh(fields::parse_number(param, text)?, CKMH_PER_KNOT);
    }
    if let Some((param, text)) = sent(Field::Heading) {
        report.heading_cdeg = fields::heading_cdeg(param, fields::parse_number(param, text)?)?;
    }
    if let Some((param, text)) = sent(Field::Accuracy) {
        report.accuracy_m = Some(fields::parse_number(param, text)?);
    }
    if let Some((param, text)) = sent(Field::Hdop) {
        report.hdop = Some(fields::parse_number(param, text)?);
    }
    if let Some((param, text)) = sent(Field::Battery) {
        report.battery_pct = fields::battery_pct(param, fields::parse_number(param, text)?)?;
    }
    let flag = |field: Field| sent(field).map(|(p, t)| parse_bool(p, t)).transpose();
    report.charging = flag(Field::Charge)?.unwrap_or(false);
    report.marked_invalid = !flag(Field::Valid)?.unwrap_or(true);
    report.mock = flag(Field::Mock)?.unwrap_or(false);
    Ok(QueryReport {
        device_id: device_id.to_string(),
        report,
        unmapped,
    })
}

type Sent<'a> = Option<(&'a str, &'a str)>;

/// `lat` and `lon` together, or `location=lat,lon`, never both.
fn lat_lon_e7(lat: Sent, lon: Sent, location: Sent) -> Result<Option<(i32, i32)>, OsmandError> {
    let pair = match (lat, lon, location) {
        (None, None, None) => return Ok(None),
        (Some((lat_param, _)), _, Some(_)) | (_, Some((lat_param, _)), Some(_)) => {
            return Err(duplicate(lat_param, "location"))
        }
        (Some((param, _)), None, None) => return Err(incomplete(param, "lon")),
        (None, Some((param, _)), None) => return Err(incomplete(param, "lat")),
        (Some((lat_param, lat)), Some((lon_param, lon)), None) => {
            ((lat_param, lat), (lon_param, lon))
        }
        (None, None, Some((_, text))) => {
            let (lat, lon) = text
                .split_once(',')
                .ok_or_else(|| OsmandError::BadLocationPair {
                    value: quoted(text),
                })?;
            (("location", lat), ("location", lon))
        }
    };
    let ((lat_param, lat), (lon_param, lon)) = pair;
    Ok(Some((
        fields::latitude_e7(lat_param, fields::parse_number(lat_param, lat)?)?,
        fields::longitude_e7(lon_param, fields::parse_number(lon_param, lon)?)?,
    )))
}

fn parse_bool(param: &str, text: &str) -> Result<bool, OsmandError> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(OsmandError::BadBool {
            param: param.to_string(),
            value: quoted(text),
        }),
    }
}

fn duplicate(param: &str, alias: &str) -> OsmandError {
    OsmandError::DuplicateParameter {
        param: param.to_string(),
        alias: alias.to_string(),
    }
}

fn incomplete(present: &str, missing: &'static str) -> OsmandError {
    OsmandError::IncompleteLocation {
        present: present.to_string(),
        missing,
    }
}
