//! One simulated tag over time: follows its wearer's planned trajectory minute by minute and
//! produces what the hardware would — GPS or fallback fixes (`gps`), home-unit presence (`rf`),
//! transdermal alcohol readings, device events, battery (`battery`) — stores them, and uploads
//! them in numbered batches every ~10 minutes when it has signal (immediately after an alarm
//! event), holding them through signal losses and flat batteries (store and forward).
//!
//! Device-level truth (tamper, battery, home unit, faults, signal loss, alcohol episodes, GPS
//! outliers) is recorded here as it happens; movement truth comes from `truth` per cycle.
//! A tag also keeps a 48-hour minute-by-minute ring of true positions for crime placement, and
//! beside it the fixes it reported that could make a hit certain (hit truth's `confirmable`).

use crate::area::Area;
use crate::battery::{Battery, BatteryStep};
use crate::behaviour::{DrinkingEpisode, Rates};
use crate::clock::{
    local_date, local_minutes, local_to_utc_ms, london_offset_ms, DAY_MS, HOUR_MS, MINUTE_MS,
};
use crate::geo::Xy;
use crate::gps::{GpsModel, GpsOutcome};
use crate::plan::{plan_cycle, Plan, PlanContext, Where};
use crate::population::{DeviceKind, PlaceKind, Profile};
use crate::rf::Hmu;
use crate::rng::{stream, Rng};
use crate::truth::{
    curfew_truth, zone_truth, TruthItem, ZONE_CONFIRM_MAX_PRECISION_M, ZONE_CONFIRM_SPAN_MS,
};
use chrono::NaiveDate;
use std::collections::VecDeque;
use tagstream::model::{
    DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample, TimeMs,
};

/// Minutes of true positions kept for crime placement.
pub const RING_MIN: usize = 48 * 60;
/// Silences this close to the no-contact threshold are truth items that do not count.
const NO_CONTACT_MARGIN_MS: i64 = 5 * MINUTE_MS;
/// A `fix_ring` slot without a fix that could confirm a hit.
const NO_FIX: [i16; 3] = [i16::MIN; 3];
/// How much of an IR obstruction (or a removal) must fall inside the run for the readings to show
/// it: the alcohol rule waits for a sustained run (2 h and 4 readings, 1 h and 3 for a removal,
/// `docs/alcohol.md` §5) because real bracelets jump that far for one or two readings, plus one
/// 30-minute reading interval and the 5-minute tick a reading waits for. One that starts within
/// that of the run's end is not judged (seed 33's A118: an obstruction 56 minutes before the
/// end, two readings).
const OBSTRUCTION_SEEN_MS: i64 = 160 * MINUTE_MS;
/// See [`OBSTRUCTION_SEEN_MS`].
const REMOVAL_SEEN_MS: i64 = 100 * MINUTE_MS;
/// Largest batch a tag uploads.
pub const MAX_BATCH: usize = 256;

/// A batch as uploaded: which tag, its sequence number, when it reached the server.
#[derive(Clone, Debug)]
pub struct UploadBatch {
    /// Tag number: the index of the tag id (`population::tag_id`); the person's index, or
    /// `tags + index` for a replacement tag.
    pub tag_no: u32,
    pub seq: u64,
    pub upload_ms: TimeMs,
    pub readings: Vec<Reading>,
}

/// Run-wide inputs.
pub struct RunContext<'a> {
    pub area: &'a Area,
    /// Number of people (replacement tags are numbered from here).
    pub tags: usize,
    pub rates: &'a Rates,
    pub seed: u64,
    pub start_ms: TimeMs,
    pub end_ms: TimeMs,
}

/// An alcohol-sensor episode that is not drinking.
#[derive(Clone, Copy, Debug)]
struct SensorEpisode {
    t0_ms: TimeMs,
    t1_ms: TimeMs,
    ir_shift_v: f64,
}

/// A zone item kept until it is over, while the fixes taken during it show whether the readings
/// can confirm it.
struct ZoneWatch {
    item: TruthItem,
    /// Index into the person's zones.
    zone: usize,
    /// The first fix that could confirm the breach, and whether a later one completes it.
    first_confirming_ms: Option<TimeMs>,
    confirmable: bool,
}

impl ZoneWatch {
    fn into_item(mut self) -> TruthItem {
        self.item.confirmable = Some(self.confirmable);
        self.item
    }
}

/// The state of one tag.
pub struct TagSim {
    pub idx: usize,
    /// The tag currently worn (see [`UploadBatch::tag_no`]).
    tag_no: u32,
    /// When the tag is replaced, if it is.
    swap_ms: Option<TimeMs>,
    rng: Rng,
    plans: VecDeque<Plan>,
    next_date: NaiveDate,
    next_start: (Option<usize>, Xy),
    next_start_ms: TimeMs,
    first_cycle: bool,
    next_tick_ms: TimeMs,
    /// Tick interval: a minute for GPS tags (a fix a minute), 2 minutes for RF tags (presence
    /// changes are reported within that), 5 minutes for alcohol tags (readings keep their own
    /// schedule times).
    step_ms: i64,
    phase_ms: i64,
    /// Cached local day number (days since the epoch in local time) and its date.
    local_day: (i64, NaiveDate),
    gps: GpsModel,
    battery: Battery,
    bstep: BatteryStep,
    losses: Vec<(TimeMs, TimeMs)>,
    hmu_off: Vec<(TimeMs, TimeMs)>,
    events: Vec<(TimeMs, DeviceEvent)>,
    hmu: Hmu,
    tac_next_ms: TimeMs,
    tac_fit_ms: TimeMs,
    drinks: Vec<DrinkingEpisode>,
    obstructions: Vec<SensorEpisode>,
    removals: Vec<SensorEpisode>,
    env_spikes: Vec<TimeMs>,
    /// Drinking events still in the body: kept here, not in `truth`, until they end, because a
    /// new episode while one is in the body extends it and a tag swap splits it.
    open_drinking: Vec<TruthItem>,
    /// Zone items not over yet (see [`ZoneWatch`]).
    open_zones: Vec<ZoneWatch>,
    ir_base_v: f64,
    temp_base_c: f64,
    pending: Vec<Reading>,
    tick_buf: Vec<Reading>,
    seq: u64,
    last_upload_ms: Option<TimeMs>,
    next_upload_ms: TimeMs,
    urgent: bool,
    /// True positions per minute (x, y as f32; NaN when not recording).
    ring: Vec<[f32; 2]>,
    /// Per-hour bounding boxes of `ring` (min x, min y, max x, max y).
    hour_bbox: Vec<[f32; 4]>,
    ring_hour: i64,
    /// Per minute slot of `ring`, the fix the tag reported then if it was precise enough to lie
    /// wholly inside a crime's vicinity and not a simulated outlier: its offset from the true
    /// position and its reported precision, in cm ([`NO_FIX`] otherwise). Offsets keep a slot
    /// at 6 bytes (a non-outlier GPS error is metres, far inside ±327 m).
    fix_ring: Vec<[i16; 3]>,
    pub truth: Vec<TruthItem>,
}

