//! `kind = "intake"` sources.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What to do when a request's tax id (CNPJ, ...) matches no organisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTaxIdPolicy {
    /// Refuse the request with 404 `entity_not_found`.
    #[default]
    Reject,
    /// File the ticket in `default_entity`.
    UseDefault,
}

impl UnknownTaxIdPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::UseDefault => "use_default",
        }
    }
}

/// Which tickets a source's key may read (`GET /api/v1/tickets...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadScope {
    /// Any ticket of the target (a voice agent or bot answering "my tickets").
    #[default]
    All,
    /// Only tickets created through this source.
    Own,
    /// None: the read routes answer 403 (a key embedded in a web page).
    None,
}

impl ReadScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Own => "own",
            Self::None => "none",
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_country() -> String {
    "BR".to_owned()
}

fn default_wait() -> Duration {
    Duration::from_secs(8)
}

fn default_message_template() -> String {
    "Ticket {ref} created".to_owned()
}

fn default_max_attachment_bytes() -> usize {
    5 * 1024 * 1024
}

fn default_max_attachments() -> usize {
    10
}

fn default_dedupe_window() -> Duration {
    Duration::from_secs(60 * 60)
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(300)
}

/// The intake API for web forms, voice agents and automation tools
/// (`POST /api/v1/tickets`).
///
/// Owned by the intake flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSource {
    /// The target (GLPI or iTop) tickets are created in.
    pub target: String,
    /// Accepted keys (`X-API-Key` or `Authorization: Bearer`); several allow
    /// rotation. A key identifies its source: keys must be unique across
    /// intake sources.
    pub api_keys: Vec<SecretString>,
    /// Organisation (GLPI entity id) used when a request names none.
    #[serde(default)]
    pub default_entity: Option<i64>,
    /// `reject` (404 entity_not_found) or `use_default` when a tax id matches
    /// no organisation.
    #[serde(default)]
    pub unknown_tax_id: UnknownTaxIdPolicy,
    /// Create requesters missing from the directory; when false they are
    /// attached by email only.
    #[serde(default = "default_true")]
    pub create_requesters: bool,
    /// ISO 3166 alpha-2 country used to read phone numbers written without a
    /// country code.
    #[serde(default = "default_country")]
    pub default_country: String,
    /// Category (id or name) used when a request names none.
    #[serde(default)]
    pub default_category: Option<String>,
    /// Request type id set on the tickets (GLPI RequestType; default: the
    /// target's `request_type`).
    #[serde(default)]
    pub request_type: Option<i64>,
    /// How long `POST /api/v1/tickets` waits for the ticket before answering
    /// 202 with a status URL.
    #[serde(default = "default_wait", with = "humantime_serde")]
    pub wait: Duration,
    /// Human message in the answer; `{id}` (numeric id), `{ref}` (the
    /// ticket as the help desk's users name it: `#7` on GLPI, `R-000004` on
    /// iTop) and `{url}` are replaced.
    #[serde(default = "default_message_template")]
    pub message_template: String,
    /// Largest decoded attachment, in bytes (larger: 413).
    #[serde(default = "default_max_attachment_bytes")]
    pub max_attachment_bytes: usize,
    /// Most attachments in one request.
    #[serde(default = "default_max_attachments")]
    pub max_attachments: usize,
    /// Largest request body this source's keys may send, in bytes; see
    /// [`IntakeSource::body_limit`] for the default.
    #[serde(default)]
    pub body_limit: Option<usize>,
    /// How long the same body sent without an `Idempotency-Key` counts as a
    /// repeat of the first (answered with its ticket); after it, it is a new
    /// request. A key is a repeat for ever.
    #[serde(default = "default_dedupe_window", with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// How long organisation, requester and category lookups are cached.
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Which tickets this source's keys may read: `all` (default), `own`
    /// (created through this source) or `none`.
    #[serde(default)]
    pub reads: ReadScope,
}

impl IntakeSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, prefix: &str, problem: &mut dyn FnMut(String, String)) {
        if self.api_keys.is_empty() {
            problem(
                format!("{prefix}.api_keys"),
                "at least one key is required".into(),
            );
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.expose_secret().trim().is_empty() {
                problem(
                    format!("{prefix}.api_keys[{i}]"),
                    "must not be empty".into(),
                );
            }
        }
        if let Some(entity) = self.default_entity
            && entity < 0
        {
            problem(
                format!("{prefix}.default_entity"),
                "must be an entity id (0 or more)".into(),
            );
        }
        if self.unknown_tax_id == UnknownTaxIdPolicy::UseDefault && self.default_entity.is_none() {
            problem(
                format!("{prefix}.unknown_tax_id"),
                "use_default needs default_entity".into(),
            );
        }
        if let Some(message) = super::country_problem(&self.default_country) {
            problem(format!("{prefix}.default_country"), message.into());
        }
        if let Some(category) = &self.default_category
            && category.trim().is_empty()
        {
            problem(
                format!("{prefix}.default_category"),
                "must not be empty (remove it instead)".into(),
            );
        }
        if let Some(request_type) = self.request_type
            && request_type <= 0
        {
            problem(
                format!("{prefix}.request_type"),
                "must be a request type id (1 or more)".into(),
            );
        }
        if self.wait > Duration::from_secs(60) {
            problem(
                format!("{prefix}.wait"),
                "must be at most 60s (use ?mode=async for longer)".into(),
            );
        }
        if self.message_template.trim().is_empty() {
            problem(
                format!("{prefix}.message_template"),
                "must not be empty".into(),
            );
        }
        if self.max_attachment_bytes == 0 {
            problem(
                format!("{prefix}.max_attachment_bytes"),
                "must be greater than 0".into(),
            );
        }
        if self.body_limit == Some(0) {
            problem(
                format!("{prefix}.body_limit"),
                "must be greater than 0 (bytes)".into(),
            );
        }
        if self.dedupe_window == Duration::ZERO {
            problem(
                format!("{prefix}.dedupe_window"),
                "must be greater than 0 (a retry must find its first request)".into(),
            );
        }
        if self.cache_ttl == Duration::ZERO {
            problem(
                format!("{prefix}.cache_ttl"),
                "must be greater than 0".into(),
            );
        }
    }

    /// The largest request body this source takes: `body_limit` when set,
    /// else room for one attachment of `max_attachment_bytes` in base64 and
    /// 1 MiB more, and never less than `server_body_limit`.
    pub fn body_limit(&self, server_body_limit: usize) -> usize {
        self.body_limit.unwrap_or_else(|| {
            super::attachment_body_limit(self.max_attachment_bytes as u64, server_body_limit)
        })
    }

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        format!(
            "api_keys={} default_entity={} unknown_tax_id={} create_requesters={} \
             default_country={} default_category={} wait={:?} max_attachment_bytes={} cache_ttl={:?} \
             reads={} body_limit={} dedupe_window={:?}",
            self.api_keys.len(),
            self.default_entity
                .map_or_else(|| "-".to_owned(), |e| e.to_string()),
            self.unknown_tax_id.as_str(),
            self.create_requesters,
            self.default_country,
            self.default_category.as_deref().unwrap_or("-"),
            self.wait,
            self.max_attachment_bytes,
            self.cache_ttl,
            self.reads.as_str(),
            self.body_limit
                .map_or_else(|| "default".to_owned(), |n| n.to_string()),
            self.dedupe_window,
        )
    }
}
