//! The REST endpoints the connector calls (spec §4.2), with Chatwoot's
//! status codes and bodies. Writes emit the webhooks real Chatwoot emits.

// Handlers answer errors as ready `Response`s; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::presenters::{
    change, contact_api, contact_event, conversation_api, message_api, message_push,
};
use crate::state::{Author, now};

type ApiResult = Result<Response, Response>;

fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"error": "Resource could not be found"}),
    )
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let base = "/api/v1/accounts/{account_id}";
    Router::new()
        .route(&format!("{base}/conversations"), get(list_conversations))
        .route(
            &format!("{base}/conversations/{{id}}"),
            get(show_conversation),
        )
        .route(
            &format!("{base}/conversations/{{id}}/messages"),
            get(list_messages).post(create_message),
        )
        .route(
            &format!("{base}/conversations/{{id}}/toggle_status"),
            post(toggle_status),
        )
        .route(
            &format!("{base}/conversations/{{id}}/custom_attributes"),
            post(set_custom_attributes),
        )
        .route(&format!("{base}/contacts/search"), get(search_contacts))
        .route(
            &format!("{base}/contacts/{{id}}"),
            get(show_contact).patch(update_contact).put(update_contact),
        )
        .with_state(shared)
}

/// `api_access_token` / `Api-Access-Token` (spec §4.1) and the account.
fn authorize(shared: &Shared, headers: &HeaderMap, account_id: u64) -> Result<(), Response> {
    let token = headers
        .get("api_access_token")
        .or_else(|| headers.get("api-access-token"))
        .and_then(|v| v.to_str().ok());
    if token != Some(shared.api_token.as_str()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid Access Token"}),
        ));
    }
    if account_id != shared.account.lock().id {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            json!({"error": "You are not authorized to access this account"}),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    updated_within: Option<u64>,
    inbox_id: Option<u64>,
    page: Option<usize>,
}

async fn list_conversations(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<u64>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let account = shared.account.lock();
    let status = query.status.unwrap_or_else(|| "open".into());
    let since = query.updated_within.map(|s| now() - s as f64);
    let mut matching: Vec<_> = account
        .conversations
        .values()
        .filter(|c| status == "all" || c.status == status)
        .filter(|c| query.inbox_id.is_none_or(|i| c.inbox_id == i))
        .filter(|c| since.is_none_or(|t| c.updated_at >= t))
        .collect();
    matching.sort_by(|a, b| {
        b.last_activity_at
            .cmp(&a.last_activity_at)
            .then(b.id.cmp(&a.id))
    });
    let all_count = matching.len();
    let page: Vec<Value> = if since.is_some() {
        matching
            .iter()
            .map(|c| conversation_api(&account, c))
            .collect()
    } else {
        let page = query.page.unwrap_or(1).max(1);
        matching
            .iter()
            .skip((page - 1) * 25)
            .take(25)
            .map(|c| conversation_api(&account, c))
            .collect()
    };
    let unassigned = matching.iter().filter(|c| c.assignee_id.is_none()).count();
    Ok(Json(json!({
        "data": {
            "meta": {"mine_count": 0, "assigned_count": all_count - unassigned,
                     "unassigned_count": unassigned, "all_count": all_count},
            "payload": page
        }
    }))
    .into_response())
}

async fn show_conversation(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let account = shared.account.lock();
    let conversation = account.conversations.get(&id).ok_or_else(not_found)?;
    Ok(Json(conversation_api(&account, conversation)).into_response())
}

#[derive(Deserialize)]
struct MessagesQuery {
    after: Option<u64>,
    before: Option<u64>,
}

async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
    Query(query): Query<MessagesQuery>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let account = shared.account.lock();
    let conversation = account.conversations.get(&id).ok_or_else(not_found)?;
    let all = account.conversation_messages(id);
    let selected: Vec<_> = if let Some(after) = query.after {
        all.iter().filter(|m| m.id > after).take(100).collect()
    } else {
        let before = query.before.unwrap_or(u64::MAX);
        let older: Vec<_> = all.iter().filter(|m| m.id < before).collect();
        let skip = older.len().saturating_sub(20);
        older.into_iter().skip(skip).collect()
    };
    let contact = account.contacts.get(&conversation.contact_id);
    Ok(Json(json!({
        "meta": {
            "labels": conversation.labels,
            "additional_attributes": {},
            "contact": contact.map(|c| contact_api(&account, c)),
            "assignee": conversation.assignee_id,
            "agent_last_seen_at": 0,
            "assignee_last_seen_at": 0
        },
        "payload": selected.iter().map(|m| message_push(&account, m)).collect::<Vec<_>>()
    }))
    .into_response())
}

