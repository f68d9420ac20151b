//! JSON shapes of Chatwoot's serializers, built from state (spec §3,
//! fixtures in tests/fixtures/chatwoot).

use serde_json::{Map, Value, json};

use crate::state::{Account, Agent, Author, Contact, Conversation, Message, iso};

fn account_ref(account: &Account) -> Value {
    json!({"id": account.id, "name": account.name})
}

/// `Contact#push_event_data` (nested sender, `meta.sender`).
pub(crate) fn contact_push(contact: &Contact) -> Value {
    json!({
        "additional_attributes": contact.additional_attributes,
        "custom_attributes": contact.custom_attributes,
        "email": contact.email,
        "id": contact.id,
        "identifier": contact.identifier,
        "name": contact.name,
        "phone_number": contact.phone_number,
        "thumbnail": "",
        "blocked": contact.blocked,
        "type": "contact",
    })
}

/// `Contact#webhook_data` (contact_* bodies, top-level message sender).
pub(crate) fn contact_webhook(account: &Account, contact: &Contact) -> Value {
    json!({
        "account": account_ref(account),
        "additional_attributes": contact.additional_attributes,
        "avatar": "",
        "custom_attributes": contact.custom_attributes,
        "email": contact.email,
        "id": contact.id,
        "identifier": contact.identifier,
        "name": contact.name,
        "phone_number": contact.phone_number,
        "thumbnail": "",
        "blocked": contact.blocked,
    })
}

/// API contact (`api/contact_update_response.json` payload).
pub(crate) fn contact_api(account: &Account, contact: &Contact) -> Value {
    let inboxes: Vec<Value> = account
        .conversations
        .values()
        .filter(|c| c.contact_id == contact.id)
        .filter_map(|c| {
            account.inboxes.get(&c.inbox_id).map(|inbox| {
                json!({
                    "source_id": c.source_id,
                    "inbox": {
                        "id": inbox.id, "avatar_url": "", "channel_id": inbox.id,
                        "name": inbox.name, "channel_type": inbox.channel_type,
                        "provider": null
                    }
                })
            })
        })
        .collect();
    json!({
        "additional_attributes": contact.additional_attributes,
        "availability_status": "offline",
        "email": contact.email,
        "id": contact.id,
        "name": contact.name,
        "phone_number": contact.phone_number,
        "blocked": contact.blocked,
        "identifier": contact.identifier,
        "thumbnail": "",
        "custom_attributes": contact.custom_attributes,
        "last_activity_at": contact.last_activity_at,
        "created_at": contact.created_at,
        "contact_inboxes": inboxes,
    })
}

fn user_push(agent: &Agent) -> Value {
    json!({
        "id": agent.id, "name": agent.name, "available_name": agent.name,
        "avatar_url": "", "type": "user", "availability_status": "online", "thumbnail": ""
    })
}

fn sender_push(account: &Account, author: Author) -> Option<Value> {
    match author {
        Author::Contact(id) => account.contacts.get(&id).map(contact_push),
        Author::Agent(id) => account.agents.get(&id).map(user_push),
        Author::TokenUser(_) => Some(user_push(&account.token_user)),
        Author::None => None,
    }
}

fn sender_webhook(account: &Account, author: Author) -> Value {
    match author {
        Author::Contact(id) => account
            .contacts
            .get(&id)
            .map(|c| contact_webhook(account, c))
            .unwrap_or(Value::Null),
        Author::Agent(id) => account
            .agents
            .get(&id)
            .map(user_webhook)
            .unwrap_or(Value::Null),
        Author::TokenUser(_) => user_webhook(&account.token_user),
        Author::None => Value::Null,
    }
}

/// A user as a webhook's `sender`.
fn user_webhook(user: &Agent) -> Value {
    json!({"id": user.id, "name": user.name, "email": user.email, "type": "user"})
}

fn sender_type(author: Author) -> (Value, Value) {
    match author {
        Author::Contact(id) => (json!("Contact"), json!(id)),
        Author::Agent(id) => (json!("User"), json!(id)),
        Author::TokenUser(id) => (json!("User"), json!(id)),
        Author::None => (Value::Null, Value::Null),
    }
}

