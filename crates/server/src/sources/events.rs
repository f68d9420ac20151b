//! Generic JSON events: `POST /api/v1/events/{source}` for every
//! `[sources.<name>]` with `kind = "events"`.
//!
//! API key auth; JSON body required (415 otherwise, 400 when invalid);
//! dedupe by `Idempotency-Key`, else the SHA-256 of the body; one job of the
//! configured kind (default `event.record`) on the source's target queue,
//! ordered by the configured JSON pointer (default: none, a key of its own).
//! Answers 202 `{"accepted":true,"inbox_id":N,"duplicate":false}`; a repeat
//! answers the same with `"duplicate":true` and enqueues nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use config::{Config, SourceConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::NewJob;
use uuid::Uuid;

use crate::auth::ApiKeys;
use crate::error::ApiError;
use crate::ingest::{self, Inbound};
use crate::state::AppState;

/// Path template of the route.
pub const ROUTE: &str = "/api/v1/events/{source}";
/// Longest accepted `Idempotency-Key`.
/// Longest ordering value taken from an event (bytes).
const MAX_ORDERING_VALUE: usize = 512;
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Headers kept with the inbox row.
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "user-agent",
    "idempotency-key",
    "x-request-id",
];

/// One configured events source, ready to serve.
struct Endpoint {
    keys: ApiKeys,
    queue: String,
    job_kind: String,
    ordering_pointer: Option<String>,
    max_attempts: i32,
}

type Endpoints = Arc<HashMap<String, Endpoint>>;

/// The events route for every events source in `config`.
pub fn router(config: &Config) -> Router<AppState> {
    let endpoints: Endpoints = Arc::new(
        config
            .sources
            .iter()
            .filter_map(|(name, source)| match source {
                SourceConfig::Events(s) => Some((
                    name.clone(),
                    Endpoint {
                        keys: ApiKeys::new(s.api_keys.clone()),
                        queue: s.target.clone(),
                        job_kind: s.job_kind.clone(),
                        ordering_pointer: s.ordering_key.clone(),
                        max_attempts: i32::try_from(config.engine.max_attempts).unwrap_or(i32::MAX),
                    },
                )),
                _ => None,
            })
            .collect(),
    );
    Router::new().route(
        ROUTE,
        post(move |state, path, headers, body| {
            receive(endpoints.clone(), state, path, headers, body)
        }),
    )
}

async fn receive(
    endpoints: Endpoints,
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let endpoint = endpoints
        .get(&source)
        .ok_or_else(|| ApiError::NotFound(format!("no events source named {source:?}")))?;
    endpoint.keys.check(&headers)?;
    ingest::require_json(&headers, "the event")?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;

    let dedupe_key = match headers.get("idempotency-key") {
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".to_owned()))?
                .trim();
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                )));
            }
            key.to_owned()
        }
        None => format!("sha256:{}", hex::encode(Sha256::digest(&body))),
    };
    let ordering_key = endpoint
        .ordering_pointer
        .as_deref()
        .and_then(|pointer| event.pointer(pointer))
        .and_then(|value| match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    // A key is stored as indexed text, which cannot hold every character
    // everywhere (PostgreSQL refuses NUL) nor any length (an index entry has
    // a size limit): refuse such values here, clearly.
    if let Some(key) = ordering_key.as_deref() {
        let at = endpoint.ordering_pointer.as_deref().unwrap_or("");
        if key.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "the ordering value at {at} must not contain control characters"
            )));
        }
        if key.len() > MAX_ORDERING_VALUE {
            return Err(ApiError::BadRequest(format!(
                "the ordering value at {at} must be at most {MAX_ORDERING_VALUE} bytes"
            )));
        }
    }
    let ordering_key = ordering_key
        // No pointer (or no value at it): the event is ordered after nothing. Its
        // key is unique and grows with time, so the index of unfinished jobs
        // takes it at its end rather than at a random place.
        .unwrap_or_else(|| format!("event:{}", Uuid::now_v7()));

    let job = NewJob::new(
        endpoint.queue.clone(),
        endpoint.job_kind.clone(),
        format!("{source}:{ordering_key}"),
        json!({"source": source, "dedupe_key": dedupe_key, "event": event}),
    )
    .max_attempts(endpoint.max_attempts);
    let inbound = Inbound {
        source: source.clone(),
        dedupe_key,
        body: body.to_vec(),
        headers: ingest::kept_headers(&headers, &KEPT_HEADERS),
        jobs: vec![job],
    };
    let outcome = ingest::accept(&state, inbound).await?;
    let answer = json!({
        "accepted": true,
        "inbox_id": outcome.inbox_id(),
        "duplicate": outcome.is_duplicate(),
    });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}
