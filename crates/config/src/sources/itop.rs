//! `kind = "itop"` sources.

use serde::Deserialize;

/// One side of the iTop ↔ iTop bridge.
///
/// Owned by the itop flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItopSource {
    pub target: String,
}

impl ItopSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, _prefix: &str, _problem: &mut dyn FnMut(String, String)) {}

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        String::new()
    }
}
