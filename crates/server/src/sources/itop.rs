//! iTop webhooks for every `[sources.<name>]` with `kind = "itop"` (the
//! iTop ↔ iTop bridge, crate `itop-bridge`).
//!
//! - The seed's paths, as its iTop webhook actions call them:
//!   `POST /api/v1/create-ticket`, `/api/v1/update-ticket`,
//!   `/api/v1/update-private-log` (external iTop), `/api/v1/ticket-state-change`,
//!   `/api/v1/ticket-update-private-log` (internal iTop) and
//!   `/api/v1/update-attachment` (either: the payload's `source` says which).
//!   The `X-API-Key` (or `Authorization: Bearer`) tells which bridge the call
//!   is for: keys are per source.
//! - The namespaced form `POST /hooks/itop/{source}/{side}/{event}` where
//!   `side` is `external` or `internal` and `event` one of the names above
//!   (`create-ticket`, …) or `event` for the generic payload
//!   (`{"instance","event","class","id",…,"actor"}`); the key must be one
//!   of that source's.
//!
//! Verify (key, JSON object, ids) → persist (inbox row + one `itop.webhook`
//! job, one transaction; dedupe key from [`itop_bridge::webhook::dedupe_key`])
//! → 200 `{"received":true,"duplicate":false,"inbox_id":N,"side":"external"}`.
//! Nothing calls an iTop on the request path (iTop waits for the answer
//! while its user saves the ticket).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use config::SourceConfig;
use config::sources::ItopSource;
use itop_bridge::{Endpoint, Side, Webhook};
use serde_json::{Value, json};

use crate::auth::ApiKeys;
use crate::error::ApiError;
use crate::ingest::{self, Inbound};
use crate::state::AppState;

/// The namespaced route.
pub const HOOK_ROUTE: &str = "/hooks/itop/{source}/{side}/{event}";
/// Headers kept with the inbox row.
const KEPT_HEADERS: [&str; 3] = ["content-type", "user-agent", "x-request-id"];

struct Bridge {
    name: String,
    keys: ApiKeys,
    settings: ItopSource,
    max_attempts: i32,
}

type Bridges = Arc<Vec<Bridge>>;

fn bridges(state: &AppState) -> Bridges {
    let max_attempts = i32::try_from(state.config.engine.max_attempts).unwrap_or(i32::MAX);
    Arc::new(
        state
            .config
            .sources
            .iter()
            .filter_map(|(name, source)| match source {
                SourceConfig::Itop(s) => Some(Bridge {
                    name: name.clone(),
                    keys: ApiKeys::new(s.api_keys.clone()),
                    settings: s.clone(),
                    max_attempts,
                }),
                _ => None,
            })
            .collect(),
    )
}

/// The iTop routes (nothing is mounted when no itop source is configured).
pub fn routes(state: &AppState) -> Router<AppState> {
    let bridges = bridges(state);
    let mut router = Router::new();
    if bridges.is_empty() {
        return router;
    }
    for endpoint in Endpoint::ALL {
        if endpoint == Endpoint::Event {
            continue;
        }
        let bridges = bridges.clone();
        router = router.route(
            &format!("/api/v1/{}", endpoint.as_str()),
            post(move |state, headers, body| {
                seed_path(bridges.clone(), endpoint, state, headers, body)
            }),
        );
    }
    let hook_bridges = bridges;
    router.route(
        HOOK_ROUTE,
        post(move |state, path, headers, body| {
            namespaced(hook_bridges.clone(), state, path, headers, body)
        }),
    )
}

async fn seed_path(
    bridges: Bridges,
    endpoint: Endpoint,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Check every bridge's keys (each in constant time) and take the match.
    let mut found = None;
    let mut refusal = None;
    for bridge in bridges.iter() {
        match bridge.keys.check(&headers) {
            Ok(()) if found.is_none() => found = Some(bridge),
            Ok(()) => {}
            Err(e) => refusal = Some(e),
        }
    }
    let bridge = match (found, refusal) {
        (Some(bridge), _) => bridge,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(ApiError::Unauthorized("invalid API key".to_owned())),
    };
    receive(&state, bridge, endpoint, None, &headers, body).await
}

async fn namespaced(
    bridges: Bridges,
    State(state): State<AppState>,
    Path((source, side, event)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bridge = bridges
        .iter()
        .find(|b| b.name == source)
        .ok_or_else(|| ApiError::NotFound(format!("no itop source named {source:?}")))?;
    bridge.keys.check(&headers)?;
    let side = Side::parse(&side).ok_or_else(|| {
        ApiError::NotFound(format!("side must be external or internal, not {side:?}"))
    })?;
    let endpoint = Endpoint::from_path(&event).ok_or_else(|| {
        ApiError::NotFound(format!(
            "unknown event {event:?} (known: {})",
            Endpoint::ALL.map(Endpoint::as_str).join(", ")
        ))
    })?;
    receive(&state, bridge, endpoint, Some(side), &headers, body).await
}

async fn receive(
    state: &AppState,
    bridge: &Bridge,
    endpoint: Endpoint,
    side: Option<Side>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let webhook = Webhook::parse(
        endpoint,
        side,
        &value,
        &bridge.settings.internal_source_names,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let dedupe_key =
        itop_bridge::webhook::dedupe_key(&state.store, &bridge.name, &webhook, &value).await?;
    let job = itop_bridge::webhook::job(
        &bridge.name,
        &bridge.settings,
        bridge.max_attempts,
        &webhook,
    );
    let inbound = Inbound {
        source: bridge.name.clone(),
        dedupe_key,
        body: body.to_vec(),
        headers: ingest::kept_headers(headers, &KEPT_HEADERS),
        jobs: vec![job],
    };
    let outcome = ingest::accept(state, inbound).await?;
    let answer = json!({
        "received": true,
        "duplicate": outcome.is_duplicate(),
        "inbox_id": outcome.inbox_id(),
        "side": webhook.side,
    });
    Ok((StatusCode::OK, Json(answer)).into_response())
}