fn in_any(iv: &[(TimeMs, TimeMs)], t: TimeMs) -> bool {
    iv.iter().any(|&(a, b)| t >= a && t < b)
}

impl TagSim {
    pub fn new(p: &Profile, ctx: &RunContext) -> Self {
        let mut rng = Rng::derive(ctx.seed, &[stream::TAG, p.idx as u64]);
        let phase_ms = rng.int(0, 59) * 1000;
        let from = p.activation.from.max(ctx.start_ms);
        // First tick on the tag's minute grid at or after activation.
        let k = (from - ctx.start_ms - phase_ms + MINUTE_MS - 1).div_euclid(MINUTE_MS);
        let first_tick = ctx.start_ms + phase_ms + k * MINUTE_MS;
        let date = local_date(from);
        let noon = local_to_utc_ms(date, 12 * 60);
        let start_date = if from < noon {
            date - chrono::Duration::days(1)
        } else {
            date
        };
        let gps = GpsModel::new(&mut rng);
        let battery = Battery::new(&mut rng, p.device);
        let ir_base_v = rng.range(0.8, 1.5);
        let temp_base_c = rng.range(31.0, 34.0);
        let mut sim = TagSim {
            idx: p.idx,
            tag_no: p.idx as u32,
            swap_ms: p.replacement.as_ref().map(|r| r.from),
            plans: VecDeque::new(),
            next_date: start_date,
            next_start: (Some(0), p.home()),
            next_start_ms: if from > ctx.start_ms {
                from
            } else {
                local_to_utc_ms(start_date, 12 * 60)
            },
            first_cycle: from <= ctx.start_ms,
            next_tick_ms: first_tick,
            step_ms: match p.device {
                DeviceKind::Gps => MINUTE_MS,
                DeviceKind::Rf => 2 * MINUTE_MS,
                DeviceKind::Alcohol => 5 * MINUTE_MS,
            },
            phase_ms,
            local_day: (i64::MIN, NaiveDate::default()),
            gps,
            battery,
            bstep: BatteryStep::default(),
            losses: Vec::new(),
            hmu_off: Vec::new(),
            events: Vec::new(),
            hmu: Hmu::default(),
            tac_next_ms: first_tick,
            tac_fit_ms: first_tick,
            drinks: Vec::new(),
            obstructions: Vec::new(),
            removals: Vec::new(),
            env_spikes: Vec::new(),
            open_drinking: Vec::new(),
            open_zones: Vec::new(),
            ir_base_v,
            temp_base_c,
            pending: Vec::new(),
            tick_buf: Vec::new(),
            seq: 0,
            last_upload_ms: None,
            next_upload_ms: first_tick + rng.int(1, 10) * MINUTE_MS,
            urgent: false,
            ring: if p.device == DeviceKind::Gps {
                vec![[f32::NAN; 2]; RING_MIN]
            } else {
                Vec::new()
            },
            hour_bbox: if p.device == DeviceKind::Gps {
                vec![[f32::NAN; 4]; RING_MIN / 60]
            } else {
                Vec::new()
            },
            ring_hour: -1,
            fix_ring: if p.device == DeviceKind::Gps {
                vec![NO_FIX; RING_MIN]
            } else {
                Vec::new()
            },
            truth: Vec::new(),
            rng,
        };
        sim.events.push((first_tick, DeviceEvent::Fitted));
        sim
    }

    /// Simulates every minute tick before `until_ms`, appending sealed batches to `out`.
    pub fn advance(
        &mut self,
        p: &Profile,
        ctx: &RunContext,
        until_ms: TimeMs,
        out: &mut Vec<UploadBatch>,
    ) {
        while self.next_tick_ms < until_ms {
            let t = self.next_tick_ms;
            self.tick(p, ctx, t, out);
            self.next_tick_ms += self.step_ms;
        }
    }

    /// Uploads whatever is still stored at the end of the run.
    pub fn finish(&mut self, p: &Profile, ctx: &RunContext, out: &mut Vec<UploadBatch>) {
        self.truth.append(&mut self.open_drinking);
        self.truth
            .extend(self.open_zones.drain(..).map(ZoneWatch::into_item));
        for item in self.battery.open_truth() {
            let mut it = TruthItem::about(p, item.kind, item.start_ms, item.end_ms);
            it.code = Some(item.code.to_string());
            it.behaviour = Some(item.behaviour.to_string());
            self.truth.push(it);
        }
        let t = ctx.end_ms + self.phase_ms;
        // Silent at the end (a flat battery): contact is still lost when the run ends.
        let threshold = ctx.rates.no_contact_after_min as i64 * MINUTE_MS;
        if let Some(last) = self.last_upload_ms.filter(|last| {
            self.pending.is_empty() && ctx.end_ms - last > threshold - NO_CONTACT_MARGIN_MS
        }) {
            let why = if self.battery.dead() {
                "battery_dead"
            } else {
                "nothing_to_send"
            };
            let mut it = TruthItem::about(p, "no_contact", last, None).with_behaviour(why);
            it.detectable = ctx.end_ms - last > threshold + NO_CONTACT_MARGIN_MS;
            self.truth.push(it);
        }
        self.seal(p, ctx, t, out);
    }

