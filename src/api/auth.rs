//! Bearer-token authentication for the API. Tokens are compared by their SHA-256 digests so the
//! comparison takes the same time whatever the presented token.

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

/// The accepted tokens, held as digests.
#[derive(Clone, Debug)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenSet {
    pub fn new(tokens: &[String]) -> Self {
        Self {
            digests: tokens.iter().map(|t| digest(t)).collect(),
        }
    }

    /// 401 unless the request carries `Authorization: Bearer <accepted token>`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), StatusCode> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let presented = digest(presented.trim());
        let mut ok = false;
        for d in &self.digests {
            let diff = d
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            ok |= diff == 0;
        }
        if ok {
            Ok(())
        } else {
            Err(StatusCode::UNAUTHORIZED)
        }
    }
}
