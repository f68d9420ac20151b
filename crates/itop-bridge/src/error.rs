//! What can go wrong while bridging, and whether a retry can help.

use crate::side::Side;

/// A bridge failure.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A REST call to one of the iTops failed.
    #[error("{side} iTop: {source}")]
    Itop {
        side: Side,
        #[source]
        source: itop::ItopError,
    },
    /// An iTop refused the stimulus that would bring a ticket to the state
    /// of its pair (a value its data model lacks, a transition it does not
    /// have). Retrying the same call cannot help; the pair remembers the
    /// refusal and tries again when either ticket changes.
    #[error(
        "{side} iTop refused {stimulus} on {ticket} (to reach {wanted}): {reason}; \
         tried again when either ticket changes"
    )]
    StimulusRefused {
        side: Side,
        /// `UserRequest::12 (R-000012)`.
        ticket: String,
        stimulus: String,
        wanted: String,
        /// iTop's answer.
        reason: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// The configuration cannot work (unknown target, wrong kind...).
    #[error("configuration: {0}")]
    Config(String),
    /// A job payload the bridge cannot read.
    #[error("invalid job payload: {0}")]
    Payload(String),
}

impl BridgeError {
    pub fn itop(side: Side) -> impl FnOnce(itop::ItopError) -> BridgeError {
        move |source| BridgeError::Itop { side, source }
    }

    /// Transport trouble and store hiccups may pass; refusals and bad
    /// configuration will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            BridgeError::Itop { source, .. } => source.is_retryable(),
            BridgeError::Store(e) => e.is_retryable(),
            BridgeError::Config(_)
            | BridgeError::Payload(_)
            | BridgeError::StimulusRefused { .. } => false,
        }
    }
}

impl From<BridgeError> for engine::JobError {
    fn from(err: BridgeError) -> Self {
        if err.is_retryable() {
            engine::JobError::transient(err.to_string())
        } else {
            engine::JobError::permanent(err.to_string())
        }
    }
}
