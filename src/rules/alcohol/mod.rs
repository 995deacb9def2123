//! Alcohol monitoring (AAMR / AML): transdermal alcohol (TAC) readings from SCRAM-type ankle
//! bracelets turned into confirmed drinking events, environmental exposures, sensor tamper
//! (obstruction, removal) and the sober-day record of each alcohol order.
//!
//! The pieces, in the order a reading meets them:
//! - [`smoothing`]: spike filter and median of three (one reading of delay), then the centred
//!   moving mean the rates are judged on;
//! - [`baseline`]: the wearer's TAC and IR baselines (running medians);
//! - [`excursion`]: onset / peak / return segmentation and the drinking decision;
//! - [`tamper`]: obstruction and removal from IR voltage and skin temperature;
//! - [`analyzer`]: the above as one cloneable state, producing [`Finding`]s;
//! - [`rule`]: [`AlcoholRule`], the per-activation [`crate::pipeline::Rule`]: alerts, late-data
//!   re-analysis, settling days;
//! - [`sober_days`]: day classification and the sober-day rate;
//! - [`chart`]: an SVG chart of a period.
//!
//! Every parameter is in [`AlcoholConfig`]; every output names [`ALCOHOL_RULE_VERSION`] and the
//! configuration fingerprint. The algorithm and the reasons for each default: `docs/alcohol.md`.

pub mod analyzer;
pub mod baseline;
pub mod chart;
pub mod config;
pub mod excursion;
pub mod rule;
pub mod smoothing;
pub mod sober_days;
pub mod tamper;

pub use analyzer::{Finding, FindingKind, TacAnalyzer};
pub use chart::tac_chart_svg;
pub use config::{AlcoholConfig, AlcoholConfigError, Thresholds, ALCOHOL_RULE_VERSION};
pub use rule::AlcoholRule;
pub use smoothing::TacPoint;
pub use sober_days::{sober_day_rate, sober_day_rates_by_order, RateSummary};
