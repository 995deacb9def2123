//! tagstream: the telemetry processor behind electronic monitoring of offenders' ankle tags.
//!
//! Data flows one way: `wire` (codecs) → `ingest` (listener, connections) → `log` (durable,
//! group-committed) → `pipeline` (per-activation partitions, reorder by event time) → `rules`
//! (health, curfew, zones, hits, alcohol) → sinks (alert store, trails, hits, sober days) → `api`.
//! `replay` runs the same pipeline over a recorded file. `docs/architecture.md` draws the topology
//! and says which module may import which (`tests/architecture.rs` enforces it).

pub mod alerts;
pub mod api;
pub mod cluster;
pub mod config;
pub mod console;
pub mod crime;
pub mod data_dir;
pub mod data_lock;
pub mod delivery;
pub mod devices;
pub mod documents;
pub mod formats;
pub mod ingest;
pub mod inspect;
pub mod log;
pub mod metrics;
pub mod model;
pub mod orders;
pub mod pipeline;
pub mod replay;
pub mod retention;
pub mod rules;
pub mod score;
pub mod server;
pub mod store;
pub mod tls;
pub mod topology;
pub mod trail;
pub mod varint;
pub mod wire;
