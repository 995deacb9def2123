//! The `tagstream` command: serve, replay, inspect, score. Errors are reported with context here,
//! at the edge; the library returns typed errors.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tagstream::config::ServerConfig;
use tagstream::pipeline::PipelineConfig;

#[derive(Parser)]
#[command(
    name = "tagstream",
    version,
    about = "Telemetry processor for electronic monitoring tags"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: tag ingest, durable log, live pipeline, HTTP API.
    Serve(ServeArgs),
    /// Run the pipeline over recorded readings and write the outputs to a directory.
    Replay(ReplayArgs),
    /// Print a JSON summary of what is durably stored in a data directory.
    Inspect {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    ingest_addr: Option<std::net::SocketAddr>,
    #[arg(long)]
    http_addr: Option<std::net::SocketAddr>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// People, activations and orders (the orders contract document).
    #[arg(long)]
    orders: Option<PathBuf>,
    #[arg(long)]
    partitions: Option<usize>,
    /// Reorder window in milliseconds of event time.
    #[arg(long)]
    reorder_ms: Option<i64>,
    /// Silence (event time) after which an activation raises no_contact.
    #[arg(long)]
    no_contact_ms: Option<i64>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[arg(long)]
    orders: PathBuf,
    /// Recorded readings: a `.jsonl` contract file, a native `.bin` readings file, or a data
    /// directory (its durable log, in log order).
    #[arg(long)]
    readings: PathBuf,
    /// Police crime batch files (matched for hits once crime matching exists).
    #[arg(long)]
    crimes: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// A server config file whose `[pipeline]` settings to use, so replay matches that server.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    reorder_ms: Option<i64>,
    #[arg(long)]
    no_contact_ms: Option<i64>,
}

fn pipeline_overrides(
    mut config: PipelineConfig,
    reorder_ms: Option<i64>,
    no_contact_ms: Option<i64>,
) -> PipelineConfig {
    if let Some(v) = reorder_ms {
        config.reorder_ms = v;
    }
    if let Some(v) = no_contact_ms {
        config.no_contact_ms = v;
    }
    config
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Replay(args) => replay(args),
        Command::Inspect { data_dir } => inspect(data_dir),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    if let Some(v) = args.ingest_addr {
        config.ingest_addr = v;
    }
    if let Some(v) = args.http_addr {
        config.http_addr = v;
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.orders {
        config.orders = Some(v);
    }
    if let Some(v) = args.partitions {
        config.partitions = v;
    }
    config.pipeline = pipeline_overrides(config.pipeline, args.reorder_ms, args.no_contact_ms);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(tagstream::server::run(config))
}

fn replay(args: ReplayArgs) -> Result<()> {
    let base = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    let config = pipeline_overrides(base.pipeline, args.reorder_ms, args.no_contact_ms);
    let (orders, orders_errors) = tagstream::replay::load_orders(&args.orders)?;
    for e in &orders_errors {
        eprintln!("{}: {e} (record skipped)", args.orders.display());
    }
    if !args.crimes.is_empty() {
        eprintln!("note: crime matching is not built yet; --crimes files are ignored");
    }
    let (outputs, mut summary) =
        tagstream::replay::replay(&orders, &args.readings, config, &base.rules)?;
    for e in &summary.readings_errors {
        eprintln!("{}: {e} (line skipped)", args.readings.display());
    }
    summary.orders_errors = orders_errors;
    tagstream::replay::write_outputs(&outputs, &args.out)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn inspect(data_dir: PathBuf) -> Result<()> {
    let summary = tagstream::inspect::inspect(&data_dir)
        .with_context(|| format!("inspecting {}", data_dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
