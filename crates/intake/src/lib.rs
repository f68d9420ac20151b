//! The intake flow: tickets requested by web forms, voice agents and
//! automation tools. No HTTP here: the server's intake routes validate with
//! [`request::validate`], accept the request durably with one
//! [`JOB_KIND`] job, and wait for its [`RequestOutcome`] with
//! [`Intake::wait_outcome`].
//!
//! The job ([`CreateTicket`]) resolves the organisation (tax id → entity,
//! cached), the requester (email → phone → create → email-only, cached) and
//! the category (by name, cached), then creates the ticket carrying a marker
//! derived from the request and stores the `linked` link. Any run but the
//! job's first looks for the link, then for the marker, instead of creating
//! a second ticket. The `linked` link is the success outcome (nothing else
//! is written); a failure is recorded in kv (`intake.request`). Callers
//! waiting in this process are woken either way.

pub mod content;
mod create;
mod handoff;
pub mod outcome;
mod read;
mod recent;
pub mod request;
mod source;
mod waiters;

pub use handoff::HandedRequest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use config::{Config, SourceConfig};
use flows::Targets;
use flows::claims::PersonClaims;
use flows::helpdesk::HelpdeskError;
use store::{JobFilter, JobStatus, LinkState, Store, StoreError};

pub use create::CreateTicket;
pub use outcome::{FailureCode, NAMESPACE, RequestOutcome};
pub use read::{FollowupView, LookupError, RequesterLookup, TicketDetail, TicketSummary};
pub use source::{Precheck, Source};

/// The job kind that creates a ticket from an accepted request.
pub const JOB_KIND: &str = "intake.create_ticket";
/// Link kind from a request (inbox id) to the ticket.
pub const LINK_KIND: &str = "intake.ticket";
/// How often a waiting caller re-reads the store when nothing in this
/// process wakes it (outcomes recorded by another instance).
pub const STORE_RECHECK: Duration = Duration::from_secs(1);

/// Failures of the intake flow outside the job (reads, waiting).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Helpdesk(#[from] HelpdeskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("intake source {0:?} points at target {1:?}, which is not configured")]
    UnknownTarget(String, String),
}

impl IntakeError {
    pub fn is_retryable(&self) -> bool {
        match self {
            IntakeError::Helpdesk(e) => e.is_retryable(),
            IntakeError::Store(e) => e.is_retryable(),
            IntakeError::UnknownTarget(..) => false,
        }
    }
}

/// Every intake source of the configuration, and the callers waiting for
/// outcomes. Shared by the job handler and the routes.
pub struct Intake {
    store: Store,
    sources: BTreeMap<String, Arc<Source>>,
    waiters: waiters::Waiters,
    handoff: handoff::Handoff,
    max_attempts: i32,
    /// This process's engine, to start create jobs claimed at accept.
    starter: Option<engine::Starter>,
}

impl Intake {
    /// The intake sources of `config` on their targets.
    pub fn from_config(
        config: &Config,
        targets: &Targets,
        store: Store,
    ) -> Result<Intake, IntakeError> {
        let mut sources = BTreeMap::new();
        for (name, source) in &config.sources {
            if let SourceConfig::Intake(settings) = source {
                let helpdesk = targets.helpdesk(&settings.target).ok_or_else(|| {
                    IntakeError::UnknownTarget(name.clone(), settings.target.clone())
                })?;
                sources.insert(
                    name.clone(),
                    Arc::new(Source::new(
                        name,
                        settings.clone(),
                        helpdesk,
                        PersonClaims::new(store.clone()),
                    )),
                );
            }
        }
        Ok(Intake {
            store,
            sources,
            waiters: waiters::Waiters::default(),
            handoff: handoff::Handoff::default(),
            max_attempts: i32::try_from(config.engine.max_attempts).unwrap_or(i32::MAX),
            starter: None,
        })
    }

    /// Start create jobs on `starter`'s engine as they are accepted (see
    /// [`Intake::reserve`]) instead of waiting for its runners to claim them.
    pub fn with_starter(mut self, starter: engine::Starter) -> Self {
        self.starter = Some(starter);
        self
    }

    /// Before accepting `job`: when this process's engine has a free slot for
    /// it, hold the slot and ask the store to claim the job as it stores it,
    /// which saves the claim's write and the wait for a runner (a caller waits
    /// for this ticket). Pass what the accept claimed to
    /// [`engine::Reservation::start`]; drop the reservation otherwise.
    pub fn reserve(&self, job: &mut store::NewJob) -> Option<engine::Reservation> {
        let reservation = self.starter.as_ref()?.reserve(&job.queue)?;
        job.claim = Some(reservation.claim());
        Some(reservation)
    }

    pub fn source(&self, name: &str) -> Option<&Arc<Source>> {
        self.sources.get(name)
    }

