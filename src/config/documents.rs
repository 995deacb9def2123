//! `[documents]`: what a deployment puts into the documents it hands on (evidence packs,
//! reports). Plain data; `crate::documents` reads it.

use serde::{Deserialize, Serialize};

/// `[documents]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// The declaration printed above the witness statement's signature in a hit evidence pack
    /// (absent: the wording of a Criminal Justice Act 1967 s. 9 statement).
    pub witness_declaration: Option<String>,
    /// The organisation named as the maker of every document (e.g. the monitoring service).
    pub organisation: String,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            witness_declaration: None,
            organisation: "Electronic monitoring service".into(),
        }
    }
}
