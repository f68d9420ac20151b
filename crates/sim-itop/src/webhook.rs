//! Outgoing webhooks shaped like those real iTops send with the seed's triggers
//! and payload templates (`shared/fixtures/itop/real-webhooks.txt`).

use std::time::Duration;

use crate::ops::Change;
use crate::pj::Pj;
use crate::store::Db;

/// When a sink fires and what it sends.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookTrigger {
    /// Ticket created (external side): the seed's `ticket.create` payload.
    TicketCreate,
    /// Any change of a ticket after creation (stimulus, logs, fields):
    /// `{"class":"UserRequest","id":"1"}`.
    TicketUpdate,
    /// Ticket entered one of `states` (empty = any state):
    /// `{"event":"ticket assigned","id":"1"}`.
    TicketStateEnter { states: Vec<String> },
    /// A ticket's private log changed: `{"event":"update private log","id":"1"}`.
    PrivateLogUpdate,
    /// An attachment was updated or is being deleted (never on create, as on a
    /// real iTop): `{"event":"attachment.update","source":…,"attachment_id":…,…}`.
    AttachmentUpdateOrDelete { source: String },
    /// The generic payload recommended by the spec, with the actor's login:
    /// `{"instance","event","class","id","ref","status","last_update","actor"}`.
    Generic { instance: String },
}

/// One configured webhook action: where to POST, extra headers, and its trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSink {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub trigger: WebhookTrigger,
}

