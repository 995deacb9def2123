//! The alert book: the current state of every alert, by stable id.
//!
//! Rules emit a new state of an alert whenever it changes (opened, then closed); the book keeps
//! the latest, so reprocessing the same readings is idempotent. The book is rebuilt from the
//! durable log on start, so no alert is lost in a crash.

use crate::formats::alerts_jsonl::{sort_alerts, write_alerts};
use crate::model::Alert;
use std::collections::HashMap;
use std::io::Write;

#[derive(Debug, Default, Clone)]
pub struct AlertBook {
    alerts: HashMap<String, Alert>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    New,
    Updated,
    Unchanged,
}

impl AlertBook {
    pub fn upsert(&mut self, alert: Alert) -> Change {
        match self.alerts.get_mut(&alert.id) {
            Some(existing) if *existing == alert => Change::Unchanged,
            Some(existing) => {
                *existing = alert;
                Change::Updated
            }
            None => {
                self.alerts.insert(alert.id.clone(), alert);
                Change::New
            }
        }
    }

    /// Drops every alert of an activation (retention); returns how many.
    pub fn remove_activation(&mut self, activation: &str) -> usize {
        let before = self.alerts.len();
        self.alerts.retain(|_, a| a.activation != activation);
        before - self.alerts.len()
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }

    /// Every alert in output order.
    pub fn sorted(&self) -> Vec<Alert> {
        let mut all: Vec<Alert> = self.alerts.values().cloned().collect();
        sort_alerts(&mut all);
        all
    }

    /// Writes every alert as JSON Lines in output order (the `alerts.jsonl` contract file).
    pub fn write_jsonl(&self, out: &mut impl Write) -> std::io::Result<()> {
        write_alerts(out, &self.sorted())
    }
}
