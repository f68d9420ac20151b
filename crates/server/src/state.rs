//! What every handler can reach.

use std::sync::Arc;

use config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use store::Store;

use crate::ingest::Writer;

/// Wakes the job engine after an enqueue so it does not wait for its next
/// poll. The binary passes `engine.waker()`; tests may pass [`Wake::none`].
#[derive(Clone)]
pub struct Wake(Arc<dyn Fn() + Send + Sync>);

impl Wake {
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(wake))
    }

    /// Does nothing (the engine finds jobs on its next poll).
    pub fn none() -> Self {
        Self::new(|| {})
    }

    pub fn wake(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

/// Shared state of the HTTP server (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub wake: Wake,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub(crate) writer: Writer,
    /// When `/metrics` last counted jobs in the store (see `routes::health`).
    pub(crate) jobs_counted: Arc<tokio::sync::Mutex<Option<std::time::Instant>>>,
}

/// When the request reached the server, before its body was read: set by a
/// layer around the request timeout, so a handler that promises an answer
/// before that timeout (the intake API's `wait`) counts the upload too.
#[derive(Clone, Copy, Debug)]
pub struct Arrival(pub tokio::time::Instant);
