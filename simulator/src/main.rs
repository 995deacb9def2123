//! The `tagsim` command line: `generate` writes a simulated data set to a directory; `stream`
//! uploads one to a server; `basemap` builds the synthetic street tile archive.

use clap::{Parser, Subcommand};

/// A faster allocator: the simulator allocates a batch per upload, millions a minute.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;
use tagsim::behaviour::Rates;
use tagsim::sim::{generate, GenerateOptions};
use tagsim::stream::{stream, DeviceProfile, StreamOptions, StreamProtocol};

#[derive(Parser)]
#[command(
    name = "tagsim",
    about = "Tag simulator for tagstream: tags, orders, crimes and ground truth"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a population and write readings, orders, crime batches and truth to a directory.
    Generate(GenerateArgs),
    /// Simulate a population and upload its readings to a tagstream server like real tags.
    Stream(StreamArgs),
    /// Render a synthetic street network around the simulated area into an MBTiles archive of
    /// PNG map tiles (for `tagstream serve --tile-archive`). Made-up streets: never evidence.
    Basemap(BasemapArgs),
}

#[derive(clap::Args)]
struct BasemapArgs {
    /// The archive to write (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Random seed: the same seed gives byte-identical tiles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Police force area name, as for `generate`: the streets surround its simulated centre.
    #[arg(long, default_value = "Bristol")]
    area: String,
    /// Half the side of the square of streets, in metres.
    #[arg(long, default_value_t = 5000.0)]
    half_size_m: f64,
    /// Lowest zoom level rendered.
    #[arg(long, default_value_t = 11)]
    min_zoom: u8,
    /// Highest zoom level rendered (the console enlarges these tiles beyond it).
    #[arg(long, default_value_t = 16)]
    max_zoom: u8,
}

#[derive(clap::Args)]
struct StreamArgs {
    /// Server ingest address, HOST:PORT; or several, comma-separated (cluster nodes): tag i starts
    /// on address i mod N and moves to the next one when its connection fails.
    #[arg(long)]
    connect: String,
    /// The server's tag key (per-tag secrets are hex HMAC-SHA256 of it and the tag id).
    #[arg(long, env = "TAGSTREAM_TAG_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Read the tag key from a file (e.g. the server's DATA/tag.key).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Simulated seconds per wall-clock second (0 = as fast as possible).
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Real time: speed 1, and the run starts now unless --start is given.
    #[arg(long)]
    realtime: bool,
    /// Most connections open at once.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Most batches in flight (sent, not acknowledged) per connection.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Hang up after this long with nothing to send.
    #[arg(long, default_value_t = 2000)]
    linger_ms: u64,
    /// Longest wait for outstanding acknowledgements after the last batch was handed out.
    #[arg(long, default_value_t = 120)]
    drain_timeout_s: u64,
    /// Progress line every this many seconds (0 = none).
    #[arg(long, default_value_t = 10)]
    progress_s: u64,
    /// Session epoch the tags say in their hellos: raise it to restart batch numbering (like a
    /// factory reset) against a server that stored an earlier run.
    #[arg(long, default_value_t = 0)]
    epoch: u32,
    /// The protocol the tags speak: `teltonika` sends each tag as a Teltonika tracker (its IMEI
    /// is in devices.json, to bind with `PUT /v1/devices/teltonika/{imei}`).
    #[arg(long, value_enum, default_value_t = StreamProtocol::Native)]
    protocol: StreamProtocol,
    /// What the tags report: `teltonika` sends only what a Teltonika tracker can, over either
    /// protocol (to compare protocols on the same information).
    #[arg(long, value_enum, default_value_t = DeviceProfile::Tag)]
    device_profile: DeviceProfile,
    /// Also write orders.json, devices.json, crimes/ and truth.jsonl here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Skip writing readings.jsonl (to measure generation alone).
    #[arg(long)]
    no_json: bool,
    /// Skip writing readings.bin.
    #[arg(long)]
    no_bin: bool,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Number of tags (one person and activation each).
    #[arg(long, default_value_t = 100)]
    tags: usize,
    /// Days to simulate.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Random seed: identical seed and options give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start instant (RFC 3339, UTC) [default: 2026-03-02T00:00:00Z, or now with --realtime].
    #[arg(long)]
    start: Option<String>,
    /// Police force area name (PFA20NM) from the boundaries file; "Bristol" is Avon and Somerset
    /// centred on Bristol.
    #[arg(long, default_value = "Bristol")]
    area: String,
    /// A police force areas GeoJSON (PFA20NM names) to use instead of the built-in one.
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
    /// Share of people whose tag is replaced during the run (old tag removed, new tag and
    /// activation).
    #[arg(long, default_value_t = 0.02)]
    swap_share: f64,
    /// Share of GPS wearers with a home monitoring unit and a one-address curfew whose curfew is
    /// instead two addresses (home Sun–Thu, a second address Fri–Sat) with the unit marked `hmu`
    /// at one of them; the other is monitored by GPS alone.
    #[arg(long, default_value_t = 0.4)]
    hmu_split_share: f64,
    /// Worker threads (output does not depend on it).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
    #[command(flatten)]
    rates: Rates,
}

