//! Importing a police crime batch: parse and validate the file ([`super::police_csv`]), check the
//! uploader may send it, store the batch report and the good rows as crime versions, and hand the
//! new versions back for matching. The API, `tagstream crimes import` and `tagstream replay` all
//! import through here, so versions are numbered the same everywhere.

use super::forces::force_by_id;
use super::police_csv::{parse_police_batch, parse_police_batch_from, BatchReport, PoliceCsvRules};
use crate::model::{CrimeVersion, PoliceCrime, TimeMs};
use crate::store::crime_store::{CrimeStore, CrimeStoreError, ImportOutcome};
use serde_json::{json, Value};

/// Why a parsed batch could not be stored (a bad row is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Store(#[from] CrimeStoreError),
}

/// The report of an import, as the API answers and the CLI prints it.
pub fn report_json(source: &str, report: &BatchReport) -> Value {
    json!({
        "source": source,
        "batch_id": report.batch_id,
        "force": report.force.map(|f| f.id),
        "status": report.status,
        "rows": report.rows,
        "imported": report.crimes.len(),
        "errors": report.errors,
    })
}

/// Parses a batch file (pure). With the sending force known (a police upload), that force is
/// the batch's; otherwise (the hub filing a batch) the force most rows name is.
pub fn parse(bytes: &[u8], sender: Option<&str>, rules: &PoliceCsvRules) -> BatchReport {
    match sender.and_then(force_by_id) {
        Some(force) => parse_police_batch_from(force, bytes, rules),
        None => parse_police_batch(bytes, rules),
    }
}

/// Stores a parsed batch (report and good rows). A report without a batch id (no row had a
/// valid one) is not stored: there is nothing to file it under; the caller still returns it.
pub fn store(
    store: &CrimeStore,
    source: &str,
    report: &BatchReport,
    radius_m: f64,
    uploaded_by: &str,
    uploaded_ms: TimeMs,
) -> Result<(Value, Vec<CrimeVersion>), ImportError> {
    let doc = report_json(source, report);
    if report.batch_id.is_none() {
        let mut doc = doc;
        doc["stored"] = json!(false);
        return Ok((doc, Vec::new()));
    }
    let stored = StoredBatch {
        report: doc,
        crimes: &report.crimes,
        radius_m,
        uploaded_by,
        uploaded_ms,
    };
    store_batch(store, stored, None)
}

/// A validated batch on its way into the crime store: the report (as [`report_json`] makes
/// it) and the good rows, as a `crime_batch` control record carries them.
pub struct StoredBatch<'a> {
    pub report: Value,
    pub crimes: &'a [PoliceCrime],
    pub radius_m: f64,
    pub uploaded_by: &'a str,
    pub uploaded_ms: TimeMs,
}

/// Stores a validated batch (log record `record`, if it is one) and returns the report with
/// what was stored (`stored`, `versions`, `unchanged`) and the new versions to match.
pub fn store_batch(
    store: &CrimeStore,
    batch: StoredBatch<'_>,
    record: Option<u64>,
) -> Result<(Value, Vec<CrimeVersion>), ImportError> {
    let mut doc = batch.report;
    let ImportOutcome {
        new_versions,
        changes,
        unchanged,
    } = store.import_batch(
        &doc,
        batch.crimes,
        batch.radius_m,
        batch.uploaded_by,
        batch.uploaded_ms,
        record,
    )?;
    doc["stored"] = json!(true);
    doc["versions"] = json!(changes);
    doc["unchanged"] = json!(unchanged);
    Ok((doc, new_versions))
}
