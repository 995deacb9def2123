//! The device id a request names itself by (`id`/`deviceid`, or JSON `device_id`): what the
//! registry binds to a tag. It is sent in clear and proves nothing by itself.
//!
//! Allowed: 1 to `max_device_id_chars` ASCII letters, digits, `.`, `_`, `:` and `-`. That covers
//! the Traccar Client's random numeric ids, IMEIs, and ids people type (`tag-0042`, MAC-like
//! `a4:5e:...`), and keeps ids safe to log, to put in a URL unescaped and to use as a key.

use super::error::OsmandError;

/// Checks a device id; an empty one counts as missing.
pub fn check_device_id(id: &str, max_chars: usize) -> Result<(), OsmandError> {
    if id.is_empty() {
        return Err(OsmandError::MissingDeviceId);
    }
    let len_chars = id.chars().count();
    if len_chars > max_chars {
        return Err(OsmandError::DeviceIdTooLong {
            len_chars,
            max_chars,
        });
    }
    match id.chars().enumerate().find(|(_, ch)| !allowed(*ch)) {
        Some((index, ch)) => Err(OsmandError::DeviceIdCharacter { ch, index }),
        None => Ok(()),
    }
}

fn allowed(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | ':' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_people_and_apps_use_are_allowed() {
        for id in [
            "123456",
            "353861053849681",
            "tag-0042",
            "a4:5e:60:e8:1b:2c",
            "A_b.c",
        ] {
            assert_eq!(check_device_id(id, 64), Ok(()), "{id}");
        }
    }

    #[test]
    fn empty_long_and_odd_ids_are_refused() {
        assert_eq!(check_device_id("", 64), Err(OsmandError::MissingDeviceId));
        assert_eq!(
            check_device_id(&"1".repeat(65), 64),
            Err(OsmandError::DeviceIdTooLong {
                len_chars: 65,
                max_chars: 64
            })
        );
        assert_eq!(
            check_device_id("12 34", 64),
            Err(OsmandError::DeviceIdCharacter { ch: ' ', index: 2 })
        );
        assert_eq!(
            check_device_id("tag/../x", 64),
            Err(OsmandError::DeviceIdCharacter { ch: '/', index: 3 })
        );
        assert_eq!(
            check_device_id("ü", 64),
            Err(OsmandError::DeviceIdCharacter { ch: 'ü', index: 0 })
        );
    }
}
