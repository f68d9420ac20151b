//! Webhook signatures (spec §1.4, Chatwoot ≥ 4.11.2):
//! `X-Chatwoot-Signature: sha256=<lowercase hex>` where the MAC is
//! HMAC-SHA256(secret, "<X-Chatwoot-Timestamp>.<raw body bytes>").

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "x-chatwoot-signature";
pub const TIMESTAMP_HEADER: &str = "x-chatwoot-timestamp";
pub const DELIVERY_HEADER: &str = "x-chatwoot-delivery";

/// Default accepted clock difference (the PR's replay guidance: ~5 min).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a delivery was refused. Never retryable (answer 401/400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Chatwoot-Signature header")]
    MissingSignature,
    #[error("missing X-Chatwoot-Timestamp header")]
    MissingTimestamp,
    #[error("X-Chatwoot-Signature is not `sha256=<hex>`")]
    MalformedSignature,
    #[error("X-Chatwoot-Timestamp is not unix seconds")]
    MalformedTimestamp,
    #[error("timestamp is {age_seconds}s old, beyond the tolerance")]
    Stale { age_seconds: i64 },
    #[error("timestamp is {ahead_seconds}s in the future, beyond the tolerance")]
    FromFuture { ahead_seconds: i64 },
    #[error("signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The Chatwoot delivery headers of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookHeaders {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    /// `X-Chatwoot-Delivery`: the dedupe key when present.
    pub delivery_id: Option<String>,
}

impl WebhookHeaders {
    pub fn from_header_map(headers: &HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            signature: get(SIGNATURE_HEADER),
            timestamp: get(TIMESTAMP_HEADER),
            delivery_id: get(DELIVERY_HEADER),
        }
    }
}

/// Signs a body the way Chatwoot does; returns the full header value
/// `sha256=<hex>`. For the simulator and tests.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac_for(secret.as_bytes(), &timestamp.to_string(), body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac_for(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // `Hmac::new_from_slice` only fails for fixed-key-size MACs; keep a
    // total function without panicking.
    <HmacSha256 as Mac>::new(&Default::default())
}

