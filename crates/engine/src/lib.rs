//! The job engine: runs the jobs of the store's `jobs` table with per-ordering-key
//! ordering, leases kept alive by heartbeats, classified retries with backoff, dead
//! letters and graceful shutdown. See `docs/store-and-engine.md`.

mod backoff;
mod config;
mod engine;
mod error;
mod execute;
mod handler;

pub use backoff::retry_delay;
pub use config::EngineConfig;
pub use engine::{Engine, Reservation, Starter, Waker};
pub use error::{EngineError, JobError};
pub use execute::release_slot;
pub use handler::{Handler, handler_fn};
