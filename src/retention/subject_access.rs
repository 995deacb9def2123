//! Subject access export: one JSON document with everything tagstream holds about a person, for
//! a subject access request. Written as a stream (trail positions a week at a time, raw readings
//! as the log is read), so a person monitored for years does not have to fit in memory.
//!
//! Sections, in order: `export` (what this is, when made), `person`, `activations`, `orders`
//! (with conditions), `caseload_links` (users whose caseload holds the person), `alerts` (with
//! review and review history), `sober_days`, `audit` (every audit record about the person),
//! `trails` (every position of every activation, from the trail store) and `readings` (every
//! other reading of the person's activations in the durable log: TAC, RF presence, device
//! events). The caller audits the export before calling [`write_export`].

use crate::alerts::alert_store::{AlertStore, AlertStoreError};
use crate::log::LogError;
use crate::model::time::format_time;
use crate::model::{Activation, Batch, ReadingBody, SoberDay, TimeMs};
use crate::store::metadata::{AuditQuery, Metadata, MetadataError};
use crate::store::trails::{TrailError, TrailStore};
use serde::Serialize;
use std::io::Write;
use std::ops::ControlFlow;

/// A reading as the export writes it. A tag can send any 64-bit time; one outside what RFC 3339
/// can write is kept (the export holds everything) and written as `"t": null` with the value as
/// sent in `t_ms` (the reading serialiser does that) and a note saying so.
fn reading_value(r: &crate::model::Reading) -> serde_json::Value {
    let mut v = serde_json::json!(r);
    if !crate::model::time::RFC3339_WRITABLE_MS.contains(&r.t_ms) {
        v["t_note"] = "the tag sent a time outside what RFC 3339 can write (years 0000-9999); \
                       t_ms is that time as sent, in milliseconds since 1970-01-01T00:00:00Z"
            .into();
    }
    v
}

/// Positions are read from the trail store this much at a time.
const TRAIL_CHUNK_MS: i64 = 7 * 86_400_000;

/// Hands the function it is given every batch of the log, in log order, until it breaks.
pub type BatchSource<'a> =
    dyn Fn(&mut dyn FnMut(&Batch) -> ControlFlow<()>) -> Result<(), LogError> + 'a;

