//! Installs the messaging flow: its job handlers on the engine and the
//! `/api/v1/channels/...` routes on the server.

use anyhow::Context;
use config::Config;
use engine::Engine;
use flows::Targets;
use messaging::Messaging;
use server::{AppState, Dependencies};
use store::Store;

/// Registers `messaging.buffer`, `messaging.flush` and `messaging.callback`
/// and adds the channel routes, when a messaging source is configured.
pub fn install(
    config: &Config,
    targets: &Targets,
    store: &Store,
    engine: &mut Engine,
    deps: Dependencies,
) -> anyhow::Result<Dependencies> {
    let flow = Messaging::from_config(config, targets, store.clone())
        .context("cannot set up the messaging sources")?;
    if flow.is_empty() {
        return Ok(deps);
    }
    // Every message's phone is read: load the numbering plans now, not on
    // the first message (a second in a debug build), whose answer and
    // merge window would wait for it.
    flows::identity::load_phone_data();
    flow.register(engine);
    Ok(deps.with_source(move |state: &AppState| {
        server::sources::messaging::router(&state.config, flow.clone())
    }))
}
