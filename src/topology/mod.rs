//! The parts of the topology that join the log to the views beside the pipeline: how an API write
//! becomes a control record and is answered once applied ([`control_gate`]), and the views that
//! follow control records in log order (metadata people/activations/orders and change history,
//! the shared activation directory: [`control_view`]; the alert and hit stores, which follow the
//! hub's decisions: [`decision_view`]); a change made while no server runs: [`offline_change`]). Assembled by `server` (issue 14: the rest
//! of the assembly moves here from `src/server.rs`).

pub mod control_gate;
pub mod control_view;
pub mod decision_view;
pub mod offline_change;
