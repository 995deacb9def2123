//! `tagsim stream`: the simulated tags upload over the native protocol to a running tagstream,
//! behaving like real ones.
//!
//! The simulation runs on a thread and hands out batches in upload order; a dispatcher releases
//! each batch at its upload time mapped to wall time (`--speed X` runs X simulated seconds per
//! second, `--realtime` is 1 with the run starting now, speed 0 is as fast as possible) to its
//! tag's task. A tag task holds its unacknowledged batches. When it has something to send it
//! takes a connection slot (at most `--connections` at once), connects, says `Hello` (tag id and
//! secret = hex HMAC-SHA256 of the key and tag id), drops whatever `HelloOk.last_seq` says the
//! server already stored, sends with at most `--window` batches in flight, and forgets a batch only
//! when it is acknowledged. It hangs up after `--linger-ms` with nothing to send, like a tag
//! between uploads. A dropped connection or a retryable error frame makes it reconnect with
//! exponential backoff (with jitter) and re-send every unacknowledged batch, so a server restart
//! loses nothing that was acknowledged. Readings stored during a simulated signal loss arrive as
//! the late batches the simulation produced for them.
//!
//! Failover (cluster mode): `--connect` may list several nodes, `HOST:PORT,HOST:PORT,…`. Tag `i`
//! starts on address `i mod N`; a failed connect, a dropped connection or a retryable error frame
//! moves it to the next address in the list (wrapping), where it says `Hello` again and re-sends
//! every unacknowledged batch with the same (epoch, seq) numbers, so the cluster stores each batch
//! once. The first tries on other addresses come after a short jitter; the backoff grows only once
//! a tag has tried every address without success. For each failover with batches waiting, the
//! time from the connection loss to the first acknowledgement on another address is measured.

use crate::population::tag_id;
use crate::rng::Rng;
use crate::sim::{simulate, GenerateOptions, GenerateReport, SimError};
use crate::tag::UploadBatch;
use crate::teltonika::{as_reported, imei_of_tag, record_of};
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tagstream::devices::teltonika::{
    AvlPacket, Codec, DeviceCodec, DeviceMessage, Imei, MappingConfig, ServerReply,
};
use tagstream::model::Reading;
use tagstream::wire::{tag_secret, ErrorCode, Frame, FrameCodec, PROTOCOL_VERSION};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::Framed;

/// Why streaming failed as a whole.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{failed_tags} tag(s) gave up: {last_error}")]
    TagsFailed {
        failed_tags: u64,
        last_error: String,
    },
    #[error("{unacked} batch(es) still unacknowledged after the drain timeout")]
    Unacked { unacked: u64 },
    #[error("--connect: {0}")]
    Connect(String),
}

/// Splits `--connect` (`HOST:PORT` or a comma-separated list of them) into addresses, refusing
/// an empty list or an empty entry (a typo would otherwise silently drop a node).
pub fn parse_addresses(connect: &str) -> Result<Vec<String>, StreamError> {
    let addresses: Vec<String> = connect.split(',').map(|a| a.trim().to_string()).collect();
    if addresses.iter().any(|a| a.is_empty()) {
        return Err(StreamError::Connect(format!(
            "empty address in {connect:?} (HOST:PORT[,HOST:PORT…])"
        )));
    }
    Ok(addresses)
}

/// Which address of the `--connect` list a tag uses: it starts on `tag index mod N` (spreading
/// the tags over the nodes) and moves to the next one, wrapping, each time a connection fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRing {
    current: usize,
    count: usize,
}

impl AddressRing {
    /// The ring of tag number `tag_idx` over `count` addresses (at least one).
    pub fn start(tag_idx: usize, count: usize) -> Self {
        let count = count.max(1);
        AddressRing {
            current: tag_idx % count,
            count,
        }
    }

