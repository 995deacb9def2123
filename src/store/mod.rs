//! Stores and state beside the alert service: the crime store, the TAC index, each activation's
//! last contact, the trail store,
//! the metadata database; paced write-back beside the log; the node checkpoint's file; `PurgeTarget`, the interface that retention drives.

pub mod checkpoint_file;
pub mod crime_store;
pub mod decision_mark;
pub mod last_contact;
pub mod metadata;
pub mod purge_target;
pub mod sqlite_schema;
pub mod tac_book;
pub mod trails;
pub mod write_back;

pub use purge_target::{PurgeTarget, TargetError};