/// Where the export reads from.
pub struct Sources<'a> {
    pub metadata: &'a Metadata,
    pub alert_store: &'a AlertStore,
    pub trails: &'a TrailStore,
    /// Every batch the log holds, in log order (the embedded log's directory, or a stream).
    pub batches: &'a BatchSource<'a>,
    /// Sober days (derived: a running server's book, or a replay of the log offline); only the
    /// person's are written.
    pub sober_days: &'a [SoberDay],
    /// Crime hits on the person's activations, with their reviews (when a crime store exists).
    pub crimes: Option<&'a crate::store::crime_store::CrimeStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("person '{0}' not found")]
    NotFound(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Alerts(#[from] AlertStoreError),
    #[error("trail store: {0}")]
    Trails(#[from] TrailError),
    #[error("durable log: {0}")]
    Log(#[from] LogError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Crimes(#[from] crate::store::crime_store::CrimeStoreError),
}

/// How much each section held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub activations: usize,
    pub orders: usize,
    pub caseload_links: usize,
    pub alerts: usize,
    pub sober_days: usize,
    pub hits: usize,
    pub audit_entries: usize,
    pub positions: u64,
    pub readings: u64,
}

/// Writes `{"key": value, …}` a field at a time, arrays element by element.
struct ObjectWriter<W: Write> {
    out: W,
    fields: usize,
}

impl<W: Write> ObjectWriter<W> {
    fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(b"{")?;
        Ok(Self { out, fields: 0 })
    }

    fn key(&mut self, key: &str) -> std::io::Result<()> {
        if self.fields > 0 {
            self.out.write_all(b",\n")?;
        }
        self.fields += 1;
        serde_json::to_writer(&mut self.out, key)?;
        self.out.write_all(b":")
    }

    fn field(&mut self, key: &str, value: &impl Serialize) -> std::io::Result<()> {
        self.key(key)?;
        serde_json::to_writer(&mut self.out, value).map_err(std::io::Error::from)
    }

    fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(b"}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes `[a, b, …]` one element at a time.
struct ArrayWriter {
    items: u64,
}

impl ArrayWriter {
    fn open(out: &mut impl Write) -> std::io::Result<Self> {
        out.write_all(b"[")?;
        Ok(Self { items: 0 })
    }

    fn item(&mut self, out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
        if self.items > 0 {
            out.write_all(b",\n")?;
        }
        self.items += 1;
        serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)
    }

    fn close(self, out: &mut impl Write) -> std::io::Result<u64> {
        out.write_all(b"]")?;
        Ok(self.items)
    }
}

/// Writes the export of `person_id` to `out`; `generated_ms` is stamped on it.
pub fn write_export(
    src: &Sources<'_>,
    person_id: &str,
    generated_ms: TimeMs,
    out: impl Write,
) -> Result<ExportSummary, ExportError> {
    let person = src
        .metadata
        .person(person_id)?
        .ok_or_else(|| ExportError::NotFound(person_id.to_string()))?;
    let activations = src.metadata.activations_of(person_id)?;
    let orders = src.metadata.orders_of(person_id)?;
    let caseload_links = src.metadata.caseload_links(person_id)?;
    let alerts = src.alert_store.of_person(person_id)?;
    let sober_days: Vec<&SoberDay> = src
        .sober_days
        .iter()
        .filter(|d| activations.iter().any(|a| a.id == d.activation))
        .collect();
    let audit = src.metadata.audit_entries(&AuditQuery {
        person: Some(person_id.to_string()),
        limit: Some(u32::MAX),
        ..AuditQuery::default()
    })?;
    let hits = match src.crimes {
        Some(store) => store.hits(&crate::store::crime_store::HitFilter {
            person: Some(person_id.to_string()),
            ..Default::default()
        })?,
        None => Vec::new(),
    };
    let mut summary = ExportSummary {
        hits: hits.len(),
        activations: activations.len(),
        orders: orders.len(),
        caseload_links: caseload_links.len(),
        alerts: alerts.len(),
        sober_days: sober_days.len(),
        audit_entries: audit.len(),
        ..ExportSummary::default()
    };

    let mut doc = ObjectWriter::new(out)?;
    doc.field(
        "export",
        &serde_json::json!({
            "kind": "subject_access",
            "format": 1,
            "person": person_id,
            "generated": format_time(generated_ms),
            "sections": ["person", "activations", "orders", "caseload_links", "alerts",
                         "sober_days", "hits", "audit", "trails", "readings"],
        }),
    )?;
    doc.field("person", &person)?;
    doc.field("activations", &activations)?;
    doc.field("orders", &orders)?;
    doc.field("caseload_links", &caseload_links)?;
    doc.field("alerts", &alerts)?;
    doc.field("sober_days", &sober_days)?;
    doc.field("hits", &hits)?;
    doc.field("audit", &audit)?;
    doc.key("trails")?;
    summary.positions = write_trails(src.trails, &activations, generated_ms, &mut doc.out)?;
    doc.key("readings")?;
    summary.readings = write_readings(src.batches, &activations, &mut doc.out)?;
    doc.finish()?;
    Ok(summary)
}

/// `[{"activation": id, "positions": [...]}, …]`; returns the positions written.
fn write_trails(
    trails: &TrailStore,
    activations: &[Activation],
    generated_ms: TimeMs,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut total = 0;
    let mut list = ArrayWriter::open(out)?;
    for a in activations {
        if list.items > 0 {
            out.write_all(b",\n")?;
        }
        list.items += 1;
        out.write_all(b"{\"activation\":")?;
        serde_json::to_writer(&mut *out, &a.id).map_err(std::io::Error::from)?;
        out.write_all(b",\"positions\":")?;
        let mut positions = ArrayWriter::open(out)?;
        // An open activation may have positions up to now (and a little after, clock skew).
        let end = a.to.unwrap_or(generated_ms.saturating_add(86_400_000));
        let mut lo = a.from;
        while lo < end {
            let hi = if lo.saturating_add(TRAIL_CHUNK_MS) >= end {
                TimeMs::MAX
            } else {
                lo + TRAIL_CHUNK_MS - 1
            };
            for r in trails.positions(&a.id, lo, hi)? {
                positions.item(out, &reading_value(&r))?;
            }
            lo = hi.saturating_add(1);
        }
        total += positions.close(out)?;
        out.write_all(b"}")?;
    }
    list.close(out)?;
    Ok(total)
}

/// `[{"activation": id, "reading": {...}}, …]` in log order: every reading other than a position
/// whose tag and event time fall in one of the activations. Returns the readings written.
fn write_readings(
    batches: &BatchSource<'_>,
    activations: &[Activation],
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut list = ArrayWriter::open(out)?;
    if activations.is_empty() {
        return Ok(list.close(out)?);
    }
    // The first write that fails stops the read; its error is the export's.
    let mut failed: Option<std::io::Error> = None;
    batches(&mut |batch| {
        let mine: Vec<&Activation> = activations.iter().filter(|a| a.tag == batch.tag).collect();
        for r in &batch.readings {
            if matches!(r.body, ReadingBody::Position(_)) {
                continue;
            }
            if let Some(a) = mine.iter().find(|a| a.covers(r.t_ms)) {
                let item = serde_json::json!({"activation": a.id, "reading": reading_value(r)});
                if let Err(e) = list.item(out, &item) {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(list.close(out)?)
}
