//! ChatwootClient against the Chatwoot simulator over real HTTP (spec §4.2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chatwoot::{
    ChatwootClient, ChatwootConfig, ChatwootError, ContactUpdate, ConversationQuery,
    ConversationStatus, MessageType, NewMessage, SenderKind,
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use sim_chatwoot::{ChatwootSim, NewContact, RunningChatwoot, SimConfig};

async fn setup() -> (RunningChatwoot, ChatwootClient, u64) {
    let sim = ChatwootSim::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, &sim.api_token());
    let contact = sim
        .add_contact(NewContact {
            name: "Maria Souza".into(),
            phone_number: Some("+5511987654321".into()),
            ..NewContact::default()
        })
        .await;
    let started = sim
        .customer_starts_conversation(contact, sim.default_inbox(), "A impressora parou")
        .await
        .unwrap();
    (sim, client, started.conversation_id)
}

fn client_for(sim: &RunningChatwoot, token: &str) -> ChatwootClient {
    limited_client(sim, token, chatwoot::DEFAULT_MAX_RESPONSE_BYTES)
}

fn limited_client(sim: &RunningChatwoot, token: &str, limit: u64) -> ChatwootClient {
    ChatwootClient::new(ChatwootConfig {
        base_url: sim.base_url().parse().unwrap(),
        api_access_token: SecretString::from(token),
        account_id: sim.account_id(),
        timeout: Duration::from_secs(5),
        max_response_bytes: limit,
    })
    .unwrap()
}

fn attrs(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn create_private_note_and_reply_are_stored() {
    let (sim, client, conv) = setup().await;
    let note = client
        .create_message(
            conv,
            &NewMessage::private_note("Chamado #4321").with_source_id("glpi:4321"),
        )
        .await
        .unwrap();
    assert!(note.private);
    assert_eq!(note.message_type, MessageType::Outgoing);
    assert_eq!(note.sender.as_ref().unwrap().kind(), SenderKind::User);
    let reply = client
        .create_message(conv, &NewMessage::outgoing("Olá Maria"))
        .await
        .unwrap();

    let stored = sim.messages(conv);
    let stored_note = stored.iter().find(|m| m.id == note.id).unwrap();
    assert_eq!(stored_note.content, "Chamado #4321");
    assert!(stored_note.private);
    assert_eq!(stored_note.source_id.as_deref(), Some("glpi:4321"));
    let stored_reply = stored.iter().find(|m| m.id == reply.id).unwrap();
    assert_eq!(
        (stored_reply.message_type, stored_reply.private),
        (1, false)
    );

    let listed = client.list_messages(conv, None).await.unwrap();
    assert_eq!(listed.len(), 3);
    let after = client.list_messages(conv, Some(note.id)).await.unwrap();
    assert_eq!(
        after.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![reply.id]
    );
}

/// Outside the reply window the conversation says `can_reply: false`;
/// Chatwoot still takes a public reply, and the channel's refusal is
/// written on the message afterwards (no 422). Notes are unaffected.
#[tokio::test]
async fn a_reply_outside_the_window_is_taken_then_fails_on_the_channel() {
    let (sim, client, conv) = setup().await;
    sim.set_reply_window(conv, false).unwrap();
    let conversation = client.get_conversation(conv).await.unwrap();
    assert_eq!(conversation.can_reply, Some(false));
    let late = client
        .create_message(conv, &NewMessage::outgoing("late"))
        .await
        .unwrap();
    client
        .create_message(conv, &NewMessage::private_note("late note"))
        .await
        .unwrap();
    let stored: Vec<_> = sim
        .messages(conv)
        .into_iter()
        .filter(|m| m.content.starts_with("late"))
        .collect();
    assert_eq!(stored.len(), 2);
    let failed = stored.iter().find(|m| m.id == late.id).unwrap();
    let error = failed.content_attributes["external_error"]
        .as_str()
        .unwrap();
    assert!(error.contains("24 hours"), "{error}");
    assert!(
        stored
            .iter()
            .find(|m| m.private)
            .unwrap()
            .content_attributes
            .get("external_error")
            .is_none()
    );
}

#[tokio::test]
async fn get_and_list_conversations() {
    let (sim, client, conv) = setup().await;
    let conversation = client.get_conversation(conv).await.unwrap();
    assert_eq!(conversation.id, conv);
    assert_eq!(conversation.status, Some(ConversationStatus::Open));
    assert_eq!(conversation.account_id, Some(sim.account_id()));
    assert_eq!(
        conversation.contact().unwrap().name.as_deref(),
        Some("Maria Souza")
    );

    sim.resolve(conv).await.unwrap();
    let recent = client
        .conversations_updated_within(Duration::from_secs(600), None)
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|c| c.id).collect::<Vec<_>>(), vec![conv]);
    assert_eq!(recent[0].status, Some(ConversationStatus::Resolved));
    // Default status filter of Chatwoot is `open`; ours asks for `all` unless told.
    let open_only = client
        .list_conversations(&ConversationQuery {
            status: Some(ConversationStatus::Open),
            ..ConversationQuery::default()
        })
        .await
        .unwrap();
    assert!(open_only.payload.is_empty());
    let other_inbox = client
        .conversations_updated_within(Duration::from_secs(600), Some(99))
        .await
        .unwrap();
    assert!(other_inbox.is_empty());
}

