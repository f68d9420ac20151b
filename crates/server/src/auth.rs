//! Reusable authentication building blocks for source routes.
//!
//! - [`ApiKeys`]: static keys from `X-API-Key` or `Authorization: Bearer`,
//!   several per source so keys can be rotated; compared in constant time.
//! - [`verify_hmac_sha256`]: HMAC-SHA256 of the raw body against a hex
//!   signature (constant-time through `Mac::verify_slice`).
//! - [`check_url_token`]: a secret token carried in the URL path.

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The accepted keys of one source.
#[derive(Clone)]
pub struct ApiKeys(Vec<SecretString>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    pub fn new(keys: Vec<SecretString>) -> Self {
        Self(keys)
    }

    /// Accepts when the request carries one of the keys in `X-API-Key` or
    /// `Authorization: Bearer <key>`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = presented_key(headers).ok_or_else(|| {
            ApiError::Unauthorized(
                "missing API key: send it in X-API-Key or Authorization: Bearer".to_owned(),
            )
        })?;
        // Compare against every key so timing does not reveal which one matched.
        let mut matched = subtle::Choice::from(0u8);
        for key in &self.0 {
            matched |= same_secret(key.expose_secret(), presented);
        }
        if bool::from(matched) && !self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unauthorized("invalid API key".to_owned()))
        }
    }
}

/// Whether two secrets are equal, in time that depends on neither: their
/// SHA-256 digests (always 32 bytes) are compared in constant time, so not
/// even the expected secret's length shows (comparing the texts themselves
/// stops at once when the lengths differ).
fn same_secret(expected: &str, presented: &str) -> subtle::Choice {
    let expected = Sha256::digest(expected.as_bytes());
    let presented = Sha256::digest(presented.as_bytes());
    expected.as_slice().ct_eq(presented.as_slice())
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Checks `signature_hex` (optionally prefixed `sha256=`) is the
/// HMAC-SHA256 of `message` under `secret`.
pub fn verify_hmac_sha256(
    secret: &SecretString,
    message: &[u8],
    signature_hex: &str,
) -> Result<(), ApiError> {
    let hex_part = signature_hex.trim();
    let hex_part = hex_part.strip_prefix("sha256=").unwrap_or(hex_part);
    let signature = hex::decode(hex_part)
        .map_err(|_| ApiError::Unauthorized("signature is not hexadecimal".to_owned()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .map_err(|_| ApiError::Internal("HMAC key rejected".to_owned()))?;
    mac.update(message);
    mac.verify_slice(&signature)
        .map_err(|_| ApiError::Unauthorized("signature does not match".to_owned()))
}

/// Checks a secret token taken from the URL against the expected ones.
pub fn check_url_token(expected: &[SecretString], presented: &str) -> Result<(), ApiError> {
    let mut matched = subtle::Choice::from(0u8);
    for token in expected {
        matched |= same_secret(token.expose_secret(), presented);
    }
    if bool::from(matched) && !expected.is_empty() {
        Ok(())
    } else {
        // 404 rather than 401: a wrong URL token means "no such endpoint".
        Err(ApiError::NotFound("no route for this path".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> ApiKeys {
        ApiKeys::new(vec![
            SecretString::from("new-key"),
            SecretString::from("old-key"),
        ])
    }

    #[test]
    fn accepts_any_configured_key_in_either_header() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("old-key"));
        assert!(keys().check(&h).is_ok());
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer new-key"),
        );
        assert!(keys().check(&h).is_ok());
    }

    #[test]
    fn rejects_missing_wrong_and_prefix_keys() {
        assert!(keys().check(&HeaderMap::new()).is_err());
        for wrong in ["new-ke", "new-key2", "", "Basic new-key"] {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", HeaderValue::from_str(wrong).unwrap());
            assert!(keys().check(&h).is_err(), "{wrong}");
        }
        assert!(ApiKeys::new(vec![]).check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        let secret = SecretString::from("Jefe");
        let sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(verify_hmac_sha256(&secret, b"what do ya want for nothing?", sig).is_ok());
        assert!(
            verify_hmac_sha256(
                &secret,
                b"what do ya want for nothing?",
                &format!("sha256={sig}")
            )
            .is_ok()
        );
        assert!(verify_hmac_sha256(&secret, b"what do ya want for nothing!", sig).is_err());
        assert!(verify_hmac_sha256(&secret, b"x", "zz").is_err());
    }

    #[test]
    fn secrets_are_compared_whole_whatever_their_lengths() {
        assert!(bool::from(same_secret("new-key", "new-key")));
        for other in ["", "n", "new-ke", "new-key ", "new-key-but-much-longer"] {
            assert!(!bool::from(same_secret("new-key", other)), "{other}");
        }
    }

    #[test]
    fn url_token_must_match_exactly() {
        let expected = vec![SecretString::from("s3cret")];
        assert!(check_url_token(&expected, "s3cret").is_ok());
        assert!(check_url_token(&expected, "s3cre").is_err());
        assert!(check_url_token(&[], "").is_err());
    }
}
