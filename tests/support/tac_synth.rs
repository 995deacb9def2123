//! A synthetic wearer of an alcohol bracelet: a TAC, IR and temperature reading every 30
//! minutes at the device's resolution (0.001 g/dL, 1 mV), sober with sensor noise, with the
//! days the plan names drunk on (an evening of drinking wearing off by the next morning),
//! obstructed (IR up by 0.7 V from 10:00 to 14:00), not worn (no reading) or worn half the day
//! (no reading after 10:00). Shared by `tests/reports.rs` and `benches/documents.rs`.
#![allow(dead_code)]

use tagstream::model::{Reading, ReadingBody, TacSample, TimeMs};

pub const STEP_MS: TimeMs = 30 * 60_000;

/// Which days (counted from 0) are what.
#[derive(Clone, Debug, Default)]
pub struct TacPlan {
    pub days: usize,
    pub drinking: Vec<usize>,
    pub obstructed: Vec<usize>,
    pub not_worn: Vec<usize>,
    pub half_worn: Vec<usize>,
}

impl TacPlan {
    /// `days` days with a drinking evening every `drink_every` days, an obstruction every
    /// `obstruct_every`, and no gaps.
    pub fn periodic(days: usize, drink_every: usize, obstruct_every: usize) -> TacPlan {
        TacPlan {
            days,
            drinking: (3..days).step_by(drink_every).collect(),
            obstructed: (10..days).step_by(obstruct_every).collect(),
            ..TacPlan::default()
        }
    }
}

/// Deterministic pseudo-random numbers in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The plan's readings from `t0_ms` (a UTC midnight that is also UK midnight: winter).
pub fn tac_stream(t0_ms: TimeMs, plan: &TacPlan) -> Vec<Reading> {
    let mut rng = Lcg(7);
    let mut out = Vec::with_capacity(plan.days * 48);
    for i in 0..plan.days * 48 {
        let day = i / 48;
        let half_hour = (i % 48) as f64 / 2.0;
        let (mut tac, mut ir) = (rng.next() * 0.004, 1.0 + (rng.next() - 0.5) * 0.1);
        let temp = 33.0 + (rng.next() - 0.5) * 2.0;
        if plan.not_worn.contains(&day) || (plan.half_worn.contains(&day) && half_hour >= 10.0) {
            continue;
        }
        if plan.drinking.contains(&day) && half_hour >= 20.0 {
            tac += 0.08 * ((half_hour - 20.0) / 2.0).min(1.0);
        }
        if day > 0 && plan.drinking.contains(&(day - 1)) && half_hour < 8.0 {
            tac += 0.08 * (1.0 - half_hour / 8.0);
        }
        if plan.obstructed.contains(&day) && (10.0..14.0).contains(&half_hour) {
            ir += 0.7;
        }
        out.push(Reading {
            t_ms: t0_ms + i as i64 * STEP_MS,
            battery_pct: None,
            body: ReadingBody::Tac(TacSample {
                tac_ugdl: (tac * 1e3).round() as i32 * 1000,
                ir_uv: (ir * 1e3).round() as i32 * 1000,
                temp_mc: (temp * 1e3).round() as i32,
            }),
        });
    }
    out
}
