//! Engine settings.

use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// How the engine runs jobs. Durations are written like `"30s"` or `"500ms"` in
/// configuration files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Names this process in job leases (`locked_by`). Unique per process.
    pub worker_id: String,
    /// How long a claimed job stays ours without a heartbeat. Heartbeats extend it
    /// every third of this; a dead worker's jobs are taken again after it passes.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Longest wait between two looks for work when nothing wakes the engine.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often expired leases are swept back to pending.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// First retry delay; doubled on each further attempt.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Largest computed retry delay (a remote's `Retry-After` may exceed it).
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// Attempt limit given to jobs enqueued through [`crate::Engine::enqueue`]
    /// without their own.
    pub default_max_attempts: i32,
    /// Jobs run at once per queue, unless `concurrency` names the queue.
    pub default_concurrency: usize,
    /// Jobs run at once, per queue (target) name.
    pub concurrency: HashMap<String, usize>,
    /// On shutdown, how long in-flight jobs may finish before they are released.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long succeeded jobs stay in the store after they finished; `None`
    /// keeps them for ever. Dead letters stay until `jobs purge-dead`.
    #[serde(with = "humantime_serde")]
    pub keep_succeeded: Option<Duration>,
    /// How long the raw bodies of inbox rows whose jobs all succeeded stay;
    /// `None` keeps them for ever. The rows stay (their dedupe keys still answer
    /// repeats); rows with a pending, running or dead job keep their body.
    #[serde(with = "humantime_serde")]
    pub keep_request_bodies: Option<Duration>,
    /// How long audit lines stay; `None` keeps them for ever.
    #[serde(with = "humantime_serde")]
    pub keep_audit: Option<Duration>,
    /// How often the engine applies `keep_succeeded`, `keep_request_bodies`
    /// and `keep_audit`.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
}

/// How long succeeded jobs are kept unless configured otherwise: a week.
const DEFAULT_KEEP_SUCCEEDED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long audit lines are kept unless configured otherwise: 90 days.
const DEFAULT_KEEP_AUDIT: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long raw request bodies are kept unless configured otherwise: 30 days.
const DEFAULT_KEEP_REQUEST_BODIES: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for EngineConfig {
    fn default() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        EngineConfig {
            worker_id: format!("worker-{}-{}", std::process::id(), &id[..8]),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(5),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(30 * 60),
            default_max_attempts: store::DEFAULT_MAX_ATTEMPTS,
            default_concurrency: 4,
            concurrency: HashMap::new(),
            shutdown_grace: Duration::from_secs(10),
            keep_succeeded: Some(DEFAULT_KEEP_SUCCEEDED),
            keep_request_bodies: Some(DEFAULT_KEEP_REQUEST_BODIES),
            keep_audit: Some(DEFAULT_KEEP_AUDIT),
            retention_interval: Duration::from_secs(10 * 60),
        }
    }
}

impl EngineConfig {
    /// Concurrency limit of `queue` (at least 1).
    pub fn concurrency_of(&self, queue: &str) -> usize {
        self.concurrency
            .get(queue)
            .copied()
            .unwrap_or(self.default_concurrency)
            .max(1)
    }
}
