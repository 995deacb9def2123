//! The per-tag secret a `Hello` carries: the lowercase hex of HMAC-SHA256(server key, tag id).
//!
//! The server holds one key and derives every tag's secret from it, so no per-tag secret table
//! is needed; tags are provisioned with their derived secret. Specified in `docs/protocol.md`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a tag secret: 64 lowercase hex digits (a 32-byte HMAC-SHA256).
pub const TAG_SECRET_LEN: usize = 64;

fn mac_for(server_key: &[u8], tag: &str) -> HmacSha256 {
    let mut mac = match HmacSha256::new_from_slice(server_key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(tag.as_bytes());
    mac
}

/// The secret tag `tag` must present: lowercase hex of HMAC-SHA256 keyed by `server_key` over
/// the tag id's UTF-8 bytes.
pub fn tag_secret(server_key: &[u8], tag: &str) -> String {
    hex::encode(mac_for(server_key, tag).finalize().into_bytes())
}

/// Whether `presented` is exactly `tag_secret(server_key, tag)`. The digest comparison is
/// constant-time; only lowercase hex is accepted.
pub fn secret_matches(server_key: &[u8], tag: &str, presented: &str) -> bool {
    if presented.len() != TAG_SECRET_LEN
        || !presented
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let Ok(digest) = hex::decode(presented) else {
        return false;
    };
    mac_for(server_key, tag).verify_slice(&digest).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_lowercase_hex_hmac_and_is_checked() {
        let key = b"example-server-key";
        let secret = tag_secret(key, "T1");
        assert_eq!(secret.len(), TAG_SECRET_LEN);
        assert!(secret_matches(key, "T1", &secret));
        assert!(!secret_matches(key, "T2", &secret));
        assert!(!secret_matches(b"other-key", "T1", &secret));
        assert!(!secret_matches(key, "T1", &secret.to_uppercase()));
        assert!(!secret_matches(key, "T1", &secret[..63]));
        assert!(!secret_matches(key, "T1", ""));
    }

    #[test]
    fn matches_rfc4231_test_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            tag_secret(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
