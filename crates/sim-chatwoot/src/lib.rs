//! A stateful Chatwoot simulator: one account on loopback with the REST
//! endpoints the connector calls (spec §4.2) and a webhook emitter that sends
//! real-shaped account webhooks (spec §1.3-1.4, §3), signed or not.
//!
//! Actions (`customer_sends`, `resolve`, …) mutate state and deliver the
//! webhooks Chatwoot would send, awaiting delivery. API writes (messages,
//! custom attributes, status, contacts) also emit webhooks — the bridge's
//! own echoes — without blocking the API answer, like real Chatwoot.

mod api;
mod emitter;
mod faults;
mod presenters;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use emitter::{Delivery, ReleaseOrder, WebhookTarget};
pub use state::{Agent, Attachment, Author, Contact, Conversation, Inbox, Message};

use emitter::Emitter;
use faults::Faults;
use presenters::{change, contact_event, conversation_event, message_webhook};
use state::{Account, iso, now};

/// Simulator errors (start-up only).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the Chatwoot simulator: {0}")]
    Bind(#[source] std::io::Error),
    #[error("simulator server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("unknown {what} {id}")]
    Unknown { what: &'static str, id: u64 },
}

impl SimError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Start-up configuration; the default matches the fixture scenario
/// (account 1 "Acme Suporte", WhatsApp inbox 3, agent 7, bridge bot 2).
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub port: u16,
    pub account_id: u64,
    pub account_name: String,
    pub api_token: String,
    /// The user that owns the API token (the bridge needs a User token,
    /// spec §4.1): Chatwoot makes it the sender of every message the bridge
    /// posts.
    pub token_user_id: u64,
    pub token_user_name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            port: 0,
            account_id: 1,
            account_name: "Acme Suporte".into(),
            api_token: "sim-chatwoot-token".into(),
            token_user_id: 2,
            token_user_name: "GLPI Bridge".into(),
        }
    }
}

/// Contact data for [`RunningChatwoot::add_contact`].
#[derive(Debug, Clone, Default)]
pub struct NewContact {
    pub name: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
}

/// Ids created by [`RunningChatwoot::customer_starts_conversation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedConversation {
    pub conversation_id: u64,
    pub message_id: u64,
}

/// Request and write counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub messages_via_api: AtomicU64,
    pub custom_attribute_writes: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Every API request that reached the server (faulted ones included).
    pub api_requests: u64,
    /// Messages created through `POST …/messages`.
    pub messages_via_api: u64,
    /// `POST …/custom_attributes` calls.
    pub custom_attribute_writes: u64,
    /// Webhook deliveries attempted.
    pub webhooks_attempted: u64,
}

pub(crate) struct Shared {
    pub account: Mutex<Account>,
    pub api_token: String,
    pub emitter: Emitter,
    pub counters: Counters,
}

impl Shared {
    /// Queues bodies without waiting for delivery (API side effects).
    pub(crate) fn emit_detached(&self, events: Vec<Value>) {
        for event in events {
            drop(
                self.emitter
                    .enqueue(uuid::Uuid::new_v4().to_string(), &event),
            );
        }
    }

    /// Sets a conversation's status; returns the bodies Chatwoot sends
    /// (status_changed with a null diff, then conversation_updated with the
    /// status diff, spec §3.7), or nothing when the status is unchanged.
    pub(crate) fn change_status(&self, id: u64, status: &str) -> Option<Vec<Value>> {
        let mut account = self.account.lock();
        let conversation = account.conversations.get_mut(&id)?;
        if conversation.status == status {
            return Some(Vec::new());
        }
        let previous = std::mem::replace(&mut conversation.status, status.to_owned());
        let before = conversation.updated_at;
        conversation.updated_at = now();
        let after = conversation.updated_at;
        let snapshot = conversation.clone();
        let diff = json!([
            change("status", json!(previous), json!(status)),
            change("updated_at", json!(iso(before)), json!(iso(after)))
        ]);
        Some(vec![
            conversation_event(&account, &snapshot, "conversation_status_changed", None),
            conversation_event(&account, &snapshot, "conversation_updated", Some(diff)),
        ])
    }

