//! The whole service in one process, on loopback: store, job engine with
//! every flow's handlers, HTTP server with every source's routes. End-to-end
//! tests and the demo start it with a configuration whose targets point at
//! the simulators.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use config::Config;
use engine::{Engine, EngineConfig};
use flows::Targets;
use server::{Application, Dependencies, Wake};
use store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running ticketbridge.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub store: Store,
    pub engine: Engine,
    pub targets: Targets,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
}

/// Engine settings that make tests quick: short polls and backoff.
pub fn fast_engine(config: &Config) -> EngineConfig {
    let e = &config.engine;
    EngineConfig {
        lease: e.lease,
        poll_interval: Duration::from_millis(50),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(500),
        default_max_attempts: i32::try_from(e.max_attempts).unwrap_or(i32::MAX),
        default_concurrency: e.concurrency,
        shutdown_grace: Duration::from_secs(5),
        keep_succeeded: (!e.keep_succeeded.is_zero()).then_some(e.keep_succeeded),
        keep_request_bodies: (!e.keep_request_bodies.is_zero()).then_some(e.keep_request_bodies),
        keep_audit: (!e.keep_audit.is_zero()).then_some(e.keep_audit),
        ..EngineConfig::default()
    }
}

impl TestApp {
    /// Starts everything `config` describes on `store`. The listen address
    /// is forced to `127.0.0.1:0`.
    pub async fn spawn(mut config: Config, store: Store) -> anyhow::Result<TestApp> {
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut engine = Engine::new(store.clone(), fast_engine(&config));
        let waker = engine.waker();
        let deps = Dependencies::new(store.clone(), Wake::new(move || waker.wake()));
        let wired = crate::wiring::install(&config, &store, &mut engine, deps)?;
        let app = Application::build(config, wired.deps)
            .await
            .context("cannot start the HTTP server")?;
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        let server = {
            let token = shutdown.clone();
            tokio::spawn(async move {
                if let Err(error) = app.run_until(token.cancelled_owned()).await {
                    tracing::error!(%error, "test server failed");
                }
            })
        };
        let worker = {
            let token = shutdown.clone();
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(error) = engine.run(token).await {
                    tracing::error!(%error, "test engine failed");
                }
            })
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(TestApp {
            addr,
            base_url: format!("http://{addr}"),
            store,
            engine,
            targets: wired.targets,
            http,
            shutdown,
            server,
            worker,
        })
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Stops the server and the engine (in-flight jobs finish or are released).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.worker.await;
        self.targets.close().await;
    }
}

/// Polls `check` until it returns `Some`, or fails after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() > deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `Some` when no job is running or due, and, with `retries_count`, none is
/// waiting on a retry either (its work is not done, yet it is not due): what
/// a test waits for before it reads the end state. One read of the jobs
/// table, so a job moving from pending to running between two reads cannot
/// go unseen; "due" is judged by the clock after the read.
pub async fn jobs_settled(store: &Store, retries_count: bool) -> Option<()> {
    let jobs = store
        .jobs(&store::JobFilter {
            limit: Some(100_000),
            ..store::JobFilter::default()
        })
        .await
        .ok()?;
    let now = store::now_ms();
    jobs.iter()
        .all(|job| match job.status {
            store::JobStatus::Running => false,
            store::JobStatus::Pending => job.run_at > now && !(retries_count && job.attempts > 0),
            _ => true,
        })
        .then_some(())
}
