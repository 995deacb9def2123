//! API users as control records carry them: a name, a role (what the user may see) and the
//! SHA-256 digest of the user's token (never the token). Users enter the durable log like every
//! other change, so the metadata database's users table is a view a rebuild or another node
//! reproduces.

use super::time::rfc3339_ms_opt;
use super::TimeMs;
use serde::{Deserialize, Serialize};

/// What a user may see (the API enforces it on every route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users, audit, retention and subject access exports.
    Admin,
    /// Monitoring centre staff: every person (restricted ones too), alerts, trails, hits review.
    Hub,
    /// A police force: only its own crimes, confirmed hits on them and the trail around a hit.
    Police { force: String },
    /// An offender manager: only the people on their caseload (never restricted ones).
    Practitioner { caseload: Vec<String> },
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Hub => "hub",
            Role::Police { .. } => "police",
            Role::Practitioner { .. } => "practitioner",
        }
    }
}

/// A user account as created: the token itself is shown once to whoever created it and only
/// its digest is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAccount {
    pub name: String,
    #[serde(flatten)]
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// When the token stops working (absent: never).
    #[serde(
        with = "rfc3339_ms_opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<TimeMs>,
}
