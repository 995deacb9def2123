//! Process metrics that are not owned by one stage: where live latency goes, and the Prometheus
//! text format `/metrics` is written in.

pub mod exposition;
pub mod stage_latency;
