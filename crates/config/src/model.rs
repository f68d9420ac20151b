//! The typed configuration sections.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub engine: EngineSettings,
    /// Named ticketing systems the bridge writes to.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Named inbound channels, each routed to one target.
    pub sources: BTreeMap<String, SourceConfig>,
}

impl Config {
    /// The largest attachment, in bytes, that a source writing to `target`
    /// accepts (intake, messaging and Chatwoot sources have a limit; None when
    /// no such source writes there). Targets size their answer limits on it.
    pub fn largest_attachment_bytes(&self, target: &str) -> Option<u64> {
        self.sources
            .values()
            .filter(|source| source.target() == target)
            .filter_map(|source| match source {
                SourceConfig::Intake(s) => u64::try_from(s.max_attachment_bytes).ok(),
                SourceConfig::Messaging(s) => Some(s.max_attachment_bytes),
                SourceConfig::Chatwoot(s) => Some(s.attachment_max_bytes),
                SourceConfig::Events(_) | SourceConfig::Itop(_) => None,
            })
            .max()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    #[default]
    Json,
    /// Human-readable, coloured lines (development).
    Pretty,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes (larger bodies get 413).
    pub body_limit: usize,
    /// Time a request may take before it is answered with 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers, counted from the
    /// connection's start or the end of its previous request (an idle
    /// keep-alive connection is closed after it).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Connections served at once; further ones wait in the listen queue.
    pub max_connections: usize,
    /// `json` or `pretty`.
    pub log_format: LogFormat,
    /// Mount `POST /bench/noop` (answers 202 without persisting); for benchmarks.
    pub bench_noop: bool,
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`
    /// (or `X-API-Key`); unset, it is open (scrape it on a private network).
    pub metrics_token: Option<SecretString>,
    /// The service's address as callers reach it (`https://bridge.example.com`,
    /// behind a proxy): links in answers (`status_url`) start with it. Unset,
    /// they start with the request's own `Host` (and `X-Forwarded-Proto`).
    pub public_url: Option<Url>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(15),
            max_connections: 1024,
            log_format: LogFormat::Json,
            bench_noop: false,
            metrics_token: None,
            public_url: None,
        }
    }
}

/// `[store]`: where inbox, jobs, links and audit live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path` (created when missing), `sqlite::memory:` or `postgres://user:pass@host/db`.
    /// May contain a password: print it with [`redact_url`].
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://./ticketbridge.db".to_owned(),
        }
    }
}

/// `[engine]`: the job engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// How long a claimed job stays reserved for its worker; a dead worker's
    /// job is taken again after this.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often idle workers look for due jobs (they are also woken on enqueue).
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// First retry delay; doubled per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Attempts before a job becomes a dead letter (a job may override it).
    pub max_attempts: u32,
    /// Jobs running at once per target (per queue).
    pub concurrency: usize,
    /// On shutdown, how long in-flight jobs may run before they are released.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long succeeded jobs stay in the store after they finished (for
    /// `jobs list` and `jobs show`); `0s` keeps them for ever. Dead letters
    /// stay until `jobs purge-dead`; inbox rows and links are never deleted.
    #[serde(with = "humantime_serde")]
    pub keep_succeeded: Duration,
    /// How long the raw body of a request whose jobs all succeeded stays in the
    /// inbox; `0s` keeps it for ever. The row stays (its dedupe key still
    /// answers repeats); requests with a pending, running or dead job keep it.
    #[serde(with = "humantime_serde")]
    pub keep_request_bodies: Duration,
    /// How long audit lines (what was written where, by which job) stay;
    /// `0s` keeps them for ever.
    #[serde(with = "humantime_serde")]
    pub keep_audit: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_attempts: 10,
            concurrency: 4,
            shutdown_grace: Duration::from_secs(20),
            keep_succeeded: Duration::from_secs(7 * 24 * 3600),
            keep_request_bodies: Duration::from_secs(30 * 24 * 3600),
            keep_audit: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// `[targets.<name>]`: a ticketing system instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    Glpi(GlpiTarget),
    Itop(ItopTarget),
}

