//! The outputs a monitoring centre acts on, each a group of alert types (`curfew`, `device
//! health`, …), and reports pooled over several populations: what the quality targets of
//! `docs/quality.md` are stated in. A rare type (an HMU moved, an alcohol removal) has too few
//! items in any population to say much alone; its group has enough.

use super::{BurdenRow, ScoreReport, ScoreRow, ALERT_TYPES};

/// Each group's name and the report rows (`type` or `type [confirmed]`) it adds up.
pub const OUTPUT_GROUPS: [(&str, &[&str]); 6] = [
    ("curfew", &["curfew_violation"]),
    (
        "zone entries [confirmed]",
        &[
            "exclusion_zone_entry [confirmed]",
            "inclusion_zone_exit [confirmed]",
        ],
    ),
    (
        "zone entries [all]",
        &["exclusion_zone_entry", "inclusion_zone_exit"],
    ),
    (
        "device health, no contact, tamper",
        &[
            "strap_tamper",
            "battery_low",
            "battery_dead",
            "hmu_power_loss",
            "hmu_moved",
            "device_fault",
            "no_contact",
            "alcohol_obstruction",
            "alcohol_removal",
        ],
    ),
    ("drinking", &["drinking_event"]),
    ("environmental alcohol", &["environmental_alcohol"]),
];

impl ScoreReport {
    /// One row per [`OUTPUT_GROUPS`] entry (rows the report lacks count as empty), then the
    /// hits rows as they are.
    pub fn grouped(&self) -> Vec<ScoreRow> {
        let mut out: Vec<ScoreRow> = OUTPUT_GROUPS
            .iter()
            .map(|(name, keys)| {
                let mut g = ScoreRow {
                    key: name.to_string(),
                    ..Default::default()
                };
                for r in self.rows.iter().filter(|r| keys.contains(&r.key.as_str())) {
                    g.add(r);
                }
                g.finish()
            })
            .collect();
        out.extend(self.hits.iter().cloned());
        out.extend(self.hits_certain.iter().cloned());
        out
    }

    /// The reports of several populations as one: every row's counts summed by key (in the
    /// order first met), ratios recomputed, and the burden over the summed person-days when
    /// every report has one.
    pub fn pooled(reports: &[ScoreReport]) -> ScoreReport {
        let mut out = ScoreReport {
            tolerance_ms: reports.first().map_or(0, |r| r.tolerance_ms),
            rules: reports.first().map(|r| r.rules.clone()).unwrap_or_default(),
            ..Default::default()
        };
        let sum_into =
            |rows: &mut Vec<ScoreRow>, r: &ScoreRow| match rows.iter_mut().find(|x| x.key == r.key)
            {
                Some(x) => x.add(r),
                None => {
                    let mut x = ScoreRow {
                        key: r.key.clone(),
                        ..Default::default()
                    };
                    x.add(r);
                    rows.push(x);
                }
            };
        let (mut hits, mut certain) = (Vec::new(), Vec::new());
        for report in reports {
            for r in &report.rows {
                sum_into(&mut out.rows, r);
            }
            if let Some(h) = &report.hits {
                sum_into(&mut hits, h);
            }
            if let Some(h) = &report.hits_certain {
                sum_into(&mut certain, h);
            }
            out.skipped_records += report.skipped_records;
        }
        // The order a single report has: types, curfew codes, confirmed rows, the total.
        let place = |key: &str| {
            let kind = key.split([' ', '/']).next().unwrap_or(key);
            let section = if key == "all alerts" {
                3
            } else if key.ends_with("[confirmed]") {
                2
            } else if key.contains('/') {
                1
            } else {
                0
            };
            let index = ALERT_TYPES
                .iter()
                .position(|t| *t == kind)
                .unwrap_or(usize::MAX);
            (section, index, key.to_string())
        };
        out.rows.sort_by_cached_key(|r| place(&r.key));
        out.rows = out.rows.into_iter().map(ScoreRow::finish).collect();
        out.hits = hits.pop().map(ScoreRow::finish);
        out.hits_certain = certain.pop().map(ScoreRow::finish);
        let days: Option<Vec<f64>> = reports
            .iter()
            .map(|r| r.burden.as_ref().map(|b| b.person_days))
            .collect();
        match days {
            Some(days) if !reports.is_empty() => out.with_burden(days.iter().sum()),
            _ => out,
        }
    }

    /// The burden of each group (its types' false alerts), the possible zone entries apart,
    /// then the hits rows as they are.
    pub fn grouped_burden(&self) -> Vec<BurdenRow> {
        let Some(b) = &self.burden else {
            return Vec::new();
        };
        let row = |key: &str, false_alerts: usize| BurdenRow {
            key: key.to_string(),
            false_alerts,
            per_100_person_days: if b.person_days > 0.0 {
                false_alerts as f64 * 100.0 / b.person_days
            } else {
                0.0
            },
        };
        let false_in = |keys: &[&str]| -> usize {
            b.rows
                .iter()
                .filter(|r| keys.contains(&r.key.as_str()))
                .map(|r| r.false_alerts)
                .sum()
        };
        let mut out = Vec::new();
        let mut confirmed_zone = 0;
        for (name, keys) in OUTPUT_GROUPS {
            let n = false_in(keys);
            out.push(row(name, n));
            match name {
                "zone entries [confirmed]" => confirmed_zone = n,
                "zone entries [all]" => out.push(row(
                    "zone entries [possible]",
                    n.saturating_sub(confirmed_zone),
                )),
                _ => {}
            }
        }
        out.extend(b.rows.iter().filter(|r| r.key.starts_with("hits")).cloned());
        out
    }
}
