//! What runs a job of one kind.

use crate::JobError;
use std::future::Future;
use std::sync::Arc;
use store::Job;

/// Runs jobs of one kind. Return `Ok` when done; a [`JobError`] says whether a
/// retry can help. Handlers must be idempotent: a job may run again after a crash.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, job: &Job) -> Result<(), JobError>;
}

struct FnHandler<F>(F);

#[async_trait::async_trait]
impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        (self.0)(job.clone()).await
    }
}

/// A handler from an async closure taking the job by value.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(FnHandler(f))
}
