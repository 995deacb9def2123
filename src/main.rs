//! The `tagstream` command: serve, replay, inspect, score, users, retention, people, tags. Errors are reported with context here,
//! at the edge; the library returns typed errors.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tagstream::config::ServerConfig;
use tagstream::pipeline::PipelineConfig;

// glibc malloc cost ~10 % of the server's CPU under many small batches (arena locks across the
// ingest, committer and trail threads); see the README's dependency table.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve(Box<ServeArgs>),
    /// Run the pipeline over recorded readings and write the outputs to a directory.
    Replay(ReplayArgs),
    /// Manage API users (tokens are shown once, stored hashed).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Score outputs (alerts.jsonl, hits.jsonl) against the simulator's ground truth.
    Score {
        /// The simulator's truth.jsonl. Repeat `--truth` and `--outputs` (and `--orders`), in
        /// pairs, to score several populations pooled into one report.
        #[arg(long, required = true)]
        truth: Vec<PathBuf>,
        /// Directory holding alerts.jsonl (and hits.jsonl), e.g. a replay --out directory.
        #[arg(long, required = true)]
        outputs: Vec<PathBuf>,
        /// How far apart (minutes) a truth item and an output may start and still match.
        #[arg(long, default_value_t = 5)]
        tolerance_min: i64,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// The people, activations and orders monitored (e.g. the simulator's orders.json), with
        /// `--from` and `--until`: also print the hub's burden, false alerts per 100 monitored
        /// person-days.
        #[arg(long, requires_all = ["from", "until"])]
        orders: Vec<PathBuf>,
        /// Start of the monitored period (RFC 3339).
        #[arg(long, requires = "orders")]
        from: Option<String>,
        /// End of the monitored period (RFC 3339).
        #[arg(long, requires = "orders")]
        until: Option<String>,
    },
    /// Police crime batches: validate files offline, or import them into a running server.
    Crimes {
        #[command(subcommand)]
        command: CrimesCommand,
    },
    /// Rebuild every store that is a view of the log (alerts and sober days, trails, hits and
    /// reviews, people, orders, change history, users) from the log, server stopped; the old
    /// stores are set aside in DATA/rebuild-<unix ms>/.
    Rebuild {
        #[arg(long)]
        data_dir: PathBuf,
        /// The server's configuration file (rules and pipeline settings shape the outputs).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a JSON summary of what is durably stored in a data directory, or (with a cluster
    /// node's --config) in the JetStream stream it names.
    Inspect {
        #[arg(long, required_unless_present = "config")]
        data_dir: Option<PathBuf>,
        /// A configuration whose `[log] backend = "jetstream"`: inspect that stream.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Retention over a stopped server's data directory.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// People's data over a stopped server's data directory.
    People {
        #[command(subcommand)]
        command: PeopleCommand,
    },
    /// Documents people hand on (evidence packs, reports), from a stopped server's data
    /// directory, byte for byte what the API serves; and checking a document's manifest.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Tag credentials: revoke or rotate (stopped server; while it runs use the admin API) and
    /// print a tag's current secret.
    Tags {
        #[command(subcommand)]
        command: TagsCommand,
    },
}

#[derive(Subcommand)]
enum TagsCommand {
    /// Refuse the tag at hello until it is rotated (e.g. the tag was lost). Audited.
    Revoke {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        tag: String,
    },
    /// Issue new credentials (next generation, clears a revocation) and print the new secret
    /// once; the old secret stops working. Audited.
    Rotate {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        tag: String,
    },
    /// Print the tag's current secret and credential state (for provisioning).
    Secret {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        tag: String,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Purge what is past retention (as the server's scheduled job does) and print the report.
    Run {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        /// Judge retention at this time (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
        /// The server's config file (its `[retention]`, `[trails]` and segment size).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// A hit's evidence pack: <hit>-pack.pdf, <hit>-pack.json and <hit>-manifest.json (audited).
    HitPack {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        hit: String,
        /// The folder the three files are written to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Why the pack is made (recorded in the audit log).
        #[arg(long)]
        purpose: String,
        /// The server's config file (its `[documents]` declaration and `[console]` tile archive
        /// shape the pack).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// A person's sober-day report for one alcohol order and period:
    /// <person>-<order>-sober-days-<from>-<to>.pdf, .json and -manifest.json (audited). The
    /// sober days, alerts and TAC readings are rebuilt by replaying the log, as the server's
    /// start-up does, so the files are the bytes the server would serve.
    SoberDays {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        person: String,
        /// The alcohol order (default: the person's alcohol order that started last).
        #[arg(long)]
        order: Option<String>,
        /// First UK date (default: the order's start).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last UK date (default: the order's end or the last day the data reached).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// The folder the three files are written to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Why the report is made (recorded in the audit log).
        #[arg(long)]
        purpose: String,
        /// The server's config file (its rules and pipeline settings decide the days).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// A curfew or zone alert's breach report: <alert>-breach.pdf, <alert>-breach.json and
    /// <alert>-breach-manifest.json (audited).
    Breach {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        alert: String,
        /// The folder the three files are written to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Why the report is made (recorded in the audit log).
        #[arg(long)]
        purpose: String,
        /// The server's config file (its `[console]` tile archive and trail settings).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check the files a manifest lists against their SHA-256 (exit 1 if any changed).
    Verify {
        /// A `…-manifest.json`; the files it lists are read from its folder.
        manifest: PathBuf,
    },
}

#[derive(Subcommand)]
enum PeopleCommand {
    /// Subject access export: everything held about a person, as one JSON file (audited).
    Export {
        #[arg(long, visible_alias = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        person: String,
        #[arg(long)]
        out: PathBuf,
        /// Why the export is made (recorded in the audit log).
        #[arg(long)]
        purpose: String,
        /// The server's config file (its rules settings derive the sober days).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CrimesCommand {
    /// Validate batch files without importing them: prints each file's report (every bad row
    /// with line, code, message and action); exits 1 if any file has a rejected row.
    Check {
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 12)]
        max_window_h: i64,
    },
    /// Upload batch files to a running server (as `POST /v1/crimes/batches`, which validates,
    /// stores new versions and matches them against stored trails); prints each report.
    Import {
        files: Vec<PathBuf>,
        /// The server's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:7800")]
        server: String,
        /// A hub or admin token (or police, for its own force's batches).
        #[arg(long, env = "TAGSTREAM_TOKEN", conflicts_with = "token_file")]
        token: Option<String>,
        /// A file holding the token, e.g. DATA/admin.token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Vicinity radius for these batches (default: the server's).
        #[arg(long)]
        radius_m: Option<f64>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user and print its token.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        name: String,
        /// admin, hub, police or practitioner.
        #[arg(long)]
        role: String,
        /// The police force (police role), e.g. AvonSomerset.
        #[arg(long)]
        force: Option<String>,
        /// Person ids on the caseload (practitioner role), comma-separated.
        #[arg(long, value_delimiter = ',')]
        caseload: Vec<String>,
        /// The token stops working after this long (e.g. 30d, 12h, 2w); default: never.
        #[arg(long, conflicts_with = "expires")]
        expires_in: Option<String>,
        /// The token stops working at this time (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List users (never their tokens).
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Disable a user: their token stops working.
    Disable {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        name: String,
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
    /// The web console's files (default: `web/` here or in the binary's repository).
    #[arg(long)]
    console_dir: Option<PathBuf>,
    /// Map tile URL template for the console (`https://host/{z}/{x}/{y}.png`); default none:
    /// an offline basemap of police force areas.
    #[arg(long)]
    tile_url: Option<String>,
    /// A local MBTiles archive of PNG map tiles for the console, served by this server at
    /// /console/tiles/ (e.g. fixtures/basemap/demo-streets.mbtiles); not with --tile-url.
    #[arg(long)]
    tile_archive: Option<PathBuf>,
    /// TLS on the tag port: certificate chain (PEM); needs --ingest-tls-key.
    #[arg(long, requires = "ingest_tls_key")]
    ingest_tls_cert: Option<PathBuf>,
    /// TLS on the tag port: private key (PEM).
    #[arg(long, requires = "ingest_tls_cert")]
    ingest_tls_key: Option<PathBuf>,
    /// CA (PEM) tag client certificates must chain to; a certificate must name its tag.
    #[arg(long, requires = "ingest_tls_cert")]
    ingest_client_ca: Option<PathBuf>,
    /// Refuse tags without a client certificate (needs --ingest-client-ca).
    #[arg(long, requires = "ingest_client_ca")]
    require_client_cert: bool,
    /// HTTPS on the API: certificate chain (PEM); needs --http-tls-key.
    #[arg(long, requires = "http_tls_key")]
    http_tls_cert: Option<PathBuf>,
    /// HTTPS on the API: private key (PEM).
    #[arg(long, requires = "http_tls_cert")]
    http_tls_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// People, activations and orders for a recording that does not carry them; a data
    /// directory's log carries its own (every change where it happened), so none is needed.
    #[arg(long)]
    orders: Option<PathBuf>,
    /// Recorded readings: a `.jsonl` contract file, a native `.bin` readings file, or a data
    /// directory (its durable log, in log order).
    #[arg(long, required_unless_present = "stream")]
    readings: Option<PathBuf>,
    /// Cluster mode: read the JetStream stream of `--config`'s `[log.jetstream]` (every record
    /// stored when replay starts, in order) instead of `--readings`.
    #[arg(long, conflicts_with = "readings", requires = "config")]
    stream: bool,
    /// Police crime batch files, imported in the order given and matched for hits
    /// (writes `hits.jsonl`).
    #[arg(long, num_args = 1..)]
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
    /// After the input, advance the event-time clock to this time (RFC 3339), as if it had
    /// passed with no further readings: everything due by then is decided, `no_contact`
    /// included. Refused if before the clock the input reached.
    #[arg(long, conflicts_with = "final_")]
    until: Option<String>,
    /// The input is complete: decide every curfew window and sober day that ended within it
    /// (through the clock it reached) without waiting for late data; nothing after its end is
    /// decided, and no `no_contact` is raised because the recording ended (docs/rules.md,
    /// "Replay: the end of the input").
    #[arg(long = "final")]
    final_: bool,
    /// Only the readings of tags in these partitions (`0-31`, `0,5,9-12`; of `[pipeline]
    /// clock_partitions`): the outputs a processing node owning them gives.
    #[arg(long)]
    own_partitions: Option<String>,
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
        Command::Serve(args) => serve(*args),
        Command::Replay(args) => replay(args),
        Command::Inspect { data_dir, config } => match (data_dir, config) {
            (Some(data_dir), None) => inspect(data_dir),
            (_, Some(config)) => inspect_stream(&config),
            (None, None) => anyhow::bail!("inspect needs --data-dir or --config"),
        },
        Command::Rebuild { data_dir, config } => rebuild(data_dir, config),
        Command::Users { command } => users(command),
        Command::Crimes { command } => crimes(command),
        Command::Retention { command } => retention(command),
        Command::People { command } => people(command),
        Command::Tags { command } => tags(command),
        Command::Report { command } => report(command),
        Command::Score {
            truth,
            outputs,
            tolerance_min,
            json,
            orders,
            from,
            until,
        } => {
            anyhow::ensure!(
                truth.len() == outputs.len(),
                "{} --truth but {} --outputs: give them in pairs, one pair per population",
                truth.len(),
                outputs.len()
            );
            anyhow::ensure!(
                orders.is_empty() || orders.len() == truth.len(),
                "{} --orders for {} populations: give one per --truth, or none",
                orders.len(),
                truth.len()
            );
            let period = match (from, until) {
                (Some(from), Some(until)) => {
                    let time = |flag: &str, text: &str| {
                        tagstream::model::time::parse_time(text)
                            .map_err(|e| anyhow::anyhow!("--{flag} {text}: {e}"))
                    };
                    let (from_ms, until_ms) = (time("from", &from)?, time("until", &until)?);
                    anyhow::ensure!(
                        from_ms < until_ms,
                        "--from {from} is not before --until {until}"
                    );
                    Some((from_ms, until_ms))
                }
                _ => None,
            };
            let mut reports = Vec::with_capacity(truth.len());
            for (i, (truth, outputs)) in truth.iter().zip(&outputs).enumerate() {
                let mut report =
                    tagstream::score::run_score(truth, outputs, tolerance_min * 60_000)
                        .with_context(|| {
                            format!("scoring {} against {}", outputs.display(), truth.display())
                        })?;
                if let (Some(orders), Some((from_ms, until_ms))) = (orders.get(i), period) {
                    let (document, errors) = tagstream::replay::load_orders(orders)
                        .with_context(|| format!("reading {}", orders.display()))?;
                    anyhow::ensure!(
                        errors.is_empty(),
                        "{}: {} record(s) not accepted, the first: {}",
                        orders.display(),
                        errors.len(),
                        errors[0].message
                    );
                    let days =
                        tagstream::score::monitored_person_days(&document, from_ms, until_ms);
                    report = report.with_burden(days);
                }
                reports.push(report);
            }
            if reports.len() > 1 && !json {
                for (report, truth) in reports.iter().zip(&truth) {
                    println!("{}", report.to_output_table(&truth.display().to_string()));
                }
                println!("pooled over {} populations:", reports.len());
            }
            let report = match reports.len() {
                1 => reports.remove(0),
                _ => tagstream::score::ScoreReport::pooled(&reports),
            };
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut config = load_config(args.config.as_ref())?;
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
    if let Some(v) = args.console_dir {
        config.console.dir = Some(v);
    }
    if let Some(v) = args.tile_url {
        config.console.tile_url = Some(v);
    }
    if let Some(v) = args.tile_archive {
        config.console.tile_archive = Some(v);
    }
    // A missing or unusable tile archive stops the start (the console opens it again to serve).
    tagstream::console::tiles::open_configured(&config.console)?;
    if let (Some(cert_file), Some(key_file)) = (args.ingest_tls_cert, args.ingest_tls_key) {
        config.ingest.tls = Some(tagstream::tls::IngestTlsConfig {
            cert_file,
            key_file,
            client_ca_file: args.ingest_client_ca,
            require_client_cert: args.require_client_cert,
            handshake_timeout_ms: tagstream::tls::DEFAULT_HANDSHAKE_TIMEOUT_MS,
        });
    }
    if let (Some(cert_file), Some(key_file)) = (args.http_tls_cert, args.http_tls_key) {
        config.http.tls = Some(tagstream::tls::HttpTlsConfig {
            cert_file,
            key_file,
            handshake_timeout_ms: tagstream::tls::DEFAULT_HANDSHAKE_TIMEOUT_MS,
        });
    }
    config.pipeline = pipeline_overrides(config.pipeline, args.reorder_ms, args.no_contact_ms);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stopped = runtime.block_on(tagstream::server::run(config))?;
    drop(runtime);
    if stopped == tagstream::server::Stopped::Restart {
        // The same program with the same arguments, in place (same pid, so the same default
        // node id): it reads the stream for this node's new share of the partitions.
        use std::os::unix::process::CommandExt;
        let program = std::env::current_exe().context("finding this program to restart it")?;
        let error = std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .exec();
        return Err(error).context("restarting in place for the new share of the partitions");
    }
    Ok(())
}

/// Before an offline document is made from a stopped server's stores: every store brought up
/// to the log as the server's next start would (after a hard stop they may lag it), so the
/// document is what the server would serve. A stream's log, or no log at all, is left to the
/// report command to refuse.
fn catch_up_offline(data_dir: &Path, config: &ServerConfig) -> Result<()> {
    if config.jetstream().is_some() || !data_dir.join("log").is_dir() {
        return Ok(());
    }
    let mut config = config.clone();
    config.data_dir = data_dir.to_path_buf();
    // The log alone: an orders file is an import, for `serve`.
    config.orders = None;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(tagstream::server::catch_up(config))
        .with_context(|| format!("bringing {}'s stores up to its log", data_dir.display()))?;
    Ok(())
}

fn rebuild(data_dir: PathBuf, config: Option<PathBuf>) -> Result<()> {
    let mut config = load_config(config.as_ref())?;
    // A cluster node's log is the stream its configuration names.
    if config.jetstream().is_none() && !data_dir.join("log").is_dir() {
        anyhow::bail!("{} has no log: nothing to rebuild from", data_dir.display());
    }
    config.data_dir = data_dir;
    // A rebuild builds from the log alone: an orders file is an import, for `serve`.
    config.orders = None;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let aside = runtime
        .block_on(tagstream::server::rebuild(config))
        .context(
        "the rebuild stopped: stores it set aside are in DATA/rebuild-<unix ms>/, and the next \
             rebuild or server start builds whatever is missing from the log",
    )?;
    println!(
        "{}",
        serde_json::json!({
            "event": "rebuilt",
            "old_stores": aside.backup_dir.display().to_string(),
            "alert_event_numbers_continue_above": aside.event_numbers_through,
        })
    );
    Ok(())
}

fn replay(args: ReplayArgs) -> Result<()> {
    let base = load_config(args.config.as_ref())?;
    let config = pipeline_overrides(base.pipeline, args.reorder_ms, args.no_contact_ms);
    let (orders, orders_errors) = match &args.orders {
        Some(path) => {
            let (orders, errors) = tagstream::replay::load_orders(path)?;
            for e in &errors {
                eprintln!("{}: {e} (record skipped)", path.display());
            }
            (orders, errors)
        }
        None => Default::default(),
    };
    let end = match (&args.until, args.final_) {
        (Some(text), _) => tagstream::replay::InputEnd::Until(
            tagstream::model::time::parse_time(text)
                .map_err(|e| anyhow::anyhow!("--until: {e}"))?,
        ),
        (None, true) => tagstream::replay::InputEnd::Final,
        (None, false) => tagstream::replay::InputEnd::AsRecorded,
    };
    let input =
        match (&args.readings, args.stream) {
            (Some(path), _) => tagstream::replay::Recorded::Path(path),
            (None, _) => tagstream::replay::Recorded::Stream(base.log.jetstream.as_ref().context(
                "--stream: the config file has no [log.jetstream] table naming the stream",
            )?),
        };
    let owned = args
        .own_partitions
        .as_deref()
        .map(|text| {
            tagstream::model::tag_partition::PartitionSet::parse(text, config.clock_partitions)
        })
        .transpose()
        .context("--own-partitions")?;
    let (outputs, mut summary) = tagstream::replay::replay_input(
        &orders,
        &input,
        &args.crimes,
        config,
        &base.rules,
        end,
        owned.as_ref(),
    )?;
    let shown = args
        .readings
        .as_ref()
        .map_or_else(|| "the stream".to_string(), |p| p.display().to_string());
    for e in &summary.readings_errors {
        if e.line == 0 {
            // Not a line: damage in a log directory (or a binary file), skipped records said.
            eprintln!("{shown}: {}", e.message);
        } else {
            eprintln!("{shown}: {e} (line skipped)");
        }
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
    // Damage means acknowledged records are lost: never exit 0 over it.
    if !summary.log.damage.is_empty() {
        anyhow::bail!(
            "{}: the log is damaged: {} damaged range(s), {} record(s) lost (see log.damage)",
            data_dir.display(),
            summary.log.damage.len(),
            summary.log.records_lost
        );
    }
    Ok(())
}

fn inspect_stream(config_path: &std::path::Path) -> Result<()> {
    let config = ServerConfig::load(config_path)?;
    let Some(stream) = config.jetstream() else {
        anyhow::bail!(
            "{} does not put the log on a stream ([log] backend = \"jetstream\"): inspect its data directory with --data-dir",
            config_path.display()
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime
        .block_on(tagstream::inspect::inspect_stream(stream))
        .with_context(|| format!("inspecting stream {}", stream.stream))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !summary.damaged.is_empty() {
        anyhow::bail!(
            "stream {}: {} damaged message(s), first at sequence {} (see damaged); a node stops there",
            stream.stream,
            summary.damaged.len(),
            summary.damaged[0].sequence
        );
    }
    Ok(())
}

fn load_config(path: Option<&PathBuf>) -> Result<ServerConfig> {
    Ok(match path {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    })
}

fn retention(command: RetentionCommand) -> Result<()> {
    let RetentionCommand::Run {
        data_dir,
        now,
        config,
    } = command;
    let config = load_config(config.as_ref())?;
    secure_existing(&data_dir)?;
    let now_ms = match now {
        Some(t) => tagstream::model::time::parse_time(&t)
            .map_err(anyhow::Error::msg)
            .context("--now")?,
        None => tagstream::retention::purge::wall_clock_ms(),
    };
    let report = tagstream::retention::offline::run_retention(&data_dir, &config, now_ms)
        .with_context(|| format!("retention run over {}", data_dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn people(command: PeopleCommand) -> Result<()> {
    let PeopleCommand::Export {
        data_dir,
        person,
        out,
        purpose,
        config,
    } = command;
    let config = load_config(config.as_ref())?;
    secure_existing(&data_dir)?;
    let summary =
        tagstream::retention::offline::export_person(&data_dir, &config, &person, &purpose, &out)
            .with_context(|| format!("exporting person {person} from {}", data_dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// The `[console]` tile archive a document's map is drawn on, as the server would open it.
fn report_tiles(config: &ServerConfig) -> Result<Option<tagstream::console::tiles::TileArchive>> {
    tagstream::console::tiles::open_configured(&config.console)
        .context("opening the [console] tile archive")
}

/// One line saying which document was made and the files written.
fn print_written(key: &str, id: &str, written: &[PathBuf]) {
    let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("{}", serde_json::json!({ key: id, "files": files }));
}

fn report(command: ReportCommand) -> Result<()> {
    match command {
        ReportCommand::HitPack {
            data_dir,
            hit,
            out,
            purpose,
            config,
        } => {
            let config = load_config(config.as_ref())?;
            secure_existing(&data_dir)?;
            let archive = report_tiles(&config)?;
            let tiles = archive
                .as_ref()
                .map(|t| t as &dyn tagstream::documents::map_figure::TileSource);
            catch_up_offline(&data_dir, &config)?;
            let written = tagstream::documents::offline::hit_pack_offline(
                &data_dir, &config, tiles, &hit, &purpose, &out,
            )
            .with_context(|| format!("hit pack of {hit} from {}", data_dir.display()))?;
            print_written("hit", &hit, &written);
            Ok(())
        }
        ReportCommand::SoberDays {
            data_dir,
            person,
            order,
            from,
            to,
            out,
            purpose,
            config,
        } => {
            let config = load_config(config.as_ref())?;
            secure_existing(&data_dir)?;
            let log_dir = data_dir.join("log");
            let replayed = || {
                let (outputs, tac) = tagstream::replay::stored_outputs_with_tac(
                    &log_dir,
                    config.pipeline,
                    &config.rules,
                )
                .map_err(|e| e.to_string())?;
                Ok(tagstream::documents::offline::ReplayedAlcohol {
                    sober_days: outputs.sober_days.sorted(),
                    alerts: outputs.alerts.sorted(),
                    tac,
                })
            };
            let request = tagstream::documents::sources::SoberDayRequest {
                order,
                from,
                to,
                abstinence_max_days: config.rules.alcohol.abstinence_max_days,
            };
            let written = tagstream::documents::offline::sober_day_report_offline(
                &data_dir, &config, &person, &request, &purpose, &out, &replayed,
            )
            .with_context(|| format!("sober-day report of {person} from {}", data_dir.display()))?;
            print_written("person", &person, &written);
            Ok(())
        }
        ReportCommand::Breach {
            data_dir,
            alert,
            out,
            purpose,
            config,
        } => {
            let config = load_config(config.as_ref())?;
            secure_existing(&data_dir)?;
            let archive = report_tiles(&config)?;
            let tiles = archive
                .as_ref()
                .map(|t| t as &dyn tagstream::documents::map_figure::TileSource);
            catch_up_offline(&data_dir, &config)?;
            let written = tagstream::documents::offline::breach_report_offline(
                &data_dir, &config, tiles, &alert, &purpose, &out,
            )
            .with_context(|| format!("breach report of {alert} from {}", data_dir.display()))?;
            print_written("alert", &alert, &written);
            Ok(())
        }
        ReportCommand::Verify { manifest } => {
            let checked = tagstream::documents::manifest::verify(&manifest)
                .with_context(|| format!("verifying {}", manifest.display()))?;
            println!(
                "{}",
                serde_json::json!({ "manifest": manifest.display().to_string(), "unchanged": checked })
            );
            Ok(())
        }
    }
}

/// Owner-only umask and modes for a command that writes an existing data directory (a missing
/// one is left for the command to report).
fn secure_existing(data_dir: &std::path::Path) -> Result<()> {
    tagstream::data_dir::private_umask();
    if data_dir.is_dir() {
        tagstream::data_dir::secure_data_dir(data_dir)
            .with_context(|| format!("securing {}", data_dir.display()))?;
    }
    Ok(())
}

fn users(command: UsersCommand) -> Result<()> {
    use tagstream::store::metadata::{Metadata, NewUser};
    use tagstream::topology::offline_change::append_offline;
    let open = |dir: &PathBuf| -> Result<Metadata> {
        tagstream::data_dir::secure_data_dir(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Metadata::open(dir)
            .with_context(|| format!("opening the metadata database in {}", dir.display()))
    };
    match command {
        UsersCommand::Add {
            data_dir,
            name,
            role,
            force,
            caseload,
            expires_in,
            expires,
        } => {
            let role = tagstream::api::admin::role_from(&role, force, caseload)
                .map_err(anyhow::Error::msg)?;
            let expires_ms = tagstream::store::metadata::parse_expiry(
                expires.as_deref(),
                expires_in.as_deref(),
                tagstream::retention::purge::wall_clock_ms(),
            )
            .map_err(anyhow::Error::msg)?;
            let (account, token) = tagstream::store::metadata::new_account(&NewUser {
                name,
                role,
                expires_ms,
            })?;
            let metadata = open(&data_dir)?;
            let name = account.name.clone();
            if metadata.user_by_name(&name)?.is_some() {
                anyhow::bail!("user '{name}' already exists");
            }
            let change = tagstream::model::Change::PutUser { user: account };
            append_offline(&data_dir, &metadata, "cli", change)?;
            let user = metadata
                .user_by_name(&name)?
                .with_context(|| format!("user '{name}' was stored but is not found"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"user": user, "token": token}))?
            );
        }
        UsersCommand::List { data_dir } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&open(&data_dir)?.list_users()?)?
            );
        }
        UsersCommand::Disable { data_dir, name } => {
            let metadata = open(&data_dir)?;
            let change = tagstream::model::Change::DisableUser { name: name.clone() };
            append_offline(&data_dir, &metadata, "cli", change)?;
            eprintln!("user '{name}' disabled");
        }
    }
    Ok(())
}

fn tags(command: TagsCommand) -> Result<()> {
    use tagstream::model::Change;
    use tagstream::store::metadata::{Metadata, NewAuditEntry};
    use tagstream::topology::offline_change::append_offline;
    let (TagsCommand::Revoke { data_dir, tag }
    | TagsCommand::Rotate { data_dir, tag }
    | TagsCommand::Secret { data_dir, tag }) = &command;
    tagstream::wire::frame::check_tag_id(tag)?;
    if !data_dir.is_dir() {
        anyhow::bail!("{} is not a data directory", data_dir.display());
    }
    let key = tagstream::server::load_tag_key(data_dir, false)?;
    let metadata = Metadata::open(data_dir)
        .with_context(|| format!("opening the metadata database in {}", data_dir.display()))?;
    let creds = tagstream::ingest::TagCredentials::load(key, metadata.clone())?;
    let now_ms = tagstream::retention::purge::wall_clock_ms();
    let audit = |action: &str, detail: String| {
        metadata.audit(&NewAuditEntry {
            t_ms: now_ms,
            user_name: "cli".into(),
            role: "admin".into(),
            action: action.into(),
            purpose: Some("tag credentials".into()),
            detail: Some(detail),
            ..NewAuditEntry::default()
        })
    };
    // Revoke and rotate are log records, appended under the data directory's lock: while the
    // server runs (or on a cluster node) they go through its API instead.
    let via_api = "while the server runs, use POST /v1/tags/{tag}/revoke or /v1/tags/{tag}/credentials/rotate";
    let out = match command {
        TagsCommand::Revoke { tag, data_dir } => {
            append_offline(
                &data_dir,
                &metadata,
                "cli",
                Change::RevokeTag { tag: tag.clone() },
            )
            .context(via_api)?;
            audit("tag.revoke", format!("tag {tag} revoked"))?;
            serde_json::to_value(metadata.tag_credential(&tag)?)?
        }
        TagsCommand::Rotate { tag, data_dir } => {
            append_offline(
                &data_dir,
                &metadata,
                "cli",
                Change::RotateTag { tag: tag.clone() },
            )
            .context(via_api)?;
            let state = metadata.tag_credential(&tag)?;
            audit(
                "tag.rotate",
                format!("tag {tag} rotated to generation {}", state.generation),
            )?;
            let secret = creds.secret_at(&tag, state.generation);
            serde_json::json!({"tag": state.tag, "generation": state.generation, "secret": secret})
        }
        TagsCommand::Secret { tag, .. } => {
            let state = metadata.tag_credential(&tag)?;
            serde_json::json!({
                "tag": state.tag,
                "generation": state.generation,
                "revoked": state.revoked_ms.is_some(),
                "secret": creds.secret_at(&tag, state.generation),
            })
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn crimes(command: CrimesCommand) -> Result<()> {
    match command {
        CrimesCommand::Check {
            files,
            max_window_h,
        } => {
            let rules = tagstream::crime::PoliceCsvRules {
                max_window_ms: max_window_h * 3_600_000,
            };
            let mut clean = true;
            for path in &files {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let report = tagstream::crime::import::parse(&bytes, None, &rules);
                clean &= report.errors.is_empty();
                let name = path.display().to_string();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&tagstream::crime::import::report_json(
                        &name, &report
                    ))?
                );
            }
            if !clean {
                std::process::exit(1);
            }
            Ok(())
        }
        CrimesCommand::Import {
            files,
            server,
            token,
            token_file,
            radius_m,
        } => {
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the token file {}", path.display()))?
                    .trim()
                    .to_string(),
                (None, None) => anyhow::bail!("give --token, --token-file or TAGSTREAM_TOKEN"),
            };
            for path in &files {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut request = ureq::post(&format!("{server}/v1/crimes/batches"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .set("Content-Type", "text/csv")
                    .query("filename", &name);
                if let Some(r) = radius_m {
                    request = request.query("radius_m", &r.to_string());
                }
                match request.send_bytes(&bytes) {
                    Ok(response) => println!("{}", response.into_string()?),
                    Err(ureq::Error::Status(code, response)) => anyhow::bail!(
                        "{}: the server refused the batch ({code}): {}",
                        path.display(),
                        response.into_string().unwrap_or_default()
                    ),
                    Err(e) => {
                        return Err(e).with_context(|| format!("uploading {}", path.display()))
                    }
                }
            }
            Ok(())
        }
    }
}
