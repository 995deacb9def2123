//! Process metrics that are not owned by one stage: where live latency goes, and the
//! ingest-silence watchdog (system alerts).

pub mod silence_watch;
pub mod stage_latency;
