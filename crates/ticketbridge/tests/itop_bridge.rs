//! End-to-end: the iTop ↔ iTop bridge over real HTTP with two simulated
//! iTops (external, internal) whose webhook actions (the seed's set-up,
//! `tests/fixtures/itop/real-webhooks.txt`) point at the running service —
//! including the webhooks the bridge's own REST writes cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use sim::itop::{Fault, ItopSim, ItopSimConfig, RunningItop, WebhookSink};
use store::{LinkFilter, Store};
use ticketbridge::testkit::{TestApp, jobs_settled, wait_for};
use tokio::sync::OnceCell;

const KEY: &str = "key-current";
const OLD_KEY: &str = "key-previous";
const DEADLINE: Duration = Duration::from_secs(20);

/// Forwards webhooks to the app once it runs (the simulators need their
/// webhook URL before the app, configured with their URLs, can start).
/// While `dropping`, webhooks are lost, as when the receiver is down.
#[derive(Clone, Default)]
struct Relay {
    target: Arc<OnceCell<String>>,
    dropping: Arc<AtomicBool>,
}

async fn forward(
    State(relay): State<Relay>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(base) = relay.target.get() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    if relay.dropping.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let path = uri.path();
    let path = path
        .strip_prefix("/external")
        .or_else(|| path.strip_prefix("/internal"))
        .unwrap_or(path);
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(resp) => StatusCode::from_u16(resp.status().as_u16()).unwrap(),
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

async fn start_relay() -> (Relay, String) {
    let relay = Relay::default();
    let app = Router::new()
        .route("/{*path}", post(forward))
        .with_state(relay.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (relay, format!("http://{addr}"))
}

struct World {
    app: TestApp,
    bridges: itop_bridge::Bridges,
    ext: RunningItop,
    int: RunningItop,
    relay: Relay,
    _dir: Option<tempfile::TempDir>,
}

async fn world_on(store: Store, dir: Option<tempfile::TempDir>, reconcile: &str) -> World {
    world_with(store, dir, reconcile, |_, _| {}, "").await
}

/// A world whose two simulated iTops are configured by `configure` too
/// (called with "external" or "internal"), and whose bridge source has the
/// keys `source_extra` too.
async fn world_with(
    store: Store,
    dir: Option<tempfile::TempDir>,
    reconcile: &str,
    configure: impl Fn(&str, &mut ItopSimConfig),
    source_extra: &str,
) -> World {
    world_with_targets(store, dir, reconcile, configure, source_extra, "").await
}

/// `world_with`, both iTop targets having the keys `target_extra` too.
async fn world_with_targets(
    store: Store,
    dir: Option<tempfile::TempDir>,
    reconcile: &str,
    configure: impl Fn(&str, &mut ItopSimConfig),
    source_extra: &str,
    target_extra: &str,
) -> World {
    let (relay, relay_url) = start_relay().await;
    let sim_config = |side: &str, sinks| {
        let mut config = ItopSimConfig {
            synchronous_webhooks: true,
            ..ItopSimConfig::default()
        }
        .with_webhooks(sinks);
        configure(side, &mut config);
        config
    };
    let ext = ItopSim::start(sim_config(
        "external",
        WebhookSink::seed_external(&format!("{relay_url}/external"), KEY),
    ))
    .await
    .unwrap();
    let int = ItopSim::start(sim_config(
        "internal",
        WebhookSink::seed_internal(&format!("{relay_url}/internal"), OLD_KEY),
    ))
    .await
    .unwrap();
    let toml = format!(
        r#"
[targets.ext]
kind = "itop"
url = "{ext_url}"
user = "rest"
password = "${{ITOP_PASSWORD}}"
timeout = "5s"
{target_extra}

[targets.int]
kind = "itop"
url = "{int_url}"
user = "rest"
password = "${{ITOP_PASSWORD}}"
timeout = "5s"
{target_extra}

[sources.bridge]
kind = "itop"
internal_target = "int"
external_target = "ext"
api_keys = ["${{KEY1}}", "${{KEY2}}"]
reconcile_interval = "{reconcile}"
{source_extra}

[sources.bridge.internal]
org_id = 3
caller_id = 15
team_id = 37
agent_id = 9

[sources.bridge.external]
team_id = 37
agent_id = 7
"#,
        ext_url = ext.root_url(),
        int_url = int.root_url(),
    );
    let env = [
        ("ITOP_PASSWORD".to_string(), ext.rest_password()),
        ("KEY1".to_string(), KEY.to_string()),
        ("KEY2".to_string(), OLD_KEY.to_string()),
    ];
    let config = config::load_str(&toml, env).unwrap();
    let app = TestApp::spawn(config.clone(), store).await.unwrap();
    let bridges = itop_bridge::Bridges::from_config(&config, &app.targets).unwrap();
    // The relay strips /external and /internal: the seed's paths are the same on both.
    relay
        .target
        .set(app.base_url.clone())
        .map_err(|_| ())
        .unwrap();
    World {
        app,
        bridges,
        ext,
        int,
        relay,
        _dir: dir,
    }
}

async fn world() -> World {
    let (store, dir) = store::testing::fresh_sqlite().await;
    world_on(store, Some(dir), "1h").await
}

impl World {
    /// Waits until no job is running, due, or waiting to be retried (a job
    /// on its backoff is not due, yet its work is not done).
    async fn settle(&self) {
        wait_for("jobs to settle", DEADLINE, || {
            jobs_settled(&self.app.store, true)
        })
        .await
        .unwrap();
    }

    /// Runs the reconciler now (its pending run is moved forward), then settles.
    async fn reconcile_now(&self) {
        let bridge = self.bridges.get("bridge").unwrap();
        self.app
            .store
            .enqueue(itop_bridge::jobs::reconcile_job(bridge, store::now_ms()))
            .await
            .unwrap();
        // Due now, so settling waits for it and for the syncs it enqueues.
        self.settle().await;
    }

    /// A person (the `admin` account, not the bridge's) creates an external ticket.
    async fn human_creates_external_ticket(&self, title: &str) -> u64 {
        let r = self
            .ext
            .perform_as(
                "admin",
                json!({"operation":"core/create","class":"UserRequest","comment":"ui",
                   "fields":{"org_id":3,"caller_id":15,"title":title,"description":"<p>Printer \"3rd floor\" broken</p>","urgency":"2"},
                   "output_fields":"id"}),
            )
            .await;
        assert_eq!(r["code"], 0, "{r}");
        let id = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.settle().await;
        id
    }

    fn internal_of(&self, external: u64) -> Option<u64> {
        let marker = format!("[ticketbridge:bridge:{external}]");
        self.int
            .ids("UserRequest")
            .into_iter()
            .find(|id| field(&self.int, "UserRequest", *id, "description").contains(&marker))
    }

    async fn mirrored(&self, title: &str) -> (u64, u64) {
        let e = self.human_creates_external_ticket(title).await;
        let i = self.internal_of(e).expect("internal ticket created");
        (e, i)
    }

    async fn act(&self, sim: &RunningItop, op: Value) {
        let r = sim.perform_as("admin", op.clone()).await;
        assert_eq!(r["code"], 0, "{op} -> {r}");
        self.settle().await;
    }

    async fn dead_letters(&self) -> Vec<store::Job> {
        self.app
            .store
            .jobs(&store::JobFilter {
                status: Some(store::JobStatus::Dead),
                limit: Some(100),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// Jobs that failed at least once (dead or retried since).
    async fn failed_jobs(&self) -> Vec<store::Job> {
        self.app
            .store
            .jobs(&store::JobFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.last_error.is_some())
            .collect()
    }

    /// UI-style attachment upload: create, then the form save updates it
    /// (the update fires the seed's attachment webhook; a create does not).
    async fn upload(&self, sim: &RunningItop, ticket: u64, name: &str, data: &[u8]) -> u64 {
        use base64::Engine;
        let contents = json!({"data": base64::engine::general_purpose::STANDARD.encode(data),
            "filename": name, "mimetype": "text/plain", "downloads_count": 0});
        let r = sim
            .perform_as(
                "admin",
                json!({"operation":"core/create","class":"Attachment","comment":"ui",
                "fields":{"item_class":"UserRequest","item_id":0,"temp_id":"upload-1","item_org_id":3,"contents":contents},"output_fields":"id"}),
            )
            .await;
        let id: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.act(
            sim,
            json!({"operation":"core/update","class":"Attachment","key":id,"comment":"ui",
            "fields":{"item_class":"UserRequest","item_id":ticket,"temp_id":""},"output_fields":"id"}),
        )
        .await;
        id
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.app
            .http
            .post(self.app.url(path))
            .header("X-API-Key", key)
            .header("Content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.app.stop().await;
        self.ext.shutdown().await;
        self.int.shutdown().await;
    }
}

fn field(sim: &RunningItop, class: &str, id: u64, name: &str) -> String {
    sim.object(class, id)
        .and_then(|o| o.get(name).cloned())
        .map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn stimulus(id: u64, code: &str, fields: Value) -> Value {
    json!({"operation":"core/apply_stimulus","class":"UserRequest","key":id,"stimulus":code,
        "comment":"ui","fields":fields,"output_fields":"id"})
}

fn private_entry(id: u64, text: &str) -> Value {
    json!({"operation":"core/update","class":"UserRequest","key":id,"comment":"ui",
        "fields":{"private_log":{"add_item":{"message":text,"format":"text"}}},"output_fields":"id"})
}

#[tokio::test]
async fn external_ticket_is_mirrored_with_internal_defaults_once() {
    let w = world().await;
    let before_int = w.int.ids("UserRequest").len();
    let (e, i) = w.mirrored("Printer broken").await;
    assert_eq!(field(&w.int, "UserRequest", i, "title"), "Printer broken");
    assert_eq!(field(&w.int, "UserRequest", i, "org_id"), "3");
    assert_eq!(field(&w.int, "UserRequest", i, "caller_id"), "15");
    assert_eq!(field(&w.int, "UserRequest", i, "team_id"), "37");
    assert_eq!(field(&w.int, "UserRequest", i, "agent_id"), "9");
    assert_eq!(field(&w.int, "UserRequest", i, "urgency"), "2");
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "new");
    assert_eq!(w.int.ids("UserRequest").len(), before_int + 1);

    // The create webhook again, several times, and the update one: nothing new.
    let payload = json!({"event":"ticket.create","class":"UserRequest","id":e.to_string(),"ref":"R","title":"Printer broken",
        "description":"x","status":"new","caller_id":"Christie","org_id":"Demo","team_id":"undefined","operator_id":"undefined","priority":"4"});
    for _ in 0..3 {
        let r = w.post("/api/v1/create-ticket", KEY, payload.clone()).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["received"], true);
    }
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    w.settle().await;
    assert_eq!(w.int.ids("UserRequest").len(), before_int + 1);
    assert!(w.int.attachments("UserRequest", i).is_empty());
    // Agents and organisations are not copied back.
    assert_eq!(field(&w.ext, "UserRequest", e, "agent_id"), "0");
    let links = w
        .app
        .store
        .links(&LinkFilter {
            kind: Some("itop.ticket".into()),
            ..LinkFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].target_id.as_deref(), Some(i.to_string().as_str()));
    w.stop().await;
}

#[tokio::test]
async fn attachments_are_added_changed_and_deleted_one_by_one() {
    let w = world().await;
    let (e, i) = w.mirrored("With files").await;
    let a = w.upload(&w.ext, e, "a.txt", b"first").await;
    let b = w.upload(&w.ext, e, "b.txt", b"second").await;
    let int_files = w.int.attachments("UserRequest", i);
    assert_eq!(int_files.len(), 2, "{:?}", w.ext.webhook_deliveries());
    let (ia, ib) = (int_files[0].id, int_files[1].id);
    assert_eq!(
        (int_files[0].data.as_slice(), int_files[1].data.as_slice()),
        (&b"first"[..], &b"second"[..])
    );

    // Change a: its copy is updated in place, b untouched.
    use base64::Engine;
    w.act(&w.ext, json!({"operation":"core/update","class":"Attachment","key":a,"comment":"ui",
        "fields":{"contents":{"data":base64::engine::general_purpose::STANDARD.encode(b"first, edited"),"filename":"a.txt","mimetype":"text/plain","downloads_count":0}},"output_fields":"id"})).await;
    let int_files = w.int.attachments("UserRequest", i);
    assert_eq!(
        int_files.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![ia, ib]
    );
    assert_eq!(int_files[0].data, b"first, edited");
    assert_eq!(int_files[1].data, b"second");

    // Delete a: only its copy goes.
    w.act(
        &w.ext,
        json!({"operation":"core/delete","class":"Attachment","key":a,"comment":"ui"}),
    )
    .await;
    let int_files = w.int.attachments("UserRequest", i);
    assert_eq!(int_files.iter().map(|f| f.id).collect::<Vec<_>>(), vec![ib]);
    // The bridge's writes on the internal side echoed back and changed nothing on the external one.
    let ext_files = w.ext.attachments("UserRequest", e);
    assert_eq!(ext_files.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b]);
    assert!(
        w.int
            .webhook_deliveries()
            .iter()
            .any(|d| d.body.contains("attachment.update"))
    );

    // Internal attachment on a bridged ticket goes to the external side.
    w.upload(&w.int, i, "from-provider.txt", b"report").await;
    let ext_files = w.ext.attachments("UserRequest", e);
    assert_eq!(ext_files.len(), 2);
    assert_eq!(ext_files[1].filename, "from-provider.txt");
    assert_eq!(w.int.attachments("UserRequest", i).len(), 2);
    w.stop().await;
}

#[tokio::test]
async fn private_log_entries_become_one_file_each_with_author_and_date() {
    let w = world().await;
    let (e, i) = w.mirrored("With notes").await;
    w.act(&w.ext, private_entry(e, "customer internal note"))
        .await;
    let files = w.int.attachments("UserRequest", i);
    assert_eq!(files.len(), 1, "{files:?}");
    let text = String::from_utf8(files[0].data.clone()).unwrap();
    let entry = &w.ext.case_log("UserRequest", e, "private_log")[0];
    assert!(text.contains("customer internal note"), "{text}");
    assert!(
        text.contains(&format!("Author: {}", entry.user_login)),
        "{text}"
    );
    assert!(text.contains(&format!("Date: {}", entry.date)), "{text}");
    assert!(files[0].filename.starts_with("private-log-"));
    // The log itself is not copied into the internal private log.
    assert!(w.int.case_log("UserRequest", i, "private_log").is_empty());

    // A repeat changes nothing; a second entry adds a second file.
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    w.settle().await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    w.act(&w.ext, private_entry(e, "second note")).await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 2);

    // Internal private log → a file on the external side.
    w.act(&w.int, private_entry(i, "provider note")).await;
    let ext_files = w.ext.attachments("UserRequest", e);
    assert_eq!(ext_files.len(), 1);
    assert!(
        String::from_utf8(ext_files[0].data.clone())
            .unwrap()
            .contains("provider note")
    );
    // Neither file was copied back as an ordinary attachment.
    assert_eq!(w.int.attachments("UserRequest", i).len(), 2);
    w.stop().await;
}

/// Both sides get an HTML private-log entry, filed once on the other side.
async fn notes_filed_both_ways(w: &World) -> (u64, u64) {
    let (e, i) = w.mirrored("Notes and upgrades").await;
    let html = |id: u64, text: &str| {
        json!({"operation":"core/update","class":"UserRequest","key":id,"comment":"ui",
            "fields":{"private_log":{"add_item":{"message":format!("<p>{text} <b>now</b></p>"),"format":"html"}}},
            "output_fields":"id"})
    };
    w.act(&w.ext, html(e, "customer note")).await;
    w.act(&w.int, html(i, "provider note")).await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    assert_eq!(w.ext.attachments("UserRequest", e).len(), 1);
    (e, i)
}

/// Every pair run there is: a webhook of each side and a sweep.
async fn sync_again(w: &World, e: u64, i: u64) {
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    w.post(
        "/api/v1/ticket-update-private-log",
        OLD_KEY,
        json!({"event":"update private log","id":i.to_string()}),
    )
    .await;
    w.settle().await;
    w.reconcile_now().await;
}

#[tokio::test]
async fn private_log_entries_are_not_filed_again_after_an_itop_upgrade() {
    let w = world().await;
    let (e, i) = notes_filed_both_ways(&w).await;
    // Both iTops now render the plain text of every entry differently.
    for sim in [&w.ext, &w.int] {
        sim.rerender_case_log_text(|html| {
            html.replace("<b>", "**")
                .replace("</b>", "**")
                .replace("<p>", "")
                .replace("</p>", "\n")
        });
    }
    assert!(
        w.ext.case_log("UserRequest", e, "private_log")[0]
            .message
            .contains("**now**")
    );
    sync_again(&w, e, i).await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    assert_eq!(w.ext.attachments("UserRequest", e).len(), 1);
    assert!(w.dead_letters().await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn private_log_entries_filed_by_an_older_ticketbridge_are_recognised() {
    use itop_bridge::fingerprint::{entry_hash, legacy_entry_hash};
    let w = world().await;
    let (e, i) = notes_filed_both_ways(&w).await;
    // The links as the previous version made them: keyed by the old hash.
    let links = w
        .app
        .store
        .links(&LinkFilter {
            kind: Some("itop.log".into()),
            limit: Some(100),
            ..LinkFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(links.len(), 2);
    let mut entries: Vec<(String, itop::CaseLogEntry)> = Vec::new();
    for (side, sim, id) in [("external", &w.ext, e), ("internal", &w.int, i)] {
        let object = json!({"private_log": sim.object("UserRequest", id).unwrap()["private_log"]});
        for entry in itop::CaseLogEntry::parse_log(object.get("private_log")) {
            entries.push((side.to_string(), entry));
        }
    }
    for link in &links {
        let (side, entry) = entries
            .iter()
            .find(|(side, entry)| link.source_id == format!("{side}:{}", entry_hash(entry)))
            .unwrap();
        w.app
            .store
            .put_link(&store::NewLink {
                kind: link.kind.clone(),
                source_system: link.source_system.clone(),
                source_id: format!("{side}:{}", legacy_entry_hash(entry)),
                target_system: link.target_system.clone(),
                target_id: link.target_id.clone(),
                state: link.state,
                data: link.data.clone(),
            })
            .await
            .unwrap();
        w.app.store.delete_link(link.id).await.unwrap();
        // ... and the file named after the old hash.
        let (sim, ticket) = if side == "external" {
            (&w.int, i)
        } else {
            (&w.ext, e)
        };
        let file = sim
            .attachments("UserRequest", ticket)
            .into_iter()
            .find(|a| Some(a.id.to_string()) == link.target_id)
            .unwrap();
        let stamp: String = entry.date.chars().filter(char::is_ascii_digit).collect();
        let legacy = legacy_entry_hash(entry);
        use base64::Engine;
        let r = sim
            .perform(json!({"operation":"core/update","class":"Attachment","key":file.id,"comment":"old",
                "fields":{"contents":{"data":base64::engine::general_purpose::STANDARD.encode(&file.data),
                "filename":format!("private-log-{stamp}-{}.txt", &legacy[..12]),"mimetype":"text/plain","downloads_count":0}},
                "output_fields":"id"}))
            .await;
        assert_eq!(r["code"], 0, "{r}");
    }
    w.settle().await;
    sync_again(&w, e, i).await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    assert_eq!(w.ext.attachments("UserRequest", e).len(), 1);
    // Linked again under the stable identity: an upgrade of iTop now changes nothing.
    for sim in [&w.ext, &w.int] {
        sim.rerender_case_log_text(str::to_uppercase);
    }
    sync_again(&w, e, i).await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    assert_eq!(w.ext.attachments("UserRequest", e).len(), 1);
    w.stop().await;
}

#[tokio::test]
async fn internal_status_changes_reach_external_with_required_fields() {
    let w = world().await;
    let (e, i) = w.mirrored("Status back").await;
    w.act(
        &w.int,
        stimulus(i, "ev_assign", json!({"team_id":37,"agent_id":13})),
    )
    .await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "assigned");
    // External defaults, not the internal agent: agents are not synchronised.
    assert_eq!(field(&w.ext, "UserRequest", e, "agent_id"), "7");

    w.act(
        &w.int,
        stimulus(
            i,
            "ev_pending",
            json!({"pending_reason":"waiting for parts"}),
        ),
    )
    .await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "pending");
    assert_eq!(
        field(&w.ext, "UserRequest", e, "pending_reason"),
        "waiting for parts"
    );

    w.act(&w.int, stimulus(i, "ev_assign", json!({}))).await;
    w.act(
        &w.int,
        stimulus(
            i,
            "ev_resolve",
            json!({"solution":"replaced the fuser","resolution_code":"hardware repair"}),
        ),
    )
    .await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "resolved");
    assert!(field(&w.ext, "UserRequest", e, "solution").contains("replaced the fuser"));
    assert_eq!(
        field(&w.ext, "UserRequest", e, "resolution_code"),
        "hardware repair"
    );
    // The external echoes (update-ticket for each bridge stimulus) changed nothing inside.
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "resolved");
    assert!(w.int.attachments("UserRequest", i).is_empty());
    let audit = w.app.store.audit_entries(500).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "echo_dropped"),
        "no echo was recognised"
    );
    w.stop().await;
}

#[tokio::test]
async fn external_status_changes_reach_internal() {
    let w = world().await;
    let (e, i) = w.mirrored("Status forth").await;
    w.act(
        &w.ext,
        stimulus(e, "ev_assign", json!({"team_id":37,"agent_id":7})),
    )
    .await;
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "assigned");
    assert_eq!(field(&w.int, "UserRequest", i, "agent_id"), "9");
    w.act(
        &w.ext,
        stimulus(e, "ev_resolve", json!({"solution":"customer fixed it"})),
    )
    .await;
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "resolved");
    assert!(field(&w.int, "UserRequest", i, "solution").contains("customer fixed it"));
    // Internal state-change echoes did not bounce: external still resolved, one ticket each.
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "resolved");
    w.stop().await;
}