#[derive(Deserialize)]
struct CreateMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    message_type: Option<Value>,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    content_attributes: Option<Map<String, Value>>,
    #[serde(default)]
    source_id: Option<String>,
    #[serde(default)]
    echo_id: Option<Value>,
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
    Json(body): Json<CreateMessage>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let (response, events) = {
        let mut account = shared.account.lock();
        let conversation = account
            .conversations
            .get(&id)
            .ok_or_else(not_found)?
            .clone();
        let content = body.content.unwrap_or_default();
        if content.trim().is_empty() {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Content can't be blank", "attributes": ["content"]}),
            ));
        }
        if content.chars().count() > 150_000 {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Content is too long (maximum is 150000 characters)", "attributes": ["content"]}),
            ));
        }
        let message_type = match &body.message_type {
            None => 1,
            Some(Value::String(s)) if s == "outgoing" => 1,
            Some(Value::String(s)) if s == "incoming" => 0,
            Some(Value::Number(n)) if n.as_u64() == Some(1) => 1,
            Some(Value::Number(n)) if n.as_u64() == Some(0) => 0,
            Some(other) => {
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": format!("invalid message_type {other}")}),
                ));
            }
        };
        let inbox_type = account
            .inboxes
            .get(&conversation.inbox_id)
            .map(|i| i.channel_type.clone())
            .unwrap_or_default();
        if message_type == 0 && inbox_type != "Channel::Api" {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "Incoming messages are only allowed in Api inboxes"}),
            ));
        }
        let private = body.private.unwrap_or(false);
        // Chatwoot takes a public reply even when the channel cannot send it
        // (WhatsApp's 24-hour window closed): the message is stored, and the
        // channel's failure comes later as a message_updated with
        // `content_attributes.external_error`. There is no 422 for it.
        let window_closed = !account.can_reply(&conversation);
        let attributes: Map<String, Value> = body
            .content_attributes
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| matches!(k.as_str(), "items" | "in_reply_to" | "automation_rule_id"))
            .collect();
        let owner = account.token_user.id;
        // Liquidable: outgoing messages (notes too) are rendered first.
        let content = if message_type == 1 {
            crate::state::render_liquid(&content, account.contacts.get(&conversation.contact_id))
        } else {
            content
        };
        let message_id = account.add_message(
            id,
            &content,
            message_type,
            private,
            Author::TokenUser(owner),
            attributes,
            body.source_id,
            body.echo_id,
            &[],
        );
        shared
            .counters
            .messages_via_api
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let message = account
            .messages
            .get(&message_id)
            .cloned()
            .ok_or_else(not_found)?;
        let mut events = vec![crate::presenters::message_webhook(
            &account,
            &message,
            "message_created",
        )];
        // The channel refuses it after the API said yes.
        let refusal = (message_type == 1 && !private)
            .then(|| {
                conversation
                    .delivery_error
                    .clone()
                    .or_else(|| window_closed.then(|| WINDOW_CLOSED.to_owned()))
            })
            .flatten();
        if let Some(refusal) = refusal
            && let Some(stored) = account.messages.get_mut(&message_id)
        {
            stored
                .content_attributes
                .insert("external_error".into(), Value::String(refusal));
            let failed = stored.clone();
            events.push(crate::presenters::message_webhook(
                &account,
                &failed,
                "message_updated",
            ));
        }
        (message_api(&account, &message), events)
    };
    shared.emit_detached(events);
    Ok(Json(response).into_response())
}

/// What WhatsApp Cloud answers a free-form reply outside the 24-hour window.
const WINDOW_CLOSED: &str = "(#131047) Re-engagement message: Message failed to send because more than 24 hours have passed since the customer last replied to this number.";

#[derive(Deserialize)]
struct ToggleStatus {
    status: Option<String>,
}

async fn toggle_status(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
    Json(body): Json<ToggleStatus>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let target = {
        let account = shared.account.lock();
        let conversation = account.conversations.get(&id).ok_or_else(not_found)?;
        match body.status.as_deref() {
            None => {
                if conversation.status == "open" {
                    "resolved".to_owned()
                } else {
                    "open".to_owned()
                }
            }
            Some(s @ ("open" | "resolved" | "pending" | "snoozed")) => s.to_owned(),
            Some(other) => {
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": format!("'{other}' is not a valid status")}),
                ));
            }
        }
    };
    let events = shared.change_status(id, &target).ok_or_else(not_found)?;
    shared.emit_detached(events);
    Ok(Json(json!({
        "meta": {},
        "payload": {"success": true, "conversation_id": id, "current_status": target, "snoozed_until": null}
    }))
    .into_response())
}

#[derive(Deserialize)]
struct CustomAttributes {
    #[serde(default)]
    custom_attributes: Map<String, Value>,
}

