//! The flow as the engine sees it: every Chatwoot source of the
//! configuration, one handler for all job kinds, and the first poll and
//! sweep jobs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chatwoot::{Event, is_noise_only_update};
use config::{Config, SourceConfig};
use engine::{Engine, Handler, JobError};
use flows::Targets;
use serde_json::Value;
use store::{Job, NewJob, Store};

use crate::error::{SyncError, SyncResult};
use crate::jobs::{self, KINDS};
use crate::source::{OWN_KEYS, SourceSync};

/// Every Chatwoot source, by name.
#[derive(Clone, Default)]
pub struct ChatwootFlow {
    sources: BTreeMap<String, Arc<SourceSync>>,
    store: Option<Store>,
}

impl ChatwootFlow {
    /// One [`SourceSync`] per `kind = "chatwoot"` source whose target exists.
    pub fn from_config(config: &Config, targets: &Targets, store: &Store) -> SyncResult<Self> {
        let mut sources = BTreeMap::new();
        for (name, source) in &config.sources {
            let SourceConfig::Chatwoot(settings) = source else {
                continue;
            };
            let helpdesk = targets.helpdesk(&settings.target).ok_or_else(|| {
                SyncError::Invalid(format!(
                    "sources.{name}: target {:?} is not a help desk",
                    settings.target
                ))
            })?;
            let sync = SourceSync::new(name, settings.clone(), helpdesk, store.clone())?;
            sources.insert(name.clone(), Arc::new(sync));
        }
        Ok(Self {
            sources,
            store: Some(store.clone()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn source(&self, name: &str) -> Option<&Arc<SourceSync>> {
        self.sources.get(name)
    }

    /// Registers the handler of every job kind of the flow.
    pub fn register(&self, engine: &mut Engine) {
        if self.sources.is_empty() {
            return;
        }
        let handler: Arc<dyn Handler> = Arc::new(self.clone());
        for kind in KINDS {
            engine.register(kind, handler.clone());
        }
    }

    /// The first poll of every source (now) and its first sweep (after one
    /// `reconcile_interval`, so webhooks arriving at start-up are applied
    /// from their own bodies first). A pending poll is moved, not doubled; a
    /// pending sweep is only ever moved earlier.
    pub fn first_jobs(&self) -> Vec<NewJob> {
        let now = store::now_ms();
        self.sources
            .values()
            .flat_map(|s| {
                let sweep = now + millis(s.settings().reconcile_interval);
                [
                    jobs::poll_job(s.name(), s.target(), now),
                    // Each instance start schedules one: the earliest stands, so
                    // instances restarting often cannot put the sweep off.
                    jobs::reconcile_job(s.name(), s.target(), sweep).keep_earlier(),
                ]
            })
            .collect()
    }

    /// Enqueues [`first_jobs`](Self::first_jobs).
    pub async fn start(&self) -> SyncResult<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        for job in self.first_jobs() {
            store.enqueue(job).await?;
        }
        Ok(())
    }

    async fn run(&self, job: &Job) -> SyncResult<()> {
        let source_name = job
            .payload
            .get("source")
            .and_then(Value::as_str)
            .ok_or_else(|| SyncError::Invalid("job payload has no source".into()))?;
        let source = self
            .sources
            .get(source_name)
            .ok_or_else(|| SyncError::UnknownSource(source_name.to_owned()))?;
        let conversation = job.payload.get("conversation_id").and_then(Value::as_u64);
        match job.kind.as_str() {
            jobs::EVENT => {
                let raw = job
                    .payload
                    .get("event")
                    .cloned()
                    .ok_or_else(|| SyncError::Invalid("job payload has no event".into()))?;
                source.on_event(raw).await
            }
            jobs::POLL => {
                self.schedule_next(source, &job.kind, source.settings().poll_interval)
                    .await?;
                let outcome = source.poll_once().await;
                self.store_found(source, &job.kind, outcome).await
            }
            jobs::RECONCILE => {
                self.schedule_next(source, &job.kind, source.settings().reconcile_interval)
                    .await?;
                let outcome = source
                    .sweep_once()
                    .await
                    .map(|jobs| Cycle { jobs, cursor: None });
                self.store_found(source, &job.kind, outcome).await
            }
            jobs::TICKET_CHANGED => {
                let ticket = job.payload.get("ticket_id").and_then(Value::as_i64);
                let settled = job.payload.get("settled_before").and_then(Value::as_str);
                match (conversation, ticket) {
                    (Some(c), Some(t)) => source.on_ticket_changed(c, t, settled).await,
                    _ => Err(SyncError::Invalid("ticket_changed job without ids".into())),
                }
            }
            jobs::REPAIR => match conversation {
                Some(c) => source.repair(c).await,
                None => Err(SyncError::Invalid(
                    "repair job without a conversation".into(),
                )),
            },
            other => Err(SyncError::Invalid(format!("unknown job kind {other}"))),
        }
    }

    /// Enqueues the next run of a periodic cycle, before the cycle runs: a
    /// cycle that then fails for good (a dead letter) does not end the chain.
    async fn schedule_next(
        &self,
        source: &SourceSync,
        kind: &str,
        interval: Duration,
    ) -> SyncResult<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let run_at = store::now_ms() + millis(interval);
        let next = if kind == jobs::POLL {
            jobs::poll_job(source.name(), source.target(), run_at)
        } else {
            jobs::reconcile_job(source.name(), source.target(), run_at)
        };
        store.enqueue(next).await?;
        Ok(())
    }

    /// Enqueues the jobs a periodic cycle found, then moves its cursor. A
    /// cycle that could not ask the remote system is logged and tried again
    /// at the next run.
    async fn store_found(
        &self,
        source: &SourceSync,
        kind: &str,
        outcome: SyncResult<Cycle>,
    ) -> SyncResult<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        match outcome {
            Ok(found) => {
                for job in found.jobs {
                    store.enqueue(job).await?;
                }
                // Only now: if a job above could not be stored, the cursor
                // stays, and the next run finds the same tickets again.
                if let Some((name, value)) = found.cursor {
                    store.set_cursor(&name, &value).await?;
                }
            }
            Err(error) => {
                tracing::warn!(source = %source.name(), kind, %error, "periodic cycle failed; next run will try again");
            }
        }
        Ok(())
    }
}

/// What one periodic cycle found: the jobs to store, then the cursor
/// position (name, value) to record once they are all stored.
#[derive(Debug, Default)]
pub(crate) struct Cycle {
    pub(crate) jobs: Vec<NewJob>,
    pub(crate) cursor: Option<(String, String)>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

#[async_trait::async_trait]
impl Handler for ChatwootFlow {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.run(job).await.map_err(|error| {
            tracing::warn!(job = job.id, kind = %job.kind, %error, retryable = error.is_retryable(), "chatwoot job failed");
            JobError::from(error)
        })
    }
}

impl SourceSync {
    /// Applies one webhook body.
    pub async fn on_event(&self, raw: Value) -> SyncResult<()> {
        let event = Event::from_value(raw).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let scoped = event.conversation_id().is_some();
        if scoped && !self.allows_inbox(event.inbox_id()) {
            return Ok(());
        }
        match &event {
            Event::ConversationCreated(e) => {
                self.ensure_ticket(e.conversation.id, Some(&e.conversation))
                    .await?;
            }
            Event::ConversationUpdated(e) => {
                if is_noise_only_update(&e.changed_attributes, &OWN_KEYS) {
                    return Ok(());
                }
                self.on_conversation_status(&e.conversation).await?;
            }
            Event::ConversationStatusChanged(e) => {
                self.on_conversation_status(&e.conversation).await?;
            }
            Event::MessageCreated(m) => self.on_message_created(m).await?,
            Event::MessageUpdated(m) => self.on_message_updated(m).await?,
            Event::ContactCreated(c) | Event::ContactUpdated(c) => {
                if is_noise_only_update(&c.changed_attributes, &OWN_KEYS) {
                    return Ok(());
                }
                let info = crate::contacts::ContactInfo::from(&c.contact);
                let identified = [&info.email, &info.phone]
                    .iter()
                    .any(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()));
                // Contact bodies name no inbox. With `inboxes` set, a contact is
                // made a person by its first conversation in one of them, and its
                // own events only keep a linked person up to date: the account's
                // other inboxes' customers stay out of the help desk.
                let wanted = self.settings.inboxes.is_empty()
                    || self.links.contact(info.id).await?.is_some();
                if identified && wanted {
                    self.ensure_person(&info).await?;
                }
            }
            Event::Other(_) => {}
        }
        Ok(())
    }
}
