//! Process metrics that are not owned by one stage: where live latency goes.

pub mod stage_latency;
