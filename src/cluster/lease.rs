//! Singleton duties of a cluster (webhook delivery today; the retention schedule once the
//! stream can be purged) held by one node at a time through a lease on a JetStream key-value
//! bucket, `<stream>_LEASES` (history 1, entries expire after the lease's TTL), and the shared
//! progress of such a duty (`<stream>_DELIVERY`: where webhook delivery got to, so the next
//! holder resumes there).
//!
//! A node takes a duty's lease by creating its key (refused while the key exists) with its node
//! id as the value, and renews it every TTL/3 with an update conditional on the revision it
//! last wrote. A renewal refused (someone else wrote the key: it holds the lease) or no
//! successful renewal for TTL − margin by this node's own clock means the lease is lost: the
//! duty stops at once. A dead holder stops renewing, its key expires (the bucket's `max_age`),
//! and a survivor, trying to create the key every TTL/3, takes over within about TTL + TTL/3.
//! Two holders for a moment are possible (a holder cut off from NATS learns it lost the lease
//! only by its own clock) and tolerated by the duties (webhooks are at least once).

use async_nats::jetstream::{self, kv};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The default lease TTL.
pub const DEFAULT_TTL_MS: u64 = 3_000;
/// How long a progress read or write may take before it counts as failed.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong with a lease bucket or the shared progress.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("opening key-value bucket {bucket}: {message}")]
    Bucket { bucket: String, message: String },
    #[error("lease TTL {ttl_ms} ms is too short (at least 300 ms)")]
    TtlTooShort { ttl_ms: u64 },
    #[error("reading {key} from bucket {bucket}: {message}")]
    Read {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("writing {key} to bucket {bucket}: {message}")]
    Write {
        bucket: String,
        key: String,
        message: String,
    },
}

/// Whether this process holds each duty's lease now (for `/metrics`).
static HELD: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());

fn note_held(duty: &str, held: bool) {
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(duty.to_string(), held);
}

/// Writes one gauge per duty this process competes for: 1 while it holds the lease.
pub fn write_metrics(e: &mut crate::metrics::exposition::Exposition) {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (duty, held) in held {
        e.gauge(
            &format!("tagstream_lease_{duty}_held"),
            &format!("1 while this node holds the cluster's {duty} lease (it does that duty)."),
            if held { 1.0 } else { 0.0 },
        );
    }
}