    pub(crate) fn contact_diff(&self, before: &Contact, after: &Contact) -> Value {
        let mut diff = vec![change(
            "updated_at",
            json!(iso(before.updated_at)),
            json!(iso(after.updated_at)),
        )];
        let pairs = [
            ("name", json!(before.name), json!(after.name)),
            ("email", json!(before.email), json!(after.email)),
            (
                "phone_number",
                json!(before.phone_number),
                json!(after.phone_number),
            ),
            (
                "identifier",
                json!(before.identifier),
                json!(after.identifier),
            ),
            (
                "custom_attributes",
                json!(before.custom_attributes),
                json!(after.custom_attributes),
            ),
            (
                "additional_attributes",
                json!(before.additional_attributes),
                json!(after.additional_attributes),
            ),
            (
                "last_activity_at",
                json!(before.last_activity_at),
                json!(after.last_activity_at),
            ),
        ];
        for (key, old, new) in pairs {
            if old != new {
                diff.push(change(key, old, new));
            }
        }
        Value::Array(diff)
    }
}

/// Entry point.
pub struct ChatwootSim;

impl ChatwootSim {
    /// Starts the simulator on `127.0.0.1:{config.port}` (0 = any port).
    pub async fn start(config: SimConfig) -> Result<RunningChatwoot, SimError> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let mut account = Account::new(
            config.account_id,
            config.account_name.clone(),
            Agent {
                id: config.token_user_id,
                name: config.token_user_name.clone(),
                email: "glpi-bridge@acme.example".into(),
            },
        );
        account.add_inbox("WhatsApp Suporte", "Channel::Whatsapp", true);
        account.add_agent("Carlos Lima", "carlos.lima@acme.example");
        let shared = Arc::new(Shared {
            account: Mutex::new(account),
            api_token: config.api_token.clone(),
            emitter: Emitter::start(),
            counters: Counters::default(),
        });
        let faults = Arc::new(Faults::default());
        let app = api::router(shared.clone()).layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            faults::inject,
        ));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Ok(RunningChatwoot {
            addr,
            shared,
            faults,
            shutdown,
            server: Mutex::new(Some(server)),
        })
    }
}

