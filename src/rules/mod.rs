//! The rules: one file per concern (`health` now; `curfew`, `zones`, `hits`, `alcohol` follow).
//! [`StandardRules`] builds the rule set for each activation.

pub mod health;

use crate::pipeline::{ActivationInfo, PipelineConfig, Rule, RuleFactory};

/// The rule set every activation gets, from the pipeline configuration.
pub struct StandardRules {
    config: PipelineConfig,
}

impl StandardRules {
    pub fn new(config: PipelineConfig) -> Self {
        Self { config }
    }
}

impl RuleFactory for StandardRules {
    fn rules_for(&self, activation: &ActivationInfo) -> Vec<Box<dyn Rule>> {
        vec![
            Box::new(health::DeviceHealthRule::default()),
            Box::new(health::NoContactRule::new(
                self.config.no_contact_ms,
                activation.from_ms,
                activation.to_ms,
            )),
        ]
    }
}
