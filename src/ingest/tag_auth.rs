//! Per-tag secrets: each tag's secret is HMAC-SHA256(server tag key, tag id) in lowercase hex.
//! The server stores only the key; provisioning (and the simulator) derive each tag's secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The secret a tag must present in its hello.
pub fn tag_secret(key: &[u8], tag: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(tag.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a presented secret in constant time.
pub fn verify_tag_secret(key: &[u8], tag: &str, presented: &str) -> bool {
    let Ok(presented) = hex::decode(presented) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(tag.as_bytes());
    mac.verify_slice(&presented).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_secret_verifies_and_others_do_not() {
        let key = b"demo-key";
        let secret = tag_secret(key, "T1");
        assert!(verify_tag_secret(key, "T1", &secret));
        assert!(!verify_tag_secret(key, "T2", &secret));
        assert!(!verify_tag_secret(b"other", "T1", &secret));
        assert!(!verify_tag_secret(key, "T1", "not hex"));
    }
}
