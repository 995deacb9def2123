//! The `tagsim` command line: `generate` writes a simulated data set to a directory.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tagsim::behaviour::Rates;
use tagsim::sim::{generate, GenerateOptions};

#[derive(Parser)]
#[command(name = "tagsim", about = "Tag simulator for tagstream: tags, orders, crimes and ground truth")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a population and write readings, orders, crime batches and truth to a directory.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Number of tags (one person and activation each).
    #[arg(long, default_value_t = 100)]
    tags: usize,
    /// Days to simulate.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Random seed: identical seed and options give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Start instant (RFC 3339, UTC).
    #[arg(long, default_value = "2026-03-02T00:00:00Z")]
    start: String,
    /// Police force area name (PFA20NM) from the boundaries file; "Bristol" is Avon and Somerset
    /// centred on Bristol.
    #[arg(long, default_value = "Bristol")]
    area: String,
    /// The police force areas GeoJSON.
    #[arg(long)]
    areas_file: Option<PathBuf>,
    /// Share of GPS tags.
    #[arg(long, default_value_t = 0.5)]
    gps_share: f64,
    /// Share of RF curfew tags (the rest are alcohol tags).
    #[arg(long, default_value_t = 0.33)]
    rf_share: f64,
    /// Share of activations starting during the run (a release, with the EMAC release-day curfew).
    #[arg(long, default_value_t = 0.1)]
    new_release_share: f64,
    /// Worker threads (output does not depend on it).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
    /// Skip writing readings.jsonl (to measure generation alone).
    #[arg(long)]
    no_json: bool,
    /// Skip writing readings.bin.
    #[arg(long)]
    no_bin: bool,
    #[command(flatten)]
    rates: Rates,
}

fn default_areas_file() -> PathBuf {
    let candidates = [
        PathBuf::from("../shared/data/police-force-areas.geojson"),
        PathBuf::from("shared/data/police-force-areas.geojson"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/police-force-areas.geojson")),
    ];
    candidates.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| candidates[0].clone())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate(a) => {
            let start_ms = match tagstream::model::time::parse_time(&a.start) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("tagsim: --start: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = GenerateOptions {
                tags: a.tags,
                days: a.days,
                seed: a.seed,
                start_ms,
                out_dir: a.out.clone(),
                area: a.area,
                areas_file: a.areas_file.unwrap_or_else(default_areas_file),
                rates: a.rates,
                gps_share: a.gps_share,
                rf_share: a.rf_share,
                new_release_share: a.new_release_share,
                threads: a.threads,
                json: !a.no_json,
                bin: !a.no_bin,
            };
            match generate(&opts) {
                Ok(r) => {
                    println!(
                        "tagsim: {} readings in {} batches, {} truth items, {} crime rows in {} files, {:.2} s ({:.0} readings/s) -> {}",
                        r.readings,
                        r.batches,
                        r.truth_items,
                        r.crime_rows,
                        r.crime_files,
                        r.seconds,
                        r.readings as f64 / r.seconds.max(1e-9),
                        a.out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tagsim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
