//! API users and their roles. Tokens are random, shown once, and stored only as SHA-256 digests;
//! a token may carry an expiry, after which it is refused (401).

use super::{Metadata, MetadataError};
use crate::model::{Change, ControlRecord, TimeMs, UserAccount};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;

pub use crate::model::Role;

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(flatten)]
    pub role: Role,
    pub disabled: bool,
    /// When the token stops working (`None`: never).
    #[serde(rename = "expires_at", with = "crate::model::time::rfc3339_ms_opt")]
    pub expires_ms: Option<TimeMs>,
}

impl User {
    /// Whether the token has expired at `now_ms`.
    pub fn expired_at(&self, now_ms: TimeMs) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// The expiry of a new token: an RFC 3339 time (`expires`), or a duration from `now_ms`
/// (`expires_in`: a whole number and a unit, `s`, `m`, `h`, `d` or `w`, e.g. `30d`); not both.
/// `None`: the token never expires.
pub fn parse_expiry(
    expires: Option<&str>,
    expires_in: Option<&str>,
    now_ms: TimeMs,
) -> Result<Option<TimeMs>, String> {
    let at = match (expires, expires_in) {
        (Some(_), Some(_)) => return Err("give 'expires' or 'expires_in', not both".into()),
        (None, None) => return Ok(None),
        (Some(t), None) => crate::model::time::parse_time(t.trim())?,
        (None, Some(d)) => {
            let d = d.trim();
            let bad = || format!("'{d}' is not a duration like 90m, 12h, 30d or 2w");
            let split = d.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let (n, unit) = d.split_at(split);
            let n: i64 = n.parse().map_err(|_| bad())?;
            let unit_ms: i64 = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            if n == 0 {
                return Err("an expiry duration must be more than 0".into());
            }
            // Ten years at most: a longer-lived token is a token that never expires.
            const MAX_MS: i64 = 3_660 * 86_400_000;
            let ms = n
                .checked_mul(unit_ms)
                .filter(|ms| *ms <= MAX_MS)
                .ok_or_else(|| format!("'{d}' is too long: a token may live at most 3660 days"))?;
            now_ms + ms
        }
    };
    if at <= now_ms {
        return Err("the expiry is in the past".into());
    }
    Ok(Some(at))
}

/// A user whose caseload holds a person (subject access export).
#[derive(Debug, Clone, Serialize)]
pub struct CaseloadLink {
    pub user: String,
    pub role: String,
    pub disabled: bool,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    /// When the token stops working (`None`: never).
    pub expires_ms: Option<TimeMs>,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> Result<String, MetadataError> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| {
            MetadataError::Invalid(format!("cannot read /dev/urandom for a token: {e}"))
        })?;
    Ok(format!("ts_{}", hex::encode(buf)))
}

/// A new account for `user` with a fresh token: checked, not stored. The caller appends it to
/// the log as a `put_user` control record (the users table follows the log) and shows the token
/// once.
pub fn new_account(user: &NewUser) -> Result<(UserAccount, String), MetadataError> {
    let token = new_token()?;
    let account = account_with_token(user, &token)?;
    Ok((account, token))
}

/// The account of `user` with a given token (demo and tests; production uses [`new_account`]).
pub fn account_with_token(user: &NewUser, token: &str) -> Result<UserAccount, MetadataError> {
    check_account(&user.name, &user.role).map_err(MetadataError::Invalid)?;
    Ok(UserAccount {
        name: user.name.clone(),
        role: user.role.clone(),
        token_sha256: digest(token),
        expires: user.expires_ms,
    })
}

fn check_account(name: &str, role: &Role) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a user needs a name".into());
    }
    if matches!(role, Role::Police { force } if force.trim().is_empty()) {
        return Err("a police user needs a force".into());
    }
    Ok(())
}