impl SimArgs {
    fn options(self, out_dir: PathBuf, realtime: bool) -> Result<GenerateOptions, String> {
        let start_ms = match (&self.start, realtime) {
            (Some(s), _) => {
                tagstream::model::time::parse_time(s).map_err(|e| format!("--start: {e}"))?
            }
            (None, true) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64 / 60_000 * 60_000)
                .map_err(|e| e.to_string())?,
            (None, false) => tagstream::model::time::parse_time("2026-03-02T00:00:00Z")
                .map_err(|e| e.to_string())?,
        };
        Ok(GenerateOptions {
            tags: self.tags,
            days: self.days,
            seed: self.seed,
            start_ms,
            out_dir,
            area: self.area,
            areas_file: self.areas_file,
            rates: self.rates,
            gps_share: self.gps_share,
            rf_share: self.rf_share,
            new_release_share: self.new_release_share,
            swap_share: self.swap_share,
            hmu_split_share: self.hmu_split_share,
            threads: self.threads,
            json: true,
            bin: true,
        })
    }
}

fn run_generate(a: GenerateArgs) -> Result<String, String> {
    let mut opts = a.sim.options(a.out.clone(), false)?;
    opts.json = !a.no_json;
    opts.bin = !a.no_bin;
    let r = generate(&opts).map_err(|e| e.to_string())?;
    Ok(format!(
        "tagsim: {} readings in {} batches, {} truth items, {} crime rows in {} files, {:.2} s ({:.0} readings/s) -> {}",
        r.readings,
        r.batches,
        r.truth_items,
        r.crime_rows,
        r.crime_files,
        r.seconds,
        r.readings as f64 / r.seconds.max(1e-9),
        a.out.display()
    ))
}

fn run_basemap(a: BasemapArgs) -> Result<String, String> {
    let opts = tagsim::basemap::BasemapOptions {
        seed: a.seed,
        area: a.area,
        half_size_m: a.half_size_m,
        min_zoom: a.min_zoom,
        max_zoom: a.max_zoom,
    };
    let r = tagsim::basemap::build(&opts, &a.out).map_err(|e| e.to_string())?;
    let [w, s, e, n] = r.bounds;
    Ok(format!(
        "tagsim: {} tiles (zooms {}..{}), {} bytes, bounds {w:.5},{s:.5},{e:.5},{n:.5}, {:.2} s -> {}",
        r.tiles,
        opts.min_zoom,
        opts.max_zoom,
        r.bytes,
        r.seconds,
        a.out.display()
    ))
}

fn run_stream(a: StreamArgs) -> Result<String, String> {
    let key = match (&a.key, &a.key_file) {
        (_, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("--key-file {}: {e}", path.display()))?
            .trim()
            .to_string(),
        (Some(k), None) => k.trim().to_string(),
        (None, None) => {
            return Err(
                "give the server's tag key with --key, --key-file or TAGSTREAM_TAG_KEY".into(),
            )
        }
    };
    let side = a.out.clone();
    let opts = a
        .sim
        .options(side.clone().unwrap_or_default(), a.realtime)?;
    let stream_opts = StreamOptions {
        connect: a.connect,
        key: key.into_bytes(),
        speed: if a.realtime { 1.0 } else { a.speed },
        connections: a.connections,
        window: a.window,
        linger_ms: a.linger_ms,
        drain_timeout_ms: a.drain_timeout_s * 1000,
        progress_s: a.progress_s,
        epoch: a.epoch,
        protocol: a.protocol,
        device_profile: a.device_profile,
    };
    let r = stream(&opts, &stream_opts, side.as_deref()).map_err(|e| e.to_string())?;
    Ok(r.summary())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => run_generate(a),
        Command::Stream(a) => run_stream(a),
        Command::Basemap(a) => run_basemap(a),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tagsim: {e}");
            ExitCode::FAILURE
        }
    }
}