impl TargetConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Glpi(_) => "glpi",
            Self::Itop(_) => "itop",
        }
    }

    pub fn url(&self) -> &Url {
        match self {
            Self::Glpi(t) => &t.url,
            Self::Itop(t) => &t.url,
        }
    }
}

fn default_target_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A GLPI instance (legacy REST API, `apirest.php`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlpiTarget {
    /// Base URL of the API, e.g. `https://glpi.example.com/apirest.php`.
    pub url: Url,
    /// `App-Token` header value, when the API client requires one.
    pub app_token: Option<SecretString>,
    /// User API token (`Authorization: user_token ...`); or use login/password.
    pub user_token: Option<SecretString>,
    pub login: Option<String>,
    pub password: Option<SecretString>,
    /// Per-request timeout.
    #[serde(default = "default_target_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Search option id of the organisation tax-id (CNPJ) field on Entity,
    /// e.g. a Fields-plugin custom field (76666). Default: the entity's
    /// registration number.
    pub tax_id_search_option: Option<u32>,
    /// Web root used in ticket links, when it differs from the API URL
    /// without `apirest.php`.
    pub web_url: Option<Url>,
    /// Entity used when a source names none.
    pub default_entity: Option<i64>,
    /// RequestType id set on tickets and followups the bridge writes.
    pub request_type: Option<i64>,
    /// Profile id given to users the bridge creates (1 = Self-Service).
    pub new_user_profile: Option<i64>,
    /// Largest GLPI answer read, in bytes; a longer one fails the call
    /// without being read. Default: derived from the largest attachment the
    /// sources writing here take ([`Config::largest_attachment_bytes`]).
    pub max_response_bytes: Option<u64>,
}

/// An iTop instance (REST/JSON `webservices/rest.php`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItopTarget {
    /// Base URL of iTop, e.g. `https://itop.example.com/`.
    pub url: Url,
    /// Basic-auth user and password; or use `token`.
    pub user: Option<String>,
    pub password: Option<SecretString>,
    /// Application token (`auth_token`).
    pub token: Option<SecretString>,
    #[serde(default = "default_target_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Organization attribute holding the tax id (CNPJ, ...); default `code`.
    pub tax_id_field: Option<String>,
    /// Web root used in ticket links, when it differs from `url`.
    pub web_url: Option<Url>,
    /// `impact` of the UserRequests the flows create: 1 (a department),
    /// 2 (a group), 3 (a person, the default).
    pub impact: Option<u8>,
    /// Organization id of the requesters (Persons) the flows create when
    /// nothing else names one: iTop refuses a Person without organisation.
    pub default_org: Option<u64>,
    /// Largest iTop answer read, in bytes (attachments come inline, in
    /// base64); a longer one fails the call without being read. Default:
    /// derived from the largest attachment the sources writing here take.
    pub max_response_bytes: Option<u64>,
}

/// `[sources.<name>]`: an inbound channel. Every kind names its `target`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    /// Generic JSON events at `POST /api/v1/events/<name>`.
    Events(EventsSource),
    Intake(crate::sources::IntakeSource),
    Messaging(crate::sources::MessagingSource),
    Chatwoot(crate::sources::ChatwootSource),
    Itop(crate::sources::ItopSource),
}

impl SourceConfig {
    /// The target this source writes to.
    pub fn target(&self) -> &str {
        match self {
            Self::Events(s) => &s.target,
            Self::Intake(s) => &s.target,
            Self::Messaging(s) => &s.target,
            Self::Chatwoot(s) => &s.target,
            Self::Itop(s) => &s.target,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Events(_) => "events",
            Self::Intake(_) => "intake",
            Self::Messaging(_) => "messaging",
            Self::Chatwoot(_) => "chatwoot",
            Self::Itop(_) => "itop",
        }
    }
}

fn default_event_job_kind() -> String {
    "event.record".to_owned()
}

/// A generic JSON event source authenticated by API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSource {
    pub target: String,
    /// Accepted keys (`X-API-Key` or `Authorization: Bearer`); several keys
    /// allow rotation.
    pub api_keys: Vec<SecretString>,
    /// Job kind enqueued for each event.
    #[serde(default = "default_event_job_kind")]
    pub job_kind: String,
    /// JSON pointer (RFC 6901) into the body giving the ordering key; when
    /// absent or not found, the dedupe key is used.
    pub ordering_key: Option<String>,
}