    fn plan_at(&mut self, p: &Profile, ctx: &RunContext, t: TimeMs) {
        while self.plans.back().is_none_or(|pl| pl.end_ms <= t) {
            let allow = !self.first_cycle;
            self.first_cycle = false;
            let pctx = PlanContext {
                rates: ctx.rates,
                violations_until_ms: ctx.end_ms,
            };
            let plan = plan_cycle(
                p,
                &pctx,
                &mut self.rng,
                self.next_date,
                self.next_start,
                self.next_start_ms,
                allow,
            );
            self.next_start = plan.end_place();
            self.next_start_ms = plan.end_ms;
            self.next_date = plan.date + chrono::Duration::days(1);
            let windows = p.rules.windows_starting(plan.date);
            let mut curfew_items = Vec::new();
            curfew_truth(p, &plan, &windows, &mut curfew_items);
            let mut zone_items = Vec::new();
            zone_truth(p, &plan, &mut zone_items);
            for item in zone_items {
                match p
                    .rules
                    .zones
                    .iter()
                    .position(|z| item.zone.as_ref() == Some(&z.id))
                {
                    Some(zone) => self.open_zones.push(ZoneWatch {
                        item,
                        zone,
                        first_confirming_ms: None,
                        confirmable: false,
                    }),
                    None => self.truth.push(item),
                }
            }
            self.schedule_devices(p, ctx, &plan);
            // Decided within this cycle, so judged against this cycle's power cuts.
            if p.device == DeviceKind::Rf {
                self.mark_unseen_while_unit_off(p, &mut curfew_items);
            }
            self.truth.extend(curfew_items);
            self.plans.push_back(plan);
        }
        while self.plans.len() > 1 && self.plans.front().is_some_and(|pl| pl.end_ms <= t) {
            self.plans.pop_front();
        }
    }

