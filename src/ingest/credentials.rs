//! The server's view of tag credentials: the tag key plus, per tag, the credential generation
//! and revocation held durably in the metadata store (`store::metadata::tag_credentials`).
//!
//! Revocations and rotations are control records (`revoke_tag`, `rotate_tag`): they enter
//! through the log like any write and every node applies them to its metadata store in log
//! order, so a tag revoked through one node of a cluster is refused by all of them.
//!
//! Hellos are checked against an in-memory copy, so authentication never waits on SQLite; the
//! copy is reloaded when the store has taken a credential record since it was loaded
//! ([`Metadata::credential_changes`]). If that reload fails the tag is refused (fail closed).
//!
//! Policy: rotation has no overlap — the moment it is applied the previous secret is refused,
//! at hello and on live connections (at their next batch). Revocation likewise ends live
//! connections at their next batch; a revoked tag stays refused until it is rotated.

use crate::model::DeviceProtocol;
use crate::store::metadata::{Metadata, MetadataError};
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
    #[error("tag credentials cannot be read now; retry later")]
    Unavailable,
    #[error("{protocol} device '{device}' is not bound to a tag")]
    UnknownDevice {
        protocol: DeviceProtocol,
        device: String,
    },
    #[error("{protocol} device '{device}' is no longer bound to tag '{tag}'")]
    Unbound {
        protocol: DeviceProtocol,
        device: String,
        tag: String,
    },
}

impl CredentialRefusal {
    /// The wire code for the error frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AuthFailed { .. }
            | Self::Rotated { .. }
            | Self::UnknownDevice { .. }
            | Self::Unbound { .. } => ErrorCode::AuthFailed,
            Self::Revoked { .. } => ErrorCode::TagRevoked,
            Self::Unavailable => ErrorCode::Internal,
        }
    }
}

/// Generation and revocation of the tags that have a stored row (others: generation 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    generation: u64,
    revoked: bool,
}

/// What the copy holds: each tag's state and each bound device's tag.
#[derive(Debug, Default)]
struct Loaded {
    states: HashMap<String, State>,
    devices: HashMap<(DeviceProtocol, String), String>,
}

pub struct TagCredentials {
    key: Vec<u8>,
    metadata: Option<Metadata>,
    /// The copy and the store's credential change count it was loaded at.
    states: RwLock<(Loaded, u64)>,
}

impl TagCredentials {
    /// Credentials backed by the metadata store (loads every stored row).
    pub fn load(key: Vec<u8>, metadata: Metadata) -> Result<Self, MetadataError> {
        let loaded = load_states(&metadata)?;
        Ok(Self {
            key,
            metadata: Some(metadata),
            states: RwLock::new(loaded),
        })
    }

    /// Every tag at generation 0 and nothing revocable (tests and tools without a store).
    pub fn key_only(key: Vec<u8>) -> Self {
        Self {
            key,
            metadata: None,
            states: RwLock::new((Loaded::default(), 0)),
        }
    }

    /// `tag`'s state, reloading the copy first if the store took a credential record since.
    fn state(&self, tag: &str) -> Result<State, CredentialRefusal> {
        self.refresh()?;
        Ok(self
            .states
            .read()
            .0
            .states
            .get(tag)
            .copied()
            .unwrap_or(State {
                generation: 0,
                revoked: false,
            }))
    }

    /// Reloads the copy if the store took a credential record since it was loaded.
    fn refresh(&self) -> Result<(), CredentialRefusal> {
        if let Some(metadata) = &self.metadata {
            let changes = metadata.credential_changes();
            if self.states.read().1 != changes {
                let loaded = load_states(metadata).map_err(|e| {
                    tracing::error!(error = %e, "reloading tag credentials failed; refusing tags until it works");
                    CredentialRefusal::Unavailable
                })?;
                let mut states = self.states.write();
                // A concurrent reload may have got further: keep the newer copy.
                if loaded.1 >= states.1 {
                    *states = loaded;
                }
            }
        }
        Ok(())
    }

    /// The tag a device is bound to now.
    fn tag_of_device(
        &self,
        protocol: DeviceProtocol,
        device: &str,
    ) -> Result<Option<String>, CredentialRefusal> {
        self.refresh()?;
        let copy = self.states.read();
        Ok(copy.0.devices.get(&(protocol, device.to_string())).cloned())
    }

    /// Checks a third-party device: it must be bound to a tag, and the tag not revoked. The
    /// device's own proof (a client certificate naming it, a token) is the listener's to check
    /// first. Returns the tag and the credential generation it was accepted at.
    pub fn authenticate_device(
        &self,
        protocol: DeviceProtocol,
        device: &str,
    ) -> Result<(String, u64), CredentialRefusal> {
        let Some(tag) = self.tag_of_device(protocol, device)? else {
            return Err(CredentialRefusal::UnknownDevice {
                protocol,
                device: device.to_string(),
            });
        };
        let state = self.state(&tag)?;
        if state.revoked {
            return Err(CredentialRefusal::Revoked { tag });
        }
        Ok((tag, state.generation))
    }

