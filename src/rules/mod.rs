//! The rules: one file (or folder) per concern — `health` (device events, no contact); curfew,
//! zones, hits and alcohol join here. [`StandardRules`] builds each activation's rule set from
//! the pipeline configuration and the orders of the activation's person.

pub mod alcohol;
pub mod health;

use crate::formats::orders_file::OrdersFile;
use crate::model::Order;
use crate::pipeline::{ActivationInfo, PipelineConfig, Rule, RuleFactory};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Settings of the individual rules (each rule adds its own section). Every rule records its
/// version on its outputs, so a changed threshold is visible in what it produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Alcohol monitoring (`[rules.alcohol]`).
    pub alcohol: alcohol::AlcoholConfig,
}

impl RulesConfig {
    /// Checks every rule's parameters.
    pub fn validate(&self) -> Result<(), alcohol::AlcoholConfigError> {
        self.alcohol.validate()
    }
}

/// The rule set of every activation.
pub struct StandardRules {
    pipeline: PipelineConfig,
    alcohol: Arc<alcohol::Thresholds>,
    orders_by_person: HashMap<String, Vec<Arc<Order>>>,
}

impl StandardRules {
    pub fn new(pipeline: PipelineConfig, rules: RulesConfig, orders: &OrdersFile) -> Self {
        let mut orders_by_person: HashMap<String, Vec<Arc<Order>>> = HashMap::new();
        for order in &orders.orders {
            orders_by_person
                .entry(order.person.clone())
                .or_default()
                .push(Arc::new(order.clone()));
        }
        Self {
            pipeline,
            alcohol: Arc::new(alcohol::Thresholds::new(&rules.alcohol)),
            orders_by_person,
        }
    }

    /// The orders of the activation's person (any dates: each rule applies an order only within
    /// its own from–to dates).
    pub fn orders_of(&self, activation: &ActivationInfo) -> &[Arc<Order>] {
        self.orders_by_person
            .get(&activation.person)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

impl RuleFactory for StandardRules {
    fn rules_for(&self, activation: &ActivationInfo) -> Vec<Box<dyn Rule>> {
        let mut rules: Vec<Box<dyn Rule>> = vec![
            Box::new(health::DeviceHealthRule::default()),
            Box::new(health::NoContactRule::new(
                self.pipeline.no_contact_ms,
                activation.from_ms,
                activation.to_ms,
            )),
        ];
        let orders = self.orders_of(activation);
        if let Some(rule) = alcohol::AlcoholRule::new(
            self.alcohol.clone(),
            activation,
            orders,
            self.pipeline.reorder_ms,
        ) {
            rules.push(Box::new(rule));
        }
        rules
    }
}
