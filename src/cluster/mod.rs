//! Cluster mode (issue 15, in progress): the durable log on NATS JetStream instead of the
//! embedded segment log. What is here: the stable partition of a tag ([`partition`]), the
//! subjects a tag id is safely encoded into ([`subject`]), and the log's append and ordered read
//! over a JetStream stream with de-duplication and checksummed frames ([`jetstream`]). Not yet
//! here: the topology reading its committed groups from the stream, snapshots, leases, and
//! partition ownership (`docs/cluster.md`).

pub mod jetstream;
pub mod partition;
pub mod subject;
