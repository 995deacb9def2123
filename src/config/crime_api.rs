//! `[crime_api]`: limits of police crime uploads and of what police may see. Plain data; the
//! crime parser's rules are derived from it in `crate::crime` (`PoliceCsvRules::from`), and the
//! API's crime routes read it from their state.

use serde::{Deserialize, Serialize};

/// Limits of crime uploads and of police disclosure (`[crime_api]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrimeApiConfig {
    /// Largest batch file accepted.
    pub max_upload_bytes: usize,
    /// The longest crime window a batch may carry (domain page: 12 hours).
    pub max_window_h: i64,
    /// Police see a hit's trail for the crime window plus this margin either side.
    pub police_trail_margin_min: i64,
    /// Most rows one batch may hold (a larger one is refused with 413), unless the force has its
    /// own limit in `force_limits`.
    pub max_rows_per_batch: usize,
    /// Largest vicinity radius a batch may ask for (400 above it), unless the force has its own.
    pub max_radius_m: f64,
    /// A batch whose crimes have more pending hits than this after matching is flagged `bulk`
    /// for the hub (a sign of a fishing upload, or of a radius too wide): the hub decides before
    /// reviewing them one by one. Police never see the flag or the count.
    pub bulk_pending_hits: u64,
    /// Per-force overrides of the row and radius limits, by force identifier
    /// (`[crime_api.force_limits.Metropolitan]`).
    pub force_limits: std::collections::BTreeMap<String, ForceLimits>,
}

/// One force's own upload limits (absent = the `[crime_api]` defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForceLimits {
    pub max_rows_per_batch: Option<usize>,
    pub max_radius_m: Option<f64>,
}

impl Default for CrimeApiConfig {
    fn default() -> Self {
        CrimeApiConfig {
            max_upload_bytes: 64 << 20,
            max_window_h: 12,
            police_trail_margin_min: 30,
            max_rows_per_batch: 50_000,
            max_radius_m: 500.0,
            bulk_pending_hits: 100,
            force_limits: Default::default(),
        }
    }
}

impl CrimeApiConfig {
    /// The row limit of `force`'s batches.
    pub fn max_rows_for(&self, force: &str) -> usize {
        self.force_limits
            .get(force)
            .and_then(|l| l.max_rows_per_batch)
            .unwrap_or(self.max_rows_per_batch)
    }

    /// The radius limit of `force`'s batches.
    pub fn max_radius_for(&self, force: &str) -> f64 {
        self.force_limits
            .get(force)
            .and_then(|l| l.max_radius_m)
            .unwrap_or(self.max_radius_m)
    }
}