impl Metadata {
    /// Creates a user straight in the table, outside the log (unit tests of the views only).
    #[cfg(test)]
    pub fn add_user_with_token(&self, user: &NewUser, token: &str) -> Result<(), MetadataError> {
        let control = ControlRecord {
            recorded: 0,
            actor: "test".into(),
            effective: None,
            change: Change::PutUser {
                user: account_with_token(user, token)?,
            },
        };
        self.apply_user_record(0, &control)?
            .map_err(MetadataError::Conflict)
    }

    /// Every user record (log record number) below this one has been taken by the users table.
    pub fn users_applied_below(&self) -> Result<u64, MetadataError> {
        let below: Option<i64> = self
            .lock()
            .query_row(
                "SELECT applied_below FROM users_applied WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(below.unwrap_or(0) as u64)
    }

    /// Applies a user or tag credential record (`put_user`, `disable_user`, `revoke_tag`,
    /// `rotate_tag`, `tag_credential_state`, `bind_device`, `unbind_device`; log record `record`, at its recorded time) in one transaction with the
    /// users table's mark, so a record is taken exactly once (a rotation counts). `Ok(Err(reason))`:
    /// refused, the same way on every replay (a name taken by another token, an unknown user).
    /// Not such a record: nothing to do.
    pub fn apply_user_record(
        &self,
        record: u64,
        control: &ControlRecord,
    ) -> Result<Result<(), String>, MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        // Already taken (a catch-up meeting a record the view applied): a rotation must not
        // count twice. Records arrive in log order, so the mark says which were.
        let below: Option<i64> = tx
            .query_row(
                "SELECT applied_below FROM users_applied WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if control.change.is_user() && (record as i64) < below.unwrap_or(0) {
            return Ok(Ok(()));
        }
        let outcome = match &control.change {
            Change::PutUser { user } => put_user(&tx, user, control.recorded)?,
            Change::DisableUser { name } => {
                let n = tx.execute("UPDATE users SET disabled = 1 WHERE name = ?1", [name])?;
                if n == 0 {
                    Err(format!("user '{name}' not found"))
                } else {
                    Ok(())
                }
            }
            Change::RevokeTag { tag } => {
                super::tag_credentials::revoke_in(&tx, tag, control.recorded)?;
                Ok(())
            }
            Change::RotateTag { tag } => {
                super::tag_credentials::rotate_in(&tx, tag, control.recorded)?;
                Ok(())
            }
            Change::TagCredentialState {
                tag,
                generation,
                revoked_ms,
            } => {
                super::tag_credentials::set_in(
                    &tx,
                    tag,
                    *generation,
                    *revoked_ms,
                    control.recorded,
                )?;
                Ok(())
            }
            Change::BindDevice { binding } => {
                super::device_bindings::bind_in(&tx, binding, control)?
            }
            Change::UnbindDevice { protocol, device } => {
                super::device_bindings::unbind_in(&tx, *protocol, device)?
            }
            _ => return Ok(Ok(())),
        };
        tx.execute(
            "INSERT INTO users_applied (id, applied_below) VALUES (1, ?1)
             ON CONFLICT(id) DO UPDATE SET applied_below = MAX(applied_below, ?1)",
            [record as i64 + 1],
        )?;
        tx.commit()?;
        drop(conn);
        if control.change.is_tag_credential() {
            self.note_credential_change();
        }
        Ok(outcome)
    }

