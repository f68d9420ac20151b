//! Typed errors: one variant per GLPI error code family, plus transport failures.
//!
//! GLPI's legacy API answers errors as a two-element JSON array `["CODE", message]`
//! (spec §6). The HTTP status is kept because the same code can come with different
//! statuses across versions (e.g. GLPI 11 answers 400 `ERROR_SESSION_TOKEN_MISSING` for a
//! malformed token where GLPI 10 answered 401).

use std::time::Duration;

/// Everything that can go wrong talking to GLPI.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GlpiError {
    /// The configuration cannot work (bad URL, unreadable CA certificate...).
    #[error("invalid GLPI client configuration: {0}")]
    Config(String),

    /// The caller passed something that cannot be sent (bad itemtype name, empty value...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The request did not complete within the configured timeout.
    #[error("GLPI request timed out")]
    Timeout,
    /// The TCP/TLS connection could not be established.
    #[error("cannot connect to GLPI: {0}")]
    Connect(String),
    /// Any other transport failure (connection reset, truncated body...).
    #[error("GLPI transport error: {0}")]
    Transport(String),
    /// GLPI answered something that is not the documented JSON (HTML error page, proxy page...).
    #[error("unexpected GLPI response (HTTP {status}): {detail}")]
    InvalidResponse { status: u16, detail: String },
    /// A 2xx answer that is a web page or nothing where the API answers JSON.
    /// GLPI itself answers so in maintenance mode, while an upgrade is
    /// pending, and (GLPI 10) when its database is unreachable: it prints its
    /// page and exits without setting a status. Retryable: those pass. A
    /// `base_url` that is not the API answers so as well, and `check` says so.
    #[error("GLPI answered a web page or nothing, not its API (HTTP {status}): {detail}")]
    NotApiAnswer { status: u16, detail: String },
    /// The answer was longer than the client's `max_response_bytes`; it was not read
    /// further. Not retryable: the same call reads the same answer.
    #[error("GLPI answered more than {limit} bytes (the target's max_response_bytes); not read")]
    ResponseTooLarge { limit: u64 },
    /// 5xx without a GLPI error body.
    #[error("GLPI server error HTTP {status}")]
    Server {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 429 Too Many Requests (from GLPI or a proxy in front of it).
    #[error("GLPI rate limit hit (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },

    /// `ERROR` with "API disabled" or any other generic 400.
    #[error("GLPI refused the request (ERROR): {message}")]
    Generic { status: u16, message: String },
    /// `ERROR_NOT_ALLOWED_IP`: no active API client covers the caller's IP.
    #[error("GLPI refused this host's IP (ERROR_NOT_ALLOWED_IP): {message}")]
    NotAllowedIp { message: String },
    /// `ERROR_APP_TOKEN_PARAMETERS_MISSING`.
    #[error("GLPI requires an App-Token (ERROR_APP_TOKEN_PARAMETERS_MISSING)")]
    AppTokenMissing { message: String },
    /// `ERROR_WRONG_APP_TOKEN_PARAMETER`: unknown token, or right token from an IP outside
    /// the API client's range.
    #[error("GLPI refused the App-Token (ERROR_WRONG_APP_TOKEN_PARAMETER)")]
    WrongAppToken { message: String },
    /// `ERROR_LOGIN_PARAMETERS_MISSING` (often Basic auth stripped by the web server).
    #[error("GLPI did not receive login credentials (ERROR_LOGIN_PARAMETERS_MISSING)")]
    LoginParametersMissing { message: String },
    /// `ERROR_LOGIN_WITH_CREDENTIALS_DISABLED`.
    #[error("GLPI disallows login/password on the API (ERROR_LOGIN_WITH_CREDENTIALS_DISABLED)")]
    CredentialsLoginDisabled { message: String },
    /// `ERROR_GLPI_LOGIN_USER_TOKEN`: the user API token was refused.
    #[error("GLPI refused the user token (ERROR_GLPI_LOGIN_USER_TOKEN)")]
    UserTokenRejected { message: String },
    /// `ERROR_GLPI_LOGIN`: login/password refused.
    #[error("GLPI refused the login/password (ERROR_GLPI_LOGIN): {message}")]
    LoginRejected { message: String },
    /// `ERROR_SESSION_TOKEN_INVALID` (or GLPI 11's 400 for a malformed token) still seen
    /// after the client logged in again and replayed the call once.
    #[error("GLPI session token invalid (ERROR_SESSION_TOKEN_INVALID)")]
    SessionInvalid { message: String },
    /// `ERROR_SESSION_TOKEN_MISSING` with no token sent.
    #[error("GLPI session token missing (ERROR_SESSION_TOKEN_MISSING)")]
    SessionMissing { message: String },

    /// `ERROR_ITEM_NOT_FOUND` (404).
    #[error("GLPI item not found: {message}")]
    NotFound { message: String },
    /// `ERROR_RIGHT_MISSING` (403, reads only; write refusals are `AddFailed`/`UpdateFailed`).
    #[error("GLPI profile lacks the right (ERROR_RIGHT_MISSING): {message}")]
    RightMissing { message: String },
    /// `ERROR_BAD_ARRAY`.
    #[error("GLPI rejected the input shape (ERROR_BAD_ARRAY): {message}")]
    BadArray { message: String },
    /// `ERROR_METHOD_NOT_ALLOWED` (405, unknown route).
    #[error("GLPI route not found (ERROR_METHOD_NOT_ALLOWED): {message}")]
    MethodNotAllowed { message: String },
    /// `ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM`, `ERROR_RESOURCE_MISSING`,
    /// `ERROR_ITEMTYPE_NOT_FOUND_NOR_COMMONDBTM`: unknown itemtype.
    #[error("GLPI does not know this itemtype ({code}): {message}")]
    UnknownItemtype { code: String, message: String },
    /// `ERROR_RANGE_EXCEED_TOTAL`.
    #[error("GLPI range starts past the last row (ERROR_RANGE_EXCEED_TOTAL): {message}")]
    RangeExceedsTotal { message: String },
    /// `ERROR_SQL` (500).
    #[error("GLPI search engine failed (ERROR_SQL)")]
    Sql { message: String },
    /// `ERROR_JSON_PAYLOAD_FORBIDDEN` / `ERROR_JSON_PAYLOAD_INVALID`.
    #[error("GLPI rejected the request payload ({code}): {message}")]
    BadPayload { code: String, message: String },
    /// `ERROR_UPLOAD_FILE_TOO_BIG_POST_MAX_SIZE`.
    #[error("GLPI upload too big (ERROR_UPLOAD_FILE_TOO_BIG_POST_MAX_SIZE)")]
    UploadTooBig { message: String },
    /// A document was created but GLPI refused its file (`upload_result` carries an error),
    /// or a linked upload answered "File ... not found." (disallowed extension).
    #[error("GLPI refused the uploaded file: {message}")]
    UploadRejected { message: String },
    /// `ERROR_GLPI_ADD`: the add was refused (rights, mandatory fields, duplicates...).
    #[error("GLPI refused to create the item (ERROR_GLPI_ADD): {message}")]
    AddFailed { message: String },
    /// `ERROR_GLPI_UPDATE`: the update was refused (rights, closed ticket, missing id).
    #[error("GLPI refused to update the item (ERROR_GLPI_UPDATE): {message}")]
    UpdateFailed { message: String },
    /// `ERROR_GLPI_DELETE`.
    #[error("GLPI refused to delete the item (ERROR_GLPI_DELETE): {message}")]
    DeleteFailed { message: String },
    /// `ERROR_GLPI_PARTIAL_ADD/UPDATE/DELETE` (207): some items of a bulk call failed.
    #[error("GLPI applied only part of a bulk call ({code})")]
    Partial {
        code: String,
        results: serde_json::Value,
    },
    /// `ERROR_FIELD_NOT_FOUND` (GLPI 11 `searchText` on an unknown column).
    #[error("GLPI field not found (ERROR_FIELD_NOT_FOUND): {message}")]
    FieldNotFound { message: String },
    /// `changeActiveEntities` / `changeActiveProfile` answered `false`: the entity or profile
    /// is not one the user has.
    #[error("GLPI refused to switch the active {what}")]
    SwitchRefused { what: &'static str },
    /// Any other GLPI error code.
    #[error("GLPI error {code} (HTTP {status}): {message}")]
    Other {
        status: u16,
        code: String,
        message: String,
    },
}

/// A database error text that names a fault of the query itself (MySQL and
/// MariaDB wording), which no retry mends.
fn is_query_fault(message: &str) -> bool {
    const FAULTS: [&str; 5] = [
        "unknown column",
        "sql syntax",
        "doesn't exist",
        "unknown table",
        "incorrect parameter count",
    ];
    let message = message.to_ascii_lowercase();
    FAULTS.iter().any(|fault| message.contains(fault))
}

impl GlpiError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            GlpiError::Timeout
            | GlpiError::Connect(_)
            | GlpiError::Transport(_)
            | GlpiError::Server { .. }
            | GlpiError::RateLimited { .. }
            | GlpiError::SessionInvalid { .. }
            | GlpiError::NotApiAnswer { .. } => true,
            // `ERROR_SQL` is GLPI's answer whenever a search got no result set: a query
            // the database refuses (the same query fails the same way) or a database
            // that went away, timed out a lock or chose a deadlock victim (the next try
            // may pass). GLPI 11 hides the database's text, so only a recognisable
            // query fault is final.
            GlpiError::Sql { message } => !is_query_fault(message),
            GlpiError::InvalidResponse { status, .. } => *status >= 500 || *status == 0,
            GlpiError::Other { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// How long the server asked us to wait, when a 429/503 carried `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GlpiError::Server { retry_after, .. } | GlpiError::RateLimited { retry_after } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The GLPI error code (`ERROR_...`) this error came from, if any.
    pub fn code(&self) -> Option<&str> {
        Some(match self {
            GlpiError::Generic { .. } => "ERROR",
            GlpiError::NotAllowedIp { .. } => "ERROR_NOT_ALLOWED_IP",
            GlpiError::AppTokenMissing { .. } => "ERROR_APP_TOKEN_PARAMETERS_MISSING",
            GlpiError::WrongAppToken { .. } => "ERROR_WRONG_APP_TOKEN_PARAMETER",
            GlpiError::LoginParametersMissing { .. } => "ERROR_LOGIN_PARAMETERS_MISSING",
            GlpiError::CredentialsLoginDisabled { .. } => "ERROR_LOGIN_WITH_CREDENTIALS_DISABLED",
            GlpiError::UserTokenRejected { .. } => "ERROR_GLPI_LOGIN_USER_TOKEN",
            GlpiError::LoginRejected { .. } => "ERROR_GLPI_LOGIN",
            GlpiError::SessionInvalid { .. } => "ERROR_SESSION_TOKEN_INVALID",
            GlpiError::SessionMissing { .. } => "ERROR_SESSION_TOKEN_MISSING",
            GlpiError::NotFound { .. } => "ERROR_ITEM_NOT_FOUND",
            GlpiError::RightMissing { .. } => "ERROR_RIGHT_MISSING",
            GlpiError::BadArray { .. } => "ERROR_BAD_ARRAY",
            GlpiError::MethodNotAllowed { .. } => "ERROR_METHOD_NOT_ALLOWED",
            GlpiError::UnknownItemtype { code, .. }
            | GlpiError::BadPayload { code, .. }
            | GlpiError::Partial { code, .. }
            | GlpiError::Other { code, .. } => code.as_str(),
            GlpiError::RangeExceedsTotal { .. } => "ERROR_RANGE_EXCEED_TOTAL",
            GlpiError::Sql { .. } => "ERROR_SQL",
            GlpiError::UploadTooBig { .. } => "ERROR_UPLOAD_FILE_TOO_BIG_POST_MAX_SIZE",
            GlpiError::AddFailed { .. } => "ERROR_GLPI_ADD",
            GlpiError::UpdateFailed { .. } => "ERROR_GLPI_UPDATE",
            GlpiError::DeleteFailed { .. } => "ERROR_GLPI_DELETE",
            GlpiError::FieldNotFound { .. } => "ERROR_FIELD_NOT_FOUND",
            _ => return None,
        })
    }

    /// Build the typed error for a GLPI `["CODE", message]` body.
    pub(crate) fn from_api(
        status: u16,
        code: &str,
        message: &serde_json::Value,
        retry_after: Option<Duration>,
    ) -> GlpiError {
        let raw = message;
        let message = match raw {
            serde_json::Value::String(s) => strip_doc_suffix(s),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Array(items) => bulk_messages(items),
            other => other.to_string(),
        };
        match code {
            "ERROR" if status == 429 => GlpiError::RateLimited { retry_after },
            "ERROR" if status >= 500 => GlpiError::Server {
                status,
                retry_after,
            },
            "ERROR" => GlpiError::Generic { status, message },
            "ERROR_NOT_ALLOWED_IP" => GlpiError::NotAllowedIp { message },
            "ERROR_APP_TOKEN_PARAMETERS_MISSING" => GlpiError::AppTokenMissing { message },
            "ERROR_WRONG_APP_TOKEN_PARAMETER" => GlpiError::WrongAppToken { message },
            "ERROR_LOGIN_PARAMETERS_MISSING" => GlpiError::LoginParametersMissing { message },
            "ERROR_LOGIN_WITH_CREDENTIALS_DISABLED" => {
                GlpiError::CredentialsLoginDisabled { message }
            }
            "ERROR_GLPI_LOGIN_USER_TOKEN" => GlpiError::UserTokenRejected { message },
            "ERROR_GLPI_LOGIN" => GlpiError::LoginRejected { message },
            "ERROR_SESSION_TOKEN_INVALID" => GlpiError::SessionInvalid { message },
            "ERROR_SESSION_TOKEN_MISSING" => GlpiError::SessionMissing { message },
            "ERROR_ITEM_NOT_FOUND" => GlpiError::NotFound { message },
            "ERROR_RIGHT_MISSING" => GlpiError::RightMissing { message },
            "ERROR_BAD_ARRAY" => GlpiError::BadArray { message },
            "ERROR_METHOD_NOT_ALLOWED" => GlpiError::MethodNotAllowed { message },
            "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM"
            | "ERROR_RESOURCE_MISSING"
            | "ERROR_ITEMTYPE_NOT_FOUND_NOR_COMMONDBTM" => GlpiError::UnknownItemtype {
                code: code.to_owned(),
                message,
            },
            "ERROR_RANGE_EXCEED_TOTAL" => GlpiError::RangeExceedsTotal { message },
            "ERROR_SQL" => GlpiError::Sql { message },
            "ERROR_JSON_PAYLOAD_FORBIDDEN" | "ERROR_JSON_PAYLOAD_INVALID" => {
                GlpiError::BadPayload {
                    code: code.to_owned(),
                    message,
                }
            }
            "ERROR_UPLOAD_FILE_TOO_BIG_POST_MAX_SIZE" => GlpiError::UploadTooBig { message },
            "ERROR_GLPI_ADD" => GlpiError::AddFailed { message },
            "ERROR_GLPI_UPDATE" => GlpiError::UpdateFailed { message },
            "ERROR_GLPI_DELETE" => GlpiError::DeleteFailed { message },
            "ERROR_GLPI_PARTIAL_ADD"
            | "ERROR_GLPI_PARTIAL_UPDATE"
            | "ERROR_GLPI_PARTIAL_DELETE" => GlpiError::Partial {
                code: code.to_owned(),
                results: raw.clone(),
            },
            "ERROR_FIELD_NOT_FOUND" => GlpiError::FieldNotFound { message },
            _ if status == 429 => GlpiError::RateLimited { retry_after },
            _ => GlpiError::Other {
                status,
                code: code.to_owned(),
                message,
            },
        }
    }

    /// A body read that failed or passed the limit.
    pub(crate) fn from_read(err: capped_body::ReadError) -> GlpiError {
        match err {
            capped_body::ReadError::TooLarge { limit } => GlpiError::ResponseTooLarge { limit },
            capped_body::ReadError::Transport(err) => GlpiError::from_reqwest(err),
        }
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> GlpiError {
        let err = err.without_url();
        if err.is_timeout() {
            GlpiError::Timeout
        } else if err.is_connect() {
            GlpiError::Connect(error_chain(&err))
        } else {
            GlpiError::Transport(error_chain(&err))
        }
    }
}

/// A bulk failure carries a JSON list of per-item results; keep the failure texts.
fn bulk_messages(items: &[serde_json::Value]) -> String {
    let texts: Vec<&str> = items
        .iter()
        .filter_map(|i| i.get("message").and_then(|m| m.as_str()))
        .filter(|m| !m.is_empty())
        .collect();
    texts.join("; ")
}

/// GLPI appends "; view documentation in your browser at <url>/#CODE" to many messages.
fn strip_doc_suffix(message: &str) -> String {
    match message.find("; view documentation in your browser") {
        Some(pos) => message[..pos].to_owned(),
        None => message.to_owned(),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_codes_and_strips_doc_suffix() {
        let e = GlpiError::from_api(
            400,
            "ERROR_WRONG_APP_TOKEN_PARAMETER",
            &json!(
                "parameter app_token seems wrong; view documentation in your browser at http://x/apirest.php/#ERROR_WRONG_APP_TOKEN_PARAMETER"
            ),
            None,
        );
        match &e {
            GlpiError::WrongAppToken { message } => {
                assert_eq!(message, "parameter app_token seems wrong")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!e.is_retryable());
        assert_eq!(e.code(), Some("ERROR_WRONG_APP_TOKEN_PARAMETER"));
    }

    #[test]
    fn null_message_on_missing_id_update() {
        let e = GlpiError::from_api(400, "ERROR_GLPI_UPDATE", &serde_json::Value::Null, None);
        assert!(matches!(e, GlpiError::UpdateFailed { ref message } if message.is_empty()));
    }

    #[test]
    fn partial_add_keeps_results() {
        let e = GlpiError::from_api(
            207,
            "ERROR_GLPI_PARTIAL_ADD",
            &json!([{"id":8,"message":""},{"id":false,"message":"You don't have permission to perform this action."}]),
            None,
        );
        match e {
            GlpiError::Partial { results, .. } => assert_eq!(results[1]["id"], json!(false)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bulk_add_failure_joins_messages() {
        let e = GlpiError::from_api(
            400,
            "ERROR_GLPI_ADD",
            &json!([{"id":false,"message":"nope"},{"id":false,"message":"no way"}]),
            None,
        );
        assert!(matches!(e, GlpiError::AddFailed { ref message } if message == "nope; no way"));
    }

    #[test]
    fn retryable_classes() {
        assert!(GlpiError::Timeout.is_retryable());
        assert!(
            GlpiError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
            .is_retryable()
        );
        assert_eq!(
            GlpiError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
            .retry_after(),
            Some(Duration::from_secs(3))
        );
        assert!(
            !GlpiError::RightMissing {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !GlpiError::AddFailed {
                message: String::new()
            }
            .is_retryable()
        );
        // The same query fails the same way.
        let sql = GlpiError::from_api(
            500,
            "ERROR_SQL",
            &serde_json::json!("Unknown column 'x' in 'where clause'"),
            None,
        );
        assert!(matches!(sql, GlpiError::Sql { .. }));
        assert!(!sql.is_retryable());
        // A database that went away, a deadlock, GLPI 11's hidden text: try again.
        for text in [
            "Unexpected SQL Error : MySQL server has gone away",
            "Unexpected SQL Error : Deadlock found when trying to get lock; try restarting transaction",
            "Unexpected SQL Error : Lock wait timeout exceeded",
            "An SQL error occurred.",
        ] {
            let sql = GlpiError::from_api(500, "ERROR_SQL", &serde_json::json!(text), None);
            assert!(sql.is_retryable(), "{text}");
        }
        // The same call reads the same oversized answer.
        assert!(!GlpiError::ResponseTooLarge { limit: 1 }.is_retryable());
    }
}
