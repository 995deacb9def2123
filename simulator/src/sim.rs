//! `tagsim generate`: runs the whole simulation and writes the output directory.
//!
//! Time advances in one-hour chunks. In each chunk every tag is advanced independently (its own
//! random stream), in parallel over contiguous groups of tags; the batches uploaded in the chunk
//! are then written in upload order (upload time, tag, sequence), with any batch whose upload falls
//! after the chunk carried into the next, so the readings file is in the order a server would have
//! received it. Crimes for a day are generated once every trail has passed that day. The result
//! does not depend on the number of threads: identical seed and options give identical bytes.

use crate::area::{Area, AreaError};
use crate::behaviour::Rates;
use crate::clock::{DAY_MS, HOUR_MS};
use crate::crimes::CrimeGen;
use crate::output::{arrival_field, quote_tag, write_jsonl, write_reading_line, TimeCache};
use crate::population::{self, PopulationOptions, Profile};
use crate::tag::{RunContext, TagSim, UploadBatch};
use crate::truth::{merge_and_sort, TruthItem};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tagstream::model::TimeMs;
use tagstream::wire::ReadingsFileWriter;
use thiserror::Error;

/// Why a run failed.
#[derive(Debug, Error)]
pub enum SimError {
    #[error(transparent)]
    Area(#[from] AreaError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("cannot write {path}: {reason}")]
    Bin { path: String, reason: String },
}

/// Everything `generate` needs.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub tags: usize,
    pub days: u32,
    pub seed: u64,
    pub start_ms: TimeMs,
    pub out_dir: PathBuf,
    pub area: String,
    /// A force areas GeoJSON to read instead of the built-in one.
    pub areas_file: Option<PathBuf>,
    pub rates: Rates,
    pub gps_share: f64,
    pub rf_share: f64,
    pub new_release_share: f64,
    /// Share of people whose tag is replaced during the run.
    pub swap_share: f64,
    /// Share of eligible GPS wearers given a two-address curfew with the unit at one address.
    pub hmu_split_share: f64,
    pub threads: usize,
    /// Write `readings.jsonl` (off to measure generation alone).
    pub json: bool,
    /// Write `readings.bin` (the native binary readings file).
    pub bin: bool,
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct GenerateReport {
    pub readings: u64,
    pub batches: u64,
    pub truth_items: usize,
    pub crime_files: usize,
    pub crime_rows: usize,
    pub seconds: f64,
}

struct Out {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Out {
    fn create(path: PathBuf) -> Result<Out, SimError> {
        let f = File::create(&path).map_err(|source| SimError::Write {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Out {
            w: BufWriter::with_capacity(1 << 20, f),
            path,
        })
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimError> {
        self.w.write_all(bytes).map_err(|source| SimError::Write {
            path: self.path.display().to_string(),
            source,
        })
    }
    fn finish(mut self) -> Result<(), SimError> {
        self.w.flush().map_err(|source| SimError::Write {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Formats batches (already in file order) as JSON Lines into one buffer.
fn format_batches(batches: &[UploadBatch], tag_json: &[Vec<u8>]) -> Vec<u8> {
    let mut tc = TimeCache::default();
    let mut buf = Vec::with_capacity(batches.iter().map(|b| b.readings.len()).sum::<usize>() * 200);
    for b in batches {
        let tag = &tag_json[b.tag_no as usize];
        // When a real-time server would have received the batch: replay runs the event-time
        // clock from it as the server would.
        let arrival = arrival_field(b.upload_ms);
        for r in &b.readings {
            write_reading_line(&mut buf, &mut tc, tag, r, &arrival, b.seq);
        }
    }
    buf
}

fn key(b: &UploadBatch) -> (TimeMs, u32, u64) {
    (b.upload_ms, b.tag_no, b.seq)
}

/// Runs a simulation and writes `readings.jsonl`, `readings.bin`, `orders.json`, `crimes/*.csv`
/// and `truth.jsonl`.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateReport, SimError> {
    let dir = &opts.out_dir;
    std::fs::create_dir_all(dir).map_err(|source| SimError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    // Files are written by their own thread while the next hour is simulated.
    let json_out = if opts.json {
        Some(Out::create(dir.join("readings.jsonl"))?)
    } else {
        None
    };
    let bin_path = dir.join("readings.bin");
    let bin_out = if opts.bin {
        Some(
            ReadingsFileWriter::create(&bin_path).map_err(|e| SimError::Bin {
                path: bin_path.display().to_string(),
                reason: e.to_string(),
            })?,
        )
    } else {
        None
    };
    // Tag numbers tags..2*tags are replacement tags.
    let tag_names: Vec<String> = (0..2 * opts.tags).map(population::tag_id).collect();
    let tag_json: Vec<Vec<u8>> = tag_names.iter().map(|t| quote_tag(t)).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Vec<u8>>, Vec<UploadBatch>)>(2);
    let bin_path_text = bin_path.display().to_string();
    let writer = std::thread::spawn(move || -> Result<(), SimError> {
        let (mut json_out, mut bin_out) = (json_out, bin_out);
        for (json, batches) in rx {
            if let Some(out) = json_out.as_mut() {
                for part in &json {
                    out.write(part)?;
                }
            }
            if let Some(bin) = bin_out.as_mut() {
                for b in &batches {
                    bin.write_batch(&tag_names[b.tag_no as usize], b.seq, &b.readings)
                        .map_err(|e| SimError::Bin {
                            path: bin_path_text.clone(),
                            reason: e.to_string(),
                        })?;
                }
            }
        }
        if let Some(out) = json_out {
            out.finish()?;
        }
        if let Some(bin) = bin_out {
            bin.finish().map_err(|e| SimError::Bin {
                path: bin_path_text.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    });
    let (json, threads) = (opts.json, opts.threads.max(1));
    let mut emit = move |items: Vec<UploadBatch>| -> Result<(), SimError> {
        let parts = if json {
            let per = items.len().div_ceil(threads).max(1);
            let tag_json = &tag_json;
            std::thread::scope(|s| {
                let hs: Vec<_> = items
                    .chunks(per)
                    .map(|part| s.spawn(move || format_batches(part, tag_json)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        } else {
            Vec::new()
        };
        tx.send((parts, items))
            .map_err(|_| SimError::Option("the writer thread stopped".into()))
    };
    let result = simulate(opts, Some(dir), &mut emit);
    drop(emit);
    let written = writer
        .join()
        .map_err(|_| SimError::Option("the writer thread panicked".into()))?;
    // A writer failure explains a failed send better than the send error does.
    written?;
    result
}

/// Runs the simulation, handing each hour's uploaded batches to `emit` in upload order (upload
/// time, tag, sequence). With `side_dir`, also writes `orders.json`, `crimes/*.csv` and
/// `truth.jsonl` there.
pub fn simulate(
    opts: &GenerateOptions,
    side_dir: Option<&Path>,
    emit: &mut dyn FnMut(Vec<UploadBatch>) -> Result<(), SimError>,
) -> Result<GenerateReport, SimError> {
    let started = Instant::now();
    if opts.days == 0 || opts.tags == 0 {
        return Err(SimError::Option(
            "--tags and --days must be at least 1".into(),
        ));
    }
    let area = match &opts.areas_file {
        Some(file) => Area::load(file, &opts.area)?,
        None => Area::load_builtin(&opts.area)?,
    };
    let pop = PopulationOptions {
        tags: opts.tags,
        days: opts.days,
        start_ms: opts.start_ms,
        gps_share: opts.gps_share,
        rf_share: opts.rf_share,
        new_release_share: opts.new_release_share,
        swap_share: opts.swap_share,
        hmu_split_share: opts.hmu_split_share,
    };
    let profiles = population::generate(&area, &pop, opts.seed);
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| SimError::Write {
            path: p.display().to_string(),
            source,
        })
    };
    if let Some(dir) = side_dir {
        mkdir(dir)?;
        write_orders(dir, &profiles)?;
        write_devices(dir, &profiles)?;
    }
    let end_ms = opts.start_ms + opts.days as i64 * DAY_MS;
    let ctx = RunContext {
        tags: opts.tags,
        area: &area,
        rates: &opts.rates,
        seed: opts.seed,
        start_ms: opts.start_ms,
        end_ms,
    };
    let mut tags: Vec<TagSim> = profiles.iter().map(|p| TagSim::new(p, &ctx)).collect();
    let mut crime_gen = area.force.map(|f| CrimeGen::new(f, opts.seed));
    if let (Some(dir), Some(_)) = (side_dir, &crime_gen) {
        mkdir(&dir.join("crimes"))?;
    }
    let mut truth: Vec<TruthItem> = Vec::new();
    let mut report = GenerateReport::default();
    let mut carry: Vec<UploadBatch> = Vec::new();
    let group = tags.len().div_ceil(opts.threads.max(1));
    let mut crime_days_done = 0u32;
    let mut chunk_start = opts.start_ms;
    let mut send_sorted = |mut items: Vec<UploadBatch>,
                           until: Option<TimeMs>,
                           carry: &mut Vec<UploadBatch>,
                           report: &mut GenerateReport|
     -> Result<(), SimError> {
        items.append(carry);
        items.sort_unstable_by_key(key);
        let split = until.map_or(items.len(), |u| items.partition_point(|b| b.upload_ms < u));
        carry.extend(items.drain(split..));
        for b in &items {
            report.readings += b.readings.len() as u64;
            report.batches += 1;
        }
        emit(items)
    };
    while chunk_start < end_ms {
        let chunk_end = (chunk_start + HOUR_MS).min(end_ms);
        let (profiles_ref, ctx_ref) = (&profiles, &ctx);
        let results: Vec<(Vec<UploadBatch>, Vec<TruthItem>)> = std::thread::scope(|s| {
            let handles: Vec<_> = tags
                .chunks_mut(group)
                .map(|slice| {
                    s.spawn(move || {
                        let mut batches = Vec::new();
                        let mut truth = Vec::new();
                        for t in slice.iter_mut() {
                            let p = &profiles_ref[t.idx];
                            t.advance(p, ctx_ref, chunk_end, &mut batches);
                            if chunk_end >= end_ms {
                                t.finish(p, ctx_ref, &mut batches);
                            }
                            truth.append(&mut t.truth);
                        }
                        (batches, truth)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut items = Vec::new();
        for (f, mut t) in results {
            items.extend(f);
            truth.append(&mut t);
        }
        let until = (chunk_end < end_ms).then_some(chunk_end);
        send_sorted(items, until, &mut carry, &mut report)?;
        // Crimes for every day whose trails are complete.
        if let Some(cg) = crime_gen.as_mut() {
            while crime_days_done < opts.days
                && (opts.start_ms + (crime_days_done as i64 + 1) * DAY_MS <= chunk_end - HOUR_MS
                    || chunk_end >= end_ms)
            {
                let file = cg.day(
                    crime_days_done,
                    &ctx,
                    &area,
                    &opts.rates,
                    &profiles,
                    &tags,
                    &mut truth,
                );
                if let Some(dir) = side_dir {
                    let mut out = Out::create(dir.join("crimes").join(&file.name))?;
                    for line in &file.lines {
                        out.write(line.as_bytes())?;
                        out.write(b"\n")?;
                    }
                    out.finish()?;
                }
                report.crime_files += 1;
                report.crime_rows += file.lines.len();
                crime_days_done += 1;
            }
        }
        chunk_start = chunk_end;
    }
    send_sorted(Vec::new(), None, &mut carry, &mut report)?;
    let truth: Vec<TruthItem> = merge_and_sort(truth)
        .into_iter()
        .filter(|t| t.start < end_ms)
        .collect();
    report.truth_items = truth.len();
    if let Some(dir) = side_dir {
        let mut out = Out::create(dir.join("truth.jsonl"))?;
        let mut buf = Vec::new();
        write_jsonl(&mut buf, &truth).map_err(|source| SimError::Write {
            path: "truth.jsonl".into(),
            source,
        })?;
        out.write(&buf)?;
        out.finish()?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `devices.json`: the IMEI each tag gives as a Teltonika tracker, bound to it.
fn write_devices(dir: &Path, profiles: &[Profile]) -> Result<(), SimError> {
    let tags: Vec<&str> = profiles
        .iter()
        .flat_map(|p| std::iter::once(&p.activation).chain(p.replacement.iter()))
        .map(|a| a.tag.as_str())
        .collect();
    crate::teltonika::write_devices(dir, &tags).map_err(|source| SimError::Write {
        path: dir.join("devices.json").display().to_string(),
        source,
    })
}

fn write_orders(dir: &Path, profiles: &[Profile]) -> Result<(), SimError> {
    let doc = serde_json::json!({
        "people": profiles.iter().map(|p| &p.person).collect::<Vec<_>>(),
        "activations": profiles
            .iter()
            .flat_map(|p| std::iter::once(&p.activation).chain(p.replacement.iter()))
            .collect::<Vec<_>>(),
        "orders": profiles.iter().flat_map(|p| p.orders.iter()).collect::<Vec<_>>(),
    });
    let path = dir.join("orders.json");
    let mut out = Out::create(path.clone())?;
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| SimError::Write {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    out.write(&text)?;
    out.write(b"\n")?;
    out.finish()
}
