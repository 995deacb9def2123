//! `tagstream replay`: runs the live pipeline's code over recorded inputs and writes the outputs
//! (`alerts.jsonl`, `sober_days.jsonl`, and `hits.jsonl` when crime batches are given) to a directory. Same inputs, same bytes.

use crate::alerts::{AlertBook, SoberDayBook};
use crate::cluster::jetstream::{JetStreamConfig, JetStreamLog};
use crate::crime::matcher::{HitMatcher, MemoryTrails};
use crate::crime::service::match_into;
use crate::formats::orders_file::{parse_orders, OrdersFile};
use crate::formats::readings_jsonl::read_entries;
use crate::formats::LineError;
use crate::log::LogReader;
use crate::model::tag_partition::PartitionSet;
use crate::model::TimeMs;
use crate::model::{Batch, LogEntry};
use crate::pipeline::driver::ClockBehind;
use crate::pipeline::{ActivationDirectory, Fanout, Output, PipelineConfig, Sink};
use crate::rules::RulesConfig;
use crate::store::crime_store::CrimeStore;
use crate::store::tac_book::TacBook;
use crate::store::trails::{TrailFeed, TrailStore};
use crate::topology::inline::PipelineDesc;
use crate::wire::ReadingsFileReader;
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a replay could not run (bad records inside a file are not errors: they are reported).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error(transparent)]
    Until(#[from] ClockBehind),
    #[error("--own-partitions names partitions of {named}, but [pipeline] clock_partitions is {configured}: a subset's outputs equal a full replay's only when each partition has its own clock")]
    PartitionsWithoutClocks { named: u32, configured: u32 },
}

/// What replay does with the event-time clock once the recorded input ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InputEnd {
    /// Nothing: the outputs are what a live server had decided when the input ended (windows
    /// and days still waiting for the clock stay open or undecided).
    #[default]
    AsRecorded,
    /// `--until T`: the clock advances to T as if time had passed with no further input, so
    /// everything due by T is decided — literally, `no_contact` included.
    Until(TimeMs),
    /// `--final`: the input is complete through the clock it reached; every window and day that
    /// ended within it is decided without waiting for late data, nothing beyond it is (no
    /// `no_contact` because the input ended). `docs/rules.md`, "Replay: the end of the input".
    Final,
}

/// What a replay read and wrote.
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub batches: u64,
    pub readings: u64,
    pub unassigned_readings: u64,
    pub late_readings: u64,
    /// Readings flagged `clock_ahead` (held out of the rules until the clock caught up).
    pub clock_ahead_readings: u64,
    /// Of those, held readings the clock caught up with (then processed normally).
    pub released_readings: u64,
    /// Readings older than the clock's horizon, or before their tag's first activation: stored,
    /// not fed to the rules.
    pub too_old_readings: u64,
    pub before_activation_readings: u64,
    pub alerts: usize,
    pub sober_days: usize,
    /// Crime batches imported and the hits they produced (with `--crimes`).
    pub crime_batches: Vec<serde_json::Value>,
    pub hits: u64,
    pub orders_errors: Vec<LineError>,
    pub readings_errors: Vec<LineError>,
    /// With `--until` or `--final`: the event time the outputs are settled through (`--until`'s
    /// T, or the clock the input reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_through: Option<String>,
    /// Order conditions that could not be compiled into a rule, so were not monitored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmonitored_conditions: Vec<String>,
}

