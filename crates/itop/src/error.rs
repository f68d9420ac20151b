//! Typed errors: one variant per iTop result code plus transport failures.

/// What went wrong talking to iTop. `is_retryable` says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum ItopError {
    /// Code 1: bad credentials, missing REST profile or insufficient rights.
    #[error("iTop refused the call (code 1): {message}")]
    Unauthorized { message: String },
    /// Code 2.
    #[error("iTop: missing version parameter (code 2): {message}")]
    MissingVersion { message: String },
    /// Code 3.
    #[error("iTop: missing json_data (code 3): {message}")]
    MissingJson { message: String },
    /// Code 4.
    #[error("iTop: json_data is not valid JSON (code 4): {message}")]
    InvalidJson { message: String },
    /// Code 5.
    #[error("iTop: missing auth user (code 5): {message}")]
    MissingAuthUser { message: String },
    /// Code 6.
    #[error("iTop: missing auth password (code 6): {message}")]
    MissingAuthPwd { message: String },
    /// Code 10.
    #[error("iTop: unsupported API version (code 10): {message}")]
    UnsupportedVersion { message: String },
    /// Code 11.
    #[error("iTop: unknown operation (code 11): {message}")]
    UnknownOperation { message: String },
    /// Code 12: a delete would need explicit deletion of dependants.
    #[error("iTop: unsafe delete (code 12): {message}")]
    Unsafe { message: String },
    /// Code 13: `page` below 1.
    #[error("iTop: invalid page (code 13): {message}")]
    InvalidPage { message: String },
    /// Code 100, "Invalid stimulus: …": the transition does not exist from the current state.
    #[error("iTop: invalid stimulus (code 100): {message}")]
    InvalidStimulus { message: String },
    /// Code 100, "Missing mandatory attribute(s) for applying the stimulus: …".
    #[error("iTop: missing mandatory attributes {attributes:?} (code 100): {message}")]
    MissingMandatory {
        attributes: Vec<String>,
        message: String,
    },
    /// Code 100, anything else (validation, unresolved keys, missing parameters, OQL errors).
    #[error("iTop internal error (code 100): {message}")]
    Internal { message: String },
    /// A result code this client does not know.
    #[error("iTop result code {code}: {message}")]
    OtherCode { code: i64, message: String },
    /// Code 0 but the expected object is absent (e.g. a lifecycle action refused).
    #[error("iTop answered {operation} without the object")]
    MissingObject { operation: String },
    /// The connection failed or broke.
    #[error("transport error talking to iTop: {0}")]
    Transport(String),
    /// No answer within the configured timeout.
    #[error("iTop did not answer in time")]
    Timeout,
    /// An HTTP status other than 200 (iTop itself always answers 200).
    #[error("iTop answered HTTP {status}")]
    Http { status: u16 },
    /// The answer was longer than the client's `max_response_bytes`; it was not
    /// read further. Not retryable: the same call reads the same answer.
    #[error("iTop answered more than {limit} bytes (the target's max_response_bytes); not read")]
    ResponseTooLarge { limit: u64 },
    /// The body is not the JSON iTop sends (e.g. a PHP error page).
    #[error("unexpected response from iTop: {0}")]
    InvalidResponse(String),
    /// The client configuration cannot work (bad URL, …).
    #[error("invalid iTop configuration: {0}")]
    Config(String),
}

