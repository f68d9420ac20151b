//! A stateful simulator of GLPI's legacy REST API (`apirest.php`, and `api.php/v1` in
//! GLPI 11 mode), faithful to transcripts recorded from real GLPI 10.0.12 and 11.0.8
//! (`tests/fixtures/glpi*/`).
//!
//! It is a real HTTP server on loopback with in-memory state: app and user tokens,
//! sessions with active profile/entities, entities (with a Fields-plugin custom field),
//! users with emails and phones, contacts, tickets with actors and the 1–6 status
//! lifecycle, followups, solutions, tasks, documents, categories, request types, the
//! search engine and `listSearchOptions`. Tests reach into the state, seed it, inject
//! faults and read call counters through [`RunningSim`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), sim_glpi::SimError> {
//! use sim_glpi::{GlpiSim, SimConfig};
//! let sim = GlpiSim::start(SimConfig::default()).await?;
//! println!("{} app={} user={}", sim.base_url(), sim.app_token(), sim.user_token("glpi").unwrap_or_default());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod clock;
mod config;
mod faults;
mod model;
mod params;
mod row;
mod schema;
mod search;
mod server;
mod state;
mod text;
mod view;

pub use config::{GlpiVersion, SimConfig, SimError};
pub use faults::Faults;
pub use model::{
    ActorKind, NewContact, NewUser, SimActor, SimContact, SimDocument, SimEntity, SimFollowup,
    SimSolution, SimTicket, SimUser,
};
pub use server::{GlpiSim, RunningSim, run_standalone};