#[tokio::test]
async fn internal_tickets_are_not_pushed_to_external() {
    let w = world().await;
    let before = w.ext.ids("UserRequest").len();
    let r = w
        .int
        .perform_as(
            "admin",
            json!({"operation":"core/create","class":"UserRequest","comment":"ui",
            "fields":{"org_id":3,"caller_id":15,"title":"Provider only","description":"x"},"output_fields":"id"}),
        )
        .await;
    let id: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.act(
        &w.int,
        stimulus(id, "ev_assign", json!({"team_id":37,"agent_id":9})),
    )
    .await;
    w.act(&w.int, private_entry(id, "internal only")).await;
    w.upload(&w.int, id, "internal.txt", b"x").await;
    assert_eq!(w.ext.ids("UserRequest").len(), before);
    let audit = w.app.store.audit_entries(100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "not_synchronised"));
    w.stop().await;
}

#[tokio::test]
async fn keys_paths_and_payloads_are_checked() {
    let w = world().await;
    let body = json!({"class":"UserRequest","id":"1"});
    assert_eq!(
        w.post("/api/v1/update-ticket", "wrong", body.clone())
            .await
            .status(),
        401
    );
    assert_eq!(
        w.post(
            "/api/v1/update-ticket",
            OLD_KEY,
            json!({"class":"UserRequest"})
        )
        .await
        .status(),
        400
    );
    let r = w
        .post(
            "/hooks/itop/bridge/internal/ticket-state-change",
            OLD_KEY,
            json!({"event":"ticket assigned","id":"99"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["side"], "internal");
    assert_eq!(
        w.post(
            "/hooks/itop/bridge/elsewhere/update-ticket",
            KEY,
            body.clone()
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        w.post(
            "/hooks/itop/nobody/external/update-ticket",
            KEY,
            body.clone()
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        w.post(
            "/api/v1/update-attachment",
            KEY,
            json!({"event":"attachment.update","source":"mars","attachment_id":"1"})
        )
        .await
        .status(),
        400
    );
    w.stop().await;
}

#[tokio::test]
async fn out_of_order_and_lost_create_still_mirror_once() {
    let w = world().await;
    // The create webhook is lost (receiver down)...
    w.relay.dropping.store(true, Ordering::SeqCst);
    let e = w.human_creates_external_ticket("Lost create").await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    assert!(w.internal_of(e).is_none());
    // ...an update arrives first, then the create, late.
    w.act(&w.ext, private_entry(e, "note")).await;
    let create = json!({"event":"ticket.create","class":"UserRequest","id":e.to_string(),"ref":"R","title":"Lost create",
        "description":"x","status":"new","caller_id":"Christie","org_id":"Demo","team_id":"undefined","operator_id":"undefined","priority":"4"});
    w.post("/api/v1/create-ticket", KEY, create).await;
    w.settle().await;
    let i = w.internal_of(e).expect("mirrored");
    let mirrored: Vec<u64> = w
        .int
        .ids("UserRequest")
        .into_iter()
        .filter(|id| field(&w.int, "UserRequest", *id, "title") == "Lost create")
        .collect();
    assert_eq!(mirrored, vec![i]);
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    w.stop().await;
}

/// Internal tickets mirroring external ticket `e` (by the bridge's marker).
fn mirrors_of(w: &World, e: u64) -> Vec<u64> {
    let marker = format!("[ticketbridge:bridge:{e}]");
    w.int
        .ids("UserRequest")
        .into_iter()
        .filter(|id| field(&w.int, "UserRequest", *id, "description").contains(&marker))
        .collect()
}

#[tokio::test]
async fn a_lost_create_webhook_is_repaired_by_the_reconciler_once() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let w = world_on(store, Some(dir), "300ms").await;
    // Every webhook is lost, and nothing else ever mentions the ticket.
    w.relay.dropping.store(true, Ordering::SeqCst);
    let e = w.human_creates_external_ticket("Never announced").await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    wait_for("the reconciler mirrors it", DEADLINE, || async {
        w.internal_of(e).map(|_| ())
    })
    .await
    .unwrap();
    // Several more rounds (and the overlap re-finding it) add nothing.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    w.settle().await;
    let mirrors = mirrors_of(&w, e);
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    assert_eq!(
        field(&w.int, "UserRequest", mirrors[0], "title"),
        "Never announced"
    );
    assert_eq!(field(&w.int, "UserRequest", mirrors[0], "org_id"), "3");
    let audit = w.app.store.audit_entries(500).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "unlinked_ticket_found"));
    w.stop().await;
}

#[tokio::test]
async fn a_file_refused_for_good_does_not_stop_the_other_files_or_the_status() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    // PHP's post_max_size at 16 KiB: a larger request reaches iTop without
    // its form fields (code 2, not worth retrying).
    let w = world_with(
        store,
        Some(dir),
        "1h",
        |_, c| c.post_max_size = 16 * 1024,
        "",
    )
    .await;
    let (e, i) = w.mirrored("Big file").await;
    w.upload(&w.ext, e, "big.log", &vec![b'x'; 64 * 1024]).await;
    w.upload(&w.ext, e, "small.txt", b"small").await;
    let files = w.int.attachments("UserRequest", i);
    assert_eq!(
        files
            .iter()
            .map(|f| f.filename.as_str())
            .collect::<Vec<_>>(),
        vec!["small.txt"]
    );
    w.act(
        &w.ext,
        stimulus(e, "ev_assign", json!({"team_id":37,"agent_id":7})),
    )
    .await;
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "assigned");
    assert_eq!(field(&w.int, "UserRequest", i, "agent_id"), "9");
    let audit = w.app.store.audit_entries(500).await.unwrap();
    let refused: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "item_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].detail["error"]
            .as_str()
            .unwrap()
            .contains("code 2")
    );
    // The refusal is noted: the next run does not send the file again.
    let creates = w.int.calls("core/create");
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    w.settle().await;
    assert_eq!(w.int.calls("core/create"), creates);
    assert!(w.dead_letters().await.is_empty());
    w.stop().await;
}