impl ItopError {
    /// Maps a non-zero result code and its message.
    pub fn from_code(code: i64, message: String) -> ItopError {
        match code {
            1 => ItopError::Unauthorized { message },
            2 => ItopError::MissingVersion { message },
            3 => ItopError::MissingJson { message },
            4 => ItopError::InvalidJson { message },
            5 => ItopError::MissingAuthUser { message },
            6 => ItopError::MissingAuthPwd { message },
            10 => ItopError::UnsupportedVersion { message },
            11 => ItopError::UnknownOperation { message },
            12 => ItopError::Unsafe { message },
            13 => ItopError::InvalidPage { message },
            100 if message.starts_with("Invalid stimulus") => {
                ItopError::InvalidStimulus { message }
            }
            100 if message.starts_with("Missing mandatory attribute(s)") => {
                let attributes = message
                    .split_once(": ")
                    .map(|(_, list)| {
                        list.trim_end_matches('.')
                            .split(", ")
                            .map(|s| s.trim().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                ItopError::MissingMandatory {
                    attributes,
                    message,
                }
            }
            100 => ItopError::Internal { message },
            _ => ItopError::OtherCode { code, message },
        }
    }

    /// The iTop result code, if the error came from one.
    pub fn code(&self) -> Option<i64> {
        Some(match self {
            ItopError::Unauthorized { .. } => 1,
            ItopError::MissingVersion { .. } => 2,
            ItopError::MissingJson { .. } => 3,
            ItopError::InvalidJson { .. } => 4,
            ItopError::MissingAuthUser { .. } => 5,
            ItopError::MissingAuthPwd { .. } => 6,
            ItopError::UnsupportedVersion { .. } => 10,
            ItopError::UnknownOperation { .. } => 11,
            ItopError::Unsafe { .. } => 12,
            ItopError::InvalidPage { .. } => 13,
            ItopError::InvalidStimulus { .. }
            | ItopError::MissingMandatory { .. }
            | ItopError::Internal { .. } => 100,
            ItopError::OtherCode { code, .. } => *code,
            _ => return None,
        })
    }

    /// Whether a retry can help: transport failures, timeouts, HTTP 408/429/5xx
    /// and non-JSON bodies (PHP fatal errors) are transient, and so is code
    /// 100 when its message is database trouble (see
    /// [`is_database_trouble`]); every other result code iTop sends is
    /// permanent for the same request.
    pub fn is_retryable(&self) -> bool {
        match self {
            ItopError::Transport(_) | ItopError::Timeout | ItopError::InvalidResponse(_) => true,
            ItopError::Http { status } => *status == 408 || *status == 429 || *status >= 500,
            ItopError::Internal { message } => is_database_trouble(message),
            _ => false,
        }
    }
}

/// MySQL / MariaDB errors that pass (a lost or refused connection, a
/// deadlock, a lock wait, too many connections): iTop reports any uncaught
/// exception as code 100 with its message, these included.
const DATABASE_TROUBLE: &[&str] = &[
    "mysql server has gone away",
    "lost connection to mysql server",
    "can't connect to mysql server",
    "can't connect to local mysql server",
    "deadlock found",
    "lock wait timeout exceeded",
    "too many connections",
];

/// Whether a code-100 message is database trouble that a later retry can
/// get past, rather than a refusal of the request.
pub fn is_database_trouble(message: &str) -> bool {
    let message = message.to_lowercase();
    DATABASE_TROUBLE.iter().any(|m| message.contains(m))
}

impl From<capped_body::ReadError> for ItopError {
    fn from(e: capped_body::ReadError) -> Self {
        match e {
            capped_body::ReadError::TooLarge { limit } => ItopError::ResponseTooLarge { limit },
            capped_body::ReadError::Transport(e) => e.into(),
        }
    }
}

impl From<reqwest::Error> for ItopError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            ItopError::Timeout
        } else {
            // without the URL: it never carries secrets here, but keep messages short
            ItopError::Transport(e.without_url().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_variants() {
        for code in [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 100, 42] {
            let e = ItopError::from_code(code, "m".into());
            assert_eq!(e.code(), Some(code));
            assert!(!e.is_retryable());
        }
        let e = ItopError::from_code(
            100,
            "Missing mandatory attribute(s) for applying the stimulus: solution, pending_reason."
                .into(),
        );
        match e {
            ItopError::MissingMandatory { attributes, .. } => {
                assert_eq!(attributes, vec!["solution", "pending_reason"])
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            ItopError::from_code(100, "Invalid stimulus: 'x'".into()),
            ItopError::InvalidStimulus { .. }
        ));
        assert!(ItopError::Http { status: 503 }.is_retryable());
        assert!(!ItopError::Http { status: 404 }.is_retryable());
        // The same call reads the same oversized answer.
        assert!(!ItopError::ResponseTooLarge { limit: 1 }.is_retryable());
    }
}
