//! Tag battery: drain, daily charging at home, low and dead thresholds.
//!
//! A GPS tag drains about 1.8–2.6% an hour (a fix a minute; 38–55 hours from full) and is charged
//! once a day at home in the evening (about 50% an hour while the wearer stays in); RF and alcohol
//! tags drain slowly and
//! are not charged within a run. The battery-death behaviour makes a wearer skip charging for two
//! evenings: the tag reports `battery_low` at 20% (AL21) and `battery_dead` at 0% (AL23), then
//! measures and uploads nothing until it is put on charge (`charging`), which ends both truth items.

use crate::population::DeviceKind;
use crate::rng::Rng;
use chrono::NaiveDate;
use tagstream::model::{DeviceEvent, TimeMs};

const LOW_PCT: f64 = 20.0;
const CHARGE_PCT_PER_MIN: f64 = 50.0 / 60.0;

/// A finished or opened battery truth item.
pub struct BatteryTruth {
    pub kind: &'static str,
    pub code: &'static str,
    pub start_ms: TimeMs,
    pub end_ms: Option<TimeMs>,
    pub behaviour: &'static str,
}

/// What one minute of battery life produced (buffers reused from minute to minute).
#[derive(Default)]
pub struct BatteryStep {
    pub events: Vec<DeviceEvent>,
    pub truth: Vec<BatteryTruth>,
}

impl BatteryStep {
    pub fn clear(&mut self) {
        self.events.clear();
        self.truth.clear();
    }
}

/// Battery state of one tag.
#[derive(Clone, Debug)]
pub struct Battery {
    level_pct: f64,
    drain_pct_per_min: f64,
    chargeable: bool,
    charging: bool,
    dead: bool,
    charged_on: Option<NaiveDate>,
    skip_until_ms: TimeMs,
    low_since: Option<TimeMs>,
    dead_since: Option<TimeMs>,
    /// Why the current low/dead episode happened.
    why: &'static str,
}

impl Battery {
    pub fn new(rng: &mut Rng, kind: DeviceKind) -> Self {
        let (drain_h, chargeable, start) = match kind {
            DeviceKind::Gps => (rng.range(1.8, 2.6), true, rng.range(60.0, 100.0)),
            DeviceKind::Rf => (0.02, false, rng.range(70.0, 100.0)),
            DeviceKind::Alcohol => (0.02, false, rng.range(80.0, 100.0)),
        };
        Battery {
            level_pct: start,
            drain_pct_per_min: drain_h / 60.0,
            chargeable,
            charging: false,
            dead: false,
            charged_on: None,
            skip_until_ms: i64::MIN,
            low_since: None,
            dead_since: None,
            why: "missed_charge",
        }
    }

    pub fn pct(&self) -> u8 {
        self.level_pct.round().clamp(0.0, 100.0) as u8
    }
    pub fn dead(&self) -> bool {
        self.dead
    }
    /// The wearer will not charge before `t_ms`.
    pub fn skip_charging_until(&mut self, t_ms: TimeMs) {
        self.skip_until_ms = self.skip_until_ms.max(t_ms);
    }

    /// Advances `dt_min` minutes to `t_ms`. `local_min` is the local minute of day and `today` the
    /// local date (both only meaningful when `at_home`).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        out: &mut BatteryStep,
        t_ms: TimeMs,
        dt_min: f64,
        at_home: bool,
        local_min: i64,
        charge_min: i64,
        today: NaiveDate,
    ) {
        out.clear();
        let skipping = t_ms < self.skip_until_ms;
        if self.chargeable && !self.charging && at_home && !skipping {
            let evening = local_min >= charge_min || local_min < 120;
            let charge_day = if local_min < 120 {
                today - chrono::Duration::days(1)
            } else {
                today
            };
            let due = evening && self.charged_on != Some(charge_day);
            if due || self.level_pct < 30.0 || self.dead {
                self.charging = true;
                self.charged_on = Some(charge_day);
                self.dead = false;
                out.events.push(DeviceEvent::Charging);
                for (since, kind, code) in [
                    (self.low_since.take(), "battery_low", "AL21"),
                    (self.dead_since.take(), "battery_dead", "AL23"),
                ] {
                    if let Some(s) = since {
                        out.truth.push(BatteryTruth {
                            kind,
                            code,
                            start_ms: s,
                            end_ms: Some(t_ms),
                            behaviour: self.why,
                        });
                    }
                }
            }
        }
        if self.charging {
            if !at_home {
                self.charging = false;
            } else {
                self.level_pct = (self.level_pct + CHARGE_PCT_PER_MIN * dt_min).min(100.0);
                if self.level_pct >= 100.0 {
                    self.charging = false;
                }
            }
            return;
        }
        if self.dead {
            return;
        }
        let before = self.level_pct;
        self.level_pct = (self.level_pct - self.drain_pct_per_min * dt_min).max(0.0);
        if before > LOW_PCT && self.level_pct <= LOW_PCT {
            out.events.push(DeviceEvent::BatteryLow);
            self.low_since = Some(t_ms);
            self.why = if skipping {
                "skipped_charging"
            } else {
                "missed_charge"
            };
        }
        if self.level_pct <= 0.0 {
            self.dead = true;
            out.events.push(DeviceEvent::BatteryDead);
            self.dead_since = Some(t_ms);
        }
    }

    /// Truth items still open at the end of a run (low or dead, not yet charged).
    pub fn open_truth(&self) -> Vec<BatteryTruth> {
        let mut v = Vec::new();
        if let Some(s) = self.low_since {
            v.push(BatteryTruth {
                kind: "battery_low",
                code: "AL21",
                start_ms: s,
                end_ms: None,
                behaviour: self.why,
            });
        }
        if let Some(s) = self.dead_since {
            v.push(BatteryTruth {
                kind: "battery_dead",
                code: "AL23",
                start_ms: s,
                end_ms: None,
                behaviour: self.why,
            });
        }
        v
    }
}