    /// Device faults, tamper, signal loss and alcohol episodes for one cycle.
    fn schedule_devices(&mut self, p: &Profile, ctx: &RunContext, plan: &Plan) {
        let (c0, c1) = (
            plan.start_ms.max(p.activation.from),
            plan.end_ms.min(ctx.end_ms),
        );
        if c1 <= c0 {
            return;
        }
        let rates = ctx.rates;
        let rng = &mut self.rng;
        let day_frac = (c1 - c0) as f64 / DAY_MS as f64;
        let at = |rng: &mut Rng| rng.int(c0, c1 - 1) / 1000 * 1000;
        // Signal losses (store and forward).
        for _ in 0..rng.poisson(rates.scaled(rates.signal_loss) * day_frac) {
            let t0 = at(rng);
            let dur = (rng.lognormal(20.0, 0.9).clamp(5.0, 360.0) * 60.0) as i64 * 1000;
            self.losses.push((t0, t0 + dur));
            self.truth.push(
                TruthItem::about(p, "signal_loss", t0, Some(t0 + dur))
                    .with_behaviour("signal_loss"),
            );
        }
        self.losses.retain(|&(_, b)| b > c0 - DAY_MS);
        if rng.chance(rates.scaled(rates.strap_tamper) * day_frac) {
            let t0 = at(rng);
            let t1 = t0 + rng.int(60, 20 * 60) * 1000;
            self.events.push((t0, DeviceEvent::StrapOpen));
            self.events.push((t1, DeviceEvent::StrapClosed));
            self.truth.push(
                TruthItem::about(p, "strap_tamper", t0, Some(t1)).with_behaviour("strap_tamper"),
            );
        }
        if rng.chance(rates.scaled(rates.device_fault) * day_frac) {
            let t0 = at(rng);
            self.events.push((t0, DeviceEvent::DeviceFault));
            self.truth.push(
                TruthItem::about(p, "device_fault", t0, Some(t0))
                    .with_code("AL24")
                    .with_behaviour("device_fault"),
            );
        }
        if p.hmu {
            if rng.chance(rates.scaled(rates.hmu_power_loss) * day_frac) {
                let t0 = at(rng);
                let t1 = t0 + (rng.range(10.0, 300.0) * 60_000.0) as i64 / 1000 * 1000;
                self.events.push((t0, DeviceEvent::HmuPowerLoss));
                self.events.push((t1, DeviceEvent::HmuPowerRestored));
                self.hmu_off.push((t0, t1));
                self.truth.push(
                    TruthItem::about(p, "hmu_power_loss", t0, Some(t1))
                        .with_code("AL04")
                        .with_behaviour("hmu_power_loss"),
                );
            }
            if rng.chance(rates.scaled(rates.hmu_moved) * day_frac) {
                let t0 = at(rng);
                self.events.push((t0, DeviceEvent::HmuMoved));
                self.truth.push(
                    TruthItem::about(p, "hmu_moved", t0, Some(t0))
                        .with_code("AL05")
                        .with_behaviour("hmu_moved"),
                );
            }
        }
        if p.device == DeviceKind::Gps
            && plan.violations_allowed
            && rng.chance(rates.scaled(rates.battery_death) * day_frac)
        {
            self.battery
                .skip_charging_until(local_to_utc_ms(plan.date, 48 * 60 + 17 * 60));
        }
        self.events.sort_by_key(|e| e.0);
        if p.device == DeviceKind::Alcohol {
            let horizon = c0 - DAY_MS;
            self.drinks.retain(|e| e.end_ms() > horizon);
            self.obstructions.retain(|e| e.t1_ms > horizon);
            self.removals.retain(|e| e.t1_ms > horizon);
            if rng.chance(rates.scaled(rates.drinking) * day_frac) {
                let weekend = matches!(crate::clock::weekday_index(plan.date), 4 | 5);
                let start_min = if weekend {
                    rng.int(14 * 60, 22 * 60)
                } else {
                    rng.int(17 * 60, 22 * 60)
                };
                let e = DrinkingEpisode::plan(rng, rates, local_to_utc_ms(plan.date, start_min));
                let blocked = self
                    .obstructions
                    .iter()
                    .chain(self.removals.iter())
                    .any(|o| o.t0_ms < e.end_ms() && e.onset_ms < o.t1_ms);
                if e.onset_ms >= p.activation.from && e.onset_ms < ctx.end_ms && !blocked {
                    let activation = p.activation_at(e.onset_ms).id.clone();
                    // Drinking again before the last episode has left the body: the readings
                    // show one excursion, from the first onset to the last return, so the
                    // truth is one drinking event too.
                    let open = self.open_drinking.iter_mut().find(|t| {
                        t.kind == "drinking_event"
                            && t.activation.as_deref() == Some(activation.as_str())
                            && t.start <= e.onset_ms
                            && t.end.is_some_and(|end| e.onset_ms < end)
                    });
                    match open {
                        Some(it) => {
                            let end = it.end.unwrap_or(e.end_ms()).max(e.end_ms());
                            let peak = it.peak_tac_gdl.unwrap_or(0.0).max(e.peak_gdl);
                            describe_drinking(it, peak, end, ctx.end_ms);
                        }
                        None => {
                            let mut it =
                                TruthItem::about(p, "drinking_event", e.onset_ms, Some(e.end_ms()));
                            describe_drinking(&mut it, e.peak_gdl, e.end_ms(), ctx.end_ms);
                            self.open_drinking.push(it);
                        }
                    }
                    self.drinks.push(e);
                }
            }
            if rng.chance(rates.scaled(rates.environmental) * day_frac) {
                self.env_spikes.push(at(rng));
                self.env_spikes.sort_unstable();
            }
            let overlaps_drink = |drinks: &[DrinkingEpisode], t0: TimeMs, t1: TimeMs| {
                drinks.iter().any(|e| e.onset_ms < t1 && t0 < e.end_ms())
            };
            // A second sensor episode while one is under way would be one long one on the tag
            // (held-out seed 20261206 with raised rates, A539: removals 07:33–22:47 and
            // 20:36–04:52, one alert, two truth items): not scheduled.
            let overlaps_sensor = |episodes: &[SensorEpisode], t0: TimeMs, t1: TimeMs| {
                episodes.iter().any(|e| e.t0_ms < t1 && t0 < e.t1_ms)
            };
            if rng.chance(rates.scaled(rates.obstruction) * day_frac) {
                let t0 = at(rng);
                let t1 = t0 + (rng.range(3.0, 12.0) * 3600.0) as i64 * 1000;
                if overlaps_drink(&self.drinks, t0, t1)
                    || overlaps_sensor(&self.obstructions, t0, t1)
                    || overlaps_sensor(&self.removals, t0, t1)
                {
                    return;
                }
                let shift = if rng.chance(0.7) {
                    rng.range(0.6, 1.4)
                } else {
                    -rng.range(0.4, 0.6)
                };
                self.obstructions.push(SensorEpisode {
                    t0_ms: t0,
                    t1_ms: t1,
                    ir_shift_v: shift,
                });
                let mut it = TruthItem::about(p, "alcohol_obstruction", t0, Some(t1))
                    .with_behaviour("ir_obstruction");
                it.detectable = ctx.end_ms - t0 >= OBSTRUCTION_SEEN_MS;
                self.truth.push(it);
            } else if rng.chance(rates.scaled(rates.removal) * day_frac) {
                let t0 = at(rng);
                let t1 = t0 + (rng.range(2.0, 16.0) * 3600.0) as i64 * 1000;
                if overlaps_drink(&self.drinks, t0, t1)
                    || overlaps_sensor(&self.obstructions, t0, t1)
                    || overlaps_sensor(&self.removals, t0, t1)
                {
                    return;
                }
                self.removals.push(SensorEpisode {
                    t0_ms: t0,
                    t1_ms: t1,
                    ir_shift_v: 0.0,
                });
                let mut it =
                    TruthItem::about(p, "alcohol_removal", t0, Some(t1)).with_behaviour("removal");
                it.detectable = ctx.end_ms - t0 >= REMOVAL_SEEN_MS;
                self.truth.push(it);
            }
        }
    }

    /// The old tag is removed (its last readings uploaded) and a new one fitted.
    fn swap(
        &mut self,
        p: &Profile,
        ctx: &RunContext,
        at: TimeMs,
        t: TimeMs,
        out: &mut Vec<UploadBatch>,
    ) {
        self.swap_ms = None;
        // The activation covers [from, to): the removal is its last second.
        let removed_ms = (at - 1000).max(self.pending.last().map_or(i64::MIN, |r| r.t_ms));
        self.pending.push(Reading {
            t_ms: removed_ms,
            battery_pct: Some(self.battery.pct()),
            body: ReadingBody::Event(DeviceEvent::Removed),
        });
        for item in self.battery.open_truth() {
            let mut it = TruthItem::about(p, item.kind, item.start_ms, Some(at));
            it.code = Some(item.code.to_string());
            it.behaviour = Some(item.behaviour.to_string());
            self.truth.push(it);
        }
        self.split_drinking_at_swap(p, ctx, at);
        self.seal(p, ctx, at + 1000, out);
        if p.replacement.is_none() {
            return;
        }
        self.tag_no = (ctx.tags + self.idx) as u32;
        self.seq = 0;
        self.last_upload_ms = None;
        self.battery = Battery::new(&mut self.rng, p.device);
        // The home unit pairs with the new tag and reports its presence at once; carrying the old
        // tag's last state over kept it silent until the next heartbeat (up to 30 minutes), which
        // the curfew rule rightly reads as no evidence of presence at a curfew start.
        self.hmu = Hmu::default();
        self.events.push((t, DeviceEvent::Fitted));
        self.events.sort_by_key(|e| e.0);
        self.tac_fit_ms = t;
        self.tac_next_ms = t;
    }