/// The provider's iTop has a resolution code the customer's lacks.
async fn world_with_a_provider_only_code(source_extra: &str) -> World {
    let (store, dir) = store::testing::fresh_sqlite().await;
    world_with(
        store,
        Some(dir),
        "1h",
        |side, c| {
            if side == "internal" {
                c.extra_enum_values = vec![("resolution_code".into(), "known error".into())];
            }
        },
        source_extra,
    )
    .await
}

/// Provider side: assigned, then resolved with the provider-only code.
async fn resolve_inside_with_a_provider_only_code(w: &World, i: u64) {
    w.act(
        &w.int,
        stimulus(i, "ev_assign", json!({"team_id":37,"agent_id":13})),
    )
    .await;
    w.act(
        &w.int,
        stimulus(
            i,
            "ev_resolve",
            json!({"solution":"a known error","resolution_code":"known error"}),
        ),
    )
    .await;
}

#[tokio::test]
async fn a_refused_status_push_is_a_dead_letter_once_and_tried_again_when_a_ticket_changes() {
    // The configured code is unknown to the customer's iTop too.
    let w = world_with_a_provider_only_code(r#"resolution_code = "not a code""#).await;
    let (e, i) = w.mirrored("Refused resolve").await;
    resolve_inside_with_a_provider_only_code(&w, i).await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "assigned");
    let dead = w.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let error = dead[0].last_error.clone().unwrap_or_default();
    let reference = field(&w.ext, "UserRequest", e, "ref");
    for part in [
        format!("UserRequest::{e} ({reference})"),
        "ev_resolve".to_string(),
        "Value not allowed".to_string(),
        "resolved".to_string(),
    ] {
        assert!(error.contains(&part), "{part:?} not in {error}");
    }
    let audit = w.app.store.audit_entries(500).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "stimulus_refused" && a.object_key == format!("UserRequest::{e}")),
        "no audit line"
    );

    // Sweeps with nothing changed neither send the call again nor add dead letters.
    let stimuli = w.ext.calls("core/apply_stimulus");
    w.reconcile_now().await;
    w.reconcile_now().await;
    assert_eq!(w.ext.calls("core/apply_stimulus"), stimuli);
    assert_eq!(w.dead_letters().await.len(), 1);

    // The provider corrects the code (no webhook fires for it): the next
    // sweep sees the change and the push goes through.
    w.act(
        &w.int,
        json!({"operation":"core/update","class":"UserRequest","key":i,"comment":"ui",
            "fields":{"resolution_code":"bug fixed"},"output_fields":"id"}),
    )
    .await;
    w.reconcile_now().await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "resolved");
    assert_eq!(
        field(&w.ext, "UserRequest", e, "resolution_code"),
        "bug fixed"
    );
    assert_eq!(w.dead_letters().await.len(), 1);
    w.stop().await;
}

