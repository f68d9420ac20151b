//! Puts the flows together: the configured targets, each flow's job handlers
//! and its source routes. Each flow adds one `install` call here.

use anyhow::Context;
use config::Config;
use engine::Engine;
use flows::Targets;
use server::Dependencies;
use store::Store;

/// What the flows need kept alive while the process runs.
pub struct Wired {
    pub deps: Dependencies,
    pub targets: Targets,
}

/// Builds the targets and lets every flow register its handlers on `engine`
/// and its routes on `deps`.
pub fn install(
    config: &Config,
    _store: &Store,
    _engine: &mut Engine,
    deps: Dependencies,
) -> anyhow::Result<Wired> {
    let targets = Targets::from_config(config).context("cannot set up the targets")?;
    let deps = crate::intake_flow::install(config, &targets, _store, _engine, deps)?;
    let deps = crate::itop_flow::install(config, &targets, _store, _engine, deps)?;
    let deps = crate::messaging_flow::install(config, &targets, _store, _engine, deps)?;
    let deps = crate::chatwoot_flow::install(config, &targets, _store, _engine, deps)?;
    Ok(Wired { deps, targets })
}
