//! tagsim: the tag simulator of tagstream. It stands in for the monitoring hardware: a population
//! of monitored people with orders, tags that measure and upload like real ones, police crime
//! batches, and a ground-truth file that says what really happened, so alerts and hits can be
//! scored. See `sim` for the run, `population`/`plan`/`movement` for people and their days,
//! `gps`/`rf`/`battery`/`tag` for the devices, `behaviour` for violation rates, `crimes` and
//! `truth` for the other outputs.

pub mod area;
pub mod basemap;
pub mod battery;
pub mod behaviour;
pub mod bng;
pub mod clock;
pub mod crimes;
pub mod geo;
pub mod gps;
pub mod movement;
pub mod orders;
pub mod output;
pub mod plan;
pub mod population;
pub mod rf;
pub mod rng;
pub mod sim;
pub mod stream;
pub mod streets;
pub mod tag;
pub mod teltonika;
pub mod truth;
