//! Stateful simulators of the remote systems ticketbridge talks to.
//!
//! Each simulator is a real HTTP server on loopback with in-memory state, the
//! status codes and bodies of the real system, fault injection and counters.
//! They live in their own crates so each can be built and tested alone; this
//! crate gathers them under one name for tests, benchmarks and the demo.

pub use sim_chatwoot as chatwoot;
pub use sim_glpi as glpi;
pub use sim_itop as itop;
