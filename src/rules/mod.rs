//! The rules: one file (or folder) per concern — `health` (device events, no contact), `curfew`
//! (timetabled presence, AL08–AL12), `zones` (exclusion and inclusion zones) and `alcohol`
//! (confirmed drinking, tamper, sober days) and `hits` (a trail near a crime during its window). `local_time` and `geodesy` are the shared UK-local-time and distance helpers.
//! [`StandardRules`] builds each activation's rule set from the pipeline configuration, the rules
//! configuration and the orders of the activation's person (compiled once per person).

pub mod alcohol;
pub mod curfew;
pub mod geodesy;
pub mod health;
pub mod hits;
pub mod local_time;
pub mod zones;

use crate::model::{Condition, Order, OrdersFile};
use crate::pipeline::{ActivationInfo, PipelineConfig, Rule, RuleFactory};
use curfew::timetable::{CurfewPlan, CurfewPlanError};
use curfew::{CurfewConfig, CurfewRule};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use zones::index::{CompiledZone, ZoneError, ZoneKind, ZoneSet};
use zones::{ZoneRule, ZonesConfig};

/// Settings of the individual rules (each rule adds its own section). Every rule records its
/// version on its outputs, so a changed threshold is visible in what it produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    pub curfew: CurfewConfig,
    pub zones: ZonesConfig,
    /// Alcohol monitoring (`[rules.alcohol]`).
    pub alcohol: alcohol::AlcoholConfig,
    /// Crime hits (`[rules.hits]`).
    pub hits: hits::HitsConfig,
}

impl RulesConfig {
    /// Checks every rule's parameters.
    pub fn validate(&self) -> Result<(), alcohol::AlcoholConfigError> {
        self.alcohol.validate()
    }
}

/// A condition that could not be compiled into a rule (the rest of the order is still monitored).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleBuildError {
    #[error(transparent)]
    Curfew(#[from] CurfewPlanError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
}

/// What one person's orders compile to.
#[derive(Default)]
struct PersonRules {
    orders: Vec<Arc<Order>>,
    curfews: Vec<Arc<CurfewPlan>>,
    zones: Option<Arc<ZoneSet>>,
}

/// The rule set of every activation.
pub struct StandardRules {
    pipeline: PipelineConfig,
    rules: RulesConfig,
    alcohol: Arc<alcohol::Thresholds>,
    by_person: HashMap<String, PersonRules>,
    /// Per person, the conditions of their current orders that could not be compiled.
    build_errors: std::collections::BTreeMap<String, Vec<RuleBuildError>>,
}

impl StandardRules {
    /// The rules with no orders yet: orders arrive as control records ([`RuleFactory::set_orders_of`]).
    pub fn empty(pipeline: PipelineConfig, rules: RulesConfig) -> Self {
        Self {
            pipeline,
            alcohol: Arc::new(alcohol::Thresholds::new(&rules.alcohol)),
            rules,
            by_person: HashMap::new(),
            build_errors: Default::default(),
        }
    }

    /// The rules for every order of a (validated) set of people, activations and orders.
    pub fn new(pipeline: PipelineConfig, rules: RulesConfig, orders: &OrdersFile) -> Self {
        let mut built = Self::empty(pipeline, rules);
        let mut by_person: std::collections::BTreeMap<&str, Vec<Order>> = Default::default();
        for order in &orders.orders {
            by_person
                .entry(order.person.as_str())
                .or_default()
                .push(order.clone());
        }
        for (person, orders) in by_person {
            built.set_orders_of(person, &orders);
        }
        built
    }

    /// Compiles one person's orders.
    fn compile_person(orders: &[Order], build_errors: &mut Vec<RuleBuildError>) -> PersonRules {
        let mut person = PersonRules::default();
        let mut zones = Vec::new();
        let mut plans = Vec::new();
        for order in orders {
            person.orders.push(Arc::new(order.clone()));
            for (i, condition) in order.conditions.iter().enumerate() {
                let zone = match condition {
                    Condition::Curfew(c) => {
                        match CurfewPlan::compile(order, i, c) {
                            Ok(plan) => plans.push(plan),
                            Err(e) => build_errors.push(e.into()),
                        }
                        continue;
                    }
                    Condition::ExclusionZone(z) => {
                        CompiledZone::compile(order, ZoneKind::Exclusion, z)
                    }
                    Condition::InclusionZone(z) => {
                        CompiledZone::compile(order, ZoneKind::Inclusion, z)
                    }
                    Condition::Trail | Condition::Alcohol(_) => continue,
                };
                match zone {
                    Ok(z) => zones.push(z),
                    Err(e) => build_errors.push(e.into()),
                }
            }
        }
        // A home monitoring unit marked in one of a person's curfews decides where RF presence
        // counts in all of them.
        curfew::timetable::apply_person_units(&mut plans);
        person.curfews = plans.into_iter().map(Arc::new).collect();
        if !zones.is_empty() {
            person.zones = Some(Arc::new(ZoneSet::new(zones)));
        }
        person
    }