async fn set_custom_attributes(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
    Json(body): Json<CustomAttributes>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let (current, events) = {
        let mut account = shared.account.lock();
        let conversation = account.conversations.get_mut(&id).ok_or_else(not_found)?;
        let previous =
            std::mem::replace(&mut conversation.custom_attributes, body.custom_attributes);
        let current = conversation.custom_attributes.clone();
        let mut events = Vec::new();
        if previous != current {
            let before = conversation.updated_at;
            conversation.updated_at = now();
            let after = conversation.updated_at;
            let snapshot = conversation.clone();
            let diff = json!([
                change(
                    "custom_attributes",
                    Value::Object(previous),
                    Value::Object(current.clone())
                ),
                change(
                    "updated_at",
                    json!(crate::state::iso(before)),
                    json!(crate::state::iso(after))
                )
            ]);
            events.push(crate::presenters::conversation_event(
                &account,
                &snapshot,
                "conversation_updated",
                Some(diff),
            ));
        }
        shared
            .counters
            .custom_attribute_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (current, events)
    };
    shared.emit_detached(events);
    Ok(Json(json!({"custom_attributes": current})).into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    page: Option<usize>,
}

async fn search_contacts(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<u64>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let account = shared.account.lock();
    let needle = query.q.unwrap_or_default().to_lowercase();
    let matches: Vec<_> = account
        .contacts
        .values()
        .filter(|c| c.email.is_some() || c.phone_number.is_some() || c.identifier.is_some())
        .filter(|c| {
            [
                Some(&c.name),
                c.email.as_ref(),
                c.phone_number.as_ref(),
                c.identifier.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|field| field.to_lowercase().contains(&needle))
        })
        .collect();
    let page = query.page.unwrap_or(1).max(1);
    let payload: Vec<Value> = matches
        .iter()
        .skip((page - 1) * 15)
        .take(15)
        .map(|c| contact_api(&account, c))
        .collect();
    Ok(Json(json!({
        "meta": {"count": matches.len(), "current_page": page},
        "payload": payload
    }))
    .into_response())
}

async fn show_contact(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let account = shared.account.lock();
    let contact = account.contacts.get(&id).ok_or_else(not_found)?;
    Ok(Json(json!({"payload": contact_api(&account, contact)})).into_response())
}

#[derive(Deserialize)]
struct ContactPatch {
    name: Option<String>,
    email: Option<String>,
    phone_number: Option<String>,
    identifier: Option<String>,
    custom_attributes: Option<Map<String, Value>>,
    additional_attributes: Option<Map<String, Value>>,
}

async fn update_contact(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(u64, u64)>,
    headers: HeaderMap,
    Json(patch): Json<ContactPatch>,
) -> ApiResult {
    authorize(&shared, &headers, account_id)?;
    let (response, events) = {
        let mut account = shared.account.lock();
        let original = account.contacts.get(&id).ok_or_else(not_found)?.clone();
        for (field, value) in [
            ("email", &patch.email),
            ("phone_number", &patch.phone_number),
            ("identifier", &patch.identifier),
        ] {
            let Some(value) = value else { continue };
            let clash = account.contacts.values().any(|c| {
                c.id != id
                    && match field {
                        "email" => c
                            .email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(value)),
                        "phone_number" => c.phone_number.as_deref() == Some(value.as_str()),
                        _ => c.identifier.as_deref() == Some(value.as_str()),
                    }
            });
            if clash {
                let label = match field {
                    "email" => "Email",
                    "phone_number" => "Phone number",
                    _ => "Identifier",
                };
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": format!("{label} has already been taken"), "attributes": [field]}),
                ));
            }
        }
        let mut updated = original.clone();
        if let Some(name) = patch.name {
            updated.name = name;
        }
        if patch.email.is_some() {
            updated.email = patch.email;
        }
        if patch.phone_number.is_some() {
            updated.phone_number = patch.phone_number;
        }
        if patch.identifier.is_some() {
            updated.identifier = patch.identifier;
        }
        // shallow merge (spec §4.2)
        for (k, v) in patch.custom_attributes.unwrap_or_default() {
            updated.custom_attributes.insert(k, v);
        }
        for (k, v) in patch.additional_attributes.unwrap_or_default() {
            updated.additional_attributes.insert(k, v);
        }
        let mut events = Vec::new();
        if updated != original {
            updated.updated_at = now();
            let diff = shared.contact_diff(&original, &updated);
            account.contacts.insert(id, updated.clone());
            events.push(contact_event(
                &account,
                &updated,
                "contact_updated",
                Some(diff),
            ));
        }
        (json!({"payload": contact_api(&account, &updated)}), events)
    };
    shared.emit_detached(events);
    Ok(Json(response).into_response())
}