#[tokio::test]
async fn a_refused_resolution_code_is_replaced_by_the_configured_one() {
    let w = world_with_a_provider_only_code("").await;
    let (e, i) = w.mirrored("Fallback code").await;
    resolve_inside_with_a_provider_only_code(&w, i).await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "resolved");
    assert_eq!(field(&w.ext, "UserRequest", e, "resolution_code"), "other");
    assert!(field(&w.ext, "UserRequest", e, "solution").contains("a known error"));
    assert!(w.dead_letters().await.is_empty());
    let audit = w.app.store.audit_entries(500).await.unwrap();
    let replaced: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "resolution_code_replaced")
        .collect();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(replaced[0].detail["refused"], "known error");
    w.stop().await;
}

#[tokio::test]
async fn an_internal_change_is_not_hidden_by_an_unmapped_external_one() {
    let w = world().await;
    let (e, i) = w.mirrored("Both moved").await;
    w.relay.dropping.store(true, Ordering::SeqCst);
    // External: escalated by its SLA (not in the default map). Internal: assigned.
    w.act(&w.ext, stimulus(e, "ev_timeout", json!({}))).await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "escalated_tto");
    w.act(
        &w.int,
        stimulus(i, "ev_assign", json!({"team_id":37,"agent_id":13})),
    )
    .await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    w.reconcile_now().await;
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "assigned");
    assert_eq!(field(&w.ext, "UserRequest", e, "agent_id"), "7");
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "assigned");
    w.stop().await;
}