    /// Index of the address to use now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Moves to the next address (after a failure) and returns its index.
    pub fn advance(&mut self) -> usize {
        self.current = (self.current + 1) % self.count;
        self.current
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// How to stream.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// `HOST:PORT`, or several separated by commas (cluster nodes to fail over between).
    pub connect: String,
    pub key: Vec<u8>,
    /// Simulated seconds per wall second; 0 = as fast as possible.
    pub speed: f64,
    pub connections: usize,
    pub window: usize,
    pub linger_ms: u64,
    /// Longest wait for outstanding acknowledgements once the simulation has ended.
    pub drain_timeout_ms: u64,
    /// Print progress every this many seconds (0 = never).
    pub progress_s: u64,
    /// Session epoch every tag says in its hello. Batches are numbered per (tag, epoch): a run
    /// with a higher epoch than an earlier one is new data even though its numbers start again
    /// at 1 (what a real tag does after a factory reset); 0 = the tag never reset.
    pub epoch: u32,
    /// The protocol the tags speak.
    pub protocol: StreamProtocol,
    /// What the tags can measure and report: `Teltonika` sends only what a Teltonika tracker
    /// would (see `crate::teltonika`), whichever protocol carries it; implied by that protocol.
    pub device_profile: DeviceProfile,
}

/// The protocol `tagsim stream` speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamProtocol {
    /// tagstream's own tag protocol (hello with the tag's secret, numbered batches).
    #[default]
    Native,
    /// Teltonika Codec 8 over TCP: the tag's IMEI, then one AVL packet per upload (at most 255
    /// records each), each acknowledged with its record count.
    Teltonika,
}

/// What a simulated tag reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceProfile {
    /// Everything the simulated EM tag measures.
    #[default]
    Tag,
    /// What a Teltonika tracker can send: GNSS fixes (precision through HDOP) and battery and
    /// charger events; no RF, alcohol, tamper, cell or Wi-Fi readings.
    Teltonika,
}

/// Counters for the run.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub batches_sent: AtomicU64,
    pub batches_resent: AtomicU64,
    pub batches_acked: AtomicU64,
    pub readings_acked: AtomicU64,
    /// Batches the server already had (its `HelloOk.last_seq` covered them): stored, never
    /// acknowledged on this run (an acknowledgement lost in a crash, or a re-run).
    pub already_stored: AtomicU64,
    pub readings_already_stored: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub dropped_connections: AtomicU64,
    pub error_frames: AtomicU64,
    pub failed_tags: AtomicU64,
    pub unacked: AtomicU64,
    /// Connections opened after a failure (a failed connect, a drop or a retryable error).
    pub reconnects: AtomicU64,
    /// For each failover with batches waiting: milliseconds from the connection loss to the
    /// first acknowledged batch on another address.
    pub failover_ms: std::sync::Mutex<Vec<u64>>,
    /// Readings the device profile cannot carry (e.g. RF or alcohol readings of a Teltonika
    /// tracker): never sent; a batch left empty counts as acknowledged.
    pub readings_not_sendable: AtomicU64,
    /// The last connection problem seen, for the report.
    pub last_problem: std::sync::Mutex<String>,
}

impl StreamStats {
    fn note(&self, problem: &str) {
        if let Ok(mut p) = self.last_problem.lock() {
            *p = problem.to_string();
        }
    }

    fn note_failover(&self, ms: u64) {
        if let Ok(mut f) = self.failover_ms.lock() {
            f.push(ms);
        }
    }

    /// (count, p50, max) of the failover times in milliseconds; `None` when there were none.
    pub fn failover_summary(&self) -> Option<(usize, u64, u64)> {
        let mut times = self.failover_ms.lock().ok()?.clone();
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        // Nearest-rank median: the smallest time at least half the failovers were within.
        let p50 = times[(times.len() - 1) / 2];
        Some((times.len(), p50, times[times.len() - 1]))
    }
}

/// What a stream run did.
#[derive(Debug)]
pub struct StreamReport {
    pub sim: GenerateReport,
    pub stats: Arc<StreamStats>,
    pub seconds: f64,
}

