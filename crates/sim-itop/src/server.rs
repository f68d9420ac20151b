//! The HTTP side: `webservices/rest.php`, authentication, protocol errors in
//! iTop's order (auth, version, json_data, JSON, version support, operation),
//! fault injection and webhook delivery.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::config::{Fault, ItopSimConfig, SimUser};
use crate::ops::{self, Change};
use crate::pj::Pj;
use crate::store::{Db, OpError};
use crate::values::Actor;
use crate::webhook::{self, Outgoing, WebhookDelivery};

pub const VERSIONS: &[&str] = &["1.0", "1.1", "1.2", "1.3", "1.4"];

#[derive(Default)]
pub struct Faults {
    pub latency: Duration,
    pub queue: VecDeque<Fault>,
    pub down: bool,
    /// Objects to remove once a matching request is answered.
    pub removals: Vec<Removal>,
    /// Faults queued for the next request once a matching request is answered.
    pub after: Vec<FaultAfter>,
    /// Faults for requests whose `json_data` matches, whatever comes before.
    pub rules: Vec<FaultRule>,
}

/// A fault for the request that follows the first one whose `json_data`
/// matches: trouble that starts right after a given write (the write itself
/// is carried out and answered).
pub struct FaultAfter {
    pub matches: Box<dyn Fn(&Value) -> bool + Send + Sync>,
    pub fault: Fault,
}

/// A fault injected into the next `times` requests whose `json_data`
/// matches (e.g. the second stimulus of a walk, every create of a class).
pub struct FaultRule {
    pub matches: Box<dyn Fn(&Value) -> bool + Send + Sync>,
    pub fault: Fault,
    pub times: usize,
}

/// An object removed (without webhooks) right after the first request whose
/// `json_data` matches is answered: another user's change landing between
/// two reads of the client.
pub struct Removal {
    pub matches: Box<dyn Fn(&Value) -> bool + Send + Sync>,
    pub class: String,
    pub id: u64,
}

pub struct Shared {
    pub db: Mutex<Db>,
    pub config: ItopSimConfig,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<BTreeMap<String, u64>>,
    pub deliveries: Mutex<Vec<WebhookDelivery>>,
    pub http: reqwest::Client,
}

impl Shared {
    fn count(&self, name: &str) {
        self.add(name, 1);
    }

    fn add(&self, name: &str, n: u64) {
        *self.counters.lock().entry(name.to_string()).or_insert(0) += n;
    }

    pub fn actor_for(&self, user: &SimUser) -> Actor {
        let db = self.db.lock();
        let display = db
            .get("Person", user.contact_id)
            .map(|p| db.friendly_name(p))
            .unwrap_or_else(|| user.login.clone());
        Actor {
            login: user.login.clone(),
            user_id: user.user_id,
            contact_id: user.contact_id,
            display,
            admin: user.admin,
        }
    }

