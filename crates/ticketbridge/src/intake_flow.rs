//! Wiring of the intake flow: the `intake.create_ticket` handler on the
//! engine and the intake routes on the server, sharing one [`intake::Intake`]
//! (caches and waiting callers).

use std::sync::Arc;

use anyhow::Context;
use config::Config;
use engine::Engine;
use flows::Targets;
use server::Dependencies;
use store::Store;

/// Registers the intake flow when the configuration has intake sources.
pub fn install(
    config: &Config,
    targets: &Targets,
    store: &Store,
    engine: &mut Engine,
    deps: Dependencies,
) -> anyhow::Result<Dependencies> {
    let intake = intake::Intake::from_config(config, targets, store.clone())
        .context("cannot set up the intake sources")?
        .with_starter(engine.starter());
    if intake.is_empty() {
        return Ok(deps);
    }
    // A caller's phone is read on the request path: load the numbering
    // plans beside start-up, so the first caller does not wait for them.
    std::thread::spawn(flows::identity::load_phone_data);
    let intake = Arc::new(intake);
    engine.register(
        intake::JOB_KIND,
        intake::CreateTicket::handler(intake.clone()),
    );
    Ok(deps.with_source(server::sources::intake::routes(intake)))
}