#[tokio::test]
async fn pairs_closed_on_both_sides_cost_the_reconciler_nothing() {
    let w = world().await;
    for n in 0..3 {
        let (e, i) = w.mirrored(&format!("Done {n}")).await;
        w.act(
            &w.ext,
            stimulus(e, "ev_assign", json!({"team_id":37,"agent_id":7})),
        )
        .await;
        w.act(
            &w.ext,
            stimulus(e, "ev_resolve", json!({"solution":"done"})),
        )
        .await;
        w.act(&w.ext, stimulus(e, "ev_close", json!({}))).await;
        assert_eq!(field(&w.int, "UserRequest", i, "status"), "closed");
    }
    w.reconcile_now().await;
    let (ext_before, int_before) = (w.ext.calls("requests"), w.int.calls("requests"));
    w.reconcile_now().await;
    w.reconcile_now().await;
    // Per run: the query for tickets changed since the cursor, and one
    // attachment listing per side for all the closed pairs; nothing per pair.
    assert!(
        w.ext.calls("requests") - ext_before <= 4,
        "{:?}",
        w.ext.counters()
    );
    assert!(
        w.int.calls("requests") - int_before <= 2,
        "{:?}",
        w.int.counters()
    );
    w.stop().await;
}

/// A file added through REST to a ticket closed on both sides fires no
/// webhook and leaves its `last_update` as it was: the reconciler's listing
/// of the closed pairs' attachment ids finds it and it is copied; one
/// deleted through REST has its copy deleted.
#[tokio::test]
async fn files_added_through_rest_to_closed_pairs_are_copied_by_the_reconciler() {
    use base64::Engine;
    let w = world().await;
    let (e, i) = w.mirrored("Closed with a late file").await;
    let kept = w.upload(&w.ext, e, "kept.txt", b"kept").await;
    w.act(
        &w.ext,
        stimulus(e, "ev_assign", json!({"team_id":37,"agent_id":7})),
    )
    .await;
    w.act(
        &w.ext,
        stimulus(e, "ev_resolve", json!({"solution":"done"})),
    )
    .await;
    w.act(&w.ext, stimulus(e, "ev_close", json!({}))).await;
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "closed");
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    w.reconcile_now().await;
    let last_update = field(&w.ext, "UserRequest", e, "last_update");
    let contents = json!({"data": base64::engine::general_purpose::STANDARD.encode(b"late"),
        "filename": "late.txt", "mimetype": "text/plain"});
    let r = w
        .ext
        .perform_as(
            "admin",
            json!({"operation":"core/create","class":"Attachment","comment":"rest",
            "fields":{"item_class":"UserRequest","item_id":e,"item_org_id":3,"contents":contents},"output_fields":"id"}),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(field(&w.ext, "UserRequest", e, "last_update"), last_update);
    w.reconcile_now().await;
    let names: Vec<String> = w
        .int
        .attachments("UserRequest", i)
        .into_iter()
        .map(|f| f.filename)
        .collect();
    assert_eq!(names, vec!["kept.txt", "late.txt"]);
    // Deleted through REST (its webhook lost): the copy goes at the next sweep.
    w.relay.dropping.store(true, Ordering::SeqCst);
    w.act(
        &w.ext,
        json!({"operation":"core/delete","class":"Attachment","key":kept,"comment":"rest"}),
    )
    .await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    w.reconcile_now().await;
    let names: Vec<String> = w
        .int
        .attachments("UserRequest", i)
        .into_iter()
        .map(|f| f.filename)
        .collect();
    assert_eq!(names, vec!["late.txt"]);
    assert!(w.dead_letters().await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn the_reconciler_copies_a_missed_file_without_downloading_linked_ones() {
    let w = world().await;
    let (e, i) = w.mirrored("Heavy").await;
    let big = vec![b'y'; 300 * 1024];
    w.upload(&w.ext, e, "big.bin", &big).await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 1);
    // The next upload's webhook is lost.
    w.relay.dropping.store(true, Ordering::SeqCst);
    w.upload(&w.ext, e, "late.txt", b"late file").await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    let bytes = |sim: &RunningItop| sim.calls("response_bytes");
    let (ext_before, int_before) = (bytes(&w.ext), bytes(&w.int));
    w.reconcile_now().await;
    let files = w.int.attachments("UserRequest", i);
    assert_eq!(
        files
            .iter()
            .map(|f| (f.filename.as_str(), f.data.len()))
            .collect::<Vec<_>>(),
        vec![("big.bin", big.len()), ("late.txt", 9)]
    );
    assert_eq!(files[1].data, b"late file");
    assert_eq!(files[1].mimetype, "text/plain");
    // The 300 KiB file already linked was not read again on either side.
    assert!(
        bytes(&w.ext) - ext_before < 100 * 1024,
        "{}",
        bytes(&w.ext) - ext_before
    );
    assert!(
        bytes(&w.int) - int_before < 100 * 1024,
        "{}",
        bytes(&w.int) - int_before
    );
    w.stop().await;
}

/// UI-style in-place change of an attachment's contents (fires its webhook).
async fn replace_contents(w: &World, sim: &RunningItop, id: u64, name: &str, data: &[u8]) {
    use base64::Engine;
    w.act(sim, json!({"operation":"core/update","class":"Attachment","key":id,"comment":"ui",
        "fields":{"contents":{"data":base64::engine::general_purpose::STANDARD.encode(data),"filename":name,"mimetype":"text/plain","downloads_count":0}},
        "output_fields":"id"})).await;
}

/// (filename, contents) of a ticket's attachments, by id.
fn files_of(sim: &RunningItop, ticket: u64) -> Vec<(String, Vec<u8>)> {
    sim.attachments("UserRequest", ticket)
        .into_iter()
        .map(|f| (f.filename, f.data))
        .collect()
}

#[tokio::test]
async fn files_that_together_exceed_one_answer_are_mirrored_one_by_one() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    // Answers of at most ~293 KiB: one 100 KiB file (base64) fits, three do not.
    const CAP: usize = 300_000;
    let w = world_with_targets(
        store,
        Some(dir),
        "1h",
        |_, _| {},
        "",
        &format!("max_response_bytes = {CAP}"),
    )
    .await;
    let (e, i) = w.mirrored("Many files").await;
    let file = |n: u8| vec![b'a' + n; 100 * 1024];
    let mut ext_ids = Vec::new();
    for n in 0..3 {
        let name = format!("scan-{n}.txt");
        ext_ids.push(w.upload(&w.ext, e, &name, &file(n)).await);
    }
    w.upload(&w.int, i, "report.txt", &file(5)).await;
    assert!(
        w.failed_jobs().await.is_empty(),
        "{:?}",
        w.failed_jobs().await
    );
    let names = |sim: &RunningItop, ticket| {
        let mut names: Vec<String> = files_of(sim, ticket).into_iter().map(|f| f.0).collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&w.int, i),
        vec!["report.txt", "scan-0.txt", "scan-1.txt", "scan-2.txt"]
    );
    let mut ext_files = files_of(&w.ext, e);
    let mut int_files = files_of(&w.int, i);
    ext_files.sort();
    int_files.sort();
    assert_eq!(ext_files, int_files);
    let total: usize = ext_files.iter().map(|f| f.1.len() * 4 / 3).sum();
    assert!(total > CAP, "the files together must not fit in one answer");

    // A changed file of the full ticket is compared and copied too.
    replace_contents(&w, &w.ext, ext_ids[1], "scan-1.txt", &file(7)).await;
    let copy = files_of(&w.int, i)
        .into_iter()
        .find(|f| f.0 == "scan-1.txt")
        .unwrap();
    assert_eq!(copy.1, file(7));

    // Every kind of run finds nothing left to do, and nothing failed.
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    w.settle().await;
    w.reconcile_now().await;
    assert_eq!(w.ext.attachments("UserRequest", e).len(), 4);
    assert_eq!(w.int.attachments("UserRequest", i).len(), 4);
    assert!(
        w.failed_jobs().await.is_empty(),
        "{:?}",
        w.failed_jobs().await
    );
    let audit = w.app.store.audit_entries(500).await.unwrap();
    assert!(
        !audit.iter().any(|a| a.action == "item_refused"),
        "{audit:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_file_deleted_between_listing_and_reading_counts_as_deleted() {
    let w = world().await;
    let (e, i) = w.mirrored("Vanishing files").await;
    let a = w.upload(&w.ext, e, "a.txt", b"first").await;
    let b = w.upload(&w.ext, e, "b.txt", b"second").await;
    let int_files = w.int.attachments("UserRequest", i);
    assert_eq!(int_files.len(), 2);
    let kept = int_files[1].id;
    // A file whose webhook is lost: unlinked.
    w.relay.dropping.store(true, Ordering::SeqCst);
    let x = w.upload(&w.ext, e, "x.txt", b"unlinked").await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    // Someone deletes a (linked) and x (unlinked) right after the bridge
    // listed the external ticket's files, before it reads them.
    let listing = format!("item_id = {e}");
    for id in [a, x] {
        let listing = listing.clone();
        w.ext.remove_after(
            move |r| {
                r["class"] == "Attachment"
                    && r["key"].as_str().is_some_and(|k| k.ends_with(&listing))
            },
            "Attachment",
            id,
        );
    }
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    w.settle().await;
    assert_eq!(
        w.ext
            .attachments("UserRequest", e)
            .iter()
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        vec![b]
    );
    // a's copy went with it; x was not copied; the run did not fail.
    assert_eq!(
        w.int
            .attachments("UserRequest", i)
            .iter()
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        vec![kept]
    );
    assert!(
        w.failed_jobs().await.is_empty(),
        "{:?}",
        w.failed_jobs().await
    );
    let audit = w.app.store.audit_entries(500).await.unwrap();
    assert!(
        audit.iter().any(|l| l.action == "attachment_deleted"
            && l.object_key == format!("Attachment::{}", int_files[0].id)),
        "{audit:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_side_down_is_retried_and_lost_webhooks_are_reconciled() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let w = world_on(store, Some(dir), "300ms").await;
    let (e, i) = w.mirrored("Resilience").await;

    // External iTop down while the internal status changes: the job retries.
    w.ext.set_down(true);
    let r = w
        .int
        .perform_as(
            "admin",
            stimulus(i, "ev_assign", json!({"team_id":37,"agent_id":9})),
        )
        .await;
    assert_eq!(r["code"], 0);
    tokio::task::yield_now().await;
    w.ext.set_down(false);
    wait_for("external assigned", DEADLINE, || async {
        (field(&w.ext, "UserRequest", e, "status") == "assigned").then_some(())
    })
    .await
    .unwrap();

    // Transient faults on the internal side while a file is copied.
    w.int.fail_next_n(2, Fault::HttpStatus(503));
    w.upload(&w.ext, e, "retry.txt", b"r").await;
    wait_for("file copied", DEADLINE, || async {
        (w.int.attachments("UserRequest", i).len() == 1).then_some(())
    })
    .await
    .unwrap();

    // Webhooks lost entirely: the reconciler repairs status, attachment and log.
    w.relay.dropping.store(true, Ordering::SeqCst);
    let r = w
        .ext
        .perform_as(
            "admin",
            stimulus(e, "ev_pending", json!({"pending_reason":"customer away"})),
        )
        .await;
    assert_eq!(r["code"], 0);
    let r = w
        .ext
        .perform_as("admin", private_entry(e, "lost note"))
        .await;
    assert_eq!(r["code"], 0);
    wait_for("reconciled", DEADLINE, || async {
        (field(&w.int, "UserRequest", i, "status") == "pending"
            && w.int.attachments("UserRequest", i).len() == 2)
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        field(&w.int, "UserRequest", i, "pending_reason"),
        "customer away"
    );
    w.relay.dropping.store(false, Ordering::SeqCst);
    w.stop().await;
}

#[tokio::test]
async fn mirrors_on_postgres() {
    let Some(store) = store::testing::fresh_postgres().await else {
        return;
    };
    let w = world_on(store, None, "1h").await;
    let (e, i) = w.mirrored("On PostgreSQL").await;
    w.act(&w.ext, private_entry(e, "pg note")).await;
    w.upload(&w.ext, e, "pg.txt", b"pg").await;
    w.act(
        &w.int,
        stimulus(i, "ev_assign", json!({"team_id":37,"agent_id":9})),
    )
    .await;
    assert_eq!(w.int.attachments("UserRequest", i).len(), 2);
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "assigned");
    w.stop().await;
}

/// The markers by which the bridge knows its own status writes come back
/// match only within their minute: the reconciler forgets old ones, and
/// only those (an attachment's marker is kept).
#[tokio::test]
async fn old_ticket_state_markers_are_forgotten_by_the_reconciler() {
    let w = world().await;
    let store = &w.app.store;
    store
        .remember_write("itop:int", "UserRequest::1", "state:1:old")
        .await
        .unwrap();
    store
        .remember_write("itop:int", "Attachment::1", "sha:old")
        .await
        .unwrap();
    store
        .remember_write("itop:int", "UserRequest::2", "state:2:recent")
        .await
        .unwrap();
    // Written an hour ago.
    let path = w._dir.as_ref().unwrap().path().join("store.db");
    let db = rusqlite::Connection::open(path).unwrap();
    let hour_ago = store::now_ms() - 3_600_000;
    db.execute(
        "UPDATE own_writes SET created_at = ?1 WHERE fingerprint IN ('state:1:old', 'sha:old')",
        [hour_ago],
    )
    .unwrap();
    drop(db);
    w.reconcile_now().await;
    assert!(
        !store
            .is_own_write("itop:int", "UserRequest::1", "state:1:old")
            .await
            .unwrap()
    );
    assert!(
        store
            .is_own_write("itop:int", "UserRequest::2", "state:2:recent")
            .await
            .unwrap()
    );
    assert!(
        store
            .is_own_write("itop:int", "Attachment::1", "sha:old")
            .await
            .unwrap()
    );
    w.stop().await;
}

/// Provider resolved → (reopened, on hold) while webhooks were lost; the
/// sweep walks the external ticket resolved → assigned → pending, and the
/// second stimulus fails once (HTTP 503). The retry must finish the walk:
/// the external `assigned` it finds is the bridge's own half-way write, not
/// a customer's change to push back over the agent's `pending`.
#[tokio::test]
async fn a_status_walk_that_fails_halfway_is_finished_not_pushed_back() {
    let w = world().await;
    let (e, i) = w.mirrored("Halfway").await;
    w.act(
        &w.ext,
        stimulus(e, "ev_assign", json!({"team_id":37,"agent_id":7})),
    )
    .await;
    w.act(
        &w.ext,
        stimulus(e, "ev_resolve", json!({"solution":"done"})),
    )
    .await;
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "resolved");
    w.relay.dropping.store(true, Ordering::SeqCst);
    w.act(&w.int, stimulus(i, "ev_reopen", json!({}))).await;
    w.act(
        &w.int,
        stimulus(
            i,
            "ev_pending",
            json!({"pending_reason":"waiting for parts"}),
        ),
    )
    .await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    w.ext.fail_when(
        |r| r["operation"] == "core/apply_stimulus" && r["stimulus"] == "ev_pending",
        Fault::HttpStatus(503),
        1,
    );
    w.reconcile_now().await;
    assert!(!w.failed_jobs().await.is_empty(), "the fault was not hit");
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "pending");
    assert_eq!(
        field(&w.int, "UserRequest", i, "pending_reason"),
        "waiting for parts"
    );
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "pending");
    assert!(w.dead_letters().await.is_empty());
    w.stop().await;
}