/// Reads an orders document, failing only if it is not a document at all.
pub fn load_orders(path: &Path) -> Result<(OrdersFile, Vec<LineError>), ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let load = parse_orders(&text).map_err(|e| ReplayError::Input {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((load.accepted, load.errors))
}

/// Calls `on_entry` for every record of a recorded readings input, in recorded order:
/// - a directory: a tagstream data directory (or its `log/`), read in log order — exactly what
///   the live server processed, its control records (people, activations, orders) included;
/// - a `.bin` file: the native readings file (`docs/formats.md`);
/// - anything else: contract JSON Lines, bad lines reported and skipped.
pub fn read_recorded(
    path: &Path,
    on_entry: &mut dyn FnMut(LogEntry),
) -> Result<Vec<LineError>, ReplayError> {
    let mut on_batch = |batch: Batch| on_entry(LogEntry::Batch(Arc::new(batch)));
    let read_err = |source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    };
    let input_err = |message: String| ReplayError::Input {
        path: path.to_path_buf(),
        message,
    };
    if path.is_dir() {
        let log_dir = if path.join("log").is_dir() {
            path.join("log")
        } else {
            path.to_path_buf()
        };
        let mut reader = LogReader::open(&log_dir).map_err(|e| input_err(e.to_string()))?;
        for item in reader.by_ref() {
            let (_, entry) = item.map_err(|e| input_err(e.to_string()))?;
            on_entry(entry);
        }
        // Damaged records are skipped exactly as the server's start-up replay skips them (the
        // same reader), so the outputs still match the live server's; say what was skipped.
        let mut errors: Vec<LineError> = reader
            .damage()
            .iter()
            .map(|d| LineError {
                line: 0,
                record: None,
                message: format!(
                    "log damage in {} bytes {}..{}: {} record(s) lost (records {}..{}): {}; \
                     the records after it were read",
                    d.segment.name(),
                    d.start,
                    d.end,
                    d.records_lost,
                    d.first_record,
                    d.first_record + d.records_lost,
                    d.kind
                ),
            })
            .collect();
        if let Some(tail) = reader.torn_tail() {
            errors.push(LineError {
                line: 0,
                record: None,
                message: format!(
                    "torn tail in {} from byte {} ({} bytes, an incomplete final write): {}",
                    tail.segment.name(),
                    tail.offset,
                    tail.bytes(),
                    tail.kind
                ),
            });
        }
        return Ok(errors);
    }
    if is_native_readings_file(path) {
        let reader = ReadingsFileReader::open(path).map_err(|e| input_err(e.to_string()))?;
        for item in reader {
            match item {
                Ok((tag, seq, readings)) => on_batch(Batch {
                    tag,
                    epoch: 0,
                    seq,
                    arrival_ms: 0,
                    readings,
                }),
                // A binary file cannot be resynchronised after damage: report and stop.
                Err(e) => {
                    return Ok(vec![LineError {
                        line: 0,
                        record: None,
                        message: format!("{e}; the rest of the file was not read"),
                    }])
                }
            }
        }
        return Ok(Vec::new());
    }
    let file = File::open(path).map_err(read_err)?;
    read_entries(BufReader::with_capacity(1 << 20, file), on_entry).map_err(read_err)
}

/// Collects pipeline outputs into the output stores.
#[derive(Default)]
pub struct OutputCollector {
    pub alerts: AlertBook,
    pub sober_days: SoberDayBook,
    /// Crimes and hits, when crime batches were given.
    pub crimes: Option<CrimeStore>,
    /// The trails, while the input is read, when there are crimes to match them against.
    trails: Option<MemoryTrails>,
}

impl Sink for OutputCollector {
    fn emit(&mut self, output: Output, _cause_arrival_ms: Option<i64>) {
        match output {
            Output::Alert(alert) => {
                self.alerts.upsert(alert);
            }
            Output::SoberDay(day) => {
                self.sober_days.upsert(day);
            }
            Output::Purged { activation } => {
                self.alerts.remove_activation(&activation);
                self.sober_days.remove_activation(&activation);
            }
            readings @ Output::Readings { .. } => {
                if let Some(trails) = &mut self.trails {
                    trails.emit(readings, None);
                }
            }
            Output::Activations { .. } => {}
        }
    }
}

/// Runs the pipeline over `readings` with the people, activations and orders of `orders`; with
/// police crime batches in `crimes`, imports them in the order given (so versions are numbered
/// as a server that received them in that order numbers them) and matches them against the
/// trails, as the live server does.
pub fn replay(
    orders: &OrdersFile,
    readings: &Path,
    crimes: &[PathBuf],
    config: PipelineConfig,
    rules: &RulesConfig,
) -> Result<(OutputCollector, ReplaySummary), ReplayError> {
    replay_to(
        orders,
        readings,
        crimes,
        config,
        rules,
        InputEnd::AsRecorded,
    )
}

/// [`replay`], then `end` applied to the clock once the input is read.
pub fn replay_to(
    orders: &OrdersFile,
    readings: &Path,
    crimes: &[PathBuf],
    config: PipelineConfig,
    rules: &RulesConfig,
    end: InputEnd,
) -> Result<(OutputCollector, ReplaySummary), ReplayError> {
    replay_input(
        orders,
        &Recorded::Path(readings),
        crimes,
        config,
        rules,
        end,
        None,
    )
}

