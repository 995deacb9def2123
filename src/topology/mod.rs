//! The topology: the one assembly of the stages between the log and the views, and the joints
//! between them. [`Topology`] (in `assembly`) opens the data directory, brings every view up to
//! the log at start ([`startup`]) and starts the live stages: the committer's groups go to the
//! [`forwarder`], which hands them to the control applier and the pipeline; the pipeline's
//! dispatcher resolves each reading's activation once and hands the stores their share (the TAC
//! index, the [`trail_feed`] and, after it, the hit matcher), the partitions' rule outputs go
//! to the alert book. [`shutdown`] stops it all in that order, by one owner. The joints: how an API write becomes a control record and is answered once
//! applied ([`control_gate`]); the views that follow control records in log order (metadata
//! people/activations/orders and change history, the shared activation directory:
//! [`control_view`]; the alert and hit stores, which follow the hub's decisions:
//! [`decision_view`]); a change made while no server runs ([`offline_change`]); the stores set
//! aside for `tagstream rebuild` ([`rebuild`]). The pipeline itself is built by [`inline`], the
//! same way for the server's start-up and for `tagstream replay`. `server` wires the sockets,
//! HTTP and the API's purge job around a started topology.

mod assembly;
pub mod checkpoint;
pub mod control_gate;
pub mod control_view;
pub mod decision_view;
pub mod forwarder;
pub mod inline;
pub mod log_source;
pub mod offline_change;
pub mod outputs_link;
pub mod partition_share;
pub mod purge_follow;
pub mod rebuild;
pub mod shutdown;
pub mod snapshot_follower;
pub mod snapshot_join;
pub mod startup;
pub mod trail_feed;

pub use assembly::{Mode, Packed, Start, Started, Topology};
pub use shutdown::{Shutdown, Stopped};