/// A running simulator. Dropping it stops the server.
pub struct RunningChatwoot {
    addr: SocketAddr,
    shared: Arc<Shared>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
    server: Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl Drop for RunningChatwoot {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl RunningChatwoot {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn api_token(&self) -> String {
        self.shared.api_token.clone()
    }

    pub fn account_id(&self) -> u64 {
        self.shared.account.lock().id
    }

    /// The id of the user that owns the API token (the bridge).
    pub fn token_user_id(&self) -> u64 {
        self.shared.account.lock().token_user.id
    }

    /// The default WhatsApp inbox (id 3).
    pub fn default_inbox(&self) -> u64 {
        3
    }

    /// Stops the server and waits for it.
    pub async fn stop(&self) -> Result<(), SimError> {
        self.shutdown.cancel();
        let handle = self.server.lock().take();
        if let Some(handle) = handle {
            match handle.await {
                Ok(result) => result.map_err(SimError::Serve)?,
                Err(join) => {
                    return Err(SimError::Serve(std::io::Error::other(join.to_string())));
                }
            }
        }
        Ok(())
    }

    // ---- state accessors -------------------------------------------------

    pub fn conversation(&self, id: u64) -> Option<Conversation> {
        self.shared.account.lock().conversations.get(&id).cloned()
    }

    pub fn conversations(&self) -> Vec<Conversation> {
        self.shared
            .account
            .lock()
            .conversations
            .values()
            .cloned()
            .collect()
    }

    /// All messages of a conversation, oldest first (private and activity too).
    pub fn messages(&self, conversation_id: u64) -> Vec<Message> {
        self.shared
            .account
            .lock()
            .conversation_messages(conversation_id)
    }

    pub fn contact(&self, id: u64) -> Option<Contact> {
        self.shared.account.lock().contacts.get(&id).cloned()
    }

    pub fn inbox(&self, id: u64) -> Option<Inbox> {
        self.shared.account.lock().inboxes.get(&id).cloned()
    }

    pub fn counters(&self) -> CounterSnapshot {
        CounterSnapshot {
            api_requests: self.faults.requests.load(Ordering::SeqCst),
            messages_via_api: self.shared.counters.messages_via_api.load(Ordering::SeqCst),
            custom_attribute_writes: self
                .shared
                .counters
                .custom_attribute_writes
                .load(Ordering::SeqCst),
            webhooks_attempted: self.shared.emitter.deliveries().len() as u64,
        }
    }

    /// Every webhook delivery attempt so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.emitter.deliveries()
    }

    /// Webhooks queued or being delivered (held ones not counted): zero means
    /// every webhook so far is in [`deliveries`](Self::deliveries).
    pub fn webhooks_in_flight(&self) -> usize {
        self.shared.emitter.in_flight()
    }

    // ---- set-up ----------------------------------------------------------

    /// Adds an inbox. `can_reply=false`: conversations say `can_reply:
    /// false`, and public replies are stored, then fail on the channel
    /// (`message_updated` with `external_error`).
    pub fn add_inbox(&self, name: &str, channel_type: &str, can_reply: bool) -> u64 {
        self.shared
            .account
            .lock()
            .add_inbox(name, channel_type, can_reply)
    }

    pub fn add_agent(&self, name: &str, email: &str) -> u64 {
        self.shared.account.lock().add_agent(name, email)
    }

    /// Closes (or reopens) a conversation's reply window (WhatsApp 24 h).
    pub fn set_reply_window(&self, conversation_id: u64, open: bool) -> Result<(), SimError> {
        self.change_conversation(conversation_id, |c| c.reply_window_open = open)
    }

    /// Changes conversation `id` in place (no webhook).
    fn change_conversation(
        &self,
        id: u64,
        change: impl FnOnce(&mut state::Conversation),
    ) -> Result<(), SimError> {
        let mut account = self.shared.account.lock();
        let conversation = account
            .conversations
            .get_mut(&id)
            .ok_or(SimError::Unknown {
                what: "conversation",
                id,
            })?;
        change(conversation);
        Ok(())
    }

    /// From now on, public replies posted through the API in this
    /// conversation fail on the channel with `error` (None: they go through).
    pub fn fail_deliveries(
        &self,
        conversation_id: u64,
        error: Option<&str>,
    ) -> Result<(), SimError> {
        self.change_conversation(conversation_id, |c| {
            c.delivery_error = error.map(str::to_string);
        })
    }

    /// Where to send webhooks; `secret: None` sends unsigned v4.7 requests.
    pub fn webhook_target(&self, url: impl Into<String>, secret: Option<String>) {
        self.shared.emitter.set_target(Some(WebhookTarget {
            url: url.into(),
            secret,
        }));
    }

    // ---- faults ----------------------------------------------------------

    /// Delay before every API answer.
    pub fn set_latency(&self, latency: Duration) {
        self.faults.set_latency(latency);
    }

    /// The next `count` API requests answer `status` (429 adds `Retry-After: 2`).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.faults.fail_next(count, status);
    }

    /// The next `count` requests of `method` whose path ends with
    /// `path_suffix` are answered `status` and not carried out (other
    /// requests pass).
    pub fn fail_matching(&self, method: &str, path_suffix: &str, count: u64, status: u16) {
        self.faults
            .fail_matching(method, path_suffix, count, status);
    }

    /// The next `count` API requests get a broken connection.
    pub fn drop_next(&self, count: u64) {
        self.faults.drop_next(count);
    }

    /// The next `count` requests of `method` whose path ends with
    /// `path_suffix` are carried out, then their answer is lost (a broken
    /// connection): what a client sees when it times out on a slow server.
    pub fn lose_answers(&self, method: &str, path_suffix: &str, count: u64) {
        self.faults.lose_answers(method, path_suffix, count);
    }