/// What replay reads: a recording on disk, or a cluster's JetStream stream.
pub enum Recorded<'a> {
    /// See [`read_recorded`].
    Path(&'a Path),
    /// Every record of the stream, from the first to the last stored when replay starts.
    Stream(&'a JetStreamConfig),
}

impl Recorded<'_> {
    /// How errors name the input.
    fn path(&self) -> PathBuf {
        match self {
            Recorded::Path(path) => path.to_path_buf(),
            Recorded::Stream(config) => PathBuf::from(format!(
                "jetstream stream {} at {}",
                config.stream,
                config.urls.join(",")
            )),
        }
    }
}

/// [`replay_to`] over any [`Recorded`] input; with `owned`, only the readings of tags in those
/// partitions (every control record still applies), which gives exactly the outputs a full
/// replay gives for those tags' activations when every partition has its own clock
/// (`[pipeline] clock_partitions`, `docs/rules.md`, "Clock partitions").
#[allow(clippy::too_many_arguments)]
pub fn replay_input(
    orders: &OrdersFile,
    input: &Recorded<'_>,
    crimes: &[PathBuf],
    config: PipelineConfig,
    rules: &RulesConfig,
    end: InputEnd,
    owned: Option<&PartitionSet>,
) -> Result<(OutputCollector, ReplaySummary), ReplayError> {
    if let Some(owned) = owned {
        if owned.count() != config.clock_partitions {
            return Err(ReplayError::PartitionsWithoutClocks {
                named: owned.count(),
                configured: config.clock_partitions,
            });
        }
    }
    let input_path = input.path();
    let readings = input_path.as_path();
    // An orders document (for a recording without control records) is where the book starts;
    // a data directory's control records change it as they come.
    // Crime batches in the input (control records) are matched like the files: the trails are
    // kept when there is anything to match them against.
    let keep_trails = !crimes.is_empty()
        || match input {
            Recorded::Path(path) => holds_crime_batches(path)?,
            // Scanning the stream twice would cost more than keeping the trails.
            Recorded::Stream(_) => true,
        };
    let mut outputs = OutputCollector {
        trails: keep_trails.then(|| MemoryTrails::new(rules.hits.max_gap_s * 1000)),
        ..OutputCollector::default()
    };
    let mut driver = PipelineDesc {
        start: orders,
        pipeline: config,
        rules: rules.clone(),
        partitions: 1,
    }
    .build(&mut outputs);
    let mut logged_batches = Vec::new();
    let mut on_entry = |entry: LogEntry| {
        if let (Some(owned), LogEntry::Batch(batch)) = (owned, &entry) {
            if !owned.holds_tag(&batch.tag) {
                // Not this replay's, but it keeps its record number (provenance names it).
                driver.skip_record();
                return;
            }
        }
        if let LogEntry::Control { control, .. } = &entry {
            if matches!(control.change, crate::model::Change::CrimeBatch { .. }) {
                logged_batches.push(control.clone());
            }
        }
        driver.feed_entry(&entry, &mut outputs);
    };
    let readings_errors = match input {
        Recorded::Path(path) => read_recorded(path, &mut on_entry)?,
        Recorded::Stream(stream) => {
            read_stream(stream, &mut on_entry)?;
            Vec::new()
        }
    };
    let settled_through = match end {
        InputEnd::AsRecorded => None,
        InputEnd::Until(t_ms) => {
            driver.advance_clock_to(t_ms, &mut outputs)?;
            Some(t_ms)
        }
        InputEnd::Final => driver.finish(&mut outputs),
    };
    let directory = driver.directory().clone();
    let (crime_batches, hits) = if let Some(mut trails) = outputs.trails.take() {
        trails.seal();
        let sources: Vec<CrimeSource> = logged_batches
            .into_iter()
            .map(CrimeSource::Logged)
            .chain(crimes.iter().cloned().map(CrimeSource::File))
            .collect();
        let (store, batches, hits) = replay_crimes(&directory, &trails, readings, &sources, rules)?;
        outputs.crimes = Some(store);
        (batches, hits)
    } else {
        (Vec::new(), 0)
    };
    let stats = driver.dispatch_stats();
    let summary = ReplaySummary {
        batches: stats.batches,
        readings: stats.readings,
        unassigned_readings: stats.unassigned,
        late_readings: driver
            .partition_stats()
            .iter()
            .map(|p| p.late_readings)
            .sum(),
        clock_ahead_readings: stats.clock_ahead,
        released_readings: driver
            .partition_stats()
            .iter()
            .map(|p| p.released_readings)
            .sum(),
        too_old_readings: stats.too_old,
        before_activation_readings: stats.before_activation,
        alerts: outputs.alerts.len(),
        sober_days: outputs.sober_days.len(),
        orders_errors: Vec::new(),
        readings_errors,
        crime_batches,
        hits,
        settled_through: settled_through.map(crate::model::time::format_time),
        unmonitored_conditions: driver.unmonitored_conditions(),
    };
    Ok((outputs, summary))
}