impl WebhookSink {
    pub fn new(url: impl Into<String>, trigger: WebhookTrigger) -> WebhookSink {
        WebhookSink {
            url: url.into(),
            headers: Vec::new(),
            trigger,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> WebhookSink {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The seed's external-iTop set-up: create-ticket, update-ticket and
    /// update-attachment (source "external") under `base` (e.g. `http://127.0.0.1:9/external`).
    pub fn seed_external(base: &str, api_key: &str) -> Vec<WebhookSink> {
        let base = base.trim_end_matches('/');
        vec![
            WebhookSink::new(
                format!("{base}/api/v1/create-ticket"),
                WebhookTrigger::TicketCreate,
            )
            .header("X-API-Key", api_key),
            WebhookSink::new(
                format!("{base}/api/v1/update-ticket"),
                WebhookTrigger::TicketUpdate,
            )
            .header("X-API-Key", api_key),
            WebhookSink::new(
                format!("{base}/api/v1/update-attachment"),
                WebhookTrigger::AttachmentUpdateOrDelete {
                    source: "external".into(),
                },
            )
            .header("X-API-Key", api_key),
        ]
    }

    /// The seed's internal-iTop set-up: ticket-state-change (every state but
    /// new), ticket-update-private-log and update-attachment (source "elitery").
    pub fn seed_internal(base: &str, api_key: &str) -> Vec<WebhookSink> {
        let base = base.trim_end_matches('/');
        let states = [
            "assigned",
            "pending",
            "resolved",
            "closed",
            "escalated_tto",
            "escalated_ttr",
            "waiting_for_approval",
            "approved",
            "rejected",
        ];
        vec![
            WebhookSink::new(
                format!("{base}/api/v1/ticket-state-change"),
                WebhookTrigger::TicketStateEnter {
                    states: states.iter().map(|s| s.to_string()).collect(),
                },
            )
            .header("X-API-Key", api_key),
            WebhookSink::new(
                format!("{base}/api/v1/ticket-update-private-log"),
                WebhookTrigger::PrivateLogUpdate,
            )
            .header("X-API-Key", api_key),
            WebhookSink::new(
                format!("{base}/api/v1/update-attachment"),
                WebhookTrigger::AttachmentUpdateOrDelete {
                    source: "elitery".into(),
                },
            )
            .header("X-API-Key", api_key),
        ]
    }
}

/// A webhook ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What happened to one sent webhook (for tests).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub url: String,
    pub body: String,
    /// HTTP status answered by the receiver, None if it could not be reached.
    pub status: Option<u16>,
    pub error: Option<String>,
}

fn ext_name(db: &Db, obj: &crate::store::Obj, key: &str, remote: &str) -> String {
    let target = obj
        .def()
        .and_then(|d| d.attr(key))
        .and_then(|a| match a.kind {
            crate::schema::Kind::ExtKey(t) => Some(t),
            _ => None,
        });
    let id: u64 = obj.text(key).parse().unwrap_or(0);
    match target.and_then(|t| db.get(t, id)) {
        Some(t) => t.text(remote),
        None => "undefined".into(),
    }
}

/// Payloads the configured sinks send for `change` (rendered now, before a delete).
pub fn payloads(
    db: &Db,
    sinks: &[WebhookSink],
    change: &Change,
    actor_login: &str,
) -> Vec<Outgoing> {
    let mut out = Vec::new();
    for sink in sinks {
        if let Some(body) = payload(db, &sink.trigger, change, actor_login) {
            out.push(Outgoing {
                url: sink.url.clone(),
                headers: sink.headers.clone(),
                body: body.encode(),
            });
        }
    }
    out
}

fn payload(db: &Db, trigger: &WebhookTrigger, change: &Change, actor: &str) -> Option<Pj> {
    let (class, id) = match change {
        Change::Created { class, id }
        | Change::Updated { class, id, .. }
        | Change::Deleting { class, id } => (*class, *id),
    };
    let obj = db.get(class, id)?;
    let is_ticket = obj.def().is_some_and(|d| d.is_ticket());
    let id_text = id.to_string();
    match (trigger, change) {
        (WebhookTrigger::TicketCreate, Change::Created { .. }) if is_ticket => Some(Pj::obj(vec![
            ("event", Pj::s("ticket.create")),
            ("class", Pj::s(class)),
            ("id", Pj::s(id_text)),
            ("ref", Pj::s(obj.text("ref"))),
            ("title", Pj::s(obj.text("title"))),
            ("description", Pj::s(obj.text("description"))),
            ("status", Pj::s(obj.text("status"))),
            ("caller_id", Pj::s(ext_name(db, obj, "caller_id", "name"))),
            ("org_id", Pj::s(ext_name(db, obj, "org_id", "name"))),
            ("team_id", Pj::s(ext_name(db, obj, "team_id", "name"))),
            ("operator_id", Pj::s(ext_name(db, obj, "agent_id", "name"))),
            ("priority", Pj::s(obj.text("priority"))),
        ])),
        (WebhookTrigger::TicketUpdate, Change::Updated { .. }) if is_ticket => Some(Pj::obj(vec![
            ("class", Pj::s(class)),
            ("id", Pj::s(id_text)),
        ])),
        (
            WebhookTrigger::TicketStateEnter { states },
            Change::Updated {
                entered_state: Some(state),
                ..
            },
        ) if is_ticket && (states.is_empty() || states.contains(state)) => Some(Pj::obj(vec![
            (
                "event",
                Pj::s(format!("ticket {}", state.replace('_', " "))),
            ),
            ("id", Pj::s(id_text)),
        ])),
        (WebhookTrigger::PrivateLogUpdate, Change::Updated { attrs, .. })
            if is_ticket && attrs.contains(&"private_log") =>
        {
            Some(Pj::obj(vec![
                ("event", Pj::s("update private log")),
                ("id", Pj::s(id_text)),
            ]))
        }
        (
            WebhookTrigger::AttachmentUpdateOrDelete { source },
            Change::Updated { .. } | Change::Deleting { .. },
        ) if class == "Attachment" => Some(Pj::obj(vec![
            ("event", Pj::s("attachment.update")),
            ("source", Pj::s(source.clone())),
            ("attachment_id", Pj::s(id_text)),
            ("item_class", Pj::s(obj.text("item_class"))),
            ("item_id", Pj::s(obj.text("item_id"))),
        ])),
        (WebhookTrigger::Generic { instance }, _) => {
            let event = match change {
                Change::Created { .. } => "create",
                Change::Updated { .. } => "update",
                Change::Deleting { .. } => "delete",
            };
            Some(Pj::obj(vec![
                ("instance", Pj::s(instance.clone())),
                ("event", Pj::s(event)),
                ("class", Pj::s(class)),
                ("id", Pj::s(id_text)),
                ("ref", Pj::s(obj.text("ref"))),
                ("status", Pj::s(obj.text("status"))),
                ("last_update", Pj::s(obj.text("last_update"))),
                ("actor", Pj::s(actor)),
            ]))
        }
        _ => None,
    }
}

/// Sends one webhook (best effort, bounded by `timeout`).
pub async fn deliver(
    http: &reqwest::Client,
    hook: &Outgoing,
    timeout: Duration,
) -> WebhookDelivery {
    let mut req = http
        .post(&hook.url)
        .timeout(timeout)
        .header("Content-type", "application/json")
        .header("User-Agent", "spider")
        .body(hook.body.clone());
    for (name, value) in &hook.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    match req.send().await {
        Ok(resp) => WebhookDelivery {
            url: hook.url.clone(),
            body: hook.body.clone(),
            status: Some(resp.status().as_u16()),
            error: None,
        },
        Err(e) => WebhookDelivery {
            url: hook.url.clone(),
            body: hook.body.clone(),
            status: None,
            error: Some(e.to_string()),
        },
    }
}
