//! `kind = "messaging"` sources.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use url::Url;

/// When a conversation's messages become a ticket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenOn {
    /// After the merge window of the first burst closes.
    #[default]
    FirstMessage,
    /// Only when the bot calls `POST .../conversations/{id}/handoff`.
    Handoff,
}

impl OpenOn {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenOn::FirstMessage => "first_message",
            OpenOn::Handoff => "handoff",
        }
    }
}

/// A messaging channel (WhatsApp bot, gateway) at `/api/v1/channels/<name>/...`.
///
/// Owned by the messaging flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingSource {
    pub target: String,
    /// Accepted keys (`X-API-Key` or `Authorization: Bearer`).
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// `first_message` (default) or `handoff`.
    #[serde(default)]
    pub open_on: OpenOn,
    /// Quiet time after the last message before the burst becomes a ticket
    /// (milliseconds as a number, or `"15s"`). Default 15 000 ms.
    #[serde(default = "default_merge_window", deserialize_with = "millis_or_text")]
    pub merge_window: Duration,
    /// Longest time the first message of a burst may wait. Default 2 min.
    #[serde(default = "default_max_wait", deserialize_with = "millis_or_text")]
    pub max_wait: Duration,
    /// Messages after the ticket exists become followups until it is solved
    /// or closed. `false`: each later burst opens its own ticket.
    #[serde(default = "yes")]
    pub followups: bool,
    /// ISO 3166 alpha-2 country used to read phone numbers without a country
    /// code (e.g. `BR`).
    pub default_country: Option<String>,
    /// Entity (organisation) id for tickets and new requesters.
    pub entity: Option<i64>,
    /// Tax id (CNPJ...) whose organisation receives the tickets.
    pub tax_id: Option<String>,
    /// The requester's default entity decides the ticket's entity.
    #[serde(default)]
    pub entity_from_requester: bool,
    /// Create requesters missing from the directory.
    #[serde(default = "yes")]
    pub create_requesters: bool,
    /// Where the ticket number is posted (Standard Webhooks signed).
    pub callback_url: Option<Url>,
    /// `whsec_<base64>` signing secret of the callback.
    pub callback_secret: Option<SecretString>,
    /// Largest attachment accepted (bytes, after base64 decoding).
    #[serde(default = "default_max_attachment_bytes")]
    pub max_attachment_bytes: u64,
    /// Most bytes of files one ticket or followup takes from a burst (the
    /// files past it become notes): a burst of many messages with files would
    /// otherwise hold them all in memory at once.
    #[serde(default = "default_max_files_bytes")]
    pub max_files_bytes: u64,
    /// Largest message body, in bytes; see [`MessagingSource::body_limit`]
    /// for the default.
    #[serde(default)]
    pub body_limit: Option<usize>,
    /// Fetch attachment URLs on loopback, private and link-local addresses
    /// (a gateway on the LAN). Off: only public addresses, so a caller with
    /// a key cannot make the service read internal services.
    #[serde(default)]
    pub allow_private_attachment_hosts: bool,
    /// How long `POST .../handoff` waits for the ticket before answering 202.
    #[serde(default = "default_handoff_wait", deserialize_with = "millis_or_text")]
    pub handoff_wait: Duration,
    /// `open_on = "handoff"`: buffered messages followed by this long a
    /// silence, with no handoff, were a conversation the bot handled alone;
    /// the next message or handoff starts afresh without them. Default 24 h.
    #[serde(
        default = "default_handoff_session",
        deserialize_with = "millis_or_text"
    )]
    pub handoff_session: Duration,
    /// How long a ticket's status read from the target is trusted.
    #[serde(default = "default_status_ttl", deserialize_with = "millis_or_text")]
    pub status_ttl: Duration,
    /// How long a message's answer may wait for the target to tell whether
    /// the conversation's ticket is still open (no ticket is named after it).
    #[serde(default = "default_status_wait", deserialize_with = "millis_or_text")]
    pub status_wait: Duration,
}

fn yes() -> bool {
    true
}
fn default_merge_window() -> Duration {
    Duration::from_millis(15_000)
}
fn default_max_wait() -> Duration {
    Duration::from_secs(120)
}
fn default_max_attachment_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_max_files_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_handoff_wait() -> Duration {
    Duration::from_secs(3)
}
fn default_handoff_session() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_status_ttl() -> Duration {
    Duration::from_secs(5)
}
fn default_status_wait() -> Duration {
    Duration::from_secs(1)
}

/// A duration written as milliseconds (`15000`, `"15000"`) or humantime (`"15s"`).
/// Anything else is "expected a number of milliseconds or a duration such
/// as \"15s\"", not serde's words for an untagged enum.
fn millis_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct MillisOrText;
    impl serde::de::Visitor<'_> for MillisOrText {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number of milliseconds or a duration such as \"15s\"")
        }
        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(ms))
        }
        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Duration, E> {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(ms), &self))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
            parse_duration(text)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self))
        }
    }
    deserializer.deserialize_any(MillisOrText)
}

