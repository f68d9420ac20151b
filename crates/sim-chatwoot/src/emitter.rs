//! Webhook emitter: delivers account-webhook bodies one at a time, in
//! order, like `Webhooks::Trigger` (5 s timeout, no retry, spec §1.3), signed
//! when a secret is set (spec §1.4) and unsigned otherwise (v4.7).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

/// Where webhooks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    /// `Some` → signed deliveries with `X-Chatwoot-Signature`,
    /// `X-Chatwoot-Timestamp`, `X-Chatwoot-Delivery` (≥ v4.11.2);
    /// `None` → plain v4.7 requests with none of those headers.
    pub secret: Option<String>,
}

/// One delivery attempt, as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `X-Chatwoot-Delivery` id (also set, but not sent, when unsigned).
    pub delivery_id: String,
    pub event: String,
    pub body: String,
    /// HTTP status of the receiver's answer; `None` when it failed.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub signed: bool,
}

pub(crate) struct Outgoing {
    pub delivery_id: String,
    pub event: String,
    pub body: Vec<u8>,
    /// `X-Chatwoot-Timestamp` to sign with (a redelivery repeats the first
    /// one); `None`: the time of sending.
    pub timestamp: Option<i64>,
    pub ack: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
pub(crate) struct EmitterState {
    target: Mutex<Option<WebhookTarget>>,
    held: Mutex<Option<Vec<Outgoing>>>,
    log: Mutex<Vec<Delivery>>,
    bodies: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// The timestamp each signed delivery was first signed with.
    stamps: Mutex<HashMap<String, i64>>,
    /// Deliveries queued for sending and not yet logged (held ones excluded).
    in_flight: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
pub(crate) struct Emitter {
    tx: mpsc::UnboundedSender<Outgoing>,
    state: Arc<EmitterState>,
}

/// The order in which held deliveries are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOrder {
    AsQueued,
    Reversed,
}

impl Emitter {
    pub fn start() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let state = Arc::new(EmitterState::default());
        let worker_state = state.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default();
            while let Some(outgoing) = rx.recv().await {
                deliver(&http, &worker_state, &outgoing).await;
                worker_state
                    .in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(ack) = outgoing.ack {
                    let _ = ack.send(());
                }
            }
        });
        Self { tx, state }
    }

    pub fn set_target(&self, target: Option<WebhookTarget>) {
        *self.state.target.lock() = target;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.log.lock().clone()
    }

    /// Deliveries queued or being sent, not yet in [`deliveries`](Self::deliveries).
    pub fn in_flight(&self) -> usize {
        self.state
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues one body under a delivery id; returns a receiver that fires
    /// once it was attempted (or at once when held).
    pub fn enqueue(&self, delivery_id: String, body: &Value) -> oneshot::Receiver<()> {
        let event = body
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.state
            .bodies
            .lock()
            .insert(delivery_id.clone(), (event.clone(), bytes.clone()));
        self.send(Outgoing {
            delivery_id,
            event,
            body: bytes,
            timestamp: None,
            ack: None,
        })
    }

    /// Sends a previously delivered request again, byte for byte: the same
    /// body, delivery id, timestamp and signature (what a retrying proxy
    /// does; Chatwoot itself never retries).
    pub fn redeliver(&self, delivery_id: &str) -> Option<oneshot::Receiver<()>> {
        let (event, body) = self.state.bodies.lock().get(delivery_id).cloned()?;
        let timestamp = self.state.stamps.lock().get(delivery_id).copied();
        Some(self.send(Outgoing {
            delivery_id: delivery_id.to_owned(),
            event,
            body,
            timestamp,
            ack: None,
        }))
    }

    fn send(&self, mut outgoing: Outgoing) -> oneshot::Receiver<()> {
        let (ack_tx, ack_rx) = oneshot::channel();
        let mut held = self.state.held.lock();
        if let Some(queue) = held.as_mut() {
            queue.push(outgoing);
            let _ = ack_tx.send(());
        } else {
            outgoing.ack = Some(ack_tx);
            self.state
                .in_flight
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // The worker lives as long as the runtime; if it is gone the
            // receiver just resolves with an error.
            if self.tx.send(outgoing).is_err() {
                self.state
                    .in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        ack_rx
    }

    pub fn hold(&self) {
        let mut held = self.state.held.lock();
        if held.is_none() {
            *held = Some(Vec::new());
        }
    }

    /// Like [`release`](Self::release), each held body replaced by
    /// `rebuild(body)` first.
    pub fn release_rebuilt(
        &self,
        order: ReleaseOrder,
        rebuild: impl Fn(&Value) -> Value,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut queued = self.state.held.lock().take().unwrap_or_default();
        if order == ReleaseOrder::Reversed {
            queued.reverse();
        }
        queued
            .into_iter()
            .map(|mut outgoing| {
                if let Ok(body) = serde_json::from_slice::<Value>(&outgoing.body) {
                    outgoing.body = serde_json::to_vec(&rebuild(&body)).unwrap_or(outgoing.body);
                    self.state.bodies.lock().insert(
                        outgoing.delivery_id.clone(),
                        (outgoing.event.clone(), outgoing.body.clone()),
                    );
                }
                self.send(outgoing)
            })
            .collect()
    }

    /// Stops holding and sends what was held, in `order`; returns the
    /// receivers of every release.
    pub fn release(&self, order: ReleaseOrder) -> Vec<oneshot::Receiver<()>> {
        let queued = self.state.held.lock().take().unwrap_or_default();
        let mut queued = queued;
        if order == ReleaseOrder::Reversed {
            queued.reverse();
        }
        queued.into_iter().map(|o| self.send(o)).collect()
    }
}

fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

async fn deliver(http: &reqwest::Client, state: &EmitterState, outgoing: &Outgoing) {
    let target = state.target.lock().clone();
    let mut record = Delivery {
        delivery_id: outgoing.delivery_id.clone(),
        event: outgoing.event.clone(),
        body: String::from_utf8_lossy(&outgoing.body).into_owned(),
        status: None,
        error: None,
        signed: false,
    };
    let Some(target) = target else {
        record.error = Some("no webhook target configured".into());
        state.log.lock().push(record);
        return;
    };
    let mut request = http
        .post(&target.url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(outgoing.body.clone());
    if let Some(secret) = &target.secret {
        let timestamp = outgoing
            .timestamp
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
        state
            .stamps
            .lock()
            .entry(outgoing.delivery_id.clone())
            .or_insert(timestamp);
        if let Some(signature) = sign(secret, timestamp, &outgoing.body) {
            request = request
                .header("X-Chatwoot-Signature", signature)
                .header("X-Chatwoot-Timestamp", timestamp.to_string())
                .header("X-Chatwoot-Delivery", &outgoing.delivery_id);
            record.signed = true;
        }
    }
    match request.send().await {
        Ok(response) => record.status = Some(response.status().as_u16()),
        Err(error) => record.error = Some(error.to_string()),
    }
    tracing::debug!(event = %record.event, status = ?record.status, "sim-chatwoot webhook delivered");
    state.log.lock().push(record);
}
