//! Authentication and authorisation. Every `/v1` route extracts a [`Caller`] from the bearer
//! token (401 if absent, unknown or expired); what the caller may see is decided here, in one place.
//! Routes for one set of roles extract [`Staff`] or [`Admin`] instead: the role is then checked
//! before the query or body is read, so a caller without the role gets 403 whatever it sent.

use super::error::ApiError;
use super::routes::ApiState;
use crate::model::Person;
use crate::store::metadata::{PersonScope, Role, User};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

/// The authenticated user making a request.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

/// A token configured outside the database (environment or `DATA/admin.token`): the bootstrap
/// admin, so a fresh install can create its users. Compared by digest, in constant time.
#[derive(Clone, Debug)]
pub struct BootstrapToken {
    digest: [u8; 32],
}

impl BootstrapToken {
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        if state.bootstrap.matches(token) {
            super::limits::check_query(&parts.uri)?;
            return Ok(Caller(User {
                id: 0,
                name: "bootstrap-admin".into(),
                role: Role::Admin,
                disabled: false,
                expires_ms: None,
            }));
        }
        match state.metadata.authenticate(token) {
            Ok(Some(user)) if user.expired_at(super::crimes::now_ms()) => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "token_expired",
                format!(
                    "this token expired at {}; ask an administrator for a new one",
                    user.expires_ms
                        .map(crate::model::time::format_time)
                        .unwrap_or_default()
                ),
            )),
            Ok(Some(user)) => {
                super::limits::check_query(&parts.uri)?;
                Ok(Caller(user))
            }
            Ok(None) => Err(ApiError::unauthorized()),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }
}

/// A caller with the admin or hub role (403 for any other), checked as the request's first step.
#[derive(Debug, Clone)]
pub struct Staff(pub Caller);

/// A caller with the admin role (403 for any other), checked as the request's first step.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

/// A caller with a role that deals with crimes: admin, hub or police (403 for practitioners),
/// checked as the request's first step.
#[derive(Debug, Clone)]
pub struct CrimeUser(pub Caller);

impl FromRequestParts<ApiState> for CrimeUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.role() {
            Role::Practitioner { .. } => Err(ApiError::forbidden()),
            _ => Ok(CrimeUser(caller)),
        }
    }
}

impl FromRequestParts<ApiState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_staff()?;
        Ok(Staff(caller))
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_admin()?;
        Ok(Admin(caller))
    }
}

impl Caller {
    pub fn role(&self) -> &Role {
        &self.0.role
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role() {
            Role::Admin => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// Admin or hub: the roles that manage people, orders and alerts.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        match self.role() {
            Role::Admin | Role::Hub => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// Whether the caller may see this person's data: admin and hub see everyone; a practitioner
    /// only their caseload, never restricted cases; police no one (only hits, through crimes).
    pub fn may_see(&self, person: &Person) -> bool {
        self.scope().admits(person)
    }

    /// The same rule as [`Caller::may_see`], in the form the metadata queries filter by in SQL.
    pub fn scope(&self) -> PersonScope<'_> {
        match self.role() {
            Role::Admin | Role::Hub => PersonScope::Everyone,
            Role::Practitioner { caseload } => PersonScope::Caseload(caseload),
            Role::Police { .. } => PersonScope::NoOne,
        }
    }

    /// The refusal for something that does not exist: 404 for roles that see everything, 403
    /// for the others (who must not learn whether it exists).
    pub fn missing(&self, what: &str) -> ApiError {
        match self.role() {
            Role::Admin | Role::Hub => ApiError::not_found(format!("{what} not found")),
            _ => ApiError::forbidden(),
        }
    }

    /// Whether the caller could see a person with this id at all, before looking it up (so a
    /// refusal does not reveal whether the person exists).
    pub fn may_ask_about(&self, person_id: &str) -> bool {
        match self.role() {
            Role::Admin | Role::Hub => true,
            Role::Practitioner { caseload } => caseload.iter().any(|p| p == person_id),
            Role::Police { .. } => false,
        }
    }
}

/// `GET /v1/me`: who the token belongs to and what it may see (the console's sign-in asks this).
/// Only the caller's own account: no person data, so no purpose is needed.
pub async fn me(caller: Caller) -> axum::Json<serde_json::Value> {
    let mut me = serde_json::json!({"user": caller.0.name, "role": caller.role().name()});
    match caller.role() {
        Role::Police { force } => me["force"] = force.clone().into(),
        Role::Practitioner { caseload } => me["caseload"] = caseload.clone().into(),
        Role::Admin | Role::Hub => {}
    }
    axum::Json(me)
}