    /// Every user with their token digest and whether disabled (the one-time migration of a
    /// users table written before users were log records).
    pub fn user_accounts(&self) -> Result<Vec<(UserAccount, bool)>, MetadataError> {
        let rows: Vec<(String, String, bool)> = {
            let conn = self.lock();
            let mut stmt =
                conn.prepare("SELECT name, token_sha256, disabled FROM users ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let mut accounts = Vec::new();
        for (name, token_sha256, disabled) in rows {
            if let Some(user) = self.user_by_name(&name)? {
                let account = UserAccount {
                    name,
                    role: user.role,
                    token_sha256,
                    expires: user.expires_ms,
                };
                accounts.push((account, disabled));
            }
        }
        Ok(accounts)
    }

    fn load_user(&self, where_sql: &str, arg: &str) -> Result<Option<User>, MetadataError> {
        let conn = self.lock();
        // Cached: every API request authenticates through here.
        let row = conn
            .prepare_cached(&format!(
                "SELECT id, name, role, force, disabled, expires_ms FROM users WHERE {where_sql}"
            ))?
            .query_row([arg], |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ),
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })
            .optional()?;
        let Some(((id, name, role), force, disabled, expires_ms)) = row else {
            return Ok(None);
        };
        let role = match role.as_str() {
            "admin" => Role::Admin,
            "hub" => Role::Hub,
            "police" => Role::Police {
                force: force.unwrap_or_default(),
            },
            "practitioner" => {
                let mut stmt = conn.prepare_cached(
                    "SELECT person FROM caseloads WHERE user_id = ?1 ORDER BY person",
                )?;
                let caseload = stmt
                    .query_map([id], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Role::Practitioner { caseload }
            }
            other => {
                return Err(MetadataError::Corrupt {
                    what: format!("user {name}"),
                    message: format!("unknown role '{other}'"),
                })
            }
        };
        Ok(Some(User {
            id,
            name,
            role,
            disabled,
            expires_ms,
        }))
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<User>, MetadataError> {
        self.load_user("name = ?1", name)
    }

    /// The enabled user holding this token, if any (expired or not: the API tells an expired
    /// token apart, see [`User::expired_at`]).
    pub fn authenticate(&self, token: &str) -> Result<Option<User>, MetadataError> {
        Ok(self
            .load_user("token_sha256 = ?1", &digest(token))?
            .filter(|u| !u.disabled))
    }

    pub fn list_users(&self) -> Result<Vec<User>, MetadataError> {
        let names: Vec<String> = {
            let conn = self.lock();
            let mut stmt = conn.prepare("SELECT name FROM users ORDER BY name")?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            names
        };
        let mut users = Vec::new();
        for name in names {
            if let Some(u) = self.user_by_name(&name)? {
                users.push(u);
            }
        }
        Ok(users)
    }

    /// The users whose caseload holds `person`, by name.
    pub fn caseload_links(&self, person: &str) -> Result<Vec<CaseloadLink>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT u.name, u.role, u.disabled FROM caseloads c JOIN users u ON u.id = c.user_id
             WHERE c.person = ?1 ORDER BY u.name",
        )?;
        let rows = stmt.query_map([person], |r| {
            Ok(CaseloadLink {
                user: r.get(0)?,
                role: r.get(1)?,
                disabled: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Inserts `user` (created at `created_ms`) unless the name is taken: by the same token, this
/// record applied again (accepted, nothing changes); by another, refused.
fn put_user(
    tx: &rusqlite::Transaction<'_>,
    user: &UserAccount,
    created_ms: TimeMs,
) -> Result<Result<(), String>, MetadataError> {
    if let Err(reason) = check_account(&user.name, &user.role) {
        return Ok(Err(reason));
    }
    let existing: Option<String> = tx
        .query_row(
            "SELECT token_sha256 FROM users WHERE name = ?1",
            [&user.name],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(digest) if digest == user.token_sha256 => return Ok(Ok(())),
        Some(_) => return Ok(Err(format!("user '{}' already exists", user.name))),
        None => {}
    }
    let force = match &user.role {
        Role::Police { force } => Some(force.clone()),
        _ => None,
    };
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO users (name, role, force, token_sha256, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            user.name,
            user.role.name(),
            force,
            user.token_sha256,
            created_ms,
            user.expires
        ],
    )?;
    if inserted == 0 {
        // The digest is UNIQUE: another user holds this token (never, with random tokens).
        return Ok(Err(format!(
            "user '{}': the token is another user's",
            user.name
        )));
    }
    let id = tx.last_insert_rowid();
    if let Role::Practitioner { caseload } = &user.role {
        for person in caseload {
            tx.execute(
                "INSERT OR IGNORE INTO caseloads (user_id, person) VALUES (?1, ?2)",
                params![id, person],
            )?;
        }
    }
    Ok(Ok(()))
}
