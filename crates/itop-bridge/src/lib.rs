//! The iTop ↔ iTop bridge (the seed `itop-itop-bridge`, done properly):
//! tickets of an *external* (customer) iTop are mirrored into an *internal*
//! (provider) iTop, and for those tickets status, attachments and
//! private-log entries flow back. No database reads: every job reads the
//! current objects through REST. See `docs/itop.md` for the rule table.
//!
//! Flow: the server parses a webhook ([`webhook::Webhook::parse`]), stores
//! it with its `itop.webhook` job ([`webhook::job`], deduped by
//! [`webhook::dedupe_key`]) and answers 200. The job drops echoes of the
//! bridge's own writes, finds the ticket pair and enqueues `itop.sync`,
//! ordered per pair, which runs the rules ([`pair::PairSync`]). A
//! self-rescheduling `itop.reconcile` job repairs what lost webhooks missed.

pub mod context;
pub mod cursor;
pub mod error;
pub mod fingerprint;
pub mod jobs;
pub mod lifecycle;
pub mod pair;
pub mod side;
pub mod webhook;

pub use context::{Bridge, Bridges};
pub use error::BridgeError;
pub use side::Side;
pub use webhook::{Endpoint, Webhook, WebhookError};

use config::Config;
use engine::Engine;
use flows::Targets;
use store::Store;

/// Registers the bridge's job handlers on `engine` and schedules each
/// bridge's first reconcile run (idempotent: one pending run per bridge).
/// Does nothing when no `kind = "itop"` source is configured.
pub fn install(
    config: &Config,
    store: &Store,
    engine: &mut Engine,
    targets: &Targets,
) -> Result<Bridges, BridgeError> {
    let bridges = Bridges::from_config(config, targets)?;
    if bridges.is_empty() {
        return Ok(bridges);
    }
    for (kind, handler) in jobs::handlers(&bridges, store) {
        engine.register(kind, handler);
    }
    let first_runs: Vec<_> = bridges
        .0
        .values()
        .map(|b| jobs::reconcile_job(b, store::now_ms()))
        .collect();
    let store = store.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                for job in first_runs {
                    if let Err(error) = store.enqueue(job).await {
                        tracing::error!(%error, "could not schedule the iTop reconciler");
                    }
                }
            });
        }
        Err(_) => {
            tracing::warn!("no async runtime: the iTop reconciler starts with its first webhook")
        }
    }
    Ok(bridges)
}