/// The URL with any password replaced by `***`.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => redacted(&url),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Query parameters whose values are shown as they are; every other value
/// may be a secret (`?password=`, `?token=`, a signature) and is shown as `***`.
const PLAIN_QUERY_KEYS: [&str; 8] = [
    "sslmode",
    "mode",
    "cache",
    "application_name",
    "connect_timeout",
    "statement-cache-capacity",
    "options",
    "sslrootcert",
];

/// [`redact_url`] for a parsed URL: the password of the user-info part, and
/// the value of every query parameter not known to be harmless, as `***`.
pub fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // set_password only fails for URLs that cannot have one.
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let shown = if PLAIN_QUERY_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    v.into_owned()
                } else {
                    "***".to_owned()
                };
                (k.into_owned(), shown)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl Config {
    /// A multi-line description of the effective configuration without any
    /// secret (passwords, tokens and keys are counted or shown as set).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let s = &self.server;
        let _ = writeln!(
            out,
            "server: listen={} body_limit={} request_timeout={} log_format={} bench_noop={} metrics_token={} public_url={}",
            s.listen,
            s.body_limit,
            humantime_serde::re::humantime::format_duration(s.request_timeout),
            match s.log_format {
                LogFormat::Json => "json",
                LogFormat::Pretty => "pretty",
            },
            s.bench_noop,
            if s.metrics_token.is_some() {
                "set"
            } else {
                "none (open)"
            },
            s.public_url
                .as_ref()
                .map_or("none (from each request's Host)", Url::as_str)
        );
        let _ = writeln!(out, "store: url={}", redact_url(&self.store.url));
        let e = &self.engine;
        let _ = writeln!(
            out,
            "engine: lease={:?} poll={:?} backoff={:?}..{:?} max_attempts={} concurrency={} shutdown_grace={:?} keep_succeeded={} keep_request_bodies={} keep_audit={}",
            e.lease,
            e.poll,
            e.backoff_base,
            e.backoff_max,
            e.max_attempts,
            e.concurrency,
            e.shutdown_grace,
            kept_for(e.keep_succeeded),
            kept_for(e.keep_request_bodies),
            kept_for(e.keep_audit)
        );
        for (name, target) in &self.targets {
            let auth = match target {
                TargetConfig::Glpi(t) => format!(
                    "app_token={} user_token={} login={}",
                    set(t.app_token.is_some()),
                    set(t.user_token.is_some()),
                    t.login.as_deref().unwrap_or("-")
                ),
                TargetConfig::Itop(t) => format!(
                    "user={} password={} token={}",
                    t.user.as_deref().unwrap_or("-"),
                    set(t.password.is_some()),
                    set(t.token.is_some())
                ),
            };
            let _ = writeln!(
                out,
                "target {name}: kind={} url={} {auth}",
                target.kind(),
                redacted(target.url())
            );
        }
        for (name, source) in &self.sources {
            let detail = match source {
                SourceConfig::Events(s) => format!(
                    "api_keys={} job_kind={} ordering_key={}",
                    s.api_keys.len(),
                    s.job_kind,
                    s.ordering_key.as_deref().unwrap_or("-")
                ),
                SourceConfig::Intake(s) => s.summary(),
                SourceConfig::Messaging(s) => s.summary(),
                SourceConfig::Chatwoot(s) => s.summary(),
                SourceConfig::Itop(s) => s.summary(),
            };
            let _ = writeln!(
                out,
                "source {name}: kind={} target={} {detail}",
                source.kind(),
                source.target()
            );
        }
        out
    }
}

fn set(present: bool) -> &'static str {
    if present { "set" } else { "unset" }
}

/// A retention period as `config check` shows it (`0s` is "forever").
fn kept_for(period: Duration) -> String {
    if period.is_zero() {
        "forever".to_string()
    } else {
        humantime_serde::re::humantime::format_duration(period).to_string()
    }
}