    /// A drinking event still in the body when the tag is swapped: each tag shows its part of
    /// it, under its own activation. The old tag's part never returns to baseline on that tag;
    /// the new tag's shows a rise only if the peak comes after the swap.
    fn split_drinking_at_swap(&mut self, p: &Profile, ctx: &RunContext, at: TimeMs) {
        let Some(replacement) = p.replacement.as_ref() else {
            return;
        };
        let old = p.activation.id.as_str();
        let mut after = Vec::new();
        for it in self.open_drinking.iter_mut().filter(|t| {
            t.kind == "drinking_event"
                && t.activation.as_deref() == Some(old)
                && t.start < at
                && t.end.is_some_and(|end| at < end)
        }) {
            let end = it.end.unwrap_or(at);
            let peak_after = self
                .drinks
                .iter()
                .filter(|e| e.onset_ms < end && at < e.end_ms())
                .map(|e| (e.onset_ms + e.rise_ms, e.peak_gdl))
                .filter(|(peak_ms, _)| *peak_ms >= at)
                .map(|(_, peak)| peak)
                .fold(0.0, f64::max);
            let mut part = it.clone();
            part.activation = Some(replacement.id.clone());
            part.tag = Some(replacement.tag.clone());
            part.start = at;
            describe_drinking(&mut part, it.peak_tac_gdl.unwrap_or(0.0), end, ctx.end_ms);
            part.detectable &= peak_after >= 0.02;
            after.push(part);
            it.end = Some(at);
            it.detectable = false;
        }
        self.open_drinking.extend(after);
    }

    fn tick(&mut self, p: &Profile, ctx: &RunContext, t: TimeMs, out: &mut Vec<UploadBatch>) {
        if let Some(at) = self.swap_ms.filter(|at| t >= *at) {
            self.swap(p, ctx, at, t, out);
        }
        // Episodes planned from now on start after `t`: one over by now cannot be extended.
        if self
            .open_drinking
            .iter()
            .any(|it| it.end.is_some_and(|end| end <= t))
        {
            let (over, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.open_drinking)
                .into_iter()
                .partition(|it| it.end.is_some_and(|end| end <= t));
            self.truth.extend(over);
            self.open_drinking = open;
        }
        if self
            .open_zones
            .iter()
            .any(|w| w.item.end.is_some_and(|end| end < t))
        {
            let (over, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.open_zones)
                .into_iter()
                .partition(|w| w.item.end.is_some_and(|end| end < t));
            self.truth
                .extend(over.into_iter().map(ZoneWatch::into_item));
            self.open_zones = open;
        }
        self.plan_at(p, ctx, t);
        let here: Where = match self
            .plans
            .iter_mut()
            .find(|pl| pl.start_ms <= t && t < pl.end_ms)
        {
            Some(pl) => pl.at(t),
            None => match self.plans.back_mut() {
                Some(pl) => pl.at(t),
                None => return,
            },
        };
        self.tick_buf.clear();
        // Battery (and its events) first: a flat tag measures nothing.
        // Where the wearer sleeps: home, a partner's, or any curfew address (the charger goes
        // where the curfew says the nights are spent).
        let at_home = here.place.is_some_and(|i| {
            matches!(p.places[i].kind, PlaceKind::Home | PlaceKind::Partner)
                || p.rules
                    .curfews
                    .iter()
                    .any(|c| c.addresses.iter().any(|a| a.place == i))
        });
        let (local_min, today) = if at_home && p.device == DeviceKind::Gps {
            let local = t + london_offset_ms(t);
            let day = local.div_euclid(DAY_MS);
            if day != self.local_day.0 {
                self.local_day = (day, local_date(t));
            }
            (local.rem_euclid(DAY_MS) / MINUTE_MS, self.local_day.1)
        } else {
            (0, NaiveDate::default())
        };
        let mut bt = std::mem::take(&mut self.bstep);
        let dt_min = (self.step_ms / MINUTE_MS) as f64;
        self.battery
            .step(&mut bt, t, dt_min, at_home, local_min, p.charge_min, today);
        let just_died = bt.events.contains(&DeviceEvent::BatteryDead);
        for &ev in &bt.events {
            self.tick_buf.push(Reading {
                t_ms: t,
                battery_pct: Some(self.battery.pct()),
                body: ReadingBody::Event(ev),
            });
            self.urgent = true;
        }
        for item in &bt.truth {
            let mut it = TruthItem::about(p, item.kind, item.start_ms, item.end_ms);
            it.code = Some(item.code.to_string());
            it.behaviour = Some(item.behaviour.to_string());
            self.truth.push(it);
        }
        self.bstep = bt;
        let alive = !self.battery.dead();
        let battery_pct = Some(self.battery.pct());
        // Scheduled events due by now.
        let due = self.events.partition_point(|e| e.0 <= t);
        for (te, ev) in self.events.drain(..due) {
            let hmu_event = matches!(
                ev,
                DeviceEvent::HmuPowerLoss | DeviceEvent::HmuPowerRestored | DeviceEvent::HmuMoved
            );
            if te >= p.activation.from && te < ctx.end_ms && (alive || hmu_event) {
                self.tick_buf.push(Reading {
                    t_ms: te,
                    battery_pct: if hmu_event { None } else { battery_pct },
                    body: ReadingBody::Event(ev),
                });
                self.urgent = true;
            }
        }
        let network = !in_any(&self.losses, t);
        // The fix reported at this tick that could confirm a hit (for `fix_ring`).
        let mut confirming: Option<(Xy, u32)> = None;
        match p.device {
            DeviceKind::Gps if alive => {
                match self
                    .gps
                    .fix(&mut self.rng, ctx.rates, &here, ctx.area, network, t)
                {
                    GpsOutcome::Fix(mut pos, outlier) => {
                        if outlier.is_none() {
                            self.note_zone_fix(p, t, here.kin.pos, &pos);
                        }
                        let (lat_e7, lon_e7) = ctx.area.frame.to_e7(pos.1);
                        pos.0.lat_e7 = lat_e7;
                        pos.0.lon_e7 = lon_e7;
                        self.tick_buf.push(Reading {
                            t_ms: t,
                            battery_pct,
                            body: ReadingBody::Position(pos.0),
                        });
                        if outlier.is_none()
                            && (pos.0.precision_cm as f64) < crate::crimes::VICINITY_M * 100.0
                        {
                            confirming = Some((pos.1, pos.0.precision_cm));
                        }
                        if let Some(err_m) = outlier {
                            let mut it = TruthItem::about(p, "gps_outlier", t, Some(t))
                                .with_behaviour("multipath");
                            it.error_m = Some(err_m.round());
                            self.truth.push(it);
                        }
                    }
                    GpsOutcome::None => {}
                }
            }
            DeviceKind::Alcohol if alive && t >= self.tac_next_ms => {
                let tt = self.tac_next_ms;
                let sample = self.tac_sample(tt, p);
                self.tick_buf.push(Reading {
                    t_ms: tt,
                    battery_pct,
                    body: ReadingBody::Tac(sample),
                });
                let step = if tt - self.tac_fit_ms < HOUR_MS {
                    5 * MINUTE_MS
                } else {
                    30 * MINUTE_MS
                };
                self.tac_next_ms = tt + step + self.rng.int(0, 20) * 1000;
            }
            _ => {}
        }
        if p.hmu {
            // The unit is at the address marked `hmu` when the orders mark one; otherwise there is
            // one at each curfew address (home, and a partner's when the timetable has one).
            let marked = p
                .rules
                .curfews
                .iter()
                .flat_map(|c| c.addresses.iter())
                .find(|a| a.hmu)
                .map(|a| a.place);
            let at_unit = here.place.is_some_and(|pl| match marked {
                Some(unit) => pl == unit,
                None => {
                    pl == 0
                        || p.rules
                            .curfews
                            .iter()
                            .any(|c| c.addresses.iter().any(|a| a.place == pl))
                }
            });
            let in_range = alive && at_unit;
            if let Some(r) = self.hmu.observe(t, in_range, !in_any(&self.hmu_off, t)) {
                self.tick_buf.push(r);
            }
        }
        if !self.ring.is_empty() {
            self.record_ring(ctx, t, alive.then_some(here.kin.pos));
            self.record_fix(ctx, t, here.kin.pos, confirming);
        }
        if !self.tick_buf.is_empty() {
            // Same-instant readings: a fitting comes first.
            self.tick_buf
                .sort_by_key(|r| (r.t_ms, r.body != ReadingBody::Event(DeviceEvent::Fitted)));
            self.pending.extend_from_slice(&self.tick_buf);
        }
        if (t >= self.next_upload_ms || self.urgent) && network && (alive || just_died) {
            let upload_ms = t + self.rng.int(1, 30) * 1000;
            self.seal(p, ctx, upload_ms, out);
            self.urgent = false;
            self.next_upload_ms = t + self.rng.int(9 * 60, 11 * 60) * 1000;
        }
    }