    /// Runs one operation (json_data already decoded) as `actor`; returns the
    /// response body and the webhooks it caused.
    pub fn execute(
        &self,
        actor: &Actor,
        version: &str,
        request: &Map<String, Value>,
    ) -> (Pj, Vec<Outgoing>) {
        let mut outbox = Vec::new();
        let op = match request.get("operation") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return (
                    error_body(&OpError::internal("Missing parameter 'operation'")),
                    outbox,
                );
            }
        };
        self.count(&op);
        let sinks = &self.config.webhooks;
        let mut notify = |db: &Db, change: &Change| {
            outbox.extend(webhook::payloads(db, sinks, change, &actor.login))
        };
        let result = match op.as_str() {
            "list_operations" => Ok(list_operations(version)),
            "core/check_credentials" => ops::check_credentials(request, &|u, p| {
                self.config
                    .users
                    .iter()
                    .any(|x| x.login == u && x.password == p)
            }),
            "core/get" => ops::get(&self.db.lock(), request),
            "core/create" => ops::create(&mut self.db.lock(), actor, request, &mut notify),
            "core/update" => ops::update(&mut self.db.lock(), actor, request, &mut notify),
            "core/apply_stimulus" => {
                ops::apply_stimulus(&mut self.db.lock(), actor, request, &mut notify)
            }
            "core/delete" => ops::delete(&mut self.db.lock(), request, &mut notify),
            "core/get_related" => Ok(Pj::obj(vec![
                ("code", Pj::Int(0)),
                ("message", Pj::s("Nothing found")),
                ("objects", Pj::Null),
                ("relations", Pj::Null),
            ])),
            other => Err(OpError {
                code: 11,
                message: format!("Error: Unknown verb '{other}' in version '{version}'"),
                objects_null: false,
            }),
        };
        match result {
            Ok(body) => (body, outbox),
            Err(e) => (error_body(&e), Vec::new()),
        }
    }

    /// Runs one operation and sends the webhooks it caused, as iTop does: a
    /// deletion's webhooks go out before the objects are removed (the
    /// receiver can still read them back), every other change's after it is
    /// written. With synchronous webhooks the answer waits for them.
    pub async fn perform(
        self: &Arc<Self>,
        actor: &Actor,
        version: &str,
        request: &Map<String, Value>,
    ) -> Pj {
        let deleting = request.get("operation").and_then(Value::as_str) == Some("core/delete");
        if deleting {
            let mut before = Vec::new();
            {
                let db = self.db.lock();
                let sinks = &self.config.webhooks;
                ops::deleting(&db, request, &mut |db: &Db, change: &Change| {
                    before.extend(webhook::payloads(db, sinks, change, &actor.login))
                });
            }
            self.send_webhooks(before).await;
        }
        let (body, hooks) = self.execute(actor, version, request);
        if !deleting {
            self.send_webhooks(hooks).await;
        }
        self.apply_removals(&Value::Object(request.clone()));
        body
    }

    /// The fault of the first rule matching `request`, if any (used up once).
    pub fn rule_fault(&self, request: &Value) -> Option<Fault> {
        let mut faults = self.faults.lock();
        let rule = faults
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && (r.matches)(request))?;
        rule.times -= 1;
        let fault = rule.fault.clone();
        faults.rules.retain(|r| r.times > 0);
        Some(fault)
    }

    /// Removes the objects whose removal waited for a request like this one.
    pub fn apply_removals(&self, request: &Value) {
        let due: Vec<Removal> = {
            let mut faults = self.faults.lock();
            let (due, waiting) = std::mem::take(&mut faults.removals)
                .into_iter()
                .partition(|r| (r.matches)(request));
            faults.removals = waiting;
            due
        };
        let mut db = self.db.lock();
        for removal in due {
            db.remove(&removal.class, removal.id);
        }
    }

    /// Queues the faults that waited for a request like this one.
    pub fn apply_faults_after(&self, request: &Value) {
        let mut faults = self.faults.lock();
        let (due, waiting): (Vec<FaultAfter>, Vec<FaultAfter>) = std::mem::take(&mut faults.after)
            .into_iter()
            .partition(|f| (f.matches)(request));
        faults.after = waiting;
        faults.queue.extend(due.into_iter().map(|f| f.fault));
    }

    pub async fn send_webhooks(self: &Arc<Self>, hooks: Vec<Outgoing>) {
        if hooks.is_empty() {
            return;
        }
        let shared = Arc::clone(self);
        let task = async move {
            for hook in hooks {
                let outcome =
                    webhook::deliver(&shared.http, &hook, shared.config.webhook_timeout).await;
                shared.deliveries.lock().push(outcome);
            }
        };
        if self.config.synchronous_webhooks {
            task.await;
        } else {
            tokio::spawn(task);
        }
    }
}

