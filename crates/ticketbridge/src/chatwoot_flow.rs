//! Wiring of the Chatwoot flow: its job handlers on the engine, its webhook
//! routes on the server, and the first poll and sweep of each source.

use anyhow::Context;
use chatwoot_sync::ChatwootFlow;
use config::Config;
use engine::Engine;
use flows::Targets;
use server::Dependencies;
use store::Store;

/// Registers the Chatwoot flow when the configuration has Chatwoot sources.
pub fn install(
    config: &Config,
    targets: &Targets,
    store: &Store,
    engine: &mut Engine,
    deps: Dependencies,
) -> anyhow::Result<Dependencies> {
    let flow = ChatwootFlow::from_config(config, targets, store)
        .context("cannot set up the chatwoot sources")?;
    if flow.is_empty() {
        return Ok(deps);
    }
    flow.register(engine);
    // The first poll and sweep (idempotent: one pending job per source and
    // kind). Enqueued in the background so building stays synchronous.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let starter = flow.clone();
        runtime.spawn(async move {
            if let Err(error) = starter.start().await {
                tracing::error!(%error, "cannot schedule the chatwoot poller and sweep");
            }
        });
    }
    Ok(deps
        .with_source(|state: &server::AppState| server::sources::chatwoot::router(&state.config)))
}