    /// Uploads everything stored. A silence longer than the no-contact threshold since the previous
    /// upload is a `no_contact` truth item from the last contact to this one.
    /// An RF tag is seen only by its home unit: curfew items decided while the unit had no
    /// power (the commencement check for AL08, AL09 and AL12, the departure for AL10 and AL11)
    /// cannot be detected (seed 9731 at 1,000 tags, A956: the unit off 18:44–21:37, a return
    /// at 20:59 after a 20:00 curfew start; nothing reported where the wearer was).
    fn mark_unseen_while_unit_off(&self, p: &Profile, items: &mut [TruthItem]) {
        let grace_ms = |order: Option<&String>| {
            p.rules
                .curfews
                .iter()
                .find(|c| Some(&c.order_id) == order)
                .map_or(0, |c| c.grace_min as i64 * MINUTE_MS)
        };
        let commencement_ends: Vec<(Option<String>, TimeMs, TimeMs)> = items
            .iter()
            .filter(|it| it.kind == "curfew_violation" && it.code.as_deref() == Some("AL08"))
            .filter_map(|it| Some((it.activation.clone(), it.end?, it.start)))
            .collect();
        for it in items.iter_mut().filter(|it| it.kind == "curfew_violation") {
            let decided_ms = match it.code.as_deref() {
                Some("AL08" | "AL12") => it.start + grace_ms(it.order.as_ref()),
                // An AL09 stands or falls with its AL08 (the absence it ends).
                Some("AL09") => match commencement_ends
                    .iter()
                    .find(|(a, end, _)| *a == it.activation && *end == it.start)
                {
                    Some((_, _, ws)) => ws + grace_ms(it.order.as_ref()),
                    None => continue,
                },
                _ => it.start,
            };
            if in_any(&self.hmu_off, decided_ms) {
                it.detectable = false;
                it.behaviour = Some(format!(
                    "{} (home unit off)",
                    it.behaviour.as_deref().unwrap_or("incidental")
                ));
            }
        }
    }

    /// Marks the open zone items a fix taken at `t` (wearer truly at `true_pos`) could confirm.
    fn note_zone_fix(&mut self, p: &Profile, t: TimeMs, true_pos: Xy, fix: &(Position, Xy)) {
        let precision_m = fix.0.precision_cm as f64 / 100.0;
        if fix.0.source != PositionSource::Gps || precision_m > ZONE_CONFIRM_MAX_PRECISION_M {
            return;
        }
        for w in &mut self.open_zones {
            let during = w.item.start <= t && w.item.end.is_none_or(|end| t <= end);
            let z = &p.rules.zones[w.zone];
            if !during || !z.breached_at(true_pos, t) || !z.circle_breaches(fix.1, precision_m, t) {
                continue;
            }
            match w.first_confirming_ms {
                None => w.first_confirming_ms = Some(t),
                Some(first) if t - first >= ZONE_CONFIRM_SPAN_MS => w.confirmable = true,
                Some(_) => {}
            }
        }
    }

