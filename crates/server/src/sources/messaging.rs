//! Messaging channels: `kind = "messaging"` sources at
//! `/api/v1/channels/{source}/...`, for WhatsApp gateways and chat bots.
//!
//! - `POST /api/v1/channels/{source}/messages`: one customer message; API
//!   key; deduped by the caller's `message_id` within the conversation; answers
//!   202 `{"accepted":true,"duplicate":false,"conversation":"…","ticket":{"id","ref","url"}|null}`.
//! - `POST /api/v1/channels/{source}/conversations/{id}/handoff`: the bot
//!   hands the chat over; the buffered messages become a ticket now. Answers
//!   what the handoff's job came to within the source's `handoff_wait`: 200
//!   with the ticket it made (or, nothing needing one, the conversation's
//!   ticket); 202 with `"ticket": null` while the job is on its way (the
//!   callback will carry it); 502 `handoff_failed` with the reason when the
//!   job gave up; 404 `unknown_conversation` when nothing of the
//!   conversation is waiting and it has no ticket, `nothing_to_hand_off`
//!   when its messages were a stale bot session. An `Idempotency-Key` sent
//!   again gets the first answer (422 `idempotency_key_reused` for another
//!   conversation). A WhatsApp JID and its number are one conversation.
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
use messaging::{HandoffOutcome, Messaging, MessagingError, Rejection, TicketRef};
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
    endpoints: HashMap<String, Endpoint>,
    flow: Messaging,
}

/// One messaging source, as its routes need it.
struct Endpoint {
    keys: ApiKeys,
    /// The message body limit (see `crate::body_limits`).
    body_limit: usize,
}

/// The messaging routes for every messaging source in `config`, served by `flow`.
pub fn router(config: &Config, flow: Messaging) -> Router<AppState> {
    let endpoints = config
        .sources
        .iter()
        .filter_map(|(name, source)| match source {
            SourceConfig::Messaging(s) => Some((
                name.clone(),
                Endpoint {
                    keys: ApiKeys::new(s.api_keys.clone()),
                    body_limit: s.body_limit(config.server.body_limit),
                },
            )),
            _ => None,
        })
        .collect();
    let channels = Arc::new(Channels { endpoints, flow });
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
    /// The source named in the path, once the request's key is one of its.
    fn authorise(&self, source: &str, headers: &HeaderMap) -> Result<&Endpoint, ApiError> {
        let endpoint = self
            .endpoints
            .get(source)
            .ok_or_else(|| ApiError::NotFound(format!("no messaging source named {source:?}")))?;
        endpoint.keys.check(headers)?;
        Ok(endpoint)
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
    let limit = channels.authorise(&source, &headers)?.body_limit;
    ingest::require_json(&headers, "the message")?;
    // Read once the key is checked, with the source's own limit: inline
    // files make messages larger than other requests.
    let body = body_limits::read(body, limit, &source).await?;
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

/// Longest accepted `Idempotency-Key` (as on the intake API).
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Inbox header entries of a handoff: the conversation it hands over (a key
/// sent again for another one is refused) and the conversation's generation
/// when it was accepted (a repeat names the ticket the first one made).
const CONVERSATION_HEADER: &str = "ticketbridge-conversation";
const GENERATION_HEADER: &str = "ticketbridge-generation";

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
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) if !key.trim().is_empty() && key.trim().len() <= MAX_IDEMPOTENCY_KEY => {
            Some(key.trim().to_owned())
        }
        Some(Ok(_)) => {
            return Ok(rejection(Rejection::Invalid(vec![(
                "Idempotency-Key".to_owned(),
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
            )])));
        }
        Some(Err(_)) => {
            return Ok(rejection(Rejection::Invalid(vec![(
                "Idempotency-Key".to_owned(),
                "must be printable ASCII".to_owned(),
            )])));
        }
    };
    // The number a bot names the chat by and the gateway's JIDs are one
    // conversation.
    let conversation = messaging::message::conversation_key(&conversation);
    // Source-wide, as the intake API's keys: a key sent again for another
    // conversation is refused, not taken for a repeat.
    let dedupe_key = match &key {
        Some(key) => format!("handoff:{key}"),
        None => format!("handoff:{conversation}:{}", uuid::Uuid::new_v4().simple()),
    };
    if key.is_some()
        && let Some(first) = state.store.inbox_by_dedupe(&source, &dedupe_key).await?
    {
        return repeated_handoff(&channels, &state, &source, &conversation, &first).await;
    }
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
    let mut kept = ingest::kept_headers(&headers, &KEPT_HEADERS);
    if let Some(map) = kept.as_object_mut() {
        map.insert(CONVERSATION_HEADER.to_owned(), json!(conversation));
        map.insert(GENERATION_HEADER.to_owned(), json!(before.generation));
    }
    let inbound = Inbound {
        source: source.clone(),
        dedupe_key,
        body: Vec::new(),
        headers: kept,
        jobs: vec![job],
    };
    let (inbox_id, job_id) = match ingest::accept(&state, inbound).await? {
        ingest::IngestOutcome::Accepted {
            inbox_id, job_ids, ..
        } => (inbox_id, job_ids.first().copied()),
        // The same key sent twice at once: the other request stored it.
        ingest::IngestOutcome::Duplicate { inbox_id, .. } => {
            return match state.store.inbox(inbox_id).await? {
                Some(first) => {
                    repeated_handoff(&channels, &state, &source, &conversation, &first).await
                }
                None => Err(ApiError::Internal(format!(
                    "inbox row {inbox_id} of a repeated handoff is gone"
                ))),
            };
        }
    };
    let answer = match handoff_answer(
        &channels,
        &state,
        &source,
        &conversation,
        before.generation,
        job_id,
    )
    .await
    {
        Ok(answer) => answer,
        Err(response) => return Ok(response),
    };
    if key.is_some() {
        record_final(&state, inbox_id, &answer).await;
    }
    Ok(answer.into_response())
}

