//! Chatwoot account webhooks: `POST /hooks/chatwoot/{source}` (signed,
//! Chatwoot ≥ 4.11.2: `X-Chatwoot-Signature` over `timestamp.raw_body`,
//! stale timestamps refused) and `POST /hooks/chatwoot/{source}/{token}`
//! (a secret URL token for older Chatwoot that does not sign, compared in
//! constant time).
//!
//! Verify → persist → acknowledge: the body is parsed, deduplicated (signed
//! deliveries by what the signature covers, timestamp and body; others by
//! `X-Chatwoot-Delivery`, else by a key derived from the event) and stored
//! with its job in one transaction before the 200. Events the flow does not
//! handle, and events of inboxes outside the source's filter, get a 200 and
//! are not stored. Chatwoot waits 5 s at most and never retries, so nothing
//! here calls out.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatwoot::{Event, SignatureVerifier, WebhookHeaders};
use config::{Config, SourceConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::auth::check_url_token;
use crate::body_limits;
use crate::error::ApiError;
use crate::ingest::{self, Inbound};
use crate::state::AppState;

/// Signed deliveries.
pub const ROUTE: &str = "/hooks/chatwoot/{source}";
/// Deliveries authenticated by a URL token.
pub const TOKEN_ROUTE: &str = "/hooks/chatwoot/{source}/{token}";
/// Headers kept with the inbox row (never the signature).
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "user-agent",
    "x-chatwoot-delivery",
    "x-chatwoot-timestamp",
];

struct Endpoint {
    target: String,
    verifier: Option<SignatureVerifier>,
    url_tokens: Vec<SecretString>,
    inboxes: Vec<u64>,
    account_id: u64,
    max_attempts: i32,
    body_limit: usize,
}

type Endpoints = Arc<HashMap<String, Endpoint>>;

/// The Chatwoot routes for every `kind = "chatwoot"` source in `config`.
pub fn router(config: &Config) -> Router<AppState> {
    let max_attempts = i32::try_from(config.engine.max_attempts).unwrap_or(i32::MAX);
    let endpoints: Endpoints = Arc::new(
        config
            .sources
            .iter()
            .filter_map(|(name, source)| match source {
                SourceConfig::Chatwoot(s) => Some((
                    name.clone(),
                    Endpoint {
                        target: s.target.clone(),
                        verifier: s.webhook_secret.clone().map(|secret| {
                            SignatureVerifier::new(secret).with_tolerance(s.signature_tolerance)
                        }),
                        url_tokens: s.url_token.iter().cloned().collect(),
                        inboxes: s.inboxes.clone(),
                        account_id: s.account_id,
                        max_attempts,
                        body_limit: s.body_limit,
                    },
                )),
                _ => None,
            })
            .collect(),
    );
    let signed = endpoints.clone();
    Router::new()
        .route(
            ROUTE,
            post(move |state, Path(source): Path<String>, headers, body| {
                receive(signed.clone(), state, source, None, headers, body)
            }),
        )
        .route(
            TOKEN_ROUTE,
            post(
                move |state, Path((source, token)): Path<(String, String)>, headers, body| {
                    receive(endpoints.clone(), state, source, Some(token), headers, body)
                },
            ),
        )
}

async fn receive(
    endpoints: Endpoints,
    State(state): State<AppState>,
    source: String,
    token: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let endpoint = endpoints
        .get(&source)
        .ok_or_else(|| ApiError::NotFound(format!("no chatwoot source named {source:?}")))?;
    // A URL token is checked before the body is read: without it nobody
    // makes the service buffer up to the source's limit. A signature covers
    // the body, so it is checked once the body is read.
    if let Some(token) = &token {
        check_url_token(&endpoint.url_tokens, token)?;
    } else if endpoint.verifier.is_none() {
        return Err(ApiError::Unauthorized(
            "this source takes deliveries on its URL-token address".to_owned(),
        ));
    }
    // Read here, with this source's own limit rather than the server's: an
    // email conversation's webhook can be megabytes (see the setting).
    let body: Bytes = body_limits::read(body, endpoint.body_limit, &source).await?;
    let delivery = WebhookHeaders::from_header_map(&headers);
    // Whether the signature (over timestamp and body) was checked: always
    // without a token (a source with neither was refused above), and on the
    // token URL when the delivery is signed, which must then be right.
    let mut signed = false;
    if let Some(verifier) = &endpoint.verifier
        && (token.is_none() || delivery.signature.is_some())
    {
        verify(verifier, &delivery, &body)?;
        signed = true;
    }
    let raw: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let event = Event::from_value(raw.clone())
        .map_err(|e| ApiError::BadRequest(format!("not a Chatwoot webhook body: {e}")))?;
    if !chatwoot_sync::jobs::is_handled(&event) {
        return Ok(ignored(event.name(), "event not handled"));
    }
    // Conversation ids are per account: another account's conversation 482
    // is not ours. A webhook URL is unique within one account only.
    if event
        .account_id()
        .is_some_and(|id| id != endpoint.account_id)
    {
        return Ok(ignored(event.name(), "another account"));
    }
    let inbox_allowed = endpoint.inboxes.is_empty()
        || event.conversation_id().is_none()
        || event
            .inbox_id()
            .is_some_and(|id| endpoint.inboxes.contains(&id));
    if !inbox_allowed {
        return Ok(ignored(event.name(), "inbox not synchronised"));
    }
    let dedupe_key = match (&delivery.delivery_id, &delivery.timestamp) {
        // `X-Chatwoot-Delivery` is not signed: a captured request replayed
        // with a fresh delivery id would pass as new. What the signature
        // covers (timestamp and body) is the key: a replay is a duplicate.
        (_, Some(timestamp)) if signed => signed_key(timestamp, &body),
        (Some(id), _) if id.len() <= 255 => format!("delivery:{id}"),
        _ => chatwoot_sync::jobs::derived_dedupe_key(&event, &raw),
    };
    let job = chatwoot_sync::jobs::event_job(
        &source,
        &endpoint.target,
        &event,
        raw,
        endpoint.max_attempts,
    );
    let outcome = ingest::accept(
        &state,
        Inbound {
            source,
            dedupe_key,
            body: body.to_vec(),
            headers: ingest::kept_headers(&headers, &KEPT_HEADERS),
            jobs: vec![job],
        },
    )
    .await?;
    let answer = json!({
        "accepted": true,
        "inbox_id": outcome.inbox_id(),
        "duplicate": outcome.is_duplicate(),
    });
    Ok((StatusCode::OK, Json(answer)).into_response())
}

/// The dedupe key of a signed delivery: a hash of what the signature covers.
fn signed_key(timestamp: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(timestamp.as_bytes());
    hash.update(b".");
    hash.update(body);
    format!("signed:{}", hex::encode(&hash.finalize()[..16]))
}

fn verify(
    verifier: &SignatureVerifier,
    delivery: &WebhookHeaders,
    body: &[u8],
) -> Result<(), ApiError> {
    verifier
        .verify_headers(delivery, body)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

fn ignored(event: &str, why: &str) -> Response {
    (
        StatusCode::OK,
        Json(json!({"accepted": false, "ignored": true, "event": event, "reason": why})),
    )
        .into_response()
}
