//! Installs the iTop ↔ iTop bridge: its job handlers (`itop.webhook`,
//! `itop.sync`, `itop.reconcile`) on the engine, the first reconcile run,
//! and the iTop webhook routes on the server.

use anyhow::Context;
use config::Config;
use engine::Engine;
use flows::Targets;
use server::Dependencies;
use store::Store;

/// Does nothing when no `kind = "itop"` source is configured.
pub fn install(
    config: &Config,
    targets: &Targets,
    store: &Store,
    engine: &mut Engine,
    deps: Dependencies,
) -> anyhow::Result<Dependencies> {
    let bridges = itop_bridge::install(config, store, engine, targets)
        .context("cannot set up the iTop bridge")?;
    if bridges.is_empty() {
        return Ok(deps);
    }
    Ok(deps.with_source(server::sources::itop::routes))
}