fn attachments(account: &Account, message: &Message) -> Vec<Value> {
    message
        .attachments
        .iter()
        .map(|a| {
            json!({
                "id": a.id, "message_id": message.id, "file_type": a.file_type,
                "account_id": account.id, "extension": null, "data_url": a.data_url,
                "thumb_url": "", "file_size": a.file_size, "width": null, "height": null
            })
        })
        .collect()
}

/// `Message#push_event_data` (nested in conversations, message lists).
pub(crate) fn message_push(account: &Account, message: &Message) -> Value {
    let conversation = account.conversations.get(&message.conversation_id);
    let (stype, sid) = sender_type(message.author);
    let mut value = json!({
        "id": message.id,
        "content": message.content,
        "account_id": account.id,
        "inbox_id": conversation.map(|c| c.inbox_id),
        "conversation_id": message.conversation_id,
        "message_type": message.message_type,
        "created_at": message.created_at as i64,
        "updated_at": iso(message.created_at),
        "private": message.private,
        "status": "sent",
        "source_id": message.source_id,
        "content_type": message.content_type,
        "content_attributes": message.content_attributes,
        "sender_type": stype,
        "sender_id": sid,
        "external_source_ids": {},
        "additional_attributes": {},
        "processed_message_content": message.content,
        "sentiment": {},
        "conversation": conversation.map(|c| json!({
            "assignee_id": c.assignee_id,
            "unread_count": 0,
            "last_activity_at": c.last_activity_at,
            "contact_inbox": {"source_id": c.source_id}
        })),
    });
    if let Value::Object(map) = &mut value {
        if !message.attachments.is_empty() {
            map.insert(
                "attachments".into(),
                Value::Array(attachments(account, message)),
            );
        }
        if let Some(sender) = sender_push(account, message.author) {
            map.insert("sender".into(), sender);
        }
    }
    value
}

/// `_message.json.jbuilder` (`api/create_message_response.json`).
pub(crate) fn message_api(account: &Account, message: &Message) -> Value {
    let inbox_id = account
        .conversations
        .get(&message.conversation_id)
        .map(|c| c.inbox_id);
    let mut value = json!({
        "id": message.id,
        "content": message.content,
        "inbox_id": inbox_id,
        "conversation_id": message.conversation_id,
        "message_type": message.message_type,
        "content_type": message.content_type,
        "status": "sent",
        "content_attributes": message.content_attributes,
        "created_at": message.created_at as i64,
        "private": message.private,
        "source_id": message.source_id,
    });
    if let Value::Object(map) = &mut value {
        if let Some(echo) = &message.echo_id {
            map.insert("echo_id".into(), echo.clone());
        }
        if let Some(sender) = sender_push(account, message.author) {
            map.insert("sender".into(), sender);
        }
        if !message.attachments.is_empty() {
            map.insert(
                "attachments".into(),
                Value::Array(attachments(account, message)),
            );
        }
    }
    value
}

/// `Conversations::EventDataPresenter#push_data` (conversation bodies).
pub(crate) fn conversation_push(account: &Account, conversation: &Conversation) -> Value {
    let inbox = account.inboxes.get(&conversation.inbox_id);
    let contact = account.contacts.get(&conversation.contact_id);
    let messages: Vec<Value> = account
        .last_public_message(conversation.id)
        .map(|m| message_push(account, m))
        .into_iter()
        .collect();
    let assignee = conversation
        .assignee_id
        .and_then(|id| account.agents.get(&id))
        .map(user_push);
    json!({
        "additional_attributes": {},
        "can_reply": account.can_reply(conversation),
        "channel": inbox.map(|i| i.channel_type.clone()),
        "contact_inbox": {
            "id": conversation.contact_inbox_id,
            "contact_id": conversation.contact_id,
            "inbox_id": conversation.inbox_id,
            "source_id": conversation.source_id,
            "created_at": iso(conversation.created_at as f64),
            "updated_at": iso(conversation.created_at as f64),
            "hmac_verified": false,
            "pubsub_token": format!("sim-pubsub-{}", conversation.contact_inbox_id),
        },
        "id": conversation.id,
        "inbox_id": conversation.inbox_id,
        "messages": messages,
        "labels": conversation.labels,
        "meta": {
            "sender": contact.map(contact_push),
            "assignee_type": assignee.as_ref().map(|_| "User"),
            "assignee": assignee,
            "team": null,
            "hmac_verified": false
        },
        "status": conversation.status,
        "custom_attributes": conversation.custom_attributes,
        "snoozed_until": null,
        "unread_count": 0,
        "first_reply_created_at": null,
        "priority": conversation.priority,
        "waiting_since": 0,
        "agent_last_seen_at": 0,
        "contact_last_seen_at": 0,
        "last_activity_at": conversation.last_activity_at,
        "timestamp": conversation.last_activity_at,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
    })
}