    /// The orders of the activation's person (any dates: each rule applies an order only within
    /// its own from–to dates).
    pub fn orders_of(&self, activation: &ActivationInfo) -> &[Arc<Order>] {
        self.by_person
            .get(&activation.person)
            .map(|p| p.orders.as_slice())
            .unwrap_or(&[])
    }

    /// Conditions that could not be compiled (and so are not monitored).
    pub fn build_errors(&self) -> Vec<RuleBuildError> {
        self.build_errors.values().flatten().cloned().collect()
    }
}

impl RuleFactory for StandardRules {
    fn set_orders_of(&mut self, person: &str, orders: &[Order]) {
        let mut errors = Vec::new();
        let compiled = Self::compile_person(orders, &mut errors);
        for e in &errors {
            tracing::warn!(error = %e, person, "condition not monitored");
        }
        if errors.is_empty() {
            self.build_errors.remove(person);
        } else {
            self.build_errors.insert(person.to_string(), errors);
        }
        if orders.is_empty() {
            self.by_person.remove(person);
        } else {
            self.by_person.insert(person.to_string(), compiled);
        }
    }

    fn unmonitored_conditions(&self) -> Vec<String> {
        self.build_errors().iter().map(|e| e.to_string()).collect()
    }

    fn rules_for(&self, activation: &ActivationInfo) -> Vec<Box<dyn Rule>> {
        let mut rules: Vec<Box<dyn Rule>> = vec![
            Box::new(health::DeviceHealthRule::default()),
            Box::new(health::NoContactRule::new(
                self.pipeline.no_contact_ms,
                activation.from_ms,
                activation.to_ms,
            )),
        ];
        if let Some(person) = self.by_person.get(&activation.person) {
            for plan in &person.curfews {
                rules.push(Box::new(CurfewRule::new(
                    plan.clone(),
                    self.rules.curfew,
                    activation,
                )));
            }
            if let Some(zones) = person.zones.as_ref().filter(|z| !z.is_empty()) {
                rules.push(Box::new(ZoneRule::new(zones.clone(), self.rules.zones)));
            }
        }
        if let Some(rule) = alcohol::AlcoholRule::new(
            self.alcohol.clone(),
            activation,
            self.orders_of(activation),
            self.pipeline.reorder_ms,
        ) {
            rules.push(Box::new(rule));
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::orders_file::parse_orders;

    #[test]
    fn rule_sections_parse_from_toml_with_defaults_for_the_rest() {
        let config: RulesConfig =
            toml::from_str("[curfew]\nsettle_ms = 60000\n[zones]\ndwell_ms = 120000\n").unwrap();
        assert_eq!(config.curfew.settle_ms, 60_000);
        assert_eq!(config.curfew.gps_away_min_fixes, 3);
        assert_eq!(config.zones.dwell_ms, 120_000);
        assert!(toml::from_str::<RulesConfig>("[curfew]\nsettle = 1\n").is_err());
    }

    #[test]
    fn conditions_that_cannot_be_compiled_are_reported_and_the_rest_monitored() {
        let doc = r#"{"people":[{"id":"P1"}],
          "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z"}],
          "orders":[{"id":"O1","person":"P1","from":"2026-03-01","conditions":[
            {"type":"exclusion_zone","id":"Z1","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}},
            {"type":"exclusion_zone","id":"Z2","geometry":{"type":"Point","coordinates":[-2.6,51.45]},"radius_m":100}]}]}"#;
        let orders = parse_orders(doc).unwrap().accepted;
        let rules = StandardRules::new(PipelineConfig::default(), RulesConfig::default(), &orders);
        assert_eq!(rules.build_errors().len(), 1);
        assert!(rules.build_errors()[0].to_string().contains("zone 'Z1'"));
        let info = ActivationInfo {
            id: "A1".into(),
            person: "P1".into(),
            tag: "T1".into(),
            from_ms: 0,
            to_ms: None,
        };
        let names: Vec<_> = rules.rules_for(&info).iter().map(|r| r.name()).collect();
        assert_eq!(names, vec!["health", "no_contact", "zones"]);
    }
}
