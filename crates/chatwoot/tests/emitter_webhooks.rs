//! The simulator's emitter delivers real-shaped webhooks that this crate
//! parses and (when signed) verifies (spec §1.3, §1.4, §3.7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatwoot::{
    ChatwootClient, ChatwootConfig, ConversationStatus, Event, MessageType, NewMessage, SenderKind,
    SignatureVerifier, WebhookHeaders, is_noise_only_update,
};
use received::Received;
use secrecy::SecretString;
use serde_json::json;
use sim_chatwoot::{ChatwootSim, NewContact, ReleaseOrder, RunningChatwoot, SimConfig};
use tokio::sync::Mutex;

mod received {
    /// One webhook as the receiver saw it.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub headers: chatwoot::WebhookHeaders,
        pub body: Vec<u8>,
        pub verified: Option<Result<(), chatwoot::SignatureError>>,
    }
}

#[derive(Clone)]
struct Receiver {
    verifier: Option<SignatureVerifier>,
    seen: Arc<Mutex<Vec<Received>>>,
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers = WebhookHeaders::from_header_map(&headers);
    let verified = rx
        .verifier
        .as_ref()
        .map(|v| v.verify_headers(&headers, &body));
    let status = match &verified {
        Some(Err(_)) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    };
    rx.seen.lock().await.push(Received {
        headers,
        body: body.to_vec(),
        verified,
    });
    status
}

async fn start_receiver(secret: Option<&str>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Receiver {
        verifier: secret.map(|s| SignatureVerifier::new(SecretString::from(s))),
        seen: seen.clone(),
    };
    let app = Router::new()
        .route("/hooks/chatwoot", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/chatwoot"), seen)
}

async fn events(seen: &Arc<Mutex<Vec<Received>>>) -> Vec<Event> {
    seen.lock()
        .await
        .iter()
        .map(|r| Event::from_slice(&r.body).unwrap())
        .collect()
}

/// Polls until `n` webhooks arrived (API side effects are asynchronous).
async fn wait_for(seen: &Arc<Mutex<Vec<Received>>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().await.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} webhooks",
            seen.lock().await.len()
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn sim_with_contact() -> (RunningChatwoot, u64) {
    let sim = ChatwootSim::start(SimConfig::default()).await.unwrap();
    let contact = sim
        .add_contact(NewContact {
            name: "Maria Souza".into(),
            email: Some("maria@acme.example".into()),
            phone_number: Some("+5511987654321".into()),
            ..NewContact::default()
        })
        .await;
    (sim, contact)
}

#[tokio::test]
async fn signed_life_cycle_parses_and_verifies() {
    let (url, seen) = start_receiver(Some("whsec-test")).await;
    let (sim, contact) = sim_with_contact().await;
    sim.webhook_target(url, Some("whsec-test".into()));

    let started = sim
        .customer_starts_conversation(contact, sim.default_inbox(), "A impressora parou")
        .await
        .unwrap();
    let conv = started.conversation_id;
    sim.agent_replies(conv, "carlos.lima@acme.example", "Vamos ver")
        .await
        .unwrap();
    sim.agent_private_note(conv, "Verificar toner")
        .await
        .unwrap();
    sim.resolve(conv).await.unwrap();

    let received = seen.lock().await.clone();
    assert!(
        received.iter().all(|r| r.verified == Some(Ok(()))),
        "{received:#?}"
    );
    assert!(received.iter().all(|r| r.headers.delivery_id.is_some()));
    let parsed = events(&seen).await;
    let names: Vec<&str> = parsed.iter().map(Event::name).collect();
    assert_eq!(
        names,
        vec![
            "conversation_created",
            "message_created",
            "contact_updated",
            "message_created",
            "message_created",
            "conversation_status_changed",
            "conversation_updated"
        ]
    );
    let Event::MessageCreated(first) = &parsed[1] else {
        panic!()
    };
    assert_eq!(first.id, started.message_id);
    assert_eq!(first.message_type, MessageType::Incoming);
    assert_eq!(first.sender_kind(), Some(SenderKind::Contact));
    assert_eq!(
        parsed[1].contact().unwrap().email.as_deref(),
        Some("maria@acme.example")
    );
    assert_eq!(parsed[1].account_id(), Some(sim.account_id()));
    assert_eq!(parsed[1].inbox_id(), Some(sim.default_inbox()));
    let Event::ContactUpdated(noise) = &parsed[2] else {
        panic!()
    };
    assert!(is_noise_only_update(&noise.changed_attributes, &[]));
    let Event::MessageCreated(reply) = &parsed[3] else {
        panic!()
    };
    assert_eq!(
        reply.sender.as_ref().unwrap().email.as_deref(),
        Some("carlos.lima@acme.example")
    );
    assert!(!reply.private);
    let Event::MessageCreated(note) = &parsed[4] else {
        panic!()
    };
    assert!(note.private);
    let Event::ConversationStatusChanged(status) = &parsed[5] else {
        panic!()
    };
    assert_eq!(
        status.conversation.status,
        Some(ConversationStatus::Resolved)
    );
    assert!(status.changed_attributes.is_empty());
    let Event::ConversationUpdated(updated) = &parsed[6] else {
        panic!()
    };
    assert_eq!(
        updated
            .changed_attributes
            .get("status")
            .unwrap()
            .current_value,
        "resolved"
    );

    // a customer message on a resolved conversation reopens it
    sim.customer_sends(conv, "voltou a falhar").await.unwrap();
    assert_eq!(sim.conversation(conv).unwrap().status, "open");
}

#[tokio::test]
async fn wrong_secret_is_refused_by_the_verifier() {
    let (url, seen) = start_receiver(Some("the-right-secret")).await;
    let (sim, contact) = sim_with_contact().await;
    sim.webhook_target(url, Some("a-wrong-secret".into()));
    sim.customer_starts_conversation(contact, sim.default_inbox(), "oi")
        .await
        .unwrap();
    let received = seen.lock().await.clone();
    assert!(!received.is_empty());
    assert!(
        received
            .iter()
            .all(|r| r.verified == Some(Err(chatwoot::SignatureError::Mismatch)))
    );
    // contact_created went out before a target existed and was lost.
    let deliveries = sim.deliveries();
    assert_eq!(deliveries[0].event, "contact_created");
    assert_eq!(deliveries[0].status, None);
    assert!(
        deliveries[1..].iter().all(|d| d.status == Some(401)),
        "{deliveries:#?}"
    );
}

#[tokio::test]
async fn unsigned_deliveries_have_no_signature_headers() {
    let (url, seen) = start_receiver(None).await;
    let (sim, contact) = sim_with_contact().await;
    sim.webhook_target(url, None);
    sim.customer_starts_conversation(contact, sim.default_inbox(), "oi")
        .await
        .unwrap();
    let received = seen.lock().await.clone();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.headers == WebhookHeaders::default())
    );
}

