//! `kind = "messaging"` sources.

use serde::Deserialize;

/// A messaging channel (WhatsApp bot, gateway) at `/api/v1/channels/<name>/...`.
///
/// Owned by the messaging flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingSource {
    pub target: String,
}

impl MessagingSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, _prefix: &str, _problem: &mut dyn FnMut(String, String)) {}

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        String::new()
    }
}