/// API `_conversation` partial: push data plus `account_id` and friends.
pub(crate) fn conversation_api(account: &Account, conversation: &Conversation) -> Value {
    let mut value = conversation_push(account, conversation);
    if let Value::Object(map) = &mut value {
        // The API partial names the channel under `meta`, not at the top.
        let channel = map.remove("channel").unwrap_or(Value::Null);
        if let Some(Value::Object(meta)) = map.get_mut("meta") {
            meta.insert("channel".into(), channel);
        }
        map.insert("account_id".into(), json!(account.id));
        map.insert("muted".into(), json!(false));
        map.insert(
            "uuid".into(),
            json!(format!("00000000-0000-4000-8000-{:012}", conversation.id)),
        );
    }
    value
}

/// Top-level `message_created` / `message_updated` body (`Message#webhook_data`).
pub(crate) fn message_webhook(account: &Account, message: &Message, event: &str) -> Value {
    let conversation = account.conversations.get(&message.conversation_id);
    let inbox = conversation.and_then(|c| account.inboxes.get(&c.inbox_id));
    let mut value = json!({
        "account": account_ref(account),
        "additional_attributes": {},
        "content_attributes": message.content_attributes,
        "content_type": message.content_type,
        "content": message.content,
        "conversation": conversation.map(|c| conversation_push(account, c)),
        "created_at": iso(message.created_at),
        "id": message.id,
        "inbox": inbox.map(|i| json!({"id": i.id, "name": i.name})),
        "message_type": message.type_name(),
        "private": message.private,
        "sender": sender_webhook(account, message.author),
        "source_id": message.source_id,
    });
    if let Value::Object(map) = &mut value {
        if !message.attachments.is_empty() {
            map.insert(
                "attachments".into(),
                Value::Array(attachments(account, message)),
            );
        }
        map.insert("event".into(), json!(event));
    }
    value
}

/// Conversation event body, with `changed_attributes` when given.
pub(crate) fn conversation_event(
    account: &Account,
    conversation: &Conversation,
    event: &str,
    changed: Option<Value>,
) -> Value {
    let mut value = conversation_push(account, conversation);
    if let Value::Object(map) = &mut value {
        map.insert("event".into(), json!(event));
        if event != "conversation_created" {
            map.insert("changed_attributes".into(), changed.unwrap_or(Value::Null));
        }
    }
    value
}

/// contact_created / contact_updated body.
pub(crate) fn contact_event(
    account: &Account,
    contact: &Contact,
    event: &str,
    changed: Option<Value>,
) -> Value {
    let mut value = contact_webhook(account, contact);
    if let Value::Object(map) = &mut value {
        map.insert("event".into(), json!(event));
        if let Some(changed) = changed {
            map.insert("changed_attributes".into(), changed);
        }
    }
    value
}

/// One `changed_attributes` element.
pub(crate) fn change(key: &str, previous: Value, current: Value) -> Value {
    let mut element = Map::new();
    element.insert(
        key.to_owned(),
        json!({"previous_value": previous, "current_value": current}),
    );
    Value::Object(element)
}