/// Calls `on_entry` for every record of a cluster's stream, in order, from the first to the
/// last stored when this starts (each frame's checksum verified; a damaged one stops the read).
pub fn read_stream(
    config: &JetStreamConfig,
    on_entry: &mut dyn FnMut(LogEntry),
) -> Result<u64, ReplayError> {
    use futures::StreamExt;
    let input_err = |message: String| ReplayError::Input {
        path: Recorded::Stream(config).path(),
        message,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| input_err(e.to_string()))?;
    runtime.block_on(async {
        let log = JetStreamLog::open(config.clone())
            .await
            .map_err(|e| input_err(e.to_string()))?;
        let end = log
            .next_record()
            .await
            .map_err(|e| input_err(e.to_string()))?;
        if end == 0 {
            return Ok(0);
        }
        let mut records = Box::pin(
            log.read_until(0, end)
                .await
                .map_err(|e| input_err(e.to_string()))?,
        );
        while let Some(item) = records.next().await {
            let (_, entry) = item.map_err(|e| input_err(e.to_string()))?;
            on_entry(entry);
        }
        Ok(end)
    })
}

/// Brings a stopped server's trail store up to its log (the offline commands, as the server's
/// start-up does): every record through the pipeline, the positions the dispatcher files under
/// each activation appended (those already stored are skipped), then a checkpoint at the log's
/// end. Returns the log's next record.
pub fn catch_up_trails(
    log_dir: &Path,
    trails: &TrailStore,
    config: PipelineConfig,
    rules: &RulesConfig,
) -> Result<u64, ReplayError> {
    let input_err = |message: String| ReplayError::Input {
        path: log_dir.to_path_buf(),
        message,
    };
    let mut feed = TrailFeed::new(trails.clone(), 0, None);
    let mut driver = PipelineDesc {
        start: &OrdersFile::default(),
        pipeline: config,
        rules: rules.clone(),
        partitions: 1,
    }
    .build(&mut feed);
    let reader = LogReader::open(log_dir).map_err(|e| input_err(e.to_string()))?;
    let mut next_record = reader.next_record();
    for item in reader {
        let (record, entry) = item.map_err(|e| input_err(e.to_string()))?;
        driver.feed_record(record, &entry, &mut feed);
        next_record = record + 1;
    }
    feed.checkpoint_through(next_record)
        .map_err(|e| input_err(format!("trail store: {e}")))?;
    Ok(next_record)
}

/// The alerts, sober days and TAC readings a stopped server's log leads to, rebuilt as the
/// server's start-up rebuilds them (every record through the pipeline in log order, under its
/// own record number), so the offline documents quote exactly what the server served.
pub fn stored_outputs_with_tac(
    log_dir: &Path,
    config: PipelineConfig,
    rules: &RulesConfig,
) -> Result<(OutputCollector, Arc<TacBook>), ReplayError> {
    let input_err = |message: String| ReplayError::Input {
        path: log_dir.to_path_buf(),
        message,
    };
    let mut outputs = OutputCollector::default();
    let tac = Arc::new(TacBook::default());
    {
        let mut sink = Fanout::new().with(&mut outputs).with(tac.clone());
        let mut driver = PipelineDesc {
            start: &OrdersFile::default(),
            pipeline: config,
            rules: rules.clone(),
            partitions: 1,
        }
        .build(&mut sink);
        let reader = LogReader::open(log_dir).map_err(|e| input_err(e.to_string()))?;
        for item in reader {
            let (record, entry) = item.map_err(|e| input_err(e.to_string()))?;
            driver.feed_record(record, &entry, &mut sink);
        }
    }
    Ok((outputs, tac))
}