/// iTop sends an attachment's deletion webhook before the file is gone (the
/// simulator too): deleting the bridge's copy on either side deletes the
/// original on the other, by that webhook alone (the sweep is an hour away).
#[tokio::test]
async fn a_deleted_copy_deletes_its_original_without_a_sweep() {
    let w = world().await;
    let (e, i) = w.mirrored("Delete the copy").await;
    let a = w.upload(&w.ext, e, "a.txt", b"first").await;
    let copies = w.int.attachments("UserRequest", i);
    assert_eq!(copies.len(), 1);
    w.act(
        &w.int,
        json!({"operation":"core/delete","class":"Attachment","key":copies[0].id,"comment":"ui"}),
    )
    .await;
    wait_for("external original deleted", DEADLINE, || async {
        w.ext.object("Attachment", a).is_none().then_some(())
    })
    .await
    .unwrap();

    let b = w.upload(&w.int, i, "b.txt", b"second").await;
    let copies = w.ext.attachments("UserRequest", e);
    assert_eq!(copies.len(), 1);
    w.act(
        &w.ext,
        json!({"operation":"core/delete","class":"Attachment","key":copies[0].id,"comment":"ui"}),
    )
    .await;
    wait_for("internal original deleted", DEADLINE, || async {
        w.int.object("Attachment", b).is_none().then_some(())
    })
    .await
    .unwrap();
    w.settle().await;
    assert!(w.int.attachments("UserRequest", i).is_empty());
    assert!(w.ext.attachments("UserRequest", e).is_empty());
    w.stop().await;
}

