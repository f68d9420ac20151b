//! The generic ingest path every source plugs into: persist the inbound
//! request and its jobs in one transaction, wake the job engine, answer.
//!
//! Writes are committed in groups: concurrent requests share one transaction
//! and each caller is answered only after the commit. "Accepted" therefore
//! still means "durable", while the cost of a commit is shared by every
//! request that arrived during the previous one. A SQLite file store does
//! this itself (its writer thread); for PostgreSQL, requests are queued to
//! writer tasks that store up to [`MAX_BATCH`] of them per transaction
//! ([`store::Store::accept_batch`]).

use std::sync::Arc;

use serde_json::Value;
use store::{Acceptance, Job, NewInbound, NewJob, Store, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::ApiError;
use crate::state::AppState;

/// Most requests committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before callers wait for room.
const QUEUE_DEPTH: usize = 4096;

/// An authenticated, validated inbound request with the jobs it causes.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Source name (the `[sources.<name>]` key).
    pub source: String,
    /// Delivery id, `Idempotency-Key`, or a hash of the stable body parts.
    pub dedupe_key: String,
    /// The raw body as received.
    pub body: Vec<u8>,
    /// The request headers worth keeping (never credentials).
    pub headers: Value,
    pub jobs: Vec<NewJob>,
}

impl Inbound {
    /// The store's view: the inbox row and its jobs.
    fn into_parts(self) -> (NewInbound, Vec<NewJob>) {
        (
            NewInbound {
                source: self.source,
                dedupe_key: self.dedupe_key,
                body: self.body,
                headers: self.headers,
            },
            self.jobs,
        )
    }
}

/// What happened to an inbound request.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    /// Stored now together with its jobs. `claimed`: the jobs stored already
    /// claimed for the caller (`NewJob::claim_now`), which the caller runs.
    Accepted {
        inbox_id: i64,
        job_ids: Vec<i64>,
        claimed: Vec<Job>,
    },
    /// Seen before: nothing stored or enqueued; `response` is what the first
    /// delivery's answer was, when the source recorded one with
    /// [`record_response`].
    Duplicate {
        inbox_id: i64,
        response: Option<Value>,
    },
}

impl IngestOutcome {
    pub fn inbox_id(&self) -> i64 {
        match self {
            Self::Accepted { inbox_id, .. } | Self::Duplicate { inbox_id, .. } => *inbox_id,
        }
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

/// Persists `inbound` (inbox row + jobs, one transaction), wakes the engine
/// when jobs were enqueued and counts the outcome in
/// `ticketbridge_inbox_total{source,outcome}`.
pub async fn accept(state: &AppState, inbound: Inbound) -> Result<IngestOutcome, ApiError> {
    let source = inbound.source.clone();
    let acceptance = state.writer.submit(inbound).await?;
    let outcome = match acceptance {
        Acceptance::Accepted {
            inbox_id,
            job_ids,
            claimed,
        } => {
            // Jobs claimed at accept are the caller's to run: waking the engine
            // for them would only cost it a claim that finds nothing.
            if job_ids.len() > claimed.len() {
                state.wake.wake();
            }
            IngestOutcome::Accepted {
                inbox_id,
                job_ids,
                claimed,
            }
        }
        Acceptance::Duplicate { inbox_id, response } => {
            IngestOutcome::Duplicate { inbox_id, response }
        }
    };
    let label = if outcome.is_duplicate() {
        "duplicate"
    } else {
        "accepted"
    };
    metrics::counter!("ticketbridge_inbox_total", "source" => source, "outcome" => label)
        .increment(1);
    Ok(outcome)
}

/// Records the answer given to the first delivery, for sources whose answer
/// cannot be rebuilt from the inbox id alone; repeats then get it back in
/// [`IngestOutcome::Duplicate::response`].
pub async fn record_response(
    state: &AppState,
    inbox_id: i64,
    response: &Value,
) -> Result<(), ApiError> {
    state.store.set_inbox_response(inbox_id, response).await?;
    Ok(())
}

type Reply = oneshot::Sender<Result<Acceptance, Arc<StoreError>>>;

/// The group-commit writer's handle (cheap to clone).
#[derive(Clone)]
pub struct Writer {
    target: WriteTarget,
}

#[derive(Clone)]
enum WriteTarget {
    /// The store groups commits itself: call it directly.
    Store(Store),
    /// Writer tasks batching for the store.
    Tasks(mpsc::Sender<(Inbound, Reply)>),
}

impl Writer {
    /// Starts `tasks` writer tasks on `store` (PostgreSQL can use several), or
    /// none when the store groups commits itself (SQLite files).
    pub fn start(store: Store, tasks: usize) -> Self {
        if store.groups_commits() {
            return Self {
                target: WriteTarget::Store(store),
            };
        }
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..tasks.max(1) {
            tokio::spawn(write_batches(store.clone(), receiver.clone()));
        }
        Self {
            target: WriteTarget::Tasks(queue),
        }
    }

    async fn submit(&self, inbound: Inbound) -> Result<Acceptance, ApiError> {
        let queue = match &self.target {
            WriteTarget::Store(store) => {
                let (inbound, jobs) = inbound.into_parts();
                let stored = store.accept(inbound, jobs).await;
                return stored.map_err(|error| ApiError::from(&error));
            }
            WriteTarget::Tasks(queue) => queue,
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send((inbound, reply))
            .await
            .map_err(|_| ApiError::Internal("ingest writer stopped".to_owned()))?;
        match answer.await {
            Ok(Ok(acceptance)) => Ok(acceptance),
            Ok(Err(error)) => Err(ApiError::from(error.as_ref())),
            Err(_) => Err(ApiError::Internal(
                "ingest writer dropped the request".to_owned(),
            )),
        }
    }
}

async fn write_batches(store: Store, receiver: Arc<Mutex<mpsc::Receiver<(Inbound, Reply)>>>) {
    loop {
        let mut items = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            items.push(first);
            while items.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
        }
        let (batch, replies): (Vec<_>, Vec<_>) = items
            .into_iter()
            .map(|(inbound, reply)| (inbound.into_parts(), reply))
            .unzip();
        metrics::histogram!("ticketbridge_ingest_batch_size").record(batch.len() as f64);
        match store.accept_batch_each(batch).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone (timeout); the row is stored anyway.
                    let _ = reply.send(outcome.map_err(Arc::new));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Refuses a body that is not declared as JSON (`application/json` or any
/// `application/*+json`) with 415; `what` names the thing sent ("the ticket").
pub fn require_json(headers: &axum::http::HeaderMap, what: &str) -> Result<(), ApiError> {
    let essence = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "send {what} as JSON with Content-Type: application/json"
        )))
    }
}

/// The request headers worth keeping in the inbox row, as a JSON object
/// (never authentication headers: callers list only harmless names).
pub fn kept_headers(headers: &axum::http::HeaderMap, names: &[&str]) -> Value {
    let mut kept = serde_json::Map::new();
    for name in names {
        if let Some(value) = headers.get(*name).and_then(|v| v.to_str().ok()) {
            kept.insert((*name).to_owned(), Value::String(value.to_owned()));
        }
    }
    Value::Object(kept)
}