/// This node's name: the configured one, or `<hostname>-<pid>`.
pub fn node_id(configured: Option<&str>) -> String {
    if let Some(id) = configured.filter(|id| !id.trim().is_empty()) {
        return id.to_string();
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`, which we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let host = if ok {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "host".to_string()
    };
    format!("{host}-{}", std::process::id())
}

/// The lease bucket of a stream, and this node's name in it.
#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
    bucket: String,
    node: String,
    ttl: Duration,
}

impl Leases {
    /// Opens (creating if needed) `<stream>_LEASES` with `replicas` copies; entries expire after
    /// `ttl`.
    pub async fn open(
        js: &jetstream::Context,
        stream: &str,
        replicas: usize,
        ttl: Duration,
        node: String,
    ) -> Result<Self, LeaseError> {
        if ttl < Duration::from_millis(300) {
            return Err(LeaseError::TtlTooShort {
                ttl_ms: ttl.as_millis() as u64,
            });
        }
        let bucket = format!("{stream}_LEASES");
        let about = "tagstream: which node holds each singleton duty";
        let kv = open_bucket(js, &bucket, about, ttl, replicas).await?;
        Ok(Self {
            kv,
            bucket,
            node,
            ttl,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// How long a lease (or a membership key) lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The bucket itself (membership keys live beside the leases: `super::membership`).
    pub fn store(&self) -> kv::Store {
        self.kv.clone()
    }

    /// Competes for `duty`'s lease (a task on the current runtime) until `release` is
    /// cancelled (the node is stopping): the receiver says whether this node holds it now. On
    /// release a lease held is given up at once (its key deleted), so a survivor takes over
    /// within TTL/3 instead of waiting for the key to expire.
    pub fn hold(
        &self,
        duty: &str,
        release: tokio_util::sync::CancellationToken,
    ) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        note_held(duty, false);
        tokio::spawn(compete(self.clone(), duty.to_string(), tx, release));
        rx
    }
}

/// Opens (creating or updating) key-value bucket `bucket`, one value per key, entries expiring
/// after `max_age` (zero: never), with `replicas` copies.
async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, LeaseError> {
    js.create_or_update_key_value(kv::Config {
        bucket: bucket.to_string(),
        description: description.to_string(),
        history: 1,
        max_age,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| LeaseError::Bucket {
        bucket: bucket.to_string(),
        message: e.to_string(),
    })
}

/// A holder that has not renewed for `ttl − margin` counts its lease as lost: the margin
/// covers clock drift and the time between the server's renewal and our request.
fn lost_after(ttl: Duration) -> Duration {
    ttl - ttl / 6
}

async fn compete(
    leases: Leases,
    duty: String,
    held_tx: watch::Sender<bool>,
    release: tokio_util::sync::CancellationToken,
) {
    let period = leases.ttl / 3;
    let value = bytes::Bytes::from(leases.node.clone().into_bytes());
    // (revision we last wrote, when the request that wrote it was sent).
    let mut held: Option<(u64, Instant)> = None;
    let mut warned = false;
    let set = |now_held: bool, why: &str| {
        held_tx.send_replace(now_held);
        note_held(&duty, now_held);
        if now_held {
            tracing::info!(duty = %duty, node = %leases.node, "lease acquired");
        } else {
            tracing::warn!(duty = %duty, node = %leases.node, why, "lease lost");
        }
    };
    loop {
        let tick = Instant::now();
        match held {
            None => match leases.kv.create(&duty, value.clone()).await {
                Ok(revision) => {
                    held = Some((revision, tick));
                    warned = false;
                    set(true, "");
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => warned = false,
                Err(e) => {
                    // Once per run of failures: NATS may be down for a while.
                    if !warned {
                        tracing::warn!(duty = %duty, error = %e, "cannot try for the lease; trying again");
                        warned = true;
                    }
                }
            },
            Some((revision, since)) => {
                let deadline = since + lost_after(leases.ttl);
                let left = deadline.saturating_duration_since(tick);
                let renewed =
                    tokio::time::timeout(left, leases.kv.update(&duty, value.clone(), revision))
                        .await;
                match renewed {
                    Ok(Ok(revision)) => held = Some((revision, tick)),
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        held = None;
                        set(false, "another node holds it");
                    }
                    Ok(Err(e)) if Instant::now() >= deadline => {
                        held = None;
                        set(false, &format!("not renewed in time: {e}"));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(duty = %duty, error = %e, "renewing the lease failed; trying again")
                    }
                    Err(_) => {
                        held = None;
                        set(false, "not renewed in time");
                    }
                }
            }
        }
        // Sleep to the next attempt, but wake at the deadline of a lease held: it is given up
        // then, renewal or not.
        let mut next = tick + period;
        if let Some((_, since)) = held {
            next = next.min(since + lost_after(leases.ttl));
        }
        let released = tokio::select! {
            _ = release.cancelled() => true,
            _ = tokio::time::sleep_until(next.into()) => false,
        };
        if released {
            if let Some((revision, _)) = held {
                // The duty stops first; only then may another node start it.
                set(false, "released: this node is stopping");
                // Only our own key: if another node wrote it meanwhile, theirs stays.
                if let Err(e) = leases
                    .kv
                    .delete_expect_revision(&duty, Some(revision))
                    .await
                {
                    tracing::warn!(duty = %duty, error = %e, "could not give the lease up; it expires within its TTL");
                }
            }
            return;
        }
        if let Some((_, since)) = held {
            if Instant::now() >= since + lost_after(leases.ttl) {
                held = None;
                set(false, "not renewed in time");
            }
        }
        if held_tx.is_closed() {
            return;
        }
    }
}

/// Shared progress of a duty (`<stream>_DELIVERY`): one value per name, for the next holder.
/// Blocking calls, for the duty's own threads, through `runtime`.
#[derive(Clone)]
pub struct SharedProgress {
    kv: kv::Store,
    bucket: String,
    runtime: tokio::runtime::Handle,
}

impl SharedProgress {
    /// Opens (creating if needed) `<stream>_DELIVERY` with `replicas` copies.
    pub async fn open(
        js: &jetstream::Context,
        stream: &str,
        replicas: usize,
    ) -> Result<Self, LeaseError> {
        let bucket = format!("{stream}_DELIVERY");
        let about = "tagstream: where each webhook endpoint's delivery got to";
        // Progress never expires (zero: no maximum age).
        let kv = open_bucket(js, &bucket, about, Duration::ZERO, replicas).await?;
        Ok(Self {
            kv,
            bucket,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The value stored for `name` (`None`: none yet). Blocks; not on a runtime thread.
    pub fn load_blocking(&self, name: &str) -> Result<Option<Vec<u8>>, LeaseError> {
        let key = progress_key(name);
        let err = |message: String| LeaseError::Read {
            bucket: self.bucket.clone(),
            key: key.clone(),
            message,
        };
        // The timer is made inside the runtime (this thread is not one of its own).
        let got = self
            .runtime
            .block_on(async { tokio::time::timeout(PROGRESS_TIMEOUT, self.kv.get(&key)).await })
            .map_err(|_| err("timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        Ok(got.map(|b| b.to_vec()))
    }

    /// Stores `value` for `name`. Blocks; not on a runtime thread.
    pub fn save_blocking(&self, name: &str, value: Vec<u8>) -> Result<(), LeaseError> {
        let key = progress_key(name);
        let err = |message: String| LeaseError::Write {
            bucket: self.bucket.clone(),
            key: key.clone(),
            message,
        };
        self.runtime
            .block_on(async {
                tokio::time::timeout(PROGRESS_TIMEOUT, self.kv.put(&key, value.into())).await
            })
            .map_err(|_| err("timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    }
}

/// A valid key-value key for any name (a webhook URL holds `:`, `/`, `?`…): `h` and the name's
/// bytes in hex, one spelling per name.
pub fn progress_key(name: &str) -> String {
    format!("h{}", hex::encode(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_keys_are_valid_and_distinct() {
        let a = progress_key("http://127.0.0.1:9000/hook?x=1");
        let b = progress_key("http://127.0.0.1:9000/hook?x=2");
        assert_ne!(a, b);
        for key in [a, b] {
            assert!(key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=/.".contains(c)));
            assert!(!key.starts_with('.') && !key.ends_with('.'));
        }
    }

    #[test]
    fn a_holder_gives_up_before_its_key_expires() {
        let ttl = Duration::from_millis(DEFAULT_TTL_MS);
        assert!(lost_after(ttl) < ttl);
        // Renewals every TTL/3 leave two chances before the holder gives up.
        assert!(lost_after(ttl) > 2 * (ttl / 3));
    }

    #[test]
    fn the_configured_node_id_wins_and_the_default_names_the_process() {
        assert_eq!(node_id(Some("node-a")), "node-a");
        let default = node_id(None);
        assert!(default.ends_with(&format!("-{}", std::process::id())));
        assert_eq!(node_id(Some("  ")), default);
    }
}