/// A person deletes an original; iTop's webhook comes first and the run it
/// causes still finds the file (iTop had not removed it yet): the file is
/// unchanged since the bridge synchronised it, so its pair is compared again
/// a little later, and the copy goes without a sweep.
#[tokio::test]
async fn an_original_still_there_when_its_deletion_webhook_is_handled_is_deleted_later() {
    let w = world().await;
    let (e, i) = w.mirrored("Slow deletion").await;
    let a = w.upload(&w.ext, e, "a.txt", b"first").await;
    let copy = w.int.attachments("UserRequest", i)[0].id;
    // The deletion webhook, handled while the file is still there...
    let r = w
        .post(
            "/api/v1/update-attachment",
            KEY,
            json!({"event":"attachment.update","source":"external","attachment_id":a.to_string(),
                "item_class":"UserRequest","item_id":e.to_string()}),
        )
        .await;
    assert_eq!(r.status(), 200);
    w.settle().await;
    assert!(w.int.object("Attachment", copy).is_some());
    // ...then iTop removes it (its own webhook is the one above).
    w.relay.dropping.store(true, Ordering::SeqCst);
    w.act(
        &w.ext,
        json!({"operation":"core/delete","class":"Attachment","key":a,"comment":"ui"}),
    )
    .await;
    w.relay.dropping.store(false, Ordering::SeqCst);
    wait_for("internal copy deleted", DEADLINE, || async {
        w.int.object("Attachment", copy).is_none().then_some(())
    })
    .await
    .unwrap();
    assert!(w.dead_letters().await.is_empty());
    w.stop().await;
}

