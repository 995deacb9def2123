//! Device health rules: strap tamper, battery low (AL21) and dead (AL23), home monitoring unit
//! power loss (AL04) and moved (AL05), device fault (AL24), and no contact.
//!
//! Device events open and close alerts (strap_open → strap_closed, battery_low → charging,
//! hmu_power_loss → hmu_power_restored); moved and fault are instantaneous. No contact is driven
//! by event time only: the activation's last contact plus the configured silence, compared with
//! the pipeline's event-time clock (`crate::pipeline::clock`: a function of the log that no single
//! tag can move), never the wall clock.

use crate::model::{alert_id, Alert, AlertType, DeviceEvent, Reading, ReadingBody, TimeMs};
use crate::pipeline::snapshot::{load_rule_state, save_rule_state, via, RuleState, RuleStateError};
use crate::pipeline::{Rule, RuleContext};
use serde::{Deserialize, Serialize};

/// Version of the health rules, recorded on every alert they raise.
pub const HEALTH_RULE_VERSION: &str = "health/1";
/// At most this many readings are kept as an alert's evidence.
pub const MAX_EVIDENCE: usize = 16;

fn new_alert(
    ctx: &RuleContext<'_>,
    alert_type: AlertType,
    code: Option<&str>,
    start: TimeMs,
    late: bool,
) -> Alert {
    let activation = &ctx.activation.id;
    Alert {
        id: alert_id(activation, alert_type.as_str(), start),
        alert_type,
        code: code.map(str::to_string),
        activation: activation.clone(),
        person: ctx.activation.person.clone(),
        start,
        end: None,
        late,
        zone: None,
        confidence: None,
        rule: HEALTH_RULE_VERSION.to_string(),
        details: None,
        withdrawn: None,
        amended_by: None,
        evidence: Vec::new(),
    }
}

fn push_evidence(alert: &mut Alert, reading: &Reading) {
    if alert.evidence.len() < MAX_EVIDENCE {
        alert.evidence.push(*reading);
    }
}

