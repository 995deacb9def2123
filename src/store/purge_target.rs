//! The interface retention drives to purge a store it does not know by name: a store holding
//! data keyed by activation implements [`PurgeTarget`], and the purge job
//! (`crate::retention::purge::Purger`) is handed the targets. The trait lives with the stores, not
//! with retention, so that a store never imports the job that drives it (retention → store).

/// The error a [`PurgeTarget`] reports: its own typed error, boxed.
pub type TargetError = Box<dyn std::error::Error + Send + Sync>;

/// A store holding data keyed by activation that retention must purge too — the hook for stores
/// added later (e.g. crime hits). The purge job calls every target for every activation it
/// purges, after the log and the built-in stores and before the activation's metadata is
/// deleted; an error stops the run before anything is recorded, and the next run repeats it.
pub trait PurgeTarget: Send + Sync {
    /// Key of this target's count in the purge report (e.g. `crime_hits`).
    fn name(&self) -> &'static str;
    /// Deletes, durably, everything held for `activation`; returns how many items were deleted.
    /// Must be idempotent: a run interrupted by a crash is repeated in full.
    fn purge_activation(&self, activation: &str) -> Result<u64, TargetError>;
    /// Drops whatever the target holds as a copy of every activation's data (a snapshot of all
    /// the stores), before any purge that removes anything, a person alone included; returns how
    /// many copies were dropped. Most targets hold none.
    fn discard_copies(&self) -> Result<u64, TargetError> {
        Ok(0)
    }
}
