//! Source routes: how each kind of inbound channel reaches the ingest path.
//!
//! Built in: [`events`] (`POST /api/v1/events/{source}`). Other kinds plug
//! in through [`crate::SourceRoutes`].

pub mod chatwoot;
pub mod events;
pub mod intake;
pub mod itop;
pub mod messaging;
