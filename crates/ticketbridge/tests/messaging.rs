#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Messaging channels end to end: real HTTP into ticketbridge, tickets in the
//! GLPI simulator, callbacks into a small receiver on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::Sha256;
use sim::glpi::{ActorKind, GlpiSim, NewUser, RunningSim, SimConfig};
use store::{JobFilter, JobStatus, Store};
use ticketbridge::testkit::{TestApp, wait_for};

const KEY: &str = "channel-key-1";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DEADLINE: Duration = Duration::from_secs(20);

/// Options of the `whats` source under test, as TOML lines.
fn config(sim: &RunningSim, source_lines: &str) -> config::Config {
    config_with_engine(sim, "", source_lines)
}

/// [`config`] with extra `[engine]` lines.
fn config_with_engine(sim: &RunningSim, engine_lines: &str, source_lines: &str) -> config::Config {
    config_as(sim, "glpi", engine_lines, source_lines)
}

/// [`config_with_engine`] with the API token of the simulator's user `login`.
fn config_as(
    sim: &RunningSim,
    login: &str,
    engine_lines: &str,
    source_lines: &str,
) -> config::Config {
    let text = format!(
        r#"
[engine]
{attempts}
{engine_lines}

[targets.glpi]
kind = "glpi"
url = "{url}"
app_token = "{app}"
user_token = "{user}"

[sources.whats]
kind = "messaging"
target = "glpi"
api_keys = ["{KEY}"]
default_country = "BR"
max_wait = "10s"
{private_hosts}
{window}
{status_wait}
{source_lines}
"#,
        // The tests' file servers are on loopback, as a gateway on the LAN would be.
        private_hosts = if source_lines.contains("allow_private_attachment_hosts") {
            ""
        } else {
            "allow_private_attachment_hosts = true"
        },
        // A live status read on a busy machine can take a while; only the
        // test of a slow help desk wants the wait to run out.
        status_wait = if source_lines.contains("status_wait") {
            ""
        } else {
            "status_wait = \"10s\""
        },
        window = if source_lines.contains("merge_window") {
            ""
        } else {
            "merge_window = 1500"
        },
        attempts = if engine_lines.contains("max_attempts") {
            ""
        } else {
            "max_attempts = 10"
        },
        url = sim.base_url(),
        app = sim.app_token(),
        user = sim.user_token(login).unwrap(),
    );
    config::load_str(&text, Vec::new()).unwrap()
}

async fn start(source_lines: &str) -> (RunningSim, TestApp, tempfile::TempDir) {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, dir) = store::testing::fresh_sqlite().await;
    let app = TestApp::spawn(config(&sim, source_lines), store)
        .await
        .unwrap();
    (sim, app, dir)
}

async fn send(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/messages"))
        .header("X-API-Key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message(conversation: &str, id: &str, text: &str) -> Value {
    json!({"conversation_id": conversation, "message_id": id, "phone": "+55 11 98765-4321",
        "name": "Ana Souza", "text": text})
}

/// Waits until no job of the conversation is pending or running (flush
/// jobs scheduled in the future count as pending).
async fn settled(app: &TestApp, conversation: &str) {
    let key = messaging::ordering_key("whats", conversation);
    wait_for("the conversation's jobs to finish", DEADLINE, || async {
        let jobs = app
            .store
            .jobs(&JobFilter {
                ordering_key: Some(key.clone()),
                limit: Some(1000),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        jobs.iter()
            .all(|j| matches!(j.status, JobStatus::Succeeded))
            .then_some(())
    })
    .await
    .unwrap();
}

/// The dead letters of the store.
async fn dead_jobs(app: &TestApp) -> Vec<store::Job> {
    app.store
        .jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            ..JobFilter::default()
        })
        .await
        .unwrap()
}

/// The users asking for `ticket`.
fn requester_ids(ticket: &sim::glpi::SimTicket) -> Vec<u64> {
    ticket
        .actors
        .iter()
        .filter(|a| a.kind == ActorKind::Requester)
        .map(|a| a.users_id)
        .collect()
}

async fn tickets_count(sim: &RunningSim, n: usize) {
    wait_for(&format!("{n} ticket(s)"), DEADLINE, || async {
        (sim.tickets().len() == n).then_some(())
    })
    .await
    .unwrap();
}

fn positions(content: &str, texts: &[String]) -> Vec<usize> {
    texts
        .iter()
        .map(|t| {
            content
                .find(t.as_str())
                .unwrap_or_else(|| panic!("{t} missing in {content}"))
        })
        .collect()
}

#[tokio::test]
async fn a_burst_of_ten_becomes_one_ticket_with_every_message_in_order() {
    // Ten answers in a row on a busy machine: a window wide enough that none
    // of the gaps closes it.
    let (sim, app, _dir) = start("merge_window = 5000").await;
    let texts: Vec<String> = (0..10)
        .map(|i| format!("part number {i:02} of my problem"))
        .collect();
    for (i, text) in texts.iter().enumerate() {
        let (status, body) = send(&app, message("conv-a", &format!("m{i}"), text)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["conversation"], "conv-a");
    }
    tickets_count(&sim, 1).await;
    settled(&app, "conv-a").await;
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1);
    let at = positions(&tickets[0].content, &texts);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order: {at:?}");
    assert_eq!(tickets[0].name, "part number 00 of my problem");
    // The link and the stored state name the ticket.
    let state = app_state(&app, "conv-a").await;
    assert_eq!(state["ticket"]["id"].as_u64(), Some(tickets[0].id));
    assert_eq!(state["buffer"], json!([]));
    app.stop().await;
}

async fn app_state(app: &TestApp, conversation: &str) -> Value {
    app.store
        .kv_get(
            messaging::state::KV_NAMESPACE,
            &format!("whats/{conversation}"),
        )
        .await
        .unwrap()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn messages_in_two_windows_become_two_tickets() {
    let (sim, app, _dir) = start("followups = false").await;
    send(&app, message("conv-b", "b1", "first burst one")).await;
    send(&app, message("conv-b", "b2", "first burst two")).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-b").await;
    let (_, answer) = send(&app, message("conv-b", "b3", "second burst one")).await;
    // The answer names no ticket: this message opens the next one.
    assert_eq!(answer["ticket"], Value::Null, "{answer}");
    tickets_count(&sim, 2).await;
    settled(&app, "conv-b").await;
    let mut tickets = sim.tickets();
    tickets.sort_by_key(|t| t.id);
    assert_eq!(tickets.len(), 2);
    assert!(tickets[0].content.contains("first burst two"));
    assert!(!tickets[0].content.contains("second burst"));
    assert!(tickets[1].content.contains("second burst one"));
    assert!(!tickets[1].content.contains("first burst"));
    app.stop().await;
}

#[tokio::test]
async fn duplicate_message_ids_are_merged_once() {
    let (sim, app, _dir) = start("").await;
    let (_, first) = send(&app, message("conv-c", "same", "only once please")).await;
    assert_eq!(first["duplicate"], false);
    for _ in 0..3 {
        let (status, again) = send(&app, message("conv-c", "same", "only once please")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(again["duplicate"], true);
    }
    send(&app, message("conv-c", "other", "and another line")).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-c").await;
    let content = &sim.tickets()[0].content;
    assert_eq!(content.matches("only once please").count(), 1, "{content}");
    assert!(content.contains("and another line"));
    app.stop().await;
}

#[tokio::test]
async fn a_restart_during_the_window_still_makes_exactly_one_ticket() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    // A window long enough that a slow send on a loaded machine does not close
    // it between two of the three messages.
    let cfg = config(&sim, "merge_window = 4000");
    let app = TestApp::spawn(cfg.clone(), store.clone()).await.unwrap();
    for i in 0..3 {
        send(
            &app,
            message("conv-d", &format!("d{i}"), &format!("before restart {i}")),
        )
        .await;
    }
    // Every message is in the durable buffer before the stop.
    wait_for("three buffered messages", DEADLINE, || async {
        let state = app_state(&app, "conv-d").await;
        (state["buffer"].as_array().map(Vec::len) == Some(3)).then_some(())
    })
    .await
    .unwrap();
    app.stop().await;
    let app = TestApp::spawn(cfg, store).await.unwrap();
    tickets_count(&sim, 1).await;
    settled(&app, "conv-d").await;
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1);
    for i in 0..3 {
        assert!(tickets[0].content.contains(&format!("before restart {i}")));
    }
    app.stop().await;
}