#[tokio::test]
async fn toggle_status_changes_state() {
    let (sim, client, conv) = setup().await;
    for status in [
        ConversationStatus::Resolved,
        ConversationStatus::Pending,
        ConversationStatus::Open,
    ] {
        let change = client.toggle_status(conv, status, None).await.unwrap();
        assert_eq!(change.current_status, status);
        assert_eq!(sim.conversation(conv).unwrap().status, status.as_str());
    }
}

#[tokio::test]
async fn merge_conversation_custom_attributes_keeps_foreign_keys() {
    let (sim, client, conv) = setup().await;
    client
        .set_conversation_custom_attributes(conv, &attrs(json!({"agent_key": "keep"})))
        .await
        .unwrap();
    let merged = client
        .merge_conversation_custom_attributes(conv, &attrs(json!({"glpi_ticket_id": 4321})))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(merged),
        json!({"agent_key": "keep", "glpi_ticket_id": 4321})
    );
    assert_eq!(
        Value::Object(sim.conversation(conv).unwrap().custom_attributes),
        json!({"agent_key": "keep", "glpi_ticket_id": 4321})
    );
    // Same patch again: no write at all.
    let writes = sim.counters().custom_attribute_writes;
    client
        .merge_conversation_custom_attributes(conv, &attrs(json!({"glpi_ticket_id": 4321})))
        .await
        .unwrap();
    assert_eq!(sim.counters().custom_attribute_writes, writes);
    // null removes a key
    client
        .merge_conversation_custom_attributes(conv, &attrs(json!({"agent_key": null})))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(client.conversation_custom_attributes(conv).await.unwrap()),
        json!({"glpi_ticket_id": 4321})
    );
}

