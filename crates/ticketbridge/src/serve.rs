//! `ticketbridge serve`: HTTP server and job engine in one process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use config::Config;
use engine::{Engine, EngineConfig};
use server::{Application, Dependencies, Wake};
use tokio_util::sync::CancellationToken;

use crate::event_record::{self, EventRecord};

/// Test knob: artificial work time of `event.record` jobs, in milliseconds
/// (documented in docs/configuration.md; the process tests need jobs that
/// are still running when they kill or stop the service).
pub const RECORD_DELAY_ENV: &str = "TICKETBRIDGE_TEST_RECORD_DELAY_MS";

pub fn engine_config(config: &Config) -> EngineConfig {
    let e = &config.engine;
    EngineConfig {
        lease: e.lease,
        poll_interval: e.poll,
        backoff_base: e.backoff_base,
        backoff_cap: e.backoff_max,
        default_max_attempts: i32::try_from(e.max_attempts).unwrap_or(i32::MAX),
        default_concurrency: e.concurrency,
        shutdown_grace: e.shutdown_grace,
        keep_succeeded: (!e.keep_succeeded.is_zero()).then_some(e.keep_succeeded),
        keep_request_bodies: (!e.keep_request_bodies.is_zero()).then_some(e.keep_request_bodies),
        keep_audit: (!e.keep_audit.is_zero()).then_some(e.keep_audit),
        ..EngineConfig::default()
    }
}

/// The job kinds an `events` source may name in `job_kind`: those
/// [`build_engine`] registers for events (checked by `config check` and at
/// start, so a typo is not a dead letter per event).
pub const EVENT_JOB_KINDS: &[&str] = &[event_record::KIND];

/// The engine with every handler the binary knows.
pub fn build_engine(config: &Config, store: &store::Store) -> Engine {
    let mut engine = Engine::new(store.clone(), engine_config(config));
    let delay = std::env::var(RECORD_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    if !delay.is_zero() {
        // A test knob that slows every event: never silent in a log.
        tracing::warn!(
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "{RECORD_DELAY_ENV} is set: every event.record job waits this long (a test knob; unset it in production)"
        );
    }
    engine.register(
        event_record::KIND,
        Arc::new(EventRecord {
            store: store.clone(),
            delay,
        }),
    );
    engine
}

pub async fn serve(config: Config, config_path: &std::path::Path) -> anyhow::Result<()> {
    crate::logging::init(config.server.log_format);
    // What this process runs on, first thing in its log (no secret: the
    // store URL is redacted).
    tracing::info!(
        config = %if config_path.exists() {
            config_path.display().to_string()
        } else {
            format!("{} not found: built-in defaults", config_path.display())
        },
        store = %config::redact_url(&config.store.url),
        targets = config.targets.len(),
        sources = config.sources.len(),
        version = env!("CARGO_PKG_VERSION"),
        "starting"
    );
    // Bound first: a port in use stops here, before the store is created.
    let listener = Application::bind(&config).await?;
    let store = crate::commands::store_for(&config).await?;
    let mut engine = build_engine(&config, &store);
    let waker = engine.waker();
    let deps = Dependencies::new(store.clone(), Wake::new(move || waker.wake()));
    let wired = ticketbridge::wiring::install(&config, &store, &mut engine, deps)?;
    let targets = wired.targets;
    let app = Application::build_on(listener, config, wired.deps)?;

    let shutdown = CancellationToken::new();
    // Installed before the server says it listens: a SIGTERM sent as soon as
    // it does is a graceful shutdown, not the default death by signal.
    tokio::spawn(ShutdownSignals::install().cancel_on_signal(shutdown.clone()));

    let engine_task = {
        let token = shutdown.clone();
        tokio::spawn(async move { engine.run(token).await })
    };
    let served = app.run_until(shutdown.clone().cancelled_owned()).await;
    // Whatever stopped the server also stops the engine.
    shutdown.cancel();
    let engine_result = engine_task.await.context("job engine task failed")?;
    targets.close().await;
    store.close().await;
    served.context("HTTP server failed")?;
    engine_result.context("job engine failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The signals that stop `serve`: Ctrl-C and, on Unix, SIGTERM. Their
/// handlers are in place from [`ShutdownSignals::install`] on.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for {name}");
                    None
                }
            };
            Self {
                interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for a signal, then cancels `token`.
    async fn cancel_on_signal(self, token: CancellationToken) {
        #[cfg(unix)]
        let signal = {
            async fn next(stream: Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(self.interrupt) => "Ctrl-C",
                () = next(self.terminate) => "SIGTERM",
            }
        };
        #[cfg(not(unix))]
        let signal = {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            "Ctrl-C"
        };
        // Cancel first: nothing after the signal may keep the process from stopping.
        token.cancel();
        tracing::info!("{signal} received, shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_period_of_zero_turns_it_off() {
        let mut config = Config::default();
        assert_eq!(
            engine_config(&config).keep_succeeded,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        config.engine.keep_succeeded = Duration::from_secs(3600);
        assert_eq!(
            engine_config(&config).keep_succeeded,
            Some(Duration::from_secs(3600))
        );
        config.engine.keep_succeeded = Duration::ZERO;
        assert_eq!(engine_config(&config).keep_succeeded, None);
        assert_eq!(
            engine_config(&config).keep_request_bodies,
            Some(Duration::from_secs(30 * 24 * 3600))
        );
        config.engine.keep_request_bodies = Duration::ZERO;
        assert_eq!(engine_config(&config).keep_request_bodies, None);
    }
}
