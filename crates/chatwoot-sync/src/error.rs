//! What can go wrong while synchronising, and whether a retry can help.

use std::time::Duration;

use chatwoot::ChatwootError;
use flows::HelpdeskError;
use store::StoreError;

/// A failure of one synchronisation step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The help desk (GLPI, iTop) failed or refused.
    #[error(transparent)]
    Helpdesk(#[from] HelpdeskError),
    /// The Chatwoot API failed or refused.
    #[error("Chatwoot: {0}")]
    Chatwoot(#[from] ChatwootError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The contact's person is being created by another job (or the store
    /// could not say whether it is).
    #[error(transparent)]
    Claim(#[from] flows::claims::ClaimError),
    /// A job payload or webhook body we cannot use (never retryable).
    #[error("invalid job: {0}")]
    Invalid(String),
    /// A job names a source this process does not know.
    #[error("no chatwoot source named {0:?}")]
    UnknownSource(String),
}

impl SyncError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Helpdesk(e) => e.is_retryable(),
            SyncError::Chatwoot(e) => e.is_retryable(),
            SyncError::Store(e) => e.is_retryable(),
            SyncError::Claim(e) => e.is_retryable(),
            SyncError::Invalid(_) | SyncError::UnknownSource(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Helpdesk(e) => e.retry_after(),
            SyncError::Chatwoot(e) => e.retry_after(),
            SyncError::Claim(e) => e.retry_after(),
            _ => None,
        }
    }
}

impl From<SyncError> for engine::JobError {
    fn from(error: SyncError) -> Self {
        if let SyncError::Helpdesk(error) = error {
            // The help desk's own view of what a retry can do (its failure
            // of its own waits and retries: see flows' mapping).
            return error.into();
        }
        let reason = error.to_string();
        match (error.is_retryable(), error.retry_after()) {
            (true, Some(after)) => engine::JobError::transient_after(reason, after),
            (true, None) => engine::JobError::transient(reason),
            (false, _) => engine::JobError::permanent(reason),
        }
    }
}

pub type SyncResult<T> = Result<T, SyncError>;
