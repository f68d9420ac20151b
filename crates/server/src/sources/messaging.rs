//! Messaging channels: `kind = "messaging"` sources at
//! `/api/v1/channels/{source}/...`, for WhatsApp gateways and chat bots.
//!
//! - `POST /api/v1/channels/{source}/messages`: one customer message; API
//!   key; deduped by the caller's `message_id` within the conversation; answers
//!   202 `{"accepted":true,"duplicate":false,"conversation":"…","ticket":{"id","ref","url"}|null}`.
//! - `POST /api/v1/channels/{source}/conversations/{id}/handoff`: the bot
//!   hands the chat over; the buffered messages become a ticket now. Answers
//!   200 with the ticket when it exists within the source's `handoff_wait`,
//!   else 202 with `"ticket": null` (the callback will carry it); 404
//!   `unknown_conversation` when nothing of the conversation is waiting and
//!   it has no ticket. A WhatsApp JID and its number are one conversation.
//! - `GET /api/v1/channels/{source}/tickets?phone=…&email=…`: the sender's
//!   open tickets (by phone, the requester last resolved for it, and/or email).
//!
//! Errors use the uniform body; a 400 lists every invalid field in
//! `error.fields`. The work itself lives in the `messaging` flow crate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use config::{Config, SourceConfig};
use messaging::{Messaging, MessagingError, Rejection, TicketRef};
use serde_json::{Value, json};
use store::JobStatus;

use crate::auth::ApiKeys;
use crate::body_limits;
use crate::error::{ApiError, error_body};
use crate::ingest::{self, Inbound};
use crate::state::AppState;

pub const MESSAGES_ROUTE: &str = "/api/v1/channels/{source}/messages";
pub const HANDOFF_ROUTE: &str = "/api/v1/channels/{source}/conversations/{conversation}/handoff";
pub const TICKETS_ROUTE: &str = "/api/v1/channels/{source}/tickets";

/// Headers kept with the inbox row.
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "user-agent",
    "idempotency-key",
    "x-request-id",
];

struct Channels {
    keys: HashMap<String, ApiKeys>,
    /// Each source's message body limit (see `crate::body_limits`).
    body_limits: HashMap<String, usize>,
    flow: Messaging,
}

/// The messaging routes for every messaging source in `config`, served by `flow`.
pub fn router(config: &Config, flow: Messaging) -> Router<AppState> {
    let keys = config
        .sources
        .iter()
        .filter_map(|(name, source)| match source {
            SourceConfig::Messaging(s) => Some((name.clone(), ApiKeys::new(s.api_keys.clone()))),
            _ => None,
        })
        .collect();
    let body_limits = config
        .sources
        .iter()
        .filter_map(|(name, source)| match source {
            SourceConfig::Messaging(s) => {
                Some((name.clone(), s.body_limit(config.server.body_limit)))
            }
            _ => None,
        })
        .collect();
    let channels = Arc::new(Channels {
        keys,
        body_limits,
        flow,
    });
    let for_messages = channels.clone();
    let for_handoff = channels.clone();
    Router::new()
        .route(
            MESSAGES_ROUTE,
            post(move |state, path, headers, body| {
                receive_message(for_messages.clone(), state, path, headers, body)
            }),
        )
        .route(
            HANDOFF_ROUTE,
            post(move |state, path, headers| handoff(for_handoff.clone(), state, path, headers)),
        )
        .route(
            TICKETS_ROUTE,
            get(move |path, headers, query| open_tickets(channels.clone(), path, headers, query)),
        )
}

impl Channels {
    fn authorise(&self, source: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let keys = self
            .keys
            .get(source)
            .ok_or_else(|| ApiError::NotFound(format!("no messaging source named {source:?}")))?;
        keys.check(headers)
    }
}

