//! The server's view of tag credentials: the tag key plus, per tag, the credential generation
//! and revocation held durably in the metadata store (`store::metadata::tag_credentials`).
//!
//! Hellos are checked against an in-memory copy, so authentication never waits on SQLite;
//! [`TagCredentials::revoke`] and [`TagCredentials::rotate`] write the store first and update the
//! copy only once that succeeded. While the server runs it is the only writer (the offline
//! `tagstream tags` commands take the data directory lock).
//!
//! Policy: rotation has no overlap — the moment it is stored the previous secret is refused,
//! at hello and on live connections (at their next batch). Revocation likewise ends live
//! connections at their next batch; a revoked tag stays refused until it is rotated.

use crate::store::metadata::{Metadata, MetadataError, TagCredential};
use crate::wire::{secret_matches_at, tag_secret_at, ErrorCode};
use parking_lot::RwLock;
use std::collections::HashMap;

/// Why a tag is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialRefusal {
    #[error("authentication failed for tag '{tag}'")]
    AuthFailed { tag: String },
    #[error("tag '{tag}' is revoked; it needs new credentials")]
    Revoked { tag: String },
    #[error("the credentials of tag '{tag}' were rotated; reconnect with the new secret")]
    Rotated { tag: String },
}

impl CredentialRefusal {
    /// The wire code for the error frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AuthFailed { .. } | Self::Rotated { .. } => ErrorCode::AuthFailed,
            Self::Revoked { .. } => ErrorCode::TagRevoked,
        }
    }
}

/// Generation and revocation of the tags that have a stored row (others: generation 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    generation: u64,
    revoked: bool,
}

pub struct TagCredentials {
    key: Vec<u8>,
    metadata: Option<Metadata>,
    states: RwLock<HashMap<String, State>>,
}

impl TagCredentials {
    /// Credentials backed by the metadata store (loads every stored row).
    pub fn load(key: Vec<u8>, metadata: Metadata) -> Result<Self, MetadataError> {
        let states = metadata
            .tag_credentials()?
            .into_iter()
            .map(|c| {
                (
                    c.tag,
                    State {
                        generation: c.generation,
                        revoked: c.revoked_ms.is_some(),
                    },
                )
            })
            .collect();
        Ok(Self {
            key,
            metadata: Some(metadata),
            states: RwLock::new(states),
        })
    }

    /// Every tag at generation 0 and nothing revocable (tests and tools without a store).
    pub fn key_only(key: Vec<u8>) -> Self {
        Self {
            key,
            metadata: None,
            states: RwLock::new(HashMap::new()),
        }
    }

    fn state(&self, tag: &str) -> State {
        self.states.read().get(tag).copied().unwrap_or(State {
            generation: 0,
            revoked: false,
        })
    }

    /// Checks a hello; returns the generation the tag authenticated at.
    pub fn authenticate(&self, tag: &str, secret: &str) -> Result<u64, CredentialRefusal> {
        let state = self.state(tag);
        // The secret is checked first so that revocation status is not disclosed to a caller
        // who does not hold the tag's (last) secret.
        if !secret_matches_at(&self.key, tag, state.generation, secret) {
            return Err(CredentialRefusal::AuthFailed {
                tag: tag.to_string(),
            });
        }
        if state.revoked {
            return Err(CredentialRefusal::Revoked {
                tag: tag.to_string(),
            });
        }
        Ok(state.generation)
    }

    /// Whether a session that authenticated at `generation` may go on: the tag is neither
    /// revoked nor rotated since.
    pub fn still_valid(&self, tag: &str, generation: u64) -> Result<(), CredentialRefusal> {
        let state = self.state(tag);
        if state.revoked {
            return Err(CredentialRefusal::Revoked {
                tag: tag.to_string(),
            });
        }
        if state.generation != generation {
            return Err(CredentialRefusal::Rotated {
                tag: tag.to_string(),
            });
        }
        Ok(())
    }

    /// The secret `tag` must present now.
    pub fn current_secret(&self, tag: &str) -> String {
        tag_secret_at(&self.key, tag, self.state(tag).generation)
    }

    fn store(&self) -> Result<&Metadata, MetadataError> {
        self.metadata
            .as_ref()
            .ok_or_else(|| MetadataError::Invalid("tag credentials have no metadata store".into()))
    }

    fn remember(&self, credential: &TagCredential) {
        self.states.write().insert(
            credential.tag.clone(),
            State {
                generation: credential.generation,
                revoked: credential.revoked_ms.is_some(),
            },
        );
    }

    /// Revokes `tag` durably, then refuses it.
    pub fn revoke(&self, tag: &str, now_ms: i64) -> Result<TagCredential, MetadataError> {
        let credential = self.store()?.revoke_tag(tag, now_ms)?;
        self.remember(&credential);
        Ok(credential)
    }

    /// Moves `tag` to a new generation durably (clearing any revocation) and returns the new
    /// state with its secret.
    pub fn rotate(&self, tag: &str, now_ms: i64) -> Result<(TagCredential, String), MetadataError> {
        let credential = self.store()?.rotate_tag(tag, now_ms)?;
        self.remember(&credential);
        let secret = tag_secret_at(&self.key, tag, credential.generation);
        Ok((credential, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tag_secret;

    #[test]
    fn revoke_then_rotate_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let key = vec![9u8; 32];
        let creds = TagCredentials::load(key.clone(), Metadata::open(dir.path()).unwrap()).unwrap();
        let old = tag_secret(&key, "T1");
        assert_eq!(creds.authenticate("T1", &old), Ok(0));
        creds.revoke("T1", 5).unwrap();
        assert_eq!(
            creds.authenticate("T1", &old).unwrap_err().code(),
            ErrorCode::TagRevoked
        );
        assert_eq!(
            creds.authenticate("T1", "wrong").unwrap_err().code(),
            ErrorCode::AuthFailed
        );
        assert!(creds.still_valid("T1", 0).is_err());
        let (state, new) = creds.rotate("T1", 6).unwrap();
        assert_eq!(state.generation, 1);
        assert!(creds.authenticate("T1", &old).is_err());
        assert_eq!(creds.authenticate("T1", &new), Ok(1));
        assert_eq!(creds.current_secret("T1"), new);
        // A restart sees the same state.
        let again = TagCredentials::load(key, Metadata::open(dir.path()).unwrap()).unwrap();
        assert_eq!(again.authenticate("T1", &new), Ok(1));
        assert!(again.authenticate("T1", &old).is_err());
    }
}
