//! Every recorded Chatwoot payload parses (spec §3.7, fixtures in
//! tests/fixtures/chatwoot, one coherent scenario: account 1, inbox 3,
//! contact 1201, conversation 482).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatwoot::api::{ContactSearchPage, StatusChange};
use chatwoot::model::Message;
use chatwoot::{Contact, ConversationStatus, Event, MessageType, SenderKind, is_noise_only_update};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/chatwoot/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn event(name: &str) -> Event {
    Event::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const OWN: &[&str] = &["glpi_ticket_id", "glpi_ticket_url", "glpi_user_id"];

#[test]
fn every_webhook_fixture_parses_to_its_event() {
    let expected = [
        ("conversation_created.json", "conversation_created"),
        ("conversation_updated.json", "conversation_updated"),
        (
            "conversation_status_changed.json",
            "conversation_status_changed",
        ),
        ("message_created.incoming.json", "message_created"),
        (
            "message_created.incoming_attachment.json",
            "message_created",
        ),
        ("message_created.outgoing.json", "message_created"),
        ("message_created.private_note.json", "message_created"),
        ("message_updated.json", "message_updated"),
        ("contact_created.json", "contact_created"),
        ("contact_updated.json", "contact_updated"),
        ("conversation_typing_on.json", "conversation_typing_on"),
        ("webwidget_triggered.json", "webwidget_triggered"),
        (
            "agent_bot/conversation_resolved.json",
            "conversation_resolved",
        ),
    ];
    for (file, name) in expected {
        let parsed = event(file);
        assert_eq!(parsed.name(), name, "{file}");
    }
    // The manifest lists exactly these webhook bodies that exist on disk.
    let manifest: serde_json::Value = serde_json::from_slice(&fixture("_manifest.json")).unwrap();
    for entry in manifest["files"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let kind = entry["kind"].as_str().unwrap_or("");
        if kind.ends_with("webhook") {
            assert!(
                expected.iter().any(|(f, _)| *f == file),
                "unchecked fixture {file}"
            );
        }
    }
}

#[test]
fn ignored_events_are_other() {
    assert_eq!(
        event("conversation_typing_on.json"),
        Event::Other("conversation_typing_on".into())
    );
    assert_eq!(
        event("webwidget_triggered.json"),
        Event::Other("webwidget_triggered".into())
    );
    assert!(matches!(
        Event::from_slice(b"{}"),
        Err(chatwoot::PayloadError::MissingEvent)
    ));
    assert!(matches!(
        Event::from_slice(b"not json"),
        Err(chatwoot::PayloadError::NotJson(_))
    ));
}

#[test]
fn conversation_created_fields_and_helpers() {
    let parsed = event("conversation_created.json");
    let Event::ConversationCreated(e) = &parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(e.conversation.id, 482);
    assert_eq!(e.conversation.inbox_id, Some(3));
    assert_eq!(e.conversation.status, Some(ConversationStatus::Open));
    assert_eq!(e.conversation.can_reply, Some(true));
    assert_eq!(e.conversation.channel.as_deref(), Some("Channel::Whatsapp"));
    assert_eq!(parsed.conversation_id(), Some(482));
    assert_eq!(parsed.inbox_id(), Some(3));
    // v4.7 conversation bodies have no account; fall back to messages[0].
    assert_eq!(parsed.account_id(), Some(1));
    let contact = parsed.contact().unwrap();
    assert_eq!(contact.id, 1201);
    assert_eq!(contact.phone_number.as_deref(), Some("+5511987654321"));
    assert_eq!(contact.email, None);
    assert_eq!(e.conversation.assignee().unwrap().id, 7);
    assert!(e.changed_attributes.is_empty());
}

#[test]
fn conversation_updated_status_diff_is_not_noise() {
    let parsed = event("conversation_updated.json");
    let Event::ConversationUpdated(e) = &parsed else {
        panic!("{parsed:?}")
    };
    let status = e.changed_attributes.get("status").unwrap();
    assert_eq!(status.previous_value, "open");
    assert_eq!(status.current_value, "resolved");
    assert!(!is_noise_only_update(&e.changed_attributes, OWN));
    assert_eq!(e.conversation.custom_attributes["glpi_ticket_id"], 4321);
    assert!(e.conversation.updated_at_seconds().unwrap() > 1_773_151_320.0);
}

#[test]
fn status_changed_has_null_diff() {
    let parsed = event("conversation_status_changed.json");
    let Event::ConversationStatusChanged(e) = &parsed else {
        panic!("{parsed:?}")
    };
    assert!(e.changed_attributes.is_empty());
    assert_eq!(e.conversation.status, Some(ConversationStatus::Resolved));
}

#[test]
fn incoming_message() {
    let parsed = event("message_created.incoming.json");
    let Event::MessageCreated(m) = &parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(m.id, 90311);
    assert_eq!(m.message_type, MessageType::Incoming);
    assert!(!m.private);
    assert_eq!(m.sender_kind(), Some(SenderKind::Contact));
    assert_eq!(parsed.conversation_id(), Some(482));
    assert_eq!(parsed.inbox_id(), Some(3));
    assert_eq!(parsed.account_id(), Some(1));
    assert_eq!(parsed.contact().unwrap().id, 1201);
    assert!(m.content.as_deref().unwrap().contains("impressora"));
    // nested message uses the integer message_type
    let nested = &m.conversation.as_ref().unwrap().messages[0];
    assert_eq!(nested.message_type, MessageType::Incoming);
    assert!(m.created_at.as_ref().unwrap().unix_seconds().is_some());
}

#[test]
fn incoming_attachment() {
    let Event::MessageCreated(m) = event("message_created.incoming_attachment.json") else {
        panic!()
    };
    assert_eq!(m.attachments.len(), 1);
    let a = &m.attachments[0];
    assert_eq!(a.file_type.as_deref(), Some("image"));
    assert_eq!(a.file_size, Some(184_233));
    assert!(
        a.data_url
            .as_deref()
            .unwrap()
            .starts_with("https://chatwoot.example.com/rails/active_storage/blobs/redirect/")
    );
    assert_eq!(a.file_name().as_deref(), Some("IMG-20260310-WA0001.jpg"));
}

#[test]
fn outgoing_reply_and_private_note() {
    let Event::MessageCreated(out) = event("message_created.outgoing.json") else {
        panic!()
    };
    assert_eq!(out.message_type, MessageType::Outgoing);
    assert!(!out.is_private_note());
    assert_eq!(out.sender_kind(), Some(SenderKind::User));
    assert_eq!(
        out.sender.as_ref().unwrap().email.as_deref(),
        Some("carlos.lima@acme.example")
    );
    // the conversation contact, not the agent
    assert_eq!(out.contact().unwrap().id, 1201);

    let Event::MessageCreated(note) = event("message_created.private_note.json") else {
        panic!()
    };
    assert!(note.is_private_note());
    assert_eq!(note.message_type, MessageType::Outgoing);
}

#[test]
fn message_updated() {
    let Event::MessageUpdated(m) = event("message_updated.json") else {
        panic!()
    };
    assert_eq!(m.id, 90315);
    assert!(!m.is_deleted());
    assert!(m.source_id.as_deref().unwrap().starts_with("wamid."));
}

#[test]
fn contact_events() {
    let created = event("contact_created.json");
    let Event::ContactCreated(c) = &created else {
        panic!()
    };
    assert_eq!(c.contact.id, 1201);
    assert_eq!(created.account_id(), Some(1));
    assert_eq!(
        created.contact().unwrap().name.as_deref(),
        Some("Maria Souza")
    );

    let updated = event("contact_updated.json");
    let Event::ContactUpdated(u) = &updated else {
        panic!()
    };
    // The fixture is the echo of our own glpi_user_id write: noise.
    assert!(is_noise_only_update(&u.changed_attributes, OWN));
    assert!(!is_noise_only_update(&u.changed_attributes, &[]));
    assert_eq!(u.contact.custom_attributes["glpi_user_id"], 157);
}

#[test]
fn api_responses_parse() {
    let msg: Message =
        serde_json::from_slice(&fixture("api/create_message_response.json")).unwrap();
    assert_eq!(msg.id, 90313);
    assert_eq!(msg.message_type, MessageType::Outgoing);
    assert!(msg.private);
    assert_eq!(msg.sender.as_ref().unwrap().kind(), SenderKind::AgentBot);

    let activity: Message = serde_json::from_slice(&fixture("api/message_activity.json")).unwrap();
    assert_eq!(activity.message_type, MessageType::Activity);

    let search: ContactSearchPage =
        serde_json::from_slice(&fixture("api/contact_search_response.json")).unwrap();
    assert_eq!(search.meta.count, 1);
    assert_eq!(
        search.payload[0].contact_inboxes[0]
            .inbox
            .as_ref()
            .unwrap()
            .id,
        3
    );

    let update: serde_json::Value =
        serde_json::from_slice(&fixture("api/contact_update_response.json")).unwrap();
    let contact: Contact = serde_json::from_value(update["payload"].clone()).unwrap();
    assert_eq!(contact.custom_attributes["glpi_user_id"], 157);

    let toggle: serde_json::Value =
        serde_json::from_slice(&fixture("api/toggle_status_response.json")).unwrap();
    let change: StatusChange = serde_json::from_value(toggle["payload"].clone()).unwrap();
    assert_eq!(change.current_status, ConversationStatus::Resolved);
    assert_eq!(change.conversation_id, 482);
}