/// Verifies signed deliveries with one webhook secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    secret: SecretString,
    tolerance: Duration,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl SignatureVerifier {
    /// A verifier with the default 5 minute tolerance.
    pub fn new(secret: SecretString) -> Self {
        Self {
            secret,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Accept timestamps at most `tolerance` away from now (both ways).
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies the headers of a request against its raw body, now.
    pub fn verify_headers(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_at(
            headers.signature.as_deref(),
            headers.timestamp.as_deref(),
            body,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
    }

    /// Verifies `signature` (`sha256=<hex>`) and `timestamp` (unix seconds,
    /// as sent) over `body`, now.
    pub fn verify(
        &self,
        signature: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_at(
            Some(signature),
            Some(timestamp),
            body,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
    }

    /// Same as [`verify`](Self::verify) with an explicit clock (`now` in
    /// unix seconds).
    pub fn verify_at(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::MissingSignature)?.trim();
        let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?.trim();
        let sent_at: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::MalformedTimestamp)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        let age = now.saturating_sub(sent_at);
        if age > tolerance {
            return Err(SignatureError::Stale { age_seconds: age });
        }
        if -age > tolerance {
            return Err(SignatureError::FromFuture {
                ahead_seconds: -age,
            });
        }
        let hex_digest = signature
            .strip_prefix("sha256=")
            .ok_or(SignatureError::MalformedSignature)?;
        let expected = hex::decode(hex_digest).map_err(|_| SignatureError::MalformedSignature)?;
        // The signed string uses the timestamp exactly as sent.
        mac_for(self.secret.expose_secret().as_bytes(), timestamp, body)
            .verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vector() -> Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/chatwoot/signature_test_vector.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn field<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key].as_str().unwrap()
    }

    #[test]
    fn sign_reproduces_the_test_vector() {
        let v = vector();
        let ts: i64 = field(&v, "timestamp").parse().unwrap();
        assert_eq!(
            sign(field(&v, "secret"), ts, field(&v, "body").as_bytes()),
            field(&v, "expected_header_value")
        );
    }

    #[test]
    fn verifier_accepts_the_test_vector_and_refuses_tampering() {
        let v = vector();
        let verifier = SignatureVerifier::new(SecretString::from(field(&v, "secret")));
        let ts = field(&v, "timestamp");
        let now: i64 = ts.parse::<i64>().unwrap() + 10;
        let body = field(&v, "body").as_bytes();
        let sig = field(&v, "expected_header_value");
        assert_eq!(verifier.verify_at(Some(sig), Some(ts), body, now), Ok(()));

        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verifier.verify_at(Some(sig), Some(ts), &tampered, now),
            Err(SignatureError::Mismatch)
        );
        // Signing only the body (issue #13809's mistake) does not verify.
        let body_only = {
            let mut mac = HmacSha256::new_from_slice(field(&v, "secret").as_bytes()).unwrap();
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        assert_eq!(
            verifier.verify_at(Some(&body_only), Some(ts), body, now),
            Err(SignatureError::Mismatch)
        );
        let other = SignatureVerifier::new(SecretString::from("another-secret"));
        assert_eq!(
            other.verify_at(Some(sig), Some(ts), body, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let verifier = SignatureVerifier::new(SecretString::from("s3cret"))
            .with_tolerance(Duration::from_secs(300));
        let body = br#"{"event":"x"}"#;
        let sig = sign("s3cret", 1_000, body);
        assert_eq!(
            verifier.verify_at(Some(&sig), Some("1000"), body, 1_300),
            Ok(())
        );
        assert_eq!(
            verifier.verify_at(Some(&sig), Some("1000"), body, 1_301),
            Err(SignatureError::Stale { age_seconds: 301 })
        );
        assert_eq!(
            verifier.verify_at(Some(&sig), Some("1000"), body, 699),
            Err(SignatureError::FromFuture { ahead_seconds: 301 })
        );
    }

    #[test]
    fn malformed_and_missing_headers() {
        let verifier = SignatureVerifier::new(SecretString::from("s"));
        let body = b"{}";
        assert_eq!(
            verifier.verify_at(None, Some("1"), body, 1),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verifier.verify_at(Some("sha256=00"), None, body, 1),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verifier.verify_at(Some("sha256=zz"), Some("1"), body, 1),
            Err(SignatureError::MalformedSignature)
        );
        assert_eq!(
            verifier.verify_at(Some("md5=00"), Some("1"), body, 1),
            Err(SignatureError::MalformedSignature)
        );
        assert_eq!(
            verifier.verify_at(Some("sha256=00"), Some("yesterday"), body, 1),
            Err(SignatureError::MalformedTimestamp)
        );
    }

    #[test]
    fn headers_are_read_case_insensitively() {
        let v = vector();
        let example: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/chatwoot/webhook_request_headers.example.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let mut map = HeaderMap::new();
        for (k, val) in example.as_object().unwrap() {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                val.as_str().unwrap().parse().unwrap(),
            );
        }
        let headers = WebhookHeaders::from_header_map(&map);
        assert_eq!(
            headers.delivery_id.as_deref(),
            Some("0b6f7d3e-2c4a-4e8b-9f1d-5a6c7e8d9b0a")
        );
        let verifier = SignatureVerifier::new(SecretString::from(field(&v, "secret")));
        let now = headers
            .timestamp
            .as_deref()
            .unwrap()
            .parse::<i64>()
            .unwrap();
        assert_eq!(
            verifier.verify_at(
                headers.signature.as_deref(),
                headers.timestamp.as_deref(),
                field(&v, "body").as_bytes(),
                now
            ),
            Ok(())
        );
    }
}