    // ---- emitter ---------------------------------------------------------

    async fn deliver_all(&self, events: Vec<Value>) -> Vec<String> {
        let mut ids = Vec::new();
        for event in events {
            let id = uuid::Uuid::new_v4().to_string();
            let done = self.shared.emitter.enqueue(id.clone(), &event);
            let _ = done.await;
            ids.push(id);
        }
        ids
    }

    /// Sends a raw body as a webhook (its `event` field names it); returns
    /// the delivery id.
    pub async fn emit(&self, event: Value) -> String {
        self.deliver_all(vec![event])
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Sends the same body again with the same `X-Chatwoot-Delivery`.
    pub async fn redeliver(&self, delivery_id: &str) -> bool {
        match self.shared.emitter.redeliver(delivery_id) {
            Some(done) => {
                let _ = done.await;
                true
            }
            None => false,
        }
    }

    /// Sends the given bodies in reverse order.
    pub async fn emit_out_of_order(&self, mut events: Vec<Value>) -> Vec<String> {
        events.reverse();
        self.deliver_all(events).await
    }

    /// Queue webhooks instead of sending them until [`release_webhooks`](Self::release_webhooks).
    pub fn hold_webhooks(&self) {
        self.shared.emitter.hold();
    }

    /// Sends the held webhooks in `order` and waits for them.
    pub async fn release_webhooks(&self, order: ReleaseOrder) {
        for done in self.shared.emitter.release(order) {
            let _ = done.await;
        }
    }

    /// Sends the held webhooks in `order`, each body built from the state
    /// as it is now, and waits for them. Real Chatwoot builds account-webhook
    /// bodies when the Sidekiq job runs, not when the event happened (spec
    /// §1.2): a `message_created` delivered late can already show the
    /// conversation resolved. Only `changed_attributes` keep their values
    /// from event time.
    pub async fn release_webhooks_built_now(&self, order: ReleaseOrder) {
        let shared = self.shared.clone();
        let rebuild = move |body: &Value| -> Value {
            let account = shared.account.lock();
            let event = body.get("event").and_then(Value::as_str).unwrap_or("");
            let id = body.get("id").and_then(Value::as_u64).unwrap_or(0);
            let changed = body.get("changed_attributes").cloned();
            let rebuilt = match event {
                "message_created" | "message_updated" => account
                    .messages
                    .get(&id)
                    .map(|m| message_webhook(&account, m, event)),
                "conversation_created" => account
                    .conversations
                    .get(&id)
                    .map(|c| conversation_event(&account, c, event, None)),
                e if e.starts_with("conversation_") => account
                    .conversations
                    .get(&id)
                    .map(|c| conversation_event(&account, c, event, changed)),
                e if e.starts_with("contact_") => account
                    .contacts
                    .get(&id)
                    .map(|c| contact_event(&account, c, event, changed)),
                _ => None,
            };
            rebuilt.unwrap_or_else(|| body.clone())
        };
        for done in self.shared.emitter.release_rebuilt(order, rebuild) {
            let _ = done.await;
        }
    }

    // ---- actions (state change + webhooks) ------------------------------

    /// Creates a contact and emits contact_created.
    pub async fn add_contact(&self, contact: NewContact) -> u64 {
        let (id, event) = {
            let mut account = self.shared.account.lock();
            let id = account.add_contact(
                &contact.name,
                contact.email,
                contact.phone_number,
                contact.identifier,
            );
            let event = account
                .contacts
                .get(&id)
                .map(|c| contact_event(&account, c, "contact_created", None));
            (id, event)
        };
        self.deliver_all(event.into_iter().collect()).await;
        id
    }

    /// A customer writes first: conversation_created, message_created
    /// (incoming), contact_updated (last_activity_at noise).
    pub async fn customer_starts_conversation(
        &self,
        contact_id: u64,
        inbox_id: u64,
        text: &str,
    ) -> Result<StartedConversation, SimError> {
        let (started, events) = {
            let mut account = self.shared.account.lock();
            if !account.contacts.contains_key(&contact_id) {
                return Err(SimError::Unknown {
                    what: "contact",
                    id: contact_id,
                });
            }
            if !account.inboxes.contains_key(&inbox_id) {
                return Err(SimError::Unknown {
                    what: "inbox",
                    id: inbox_id,
                });
            }
            let conversation_id = account.add_conversation(contact_id, inbox_id);
            let (message_id, mut events) =
                incoming(&mut account, conversation_id, contact_id, text, &[]);
            if let Some(conversation) = account.conversations.get(&conversation_id) {
                events.insert(
                    0,
                    conversation_event(&account, conversation, "conversation_created", None),
                );
            }
            (
                StartedConversation {
                    conversation_id,
                    message_id,
                },
                events,
            )
        };
        self.deliver_all(events).await;
        Ok(started)
    }

    /// The customer writes again; a resolved conversation reopens.
    pub async fn customer_sends(&self, conversation_id: u64, text: &str) -> Result<u64, SimError> {
        self.customer_sends_with_attachments(conversation_id, text, &[])
            .await
    }

    /// Same with attachments (`data_url`s).
    pub async fn customer_sends_with_attachments(
        &self,
        conversation_id: u64,
        text: &str,
        attachment_urls: &[String],
    ) -> Result<u64, SimError> {
        let contact_id = self
            .conversation(conversation_id)
            .ok_or(SimError::Unknown {
                what: "conversation",
                id: conversation_id,
            })?
            .contact_id;
        let (message_id, mut events) = {
            let mut account = self.shared.account.lock();
            incoming(
                &mut account,
                conversation_id,
                contact_id,
                text,
                attachment_urls,
            )
        };
        let status = self.conversation(conversation_id).map(|c| c.status);
        if status.as_deref() == Some("resolved") {
            events.extend(
                self.shared
                    .change_status(conversation_id, "open")
                    .unwrap_or_default(),
            );
        }
        self.deliver_all(events).await;
        Ok(message_id)
    }

    /// An agent (found by email, created if unknown) replies publicly.
    pub async fn agent_replies(
        &self,
        conversation_id: u64,
        agent_email: &str,
        text: &str,
    ) -> Result<u64, SimError> {
        let agent_id = {
            let mut account = self.shared.account.lock();
            match account.agent_by_email(agent_email) {
                Some(id) => id,
                None => {
                    let name = agent_email
                        .split('@')
                        .next()
                        .unwrap_or(agent_email)
                        .to_owned();
                    account.add_agent(&name, agent_email)
                }
            }
        };
        self.agent_message(conversation_id, Author::Agent(agent_id), text, false)
            .await
    }

    /// A private note by the assignee (or the first agent).
    pub async fn agent_private_note(
        &self,
        conversation_id: u64,
        text: &str,
    ) -> Result<u64, SimError> {
        let author = {
            let account = self.shared.account.lock();
            let conversation =
                account
                    .conversations
                    .get(&conversation_id)
                    .ok_or(SimError::Unknown {
                        what: "conversation",
                        id: conversation_id,
                    })?;
            conversation
                .assignee_id
                .or_else(|| account.agents.keys().next().copied())
                .map(Author::Agent)
                .unwrap_or(Author::None)
        };
        self.agent_message(conversation_id, author, text, true)
            .await
    }

    async fn agent_message(
        &self,
        conversation_id: u64,
        author: Author,
        text: &str,
        private: bool,
    ) -> Result<u64, SimError> {
        let (id, event) = {
            let mut account = self.shared.account.lock();
            if !account.conversations.contains_key(&conversation_id) {
                return Err(SimError::Unknown {
                    what: "conversation",
                    id: conversation_id,
                });
            }
            let id = account.add_message(
                conversation_id,
                text,
                1,
                private,
                author,
                serde_json::Map::new(),
                None,
                None,
                &[],
            );
            let event = account
                .messages
                .get(&id)
                .map(|m| message_webhook(&account, m, "message_created"));
            (id, event)
        };
        self.deliver_all(event.into_iter().collect()).await;
        Ok(id)
    }

    pub async fn resolve(&self, conversation_id: u64) -> Result<(), SimError> {
        self.set_status(conversation_id, "resolved").await
    }

    pub async fn reopen(&self, conversation_id: u64) -> Result<(), SimError> {
        self.set_status(conversation_id, "open").await
    }

    pub async fn set_pending(&self, conversation_id: u64) -> Result<(), SimError> {
        self.set_status(conversation_id, "pending").await
    }

    async fn set_status(&self, conversation_id: u64, status: &str) -> Result<(), SimError> {
        let events =
            self.shared
                .change_status(conversation_id, status)
                .ok_or(SimError::Unknown {
                    what: "conversation",
                    id: conversation_id,
                })?;
        self.deliver_all(events).await;
        Ok(())
    }

    /// Updates a contact as an agent would (emits contact_updated).
    pub async fn edit_contact(
        &self,
        contact_id: u64,
        email: Option<String>,
        phone_number: Option<String>,
    ) -> Result<(), SimError> {
        let event = {
            let mut account = self.shared.account.lock();
            let before = account
                .contacts
                .get(&contact_id)
                .cloned()
                .ok_or(SimError::Unknown {
                    what: "contact",
                    id: contact_id,
                })?;
            let mut after = before.clone();
            if email.is_some() {
                after.email = email;
            }
            if phone_number.is_some() {
                after.phone_number = phone_number;
            }
            after.updated_at = now();
            let diff = self.shared.contact_diff(&before, &after);
            account.contacts.insert(contact_id, after.clone());
            contact_event(&account, &after, "contact_updated", Some(diff))
        };
        self.deliver_all(vec![event]).await;
        Ok(())
    }
}

/// Stores an incoming message; returns its id and the bodies: message_created
/// then contact_updated for `last_activity_at` (spec §3.7).
fn incoming(
    account: &mut Account,
    conversation_id: u64,
    contact_id: u64,
    text: &str,
    attachment_urls: &[String],
) -> (u64, Vec<Value>) {
    let id = account.add_message(
        conversation_id,
        text,
        0,
        false,
        Author::Contact(contact_id),
        serde_json::Map::new(),
        Some(format!("wamid.sim-{}", uuid::Uuid::new_v4().simple())),
        None,
        attachment_urls,
    );
    let mut events = Vec::new();
    if let Some(message) = account.messages.get(&id) {
        events.push(message_webhook(account, message, "message_created"));
    }
    if let Some(before) = account.contacts.get(&contact_id).cloned() {
        let mut after = before.clone();
        after.updated_at = now();
        after.last_activity_at = after.updated_at as i64;
        let diff = json!([
            change(
                "updated_at",
                json!(iso(before.updated_at)),
                json!(iso(after.updated_at))
            ),
            change(
                "last_activity_at",
                json!(iso(before.last_activity_at as f64)),
                json!(iso(after.last_activity_at as f64))
            )
        ]);
        account.contacts.insert(contact_id, after.clone());
        events.push(contact_event(
            account,
            &after,
            "contact_updated",
            Some(diff),
        ));
    }
    (id, events)
}

/// `ticketbridge sim chatwoot --port N`: runs until Ctrl-C. Webhooks go to
/// `CHATWOOT_SIM_WEBHOOK_URL` (signed with `CHATWOOT_SIM_WEBHOOK_SECRET`
/// when set).
pub async fn run_standalone(port: u16) -> Result<(), SimError> {
    let sim = ChatwootSim::start(SimConfig {
        port,
        ..SimConfig::default()
    })
    .await?;
    if let Ok(url) = std::env::var("CHATWOOT_SIM_WEBHOOK_URL") {
        sim.webhook_target(url, std::env::var("CHATWOOT_SIM_WEBHOOK_SECRET").ok());
    }
    println!(
        "Chatwoot simulator on {} (account {}, api_access_token {})",
        sim.base_url(),
        sim.account_id(),
        sim.api_token()
    );
    let _ = tokio::signal::ctrl_c().await;
    sim.stop().await
}