#[tokio::test]
async fn contacts_get_update_search() {
    let (sim, client, conv) = setup().await;
    let contact_id = sim.conversation(conv).unwrap().contact_id;
    let contact = client
        .merge_contact_custom_attributes(contact_id, &attrs(json!({"glpi_user_id": 157})))
        .await
        .unwrap();
    assert_eq!(contact.custom_attributes["glpi_user_id"], 157);
    client
        .update_contact(
            contact_id,
            &ContactUpdate {
                email: Some("maria@acme.example".into()),
                ..ContactUpdate::default()
            },
        )
        .await
        .unwrap();
    let stored = sim.contact(contact_id).unwrap();
    assert_eq!(stored.email.as_deref(), Some("maria@acme.example"));
    assert_eq!(stored.custom_attributes["glpi_user_id"], 157);
    let fetched = client.get_contact(contact_id).await.unwrap();
    assert_eq!(
        fetched.contact_inboxes[0].inbox.as_ref().unwrap().id,
        sim.default_inbox()
    );

    let found = client.search_contacts("+5511987654321", 1).await.unwrap();
    assert_eq!(found.meta.count, 1);
    assert_eq!(found.payload[0].id, contact_id);
    assert!(
        client
            .search_contacts("nobody", 1)
            .await
            .unwrap()
            .payload
            .is_empty()
    );

    // uniqueness clash → permanent 422
    let other = sim
        .add_contact(NewContact {
            name: "X".into(),
            email: Some("x@acme.example".into()),
            ..NewContact::default()
        })
        .await;
    let err = client
        .update_contact(
            other,
            &ContactUpdate {
                email: Some("maria@acme.example".into()),
                ..ContactUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChatwootError::Rejected { status: 422, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn error_classes() {
    let (sim, client, conv) = setup().await;
    let bad = client_for(&sim, "wrong-token");
    let err = bad.get_conversation(conv).await.unwrap_err();
    assert!(
        matches!(err, ChatwootError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let err = client.get_conversation(999_999).await.unwrap_err();
    assert!(matches!(err, ChatwootError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());

    sim.fail_next(1, 503);
    let err = client.get_conversation(conv).await.unwrap_err();
    assert!(
        matches!(err, ChatwootError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());

    sim.fail_next(1, 429);
    let err = client.get_conversation(conv).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));

    sim.drop_next(1);
    let err = client.get_conversation(conv).await.unwrap_err();
    assert!(matches!(err, ChatwootError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());

    // after the faults, the same call works
    assert_eq!(client.get_conversation(conv).await.unwrap().id, conv);

    // timeout: latency beyond the client's timeout
    let impatient = ChatwootClient::new(ChatwootConfig {
        base_url: sim.base_url().parse().unwrap(),
        api_access_token: SecretString::from(sim.api_token()),
        account_id: sim.account_id(),
        timeout: Duration::from_millis(100),
        max_response_bytes: chatwoot::DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap();
    sim.set_latency(Duration::from_millis(1500));
    let err = impatient.get_conversation(conv).await.unwrap_err();
    assert!(
        matches!(&err, ChatwootError::Transport(e) if e.is_timeout()),
        "{err:?}"
    );
    assert!(err.is_retryable());
    sim.set_latency(Duration::ZERO);

    // nothing listening
    sim.stop().await.unwrap();
    let err = client.get_conversation(conv).await.unwrap_err();
    assert!(matches!(err, ChatwootError::Transport(_)), "{err:?}");
}

/// A redirect (a compromised or misconfigured proxy in front of Chatwoot) is
/// not followed: the token never reaches the other host.
#[tokio::test]
async fn redirects_are_not_followed_with_the_token() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let elsewhere = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"id": 1}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, elsewhere).await });
    let redirecting = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let to = format!("{other}{uri}");
        async move { axum::response::Redirect::temporary(&to) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await });
    let client = ChatwootClient::new(ChatwootConfig {
        base_url: base.parse().unwrap(),
        api_access_token: SecretString::from("secret-token"),
        account_id: 1,
        timeout: Duration::from_secs(5),
        max_response_bytes: chatwoot::DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap();
    let answer = client.get_conversation(7).await;
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[tokio::test]
async fn an_answer_of_exactly_the_limit_is_read_and_one_byte_less_is_not() {
    let (sim, _, conversation) = setup().await;
    // The answer's size, as the server sends it.
    let size = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/accounts/{}/conversations/{conversation}",
            sim.base_url(),
            sim.account_id()
        ))
        .header("api-access-token", sim.api_token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len() as u64;

    let at = |limit| limited_client(&sim, &sim.api_token(), limit);
    let read = at(size).get_conversation(conversation).await.unwrap();
    assert_eq!(read.id, conversation);

    let error = at(size - 1)
        .get_conversation(conversation)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatwootError::ResponseTooLarge { limit } if limit == size - 1),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!("Chatwoot answered more than {} bytes; not read", size - 1)
    );
}
