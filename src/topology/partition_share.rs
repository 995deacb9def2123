//! Cluster mode with `own_partitions = "auto"`: this node's share of the partitions, taken by
//! membership at start (`cluster::membership`) and watched while serving. When the members
//! change so that the share does (a node died, left or joined), the watcher asks the server to
//! restart: the server stops in order and the process starts again in place, reading the
//! stream for its new share (its outputs past what the outputs stream holds are published; none
//! twice). Its membership key is kept across that restart, so the others see no departure.

use crate::cluster::membership::{share, Membership};
use crate::config::ServerConfig;
use crate::model::tag_partition::PartitionSet;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// This node's membership and the share it serves with.
pub struct TakenShare {
    membership: Membership,
    pub share: PartitionSet,
    /// Cancelled on an orderly stop (not a restart): the key is then deleted.
    leave: CancellationToken,
}

static OWNED: AtomicU64 = AtomicU64::new(0);
static MEMBERS: AtomicU64 = AtomicU64::new(0);
static SHARE_CHANGES: AtomicU64 = AtomicU64::new(0);

/// The share's gauges in the exposition format.
pub fn write_metrics(e: &mut crate::metrics::exposition::Exposition) {
    e.gauge(
        "tagstream_owned_partitions",
        "Partitions whose rules this node runs (own_partitions = \"auto\": its share).",
        OWNED.load(Ordering::Relaxed) as f64,
    );
    e.gauge(
        "tagstream_processing_members",
        "Processing nodes alive when this node last looked (own_partitions = \"auto\").",
        MEMBERS.load(Ordering::Relaxed) as f64,
    );
    e.counter(
        "tagstream_partition_share_changes_total",
        "Times the members changed this node's share (each a restart).",
        SHARE_CHANGES.load(Ordering::Relaxed),
    );
}

/// Takes this node's share: announces it is alive, waits one lease TTL for the others' keys
/// (a node just started, or a dead one's expiring), and writes the share into `config`'s
/// `own_partitions` for the topology.
pub async fn take(config: &mut ServerConfig) -> Result<TakenShare> {
    let js = config
        .jetstream()
        .context("own_partitions = \"auto\" needs the log on a stream")?
        .clone();
    let stream = crate::cluster::jetstream::JetStreamLog::open(js.clone())
        .await
        .context("opening the stream to take a share of the partitions")?;
    let node = crate::cluster::lease::node_id(js.node_id.as_deref());
    let ttl = Duration::from_millis(js.lease_ttl_ms);
    let leases =
        crate::cluster::lease::Leases::open(stream.context(), &js.stream, js.replicas, ttl, node)
            .await
            .context("opening the lease bucket for this node's membership")?;
    let membership = Membership::of(&leases);
    membership
        .announce()
        .await
        .context("announcing this node to the processing nodes")?;
    let leave = CancellationToken::new();
    membership.spawn_keep(leave.clone());
    tokio::time::sleep(ttl).await;
    let members = membership
        .members()
        .await
        .context("listing the processing nodes")?;
    let share = share(js.partitions, &members, membership.node());
    tracing::info!(node = membership.node(), ?members, share = %share.describe(), "took a share of the partitions");
    OWNED.store(share.members().count() as u64, Ordering::Relaxed);
    MEMBERS.store(members.len() as u64, Ordering::Relaxed);
    if let Some(js) = config.log.jetstream.as_mut() {
        js.own_partitions = Some(share.describe());
    }
    Ok(TakenShare {
        membership,
        share,
        leave,
    })
}

impl TakenShare {
    /// Watches the members every TTL/2; when the share they give differs from this node's on
    /// two looks in a row (a restart of another node that keeps its key is not a change),
    /// notifies `restart`.
    pub fn watch(&self, restart: Arc<Notify>) {
        let (membership, mine) = (self.membership.clone(), self.share.clone());
        tokio::spawn(async move {
            let mut differing = 0;
            loop {
                tokio::time::sleep(membership.ttl() / 2).await;
                let members = match membership.members().await {
                    Ok(members) => members,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the processing nodes; looking again");
                        continue;
                    }
                };
                MEMBERS.store(members.len() as u64, Ordering::Relaxed);
                let now = share(mine.count(), &members, membership.node());
                differing = if now == mine { 0 } else { differing + 1 };
                if differing >= 2 {
                    tracing::info!(?members, from = %mine.describe(), to = %now.describe(), "the processing nodes changed this node's share: restarting for it");
                    SHARE_CHANGES.fetch_add(1, Ordering::Relaxed);
                    restart.notify_one();
                    return;
                }
            }
        });
    }

    /// An orderly stop: this node's key is deleted so the others take its partitions now.
    pub async fn leave(self) {
        self.leave.cancel();
        if let Err(e) = self.membership.remove().await {
            tracing::warn!(error = %e, "could not remove this node's membership; it expires within its TTL");
        }
    }
}