/// `"1500"` (milliseconds) or humantime (`"1.5s"`, `"2m"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime_serde::re::humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration (milliseconds or e.g. \"15s\"): {e}"))
}

/// True when `secret` is `whsec_` + standard base64 (or bare base64) of at least 16 bytes.
fn valid_webhook_secret(secret: &str) -> bool {
    let body = secret.strip_prefix("whsec_").unwrap_or(secret);
    let alphabet = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    !body.is_empty()
        && body.len().is_multiple_of(4)
        && body.chars().all(alphabet)
        && body.len() >= 24
}

impl MessagingSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, prefix: &str, problem: &mut dyn FnMut(String, String)) {
        let mut bad = |field: &str, message: &str| {
            problem(format!("{prefix}.{field}"), message.to_owned());
        };
        if self.api_keys.is_empty() {
            bad("api_keys", "at least one key is required");
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.expose_secret().trim().is_empty() {
                bad(&format!("api_keys[{i}]"), "must not be empty");
            }
        }
        if self.merge_window.is_zero() {
            bad("merge_window", "must be greater than 0");
        }
        if self.max_wait < self.merge_window {
            bad("max_wait", "must not be shorter than merge_window");
        }
        if self.handoff_session.is_zero() {
            bad("handoff_session", "must be greater than 0");
        }
        if let Some(problem) = self
            .default_country
            .as_deref()
            .and_then(super::country_problem)
        {
            bad("default_country", problem);
        }
        if let Some(entity) = self.entity
            && entity < 0
        {
            bad("entity", "must be 0 or a positive entity id");
        }
        if let Some(tax_id) = &self.tax_id
            && !tax_id.chars().any(|c| c.is_ascii_digit())
        {
            bad("tax_id", "must contain digits");
        }
        match (&self.callback_url, &self.callback_secret) {
            (Some(url), secret) => {
                if !matches!(url.scheme(), "http" | "https") {
                    bad("callback_url", "must be an http or https URL");
                }
                match secret {
                    None => bad("callback_secret", "is required with callback_url"),
                    Some(s) if !valid_webhook_secret(s.expose_secret()) => bad(
                        "callback_secret",
                        "must be whsec_ followed by base64 of at least 16 random bytes",
                    ),
                    Some(_) => {}
                }
            }
            (None, Some(_)) => bad("callback_url", "is required with callback_secret"),
            (None, None) => {}
        }
        if self.max_attachment_bytes == 0 {
            bad("max_attachment_bytes", "must be greater than 0");
        }
        if self.body_limit == Some(0) {
            bad("body_limit", "must be greater than 0 (bytes)");
        }
        if self.max_files_bytes == 0 {
            bad("max_files_bytes", "must be greater than 0 (bytes)");
        }
    }

    /// The largest message body this source takes: `body_limit` when set,
    /// else room for one inline attachment of `max_attachment_bytes` in
    /// base64 and 1 MiB more, and never less than `server_body_limit`.
    pub fn body_limit(&self, server_body_limit: usize) -> usize {
        self.body_limit.unwrap_or_else(|| {
            super::attachment_body_limit(self.max_attachment_bytes, server_body_limit)
        })
    }

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        format!(
            "api_keys={} open_on={} merge_window={}ms max_wait={}ms followups={} \
             default_country={} entity={} tax_id={} entity_from_requester={} \
             create_requesters={} callback_url={} callback_secret={} max_attachment_bytes={} \
             max_files_bytes={} body_limit={}",
            self.api_keys.len(),
            self.open_on.as_str(),
            self.merge_window.as_millis(),
            self.max_wait.as_millis(),
            self.followups,
            self.default_country.as_deref().unwrap_or("-"),
            self.entity.map_or("-".to_owned(), |e| e.to_string()),
            self.tax_id.as_deref().unwrap_or("-"),
            self.entity_from_requester,
            self.create_requesters,
            self.callback_url
                .as_ref()
                .map_or_else(|| "-".to_owned(), crate::model::redacted),
            if self.callback_secret.is_some() {
                "set"
            } else {
                "unset"
            },
            self.max_attachment_bytes,
            self.max_files_bytes,
            self.body_limit
                .map_or_else(|| "default".to_owned(), |n| n.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_millis_or_text() {
        assert_eq!(parse_duration("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn webhook_secrets_are_checked() {
        assert!(valid_webhook_secret(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        ));
        assert!(!valid_webhook_secret("whsec_short"));
        assert!(!valid_webhook_secret("not base64 at all!!!!!!!!!!!!!!!"));
    }
}