/// The provider's iTop lacks an urgency the customer's has: it refuses the
/// mirror's create for good (code 100). One dead letter and one create, not
/// one more of each per sweep; once the customer's ticket changes, the
/// create is sent again and succeeds.
#[tokio::test]
async fn a_create_refused_for_good_waits_for_the_external_ticket_to_change() {
    let (store, dir) = store::testing::fresh_sqlite().await;
    let w = world_with(
        store,
        Some(dir),
        "1h",
        |side, c| {
            if side == "external" {
                c.extra_enum_values = vec![("urgency".into(), "5".into())];
            }
        },
        "",
    )
    .await;
    let creates = w.int.calls("core/create");
    let r = w
        .ext
        .perform_as(
            "admin",
            json!({"operation":"core/create","class":"UserRequest","comment":"ui",
               "fields":{"org_id":3,"caller_id":15,"title":"Odd urgency","description":"<p>x</p>","urgency":"5"},
               "output_fields":"id"}),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    let e: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.settle().await;
    assert_eq!(w.int.calls("core/create"), creates + 1);
    for _ in 0..3 {
        w.reconcile_now().await;
    }
    assert_eq!(w.int.calls("core/create"), creates + 1);
    let dead = w.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(w.internal_of(e).is_none());
    w.act(
        &w.ext,
        json!({"operation":"core/update","class":"UserRequest","key":e,"comment":"ui",
            "fields":{"urgency":"2"},"output_fields":"id"}),
    )
    .await;
    let i = w.internal_of(e).expect("mirrored once the ticket changed");
    assert_eq!(field(&w.int, "UserRequest", i, "urgency"), "2");
    assert_eq!(w.int.calls("core/create"), creates + 2);
    assert_eq!(w.dead_letters().await.len(), 1);
    w.stop().await;
}

/// An agent takes the new internal ticket while the bridge's first run is
/// still copying its files: the state-change webhook finds the pair (the
/// internal id is on the link from the create on) and the external ticket
/// follows without a sweep.
#[tokio::test]
async fn an_internal_change_during_the_first_run_is_not_lost() {
    use base64::Engine;
    let w = world().await;
    w.relay.dropping.store(true, Ordering::SeqCst);
    let r = w
        .ext
        .perform_as(
            "admin",
            json!({"operation":"core/create","class":"UserRequest","comment":"ui",
               "fields":{"org_id":3,"caller_id":15,"title":"Slow first run","description":"<p>x</p>"},
               "output_fields":"id"}),
        )
        .await;
    let e: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for n in 0..3 {
        let contents = json!({"data": base64::engine::general_purpose::STANDARD.encode(format!("file {n}")),
            "filename": format!("f{n}.txt"), "mimetype": "text/plain"});
        let r = w
            .ext
            .perform_as(
                "admin",
                json!({"operation":"core/create","class":"Attachment","comment":"ui",
                "fields":{"item_class":"UserRequest","item_id":e,"item_org_id":3,"contents":contents},"output_fields":"id"}),
            )
            .await;
        assert_eq!(r["code"], 0, "{r}");
    }
    w.relay.dropping.store(false, Ordering::SeqCst);
    w.int.set_latency(Duration::from_millis(400));
    w.post(
        "/api/v1/update-ticket",
        KEY,
        json!({"class":"UserRequest","id":e.to_string()}),
    )
    .await;
    let i = wait_for("internal ticket created", DEADLINE, || async {
        w.internal_of(e)
    })
    .await
    .unwrap();
    assert!(
        w.int.attachments("UserRequest", i).len() < 3,
        "the first run was over before the agent acted"
    );
    let r = w
        .int
        .perform_as(
            "admin",
            stimulus(i, "ev_assign", json!({"team_id":37,"agent_id":13})),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    w.settle().await;
    w.int.set_latency(Duration::ZERO);
    let audit = w.app.store.audit_entries(500).await.unwrap();
    assert!(
        !audit.iter().any(|a| a.action == "not_synchronised"),
        "{audit:?}"
    );
    assert_eq!(w.int.attachments("UserRequest", i).len(), 3);
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "assigned");
    assert!(w.dead_letters().await.is_empty());
    w.stop().await;
}

/// A retried create looks for the ticket an earlier attempt made by the
/// bridge's own marker paragraph only: not a ticket whose text quotes the
/// marker, nor one already linked to another external ticket.
#[tokio::test]
async fn a_retried_create_adopts_only_the_bridges_own_ticket() {
    let w = world().await;
    let (e1, i1) = w.mirrored("First").await;
    // The next external ticket's id and ref.
    let e2 = e1 + 1;
    let ref1 = field(&w.ext, "UserRequest", e1, "ref");
    let n: u64 = ref1.trim_start_matches("R-").parse().unwrap();
    let ref2 = format!("R-{:06}", n + 1);
    let marker = format!("[ticketbridge:bridge:{e2}]");
    // A provider ticket quoting the bare marker, and the first pair's
    // internal ticket quoting the whole paragraph.
    let r = w
        .int
        .perform_as(
            "admin",
            json!({"operation":"core/create","class":"UserRequest","comment":"ui",
            "fields":{"org_id":3,"caller_id":15,"title":"Quote","description":format!("<p>The customer wrote {marker}</p>")},"output_fields":"id"}),
        )
        .await;
    let q: u64 = r["objects"].as_object().unwrap().values().next().unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let quoted = format!(
        "{}<p>{marker} {ref2}</p>",
        field(&w.int, "UserRequest", i1, "description")
    );
    w.act(
        &w.int,
        json!({"operation":"core/update","class":"UserRequest","key":i1,"comment":"ui",
            "fields":{"description":quoted},"output_fields":"id"}),
    )
    .await;
    let before = w.int.ids("UserRequest").len();
    // The first create of the next ticket fails (its retry looks for it).
    w.int.fail_when(
        |r| r["operation"] == "core/create" && r["class"] == "UserRequest",
        Fault::HttpStatus(503),
        1,
    );
    let e = w.human_creates_external_ticket("Second").await;
    assert_eq!(e, e2);
    assert_eq!(field(&w.ext, "UserRequest", e, "ref"), ref2);
    assert!(!w.failed_jobs().await.is_empty(), "the fault was not hit");
    let links = w
        .app
        .store
        .links(&LinkFilter {
            kind: Some("itop.ticket".into()),
            ..LinkFilter::default()
        })
        .await
        .unwrap();
    let target = |e: u64| {
        links
            .iter()
            .find(|l| l.source_id == e.to_string())
            .and_then(|l| l.target_id.clone())
    };
    assert_eq!(target(e1), Some(i1.to_string()));
    let i2: u64 = target(e2).expect("second pair linked").parse().unwrap();
    assert!(i2 != i1 && i2 != q, "adopted {i2}");
    assert!(
        field(&w.int, "UserRequest", i2, "description")
            .ends_with(&format!("<p>{marker} {ref2}</p>"))
    );
    assert_eq!(w.int.ids("UserRequest").len(), before + 1);
    w.stop().await;
}

/// While the bridge reads the files of a run caused by the customer's
/// `pending`, a provider agent puts the internal ticket on hold too: the
/// bridge reads it again before driving it, finds nothing left to do, and
/// neither dead-letters an invalid stimulus nor overwrites the agent's
/// reason.
#[tokio::test]
async fn a_state_reached_meanwhile_on_the_driven_side_is_not_a_dead_letter() {
    let w = world().await;
    let (e, i) = w.mirrored("Both on hold").await;
    w.act(
        &w.ext,
        stimulus(e, "ev_assign", json!({"team_id":37,"agent_id":7})),
    )
    .await;
    w.upload(&w.ext, e, "a.txt", b"first").await;
    w.upload(&w.ext, e, "b.txt", b"second").await;
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "assigned");
    assert_eq!(w.int.attachments("UserRequest", i).len(), 2);
    w.int.set_latency(Duration::from_millis(500));
    let r = w
        .ext
        .perform_as(
            "admin",
            stimulus(e, "ev_pending", json!({"pending_reason":"customer away"})),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = w
        .int
        .perform_as(
            "admin",
            stimulus(
                i,
                "ev_pending",
                json!({"pending_reason":"agent's own reason"}),
            ),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    w.settle().await;
    w.int.set_latency(Duration::ZERO);
    assert!(
        w.dead_letters().await.is_empty(),
        "{:?}",
        w.dead_letters().await
    );
    assert_eq!(field(&w.int, "UserRequest", i, "status"), "pending");
    assert_eq!(
        field(&w.int, "UserRequest", i, "pending_reason"),
        "agent's own reason"
    );
    assert_eq!(field(&w.ext, "UserRequest", e, "status"), "pending");
    assert_eq!(
        field(&w.ext, "UserRequest", e, "pending_reason"),
        "customer away"
    );
    w.stop().await;
}