/// What a device event does to the health alerts.
enum Effect {
    Open(AlertType, Option<&'static str>),
    Close(&'static [AlertType]),
    Instant(AlertType, &'static str),
    Nothing,
}

fn effect_of(event: DeviceEvent) -> Effect {
    use AlertType as A;
    match event {
        DeviceEvent::StrapOpen => Effect::Open(A::StrapTamper, None),
        DeviceEvent::StrapClosed => Effect::Close(&[A::StrapTamper]),
        DeviceEvent::BatteryLow => Effect::Open(A::BatteryLow, Some("AL21")),
        DeviceEvent::BatteryDead => Effect::Open(A::BatteryDead, Some("AL23")),
        DeviceEvent::Charging => Effect::Close(&[A::BatteryLow, A::BatteryDead]),
        DeviceEvent::HmuPowerLoss => Effect::Open(A::HmuPowerLoss, Some("AL04")),
        DeviceEvent::HmuPowerRestored => Effect::Close(&[A::HmuPowerLoss]),
        DeviceEvent::HmuMoved => Effect::Instant(A::HmuMoved, "AL05"),
        DeviceEvent::DeviceFault => Effect::Instant(A::DeviceFault, "AL24"),
        DeviceEvent::Fitted | DeviceEvent::Removed => Effect::Nothing,
    }
}

/// Device events → alerts. Holds the currently open alerts of this activation.
#[derive(Default)]
pub struct DeviceHealthRule {
    open: Vec<Alert>,
}

impl Rule for DeviceHealthRule {
    fn name(&self) -> &'static str {
        "health"
    }

    fn on_reading(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, late: bool) {
        let ReadingBody::Event(event) = reading.body else {
            return;
        };
        match effect_of(event) {
            Effect::Open(alert_type, code) => {
                if self.open.iter().any(|a| a.alert_type == alert_type) {
                    return; // already open: a repeated event is not a new alert
                }
                let mut alert = new_alert(ctx, alert_type, code, reading.t_ms, late);
                push_evidence(&mut alert, reading);
                ctx.emit_alert(alert.clone());
                self.open.push(alert);
            }
            Effect::Close(types) => {
                let mut i = 0;
                while i < self.open.len() {
                    let alert = &self.open[i];
                    if types.contains(&alert.alert_type) && reading.t_ms >= alert.start {
                        let mut closed = self.open.swap_remove(i);
                        closed.end = Some(reading.t_ms);
                        closed.late |= late;
                        push_evidence(&mut closed, reading);
                        ctx.emit_alert(closed);
                    } else {
                        i += 1;
                    }
                }
            }
            Effect::Instant(alert_type, code) => {
                let mut alert = new_alert(ctx, alert_type, Some(code), reading.t_ms, late);
                alert.end = Some(reading.t_ms);
                push_evidence(&mut alert, reading);
                ctx.emit_alert(alert);
            }
            Effect::Nothing => {}
        }
    }

    fn save_state(&self) -> Result<RuleState, RuleStateError> {
        save_rule_state(
            self.name(),
            &HealthState {
                open: self.open.clone(),
            },
        )
    }

    fn load_state(&mut self, state: &RuleState) -> Result<(), RuleStateError> {
        let HealthState { open } = load_rule_state(self.name(), state)?;
        self.open = open;
        Ok(())
    }
}

/// What [`DeviceHealthRule`] has seen: its open alerts.
#[derive(Serialize, Deserialize)]
struct HealthState {
    #[serde(with = "via")]
    open: Vec<Alert>,
}

/// What [`NoContactRule`] has seen (its silence and period are configuration).
#[derive(Serialize, Deserialize)]
struct NoContactState {
    last_contact_ms: Option<TimeMs>,
    #[serde(with = "via")]
    open: Option<Alert>,
}

/// No contact: the tag has not been heard from for `silence_ms` of event time while the
/// activation is live. Opens at the last contact, closes when the tag is heard from again.
pub struct NoContactRule {
    silence_ms: TimeMs,
    last_contact_ms: Option<TimeMs>,
    activation_from_ms: TimeMs,
    activation_to_ms: Option<TimeMs>,
    open: Option<Alert>,
}

impl NoContactRule {
    pub fn new(
        silence_ms: TimeMs,
        activation_from_ms: TimeMs,
        activation_to_ms: Option<TimeMs>,
    ) -> Self {
        Self {
            silence_ms,
            last_contact_ms: None,
            activation_from_ms,
            activation_to_ms,
            open: None,
        }
    }

    fn silence_start_ms(&self) -> TimeMs {
        self.last_contact_ms.unwrap_or(self.activation_from_ms)
    }
}

impl Rule for NoContactRule {
    fn name(&self) -> &'static str {
        "no_contact"
    }

    fn on_reading(&mut self, _ctx: &mut RuleContext<'_>, _reading: &Reading, _late: bool) {}

    fn on_contact(&mut self, ctx: &mut RuleContext<'_>, contact_ms: TimeMs) {
        if let Some(mut alert) = self.open.take() {
            alert.end = Some(contact_ms.max(alert.start));
            ctx.emit_alert(alert);
        }
        self.last_contact_ms = Some(
            self.last_contact_ms
                .map_or(contact_ms, |c| c.max(contact_ms)),
        );
    }

    fn next_deadline(&self) -> Option<TimeMs> {
        if self.open.is_some() {
            return None;
        }
        // Silence must exceed the limit, not merely reach it.
        let due = self.silence_start_ms() + self.silence_ms + 1;
        // Only while the activation is live at the moment silence becomes a breach.
        self.activation_to_ms
            .is_none_or(|to| due < to)
            .then_some(due)
    }

    fn on_clock(&mut self, ctx: &mut RuleContext<'_>, clock_ms: TimeMs) {
        if self.next_deadline().is_some_and(|due| due <= clock_ms) {
            let alert = new_alert(
                ctx,
                AlertType::NoContact,
                None,
                self.silence_start_ms(),
                false,
            );
            ctx.emit_alert(alert.clone());
            self.open = Some(alert);
        }
    }

    fn save_state(&self) -> Result<RuleState, RuleStateError> {
        let state = NoContactState {
            last_contact_ms: self.last_contact_ms,
            open: self.open.clone(),
        };
        save_rule_state(self.name(), &state)
    }

    fn load_state(&mut self, state: &RuleState) -> Result<(), RuleStateError> {
        let NoContactState {
            last_contact_ms,
            open,
        } = load_rule_state(self.name(), state)?;
        self.last_contact_ms = last_contact_ms;
        self.open = open;
        Ok(())
    }
}
