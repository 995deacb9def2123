//! The sections that moved into `config/` keep their TOML keys and defaults.

use super::ServerConfig;
use crate::crime::PoliceCsvRules;

#[test]
fn the_moved_sections_parse_under_their_keys() {
    let config: ServerConfig = toml::from_str(
        "[trail_api]\nmax_period_days = 7\n\
         [crime_api]\nmax_window_h = 6\nmax_rows_per_batch = 10\n\
         [crime_api.force_limits.Metropolitan]\nmax_radius_m = 250.0\n\
         [console]\ntile_url = \"https://tiles.example/{z}/{x}/{y}.png\"\n\
         [retention]\ndays_after_end = 30\nallow_now_override = true\n",
    )
    .expect("a valid config");
    assert_eq!(config.trail_api.max_period_days, 7);
    assert_eq!(config.trail_api.page_positions, 20_000);
    assert_eq!(config.crime_api.max_window_h, 6);
    assert_eq!(config.crime_api.max_rows_for("Metropolitan"), 10);
    assert_eq!(config.crime_api.max_radius_for("Metropolitan"), 250.0);
    assert_eq!(config.crime_api.max_radius_for("Kent"), 500.0);
    assert_eq!(
        config.console.tile_url.as_deref(),
        Some("https://tiles.example/{z}/{x}/{y}.png")
    );
    assert_eq!(config.retention.days_after_end, 30);
    assert_eq!(config.retention.run_every_hours, 24);
    assert!(config.retention.allow_now_override);
    // The crime parser's window comes from the section.
    assert_eq!(
        PoliceCsvRules::from(&config.crime_api).max_window_ms,
        6 * 3_600_000
    );
}

#[test]
fn the_moved_sections_keep_their_defaults_and_refuse_unknown_keys() {
    let config = ServerConfig::default();
    assert_eq!(config.trail_api.max_period_days, 31);
    let c = &config.crime_api;
    assert_eq!(
        (
            c.max_upload_bytes,
            c.max_window_h,
            c.police_trail_margin_min
        ),
        (64 << 20, 12, 30)
    );
    assert_eq!((c.max_rows_per_batch, c.bulk_pending_hits), (50_000, 100));
    assert_eq!(c.max_radius_m, 500.0);
    assert!(config.console.dir.is_none() && config.console.tile_url.is_none());
    let r = config.retention;
    assert_eq!(
        (r.days_after_end, r.run_every_hours, r.allow_now_override),
        (2192, 24, false)
    );
    assert_eq!(PoliceCsvRules::default().max_window_ms, 12 * 3_600_000);
    for section in ["trail_api", "crime_api", "console", "retention"] {
        let text = format!("[{section}]\nno_such_key = 1\n");
        assert!(
            toml::from_str::<ServerConfig>(&text).is_err(),
            "[{section}] accepted an unknown key"
        );
    }
}
