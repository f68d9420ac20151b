use std::time::Duration;

/// What went wrong talking to Chatwoot, and whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum ChatwootError {
    #[error("invalid Chatwoot configuration: {0}")]
    InvalidConfig(String),
    /// Connection refused/reset, timeout, broken body: retryable.
    #[error("Chatwoot transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// HTTP 5xx: retryable.
    #[error("Chatwoot server error {status}: {message}")]
    Server { status: u16, message: String },
    /// HTTP 429 (Rack::Attack, spec §4.3): retryable after `retry_after`.
    #[error("Chatwoot rate limit (429)")]
    RateLimited { retry_after: Option<Duration> },
    /// HTTP 401/403: the token is wrong or lacks access.
    #[error("Chatwoot refused the access token ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// HTTP 404: no such conversation / contact (or not visible to the token).
    #[error("Chatwoot resource not found: {message}")]
    NotFound { message: String },
    /// The channel cannot take a public reply now (e.g. 422 outside the
    /// WhatsApp 24 h window): post a private note instead.
    #[error("Chatwoot channel cannot reply: {message}")]
    ChannelCannotReply { message: String },
    /// Other 4xx (validation, uniqueness clash …): permanent.
    #[error("Chatwoot rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The answer was longer than the client's `max_response_bytes` and was
    /// not read further: permanent, the same call reads the same answer.
    #[error("Chatwoot answered more than {limit} bytes; not read")]
    ResponseTooLarge { limit: u64 },
    /// The answer was not the JSON we expect: permanent.
    #[error("unexpected Chatwoot response: {0}")]
    Decode(String),
}

impl ChatwootError {
    /// Transport errors, 5xx and 429 can succeed later; 4xx cannot.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport(_) | Self::Server { .. } | Self::RateLimited { .. }
        )
    }

    /// How long the server asked us to wait (`Retry-After` on 429/503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// True for [`ChatwootError::ChannelCannotReply`].
    pub fn is_channel_cannot_reply(&self) -> bool {
        matches!(self, Self::ChannelCannotReply { .. })
    }

    /// The HTTP status, when Chatwoot answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Server { status, .. }
            | Self::Unauthorized { status, .. }
            | Self::Rejected { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::NotFound { .. } => Some(404),
            Self::ChannelCannotReply { .. } => Some(422),
            Self::Transport(e) => e.status().map(|s| s.as_u16()),
            Self::InvalidConfig(_) | Self::Decode(_) | Self::ResponseTooLarge { .. } => None,
        }
    }
}
