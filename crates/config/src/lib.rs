//! ticketbridge configuration.
//!
//! One TOML file, every key overridable by environment variables, secrets
//! written as `${ENV_VAR}` references. The layering is:
//!
//! 1. built-in defaults (`Default` of each section: SQLite at
//!    `./ticketbridge.db`, listen on `127.0.0.1:8080`);
//! 2. the TOML file (a missing default file means "defaults only");
//! 3. environment variables `TICKETBRIDGE_<SECTION>__<KEY>` (`__` nests,
//!    e.g. `TICKETBRIDGE_SERVER__LISTEN=0.0.0.0:9000`,
//!    `TICKETBRIDGE_TARGETS__MAIN__URL=...`); any other `TICKETBRIDGE_*`
//!    variable (but `TICKETBRIDGE_CONFIG`, `TICKETBRIDGE_TEST_*` and those a
//!    `${...}` reference names) is a problem, and a problem in a value a
//!    variable set names the variable;
//! 4. `${VAR}` references inside any string value are replaced by the
//!    variable's value; an unset variable is an error naming the field.
//!
//! [`load`] never stops at the first problem: it returns every problem it
//! finds (unknown fields, wrong types, bad URLs, unset variables, sources
//! pointing at unknown targets...) as a [`ConfigErrors`], one
//! [`Problem`] per field path.
//!
//! The types are shared by the server (routes, auth), the flows (target
//! connection settings) and the binary. Other source kinds are added as
//! variants of [`SourceConfig`]; other target kinds as variants of
//! [`TargetConfig`].

mod load;
mod model;
pub mod sources;
mod validate;

pub use load::{
    ConfigErrors, ENV_PREFIX, Handlers, Problem, load, load_str, load_str_with, load_with,
};
pub use model::{
    Config, EngineSettings, EventsSource, GlpiTarget, ItopTarget, LogFormat, ServerConfig,
    SourceConfig, StoreConfig, TargetConfig, redact_url, redacted,
};
