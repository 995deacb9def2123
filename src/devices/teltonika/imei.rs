//! The handshake's device identity: 15 ASCII digits. An IMEI travels in clear and is no
//! credential; it only names which device claims to be talking.

use super::error::TeltonikaError;
use std::fmt;

/// Digits in an IMEI.
pub const IMEI_DIGITS: usize = 15;

/// Bytes of the big-endian length in front of the IMEI.
pub const IMEI_LENGTH_BYTES: usize = 2;

/// A device's IMEI, checked to be 15 ASCII digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Imei([u8; IMEI_DIGITS]);

impl Imei {
    /// Checks `digits` (the bytes after the length field; offsets in errors count from the
    /// start of the handshake).
    pub fn from_digits(digits: &[u8]) -> Result<Self, TeltonikaError> {
        let array: [u8; IMEI_DIGITS] =
            digits.try_into().map_err(|_| TeltonikaError::ImeiLength {
                len_bytes: u16::try_from(digits.len()).unwrap_or(u16::MAX),
                expected: IMEI_DIGITS,
            })?;
        if let Some(index) = array.iter().position(|b| !b.is_ascii_digit()) {
            return Err(TeltonikaError::ImeiNotDigit {
                byte: array[index],
                offset: IMEI_LENGTH_BYTES + index,
            });
        }
        Ok(Self(array))
    }

    pub fn as_str(&self) -> &str {
        // Checked to be ASCII digits when made.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8; IMEI_DIGITS] {
        &self.0
    }
}

impl std::str::FromStr for Imei {
    type Err = TeltonikaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_digits(s.as_bytes())
    }
}

impl fmt::Display for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Imei({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_digits_are_an_imei() {
        let imei: Imei = "123456789012345".parse().unwrap();
        assert_eq!(imei.as_str(), "123456789012345");
        assert_eq!(imei.to_string(), "123456789012345");
    }

    #[test]
    fn a_letter_is_named_with_its_offset() {
        assert_eq!(
            "12345678901234x".parse::<Imei>(),
            Err(TeltonikaError::ImeiNotDigit {
                byte: b'x',
                offset: 16
            })
        );
    }

    #[test]
    fn fourteen_or_sixteen_digits_are_refused() {
        for digits in ["12345678901234", "1234567890123456"] {
            assert_eq!(
                digits.parse::<Imei>(),
                Err(TeltonikaError::ImeiLength {
                    len_bytes: digits.len() as u16,
                    expected: 15
                })
            );
        }
    }
}
