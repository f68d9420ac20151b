//! Simulator configuration and its error type.

use rand::Rng;

/// Which GLPI generation the simulator imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GlpiVersion {
    /// GLPI 10.0.x: text stored and returned HTML-entity encoded, `apirest.php` only.
    #[default]
    V10,
    /// GLPI 11.x legacy API: raw HTML, long session tokens, `/api.php/v1` alias, `location`
    /// always under `/api.php/v1`.
    V11,
}

/// How to start a simulator. `Default` gives random tokens, GLPI 10 mode, a random port.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub mode: GlpiVersion,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// App-Token of API client 1.
    pub app_token: String,
    /// API token (user_token) of user `glpi` (id 2, Super-Admin).
    pub glpi_user_token: String,
    /// API token of user `tech` (id 4, Technician).
    pub tech_user_token: String,
    /// Password of user `glpi` (a fresh install uses `glpi`).
    pub glpi_password: String,
    /// Start the simulated clock at this UTC time (`YYYY-MM-DD HH:MM:SS`); it then advances in
    /// real time. `None` = the real clock.
    pub clock_start: Option<String>,
    /// Page size used when a list/search has no `range` (GLPI user preference `list_limit`).
    pub list_limit: usize,
    /// Length of GLPI 10 session tokens, PHP session ids (`session.sid_length`: 26 by
    /// default in 10's era, up to 256). GLPI 11 ignores it.
    pub session_id_length: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            mode: GlpiVersion::V10,
            port: 0,
            app_token: random_hex(40),
            glpi_user_token: random_hex(40),
            tech_user_token: random_hex(40),
            glpi_password: "glpi".to_string(),
            clock_start: None,
            list_limit: 20,
            session_id_length: 26,
        }
    }
}

impl SimConfig {
    /// Default configuration in the given mode.
    pub fn with_mode(mode: GlpiVersion) -> Self {
        SimConfig {
            mode,
            ..SimConfig::default()
        }
    }
}

pub(crate) fn random_hex(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Errors of the simulator's own lifecycle (not the GLPI errors it answers with).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the simulator to 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

impl SimError {
    /// Binding may succeed later (port released); a bad configuration never will.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SimError::Bind { .. })
    }
}