fn list_operations(version: &str) -> Pj {
    let ops = [
        ("core/create", "Create an object"),
        ("core/update", "Update an object"),
        (
            "core/apply_stimulus",
            "Apply a stimulus to change the state of an object",
        ),
        ("core/get", "Search for objects"),
        ("core/delete", "Delete objects"),
        (
            "core/get_related",
            "Get related objects through the specified relation",
        ),
        ("core/check_credentials", "Check user credentials"),
    ];
    Pj::obj(vec![
        ("code", Pj::Int(0)),
        ("message", Pj::s(format!("Operations: {}", ops.len()))),
        ("version", Pj::s(version)),
        (
            "operations",
            Pj::Arr(
                ops.iter()
                    .map(|(v, d)| {
                        Pj::obj(vec![
                            ("verb", Pj::s(*v)),
                            ("description", Pj::s(*d)),
                            ("extension", Pj::s("CoreServices")),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

pub fn error_body(e: &OpError) -> Pj {
    let mut members = vec![
        ("code", Pj::Int(e.code)),
        ("message", Pj::s(e.message.clone())),
    ];
    if e.objects_null {
        members.push(("objects", Pj::Null));
    }
    Pj::obj(members)
}

fn json_response(body: &Pj) -> Response {
    json_text_response(body.encode())
}

fn json_text_response(text: String) -> Response {
    let mut resp = Response::new(Body::from(text));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate"),
    );
    resp
}

fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by fault injection",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    form: &[(String, String)],
    query: &[(String, String)],
) -> Result<SimUser, Pj> {
    let invalid = || {
        error_body(&OpError {
            code: 1,
            message: "Error: Invalid login".into(),
            objects_null: false,
        })
    };
    let users = &shared.config.users;
    let user = if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let text = auth.to_str().unwrap_or("");
        let decoded = text
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let (login, password) = decoded.split_once(':').ok_or_else(invalid)?;
        users
            .iter()
            .find(|u| u.login == login && u.password == password)
    } else if let Some((_, login)) = form.iter().find(|(k, _)| k == "auth_user") {
        let password = form
            .iter()
            .find(|(k, _)| k == "auth_pwd")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        users
            .iter()
            .find(|u| &u.login == login && u.password == password)
    } else {
        let token = headers
            .get("auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                form.iter()
                    .chain(query)
                    .find(|(k, _)| k == "auth_token")
                    .map(|(_, v)| v.clone())
            });
        token
            .and_then(|t| shared.config.tokens.iter().find(|(tok, _)| *tok == t))
            .and_then(|(_, login)| users.iter().find(|u| &u.login == login))
    };
    let user = user.ok_or_else(invalid)?;
    if !user.rest {
        return Err(error_body(&OpError {
            code: 1,
            message: "Error: This user is not authorized to use the web services. (The profile REST Services User is required to access the REST web services)".into(),
            objects_null: false,
        }));
    }
    Ok(user.clone())
}

/// The answer a fault gives instead of the operation's (`None`: a delay,
/// after which the request is served).
async fn fault_response(fault: Fault) -> Option<Response> {
    match fault {
        Fault::HttpStatus(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(
                (
                    status,
                    "<html><body><h1>Internal Server Error</h1></body></html>",
                )
                    .into_response(),
            )
        }
        Fault::DropConnection => Some(dropped_connection()),
        Fault::Latency(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::ResultCode { code, message } => Some(json_response(&error_body(&OpError {
            code,
            message,
            objects_null: false,
        }))),
    }
}

pub async fn rest(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    shared.count("requests");
    let (latency, fault, down) = {
        let mut f = shared.faults.lock();
        (f.latency, f.queue.pop_front(), f.down)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault
        && let Some(response) = fault_response(fault).await
    {
        return response;
    }
    if down {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let query: Vec<(String, String)> = query
        .as_deref()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    // PHP drops a body over post_max_size (with a warning in its log) and
    // runs the script with an empty $_POST.
    let form: Vec<(String, String)> = if is_form && body.len() <= shared.config.post_max_size {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    } else {
        Vec::new()
    };
    let param = |name: &str| {
        form.iter()
            .chain(query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    let user = match authenticate(&shared, &headers, &form, &query) {
        Ok(u) => u,
        Err(body) => return json_response(&body),
    };
    let Some(version) = param("version") else {
        return json_response(&error_body(&OpError {
            code: 2,
            message: "Error: Missing parameter 'version' (e.g. '1.0')".into(),
            objects_null: false,
        }));
    };
    let Some(json_data) = param("json_data") else {
        return json_response(&error_body(&OpError {
            code: 3,
            message: "Error: Missing parameter 'json_data'".into(),
            objects_null: false,
        }));
    };
    let request = match serde_json::from_str::<Value>(&json_data) {
        Ok(Value::Object(m)) => m,
        _ => {
            return json_response(&error_body(&OpError {
                code: 4,
                message: "Error: Parameter json_data is not a valid JSON structure".into(),
                objects_null: false,
            }));
        }
    };
    if !VERSIONS.contains(&version.as_str()) {
        return json_response(&error_body(&OpError {
            code: 10,
            message: format!("Error: There is no service available for version '{version}'"),
            objects_null: false,
        }));
    }
    if let Some(fault) = shared.rule_fault(&Value::Object(request.clone()))
        && let Some(response) = fault_response(fault).await
    {
        return response;
    }
    let actor = shared.actor_for(&user);
    let body = shared.perform(&actor, &version, &request).await;
    shared.apply_faults_after(&Value::Object(request));
    let text = body.encode();
    shared.add(
        "response_bytes",
        u64::try_from(text.len()).unwrap_or(u64::MAX),
    );
    json_text_response(text)
}
