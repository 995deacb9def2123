//! Cluster mode (issue 15, in progress): the durable log on NATS JetStream instead of the
//! embedded segment log. What is here: the stable partition of a tag ([`partition`]), the
//! subjects a tag id is safely encoded into ([`subject`]), and the log's append and ordered read
//! over a JetStream stream with de-duplication and checksummed frames ([`jetstream`]), which
//! `topology::log_source` runs a node on. Not yet: snapshots, leases, partition ownership,
//! purging the stream (`docs/cluster.md`).

pub mod jetstream;
pub mod partition;
pub mod subject;
