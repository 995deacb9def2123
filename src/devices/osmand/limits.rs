//! The bounds a request must keep to. docs/devices.md says why each default is what it is.

use crate::model::TimeMs;

/// Request limits. The listener may take them from configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest query string (after the `?`): 8 KiB, what common HTTP servers allow a request line.
    pub max_query_bytes: usize,
    /// Largest body: 64 KiB, about 150 JSON locations as the Traccar Client sends them.
    pub max_body_bytes: usize,
    /// Most query and form parameters together: 64 (the Traccar Client sends about 10).
    pub max_params: usize,
    /// Longest device id: 64 characters (the Traccar Client's default id has 6–8 digits, IMEIs 15).
    pub max_device_id_chars: usize,
    /// Deepest JSON nesting: 16 (the Traccar Client's body nests 3 deep).
    pub max_json_depth: usize,
    /// Most locations in one JSON body: 100.
    pub max_locations: usize,
    /// Earliest time accepted: 2000-01-01T00:00:00Z (a clock that has not been set).
    pub min_t_ms: TimeMs,
    /// Latest time accepted: 2100-01-01T00:00:00Z. How far ahead of the server's clock a reading
    /// may be is the pipeline's business (it has the clock); this only refuses nonsense.
    pub max_t_ms: TimeMs,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_query_bytes: 8 * 1024,
            max_body_bytes: 64 * 1024,
            max_params: 64,
            max_device_id_chars: 64,
            max_json_depth: 16,
            max_locations: 100,
            min_t_ms: 946_684_800_000,
            max_t_ms: 4_102_444_800_000,
        }
    }
}
