//! Client for the GLPI legacy REST API (`apirest.php`, and `api.php/v1` on GLPI 11).
//!
//! One [`GlpiClient`] holds one GLPI session shared by all its clones and callers; it logs in
//! again once, for everybody, when GLPI says the session expired. See `docs/glpi.md`.

mod client;
mod config;
mod error;
mod lenient;
mod text;

pub use client::GlpiClient;
pub use config::{Auth, GlpiConfig, TextEncoding};
pub use error::GlpiError;
pub use text::{decode_text, digits_only, same_phone};
