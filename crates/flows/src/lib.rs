//! The parts every flow shares: the [`helpdesk::Helpdesk`] interface that GLPI
//! and iTop both implement, and the rules for finding the requester and the
//! organisation of a ticket ([`identity`]).
//!
//! A flow crate (intake, messaging, chatwoot-sync, itop-bridge) depends on
//! this one and on the store and engine; none of them knows HTTP.

pub mod claims;
pub mod files;
pub mod glpi;
pub mod helpdesk;
pub mod identity;
pub mod itop;
pub mod targets;
pub mod text;

pub use helpdesk::{Helpdesk, HelpdeskError, HelpdeskResult};
pub use targets::{TargetError, Targets};