    fn seal(
        &mut self,
        p: &Profile,
        ctx: &RunContext,
        upload_ms: TimeMs,
        out: &mut Vec<UploadBatch>,
    ) {
        if self.pending.is_empty() {
            return;
        }
        {
            let threshold = ctx.rates.no_contact_after_min as i64 * MINUTE_MS;
            // Silences within five minutes of the threshold are recorded but not counted either
            // way: the server measures them on its event-time clock, not the tag's upload times.
            if let Some(last) = self
                .last_upload_ms
                .filter(|last| upload_ms - last > threshold - NO_CONTACT_MARGIN_MS)
            {
                let why = if self.losses.iter().any(|&(a, b)| a < upload_ms && last < b) {
                    "signal_loss"
                } else if self.battery.dead()
                    || self
                        .pending
                        .iter()
                        .any(|r| r.body == ReadingBody::Event(DeviceEvent::Charging))
                {
                    "battery_dead"
                } else {
                    "nothing_to_send"
                };
                let mut it =
                    TruthItem::about(p, "no_contact", last, Some(upload_ms)).with_behaviour(why);
                it.detectable = upload_ms - last > threshold + NO_CONTACT_MARGIN_MS;
                self.truth.push(it);
            }
            self.last_upload_ms = Some(upload_ms);
        }
        for chunk in self.pending.chunks(MAX_BATCH) {
            self.seq += 1;
            out.push(UploadBatch {
                tag_no: self.tag_no,
                seq: self.seq,
                upload_ms,
                readings: chunk.to_vec(),
            });
        }
        self.pending.clear();
    }

    fn tac_sample(&mut self, t: TimeMs, p: &Profile) -> TacSample {
        let rng = &mut self.rng;
        let diurnal = (((local_minutes(t) as f64) / 1440.0 - 0.15) * std::f64::consts::TAU).cos();
        let mut temp_c = self.temp_base_c + 0.8 * diurnal + rng.gauss(0.0, 0.3);
        let mut ir_v = self.ir_base_v + rng.gauss(0.0, 0.06);
        let mut tac: f64 = self.drinks.iter().map(|e| e.tac_at(t)).sum();
        if tac > 0.0 {
            tac += rng.gauss(0.0, 0.003);
        }
        let mut tac_blocked = false;
        if let Some(o) = self
            .obstructions
            .iter()
            .find(|o| t >= o.t0_ms && t < o.t1_ms)
        {
            ir_v += o.ir_shift_v;
            tac = 0.0;
            tac_blocked = true;
        }
        if self.removals.iter().any(|o| t >= o.t0_ms && t < o.t1_ms) {
            temp_c = rng.range(19.0, 23.0);
            ir_v = rng.range(0.15, 0.35);
            tac = 0.0;
            tac_blocked = true;
        }
        // An environmental spike shows on the first reading after exposure, then is gone.
        if let Some(&te) = self.env_spikes.first() {
            if te <= t {
                self.env_spikes.remove(0);
                if t - te < 30 * MINUTE_MS {
                    let masked = tac_blocked;
                    if !masked {
                        tac += rng.range(0.025, 0.07);
                    }
                    let mut it = TruthItem::about(
                        p,
                        "environmental_alcohol",
                        t - 15 * MINUTE_MS,
                        Some(t + 15 * MINUTE_MS),
                    );
                    it.behaviour = Some("environmental_exposure".into());
                    // On top of a drinking excursion the spike is one more reading of it: the
                    // readings cannot tell it apart.
                    let drinking = self
                        .drinks
                        .iter()
                        .any(|e| e.onset_ms <= t && t < e.end_ms());
                    it.detectable = !masked && !drinking;
                    self.truth.push(it);
                }
            }
        }
        TacSample {
            tac_ugdl: ((tac.max(0.0) * 1000.0).round() * 1000.0) as i32,
            ir_uv: ((ir_v * 1000.0).round() * 1000.0) as i32,
            temp_mc: ((temp_c * 100.0).round() * 10.0) as i32,
        }
    }

    fn record_ring(&mut self, ctx: &RunContext, t: TimeMs, pos: Option<Xy>) {
        let k = (t - ctx.start_ms - self.phase_ms).div_euclid(MINUTE_MS);
        let slot = k.rem_euclid(RING_MIN as i64) as usize;
        let hour = k.div_euclid(60);
        let hslot = hour.rem_euclid((RING_MIN / 60) as i64) as usize;
        if hour != self.ring_hour {
            self.ring_hour = hour;
            self.hour_bbox[hslot] = [f32::NAN; 4];
        }
        match pos {
            Some(p) => {
                let (x, y) = (p.x_m as f32, p.y_m as f32);
                self.ring[slot] = [x, y];
                let b = &mut self.hour_bbox[hslot];
                if b[0].is_nan() {
                    *b = [x, y, x, y];
                } else {
                    *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
                }
            }
            None => self.ring[slot] = [f32::NAN; 2],
        }
    }

    /// Notes in `fix_ring` the confirming fix reported at tick `t` (true position `truth`), or
    /// that there was none.
    fn record_fix(&mut self, ctx: &RunContext, t: TimeMs, truth: Xy, fix: Option<(Xy, u32)>) {
        let k = (t - ctx.start_ms - self.phase_ms).div_euclid(MINUTE_MS);
        let slot = k.rem_euclid(RING_MIN as i64) as usize;
        let cm = |v: f64| {
            let v = (v * 100.0).round();
            (v > i16::MIN as f64 && v <= i16::MAX as f64).then_some(v as i16)
        };
        self.fix_ring[slot] = fix
            .and_then(|(pos, precision_cm)| {
                let dx = cm(pos.x_m - truth.x_m)?;
                let dy = cm(pos.y_m - truth.y_m)?;
                Some([dx, dy, i16::try_from(precision_cm).ok()?])
            })
            .unwrap_or(NO_FIX);
    }