    /// The token a device presents where its protocol has no certificate (OsmAnd over HTTPS):
    /// derived from the tag key, the device and its tag's credential generation, so rotating the
    /// tag changes it and nothing needs storing.
    pub fn device_token(&self, protocol: DeviceProtocol, device: &str, generation: u64) -> String {
        tag_secret_at(&self.key, &format!("{protocol}:{device}"), generation)
    }

    /// [`Self::authenticate_device`], then the device's token (compared in constant time).
    pub fn authenticate_device_token(
        &self,
        protocol: DeviceProtocol,
        device: &str,
        token: &str,
    ) -> Result<(String, u64), CredentialRefusal> {
        let (tag, generation) = self.authenticate_device(protocol, device)?;
        let id = format!("{protocol}:{device}");
        if !secret_matches_at(&self.key, &id, generation, token) {
            return Err(CredentialRefusal::AuthFailed { tag });
        }
        Ok((tag, generation))
    }

    /// Whether a device session accepted as `tag` at `generation` may go on: still bound to the
    /// tag, which is neither revoked nor rotated since.
    pub fn device_still_valid(
        &self,
        protocol: DeviceProtocol,
        device: &str,
        tag: &str,
        generation: u64,
    ) -> Result<(), CredentialRefusal> {
        if self.tag_of_device(protocol, device)?.as_deref() != Some(tag) {
            return Err(CredentialRefusal::Unbound {
                protocol,
                device: device.to_string(),
                tag: tag.to_string(),
            });
        }
        self.still_valid(tag, generation)
    }

    /// Checks a hello; returns the generation the tag authenticated at.
    pub fn authenticate(&self, tag: &str, secret: &str) -> Result<u64, CredentialRefusal> {
        let state = self.state(tag)?;
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
        let state = self.state(tag)?;
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
    pub fn current_secret(&self, tag: &str) -> Result<String, CredentialRefusal> {
        Ok(tag_secret_at(&self.key, tag, self.state(tag)?.generation))
    }

    /// The secret of `tag` at credential `generation` (a rotation's answer).
    pub fn secret_at(&self, tag: &str, generation: u64) -> String {
        tag_secret_at(&self.key, tag, generation)
    }
}

/// Every stored state, with the store's credential change count read before them (a record
/// taken while they are read makes the next check reload again).
fn load_states(metadata: &Metadata) -> Result<(Loaded, u64), MetadataError> {
    let changes = metadata.credential_changes();
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
    let devices = metadata
        .device_bindings()?
        .into_iter()
        .map(|b| ((b.protocol, b.device), b.tag))
        .collect();
    Ok((Loaded { states, devices }, changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, ControlRecord};
    use crate::wire::tag_secret;

    fn apply(metadata: &Metadata, record: u64, change: Change) {
        let control = ControlRecord {
            recorded: 1_000 + record as i64,
            actor: "test".into(),
            effective: None,
            change,
        };
        metadata
            .apply_user_record(record, &control)
            .unwrap()
            .unwrap();
    }

    #[test]
    fn revoke_then_rotate_records_reach_the_copy_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = vec![9u8; 32];
        let metadata = Metadata::open(dir.path()).unwrap();
        let creds = TagCredentials::load(key.clone(), metadata.clone()).unwrap();
        let old = tag_secret(&key, "T1");
        assert_eq!(creds.authenticate("T1", &old), Ok(0));
        apply(&metadata, 5, Change::RevokeTag { tag: "T1".into() });
        assert_eq!(
            creds.authenticate("T1", &old).unwrap_err().code(),
            ErrorCode::TagRevoked
        );
        assert_eq!(
            creds.authenticate("T1", "wrong").unwrap_err().code(),
            ErrorCode::AuthFailed
        );
        assert!(creds.still_valid("T1", 0).is_err());
        apply(&metadata, 6, Change::RotateTag { tag: "T1".into() });
        let new = creds.secret_at("T1", 1);
        assert!(creds.authenticate("T1", &old).is_err());
        assert_eq!(creds.authenticate("T1", &new), Ok(1));
        assert_eq!(creds.current_secret("T1"), Ok(new.clone()));
        // The same record again (a catch-up after a crash) is not a second rotation.
        apply(&metadata, 6, Change::RotateTag { tag: "T1".into() });
        assert_eq!(metadata.users_applied_below().unwrap(), 7);
        // A restart sees the same state.
        let again = TagCredentials::load(key, Metadata::open(dir.path()).unwrap()).unwrap();
        assert_eq!(again.authenticate("T1", &new), Ok(1));
        assert!(again.authenticate("T1", &old).is_err());
    }
}