fn ticket_json(ticket: Option<&TicketRef>) -> Value {
    match ticket {
        Some(t) => json!({
            "id": t.id,
            "ref": Some(&t.reference).filter(|r| !r.is_empty()),
            "url": t.url,
        }),
        None => Value::Null,
    }
}

fn flow_error(error: MessagingError) -> Response {
    match error {
        MessagingError::UnknownSource(s) => {
            ApiError::NotFound(format!("no messaging source named {s:?}")).into_response()
        }
        MessagingError::Phone(e) => {
            error_body(StatusCode::BAD_REQUEST, "invalid_fields", &e.to_string())
        }
        MessagingError::Store(e) => ApiError::from(e).into_response(),
        e if e.is_retryable() => {
            // The details (addresses, the help desk's error pages) are for
            // the operator's logs, not for whoever holds a bot's key.
            tracing::warn!(error = %e, "messaging: the help desk is unavailable");
            let mut response = error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "target_unavailable",
                "the help desk is not answering right now; try again later",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            response
        }
        e => {
            tracing::error!(error = %e, "messaging request failed");
            error_body(StatusCode::BAD_GATEWAY, "target_refused", &e.to_string())
        }
    }
}

fn rejection(rejection: Rejection) -> Response {
    match rejection {
        Rejection::TooLarge(message) => {
            error_body(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &message)
        }
        Rejection::Invalid(fields) => {
            let message = Rejection::Invalid(fields.clone()).describe();
            let fields: Vec<Value> = fields
                .into_iter()
                .map(|(path, message)| json!({"path": path, "message": message}))
                .collect();
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"code": "invalid_fields", "message": message, "fields": fields}})),
            )
                .into_response()
        }
    }
}