    pub fn sources(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.sources.values()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Attempts given to each create job.
    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    /// Hand the request of `job` to it in memory (call before accepting it,
    /// since the job may start the moment it is stored); withdraw it with
    /// [`Intake::withdraw`] when the request turns out to be a repeat.
    pub fn hand_over(&self, job: &store::NewJob, request: HandedRequest) {
        self.handoff.put(&job.ordering_key, request);
    }

    /// Forget a request handed over for a job that was not enqueued.
    pub fn withdraw(&self, job_ordering_key: &str) {
        self.handoff.withdraw(job_ordering_key);
    }

    /// The request handed over for the job ordered by `ordering_key`, if any.
    pub(crate) fn handed(&self, ordering_key: &str) -> Option<HandedRequest> {
        self.handoff.take(ordering_key)
    }

    /// The job that creates the ticket for an accepted request.
    pub fn job(&self, source: &Source, dedupe_key: &str, precheck: &Precheck) -> store::NewJob {
        let entity = match precheck {
            Precheck::Found(id) => Some(*id),
            _ => None,
        };
        store::NewJob::new(
            source.settings.target.clone(),
            JOB_KIND,
            format!("intake:{}:{}", source.name, dedupe_key),
            serde_json::json!({"source": source.name, "entity": entity}),
        )
        .max_attempts(self.max_attempts)
    }

    /// The final outcome of request `id` of `source`, if there is one: a
    /// `linked` link is a created ticket (the success path writes nothing
    /// else), a failure is recorded in kv.
    async fn final_outcome(
        &self,
        source: &Source,
        id: i64,
    ) -> Result<Option<RequestOutcome>, IntakeError> {
        let link = self
            .store
            .link(
                LINK_KIND,
                &format!("intake:{}", source.name),
                &id.to_string(),
                &source.settings.target,
            )
            .await?;
        if let Some(link) = link
            && link.state == LinkState::Linked
            && let Some(ticket_id) = link.target_id.as_deref().and_then(|t| t.parse().ok())
        {
            let reference = source.reference(ticket_id, &link.data).await;
            return Ok(Some(source.created(ticket_id, &reference)));
        }
        if let Some(value) = self.store.kv_get(NAMESPACE, &id.to_string()).await?
            && let Ok(outcome) = serde_json::from_value::<RequestOutcome>(value)
            && outcome.source() == source.name
            && outcome.is_final()
        {
            return Ok(Some(outcome));
        }
        Ok(None)
    }

    /// The recorded outcome of request `id` of `source`; `Queued` (with the
    /// job's attempts and last error) while the ticket does not exist yet;
    /// `None` when no such request came to this source.
    pub async fn outcome(
        &self,
        source: &str,
        id: i64,
    ) -> Result<Option<RequestOutcome>, IntakeError> {
        let Some(configured) = self.source(source) else {
            return Ok(None);
        };
        // A ticket this process created is known here before its link is
        // written (a waiting caller is answered first): a status read right
        // after that answer must not say "queued". Only a ticket, which no
        // later event changes: a failure remembered here may have been
        // started again through another instance since, so the store says.
        if let Some(outcome) = self.waiters.finished(id)
            && outcome.source() == source
            && matches!(outcome, RequestOutcome::Created { .. })
        {
            return Ok(Some(outcome));
        }
        if let Some(outcome) = self.final_outcome(configured, id).await? {
            return Ok(Some(outcome));
        }
        let Some(inbox) = self.store.inbox(id).await? else {
            return Ok(None);
        };
        if inbox.source != source {
            return Ok(None);
        }
        let jobs = self
            .store
            .jobs(&JobFilter {
                ordering_key: Some(format!("intake:{source}:{}", inbox.dedupe_key)),
                kind: Some(JOB_KIND.to_string()),
                limit: Some(1),
                ..JobFilter::default()
            })
            .await?;
        let job = jobs.first();
        // A job finishes after its outcome is recorded (the link of its
        // ticket, or its failure): one that finished between the read of the
        // outcome above and the job's has its outcome there now.
        if let Some(job) = job
            && matches!(job.status, JobStatus::Dead | JobStatus::Succeeded)
            && let Some(outcome) = self.final_outcome(configured, id).await?
        {
            return Ok(Some(outcome));
        }
        if let Some(job) = job
            && job.status == JobStatus::Dead
        {
            return Ok(Some(RequestOutcome::Failed {
                source: source.to_string(),
                code: FailureCode::TargetUnavailable,
                reason: job.last_error.clone().unwrap_or_default(),
            }));
        }
        Ok(Some(RequestOutcome::Queued {
            source: source.to_string(),
            attempts: job.map(|j| j.attempts),
            last_error: job.and_then(|j| j.last_error.clone()),
        }))
    }

    /// Waits up to `wait` for request `id` to be created or to fail; returns
    /// the last known outcome (possibly still queued). Never holds a
    /// transaction: it reads the store once, then again when the job handler
    /// of this process wakes it, and every [`STORE_RECHECK`] for outcomes
    /// written by another instance.
    ///
    /// An outcome reached by this process's job handler comes from memory.
    /// `fresh`: the request was accepted just now, so no outcome is expected
    /// before its job runs and the first store read is skipped (a job run by
    /// another instance is seen at the next re-check).
    pub async fn wait_outcome(
        &self,
        source: &Source,
        id: i64,
        wait: Duration,
        fresh: bool,
    ) -> Result<RequestOutcome, IntakeError> {
        let deadline = tokio::time::Instant::now() + wait;
        let waiting = self.waiters.register(id);
        let mut read = !fresh;
        loop {
            let notified = waiting.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.waiters.finished(id) {
                Some(outcome @ RequestOutcome::Created { .. })
                    if outcome.source() == source.name =>
                {
                    return Ok(outcome);
                }
                // A failure is read back from the store (see `outcome`).
                Some(_) => read = true,
                None => {}
            }
            if read && let Some(outcome) = self.final_outcome(source, id).await? {
                return Ok(outcome);
            }
            read = true;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let nap = (deadline - now).min(STORE_RECHECK);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
        drop(waiting);
        Ok(self
            .outcome(&source.name, id)
            .await?
            .unwrap_or(RequestOutcome::Queued {
                source: source.name.clone(),
                attempts: None,
                last_error: None,
            }))
    }

    /// Hands the durable outcome of request `id` to the callers of this
    /// process waiting for it.
    fn wake(&self, id: i64, outcome: RequestOutcome) {
        self.waiters.wake(id, outcome);
    }

    /// Records a failure (kv, one write) and wakes waiting callers.
    /// Whether `source`'s keys may read ticket `ticket_id`: every ticket with
    /// `reads = "all"`, none with `"none"`, and with `"own"` the tickets
    /// created through this source (its `linked` links).
    pub async fn may_read(&self, source: &Source, ticket_id: i64) -> Result<bool, IntakeError> {
        match source.settings.reads {
            config::sources::ReadScope::All => Ok(true),
            config::sources::ReadScope::None => Ok(false),
            config::sources::ReadScope::Own => {
                let system = format!("intake:{}", source.name);
                Ok(self
                    .store
                    .links_to(LINK_KIND, &source.settings.target, &ticket_id.to_string())
                    .await?
                    .iter()
                    .any(|link| link.source_system == system && link.state == LinkState::Linked))
            }
        }
    }

    /// Start request `id` of `source` again when it failed because of the
    /// target, not of what it asked ([`FailureCode::is_target_side`]: the
    /// target stayed unavailable through every attempt, or refused the
    /// bridge's credentials or answered something unreadable): the caller
    /// sent it again, and a 5xx that stays a 5xx for ever would make retrying
    /// useless once the target is fixed. Its dead job is revived (a revived
    /// job looks for a ticket an earlier attempt may have made before
    /// creating one) and the failure forgotten. True when the request was
    /// started again.
    pub async fn restart_if_target_failed(
        &self,
        source: &Source,
        id: i64,
    ) -> Result<bool, IntakeError> {
        let Some(RequestOutcome::Failed { code, .. }) = self.final_outcome(source, id).await?
        else {
            return Ok(false);
        };
        if !code.is_target_side() {
            return Ok(false);
        }
        let Some(inbox) = self.store.inbox(id).await? else {
            return Ok(false);
        };
        let dead = self
            .store
            .jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                ordering_key: Some(format!("intake:{}:{}", source.name, inbox.dedupe_key)),
                kind: Some(JOB_KIND.to_string()),
                limit: Some(1),
                ..JobFilter::default()
            })
            .await?;
        let Some(job) = dead.first() else {
            return Ok(false);
        };
        if self.store.revive_dead(Some(job.id)).await? == 0 {
            // Another repeat revived it a moment ago.
            return Ok(true);
        }
        self.store.kv_delete(NAMESPACE, &id.to_string()).await?;
        self.waiters.forget(id);
        tracing::info!(source = %source.name, request = id, code = code.as_str(), "request sent again after the target failed: started again");
        Ok(true)
    }

    async fn record_failure(&self, id: i64, outcome: &RequestOutcome) -> Result<(), StoreError> {
        let value = serde_json::to_value(outcome).map_err(|e| StoreError::Encode {
            what: "intake outcome",
            reason: e.to_string(),
        })?;
        self.store
            .kv_put(NAMESPACE, &id.to_string(), &value)
            .await?;
        self.waiters.wake(id, outcome.clone());
        Ok(())
    }
}
