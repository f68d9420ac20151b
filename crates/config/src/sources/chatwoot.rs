//! `kind = "chatwoot"` sources.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// A Chatwoot account whose webhooks arrive at `/hooks/chatwoot/<name>`
/// (signed) or `/hooks/chatwoot/<name>/<url_token>` (older, unsigned
/// Chatwoot), synchronised both ways with `target`.
///
/// Owned by the chatwoot flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatwootSource {
    /// The help desk (GLPI first) the conversations become tickets in.
    pub target: String,
    /// Chatwoot's base URL, e.g. `https://chat.example.com`.
    pub url: Url,
    /// An administrator User access token (contact work and listing
    /// conversations need a User token; an AgentBot token is not enough).
    pub api_access_token: SecretString,
    pub account_id: u64,
    /// The webhook's secret (Chatwoot ≥ 4.11.2): `X-Chatwoot-Signature` is
    /// verified over `timestamp.raw_body` and stale timestamps are refused.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// A secret path segment for Chatwoot versions that do not sign.
    #[serde(default)]
    pub url_token: Option<SecretString>,
    /// How old a signed delivery may be.
    #[serde(default = "default_signature_tolerance", with = "humantime_serde")]
    pub signature_tolerance: Duration,
    /// Largest webhook body in bytes (413 above it). Chatwoot repeats a
    /// message's content in the body up to three times (the message, the
    /// conversation's `messages`, its last message), escaped: an HTML email
    /// of a few hundred kilobytes makes a body of megabytes, more than
    /// `server.body_limit` allows other routes. Default 8 MiB.
    #[serde(default = "default_webhook_body_limit")]
    pub body_limit: usize,
    /// Only these inbox ids are synchronised (empty: every inbox).
    #[serde(default)]
    pub inboxes: Vec<u64>,
    /// Copy messages to followups (off: tickets and statuses only).
    #[serde(default = "yes")]
    pub sync_messages: bool,
    /// Ticket title. Placeholders: `{message}` (first customer message),
    /// `{contact}`, `{conversation}`, `{inbox}`; `{name:N}` keeps the first
    /// N characters.
    #[serde(default = "default_title_template")]
    pub title_template: String,
    /// How many of the customer's first messages make the description.
    #[serde(default = "one")]
    pub description_messages: u32,
    /// Entity (GLPI) / organisation id of new tickets.
    #[serde(default)]
    pub entity: Option<i64>,
    /// Category of new tickets: an id or a name.
    #[serde(default)]
    pub category: Option<CategorySetting>,
    /// Also post a private note with the ticket link in the conversation.
    #[serde(default)]
    pub private_note_with_link: bool,
    /// What a customer message on a conversation whose ticket is closed does.
    #[serde(default)]
    pub closed_ticket_policy: ClosedTicketPolicy,
    /// Text of the solution written when a conversation is resolved.
    #[serde(default = "default_solution_text")]
    pub solution_text: String,
    /// How often the target is polled for replies and status changes.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often recently updated conversations are swept for lost webhooks.
    #[serde(default = "default_reconcile_interval", with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How far back the sweep looks (`updated_within`).
    #[serde(default = "default_reconcile_window", with = "humantime_serde")]
    pub reconcile_window: Duration,
    /// Target replies become public messages or private notes.
    #[serde(default)]
    pub glpi_replies_as: RepliesAs,
    /// Country for phone numbers without a country code (ISO 3166, e.g. `BR`).
    #[serde(default)]
    pub default_country: Option<String>,
    /// Timeout of every Chatwoot API call and attachment download.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Larger attachments are not copied (a note says so instead).
    #[serde(default = "default_attachment_max_bytes")]
    pub attachment_max_bytes: u64,
    /// Hosts attachments may be downloaded from besides Chatwoot's own
    /// (`url`): the storage ActiveStorage redirects to (S3, GCS, MinIO).
    /// `host`, `host:port` or `*.domain`; without a port, the scheme's
    /// default port. Every redirect hop is checked too.
    #[serde(default)]
    pub attachment_hosts: Vec<String>,
}

/// A category given by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CategorySetting {
    Id(i64),
    Name(String),
}