/// Whether a recorded input holds crime batches (control records): a data directory's log
/// scanned for control records only, a JSON Lines file's lines looked at for one.
fn holds_crime_batches(input: &Path) -> Result<bool, ReplayError> {
    let input_err = |message: String| ReplayError::Input {
        path: input.to_path_buf(),
        message,
    };
    if input.is_dir() {
        let log_dir = match input.join("log").is_dir() {
            true => input.join("log"),
            false => input.to_path_buf(),
        };
        let reader = LogReader::open(&log_dir).map_err(|e| input_err(e.to_string()))?;
        for item in reader.controls_only() {
            if let Ok((_, LogEntry::Control { control, .. })) = item {
                if matches!(control.change, crate::model::Change::CrimeBatch { .. }) {
                    return Ok(true);
                }
            }
        }
        return Ok(false);
    }
    // The native readings file holds tags' batches only.
    if is_native_readings_file(input) {
        return Ok(false);
    }
    let file = File::open(input).map_err(|source| ReplayError::Read {
        path: input.to_path_buf(),
        source,
    })?;
    for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
        let line = line.map_err(|source| ReplayError::Read {
            path: input.to_path_buf(),
            source,
        })?;
        if line.contains("\"control\"") && line.contains("\"crime_batch\"") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `path` names a native readings file (`docs/formats.md`), by its extension.
fn is_native_readings_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "bin")
}

/// Where a replayed crime batch comes from: a control record of the input, or a file.
enum CrimeSource {
    Logged(Arc<crate::model::ControlRecord>),
    File(PathBuf),
}

/// Imports each crime batch in turn (the input's records in log order, then the files) into
/// an in-memory crime store and matches its new versions against the trails.
fn replay_crimes(
    directory: &ActivationDirectory,
    trails: &MemoryTrails,
    input: &Path,
    sources: &[CrimeSource],
    rules: &RulesConfig,
) -> Result<(CrimeStore, Vec<serde_json::Value>, u64), ReplayError> {
    let store_err = |path: &Path, e: String| ReplayError::Input {
        path: path.to_path_buf(),
        message: e,
    };
    let store = CrimeStore::in_memory().map_err(|e| store_err(input, e.to_string()))?;
    let mut matcher = HitMatcher::new(rules.hits);
    for a in directory.all() {
        let period = crate::crime::matcher::Period {
            from_ms: a.from_ms,
            to_ms: a.to_ms,
        };
        matcher.set_activation(&a.id, &a.person, period);
    }
    let csv_rules = crate::crime::PoliceCsvRules::default();
    let mut reports = Vec::new();
    for source in sources {
        let (path, imported) = match source {
            CrimeSource::Logged(control) => {
                let crate::model::Change::CrimeBatch {
                    radius_m,
                    report,
                    crimes,
                    ..
                } = &control.change
                else {
                    continue;
                };
                let batch = crate::crime::import::StoredBatch {
                    report: report.clone(),
                    crimes,
                    radius_m: *radius_m,
                    uploaded_by: &control.actor,
                    uploaded_ms: control.recorded,
                };
                (
                    input,
                    crate::crime::import::store_batch(&store, batch, None),
                )
            }
            CrimeSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| ReplayError::Read {
                    path: path.clone(),
                    source,
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let report = crate::crime::import::parse(&bytes, None, &csv_rules);
                let radius_m = rules.hits.radius_m;
                let imported =
                    crate::crime::import::store(&store, &name, &report, radius_m, "replay", 0);
                (path.as_path(), imported)
            }
        };
        let (mut doc, versions) = imported.map_err(|e| store_err(path, e.to_string()))?;
        let summary = match_into(&mut matcher, &store, trails, versions)
            .map_err(|e| store_err(path, e.to_string()))?;
        doc["matching"] = serde_json::json!(summary);
        reports.push(doc);
    }
    let hits = store
        .hits(&Default::default())
        .map_err(|e| store_err(input, e.to_string()))?
        .len() as u64;
    Ok((store, reports, hits))
}

/// Writes replay outputs into `out_dir` (created if needed).
pub fn write_outputs(outputs: &OutputCollector, out_dir: &Path) -> Result<(), ReplayError> {
    let write_err = |path: &Path, source| ReplayError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out_dir).map_err(|e| write_err(out_dir, e))?;
    let write_file = |name: &str, write: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>| {
        let path = out_dir.join(name);
        let file = File::create(&path).map_err(|e| write_err(&path, e))?;
        let mut out = BufWriter::new(file);
        write(&mut out)
            .and_then(|_| out.flush())
            .map_err(|e| write_err(&path, e))
    };
    write_file("alerts.jsonl", &|out| outputs.alerts.write_jsonl(out))?;
    write_file("sober_days.jsonl", &|out| {
        outputs.sober_days.write_jsonl(out)
    })?;
    if let Some(crimes) = &outputs.crimes {
        write_file("hits.jsonl", &|out| {
            crimes
                .write_hits_jsonl(out)
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()))
        })?;
    }
    Ok(())
}
