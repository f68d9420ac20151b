//! Errors: what a handler reports about a job, and what the engine itself hits.

use std::time::Duration;

/// A handler's verdict on a failed job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later (transport error, 5xx, 429, expired session…).
    /// `retry_after` is the remote's own hint (`Retry-After`), if it gave one.
    #[error("transient failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (validation or permission error): dead letter at once.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

impl JobError {
    pub fn transient(reason: impl Into<String>) -> Self {
        JobError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// Transient, and the remote asked us to wait at least `retry_after`.
    pub fn transient_after(reason: impl Into<String>, retry_after: Duration) -> Self {
        JobError::Transient {
            reason: reason.into(),
            retry_after: Some(retry_after),
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        JobError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, JobError::Transient { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            JobError::Transient { reason, .. } | JobError::Permanent { reason } => reason,
        }
    }
}

/// Failures of the engine itself.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// `run_until_idle` gave up.
    #[error("jobs still outstanding after {deadline:?} ({processed} processed)")]
    NotIdle {
        deadline: Duration,
        processed: usize,
    },
    /// An engine task ended abnormally.
    #[error("engine task failed: {0}")]
    Task(String),
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            EngineError::NotIdle { .. } => true,
            EngineError::Task(_) => false,
        }
    }
}