/// An id (a number) or a name (a string); anything else is "expected a
/// category id or name", not serde's words for an untagged enum.
impl<'de> Deserialize<'de> for CategorySetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdOrName;
        impl serde::de::Visitor<'_> for IdOrName {
            type Value = CategorySetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a category id or name")
            }
            fn visit_i64<E: serde::de::Error>(self, id: i64) -> Result<CategorySetting, E> {
                Ok(CategorySetting::Id(id))
            }
            fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<CategorySetting, E> {
                i64::try_from(id)
                    .map(CategorySetting::Id)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(id), &self))
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<CategorySetting, E> {
                Ok(CategorySetting::Name(name.to_owned()))
            }
        }
        deserializer.deserialize_any(IdOrName)
    }
}

/// What a customer message on a conversation whose ticket is closed does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedTicketPolicy {
    /// A new ticket, linked to the old one, takes over the conversation.
    #[default]
    NewTicket,
    /// The closed ticket is reopened.
    Reopen,
    /// The message is not copied.
    Ignore,
}

/// How target replies are posted in Chatwoot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepliesAs {
    /// Outgoing messages the customer sees (a private note when the
    /// channel cannot reply).
    #[default]
    Message,
    /// Private notes for the agents only.
    PrivateNote,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_title_template() -> String {
    "{message:50}".to_owned()
}
fn default_solution_text() -> String {
    "Resolved in Chatwoot.".to_owned()
}
fn default_webhook_body_limit() -> usize {
    8 * 1024 * 1024
}
fn default_signature_tolerance() -> Duration {
    Duration::from_secs(300)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_reconcile_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_reconcile_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_attachment_max_bytes() -> u64 {
    10 * 1024 * 1024
}

/// Placeholders a title template may use.
pub const TITLE_PLACEHOLDERS: [&str; 4] = ["message", "contact", "conversation", "inbox"];

/// Shortest accepted URL token.
const MIN_URL_TOKEN: usize = 16;

impl ChatwootSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, prefix: &str, problem: &mut dyn FnMut(String, String)) {
        let mut bad = |field: &str, message: &str| {
            problem(format!("{prefix}.{field}"), message.to_owned());
        };
        if !matches!(self.url.scheme(), "http" | "https") {
            bad("url", "must be an http or https URL");
        }
        if self.api_access_token.expose_secret().trim().is_empty() {
            bad("api_access_token", "must not be empty");
        }
        if self.account_id == 0 {
            bad("account_id", "must be a Chatwoot account id (> 0)");
        }
        if self.body_limit == 0 {
            bad("body_limit", "must be greater than 0 (bytes)");
        }
        let secret = self
            .webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().trim().is_empty());
        let token = self
            .url_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned());
        if secret.is_none() && token.is_none() {
            bad(
                "webhook_secret",
                "set webhook_secret (signed Chatwoot ≥ 4.11.2) and/or url_token (older Chatwoot)",
            );
        }
        if secret == Some(true) {
            bad("webhook_secret", "must not be empty");
        }
        if let Some(token) = token {
            if token.len() < MIN_URL_TOKEN {
                bad(
                    "url_token",
                    &format!("must be at least {MIN_URL_TOKEN} characters"),
                );
            }
            if !token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bad("url_token", "may only use letters, digits, '-' and '_'");
            }
        }
        if self.signature_tolerance.is_zero() {
            bad("signature_tolerance", "must be greater than zero");
        }
        if self.inboxes.contains(&0) {
            bad("inboxes", "inbox ids are > 0");
        }
        if let Err(message) = check_title_template(&self.title_template) {
            bad("title_template", &message);
        }
        if self.description_messages == 0 {
            bad("description_messages", "must be at least 1");
        }
        if matches!(self.entity, Some(id) if id < 0) {
            bad("entity", "must be an id (>= 0)");
        }
        match &self.category {
            Some(CategorySetting::Id(id)) if *id <= 0 => bad("category", "must be an id (> 0)"),
            Some(CategorySetting::Name(name)) if name.trim().is_empty() => {
                bad("category", "must not be empty")
            }
            _ => {}
        }
        if self.solution_text.trim().is_empty() {
            bad("solution_text", "must not be empty");
        }
        for (field, value) in [
            ("poll_interval", self.poll_interval),
            ("reconcile_interval", self.reconcile_interval),
            ("reconcile_window", self.reconcile_window),
            ("timeout", self.timeout),
        ] {
            if value.is_zero() {
                bad(field, "must be greater than zero");
            }
        }
        if let Some(problem) = self
            .default_country
            .as_deref()
            .and_then(super::country_problem)
        {
            bad("default_country", problem);
        }
        if self.attachment_max_bytes == 0 {
            bad("attachment_max_bytes", "must be greater than zero");
        }
        for host in &self.attachment_hosts {
            if let Err(message) = AttachmentHost::parse(host) {
                bad("attachment_hosts", &message);
            }
        }
    }

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        let auth = match (&self.webhook_secret, &self.url_token) {
            (Some(_), Some(_)) => "signature or URL token",
            (Some(_), None) => "signature",
            (None, Some(_)) => "URL token",
            (None, None) => "none",
        };
        let inboxes = if self.inboxes.is_empty() {
            "all inboxes".to_owned()
        } else {
            format!(
                "inboxes {}",
                self.inboxes
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        format!(
            "chatwoot {} account {} → {} ({auth}; {inboxes}; messages {}; poll {}; reconcile {})",
            crate::model::redacted(&self.url),
            self.account_id,
            self.target,
            if self.sync_messages { "on" } else { "off" },
            humantime_serde::re::humantime::format_duration(self.poll_interval),
            humantime_serde::re::humantime::format_duration(self.reconcile_interval),
        )
    }
}