#[tokio::test]
async fn api_writes_echo_as_webhooks() {
    let (url, seen) = start_receiver(Some("s")).await;
    let (sim, contact) = sim_with_contact().await;
    let conv = sim
        .customer_starts_conversation(contact, sim.default_inbox(), "oi")
        .await
        .unwrap()
        .conversation_id;
    sim.webhook_target(url, Some("s".into()));
    let client = ChatwootClient::new(ChatwootConfig {
        base_url: sim.base_url().parse().unwrap(),
        api_access_token: SecretString::from(sim.api_token()),
        account_id: sim.account_id(),
        timeout: Duration::from_secs(5),
        max_response_bytes: chatwoot::DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap();
    let note = client
        .create_message(conv, &NewMessage::private_note("Chamado #1"))
        .await
        .unwrap();
    wait_for(&seen, 1).await;
    let mut patch = serde_json::Map::new();
    patch.insert("glpi_ticket_id".into(), json!(1));
    client
        .merge_conversation_custom_attributes(conv, &patch)
        .await
        .unwrap();
    wait_for(&seen, 2).await;

    let parsed = events(&seen).await;
    let Event::MessageCreated(echo) = &parsed[0] else {
        panic!("{parsed:?}")
    };
    assert_eq!(echo.id, note.id);
    // A User token: Chatwoot makes its owner the sender.
    assert_eq!(echo.sender_kind(), Some(SenderKind::User));
    assert_eq!(echo.sender.as_ref().unwrap().id, sim.token_user_id());
    let Event::ConversationUpdated(updated) = &parsed[1] else {
        panic!("{parsed:?}")
    };
    assert!(is_noise_only_update(
        &updated.changed_attributes,
        &["glpi_ticket_id"]
    ));
    assert!(!is_noise_only_update(&updated.changed_attributes, &[]));
}

#[tokio::test]
async fn redelivery_and_out_of_order() {
    let (url, seen) = start_receiver(Some("s")).await;
    let (sim, contact) = sim_with_contact().await;
    sim.webhook_target(url, Some("s".into()));
    let conv = sim
        .customer_starts_conversation(contact, sim.default_inbox(), "oi")
        .await
        .unwrap()
        .conversation_id;
    let first = sim.deliveries()[0].clone();
    assert!(sim.redeliver(&first.delivery_id).await);
    let received = seen.lock().await.clone();
    let dup = received.last().unwrap();
    assert_eq!(
        dup.headers.delivery_id.as_deref(),
        Some(first.delivery_id.as_str())
    );
    assert_eq!(dup.body, first.body.as_bytes());
    assert_eq!(dup.verified, Some(Ok(())));
    assert!(!sim.redeliver("no-such-delivery").await);

    // held messages released in reverse order
    let before = seen.lock().await.len();
    sim.hold_webhooks();
    let m1 = sim.customer_sends(conv, "um").await.unwrap();
    let m2 = sim.customer_sends(conv, "dois").await.unwrap();
    assert_eq!(seen.lock().await.len(), before);
    sim.release_webhooks(ReleaseOrder::Reversed).await;
    let ids: Vec<u64> = events(&seen)
        .await
        .into_iter()
        .skip(before)
        .filter_map(|e| match e {
            Event::MessageCreated(m) => Some(m.id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![m2, m1]);

    // raw emit, out of order
    let before = seen.lock().await.len();
    sim.emit_out_of_order(vec![
        json!({"event": "conversation_typing_on", "n": 1}),
        json!({"event": "webwidget_triggered", "n": 2}),
    ])
    .await;
    let names: Vec<String> = events(&seen)
        .await
        .iter()
        .skip(before)
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(names, vec!["webwidget_triggered", "conversation_typing_on"]);
}
