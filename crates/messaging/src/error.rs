//! What can go wrong in the messaging flow, and whether a retry can help.

use flows::HelpdeskError;

/// A failure of the messaging flow.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// No `kind = "messaging"` source has this name.
    #[error("no messaging source named {0:?}")]
    UnknownSource(String),
    /// The source's target is not configured (a configuration mistake).
    #[error("source {source_name}: target {target:?} is not configured")]
    UnknownTarget { source_name: String, target: String },
    /// The callback secret cannot be used.
    #[error("source {source_name}: callback_secret is not valid base64")]
    BadSecret { source_name: String },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A phone number that cannot be read.
    #[error(transparent)]
    Phone(#[from] flows::identity::PhoneError),
    #[error(transparent)]
    Helpdesk(#[from] HelpdeskError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The requester is being created by another job (or the store could not
    /// say whether it is).
    #[error(transparent)]
    Claim(#[from] flows::claims::ClaimError),
    /// Stored state that does not decode (a bug or a manual edit).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

impl MessagingError {
    pub fn is_retryable(&self) -> bool {
        match self {
            MessagingError::Helpdesk(e) => e.is_retryable(),
            MessagingError::Store(e) => e.is_retryable(),
            MessagingError::Claim(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<MessagingError> for engine::JobError {
    fn from(err: MessagingError) -> Self {
        match err {
            MessagingError::Helpdesk(e) => e.into(),
            MessagingError::Claim(e) => e.into(),
            other if other.is_retryable() => engine::JobError::transient(other.to_string()),
            other => engine::JobError::permanent(other.to_string()),
        }
    }
}

impl From<flows::identity::ResolveError> for MessagingError {
    fn from(err: flows::identity::ResolveError) -> Self {
        match err {
            flows::identity::ResolveError::Helpdesk(e) => e.into(),
            flows::identity::ResolveError::Claim(e) => e.into(),
        }
    }
}
