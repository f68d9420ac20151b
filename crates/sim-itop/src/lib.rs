//! A stateful iTop REST/JSON simulator (`webservices/rest.php`) on loopback.
//!
//! It matches a real iTop 3.2.0 as recorded in
//! `tests/fixtures/itop/real-transcripts.txt`: the same result codes, messages
//! and object shapes, the UserRequest lifecycle with the fields each transition
//! requires, case logs, attachments, the OQL subset clients send, and outgoing
//! webhooks shaped like those the seed's iTop set-up sends. Fault injection and
//! counters serve resilience tests.

mod clock;
mod config;
mod demo;
mod lifecycle;
mod ops;
mod oql;
mod pj;
mod schema;
mod server;
mod store;
mod values;
mod webhook;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{
    ADMIN_PASSWORD, Fault, ItopSimConfig, REST_LOGIN, REST_PASSWORD, REST_TOKEN, SimUser,
};
pub use webhook::{WebhookDelivery, WebhookSink, WebhookTrigger};

use server::{Faults, Shared};
use store::Db;

/// One case-log entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SimLogEntry {
    pub date: String,
    pub user_login: String,
    pub message: String,
    pub message_html: String,
}

/// One attachment as stored (contents decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct SimAttachment {
    pub id: u64,
    pub item_class: String,
    pub item_id: String,
    pub filename: String,
    pub mimetype: String,
    pub data: Vec<u8>,
}

/// Entry point: `ItopSim::start(config)`.
pub struct ItopSim;

impl ItopSim {
    /// Starts a simulator on 127.0.0.1 (port from the config, 0 = any).
    pub async fn start(config: ItopSimConfig) -> std::io::Result<RunningItop> {
        let mut db = Db::default();
        db.extra_enum_values = config.extra_enum_values.clone();
        if config.demo_data {
            demo::load(&mut db);
        }
        // The accounts, readable as iTop's User objects (`contactid` = Person).
        if let Some(def) = schema::class("UserLocal") {
            for user in &config.users {
                let mut account = store::Obj::new(def);
                account.id = user.user_id;
                account
                    .values
                    .insert("login", pj::Pj::s(user.login.clone()));
                account
                    .values
                    .insert("contactid", pj::Pj::s(user.contact_id.to_string()));
                db.insert(account);
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            db: Mutex::new(db),
            config,
            faults: Mutex::new(Faults::default()),
            counters: Mutex::new(BTreeMap::new()),
            deliveries: Mutex::new(Vec::new()),
            http,
        });
        let app = Router::new()
            .route("/webservices/rest.php", any(server::rest))
            // The size limit is PHP's (post_max_size), applied by the handler.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", shared.config.port)).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "itop simulator stopped with an error");
            }
        });
        Ok(RunningItop {
            shared,
            addr,
            cancel,
            task,
        })
    }
}

/// A running simulator. Dropping it does not stop the server; call `shutdown`.
pub struct RunningItop {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningItop {
    /// `http://127.0.0.1:PORT/webservices/rest.php`
    pub fn base_url(&self) -> String {
        format!("http://{}/webservices/rest.php", self.addr)
    }

    /// `http://127.0.0.1:PORT` (iTop's application root).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn rest_account(&self) -> Option<&SimUser> {
        self.shared.config.users.iter().find(|u| u.rest)
    }

    /// Login of the REST account.
    pub fn rest_user(&self) -> String {
        self.rest_account()
            .map(|u| u.login.clone())
            .unwrap_or_default()
    }

    pub fn rest_password(&self) -> String {
        self.rest_account()
            .map(|u| u.password.clone())
            .unwrap_or_default()
    }

    /// A token that logs in as the REST account, if one is configured.
    pub fn rest_token(&self) -> Option<String> {
        let login = self.rest_user();
        self.shared
            .config
            .tokens
            .iter()
            .find(|(_, l)| *l == login)
            .map(|(t, _)| t.clone())
    }

    /// All attributes (`*+`, plus `id`) of an object, as the REST API renders them.
    pub fn object(&self, class: &str, id: u64) -> Option<Value> {
        let db = self.shared.db.lock();
        let obj = db.get(class, id)?;
        let def = obj.def()?;
        let mut map = serde_json::Map::new();
        map.insert("id".into(), Value::String(id.to_string()));
        for a in def.attrs {
            if let Some(v) = db.field(obj, a.code) {
                map.insert(a.code.to_string(), v.to_value());
            }
        }
        Some(Value::Object(map))
    }

