//! Devices bound to tags (`device_bindings`): the view of the log's `bind_device` and
//! `unbind_device` records that the device listeners authenticate against.

use super::{Metadata, MetadataError};
use crate::model::time::rfc3339_ms;
use crate::model::{ControlRecord, DeviceBinding, DeviceProtocol};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A binding as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundDevice {
    pub protocol: DeviceProtocol,
    pub device: String,
    pub tag: String,
    #[serde(rename = "bound", with = "rfc3339_ms")]
    pub bound_ms: i64,
    /// Who made the binding.
    pub actor: String,
}

fn protocol_of(name: &str) -> Result<DeviceProtocol, MetadataError> {
    DeviceProtocol::parse(name).ok_or_else(|| MetadataError::Corrupt {
        what: "device binding protocol".into(),
        message: format!("'{name}' is not a device protocol"),
    })
}

impl Metadata {
    /// Every bound device, by protocol and device id.
    pub fn device_bindings(&self) -> Result<Vec<BoundDevice>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT protocol, device, tag, bound_ms, actor FROM device_bindings
             ORDER BY protocol, device",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (protocol, device, tag, bound_ms, actor) = row?;
            out.push(BoundDevice {
                protocol: protocol_of(&protocol)?,
                device,
                tag,
                bound_ms,
                actor,
            });
        }
        Ok(out)
    }

    /// The binding of one device, if it is bound.
    pub fn device_binding(
        &self,
        protocol: DeviceProtocol,
        device: &str,
    ) -> Result<Option<BoundDevice>, MetadataError> {
        Ok(self
            .device_bindings()?
            .into_iter()
            .find(|b| b.protocol == protocol && b.device == device))
    }
}

/// Binds a device to a tag. A device already bound moves to the new tag (a faulty tracker's
/// replacement keeps its tag by binding the new IMEI; a tracker moved to another tag by binding
/// it again); a tag already bound to a different device is refused: one device per tag, so a
/// tag's readings never come from two sources at once.
pub(super) fn bind_in(
    conn: &rusqlite::Connection,
    binding: &DeviceBinding,
    control: &ControlRecord,
) -> Result<Result<(), String>, MetadataError> {
    let protocol = binding.protocol.as_str();
    let holder: Option<(String, String)> = conn
        .query_row(
            "SELECT protocol, device FROM device_bindings WHERE tag = ?1",
            params![binding.tag],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((held_protocol, held_device)) = holder {
        if held_protocol != protocol || held_device != binding.device {
            return Ok(Err(format!(
                "tag '{}' is already bound to {held_protocol} device '{held_device}'; unbind it first",
                binding.tag
            )));
        }
    }
    conn.execute(
        "INSERT INTO device_bindings (protocol, device, tag, bound_ms, actor)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(protocol, device) DO UPDATE SET
            tag = excluded.tag, bound_ms = excluded.bound_ms, actor = excluded.actor",
        params![
            protocol,
            binding.device,
            binding.tag,
            control.recorded,
            control.actor
        ],
    )?;
    Ok(Ok(()))
}

/// Unbinds a device; one not bound is refused (nothing to undo, and the caller named it wrong).
pub(super) fn unbind_in(
    conn: &rusqlite::Connection,
    protocol: DeviceProtocol,
    device: &str,
) -> Result<Result<(), String>, MetadataError> {
    let n = conn.execute(
        "DELETE FROM device_bindings WHERE protocol = ?1 AND device = ?2",
        params![protocol.as_str(), device],
    )?;
    Ok(if n == 0 {
        Err(format!("{protocol} device '{device}' is not bound"))
    } else {
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Change;

    fn apply(m: &Metadata, record: u64, change: Change) -> Result<(), String> {
        let control = ControlRecord {
            recorded: 1_000 + record as i64,
            actor: "admin".into(),
            effective: None,
            change,
        };
        m.apply_user_record(record, &control).unwrap()
    }

    fn bind(device: &str, tag: &str) -> Change {
        Change::BindDevice {
            binding: DeviceBinding {
                protocol: DeviceProtocol::Teltonika,
                device: device.into(),
                tag: tag.into(),
            },
        }
    }

    #[test]
    fn one_device_per_tag_rebinding_moves_and_unbinding_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path()).unwrap();
        let before = m.credential_changes();
        assert_eq!(apply(&m, 1, bind("111111111111111", "T1")), Ok(()));
        assert!(m.credential_changes() > before, "listeners reload");
        let refused = apply(&m, 2, bind("222222222222222", "T1")).unwrap_err();
        assert!(refused.contains("already bound"), "{refused}");
        // The same device to another tag moves it.
        assert_eq!(apply(&m, 3, bind("111111111111111", "T2")), Ok(()));
        let all = m.device_bindings().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].tag.as_str(), all[0].bound_ms), ("T2", 1_003));
        // The same record again (a catch-up after a crash) changes nothing.
        assert_eq!(apply(&m, 3, bind("111111111111111", "T2")), Ok(()));
        let unbind = |record| {
            apply(
                &m,
                record,
                Change::UnbindDevice {
                    protocol: DeviceProtocol::Teltonika,
                    device: "111111111111111".into(),
                },
            )
        };
        assert_eq!(unbind(4), Ok(()));
        assert!(unbind(5).unwrap_err().contains("is not bound"));
        drop(m);
        let m = Metadata::open(dir.path()).unwrap();
        assert!(m.device_bindings().unwrap().is_empty());
        assert_eq!(apply(&m, 6, bind("222222222222222", "T1")), Ok(()));
        let bound = m
            .device_binding(DeviceProtocol::Teltonika, "222222222222222")
            .unwrap()
            .unwrap();
        assert_eq!(bound.tag, "T1");
    }
}
