//! The per-tag secret a `Hello` carries, derived from the server's tag key and the tag's
//! credential generation, and the check of the key itself ([`check_tag_key`]).
//!
//! Generation 0 (a tag never rotated) is the lowercase hex of HMAC-SHA256(server key, tag id).
//! Generation `g >= 1` is HMAC-SHA256(K2, u64_be(g) || tag id) with K2 = HMAC-SHA256(server key,
//! "tagstream tag credential v2"): a separate derived key keeps the two forms from ever colliding,
//! and the fixed-width generation in front keeps (generation, tag) pairs distinct. Rotation
//! bumps the generation, so a new secret needs no new server key and the old one stops working.
//! The server keeps only the generation per tag (metadata store); tags are provisioned with
//! their derived secret. Specified in `docs/protocol.md`.

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

/// Shortest tag key accepted: 32 bytes, the HMAC-SHA256 block-size guidance for a full-strength
/// key. A shorter (or empty) key makes every tag's secret guessable.
pub const MIN_TAG_KEY_BYTES: usize = 32;

/// Why a tag key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagKeyError {
    #[error("the tag key from {source_name} is empty: every tag secret would be computable; write at least {MIN_TAG_KEY_BYTES} random bytes (e.g. 64 hex digits) there")]
    Empty { source_name: String },
    #[error("the tag key from {source_name} is {len_bytes} bytes; at least {MIN_TAG_KEY_BYTES} are needed (e.g. 64 hex digits)")]
    TooShort {
        source_name: String,
        len_bytes: usize,
    },
}

/// Checks a tag key before it is used; `source_name` names where it came from (a file or an
/// environment variable) for the error.
pub fn check_tag_key(key: &[u8], source_name: &str) -> Result<(), TagKeyError> {
    if key.is_empty() {
        return Err(TagKeyError::Empty {
            source_name: source_name.to_string(),
        });
    }
    if key.len() < MIN_TAG_KEY_BYTES {
        return Err(TagKeyError::TooShort {
            source_name: source_name.to_string(),
            len_bytes: key.len(),
        });
    }
    Ok(())
}

/// Domain label of the derived key for generations >= 1.
const GENERATION_KEY_LABEL: &[u8] = b"tagstream tag credential v2";

fn mac_for_generation(server_key: &[u8], tag: &str, generation: u64) -> HmacSha256 {
    if generation == 0 {
        return mac_for(server_key, tag);
    }
    let mut derive = match HmacSha256::new_from_slice(server_key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    derive.update(GENERATION_KEY_LABEL);
    let generation_key = derive.finalize().into_bytes();
    let mut mac = match HmacSha256::new_from_slice(&generation_key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(&generation.to_be_bytes());
    mac.update(tag.as_bytes());
    mac
}

/// The secret tag `tag` must present at generation 0: lowercase hex of HMAC-SHA256 keyed by
/// `server_key` over the tag id's UTF-8 bytes.
pub fn tag_secret(server_key: &[u8], tag: &str) -> String {
    hex::encode(mac_for(server_key, tag).finalize().into_bytes())
}

/// The secret of tag `tag` at credential generation `generation` (0 = [`tag_secret`]).
pub fn tag_secret_at(server_key: &[u8], tag: &str, generation: u64) -> String {
    hex::encode(
        mac_for_generation(server_key, tag, generation)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `presented` is exactly `tag_secret(server_key, tag)`. The digest comparison is
/// constant-time; only lowercase hex is accepted.
pub fn secret_matches(server_key: &[u8], tag: &str, presented: &str) -> bool {
    secret_matches_at(server_key, tag, 0, presented)
}

/// Whether `presented` is exactly `tag_secret_at(server_key, tag, generation)` (constant-time
/// digest comparison, lowercase hex only).
pub fn secret_matches_at(server_key: &[u8], tag: &str, generation: u64, presented: &str) -> bool {
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
    mac_for_generation(server_key, tag, generation)
        .verify_slice(&digest)
        .is_ok()
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
    fn generations_give_distinct_secrets_and_zero_is_the_legacy_form() {
        let key = [7u8; 32];
        assert_eq!(tag_secret_at(&key, "T1", 0), tag_secret(&key, "T1"));
        let g1 = tag_secret_at(&key, "T1", 1);
        let g2 = tag_secret_at(&key, "T1", 2);
        assert_ne!(g1, tag_secret(&key, "T1"));
        assert_ne!(g1, g2);
        assert!(secret_matches_at(&key, "T1", 1, &g1));
        assert!(!secret_matches_at(&key, "T1", 2, &g1));
        assert!(!secret_matches_at(&key, "T1", 0, &g1));
        assert!(!secret_matches_at(&key, "T2", 1, &g1));
    }

    #[test]
    fn empty_and_short_keys_are_refused() {
        assert!(matches!(
            check_tag_key(b"", "DATA/tag.key"),
            Err(TagKeyError::Empty { .. })
        ));
        let short = check_tag_key(&[1u8; 31], "DATA/tag.key").unwrap_err();
        assert!(short.to_string().contains("DATA/tag.key"));
        assert!(short.to_string().contains("31 bytes"));
        assert_eq!(check_tag_key(&[1u8; 32], "x"), Ok(()));
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