#[tokio::test]
async fn later_messages_are_followups_until_the_ticket_is_closed() {
    // Statuses are trusted for 1 ms only, so the solve below is seen at once.
    let (sim, app, _dir) = start("status_ttl = 1").await;
    send(&app, message("conv-e", "e1", "my screen is black")).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-e").await;
    let ticket = sim.tickets()[0].id;
    let (_, answer) = send(&app, message("conv-e", "e2", "still black after reboot")).await;
    assert_eq!(answer["ticket"]["id"].as_u64(), Some(ticket));
    wait_for("the followup", DEADLINE, || async {
        sim.followups(ticket)
            .iter()
            .any(|f| f.content.contains("still black after reboot"))
            .then_some(())
    })
    .await
    .unwrap();
    settled(&app, "conv-e").await;
    assert_eq!(sim.tickets().len(), 1);
    // A repeat of the followup's message id adds nothing.
    send(&app, message("conv-e", "e2", "still black after reboot")).await;

    // Waiting for the customer (4), who answers: a followup, and the ticket
    // is back in progress.
    assert!(sim.set_ticket_status(ticket, 4));
    send(&app, message("conv-e", "e2b", "the cable was loose")).await;
    wait_for("the ticket back in progress", DEADLINE, || async {
        let t = sim.ticket(ticket)?;
        (t.status != 4).then_some(t.status)
    })
    .await
    .unwrap();
    settled(&app, "conv-e").await;
    assert!(
        sim.followups(ticket)
            .iter()
            .any(|f| f.content.contains("the cable was loose"))
    );
    assert_eq!(sim.tickets().len(), 1);

    // Solved: the customer's answer reopens it with a followup, as GLPI
    // does for a requester's own followup.
    assert!(sim.set_ticket_status(ticket, 5));
    let (_, answer) = send(&app, message("conv-e", "e2c", "it broke again")).await;
    assert_eq!(answer["ticket"]["id"].as_u64(), Some(ticket), "{answer}");
    wait_for("the solved ticket reopened", DEADLINE, || async {
        let t = sim.ticket(ticket)?;
        (t.status != 5).then_some(t.status)
    })
    .await
    .unwrap();
    settled(&app, "conv-e").await;
    assert!(
        sim.followups(ticket)
            .iter()
            .any(|f| f.content.contains("it broke again"))
    );
    assert_eq!(sim.tickets().len(), 1);

    // Closed: the next message opens a new ticket, which names the old one,
    // and its answer does not name the closed one (the cached status has
    // expired: it is read again).
    assert!(sim.set_ticket_status(ticket, 6));
    let (_, answer) = send(&app, message("conv-e", "e3", "another problem now")).await;
    assert_eq!(answer["ticket"], Value::Null, "{answer}");
    tickets_count(&sim, 2).await;
    settled(&app, "conv-e").await;
    let newest = sim.tickets().into_iter().max_by_key(|t| t.id).unwrap();
    assert_ne!(newest.id, ticket);
    assert!(newest.content.contains("another problem now"));
    assert!(
        newest.content.contains(&format!("#{ticket}")),
        "{}",
        newest.content
    );
    let old_followups = sim.followups(ticket);
    assert_eq!(old_followups.len(), 3, "{old_followups:?}");
    assert!(
        !old_followups
            .iter()
            .any(|f| f.content.contains("another problem"))
    );
    app.stop().await;
}

