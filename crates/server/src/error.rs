//! The one error shape every 4xx/5xx answer has:
//! `{"error":{"code":"...","message":"..."}}`.
//!
//! Handlers return [`ApiError`]. Answers produced outside handlers (unknown
//! route, wrong method, body too large, timeout, extractor rejections,
//! panics) are rewritten into the same shape by [`uniform_errors`] and
//! [`panic_response`]. Internal details (store errors, panic messages) are
//! logged, never sent.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The request is malformed (400), e.g. invalid JSON.
    #[error("{0}")]
    BadRequest(String),
    /// The body's content type is not accepted (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The body is larger than the route accepts (413); the message names
    /// the limit and the setting.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The path exists but not for this method (405).
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The store could not take the request; the sender should retry (503).
    /// The cause is logged, not shown.
    #[error("the request could not be stored, retry later")]
    Unavailable(String),
    /// Anything else (500); the cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the client may get a different answer by sending again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Internal(_))
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<&store::StoreError> for ApiError {
    fn from(error: &store::StoreError) -> Self {
        if error.is_retryable() {
            Self::Unavailable(error.to_string())
        } else {
            Self::Internal(error.to_string())
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        Self::from(&error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => tracing::error!(error = %cause, "store refused a request"),
            Self::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            _ => {}
        }
        let mut response = error_body(self.status(), self.code(), &self.to_string());
        if matches!(self, Self::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A uniform JSON error answer.
pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, Json(body)).into_response()
}

/// The code and message used for an error status produced outside a handler.
fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => ("not_found", "no route for this path"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this path"),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "request body exceeds the size limit")
        }
        StatusCode::REQUEST_TIMEOUT => ("timeout", "request took too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            ("unprocessable", "request body could not be processed")
        }
        StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "service unavailable"),
        s if s.is_client_error() => ("bad_request", "invalid request"),
        _ => ("internal", "internal error"),
    }
}

/// The body limits a 413 names: the server's, and routes with their own.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    /// `server.body_limit`.
    pub default: usize,
    /// Path prefix, limit, and the setting that sets it.
    pub routes: Arc<[(String, usize, String)]>,
}

impl BodyLimits {
    fn for_path(&self, path: &str) -> (usize, &str) {
        self.routes
            .iter()
            .find(|(prefix, _, _)| {
                path.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map_or(
                (self.default, "server.body_limit"),
                |(_, limit, setting)| (*limit, setting.as_str()),
            )
    }
}

/// Middleware: rewrites every 4xx/5xx answer that is not already JSON into
/// the uniform error body (keeps status and headers such as `Allow`).
/// `body_limit` is named in a 413's message, so a caller knows how far off
/// it is (attachments in base64 count at 4/3 of their size).
pub async fn uniform_errors(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let limit = limits.for_path(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = describe(status);
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is larger than this route accepts ({} bytes, {})",
            limit.0, limit.1
        )
    } else {
        message.to_owned()
    };
    let (mut parts, _) = response.into_parts();
    let mut rebuilt = error_body(status, code, &message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    for (name, value) in parts.headers.iter() {
        rebuilt.headers_mut().insert(name.clone(), value.clone());
    }
    rebuilt
}

/// Panic handler for `CatchPanicLayer`: logs and answers a uniform 500.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "request handler panicked");
    error_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

/// Fallback for unknown routes.
pub async fn not_found() -> Response {
    let (code, message) = describe(StatusCode::NOT_FOUND);
    error_body(StatusCode::NOT_FOUND, code, message)
}