    /// The fixes the tag reported in `[t0, t1]` (not simulated outliers) that may lie wholly
    /// inside the circle of `radius_m` around `c`, as (time, reported point, precision m): those
    /// with `d + precision` within `radius_m` plus the local frame's distortion (under 1%), for
    /// the caller to judge exactly as the hit rule does. Only within the last 48 hours, like
    /// [`TagSim::closest_approach`].
    pub fn fixes_near(
        &self,
        ctx: &RunContext,
        c: Xy,
        t0: TimeMs,
        t1: TimeMs,
        radius_m: f64,
    ) -> Vec<(TimeMs, Xy, f64)> {
        if self.fix_ring.is_empty() {
            return Vec::new();
        }
        let base = ctx.start_ms + self.phase_ms;
        let latest = (self.next_tick_ms - base).div_euclid(MINUTE_MS) - 1;
        let k0 = (t0 - base + MINUTE_MS - 1).div_euclid(MINUTE_MS);
        let k0 = k0.max(latest - RING_MIN as i64 + 1).max(0);
        let k1 = (t1 - base).div_euclid(MINUTE_MS).min(latest);
        let reach_m = radius_m * 1.01 + 1.0;
        let mut out = Vec::new();
        for k in k0..=k1 {
            let slot = k.rem_euclid(RING_MIN as i64) as usize;
            let (a, f) = (self.ring[slot], self.fix_ring[slot]);
            if f == NO_FIX || a[0].is_nan() {
                continue;
            }
            let pos = Xy::new(
                a[0] as f64 + f[0] as f64 / 100.0,
                a[1] as f64 + f[1] as f64 / 100.0,
            );
            let precision_m = f[2] as f64 / 100.0;
            if pos.dist_m(c) + precision_m <= reach_m {
                out.push((base + k * MINUTE_MS, pos, precision_m));
            }
        }
        out
    }

    /// Closest true approach to `c` over `[t0, t1]` (minute samples, straight between them), if the
    /// tag was recording then: (distance m, time).
    pub fn closest_approach(
        &self,
        ctx: &RunContext,
        c: Xy,
        t0: TimeMs,
        t1: TimeMs,
        prune_m: f64,
    ) -> Option<(f64, TimeMs)> {
        if self.ring.is_empty() {
            return None;
        }
        let base = ctx.start_ms + self.phase_ms;
        let k0 = (t0 - base).div_euclid(MINUTE_MS);
        let k1 = (t1 - base).div_euclid(MINUTE_MS) + 1;
        let latest = (self.next_tick_ms - base).div_euclid(MINUTE_MS) - 1;
        let k0 = k0.max(latest - RING_MIN as i64 + 2).max(0);
        let k1 = k1.min(latest);
        let mut best: Option<(f64, TimeMs)> = None;
        let (cx, cy) = (c.x_m as f32, c.y_m as f32);
        let mut k = k0;
        while k < k1 {
            let hour = k.div_euclid(60);
            let b = self.hour_bbox[hour.rem_euclid((RING_MIN / 60) as i64) as usize];
            let hour_end = (hour + 1) * 60;
            let dx = (b[0] - cx).max(cx - b[2]).max(0.0);
            let dy = (b[1] - cy).max(cy - b[3]).max(0.0);
            if b[0].is_nan() || (dx * dx + dy * dy).sqrt() as f64 > prune_m + 1100.0 {
                k = hour_end;
                continue;
            }
            let a = self.ring[k.rem_euclid(RING_MIN as i64) as usize];
            let n = self.ring[(k + 1).rem_euclid(RING_MIN as i64) as usize];
            if !a[0].is_nan() && !n[0].is_nan() {
                let pa = Xy::new(a[0] as f64, a[1] as f64);
                let pb = Xy::new(n[0] as f64, n[1] as f64);
                let (d, f) = crate::geo::seg_dist_m(c, pa, pb);
                let tt = base + k * MINUTE_MS + (f * MINUTE_MS as f64) as i64;
                if tt >= t0 && tt <= t1 && best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, tt / 1000 * 1000));
                }
            }
            k += 1;
        }
        best
    }

    /// The true position at minute tick nearest `t` (if recording).
    pub fn position_at(&self, ctx: &RunContext, t: TimeMs) -> Option<Xy> {
        if self.ring.is_empty() {
            return None;
        }
        let k = (t - ctx.start_ms - self.phase_ms).div_euclid(MINUTE_MS);
        let a = self.ring[k.rem_euclid(RING_MIN as i64) as usize];
        (!a[0].is_nan()).then(|| Xy::new(a[0] as f64, a[1] as f64))
    }
}

/// A drinking event's peak, end, behaviour and whether the readings can show it: a peak a
/// monitoring centre confirms (0.02 g/dL) and an excursion that has returned to baseline, with
/// a reading after it, before the run ends (one still in the body at the end is not judged).
fn describe_drinking(it: &mut TruthItem, peak_gdl: f64, end_ms: TimeMs, run_end_ms: TimeMs) {
    it.end = Some(end_ms);
    it.peak_tac_gdl = Some((peak_gdl * 1000.0).round() / 1000.0);
    it.detectable = peak_gdl >= 0.02 && end_ms + 30 * MINUTE_MS <= run_end_ms;
    it.behaviour = Some(
        if peak_gdl < 0.02 {
            "light_drinking"
        } else if peak_gdl < 0.08 {
            "moderate_drinking"
        } else {
            "heavy_drinking"
        }
        .into(),
    );
}