/// One `attachment_hosts` entry, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentHost {
    /// Lowercase host name or IP address (IPv6 without brackets).
    pub host: String,
    /// `None`: the scheme's default port.
    pub port: Option<u16>,
    /// `*.domain`: any name under `host`.
    pub subdomains: bool,
}

impl AttachmentHost {
    /// Reads `host`, `host:port`, `[v6]:port` or `*.domain` (no scheme, no path).
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("a host must not be empty".to_owned());
        }
        if entry.contains("://") || entry.contains('/') || entry.contains('@') {
            return Err(format!("{entry:?}: give a host or host:port, not a URL"));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{entry:?}: a '[' without its ']'"))?;
            (host, after.strip_prefix(':'))
        } else {
            match entry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            }
        };
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    return Err(format!(
                        "{entry:?}: the port must be a number from 1 to 65535"
                    ));
                }
            },
        };
        let (name, subdomains) = match host.strip_prefix("*.") {
            Some(name) => (name, true),
            None => (host, false),
        };
        if name.is_empty() || name.contains('*') {
            return Err(format!("{entry:?}: only a leading \"*.\" is allowed"));
        }
        Ok(Self {
            host: name.to_ascii_lowercase(),
            port,
            subdomains,
        })
    }
}

/// Checks `{name}` / `{name:N}` placeholders of a title template.
pub fn check_title_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| "has a '{' without its '}'".to_owned())?;
        let inner = &after[..end];
        let (name, width) = match inner.split_once(':') {
            Some((name, width)) => (name, Some(width)),
            None => (inner, None),
        };
        if !TITLE_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                TITLE_PLACEHOLDERS.join(", ")
            ));
        }
        if let Some(width) = width
            && width.parse::<usize>().map_or(true, |w| w == 0)
        {
            return Err(format!("{{{inner}}}: the width must be a number > 0"));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_templates() {
        assert!(check_title_template("{message:50}").is_ok());
        assert!(check_title_template("[{inbox}] {contact}: {message}").is_ok());
        assert!(check_title_template("{nope}").is_err());
        assert!(check_title_template("{message:0}").is_err());
        assert!(check_title_template("{message").is_err());
        assert!(check_title_template(" ").is_err());
    }

    #[test]
    fn attachment_hosts() {
        for good in [
            "files.example.com",
            "minio:9000",
            "*.s3.amazonaws.com",
            "127.0.0.1:8080",
            "[::1]:9000",
        ] {
            assert!(AttachmentHost::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "https://s3.example.com",
            "host/path",
            "host:0",
            "host:x",
            "a*.b",
            "*.",
        ] {
            assert!(AttachmentHost::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod category_tests {
    use super::CategorySetting;

    #[derive(serde::Deserialize)]
    struct Holder {
        category: CategorySetting,
    }

    #[test]
    fn a_category_is_an_id_or_a_name() {
        let read = |text: &str| toml::from_str::<Holder>(text).map(|h| h.category);
        assert_eq!(read("category = 7").unwrap(), CategorySetting::Id(7));
        assert_eq!(
            read("category = \"Printers\"").unwrap(),
            CategorySetting::Name("Printers".to_owned())
        );
        assert!(read("category = true").is_err());
    }
}
