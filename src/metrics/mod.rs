//! Process metrics that are not owned by one stage: where live latency goes, the Prometheus
//! text format `/metrics` is written in, and the ingest-silence watchdog (system alerts).

pub mod exposition;
pub mod silence_watch;
pub mod stage_latency;