impl StreamReport {
    /// One line: batches and readings the server confirmed (acknowledged, or reported stored by
    /// `HelloOk.last_seq`) of those generated, then the connection counters.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let failovers = match s.failover_summary() {
            Some((n, p50, max)) => {
                format!("{n} failovers (loss to first ack on the next address: p50 {p50} ms, max {max} ms)")
            }
            None => "0 failovers".to_string(),
        };
        format!(
            "tagsim stream: {} batches ({} readings) acknowledged of {} generated; {} sent, {} re-sent, {} already stored, {} readings not sendable; {} connections, {} failed connects, {} dropped, {} error frames; {} reconnects, {}; {:.1} s",
            g(&s.batches_acked) + g(&s.already_stored),
            g(&s.readings_acked) + g(&s.readings_already_stored),
            self.sim.batches,
            g(&s.batches_sent),
            g(&s.batches_resent),
            g(&s.already_stored),
            g(&s.readings_not_sendable),
            g(&s.connects),
            g(&s.connect_failures),
            g(&s.dropped_connections),
            g(&s.error_frames),
            g(&s.reconnects),
            failovers,
            self.seconds
        )
    }
}

struct Pending {
    seq: u64,
    readings: Vec<Reading>,
}

enum SessionEnd {
    /// Nothing left to send for a while: hang up.
    Idle,
    /// The dispatcher is done and everything is acknowledged.
    Finished,
}

#[derive(Debug)]
enum SessionError {
    Retry(String),
    Fatal(String),
}

struct TagTask {
    tag: String,
    secret: String,
    /// The IMEI the tag gives when it speaks Teltonika.
    imei: String,
    device_profile: DeviceProfile,
    queue: VecDeque<Pending>,
    rx: mpsc::UnboundedReceiver<UploadBatch>,
    inbox_closed: bool,
    /// Batches sent on the last connection and not acknowledged when it dropped.
    sent_unacked: u64,
    /// The highest sequence the server said it had stored (a re-run of a simulation against the
    /// same server skips what it already has).
    server_last_seq: u64,
    /// The addresses and which one this tag uses now.
    addresses: Arc<Vec<String>>,
    ring: AddressRing,
    /// Since when (and on which address) this tag has been cut off with batches waiting: set at
    /// the first failure after an acknowledgement, cleared by the next acknowledgement.
    lost: Option<(Instant, usize)>,
    /// The current session has had an acknowledgement (a later failure starts a new round of
    /// addresses rather than continuing the backoff).
    acked_in_session: bool,
}

