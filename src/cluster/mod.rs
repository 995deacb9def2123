//! Cluster mode (issue 15, in progress): the durable log on NATS JetStream instead of the
//! embedded segment log. What is here: the stable partition of a tag ([`partition`]), the
//! subjects a tag id is safely encoded into ([`subject`]), and the log's append and ordered read
//! over a JetStream stream with de-duplication and checksummed frames ([`jetstream`]), which
//! `topology::log_source` runs a node on; and singleton duties held by one node through a lease
//! on a key-value bucket, with their shared progress ([`lease`]); the snapshot bucket nodes join
//! from ([`snapshot_store`]). Not yet: partition ownership (`docs/cluster.md`).

pub mod jetstream;
pub mod lease;
pub mod outputs;
/// A tag's stable partition lives in `model` (the pipeline's clock partitions use it too).
pub mod partition {
    pub use crate::model::tag_partition::partition_of;
}
pub mod snapshot_store;
pub mod subject;
