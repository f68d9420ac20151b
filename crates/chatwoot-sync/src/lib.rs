//! Chatwoot ↔ help desk synchronisation (GLPI first, any [`flows::Helpdesk`]).
//!
//! Chatwoot → target: webhook bodies become `chatwoot.event` jobs ordered per
//! conversation (per contact for contact events). Contacts become persons
//! (a user with an email, an address-book contact with only a phone),
//! conversations become tickets once a customer message exists, messages
//! become followups, statuses follow. Target → Chatwoot: a poller per
//! source finds changed tickets with one search per cycle and copies new
//! replies and the solved state back. A sweep over recently updated
//! conversations repairs what a lost webhook missed. Every write is
//! remembered so its echo is dropped, both ways.
//!
//! This crate knows no HTTP routes: the server verifies and persists
//! webhooks and builds their jobs with [`jobs::event_job`]; the binary
//! registers [`ChatwootFlow`] on the engine. See `docs/chatwoot.md`.

mod attachments;
mod contacts;
pub mod error;
mod flow;
pub mod jobs;
pub mod links;
mod messages;
mod reconcile;
mod replies;
mod source;
mod status;
pub mod text;
mod tickets;
pub mod title;

pub use contacts::{ContactInfo, PersonRef};
pub use error::{SyncError, SyncResult};
pub use flow::ChatwootFlow;
pub use messages::ChatMessage;
pub use source::{CONTACT_KEYS, CONVERSATION_KEYS, OWN_KEYS, SOURCE_ID_PREFIX, SourceSync};
