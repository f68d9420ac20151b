//! The outgoing callback that tells the bot its ticket number, signed the
//! Standard Webhooks way: `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed with the base64-decoded `whsec_` secret.

use engine::JobError;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// A callback signer for one source.
pub struct CallbackSigner {
    webhook: standardwebhooks::Webhook,
}

impl std::fmt::Debug for CallbackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSigner(..)")
    }
}

/// The headers of one signed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

impl CallbackSigner {
    /// From a `whsec_<base64>` (or bare base64) secret; `None` when it is not base64.
    pub fn new(secret: &SecretString) -> Option<CallbackSigner> {
        standardwebhooks::Webhook::new(secret.expose_secret())
            .ok()
            .map(|webhook| CallbackSigner { webhook })
    }

    /// Signs `body` for delivery `id` at `timestamp` (unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Option<SignedHeaders> {
        let signature = self.webhook.sign(id, timestamp, body).ok()?;
        Some(SignedHeaders {
            id: id.to_owned(),
            timestamp,
            signature,
        })
    }
}

/// `Retry-After` in seconds (HTTP dates are treated as "no hint").
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Posts one signed delivery. Connect errors, timeouts, 408, 429 and 5xx are
/// transient (honouring `Retry-After`); other 4xx are permanent.
pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    signer: &CallbackSigner,
    id: &str,
    body: &[u8],
) -> Result<(), JobError> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = signer
        .sign(id, timestamp, body)
        .ok_or_else(|| JobError::permanent("callback body is not UTF-8"))?;
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &signed.id)
        .header("webhook-timestamp", signed.timestamp.to_string())
        .header("webhook-signature", &signed.signature)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| {
            JobError::transient(format!(
                "callback to {} failed: {}",
                crate::attachments::origin(url),
                e.without_url()
            ))
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let reason = format!(
        "callback to {} answered HTTP {status}",
        crate::attachments::origin(url)
    );
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(match retry_after(&response) {
            Some(after) => JobError::transient_after(reason, after),
            None => JobError::transient(reason),
        });
    }
    Err(JobError::permanent(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signature_matches_the_specification_example() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signer = CallbackSigner::new(&secret).unwrap_or_else(|| panic!("secret"));
        let body = br#"{"test": 2432232314}"#;
        let signed = signer
            .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
            .unwrap_or_else(|| panic!("sign"));
        assert_eq!(
            signed.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
