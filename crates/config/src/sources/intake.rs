//! `kind = "intake"` sources.

use serde::Deserialize;

/// The intake API for web forms, voice agents and automation tools (`/api/v1/tickets`).
///
/// Owned by the intake flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSource {
    pub target: String,
}

impl IntakeSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, _prefix: &str, _problem: &mut dyn FnMut(String, String)) {}

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        String::new()
    }
}
