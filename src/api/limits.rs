//! One place for the length limits of every text a request carries (purposes, reasons, notes,
//! names, ids, file names, the strings of person/activation/order records; a crime batch's field
//! limits belong to its format, `crate::crime::police_csv`):
//! a longer text is refused with a 400 that names the field and its limit, never truncated or
//! stored. Limits count characters (Unicode scalar values).

use super::error::ApiError;

/// The stated purpose of a person-data read (`X-Purpose` or `purpose`).
pub const PURPOSE_MAX_CHARS: usize = 500;
/// A hub's reason for confirming or rejecting a hit.
pub const REASON_MAX_CHARS: usize = 2_000;
/// Notes on an alert action.
pub const NOTES_MAX_CHARS: usize = 4_000;
/// User names, assignees, people's names.
pub const NAME_MAX_CHARS: usize = 200;
/// Identifiers: person, activation, order, alert, hit, batch, force, caseload entries, states.
pub const ID_MAX_CHARS: usize = 128;
/// An uploaded file's name.
pub const FILENAME_MAX_CHARS: usize = 255;
/// Any other string inside a person, activation or order record (addresses, notes, …).
pub const RECORD_TEXT_MAX_CHARS: usize = 2_000;

/// Any query parameter not named below (times, states, types, formats, ids, bounding boxes).
pub const QUERY_TEXT_MAX_CHARS: usize = 256;
/// A comma-separated list of ids in a query (`orders=O1,O2,…`).
pub const QUERY_LIST_MAX_CHARS: usize = 10_000;

/// The limit of a query parameter, by name.
pub fn query_limit(name: &str) -> usize {
    match name {
        "purpose" => PURPOSE_MAX_CHARS,
        "filename" => FILENAME_MAX_CHARS,
        "orders" => QUERY_LIST_MAX_CHARS,
        _ => QUERY_TEXT_MAX_CHARS,
    }
}

/// Every parameter of a request's query string, each by [`query_limit`] (checked for every
/// `/v1` route when the caller is authenticated, so no handler can forget one). A query that
/// does not decode is left to the handler's own parsing.
pub fn check_query(uri: &axum::http::Uri) -> Result<(), ApiError> {
    if uri.query().is_none_or(|q| q.len() <= QUERY_TEXT_MAX_CHARS) {
        return Ok(());
    }
    let Ok(axum::extract::Query(pairs)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
    else {
        return Ok(());
    };
    for (name, value) in &pairs {
        check(&name.chars().take(64).collect::<String>(), name, 64)?;
        check(name, value, query_limit(name))?;
    }
    Ok(())
}

/// `value` if it is at most `max` characters, else a 400 naming `field` and the limit.
pub fn check(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    // Cheap first: a text of at most `max` bytes has at most `max` characters.
    if value.len() <= max || value.chars().count() <= max {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "too_long",
        format!("'{field}' may be at most {max} characters"),
    ))
}

/// [`check`] for an optional text.
pub fn check_opt(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| check(field, v, max))
}

/// Every string inside a record (a person, activation or order as JSON), named by its path
/// (`addresses[0].line1`): ids and names by their own limits, anything else by
/// [`RECORD_TEXT_MAX_CHARS`].
pub fn check_record(record: &serde_json::Value) -> Result<(), ApiError> {
    fn walk(path: &str, key: &str, v: &serde_json::Value) -> Result<(), ApiError> {
        match v {
            serde_json::Value::String(s) => {
                let max = match key {
                    "id" | "person" | "tag" | "activation" | "order" => ID_MAX_CHARS,
                    "name" | "offender_manager" => NAME_MAX_CHARS,
                    _ => RECORD_TEXT_MAX_CHARS,
                };
                check(path, s, max)
            }
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| walk(&format!("{path}[{i}]"), key, item)),
            serde_json::Value::Object(map) => map.iter().try_for_each(|(k, item)| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, k, item)
            }),
            _ => Ok(()),
        }
    }
    walk("", "", record)
}

/// [`check_record`] for anything serializable.
pub fn check_serialized(record: &impl serde::Serialize) -> Result<(), ApiError> {
    let value = serde_json::to_value(record).map_err(|e| ApiError::internal(e.to_string()))?;
    check_record(&value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field() {
        assert!(check("reason", "ok", 5).is_ok());
        assert!(check("reason", "ééééé", 5).is_ok());
        let e = check("reason", "toolong", 5).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("'reason'") && e.message.contains('5'));
        let long = "x".repeat(RECORD_TEXT_MAX_CHARS + 1);
        let e = check_record(&serde_json::json!({"id": "P1", "addresses": [{"line1": long}]}))
            .unwrap_err();
        assert!(e.message.contains("addresses[0].line1"), "{}", e.message);
        let e = check_record(&serde_json::json!({"id": "x".repeat(ID_MAX_CHARS + 1)})).unwrap_err();
        assert!(e.message.contains("'id'"), "{}", e.message);
    }

    #[test]
    fn every_query_parameter_is_limited_by_name() {
        let uri = |q: &str| format!("/v1/x?{q}").parse::<axum::http::Uri>().unwrap();
        assert!(check_query(&uri("state=new&person=P1")).is_ok());
        let long = "x".repeat(QUERY_TEXT_MAX_CHARS + 1);
        let e = check_query(&uri(&format!("state={long}"))).unwrap_err();
        assert!(e.message.contains("'state'"), "{}", e.message);
        assert!(check_query(&uri(&format!("orders={long}"))).is_ok());
        let e = check_query(&uri(&format!("purpose={}", "p".repeat(501)))).unwrap_err();
        assert!(e.message.contains("'purpose'") && e.message.contains("500"));
    }
}
