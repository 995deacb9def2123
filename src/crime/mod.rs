//! Crime matching: police crime batches in, hits out. `matcher` runs the hit rule
//! ([`crate::rules::hits`]) over trails both ways (new crimes against stored trails, new positions
//! against indexed crimes).

pub mod matcher;
pub mod service;