    /// Ids of all objects of `class` (or its subclasses), in iTop's default order.
    pub fn ids(&self, class: &str) -> Vec<u64> {
        self.shared.db.lock().select(class, &|_| true)
    }

    /// Objects of `class` whose attribute `field` equals `value` (as text).
    pub fn find(&self, class: &str, field: &str, value: &str) -> Vec<u64> {
        let db = self.shared.db.lock();
        db.select(class, &|o| db.field_text(o, field) == value)
    }

    /// Entries of a case log (`public_log` / `private_log`) in insertion order.
    pub fn case_log(&self, class: &str, id: u64, log: &str) -> Vec<SimLogEntry> {
        let db = self.shared.db.lock();
        let Some(entries) = db
            .get(class, id)
            .and_then(|o| o.values.get(log))
            .and_then(|l| l.get("entries"))
            .cloned()
        else {
            return Vec::new();
        };
        match entries {
            pj::Pj::Arr(items) => items
                .iter()
                .map(|e| SimLogEntry {
                    date: e.get("date").map(pj::Pj::text).unwrap_or_default(),
                    user_login: e.get("user_login").map(pj::Pj::text).unwrap_or_default(),
                    message: e.get("message").map(pj::Pj::text).unwrap_or_default(),
                    message_html: e.get("message_html").map(pj::Pj::text).unwrap_or_default(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Plays an iTop upgrade whose `utils::HtmlToText` renders differently:
    /// iTop stores a case-log entry's HTML and derives the plain `message`
    /// from it on every read, so after an upgrade every entry's `message`
    /// reads as `render(message_html)`. Nothing else of the entries changes.
    pub fn rerender_case_log_text(&self, render: impl Fn(&str) -> String) {
        let mut db = self.shared.db.lock();
        for obj in db.objects_mut() {
            for log in ["private_log", "public_log"] {
                let Some(pj::Pj::Obj(members)) = obj.values.get_mut(log) else {
                    continue;
                };
                for (name, entries) in members.iter_mut() {
                    let (true, pj::Pj::Arr(entries)) = (name == "entries", entries) else {
                        continue;
                    };
                    for entry in entries {
                        let html = entry
                            .get("message_html")
                            .map(pj::Pj::text)
                            .unwrap_or_default();
                        if let pj::Pj::Obj(fields) = entry {
                            for (field, value) in fields.iter_mut() {
                                if field == "message" {
                                    *value = pj::Pj::s(render(&html));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Attachments linked to (`item_class`, `item_id`), ordered by id.
    pub fn attachments(&self, item_class: &str, item_id: u64) -> Vec<SimAttachment> {
        use base64::Engine;
        let db = self.shared.db.lock();
        let id_text = item_id.to_string();
        let mut ids = db.select("Attachment", &|a| {
            a.text("item_class") == item_class && a.text("item_id") == id_text
        });
        ids.sort_unstable();
        ids.iter()
            .filter_map(|id| db.get("Attachment", *id))
            .map(|a| {
                let contents = a.values.get("contents");
                let get = |k: &str| {
                    contents
                        .and_then(|c| c.get(k))
                        .map(pj::Pj::text)
                        .unwrap_or_default()
                };
                SimAttachment {
                    id: a.id,
                    item_class: a.text("item_class"),
                    item_id: a.text("item_id"),
                    filename: get("filename"),
                    mimetype: get("mimetype"),
                    data: base64::engine::general_purpose::STANDARD
                        .decode(get("data"))
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Runs one REST operation (a `json_data` object) as user `login`, exactly as
    /// if it came over HTTP (including webhooks) — use it to play a human agent
    /// changing a ticket. Returns the response body.
    pub async fn perform_as(&self, login: &str, json_data: Value) -> Value {
        let Some(user) = self
            .shared
            .config
            .users
            .iter()
            .find(|u| u.login == login)
            .cloned()
        else {
            return serde_json::json!({"code": 1, "message": "Error: Invalid login"});
        };
        let Value::Object(request) = json_data else {
            return serde_json::json!({"code": 4, "message": "Error: Parameter json_data is not a valid JSON structure"});
        };
        let actor = self.shared.actor_for(&user);
        self.shared
            .perform(&actor, "1.3", &request)
            .await
            .to_value()
    }

    /// `perform_as` with the REST account.
    pub async fn perform(&self, json_data: Value) -> Value {
        let login = self.rest_user();
        self.perform_as(&login, json_data).await
    }

    /// Creates an object without webhooks (seeding); returns its id or the iTop error message.
    pub fn seed(&self, class: &str, fields: Value) -> Result<u64, String> {
        let def = schema::class(class)
            .ok_or_else(|| format!("class: '{class}' is not a valid class'"))?;
        let Value::Object(fields) = fields else {
            return Err("fields must be an object".into());
        };
        let user = self
            .rest_account()
            .cloned()
            .ok_or("no REST account configured")?;
        let actor = self.shared.actor_for(&user);
        let mut db = self.shared.db.lock();
        ops::insert_object(&mut db, def, &fields, &actor)
            .map(|o| o.id)
            .map_err(|e| e.message)
    }

    pub fn seed_organization(&self, name: &str) -> Result<u64, String> {
        self.seed("Organization", serde_json::json!({ "name": name }))
    }

    pub fn seed_person(
        &self,
        first_name: &str,
        last_name: &str,
        org_id: u64,
        email: &str,
        phone: &str,
    ) -> Result<u64, String> {
        self.seed(
            "Person",
            serde_json::json!({"first_name": first_name, "name": last_name, "org_id": org_id, "email": email, "phone": phone}),
        )
    }

    pub fn seed_team(&self, name: &str, org_id: u64) -> Result<u64, String> {
        self.seed(
            "Team",
            serde_json::json!({ "name": name, "org_id": org_id }),
        )
    }

    /// Injects `fault` into the next request.
    pub fn fail_next(&self, fault: Fault) {
        self.shared.faults.lock().queue.push_back(fault);
    }

    /// Injects `fault` into each of the next `n` requests.
    pub fn fail_next_n(&self, n: usize, fault: Fault) {
        let mut f = self.shared.faults.lock();
        for _ in 0..n {
            f.queue.push_back(fault.clone());
        }
    }

    /// Removes object `class`::`id`, without webhooks, right after the next
    /// request whose `json_data` satisfies `matches` is answered: a change
    /// someone else makes between two reads of a client (e.g. an attachment
    /// deleted after a listing named it, before it is read).
    pub fn remove_after(
        &self,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
        class: &str,
        id: u64,
    ) {
        self.shared.faults.lock().removals.push(server::Removal {
            matches: Box::new(matches),
            class: class.to_string(),
            id,
        });
    }

    /// Injects `fault` into the request that follows the next one whose
    /// `json_data` satisfies `matches` (that one is carried out and answered):
    /// trouble that starts right after a given call, e.g. the read a client
    /// makes after its write.
    pub fn fail_after(
        &self,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) {
        self.shared.faults.lock().after.push(server::FaultAfter {
            matches: Box::new(matches),
            fault,
        });
    }

    /// Injects `fault` into each of the next `times` requests whose
    /// `json_data` satisfies `matches` (other requests are served): e.g. the
    /// second stimulus of a walk, or every create of a class.
    pub fn fail_when(
        &self,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
        fault: Fault,
        times: usize,
    ) {
        self.shared.faults.lock().rules.push(server::FaultRule {
            matches: Box::new(matches),
            fault,
            times,
        });
    }

    /// Adds `latency` before every answer (zero to remove).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.lock().latency = latency;
    }

    /// While down, every request gets HTTP 503.
    pub fn set_down(&self, down: bool) {
        self.shared.faults.lock().down = down;
    }

    /// Number of calls of one operation (`core/get`, `list_operations`, …),
    /// `requests` for all HTTP requests, or `response_bytes` for the bytes of
    /// the operations' answers sent over HTTP.
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.shared.counters.lock().clone()
    }

    /// Webhooks sent so far (in completion order).
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.deliveries.lock().clone()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Runs a simulator on 127.0.0.1:`port` until Ctrl-C (`ticketbridge sim itop --port N`).
pub async fn run_standalone(port: u16) -> std::io::Result<()> {
    let sim = ItopSim::start(ItopSimConfig {
        port,
        ..ItopSimConfig::default()
    })
    .await?;
    println!("iTop simulator at {}", sim.base_url());
    println!(
        "REST user: {} / {} (token {})",
        sim.rest_user(),
        sim.rest_password(),
        sim.rest_token().unwrap_or_default()
    );
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
