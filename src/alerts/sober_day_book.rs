//! The sober-day book: the current classification of every (activation, order, date).
//!
//! The alcohol rule re-issues a day when its status changes (late data, a decision taken after
//! the day was first settled); the book keeps the latest, like the alert book does for alerts.

use super::alert_book::Change;
use crate::formats::sober_days_jsonl::{sort_sober_days, write_sober_days};
use crate::model::SoberDay;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::io::Write;

#[derive(Debug, Default, Clone)]
pub struct SoberDayBook {
    days: HashMap<(String, String, NaiveDate), SoberDay>,
}

impl SoberDayBook {
    pub fn upsert(&mut self, day: SoberDay) -> Change {
        let key = (day.activation.clone(), day.order.clone(), day.date);
        match self.days.get_mut(&key) {
            Some(existing) if *existing == day => Change::Unchanged,
            Some(existing) => {
                *existing = day;
                Change::Updated
            }
            None => {
                self.days.insert(key, day);
                Change::New
            }
        }
    }

    /// Drops every day of an activation (retention); returns how many.
    pub fn remove_activation(&mut self, activation: &str) -> usize {
        let before = self.days.len();
        self.days.retain(|(a, _, _), _| a != activation);
        before - self.days.len()
    }

    pub fn len(&self) -> usize {
        self.days.len()
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Every day in output order (activation, order, date).
    pub fn sorted(&self) -> Vec<SoberDay> {
        let mut all: Vec<SoberDay> = self.days.values().cloned().collect();
        sort_sober_days(&mut all);
        all
    }

    /// Writes every day as JSON Lines in output order (the `sober_days.jsonl` contract file).
    pub fn write_jsonl(&self, out: &mut impl Write) -> std::io::Result<()> {
        write_sober_days(out, &self.sorted())
    }
}