impl TagTask {
    fn take(&mut self, mut b: UploadBatch, stats: &StreamStats) {
        if self.device_profile == DeviceProfile::Teltonika {
            let mapping = MappingConfig::default();
            let before = b.readings.len();
            b.readings = b
                .readings
                .iter()
                .filter_map(|r| as_reported(r, &mapping))
                .collect();
            let dropped = (before - b.readings.len()) as u64;
            stats
                .readings_not_sendable
                .fetch_add(dropped, Ordering::Relaxed);
            if b.readings.is_empty() {
                stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if b.seq <= self.server_last_seq {
            stats.already_stored.fetch_add(1, Ordering::Relaxed);
            stats
                .readings_already_stored
                .fetch_add(b.readings.len() as u64, Ordering::Relaxed);
            return;
        }
        self.queue.push_back(Pending {
            seq: b.seq,
            readings: b.readings,
        });
    }

    /// Connects to the tag's current address.
    async fn connect(&self, stats: &StreamStats) -> Result<TcpStream, SessionError> {
        let address = &self.addresses[self.ring.current()];
        let socket = TcpStream::connect(address.as_str()).await.map_err(|e| {
            stats.connect_failures.fetch_add(1, Ordering::Relaxed);
            SessionError::Retry(format!("connect {address}: {e}"))
        })?;
        let _ = socket.set_nodelay(true);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        Ok(socket)
    }

    /// Waits for the next batch while the connection idles: `Some(end)` when the session ends.
    async fn idle(&mut self, opts: &StreamOptions, stats: &StreamStats) -> Option<SessionEnd> {
        if self.inbox_closed {
            return Some(SessionEnd::Finished);
        }
        tokio::select! {
            b = self.rx.recv() => match b {
                Some(b) => self.take(b, stats),
                None => self.inbox_closed = true,
            },
            _ = tokio::time::sleep(Duration::from_millis(opts.linger_ms)) => return Some(SessionEnd::Idle),
        }
        None
    }

    /// The front batch is acknowledged: forget it.
    fn front_acknowledged(&mut self, stats: &StreamStats) {
        if let Some(p) = self.queue.pop_front() {
            stats.batches_acked.fetch_add(1, Ordering::Relaxed);
            stats
                .readings_acked
                .fetch_add(p.readings.len() as u64, Ordering::Relaxed);
        }
    }

    /// One Teltonika connection: the IMEI, then each waiting batch as AVL packets (at most 255
    /// records each), one at a time, each acknowledged with its record count. A batch is
    /// forgotten once all its packets are acknowledged; after a drop it is sent whole again (the
    /// server recognises a resent last packet and does not store it twice).
    async fn session_teltonika(
        &mut self,
        opts: &StreamOptions,
        stats: &StreamStats,
    ) -> Result<SessionEnd, SessionError> {
        let socket = self.connect(stats).await?;
        let mut framed = Framed::new(socket, DeviceCodec::default());
        let dropped = |e: String| {
            stats.dropped_connections.fetch_add(1, Ordering::Relaxed);
            SessionError::Retry(e)
        };
        let imei = Imei::from_digits(self.imei.as_bytes())
            .map_err(|e| SessionError::Fatal(format!("{}: {e}", self.tag)))?;
        framed
            .send(&DeviceMessage::Imei(imei))
            .await
            .map_err(|e| dropped(format!("IMEI: {e}")))?;
        match framed.next().await {
            Some(Ok(ServerReply::ImeiAccepted)) => {}
            Some(Ok(ServerReply::ImeiRefused)) => {
                stats.error_frames.fetch_add(1, Ordering::Relaxed);
                return Err(SessionError::Fatal(format!(
                    "{}: the server refused IMEI {} (is it bound to the tag? PUT /v1/devices/teltonika/{})",
                    self.tag, self.imei, self.imei
                )));
            }
            Some(Ok(other)) => {
                return Err(SessionError::Fatal(format!(
                    "expected the handshake answer, got {other:?}"
                )))
            }
            Some(Err(e)) => return Err(dropped(format!("handshake answer: {e}"))),
            None => return Err(dropped("closed before the handshake answer".into())),
        }
        let mapping = MappingConfig::default();
        self.sent_unacked = 0;
        loop {
            let Some(front) = self.queue.front() else {
                match self.idle(opts, stats).await {
                    Some(end) => return Ok(end),
                    None => continue,
                }
            };
            let records: Vec<_> = front
                .readings
                .iter()
                .filter_map(|r| record_of(r, &mapping))
                .collect();
            for chunk in records.chunks(usize::from(u8::MAX)) {
                let packet = AvlPacket {
                    codec: Codec::Codec8,
                    records: chunk.to_vec(),
                };
                framed
                    .send(&DeviceMessage::Avl(packet))
                    .await
                    .map_err(|e| dropped(format!("send AVL packet: {e}")))?;
                stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                self.sent_unacked = 1;
                match framed.next().await {
                    Some(Ok(ServerReply::Ack { records })) if records as usize == chunk.len() => {}
                    Some(Ok(ServerReply::Ack { records })) => {
                        stats.error_frames.fetch_add(1, Ordering::Relaxed);
                        return Err(SessionError::Retry(format!(
                            "{}: the server acknowledged {records} of {} records",
                            self.tag,
                            chunk.len()
                        )));
                    }
                    Some(Ok(other)) => {
                        return Err(SessionError::Fatal(format!(
                            "expected an acknowledgement, got {other:?}"
                        )))
                    }
                    Some(Err(e)) => return Err(dropped(format!("receive: {e}"))),
                    None => return Err(dropped("server closed the connection".into())),
                }
            }
            self.acknowledged(stats);
            self.front_acknowledged(stats);
            self.sent_unacked = 0;
        }
    }

    async fn session(
        &mut self,
        opts: &StreamOptions,
        stats: &StreamStats,
    ) -> Result<SessionEnd, SessionError> {
        if opts.protocol == StreamProtocol::Teltonika {
            return self.session_teltonika(opts, stats).await;
        }
        let socket = self.connect(stats).await?;
        let mut framed = Framed::new(socket, FrameCodec::new());
        let dropped = |e: String| {
            stats.dropped_connections.fetch_add(1, Ordering::Relaxed);
            SessionError::Retry(e)
        };
        framed
            .send(Frame::Hello {
                protocol_version: PROTOCOL_VERSION,
                tag: self.tag.clone(),
                secret: self.secret.clone(),
                epoch: opts.epoch,
            })
            .await
            .map_err(|e| dropped(format!("hello: {e}")))?;
        let last_seq = match framed.next().await {
            Some(Ok(Frame::HelloOk { last_seq })) => last_seq,
            Some(Ok(Frame::Error { code, message })) => {
                return Err(self.error_frame(stats, code, message))
            }
            Some(Ok(other)) => {
                return Err(SessionError::Fatal(format!(
                    "expected hello_ok, got {}",
                    other.frame_type().as_str()
                )))
            }
            Some(Err(e)) => return Err(dropped(format!("hello reply: {e}"))),
            None => return Err(dropped("closed before hello_ok".into())),
        };
        self.server_last_seq = self.server_last_seq.max(last_seq);
        while self.queue.front().is_some_and(|p| p.seq <= last_seq) {
            if let Some(p) = self.queue.pop_front() {
                stats.already_stored.fetch_add(1, Ordering::Relaxed);
                stats
                    .readings_already_stored
                    .fetch_add(p.readings.len() as u64, Ordering::Relaxed);
            }
        }
        let mut in_flight = 0usize;
        self.sent_unacked = 0;
        loop {
            while in_flight < opts.window.max(1) && in_flight < self.queue.len() {
                let p = &self.queue[in_flight];
                framed
                    .send(Frame::Batch {
                        seq: p.seq,
                        readings: p.readings.clone(),
                    })
                    .await
                    .map_err(|e| dropped(format!("send batch {}: {e}", p.seq)))?;
                stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                in_flight += 1;
                self.sent_unacked = in_flight as u64;
            }
            if in_flight == 0 {
                match self.idle(opts, stats).await {
                    Some(end) => return Ok(end),
                    None => continue,
                }
            }
            tokio::select! {
                frame = framed.next() => match frame {
                    Some(Ok(Frame::Ack { seq })) => {
                        self.acknowledged(stats);
                        while self.queue.front().is_some_and(|p| p.seq <= seq) {
                            self.front_acknowledged(stats);
                            in_flight = in_flight.saturating_sub(1);
                        }
                        self.sent_unacked = in_flight as u64;
                    }
                    Some(Ok(Frame::Error { code, message })) => return Err(self.error_frame(stats, code, message)),
                    Some(Ok(other)) => return Err(SessionError::Fatal(format!("unexpected {} frame from the server", other.frame_type().as_str()))),
                    Some(Err(e)) => return Err(dropped(format!("receive: {e}"))),
                    None => return Err(dropped("server closed the connection".into())),
                },
                b = self.rx.recv(), if !self.inbox_closed => match b {
                    Some(b) => self.take(b, stats),
                    None => self.inbox_closed = true,
                },
            }
        }
    }

    /// An acknowledgement arrived: if the tag had lost its connection with batches waiting and
    /// this is another address, that failover is over.
    fn acknowledged(&mut self, stats: &StreamStats) {
        self.acked_in_session = true;
        if let Some((since, address)) = self.lost.take() {
            if address != self.ring.current() {
                stats.note_failover(since.elapsed().as_millis() as u64);
            }
        }
    }

    fn error_frame(&self, stats: &StreamStats, code: ErrorCode, message: String) -> SessionError {
        stats.error_frames.fetch_add(1, Ordering::Relaxed);
        let text = format!("{}: server error {}: {message}", self.tag, code.as_str());
        if code.is_retryable() {
            SessionError::Retry(text)
        } else {
            SessionError::Fatal(text)
        }
    }

    async fn run(
        mut self,
        opts: Arc<StreamOptions>,
        stats: Arc<StreamStats>,
        slots: Arc<Semaphore>,
        seed: u64,
        idx: usize,
    ) -> Option<String> {
        let mut rng = Rng::derive(seed, &[0x57AE, idx as u64]);
        let mut backoff_ms = 250u64;
        // Failures in a row since the last session that ended well.
        let mut failures = 0usize;
        loop {
            // Wait until there is something to send (or nothing will ever come).
            if self.queue.is_empty() {
                match self.rx.recv().await {
                    Some(b) => self.take(b, &stats),
                    None => return None,
                }
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return Some("connection slots closed".into());
            };
            if failures > 0 {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            self.acked_in_session = false;
            let outcome = self.session(&opts, &stats).await;
            drop(permit);
            match outcome {
                Ok(SessionEnd::Idle) => {
                    backoff_ms = 250;
                    failures = 0;
                }
                Ok(SessionEnd::Finished) => return None,
                Err(SessionError::Retry(problem)) => {
                    stats.note(&problem);
                    stats
                        .batches_resent
                        .fetch_add(self.sent_unacked, Ordering::Relaxed);
                    self.sent_unacked = 0;
                    if self.acked_in_session {
                        failures = 0;
                        backoff_ms = 250;
                    }
                    if self.lost.is_none() && !self.queue.is_empty() {
                        self.lost = Some((Instant::now(), self.ring.current()));
                    }
                    failures += 1;
                    self.ring.advance();
                    // Another address not yet tried since the last good session: go there at
                    // once (a little jitter so a dead node's tags do not arrive together);
                    // every address failed: back off before the next round.
                    let wait = if failures < self.ring.count() {
                        rng.int(0, 100) as u64
                    } else {
                        let wait = backoff_ms + rng.int(0, backoff_ms as i64 / 2) as u64;
                        backoff_ms = (backoff_ms * 2).min(10_000);
                        wait
                    };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(SessionError::Fatal(e)) => {
                    stats.failed_tags.fetch_add(1, Ordering::Relaxed);
                    stats
                        .unacked
                        .fetch_add(self.queue.len() as u64, Ordering::Relaxed);
                    return Some(e);
                }
            }
        }
    }
}

/// Simulates and streams; returns when every batch is acknowledged (or the drain timeout passes).
pub fn stream(
    gen: &GenerateOptions,
    opts: &StreamOptions,
    side_dir: Option<&std::path::Path>,
) -> Result<StreamReport, StreamError> {
    let started = Instant::now();
    let addresses = Arc::new(parse_addresses(&opts.connect)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(StreamError::Runtime)?;
    let stats = Arc::new(StreamStats::default());
    let opts_arc = Arc::new(opts.clone());
    let slots = Arc::new(Semaphore::new(opts.connections.max(1)));
    // Per-tag inboxes and tasks.
    let mut inboxes = Vec::with_capacity(gen.tags);
    let mut handles = Vec::with_capacity(gen.tags);
    // Tag numbers tags..2*tags are replacement tags (most never used: their tasks just wait).
    for idx in 0..2 * gen.tags {
        let (tx, rx) = mpsc::unbounded_channel();
        inboxes.push(tx);
        let tag = tag_id(idx);
        let task = TagTask {
            secret: tag_secret(&opts.key, &tag),
            imei: imei_of_tag(&tag),
            device_profile: match opts.protocol {
                StreamProtocol::Teltonika => DeviceProfile::Teltonika,
                StreamProtocol::Native => opts.device_profile,
            },
            tag,
            queue: VecDeque::new(),
            rx,
            inbox_closed: false,
            sent_unacked: 0,
            server_last_seq: 0,
            ring: AddressRing::start(idx, addresses.len()),
            addresses: addresses.clone(),
            lost: None,
            acked_in_session: false,
        };
        handles.push(rt.spawn(task.run(
            opts_arc.clone(),
            stats.clone(),
            slots.clone(),
            gen.seed,
            idx,
        )));
    }
    // The simulation thread feeds a bounded channel of hour chunks (it runs ahead by at most two).
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Vec<UploadBatch>>(2);
    let gen_clone = gen.clone();
    let side = side_dir.map(|p| p.to_path_buf());
    let sim = std::thread::spawn(move || {
        let mut emit = |items: Vec<UploadBatch>| {
            chunk_tx
                .blocking_send(items)
                .map_err(|_| SimError::Option("streaming stopped".into()))
        };
        simulate(&gen_clone, side.as_deref(), &mut emit)
    });
    let speed = opts.speed;
    let start_ms = gen.start_ms;
    let progress_s = opts.progress_s;
    let drain = Duration::from_millis(opts.drain_timeout_ms);
    let stats_p = stats.clone();
    let failures: Vec<Option<String>> = rt.block_on(async move {
        let wall0 = tokio::time::Instant::now();
        let mut last_progress = Instant::now();
        while let Some(items) = chunk_rx.recv().await {
            for b in items {
                if speed > 0.0 {
                    let due = wall0
                        + Duration::from_secs_f64(
                            ((b.upload_ms - start_ms).max(0) as f64 / 1000.0) / speed,
                        );
                    tokio::time::sleep_until(due).await;
                }
                let idx = b.tag_no as usize;
                let _ = inboxes[idx].send(b);
                if progress_s > 0 && last_progress.elapsed().as_secs() >= progress_s {
                    last_progress = Instant::now();
                    eprintln!(
                        "tagsim stream: {} batches acknowledged, {} connections, {} dropped",
                        stats_p.batches_acked.load(Ordering::Relaxed),
                        stats_p.connects.load(Ordering::Relaxed),
                        stats_p.dropped_connections.load(Ordering::Relaxed)
                    );
                }
            }
        }
        drop(inboxes);
        // Everything is handed out: wait for the acknowledgements, at most the drain timeout.
        let deadline = tokio::time::Instant::now() + drain;
        let mut out = Vec::new();
        for h in handles {
            let abort = h.abort_handle();
            match tokio::time::timeout_at(deadline, h).await {
                Ok(r) => out.push(r.unwrap_or_else(|e| Some(format!("tag task failed: {e}")))),
                Err(_) => {
                    abort.abort();
                    out.push(None);
                }
            }
        }
        out
    });
    let sim_report = sim
        .join()
        .map_err(|_| SimError::Option("the simulation thread panicked".into()))??;
    let failed: Vec<&String> = failures.iter().flatten().collect();
    let report = StreamReport {
        sim: sim_report,
        stats,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(last) = failed.last() {
        return Err(StreamError::TagsFailed {
            failed_tags: failed.len() as u64,
            last_error: (*last).clone(),
        });
    }
    let acked = report.stats.batches_acked.load(Ordering::Relaxed)
        + report.stats.already_stored.load(Ordering::Relaxed);
    if acked < report.sim.batches {
        return Err(StreamError::Unacked {
            unacked: report.sim.batches - acked,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_start_spread_over_the_addresses_and_rotate_through_all_of_them() {
        // Tag i starts on address i mod N.
        let starts: Vec<usize> = (0..7).map(|i| AddressRing::start(i, 3).current()).collect();
        assert_eq!(starts, vec![0, 1, 2, 0, 1, 2, 0]);
        // Each failure moves to the next address, wrapping: N failures visit every address
        // once and come back to the first.
        let mut ring = AddressRing::start(4, 3);
        let visited: Vec<usize> = (0..4).map(|_| ring.advance()).collect();
        assert_eq!(visited, vec![2, 0, 1, 2]);
        // One address: a failure stays there (a restart of a single server).
        let mut single = AddressRing::start(5, 1);
        assert_eq!(
            (single.current(), single.advance(), single.advance()),
            (0, 0, 0)
        );
        // No addresses is treated as one rather than dividing by zero.
        assert_eq!(AddressRing::start(3, 0).count(), 1);
    }

    #[test]
    fn connect_lists_are_split_on_commas_and_empty_entries_refused() {
        assert_eq!(
            parse_addresses("127.0.0.1:7700").unwrap(),
            vec!["127.0.0.1:7700"]
        );
        assert_eq!(
            parse_addresses("a:1, b:2,c:3").unwrap(),
            vec!["a:1", "b:2", "c:3"]
        );
        for bad in ["", "a:1,", "a:1,,b:2", " , "] {
            assert!(parse_addresses(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn failover_summary_gives_count_median_and_max() {
        let stats = StreamStats::default();
        assert_eq!(stats.failover_summary(), None);
        for ms in [400, 100, 300, 200] {
            stats.note_failover(ms);
        }
        assert_eq!(stats.failover_summary(), Some((4, 200, 400)));
    }
}