/// A handoff sent again with the `Idempotency-Key` of `first`: the first
/// answer when it was final, else (the first answered 202, or had not
/// answered yet) the wait for the first one's job, and what it came to. A key
/// first sent for another conversation is refused (422
/// `idempotency_key_reused`).
async fn repeated_handoff(
    channels: &Channels,
    state: &AppState,
    source: &str,
    conversation: &str,
    first: &store::InboxRecord,
) -> Result<Response, ApiError> {
    if let Some(other) = first
        .headers
        .get(CONVERSATION_HEADER)
        .and_then(Value::as_str)
        .filter(|c| *c != conversation)
    {
        return Ok(error_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            &format!(
                "this Idempotency-Key was already used for the handoff of another conversation \
                 ({other:?}); send each handoff with a key of its own"
            ),
        ));
    }
    if let Some(answer) = first.response.as_ref().and_then(HandoffAnswer::from_record) {
        return Ok(answer.into_response());
    }
    let since = match first.headers.get(GENERATION_HEADER).and_then(Value::as_u64) {
        Some(since) => since,
        // Stored by an earlier version: the generation as it is now.
        None => match channels.flow.conversation(source, conversation).await {
            Ok(state) => state.generation,
            Err(e) => return Ok(flow_error(e)),
        },
    };
    let job_id = match channels
        .flow
        .handoff_job_of(source, conversation, first.id)
        .await
    {
        Ok(job) => job.map(|j| j.id),
        Err(e) => return Ok(flow_error(e)),
    };
    let answer = match handoff_answer(channels, state, source, conversation, since, job_id).await {
        Ok(answer) => answer,
        Err(response) => return Ok(response),
    };
    record_final(state, first.id, &answer).await;
    Ok(answer.into_response())
}

/// One handoff answer: its status and body.
struct HandoffAnswer {
    status: StatusCode,
    body: Value,
    /// A repeat of the handoff gets this same answer: it will not change
    /// (a 202, or a job that gave up and may be retried, can).
    is_final: bool,
}

impl HandoffAnswer {
    fn from_record(record: &Value) -> Option<HandoffAnswer> {
        let status = record
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())?;
        Some(HandoffAnswer {
            status,
            body: record.get("body")?.clone(),
            is_final: true,
        })
    }

    fn error(status: StatusCode, code: &str, message: &str, is_final: bool) -> HandoffAnswer {
        HandoffAnswer {
            status,
            body: json!({"error": {"code": code, "message": message}}),
            is_final,
        }
    }

    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Records a final answer for the repeats of the handoff (inbox row
/// `inbox_id`); a repeat that finds none works the answer out again.
async fn record_final(state: &AppState, inbox_id: i64, answer: &HandoffAnswer) {
    if !answer.is_final {
        return;
    }
    let record = json!({"status": answer.status.as_u16(), "body": answer.body});
    if let Err(error) = ingest::record_response(state, inbox_id, &record).await {
        tracing::warn!(
            ?error,
            inbox_id,
            "the handoff's answer was not recorded for its repeats"
        );
    }
}

/// Waits (at most the source's `handoff_wait`) for the handoff's job, then
/// answers with what it came to. The job runs after every message accepted
/// before it, so the ticket it leaves is the one for this burst.
async fn handoff_answer(
    channels: &Channels,
    state: &AppState,
    source: &str,
    conversation: &str,
    since: u64,
    job_id: Option<i64>,
) -> Result<HandoffAnswer, Response> {
    let deadline = tokio::time::Instant::now() + channels.flow.handoff_wait(source);
    let mut job = None;
    if let Some(job_id) = job_id {
        loop {
            job = state
                .store
                .job(job_id)
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            let done = job
                .as_ref()
                .is_none_or(|job| matches!(job.status, JobStatus::Succeeded | JobStatus::Dead));
            if done || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let outcome = channels
        .flow
        .handoff_outcome(source, conversation, since, job.as_ref())
        .await
        .map_err(flow_error)?;
    let ticket = |ticket: &TicketRef| HandoffAnswer {
        status: StatusCode::OK,
        body: json!({"accepted": true, "conversation": conversation,
            "ticket": ticket_json(Some(ticket))}),
        is_final: true,
    };
    Ok(match outcome {
        HandoffOutcome::Created(t) | HandoffOutcome::Existing(t) => ticket(&t),
        HandoffOutcome::Pending => HandoffAnswer {
            status: StatusCode::ACCEPTED,
            body: json!({"accepted": true, "conversation": conversation, "ticket": null}),
            is_final: false,
        },
        HandoffOutcome::Failed { job_id, reason } => HandoffAnswer::error(
            StatusCode::BAD_GATEWAY,
            "handoff_failed",
            &format!(
                "the handed-off messages could not become a ticket: {reason}. They are kept: \
                 the conversation's next message takes them to a ticket, as does a retry of \
                 job {job_id} (ticketbridge jobs retry {job_id})"
            ),
            false,
        ),
        HandoffOutcome::Nothing => HandoffAnswer::error(
            StatusCode::NOT_FOUND,
            "nothing_to_hand_off",
            &format!(
                "conversation {conversation:?} had nothing to hand off: its messages were \
                 followed by more than handoff_session of silence (a conversation the bot \
                 handled alone), and it has no ticket"
            ),
            true,
        ),
    })
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