async fn receive_message(
    channels: Arc<Channels>,
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    channels.authorise(&source, &headers)?;
    ingest::require_json(&headers, "the message")?;
    // Read once the key is checked, with the source's own limit: inline
    // files make messages larger than other requests.
    let limit = channels
        .body_limits
        .get(&source)
        .copied()
        .unwrap_or(state.config.server.body_limit);
    let body = body_limits::read(body, limit, &body_limits::setting(&source)).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let message = match channels
        .flow
        .parse_message(&source, &value, store::now_ms())
    {
        Ok(message) => message,
        Err(r) => return Ok(rejection(r)),
    };
    let job = match channels.flow.message_job(&source, &message) {
        Ok(job) => job,
        Err(e) => return Ok(flow_error(e)),
    };
    let inbound = Inbound {
        source: source.clone(),
        // Per conversation: gateways that number messages per chat reuse ids
        // across conversations (length prefix: no two pairs share a key).
        dedupe_key: format!(
            "message:{}:{}:{}",
            message.conversation_id.len(),
            message.conversation_id,
            message.message_id
        ),
        body: body.to_vec(),
        headers: ingest::kept_headers(&headers, &KEPT_HEADERS),
        jobs: vec![job],
    };
    let outcome = ingest::accept(&state, inbound).await?;
    let ticket = match channels
        .flow
        .current_ticket(&source, &message.conversation_id)
        .await
    {
        Ok(ticket) => ticket,
        Err(e) => return Ok(flow_error(e)),
    };
    if ticket.is_none()
        && !outcome.is_duplicate()
        && let Err(error) = channels.flow.note_unnamed(&source, &message).await
    {
        // The message is stored; only the followup callback may be missed.
        tracing::warn!(%error, source = %source, "the unnamed ticket was not noted for the callback");
    }
    let answer = json!({
        "accepted": true,
        "duplicate": outcome.is_duplicate(),
        "conversation": message.conversation_id,
        "ticket": ticket_json(ticket.as_ref()),
    });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

async fn handoff(
    channels: Arc<Channels>,
    State(state): State<AppState>,
    Path((source, conversation)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    channels.authorise(&source, &headers)?;
    if conversation.trim().is_empty() || conversation.len() > messaging::message::MAX_ID_LEN {
        return Err(ApiError::BadRequest(format!(
            "conversation id must be 1 to {} characters",
            messaging::message::MAX_ID_LEN
        )));
    }
    // The number a bot names the chat by and the gateway's JIDs are one
    // conversation.
    let conversation = messaging::message::conversation_key(&conversation);
    let before = match channels.flow.conversation(&source, &conversation).await {
        Ok(state) => state,
        Err(e) => return Ok(flow_error(e)),
    };
    match channels
        .flow
        .knows_conversation(&source, &conversation)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Ok(error_body(
                StatusCode::NOT_FOUND,
                "unknown_conversation",
                &format!(
                    "no message of conversation {conversation:?} is waiting and it has no ticket: \
                     send its messages first, with the same conversation_id"
                ),
            ));
        }
        Err(e) => return Ok(flow_error(e)),
    }
    let job = match channels.flow.handoff_job(&source, &conversation) {
        Ok(job) => job,
        Err(e) => return Ok(flow_error(e)),
    };
    let dedupe_key = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(key) if !key.trim().is_empty() && key.len() <= 255 => {
            format!("handoff:{}", key.trim())
        }
        _ => format!("handoff:{conversation}:{}", uuid::Uuid::new_v4().simple()),
    };
    let inbound = Inbound {
        source: source.clone(),
        dedupe_key,
        body: Vec::new(),
        headers: ingest::kept_headers(&headers, &KEPT_HEADERS),
        jobs: vec![job],
    };
    let outcome = ingest::accept(&state, inbound).await?;
    // Wait (briefly) for the handoff job itself: it runs after every message
    // accepted before it, so the ticket it leaves is the one for this burst.
    let deadline = tokio::time::Instant::now() + channels.flow.handoff_wait(&source);
    if let ingest::IngestOutcome::Accepted { job_ids, .. } = &outcome
        && let Some(job_id) = job_ids.first()
    {
        loop {
            let done = state
                .store
                .job(*job_id)
                .await?
                .is_none_or(|job| matches!(job.status, JobStatus::Succeeded | JobStatus::Dead));
            if done || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ticket = match channels
        .flow
        .handoff_ticket(&source, &conversation, before.generation)
        .await
    {
        Ok(ticket) => ticket,
        Err(e) => return Ok(flow_error(e)),
    };
    let status = if ticket.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let answer = json!({
        "accepted": true,
        "conversation": conversation,
        "ticket": ticket_json(ticket.as_ref()),
    });
    Ok((status, Json(answer)).into_response())
}

async fn open_tickets(
    channels: Arc<Channels>,
    Path(source): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    channels.authorise(&source, &headers)?;
    let field = |name: &str| query.get(name).map(|p| p.trim()).filter(|p| !p.is_empty());
    let (phone, email) = (field("phone"), field("email"));
    if phone.is_none() && email.is_none() {
        return Ok(rejection(Rejection::Invalid(vec![(
            "phone".to_owned(),
            "is required (or email)".to_owned(),
        )])));
    }
    if let Some(email) = email
        && !email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    {
        return Ok(rejection(Rejection::Invalid(vec![(
            "email".to_owned(),
            "is not an email address".to_owned(),
        )])));
    }
    let tickets = match channels.flow.open_tickets(&source, phone, email).await {
        Ok(tickets) => tickets,
        Err(MessagingError::Phone(e)) => {
            return Ok(rejection(Rejection::Invalid(vec![(
                "phone".to_owned(),
                e.to_string(),
            )])));
        }
        Err(e) => return Ok(flow_error(e)),
    };
    let tickets: Vec<Value> = tickets
        .into_iter()
        .map(|t| {
            json!({"id": t.id, "ref": t.reference, "title": t.title, "status": t.status.as_word(),
                "url": t.url, "updated_at": t.updated_at})
        })
        .collect();
    Ok((StatusCode::OK, Json(json!({"tickets": tickets}))).into_response())
}
