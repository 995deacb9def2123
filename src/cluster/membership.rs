//! Which processing nodes are alive, and which partitions each owns (`[log.jetstream]
//! own_partitions = "auto"`).
//!
//! Each such node keeps a key `member.<node>` in the lease bucket (`<stream>_LEASES`, entries
//! expiring after the lease TTL), rewritten every TTL/3: a dead node's key expires within the
//! TTL. The partitions are shared by rendezvous hashing ([`share`]): partition p goes to the
//! member with the highest xxh3 of `p/<node>`. Every node computes the same shares from the same
//! member list, and a member arriving or leaving moves only the partitions it takes or gives
//! up. A node whose share changes restarts (the server's business), reading the stream for its
//! new share; its key outlives the restart (same node id, rewritten by the new process), so the
//! others see no departure.

use super::lease::LeaseError;
use crate::model::tag_partition::PartitionSet;
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::time::Duration;
use xxhash_rust::xxh3::xxh3_64;

const PREFIX: &str = "member.";

/// This node's membership of the processing nodes.
#[derive(Clone)]
pub struct Membership {
    kv: kv::Store,
    node: String,
    ttl: Duration,
}

impl Membership {
    /// Membership kept in the lease bucket `leases` opened, under its node id and TTL.
    pub fn of(leases: &super::lease::Leases) -> Self {
        Self {
            kv: leases.store(),
            node: leases.node().to_string(),
            ttl: leases.ttl(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self) -> String {
        format!("{PREFIX}{}", self.node)
    }

    /// Writes this node's key now (it is alive).
    pub async fn announce(&self) -> Result<(), LeaseError> {
        self.kv
            .put(self.key(), self.node.clone().into_bytes().into())
            .await
            .map(drop)
            .map_err(|e| LeaseError::Bucket {
                bucket: "member".into(),
                message: e.to_string(),
            })
    }

    /// Keeps this node's key alive every TTL/3 until `stop` (an orderly stop; [`Self::remove`]
    /// then deletes it). A restart does not stop it: the process is replaced, and the new one
    /// writes the key again within the TTL.
    pub fn spawn_keep(&self, stop: tokio_util::sync::CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.announce().await {
                    tracing::warn!(error = %e, "cannot renew this node's membership; trying again");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(this.ttl / 3) => {}
                }
            }
        });
    }

    /// Deletes this node's key (an orderly stop: the others take its partitions at once).
    pub async fn remove(&self) -> Result<(), LeaseError> {
        self.kv
            .delete(self.key())
            .await
            .map_err(|e| LeaseError::Bucket {
                bucket: "member".into(),
                message: e.to_string(),
            })
    }

    /// The live members' node ids, sorted.
    pub async fn members(&self) -> Result<Vec<String>, LeaseError> {
        let err = |e: &dyn std::fmt::Display| LeaseError::Bucket {
            bucket: "member".into(),
            message: e.to_string(),
        };
        let mut keys = self.kv.keys().await.map_err(|e| err(&e))?;
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| err(&e))?;
            if let Some(node) = key.strip_prefix(PREFIX) {
                members.push(node.to_string());
            }
        }
        members.sort();
        Ok(members)
    }
}

/// The partitions (of `partitions`) that `node` owns among `members`, by rendezvous hashing.
pub fn share(partitions: u32, members: &[String], node: &str) -> PartitionSet {
    PartitionSet::of(
        partitions,
        (0..partitions).filter(|p| {
            members
                .iter()
                .max_by_key(|m| (xxh3_64(format!("{p}/{m}").as_bytes()), m.as_str()))
                .is_some_and(|owner| owner == node)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn every_partition_has_one_owner_and_a_departure_moves_only_its_partitions() {
        let three = names(3);
        let shares: Vec<Vec<u32>> = three
            .iter()
            .map(|m| share(64, &three, m).members().collect())
            .collect();
        let mut all: Vec<u32> = shares.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..64).collect::<Vec<_>>(), "each partition once");
        assert!(
            shares.iter().all(|s| (10..=35).contains(&s.len())),
            "{shares:?}"
        );
        // node-2 leaves: node-0 and node-1 keep what they had and split node-2's.
        let two = names(2);
        for (i, m) in two.iter().enumerate() {
            let after = share(64, &two, m);
            assert!(
                shares[i].iter().all(|p| after.contains(*p)),
                "{m} lost a partition"
            );
        }
        assert_eq!(share(64, &two, "node-2").describe(), "none");
    }
}
