//! Domain types: readings, people, activations, orders, alerts, sober days, crimes and hits, plus the
//! event-time helpers every other module uses. Nothing here does I/O.

mod activation;
mod alert;
mod batch;
mod control;
mod crime;
mod decision;
mod device_binding;
pub mod directory;
mod hit;
mod order;
mod reading;
mod reading_json;
pub mod rtree_load;
mod sober_day;
pub mod tag_partition;
pub mod time;
mod user;

pub use activation::{Activation, Person};
pub use alert::{alert_id, Alert, AlertDetails, AlertType, Confidence};
pub use batch::{Batch, BatchSeq};
pub use control::{Change, ControlRecord, LogEntry, PurgedWindow, Withdrawal};
pub use crime::{CrimeKey, CrimeVersion, OriginalCoordinates, PoliceCrime};
pub use decision::{HitDecision, Outcome, ReviewAction};
pub use device_binding::{DeviceBinding, DeviceProtocol};
pub use directory::{ActivationDirectory, ActivationInfo};
pub use hit::{hit_id, Certainty, Hit, HitAlgorithm, HitPosition, HitStanding};
pub use order::{
    parse_local_hhmm, AlcoholCondition, AlcoholMode, AlcoholRequirement, Condition, CurfewAddress,
    CurfewCondition, Day, Order, OrdersFile, ScheduleEntry, TimetableEntry, ZoneCondition,
};
pub use reading::{
    to_fixed, DeviceEvent, Position, PositionSource, Reading, ReadingBody, ReadingKind, TacSample,
    TagId, TimeMs,
};
pub use reading_json::{parse_reading_line, TaggedReading};
pub use sober_day::{DayReason, SoberDay, SoberDayStatus};
pub use user::{Role, UserAccount};
