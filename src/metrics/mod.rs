//! Process metrics that are not owned by one stage: where live latency goes, the Prometheus
//! text format `/metrics` is written in, the pipeline's clock gauges, and the ingest-silence
//! watchdog (system alerts).

pub mod exposition;
pub mod pipeline_gauges;
pub mod silence_watch;
pub mod stage_latency;
