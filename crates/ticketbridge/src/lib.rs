//! The ticketbridge service assembled: [`wiring`] puts targets, flows,
//! handlers and routes together; [`testkit`] runs the whole service in
//! process for end-to-end tests and the demo. The `ticketbridge` binary
//! (main.rs) is the command line on top.

pub mod chatwoot_flow;
pub mod demo_chatwoot;
pub mod intake_flow;
pub mod itop_flow;
pub mod messaging_flow;
pub mod output;
pub mod testkit;
pub mod wiring;