#[tokio::test]
async fn handoff_mode_waits_for_the_handoff_and_answers_with_the_ticket() {
    let (sim, app, _dir) = start("open_on = \"handoff\"\nhandoff_wait = \"8s\"").await;
    for i in 0..3 {
        send(
            &app,
            message(
                "conv-f",
                &format!("f{i}"),
                &format!("talking to the bot {i}"),
            ),
        )
        .await;
    }
    wait_for("three buffered messages", DEADLINE, || async {
        let state = app_state(&app, "conv-f").await;
        (state["buffer"].as_array().map(Vec::len) == Some(3)).then_some(())
    })
    .await
    .unwrap();
    settled(&app, "conv-f").await;
    assert!(sim.tickets().is_empty(), "no ticket before the handoff");
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/conversations/conv-f/handoff"))
        .header("Authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(body["ticket"]["id"].as_u64(), Some(tickets[0].id));
    assert!(
        body["ticket"]["url"]
            .as_str()
            .unwrap()
            .contains(&format!("id={}", tickets[0].id))
    );
    for i in 0..3 {
        assert!(
            tickets[0]
                .content
                .contains(&format!("talking to the bot {i}"))
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn messages_the_bot_handled_alone_do_not_join_a_later_handoff() {
    let (sim, app, _dir) =
        start("open_on = \"handoff\"\nhandoff_wait = \"8s\"\nhandoff_session = \"1500ms\"").await;
    send(&app, message("conv-s", "s1", "what are your opening hours")).await;
    wait_for("the bot's conversation buffered", DEADLINE, || async {
        let state = app_state(&app, "conv-s").await;
        (state["buffer"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await
    .unwrap();
    // The bot answered; the customer comes back later with a real problem.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    send(&app, message("conv-s", "s2", "the printer is on fire")).await;
    wait_for("a new session of one message", DEADLINE, || async {
        let state = app_state(&app, "conv-s").await;
        let buffer = state["buffer"].as_array()?;
        (buffer.len() == 1 && buffer[0]["message_id"] == "s2").then_some(())
    })
    .await
    .unwrap();
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/conversations/conv-s/handoff"))
        .header("Authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1);
    assert!(tickets[0].content.contains("the printer is on fire"));
    assert!(
        !tickets[0].content.contains("opening hours"),
        "{}",
        tickets[0].content
    );

    // A handoff long after the last message finds nothing to open.
    send(&app, message("conv-t", "t1", "hello bot")).await;
    wait_for("one buffered message", DEADLINE, || async {
        let state = app_state(&app, "conv-t").await;
        (state["buffer"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/conversations/conv-t/handoff"))
        .header("Authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "nothing_to_hand_off", "{body}");
    settled(&app, "conv-t").await;
    assert_eq!(sim.tickets().len(), 1, "no ticket from the stale session");
    app.stop().await;
}

#[tokio::test]
async fn requester_is_matched_by_phone_in_another_format_and_decides_the_entity() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let company = sim.add_entity("Acme Ltda", 0, None);
    let other = sim.add_entity("Default place", 0, None);
    let mut user = NewUser::new("ana");
    user.phone2 = Some("(11) 98765-4321".to_owned());
    user.entities_id = company;
    let ana = sim.add_user(user);
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let cfg = config(
        &sim,
        &format!("entity = {other}\nentity_from_requester = true"),
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    send(
        &app,
        json!({"conversation_id": "conv-g", "message_id": "g1",
        "phone": "5511987654321@s.whatsapp.net", "name": "Ana", "text": "hello"}),
    )
    .await;
    tickets_count(&sim, 1).await;
    let ticket = sim.tickets().remove(0);
    let requesters = requester_ids(&ticket);
    assert_eq!(requesters, vec![ana]);
    assert_eq!(ticket.entities_id, company);
    let users_before = sim.users().len();

    // Unknown phone: a user is created in the configured entity.
    send(
        &app,
        json!({"conversation_id": "conv-h", "message_id": "h1",
        "phone": "21 99876-5432", "name": "Bruno Lima", "text": "new here"}),
    )
    .await;
    tickets_count(&sim, 2).await;
    let users = sim.users();
    assert_eq!(users.len(), users_before + 1);
    let bruno = users.iter().max_by_key(|u| u.id).unwrap();
    assert!(
        [&bruno.phone, &bruno.phone2, &bruno.mobile]
            .iter()
            .any(|p| p.as_deref().is_some_and(|p| p.contains("21998765432"))),
        "{bruno:?}"
    );
    assert_eq!(bruno.entities_id, other);
    let ticket = sim.tickets().into_iter().max_by_key(|t| t.id).unwrap();
    assert!(
        ticket
            .actors
            .iter()
            .any(|a| a.kind == ActorKind::Requester && a.users_id == bruno.id)
    );
    assert_eq!(ticket.entities_id, other);
    app.stop().await;
}

#[tokio::test]
async fn open_tickets_are_listed_by_phone() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let mut user = NewUser::new("carla");
    user.mobile = Some("+55 11 91234-5678".to_owned());
    sim.add_user(user);
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = TestApp::spawn(config(&sim, "followups = false"), store)
        .await
        .unwrap();
    let msg = |conv: &str, id: &str, text: &str| json!({"conversation_id": conv, "message_id": id, "phone": "11912345678", "text": text});
    send(&app, msg("c1", "1", "first issue")).await;
    send(&app, msg("c2", "2", "second issue")).await;
    tickets_count(&sim, 2).await;
    let solved = sim.tickets().into_iter().min_by_key(|t| t.id).unwrap().id;
    sim.set_ticket_status(solved, 5);
    let response = app
        .http
        .get(app.url("/api/v1/channels/whats/tickets?phone=%2B5511912345678"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let ids: Vec<u64> = body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    let open = sim.tickets().into_iter().max_by_key(|t| t.id).unwrap().id;
    assert_eq!(ids, vec![open]);
    assert_eq!(body["tickets"][0]["status"], "new");
    app.stop().await;
}

/// A callback receiver: records every delivery.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

async fn start_receiver(addr: SocketAddr, received: Received) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let received = received.clone();
            async move {
                received.0.lock().push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// The Standard Webhooks rule, computed independently of the crate the
/// bridge signs with.
fn expected_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn the_callback_is_delivered_once_the_receiver_is_up_and_verifies() {
    // A free port with nobody listening: connection refused until started.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let lines = format!("callback_url = \"http://{addr}/hook\"\ncallback_secret = \"{SECRET}\"");
    let (sim, app, _dir) = start(&lines).await;
    send(&app, message("conv-i", "i1", "call me back")).await;
    tickets_count(&sim, 1).await;
    // The delivery fails (refused) and is retried.
    wait_for("a failed callback attempt", DEADLINE, || async {
        let jobs = app
            .store
            .jobs(&JobFilter {
                kind: Some(messaging::CALLBACK_JOB.to_owned()),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        jobs.iter()
            .any(|j| j.status == JobStatus::Pending && j.attempts > 0)
            .then_some(())
    })
    .await
    .unwrap();
    let received = Received::default();
    let receiver = start_receiver(addr, received.clone()).await;
    wait_for("the callback", DEADLINE, || async {
        (!received.0.lock().is_empty()).then_some(())
    })
    .await
    .unwrap();
    let (headers, body) = received.0.lock()[0].clone();
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap().to_owned();
    let signature = headers["webhook-signature"].to_str().unwrap().to_owned();
    assert_eq!(signature, expected_signature(&id, &timestamp, &body));
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&body, &headers)
        .unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    let ticket = sim.tickets()[0].id;
    assert_eq!(payload["type"], "ticket.created");
    assert_eq!(payload["data"]["ticket"]["id"].as_u64(), Some(ticket));
    assert_eq!(payload["data"]["conversation_id"], "conv-i");
    settled(&app, "conv-i").await;
    wait_for("the delivery job to succeed", DEADLINE, || async {
        let jobs = app
            .store
            .jobs(&JobFilter {
                kind: Some(messaging::CALLBACK_JOB.to_owned()),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        jobs.iter()
            .all(|j| j.status == JobStatus::Succeeded)
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(received.0.lock().len(), 1);
    receiver.abort();
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_uniform_errors() {
    let (_sim, app, _dir) = start("max_attachment_bytes = 8").await;
    let post = |path: &str, key: Option<&str>| {
        let mut request = app.http.post(app.url(path));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        request
    };
    let no_key = post("/api/v1/channels/whats/messages", None)
        .json(&message("x", "1", "t"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let unknown = post("/api/v1/channels/nope/messages", Some(KEY))
        .json(&message("x", "1", "t"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let text = post("/api/v1/channels/whats/messages", Some(KEY))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let invalid = post("/api/v1/channels/whats/messages", Some(KEY))
        .json(&json!({"phone": "12", "email": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    let body: Value = invalid.json().await.unwrap();
    let paths: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for p in ["conversation_id", "message_id", "phone", "email"] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    let big = post("/api/v1/channels/whats/messages", Some(KEY))
        .json(
            &json!({"conversation_id": "x", "message_id": "2", "phone": "+5511987654321",
            "text": "t", "attachments": [{"filename": "a", "data": "QUFBQUFBQUFBQUFBQUFBQQ=="}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing refused was stored.
    assert!(
        app.store
            .inbox_by_dedupe("whats", "message:2")
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn attachments_by_url_and_inline_reach_the_ticket() {
    let files = axum::Router::new()
        .route(
            "/photo.png",
            axum::routing::get(|| async { ([("content-type", "image/png")], b"PNGDATA".to_vec()) }),
        )
        // A gateway's media URL: no extension, the type only in the header.
        .route(
            "/media/3EB0C767",
            axum::routing::get(|| async {
                ([("content-type", "image/jpeg")], b"JPEGDATA".to_vec())
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let files_addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, files).await;
    });
    let (sim, app, _dir) = start("").await;
    send(
        &app,
        json!({"conversation_id": "conv-j", "message_id": "j1", "phone": "+5511987654321",
        "text": "see attached", "attachments": [
            {"url": format!("http://{files_addr}/photo.png")},
            {"url": format!("http://{files_addr}/media/3EB0C767")},
            {"mime": "application/pdf", "data": "JVBERi0="},
            {"filename": "note.txt", "mime": "text/plain", "data": "aGVsbG8="}]}),
    )
    .await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-j").await;
    let ticket = sim.tickets()[0].id;
    let docs = sim.documents();
    let linked: Vec<_> = docs
        .iter()
        .filter(|d| d.linked_to.contains(&("Ticket".to_owned(), ticket)))
        .collect();
    assert_eq!(linked.len(), 4, "{docs:?}");
    // Names without an extension got one from the type: GLPI takes a
    // document by its extension.
    let names: Vec<&str> = linked
        .iter()
        .filter_map(|d| d.filename.as_deref())
        .collect();
    assert!(names.contains(&"3EB0C767.jpg"), "{names:?}");
    assert!(names.contains(&"attachment.pdf"), "{names:?}");
    assert!(
        linked
            .iter()
            .any(|d| d.content.as_deref() == Some(b"PNGDATA".as_slice()))
    );
    assert!(
        linked
            .iter()
            .any(|d| d.content.as_deref() == Some(b"hello".as_slice()))
    );
    server.abort();
    app.stop().await;
}

/// The files of one burst are kept up to `max_files_bytes` together; the
/// ones past it are named in the ticket as not included, not held in memory.
#[tokio::test]
async fn files_past_the_bursts_budget_become_notes() {
    let (sim, app, _dir) = start("max_files_bytes = 10").await;
    let file = |name: &str| json!({"filename": name, "mime": "text/plain", "data": "aGVsbG8="});
    send(
        &app,
        json!({"conversation_id": "conv-files", "message_id": "f1", "phone": "+5511987654321",
            "text": "three notes", "attachments": [file("a.txt"), file("b.txt")]}),
    )
    .await;
    send(
        &app,
        json!({"conversation_id": "conv-files", "message_id": "f2", "phone": "+5511987654321",
            "text": "and one more", "attachments": [file("c.txt")]}),
    )
    .await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-files").await;
    let ticket = sim.tickets()[0].clone();
    let names: Vec<String> = sim
        .documents()
        .iter()
        .filter(|d| d.linked_to.contains(&("Ticket".to_owned(), ticket.id)))
        .filter_map(|d| d.filename.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.iter().any(|n| n == "c.txt"), "{names:?}");
    assert!(
        ticket.content.contains("Attachment not included: c.txt"),
        "{}",
        ticket.content
    );
    app.stop().await;
}

/// An inline file up to `max_attachment_bytes` fits in a message although
/// its base64 is larger than `server.body_limit` (1 MiB by default): the
/// source's own limit has room for it. Past that limit the 413 names the
/// setting, and a caller without a key gets 401 whatever it sends.
#[tokio::test]
async fn an_inline_file_of_the_documented_size_reaches_the_ticket() {
    let (sim, app, _dir) = start("max_attachment_bytes = 3145728").await;
    let file: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let data = base64::engine::general_purpose::STANDARD.encode(&file);
    let (status, answer) = send(
        &app,
        json!({"conversation_id": "conv-big", "message_id": "b1", "phone": "+5511987654321",
            "text": "the scan", "attachments": [
                {"filename": "scan.pdf", "mime": "application/pdf", "data": data}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    tickets_count(&sim, 1).await;
    settled(&app, "conv-big").await;
    let ticket = sim.tickets()[0].id;
    let docs = sim.documents();
    assert!(
        docs.iter()
            .any(|d| d.linked_to.contains(&("Ticket".to_owned(), ticket))
                && d.content.as_deref() == Some(file.as_slice())),
        "the file is on the ticket"
    );

    // Two such files are more than the source takes by default.
    let (status, answer) = send(
        &app,
        json!({"conversation_id": "conv-big", "message_id": "b2", "phone": "+5511987654321",
            "text": "two scans", "attachments": [
                {"filename": "a.pdf", "data": data}, {"filename": "b.pdf", "data": data}]}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("sources.whats.body_limit"), "{message}");

    // Without a key: 401, not a read of the body up to the source's limit.
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/messages"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"text":"{data}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// A burst that cannot become a ticket (nobody has the phone, requesters
/// are not created) does not take the conversation's later messages down
/// with it: the next message joins it, and with the email it brings the
/// requester is found and one ticket holds both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_failed_is_retried_with_the_next_message() {
    let (sim, app, _dir) = start("create_requesters = false\nmerge_window = 200").await;
    let ana = sim.add_user(sim::glpi::NewUser {
        login: "ana".into(),
        emails: vec!["ana@acme.com.br".into()],
        ..sim::glpi::NewUser::default()
    });
    send(&app, message("conv-f", "f1", "minha impressora parou")).await;
    wait_for("the first flush to fail for good", DEADLINE, || async {
        (!dead_jobs(&app).await.is_empty()).then_some(())
    })
    .await
    .unwrap();
    assert!(sim.tickets().is_empty());
    let mut second = message("conv-f", "f2", "meu email é ana@acme.com.br");
    second["email"] = json!("ana@acme.com.br");
    let (status, answer) = send(&app, second).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    tickets_count(&sim, 1).await;
    let ticket = &sim.tickets()[0];
    assert!(
        ticket.content.contains("minha impressora parou"),
        "{}",
        ticket.content
    );
    assert!(ticket.content.contains("meu email"), "{}", ticket.content);
    let requesters = requester_ids(ticket);
    assert_eq!(requesters, vec![ana]);
    app.stop().await;
}

/// By default an attachment URL on a private address is not fetched (a key
/// holder could otherwise make the service read internal services): the
/// ticket is made and says which file was left out and why.
#[tokio::test]
async fn attachment_urls_on_private_addresses_are_left_out_by_default() {
    let (sim, app, _dir) = start("allow_private_attachment_hosts = false").await;
    send(
        &app,
        json!({"conversation_id": "conv-s", "message_id": "s1", "phone": "+5511987654321",
        "text": "see attached", "attachments": [
            {"url": "http://169.254.169.254/latest/meta-data/iam.json"}]}),
    )
    .await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-s").await;
    let ticket = &sim.tickets()[0];
    assert!(
        ticket.content.contains("not a public address"),
        "{}",
        ticket.content
    );
    assert!(
        !ticket.content.contains("meta-data"),
        "the path is not shown: {}",
        ticket.content
    );
    assert!(sim.documents().is_empty());
    app.stop().await;
}

/// WhatsApp names many older Brazilian accounts without the mobile's ninth
/// digit; the help desk may hold the number either way. The sender is the
/// user who has it, and nobody new is created.
#[tokio::test]
async fn a_brazilian_mobile_without_its_ninth_digit_is_the_same_person() {
    let (sim, app, _dir) = start("").await;
    let mut user = NewUser::new("carla");
    user.mobile = Some("(31) 8877-6655".to_owned());
    let carla = sim.add_user(user);
    let users_before = sim.users().len();
    let (status, answer) = send(
        &app,
        json!({"conversation_id": "conv-n", "message_id": "n1",
        "phone": "553188776655@s.whatsapp.net", "text": "sem internet"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    tickets_count(&sim, 1).await;
    let ticket = sim.tickets().remove(0);
    let requesters = requester_ids(&ticket);
    assert_eq!(requesters, vec![carla]);
    assert_eq!(sim.users().len(), users_before);
    app.stop().await;
}

async fn burst_on(store: Store) {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let app = TestApp::spawn(config(&sim, ""), store).await.unwrap();
    for i in 0..5 {
        send(
            &app,
            message("conv-pg", &format!("p{i}"), &format!("postgres line {i}")),
        )
        .await;
    }
    tickets_count(&sim, 1).await;
    settled(&app, "conv-pg").await;
    assert_eq!(sim.tickets().len(), 1);
    for i in 0..5 {
        assert!(
            sim.tickets()[0]
                .content
                .contains(&format!("postgres line {i}"))
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_burst_becomes_one_ticket_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    burst_on(store).await;
}

#[tokio::test]
async fn many_one_message_conversations_in_parallel_make_one_ticket_each() {
    let (sim, app, _dir) = start("merge_window = 1\nfollowups = false").await;
    let app = Arc::new(app);
    let n = 60;
    let mut tasks = Vec::new();
    for c in 0..n {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"conversation_id": format!("single-{c}"), "message_id": "m0",
                "phone": format!("+55119{:08}", 20_000_000 + c), "name": format!("Customer {c}"),
                "text": format!("only message of conversation {c} end")});
            let (status, _) = send(&app, body).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let drained = wait_for("every job to finish", Duration::from_secs(40), || async {
        let counts = app.store.job_counts().await.unwrap();
        let busy = counts
            .iter()
            .filter(|(s, _)| matches!(s, JobStatus::Pending | JobStatus::Running))
            .map(|(_, n)| n)
            .sum::<i64>();
        (busy == 0).then_some(())
    })
    .await;
    let tickets = sim.tickets();
    assert!(
        drained.is_ok(),
        "not drained: {} tickets, jobs {:?}",
        tickets.len(),
        app.store.job_counts().await.unwrap()
    );
    assert_eq!(
        tickets.len(),
        n,
        "one ticket per conversation; jobs {:?}; dead {:?}",
        app.store.job_counts().await.unwrap(),
        app.store
            .jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                limit: Some(3),
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|j| (j.kind.clone(), j.last_error.clone()))
            .collect::<Vec<_>>()
    );
    for c in 0..n {
        let text = format!("only message of conversation {c} end");
        let holding: Vec<_> = tickets
            .iter()
            .filter(|t| t.content.contains(&text))
            .collect();
        assert_eq!(
            holding.len(),
            1,
            "conversation {c} is in exactly one ticket"
        );
    }
    let dead = dead_jobs(&app).await;
    assert!(dead.is_empty(), "dead jobs: {dead:?}");
}

/// The engine is behind (one worker, busy with a slow ticket): a second
/// message that arrives after the first one's window has closed must not be
/// merged into the first burst just because its flush has not run yet.
#[tokio::test]
async fn a_message_after_the_window_closed_is_not_merged_while_the_engine_is_behind() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let config = config_with_engine(&sim, "concurrency = 1", "merge_window = 50");
    let app = TestApp::spawn(config, store).await.unwrap();
    sim.faults().set_latency(Duration::from_millis(700));
    // Occupy the only worker with another conversation's ticket.
    send(&app, message("busy", "b1", "slow ticket")).await;
    let busy = messaging::ordering_key("whats", "busy");
    wait_for("the busy flush to run", DEADLINE, || async {
        let jobs = app
            .store
            .jobs(&JobFilter {
                ordering_key: Some(busy.clone()),
                status: Some(JobStatus::Running),
                kind: Some(messaging::FLUSH_JOB.to_owned()),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        (!jobs.is_empty()).then_some(())
    })
    .await
    .unwrap();
    send(&app, message("late", "l1", "first burst")).await;
    let sent_first = store::now_ms();
    // Let the first message's 50 ms window pass (a deadline poll on the clock).
    wait_for("the window to close", DEADLINE, || async {
        (store::now_ms() > sent_first + 200).then_some(())
    })
    .await
    .unwrap();
    send(&app, message("late", "l2", "second burst")).await;
    sim.faults().set_latency(Duration::ZERO);
    settled(&app, "late").await;
    settled(&app, "busy").await;
    let tickets: Vec<_> = sim
        .tickets()
        .into_iter()
        .filter(|t| t.content.contains("first burst"))
        .collect();
    assert_eq!(tickets.len(), 1);
    assert!(
        !tickets[0].content.contains("second burst"),
        "the late message was merged into the closed burst"
    );
    let followups = sim.followups(tickets[0].id);
    assert_eq!(followups.len(), 1);
    assert!(followups[0].content.contains("second burst"));
}

/// A user whose mobile was stored without its area code matches the end of
/// every number with those digits: it must not take the message of the user
/// who has the whole number, even though it is older (lower id).
#[tokio::test]
async fn the_whole_number_wins_over_a_number_stored_without_its_area_code() {
    let (sim, app, _dir) = start("").await;
    let mut partial = NewUser::new("sem.ddd");
    partial.mobile = Some("98877-6655".to_owned());
    let partial = sim.add_user(partial);
    let mut whole = NewUser::new("completo");
    whole.mobile = Some("+55 31 98877-6655".to_owned());
    let whole = sim.add_user(whole);
    assert!(partial < whole);
    send(
        &app,
        json!({"conversation_id": "conv-p1", "message_id": "p1",
        "phone": "5531988776655@s.whatsapp.net", "text": "sem sinal"}),
    )
    .await;
    tickets_count(&sim, 1).await;
    assert_eq!(requester_ids(&sim.tickets()[0]), vec![whole]);
    app.stop().await;
}

/// Only partial numbers on several people, and the whole number on a
/// disabled user: nobody is guessed, a new requester is created.
#[tokio::test]
async fn a_phone_that_only_partly_matches_several_people_names_none_of_them() {
    let (sim, app, _dir) = start("").await;
    let mut first = NewUser::new("parcial.um");
    first.mobile = Some("98877-6655".to_owned());
    let first = sim.add_user(first);
    let mut second = NewUser::new("parcial.dois");
    second.phone = Some("9 8877 6655".to_owned());
    let second = sim.add_user(second);
    let mut gone = NewUser::new("desativado");
    gone.mobile = Some("+55 31 98877-6655".to_owned());
    let gone = sim.add_user(gone);
    assert!(sim.set_user_active(gone, false));
    let users_before = sim.users().len();
    send(
        &app,
        json!({"conversation_id": "conv-p2", "message_id": "p1",
        "phone": "+55 31 98877-6655", "name": "Rita Alves", "text": "sem sinal"}),
    )
    .await;
    tickets_count(&sim, 1).await;
    let requesters = requester_ids(&sim.tickets()[0]);
    assert_eq!(requesters.len(), 1);
    assert!(
        ![first, second, gone].contains(&requesters[0]),
        "{requesters:?} is a guess"
    );
    assert_eq!(sim.users().len(), users_before + 1);
    app.stop().await;
}

/// The account the bridge made for a phone, disabled since by an
/// administrator, keeps its login (the phone's digits): the next message
/// from that phone is filed under a new account of its own, never under the
/// disabled one.
#[tokio::test]
async fn a_disabled_account_holding_the_phones_login_is_never_the_requester() {
    let (sim, app, _dir) = start("").await;
    let mut old = NewUser::new("5531988776655");
    old.mobile = Some("+5531988776655".to_owned());
    let old = sim.add_user(old);
    assert!(sim.set_user_active(old, false));
    let users_before = sim.users().len();
    send(
        &app,
        json!({"conversation_id": "conv-d1", "message_id": "d1",
        "phone": "5531988776655@s.whatsapp.net", "name": "Rita Alves", "text": "sem sinal"}),
    )
    .await;
    tickets_count(&sim, 1).await;
    let requesters = requester_ids(&sim.tickets()[0]);
    assert_eq!(requesters.len(), 1);
    assert_ne!(requesters[0], old, "the disabled account is the requester");
    let account = sim.user(requesters[0]).unwrap();
    assert_eq!(account.login, "5531988776655-2");
    assert!(account.is_active);
    assert_eq!(sim.users().len(), users_before + 1);
    app.stop().await;
}

/// Every followup of `ticket` holding one of `texts`, in the help desk's
/// order (by id).
fn followup_positions(sim: &RunningSim, ticket: u64, texts: &[&str]) -> Vec<Option<u64>> {
    let followups = sim.followups(ticket);
    texts
        .iter()
        .map(|t| {
            followups
                .iter()
                .find(|f| f.content.contains(t))
                .map(|f| f.id)
        })
        .collect()
}

/// The jobs of a conversation, whatever their state.
async fn conversation_jobs(app: &TestApp, conversation: &str) -> Vec<store::Job> {
    app.store
        .jobs(&JobFilter {
            ordering_key: Some(messaging::ordering_key("whats", conversation)),
            limit: Some(1000),
            ..JobFilter::default()
        })
        .await
        .unwrap()
}

/// GLPI answers 503 while the customer writes: the message waits in the
/// conversation's buffer (no job gives up on it after the engine's few
/// attempts) and reaches the ticket before the next message, once GLPI is
/// back.
#[tokio::test]
async fn messages_sent_during_a_help_desk_outage_reach_the_ticket_in_order() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let cfg = config_with_engine(
        &sim,
        "max_attempts = 3\nbackoff_base = \"20ms\"\nbackoff_max = \"100ms\"",
        "status_ttl = 1\nmerge_window = 300",
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    send(&app, message("conv-o", "o1", "the printer is jammed")).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-o").await;
    let ticket = sim.tickets()[0].id;

    sim.faults().fail_next(1_000_000, 503);
    let (status, answer) = send(&app, message("conv-o", "o2", "during the outage")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    // Well past the engine's 3 attempts on the help desk.
    wait_for("several failed attempts", DEADLINE, || async {
        let jobs = conversation_jobs(&app, "conv-o").await;
        jobs.iter()
            .any(|j| j.attempts > 4 || j.status == JobStatus::Dead)
            .then_some(())
    })
    .await
    .unwrap();
    let state = app_state(&app, "conv-o").await;
    assert_eq!(
        state["buffer"][0]["message_id"], "o2",
        "the message waits in the store: {state}"
    );
    sim.faults().clear();
    send(&app, message("conv-o", "o3", "after the outage")).await;
    wait_for("both followups", DEADLINE, || async {
        let at = followup_positions(&sim, ticket, &["during the outage", "after the outage"]);
        at.iter().all(Option::is_some).then_some(at)
    })
    .await
    .unwrap();
    settled(&app, "conv-o").await;
    let at = followup_positions(&sim, ticket, &["during the outage", "after the outage"]);
    assert!(at[0] < at[1], "out of order: {at:?}");
    assert_eq!(sim.tickets().len(), 1);
    assert!(dead_jobs(&app).await.is_empty());
    app.stop().await;
}

/// The ticket is moved to an entity the bridge's account cannot see (GLPI
/// answers 403 ERROR_RIGHT_MISSING reading it): the conversation goes on in a
/// new ticket that names the old one, as after a deletion.
#[tokio::test]
async fn a_ticket_moved_out_of_the_accounts_sight_is_followed_by_a_new_one() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let mine = sim.add_entity("Bridge customers", 0, None);
    let elsewhere = sim.add_entity("Another company", 0, None);
    let mut bridge = NewUser::new("bridge");
    bridge.entities_id = mine;
    bridge.profile = Some(4);
    sim.add_user(bridge);
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let cfg = config_as(
        &sim,
        "bridge",
        "",
        &format!("status_ttl = 1\nmerge_window = 300\nentity = {mine}"),
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    send(&app, message("conv-m", "m1", "first problem")).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-m").await;
    let old = sim.tickets()[0].id;
    assert!(sim.move_ticket(old, elsewhere));

    send(&app, message("conv-m", "m2", "are you there")).await;
    tickets_count(&sim, 2).await;
    settled(&app, "conv-m").await;
    let new = sim.tickets().into_iter().max_by_key(|t| t.id).unwrap();
    assert!(new.content.contains("are you there"), "{}", new.content);
    assert!(
        new.content.contains(&format!("#{old}")),
        "the new ticket names the old one: {}",
        new.content
    );
    assert!(sim.followups(old).is_empty());
    // The conversation goes on with the new ticket.
    send(&app, message("conv-m", "m3", "hello again")).await;
    wait_for("the followup on the new ticket", DEADLINE, || async {
        sim.followups(new.id)
            .iter()
            .any(|f| f.content.contains("hello again"))
            .then_some(())
    })
    .await
    .unwrap();
    assert!(dead_jobs(&app).await.is_empty());
    app.stop().await;
}

/// A gateway's `…@s.whatsapp.net` and `…@c.us` ids and the bare number a
/// Typebot handoff uses (`{{phone}}`) are one conversation; a handoff for a
/// conversation the bridge never heard of says so.
#[tokio::test]
async fn a_whatsapp_jid_and_its_number_are_one_conversation() {
    let (sim, app, _dir) = start("open_on = \"handoff\"\nhandoff_wait = \"8s\"").await;
    let (_, answer) = send(
        &app,
        json!({"conversation_id": "5511987654321@s.whatsapp.net", "message_id": "w1",
        "phone": "5511987654321@s.whatsapp.net", "text": "from the gateway"}),
    )
    .await;
    assert_eq!(answer["conversation"], "5511987654321");
    send(
        &app,
        json!({"conversation_id": "5511987654321@c.us", "message_id": "w2",
        "phone": "5511987654321@c.us", "text": "from another gateway"}),
    )
    .await;
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/conversations/5511987654321/handoff"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(body["ticket"]["id"].as_u64(), Some(tickets[0].id));
    assert!(tickets[0].content.contains("from the gateway"));
    assert!(tickets[0].content.contains("from another gateway"));

    let unknown = app
        .http
        .post(app.url("/api/v1/channels/whats/conversations/5511900000000/handoff"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_conversation", "{body}");
    assert_eq!(sim.tickets().len(), 1);

    // A LID hides the number: it is refused as a phone.
    let (status, body) = send(
        &app,
        json!({"conversation_id": "123456789012345@lid", "message_id": "l1",
        "phone": "123456789012345@lid", "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

/// `followups = false`: the handoff still answers with the ticket it made.
#[tokio::test]
async fn a_handoff_answers_with_its_ticket_when_followups_are_off() {
    let (sim, app, _dir) =
        start("open_on = \"handoff\"\nhandoff_wait = \"8s\"\nfollowups = false").await;
    send(&app, message("conv-q", "q1", "please call me")).await;
    let response = app
        .http
        .post(app.url("/api/v1/channels/whats/conversations/conv-q/handoff"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1);
    assert!(tickets[0].content.contains("please call me"));
    assert_eq!(body["ticket"]["id"].as_u64(), Some(tickets[0].id), "{body}");
    app.stop().await;
}

/// The buffer job saved the message, then could not schedule its flush (a
/// store failure, or the process stopped in between): its retry schedules
/// it, so the burst still becomes a ticket.
#[tokio::test]
async fn a_buffered_message_whose_flush_was_not_scheduled_still_becomes_a_ticket() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, dir) = store::testing::fresh_sqlite().await;
    let cfg = config_with_engine(
        &sim,
        "backoff_base = \"100ms\"\nbackoff_max = \"200ms\"",
        "merge_window = 200",
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    let db = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_flush BEFORE INSERT ON jobs WHEN NEW.kind = 'messaging.flush' \
         BEGIN SELECT RAISE(ABORT, 'injected: no flush'); END;",
    )
    .unwrap();
    send(&app, message("conv-k", "k1", "stuck burst")).await;
    wait_for("the buffer job to fail after saving", DEADLINE, || async {
        let jobs = conversation_jobs(&app, "conv-k").await;
        let failed = jobs.iter().any(|j| {
            j.kind == messaging::BUFFER_JOB
                && j.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("injected"))
        });
        let state = app_state(&app, "conv-k").await;
        (failed && state["buffer"][0]["message_id"] == "k1").then_some(())
    })
    .await
    .unwrap();
    db.execute_batch("DROP TRIGGER no_flush;").unwrap();
    tickets_count(&sim, 1).await;
    settled(&app, "conv-k").await;
    assert!(sim.tickets()[0].content.contains("stuck burst"));
    app.stop().await;
}

/// The help desk did not say within the answer's 1 s whether the ticket is
/// open, so the answer named none: the message became a followup, and the
/// callback names the ticket, as the documentation promises.
#[tokio::test]
async fn a_followup_whose_answer_named_no_ticket_gets_a_callback() {
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let received = Received::default();
    let receiver = start_receiver(addr, received.clone()).await;
    let lines = format!(
        "callback_url = \"http://{addr}/hook\"\ncallback_secret = \"{SECRET}\"\nstatus_ttl = 1\nstatus_wait = \"2s\"\nmerge_window = 300"
    );
    let (sim, app, _dir) = start(&lines).await;
    send(&app, message("conv-u", "u1", "first words")).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-u").await;
    let ticket = sim.tickets()[0].id;
    wait_for("the ticket.created callback", DEADLINE, || async {
        (received.0.lock().len() == 1).then_some(())
    })
    .await
    .unwrap();

    // Slower than `status_wait`.
    sim.faults().set_latency(Duration::from_millis(6000));
    let (_, answer) = send(&app, message("conv-u", "u2", "slow help desk")).await;
    assert_eq!(answer["ticket"], Value::Null, "{answer}");
    sim.faults().set_latency(Duration::ZERO);
    let payload = wait_for("the ticket.updated callback", DEADLINE, || async {
        let bodies: Vec<Value> = received
            .0
            .lock()
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect();
        bodies.into_iter().find(|b| b["type"] == "ticket.updated")
    })
    .await
    .unwrap();
    assert_eq!(payload["data"]["ticket"]["id"].as_u64(), Some(ticket));
    // The same shape as ticket.created: the reference too (GLPI: the id).
    assert_eq!(payload["data"]["ticket"]["ref"], json!(ticket.to_string()));
    assert_eq!(payload["data"]["message_ids"], json!(["u2"]));
    assert_eq!(payload["data"]["conversation_id"], "conv-u");
    assert!(
        sim.followups(ticket)
            .iter()
            .any(|f| f.content.contains("slow help desk"))
    );
    // A followup whose answer named the ticket gets no callback.
    let (_, answer) = send(&app, message("conv-u", "u3", "quick now")).await;
    assert_eq!(answer["ticket"]["id"].as_u64(), Some(ticket), "{answer}");
    settled(&app, "conv-u").await;
    wait_for("the followup", DEADLINE, || async {
        sim.followups(ticket)
            .iter()
            .any(|f| f.content.contains("quick now"))
            .then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(received.0.lock().len(), 2);
    receiver.abort();
    app.stop().await;
}

/// The requester was found by the email a message carried (GLPI does not
/// have the phone): the phone still lists their open tickets, and so does
/// the email.
#[tokio::test]
async fn open_tickets_of_a_requester_found_by_email_are_listed_by_phone_and_email() {
    let (sim, app, _dir) = start("followups = false\nmerge_window = 300").await;
    let dora = sim.add_user(NewUser {
        login: "dora".into(),
        emails: vec!["dora@acme.com.br".into()],
        ..NewUser::default()
    });
    let mut first = message("conv-r", "r1", "my badge does not open the door");
    first["phone"] = json!("+55 21 99876-1234");
    first["email"] = json!("dora@acme.com.br");
    send(&app, first).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-r").await;
    let ticket = sim.tickets()[0].clone();
    assert_eq!(requester_ids(&ticket), vec![dora]);
    for query in ["phone=%2B5521998761234", "email=dora%40acme.com.br"] {
        let response = app
            .http
            .get(app.url(&format!("/api/v1/channels/whats/tickets?{query}")))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let body: Value = response.json().await.unwrap();
        let ids: Vec<u64> = body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![ticket.id], "{query}: {body}");
    }
    app.stop().await;
}

/// A flood fills a burst: the message that fills it closes it at once,
/// without waiting for the merge window; the next messages follow it.
#[tokio::test]
async fn a_full_burst_becomes_its_ticket_at_once() {
    let (sim, app, _dir) = start("merge_window = \"8s\"\nstatus_ttl = 1").await;
    let max = messaging::MAX_BURST;
    for i in 0..max + 2 {
        send(
            &app,
            message("conv-v", &format!("v{i}"), &format!("line {i:03} end")),
        )
        .await;
    }
    tickets_count(&sim, 1).await;
    let ticket = sim.tickets()[0].clone();
    for i in 0..max {
        assert!(ticket.content.contains(&format!("line {i:03} end")), "{i}");
    }
    assert!(!ticket.content.contains(&format!("line {max:03} end")));
    wait_for("the rest as followups", DEADLINE, || async {
        (sim.followups(ticket.id).len() == 2).then_some(())
    })
    .await
    .unwrap();
    settled(&app, "conv-v").await;
    assert_eq!(sim.tickets().len(), 1);
    app.stop().await;
}

/// The help desk down while a bot asks for a customer's open tickets: 503
/// with Retry-After, in plain words; the help desk's address and error page
/// stay in the logs.
#[tokio::test]
async fn open_tickets_with_the_help_desk_down_is_a_plain_503() {
    let (sim, app, _dir) = start("").await;
    sim.faults().fail_next(1_000_000, 503);
    let response = app
        .http
        .get(app.url("/api/v1/channels/whats/tickets?phone=%2B5511912345678"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "target_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not answering"), "{message}");
    let address = sim.base_url();
    let host = address
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert!(!message.contains(host), "{message}");
    assert!(!message.contains("503"), "{message}");
    app.stop().await;
}

/// POSTs a handoff of `conversation`, with an `Idempotency-Key` when given.
async fn handoff(app: &TestApp, conversation: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = app
        .http
        .post(app.url(&format!(
            "/api/v1/channels/whats/conversations/{conversation}/handoff"
        )))
        .header("X-API-Key", KEY);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The help desk is down for longer than `handoff_session` when the bot
/// hands the chat over: the handoff's job, retried until it is back, still
/// makes the ticket of the messages it was given (their silence is measured
/// up to the handoff, not up to the retry that reaches the help desk).
#[tokio::test]
async fn a_handoff_retried_past_the_session_still_makes_its_ticket() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let cfg = config_with_engine(
        &sim,
        "backoff_base = \"20ms\"\nbackoff_max = \"200ms\"",
        "open_on = \"handoff\"\nhandoff_wait = \"1s\"\nhandoff_session = \"2s\"",
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    sim.faults().fail_next(1_000_000, 503);
    send(&app, message("conv-x", "x1", "the screen is blank")).await;
    let sent = std::time::Instant::now();
    let (status, body) = handoff(&app, "conv-x", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Retried well past the session while the help desk refuses every call.
    tokio::time::sleep(Duration::from_millis(3000).saturating_sub(sent.elapsed())).await;
    let attempts_then = conversation_jobs(&app, "conv-x")
        .await
        .iter()
        .find(|j| j.kind == messaging::FLUSH_JOB)
        .map(|j| j.attempts)
        .unwrap();
    wait_for("a retry past the session", DEADLINE, || async {
        let jobs = conversation_jobs(&app, "conv-x").await;
        jobs.iter()
            .any(|j| {
                j.kind == messaging::FLUSH_JOB
                    && (j.attempts > attempts_then || j.status != JobStatus::Pending)
            })
            .then_some(())
    })
    .await
    .unwrap();
    assert!(sim.tickets().is_empty());
    sim.faults().clear();
    settled(&app, "conv-x").await;
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1, "the handed-off message makes its ticket");
    assert!(tickets[0].content.contains("the screen is blank"));
    app.stop().await;
}

/// A handoff whose job gave up (the help desk down through every attempt)
/// keeps its messages however long it stays dead: `ticketbridge jobs retry`
/// makes their ticket, and so does the conversation's next message (with
/// it), without a second handoff.
#[tokio::test]
async fn a_dead_handoff_keeps_its_messages_for_a_retry_or_the_next_message() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let cfg = config_with_engine(
        &sim,
        "backoff_base = \"10ms\"\nbackoff_max = \"50ms\"",
        "open_on = \"handoff\"\nhandoff_wait = \"1s\"\nhandoff_session = \"3s\"",
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    sim.faults().fail_next(1_000_000, 503);
    send(&app, message("conv-y", "y1", "the fax is broken")).await;
    send(&app, message("conv-z", "z1", "the phone is dead")).await;
    let (status, body) = handoff(&app, "conv-y", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = handoff(&app, "conv-z", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let handed = std::time::Instant::now();
    wait_for(
        "both handoffs to give up",
        Duration::from_secs(60),
        || async {
            let mut jobs = conversation_jobs(&app, "conv-y").await;
            jobs.extend(conversation_jobs(&app, "conv-z").await);
            jobs.iter()
                .all(|j| !matches!(j.status, JobStatus::Pending | JobStatus::Running))
                .then_some(())
        },
    )
    .await
    .unwrap();
    // Later than the session after the messages (and the handoffs).
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(handed.elapsed())).await;
    sim.faults().clear();
    // `ticketbridge jobs retry <id>`.
    for job in conversation_jobs(&app, "conv-y").await {
        if job.status == JobStatus::Dead {
            app.store.revive_dead(Some(job.id)).await.unwrap();
        }
    }
    settled(&app, "conv-y").await;
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 1, "the retried handoff makes its ticket");
    assert!(tickets[0].content.contains("the fax is broken"));

    send(&app, message("conv-z", "z2", "still dead")).await;
    tickets_count(&sim, 2).await;
    let ticket = sim.tickets().into_iter().max_by_key(|t| t.id).unwrap();
    assert!(
        ticket.content.contains("the phone is dead"),
        "{}",
        ticket.content
    );
    assert!(ticket.content.contains("still dead"), "{}", ticket.content);
    app.stop().await;
}

/// iTop: the followup of a message whose answer named no ticket is written,
/// and the help desk fails the very next call. The `ticket.updated`
/// callback still names the ticket by its `ref`, which the bridge knows
/// without asking iTop: a failure after the followup cannot lose it.
#[tokio::test]
async fn a_followup_callback_survives_a_help_desk_failure_after_the_followup() {
    use sim::itop::{Fault, ItopSim, ItopSimConfig};
    let itop = ItopSim::start(ItopSimConfig {
        demo_data: false,
        ..ItopSimConfig::default()
    })
    .await
    .unwrap();
    let org = itop.seed_organization("Customers").unwrap();
    itop.seed_person("Ana", "Souza", org, "", "+55 11 98765-4321")
        .unwrap();
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let received = Received::default();
    let receiver = start_receiver(addr, received.clone()).await;
    let text = format!(
        r#"
[engine]
backoff_base = "20ms"
backoff_max = "200ms"

[targets.itop]
kind = "itop"
url = "{url}"
user = "{user}"
password = "${{ITOP_PASSWORD}}"
timeout = "5s"

[sources.whats]
kind = "messaging"
target = "itop"
api_keys = ["{KEY}"]
default_country = "BR"
entity = {org}
merge_window = 300
status_ttl = 1
status_wait = "2s"
callback_url = "http://{addr}/hook"
callback_secret = "{SECRET}"
"#,
        url = itop.base_url(),
        user = itop.rest_user(),
    );
    let env = vec![("ITOP_PASSWORD".to_string(), itop.rest_password())];
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let app = TestApp::spawn(config::load_str(&text, env).unwrap(), store)
        .await
        .unwrap();
    let bodies = || -> Vec<Value> {
        received
            .0
            .lock()
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    };
    send(&app, message("conv-w", "w1", "the scanner jams")).await;
    let created = wait_for("the ticket.created callback", DEADLINE, || async {
        bodies().into_iter().find(|b| b["type"] == "ticket.created")
    })
    .await
    .unwrap();
    settled(&app, "conv-w").await;
    let id = created["data"]["ticket"]["id"].as_u64().unwrap();
    let reference = created["data"]["ticket"]["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reference.starts_with("R-"), "{created}");

    // iTop down while the bot forwards the next message: its answer names no ticket.
    itop.set_down(true);
    let (_, answer) = send(&app, message("conv-w", "w2", "and now it smokes")).await;
    assert_eq!(answer["ticket"], Value::Null, "{answer}");
    // Back, but the call after the followup's write fails.
    itop.fail_after(
        |request| request["operation"] == "core/update",
        Fault::HttpStatus(503),
    );
    itop.set_down(false);
    let updated = wait_for("the ticket.updated callback", DEADLINE, || async {
        bodies().into_iter().find(|b| b["type"] == "ticket.updated")
    })
    .await
    .unwrap();
    assert_eq!(
        updated["data"]["ticket"]["id"].as_u64(),
        Some(id),
        "{updated}"
    );
    assert_eq!(
        updated["data"]["ticket"]["ref"],
        json!(reference),
        "{updated}"
    );
    assert_eq!(updated["data"]["message_ids"], json!(["w2"]));
    let log = itop.case_log("UserRequest", id, "public_log");
    assert!(
        log.iter().any(|e| e.message.contains("and now it smokes")),
        "{log:?}"
    );
    receiver.abort();
    app.stop().await;
}

/// The ids of the tickets `GET /tickets?{query}` lists.
async fn listed(app: &TestApp, query: &str) -> Vec<u64> {
    let response = app
        .http
        .get(app.url(&format!("/api/v1/channels/whats/tickets?{query}")))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let body: Value = response.json().await.unwrap();
    body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect()
}

/// The requester is a GLPI contact (found by phone): GLPI takes no contact
/// as a requester, so the ticket asks in the contact's email. The phone
/// still lists it, and so does the requester the bridge remembers for the
/// phone once GLPI no longer has the number on the contact.
#[tokio::test]
async fn open_tickets_of_a_contact_are_listed_by_phone() {
    let (sim, app, _dir) = start("followups = false\nmerge_window = 300").await;
    let contact = sim.add_contact(sim::glpi::NewContact {
        name: "Costa".into(),
        firstname: Some("Elis".into()),
        email: Some("elis@costa.com.br".into()),
        mobile: Some("+55 31 98877-6655".into()),
        ..Default::default()
    });
    let mut first = message("conv-c", "c1", "the lift is stuck");
    first["phone"] = json!("5531988776655");
    send(&app, first).await;
    tickets_count(&sim, 1).await;
    settled(&app, "conv-c").await;
    let ticket = sim.tickets()[0].clone();
    assert!(
        requester_ids(&ticket).iter().all(|id| *id == 0),
        "{ticket:?}"
    );
    assert_eq!(
        listed(&app, "phone=%2B5531988776655").await,
        vec![ticket.id]
    );

    // The contact's number changes in GLPI: the requester the bridge
    // resolved for the phone still names the contact's tickets.
    let http = reqwest::Client::new();
    let session: Value = http
        .get(format!("{}/initSession", sim.base_url()))
        .header("App-Token", sim.app_token())
        .header(
            "Authorization",
            format!("user_token {}", sim.user_token("glpi").unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let updated = http
        .put(format!("{}/Contact/{contact}", sim.base_url()))
        .header("App-Token", sim.app_token())
        .header("Session-Token", session["session_token"].as_str().unwrap())
        .json(&json!({"input": {"mobile": "+55 31 90000-0000"}}))
        .send()
        .await
        .unwrap();
    assert!(updated.status().is_success(), "{}", updated.status());
    assert_eq!(
        sim.contacts()[0].mobile.as_deref(),
        Some("+55 31 90000-0000")
    );
    assert_eq!(
        listed(&app, "phone=%2B5531988776655").await,
        vec![ticket.id]
    );
    app.stop().await;
}

/// A handoff sent again with its `Idempotency-Key` (the bot's request timed
/// out) gets the ticket the first one made, with `followups = false` too;
/// the key sent for another conversation is refused rather than swallowed;
/// a handoff with nothing left to hand off names the conversation's ticket.
#[tokio::test]
async fn a_repeated_handoff_gets_the_ticket_the_first_one_made() {
    let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
    let (store, _dir) = store::testing::fresh_sqlite().await;
    let cfg = config_with_engine(
        &sim,
        "backoff_base = \"20ms\"\nbackoff_max = \"100ms\"",
        "open_on = \"handoff\"\nhandoff_wait = \"2s\"\nfollowups = false",
    );
    let app = TestApp::spawn(cfg, store).await.unwrap();
    send(&app, message("conv-h1", "h1", "my password expired")).await;
    sim.faults().fail_next(1_000_000, 503);
    let (status, body) = handoff(&app, "conv-h1", Some("hand-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["ticket"], Value::Null, "{body}");
    sim.faults().clear();
    tickets_count(&sim, 1).await;
    settled(&app, "conv-h1").await;
    let ticket = sim.tickets()[0].id;
    for _ in 0..2 {
        let (status, body) = handoff(&app, "conv-h1", Some("hand-1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["ticket"]["id"].as_u64(), Some(ticket), "{body}");
        assert_eq!(body["conversation"], "conv-h1");
    }
    // Nothing left to hand off: the conversation's ticket.
    let (status, body) = handoff(&app, "conv-h1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ticket"]["id"].as_u64(), Some(ticket), "{body}");

    // The same key for another conversation.
    send(&app, message("conv-h2", "h2", "my mouse is gone")).await;
    let (status, body) = handoff(&app, "conv-h2", Some("hand-1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    settled(&app, "conv-h2").await;
    assert_eq!(
        sim.tickets().len(),
        1,
        "the refused handoff hands nothing over"
    );
    let (status, body) = handoff(&app, "conv-h2", Some("hand-2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 2);
    let second = tickets.iter().find(|t| t.id != ticket).unwrap();
    assert_eq!(body["ticket"]["id"].as_u64(), Some(second.id), "{body}");
    assert!(second.content.contains("my mouse is gone"));
    app.stop().await;
}

/// A handoff whose job gave up answers why, and not `"ticket": null` (no
/// callback would ever come); its messages are kept.
#[tokio::test]
async fn a_handoff_that_failed_says_why() {
    let (sim, app, _dir) =
        start("open_on = \"handoff\"\nhandoff_wait = \"8s\"\ncreate_requesters = false").await;
    send(&app, message("conv-d", "d1", "who am I")).await;
    let (status, body) = handoff(&app, "conv-d", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "handoff_failed", "{body}");
    let why = body["error"]["message"].as_str().unwrap();
    assert!(why.contains("create_requesters"), "{why}");
    assert!(sim.tickets().is_empty());
    let state = app_state(&app, "conv-d").await;
    assert_eq!(state["buffer"][0]["message_id"], "d1", "kept: {state}");

    let (status, body) = handoff(&app, "conv-d", Some(&"k".repeat(300))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_fields", "{body}");
    app.stop().await;
}
