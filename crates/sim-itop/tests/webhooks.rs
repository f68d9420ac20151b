//! Webhook emission shaped like tests/fixtures/itop/real-webhooks.txt, and two
//! simulators (external + internal) running side by side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sim_itop::{ItopSim, ItopSimConfig, SimUser, WebhookSink};

type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn hook(
        State(seen): State<Seen>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Bytes,
    ) -> &'static str {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.lock().push((uri.path().to_string(), key, body));
        "ok"
    }
    let app = Router::new()
        .route("/{*path}", post(hook))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

async fn wait_for(seen: &Seen, n: usize) -> Vec<(String, String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = seen.lock().clone();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn external_and_internal_emit_the_seed_payloads() {
    let (base, seen) = receiver().await;
    let ext = ItopSim::start(
        ItopSimConfig {
            synchronous_webhooks: true,
            ..ItopSimConfig::default()
        }
        .with_webhooks(WebhookSink::seed_external(
            &format!("{base}/external"),
            "test-key-123",
        )),
    )
    .await
    .unwrap();
    let int = ItopSim::start(
        ItopSimConfig::default()
            .with_webhooks(WebhookSink::seed_internal(
                &format!("{base}/internal"),
                "test-key-123",
            ))
            .with_user(SimUser::new("agent", "agent-secret", 3, 9)),
    )
    .await
    .unwrap();
    assert_ne!(ext.base_url(), int.base_url());

    // 1 create on the external side -> ticket.create (synchronous: already received)
    let r = ext
        .perform(json!({"operation":"core/create","comment":"c","class":"UserRequest","output_fields":"id",
            "fields":{"org_id":3,"caller_id":15,"title":"Printer \"3rd floor\" / 100%","description":"<p>x</p>"}}))
        .await;
    assert_eq!(r["code"], 0);
    let got = seen.lock().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("/external/api/v1/create-ticket", "test-key-123")
    );
    assert_eq!(
        got[0].2,
        json!({"event":"ticket.create","class":"UserRequest","id":"1","ref":"R-000001","title":"Printer \"3rd floor\" / 100%",
               "description":"<p>x</p>","status":"new","caller_id":"Christie","org_id":"Demo","team_id":"undefined",
               "operator_id":"undefined","priority":"4"})
    );
    // 2 attachment create -> nothing; 3 attachment update -> update-attachment
    ext.perform(json!({"operation":"core/create","comment":"c","class":"Attachment","fields":{"item_class":"UserRequest","item_id":1,"item_org_id":3,"contents":{"data":"eA==","filename":"a.txt","mimetype":"text/plain"}}})).await;
    assert_eq!(seen.lock().len(), 1);
    ext.perform(json!({"operation":"core/update","comment":"c","class":"Attachment","key":1,"fields":{"contents":{"data":"eQ==","filename":"a.txt","mimetype":"text/plain"}}})).await;
    // 4 stimulus -> update-ticket; 5 delete attachment -> update-attachment (sent before removal)
    ext.perform(json!({"operation":"core/apply_stimulus","comment":"c","class":"UserRequest","key":1,"stimulus":"ev_assign","fields":{"team_id":37,"agent_id":9}})).await;
    ext.perform(json!({"operation":"core/delete","comment":"c","class":"Attachment","key":1}))
        .await;
    let got = seen.lock().clone();
    let shapes: Vec<(String, Value)> = got[1..]
        .iter()
        .map(|(p, _, b)| (p.clone(), b.clone()))
        .collect();
    assert_eq!(
        shapes,
        vec![
            (
                "/external/api/v1/update-attachment".to_string(),
                json!({"event":"attachment.update","source":"external","attachment_id":"1","item_class":"UserRequest","item_id":"1"})
            ),
            (
                "/external/api/v1/update-ticket".to_string(),
                json!({"class":"UserRequest","id":"1"})
            ),
            (
                "/external/api/v1/update-attachment".to_string(),
                json!({"event":"attachment.update","source":"external","attachment_id":"1","item_class":"UserRequest","item_id":"1"})
            ),
        ]
    );

    // internal side (background delivery): create fires nothing, assign -> state change,
    // private log -> private-log, public log -> nothing, pending -> state change
    seen.lock().clear();
    int.perform(json!({"operation":"core/create","comment":"c","class":"UserRequest","fields":{"org_id":3,"caller_id":15,"title":"t","description":"d"}})).await;
    int.perform_as("agent", json!({"operation":"core/apply_stimulus","comment":"c","class":"UserRequest","key":1,"stimulus":"ev_assign","fields":{"team_id":37,"agent_id":9}})).await;
    let _ = wait_for(&seen, 1).await;
    int.perform(json!({"operation":"core/update","comment":"c","class":"UserRequest","key":1,"fields":{"private_log":{"add_item":{"message":"note"}}}})).await;
    let _ = wait_for(&seen, 2).await;
    int.perform(json!({"operation":"core/update","comment":"c","class":"UserRequest","key":1,"fields":{"public_log":{"add_item":{"message":"public"}}}})).await;
    int.perform(json!({"operation":"core/apply_stimulus","comment":"c","class":"UserRequest","key":1,"stimulus":"ev_pending","fields":{"pending_reason":"wait"}})).await;
    let got = wait_for(&seen, 3).await;
    let shapes: Vec<(String, Value)> = got.iter().map(|(p, _, b)| (p.clone(), b.clone())).collect();
    assert_eq!(
        shapes,
        vec![
            (
                "/internal/api/v1/ticket-state-change".to_string(),
                json!({"event":"ticket assigned","id":"1"})
            ),
            (
                "/internal/api/v1/ticket-update-private-log".to_string(),
                json!({"event":"update private log","id":"1"})
            ),
            (
                "/internal/api/v1/ticket-state-change".to_string(),
                json!({"event":"ticket pending","id":"1"})
            ),
        ]
    );
    // the agent's change is attributed to the agent in the internal iTop
    assert_eq!(int.object("UserRequest", 1).unwrap()["agent_id"], "9");
    // A delivery is logged once its answer is read, a little after the
    // receiver saw it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let delivered = int
            .webhook_deliveries()
            .iter()
            .filter(|d| d.status == Some(200))
            .count();
        if delivered >= 3 || std::time::Instant::now() > deadline {
            assert_eq!(delivered, 3);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ext.shutdown().await;
    int.shutdown().await;
}

#[tokio::test]
async fn unreachable_receiver_is_recorded_not_fatal() {
    let sim = ItopSim::start(
        ItopSimConfig {
            synchronous_webhooks: true,
            webhook_timeout: Duration::from_secs(2),
            ..ItopSimConfig::default()
        }
        .with_webhooks(WebhookSink::seed_external("http://127.0.0.1:9", "k")),
    )
    .await
    .unwrap();
    let r = sim
        .perform(json!({"operation":"core/create","comment":"c","class":"UserRequest","fields":{"org_id":3,"caller_id":15,"title":"t","description":"d"}}))
        .await;
    assert_eq!(r["code"], 0);
    let d = sim.webhook_deliveries();
    assert_eq!(d.len(), 1);
    assert!(d[0].status.is_none() && d[0].error.is_some());
    assert!(sim.object("UserRequest", 1).is_some());
    sim.shutdown().await;
}

/// As recorded (real-webhooks.txt, step 6 and its readback): the webhook of
/// an attachment's deletion is sent before the attachment is gone, so the
/// receiver reading it back while answering still finds it; it is gone once
/// the REST call answered.
#[tokio::test]
async fn a_deletion_webhook_is_sent_before_the_object_is_gone() {
    type Readbacks = Arc<Mutex<Vec<Value>>>;
    #[derive(Clone)]
    struct Receiver {
        rest: Arc<std::sync::OnceLock<String>>,
        readbacks: Readbacks,
    }
    async fn hook(State(r): State<Receiver>, body: Bytes) -> &'static str {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let id = body["attachment_id"].as_str().unwrap_or("0").to_string();
        let json_data =
            json!({"operation":"core/get","class":"Attachment","key":id,"output_fields":"id"});
        let answer: Value = reqwest::Client::new()
            .post(r.rest.get().unwrap().as_str())
            .form(&[
                ("version", "1.3"),
                ("auth_user", sim_itop::REST_LOGIN),
                ("auth_pwd", sim_itop::REST_PASSWORD),
                ("json_data", &json_data.to_string()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r.readbacks.lock().push(answer);
        "ok"
    }
    let receiver = Receiver {
        rest: Arc::default(),
        readbacks: Arc::default(),
    };
    let app = Router::new()
        .route("/{*path}", post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sim = ItopSim::start(
        ItopSimConfig {
            synchronous_webhooks: true,
            ..ItopSimConfig::default()
        }
        .with_webhooks(WebhookSink::seed_external(
            &format!("http://{addr}/external"),
            "k",
        )),
    )
    .await
    .unwrap();
    receiver.rest.set(sim.base_url()).unwrap();
    let ticket = sim
        .seed(
            "UserRequest",
            json!({"org_id":3,"caller_id":15,"title":"t","description":"d"}),
        )
        .unwrap();
    let r = sim
        .perform(json!({"operation":"core/create","class":"Attachment","comment":"c",
            "fields":{"item_class":"UserRequest","item_id":ticket,"item_org_id":3,
            "contents":{"data":"eA==","filename":"x.txt","mimetype":"text/plain"}},"output_fields":"id"}))
        .await;
    let id: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = sim
        .perform(json!({"operation":"core/delete","class":"Attachment","key":id,"comment":"c"}))
        .await;
    assert_eq!(r["code"], 0, "{r}");
    let readbacks = receiver.readbacks.lock().clone();
    assert_eq!(readbacks.len(), 1, "{readbacks:?}");
    assert_eq!(readbacks[0]["message"], "Found: 1", "{readbacks:?}");
    assert!(sim.object("Attachment", id).is_none());
    sim.shutdown().await;
}
