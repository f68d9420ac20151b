//! Records read from and written to the store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An inbound request to persist (raw body plus the headers worth keeping).
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub source: String,
    pub dedupe_key: String,
    pub body: Vec<u8>,
    pub headers: Value,
}

/// A stored inbound request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxRecord {
    pub id: i64,
    pub source: String,
    pub dedupe_key: String,
    pub body: Vec<u8>,
    pub headers: Value,
    pub received_at: i64,
    /// The answer given to the first delivery; repeats get the same one.
    pub response: Option<Value>,
}

/// The outcome of [`crate::Store::accept`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Acceptance {
    /// Stored for the first time, with its jobs, in one transaction.
    /// `claimed`: the jobs asked to be claimed as they were stored
    /// ([`NewJob::claim_now`]) that were, already `running` under the asker's
    /// lease; it is up to the asker to run them now.
    Accepted {
        inbox_id: i64,
        job_ids: Vec<i64>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        claimed: Vec<Job>,
    },
    /// Seen before: nothing was enqueued; `response` is what the first delivery got.
    Duplicate {
        inbox_id: i64,
        response: Option<Value>,
    },
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Queue name: the target system; concurrency is bounded per queue.
    pub queue: String,
    /// Handler name.
    pub kind: String,
    /// Jobs with the same key run one at a time, in enqueue (id) order.
    pub ordering_key: String,
    pub payload: Value,
    /// Unix ms; `None` means now.
    pub run_at: Option<i64>,
    /// `None` means the store default ([`crate::DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: Option<i32>,
    /// Debounce key: while a pending job with this key exists, enqueueing again
    /// updates that job's `run_at` and `payload` instead of adding a job.
    pub unique_key: Option<String>,
    /// With `unique_key`: a debounce never moves the pending job later (see
    /// [`NewJob::keep_earlier`]).
    pub keep_earlier: bool,
    /// Claim the job as it is stored (see [`NewJob::claim_now`]).
    pub claim: Option<ClaimNow>,
}

/// A claim taken in the transaction that stores the job, for a worker that will
/// run the job at once: it saves the claim's own write and the wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNow {
    /// The claiming worker (the lease fence's `locked_by`).
    pub worker: String,
    /// Lease length in milliseconds.
    pub lease_ms: i64,
}

impl NewJob {
    /// A job to run now with the default attempt limit and no debounce key.
    pub fn new(
        queue: impl Into<String>,
        kind: impl Into<String>,
        ordering_key: impl Into<String>,
        payload: Value,
    ) -> Self {
        NewJob {
            queue: queue.into(),
            kind: kind.into(),
            ordering_key: ordering_key.into(),
            payload,
            run_at: None,
            max_attempts: None,
            unique_key: None,
            keep_earlier: false,
            claim: None,
        }
    }

    /// Run no earlier than `run_at` (unix ms).
    pub fn run_at(mut self, run_at: i64) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    pub fn unique_key(mut self, unique_key: impl Into<String>) -> Self {
        self.unique_key = Some(unique_key.into());
        self
    }

    /// With a `unique_key`, a pending job is moved earlier but never later:
    /// it runs at the earlier of its own time and `run_at`. For periodic work
    /// scheduled at start-up, so that instances starting one after another
    /// do not push it back each time. A job waiting on a retry keeps its time.
    pub fn keep_earlier(mut self) -> Self {
        self.keep_earlier = true;
        self
    }

    /// Store the job already claimed by `claim.worker` (attempt 1, `running`,
    /// leased for `claim.lease_ms`) when the claim rule lets it run now: it is
    /// due, and no other job of its ordering key is running or waiting. Then
    /// [`Acceptance::Accepted::claimed`] returns it and the caller must run it
    /// (or release it); otherwise it is stored `pending` for the engine, as
    /// without a claim. Only `accept` on a SQLite file store claims; the other
    /// stores and `enqueue` store the job pending.
    pub fn claim_now(mut self, claim: ClaimNow) -> Self {
        self.claim = Some(claim);
        self
    }
}

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(JobStatus::Pending),
            "running" => Ok(JobStatus::Running),
            "succeeded" => Ok(JobStatus::Succeeded),
            "dead" => Ok(JobStatus::Dead),
            other => Err(format!("unknown job status `{other}`")),
        }
    }
}

/// A stored job. A claimed job carries the lease fence (`locked_by`, `attempts`)
/// that `complete`/`retry_later`/`bury`/`release`/`extend_lease` check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub ordering_key: String,
    pub payload: Value,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub inbox_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl Job {
    /// True on the first run of a job that nothing ran before: no earlier attempt
    /// (retried, lease lost, released at shutdown or dead and revived) may have
    /// done part of its work, so a handler can skip looking for traces of one.
    pub fn is_first_run(&self) -> bool {
        self.attempts == 1 && self.last_error.is_none()
    }
}

/// What [`crate::Store::complete_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The job is now `succeeded`; false when the worker no longer held it.
    pub recorded: bool,
    /// A job of the same ordering key is pending: the engine should look for
    /// work (the finished job held it back). False only when the store knows.
    pub successor_pending: bool,
}

/// Which jobs [`crate::Store::jobs`] lists (newest first). Empty fields match all.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub queue: Option<String>,
    pub ordering_key: Option<String>,
    /// At most this many rows; `None` means 100.
    pub limit: Option<i64>,
}

/// Whether the target object exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Intent recorded; the target object may or may not have been created.
    Pending,
    /// The target object exists and `target_id` names it.
    Linked,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Pending => "pending",
            LinkState::Linked => "linked",
        }
    }
}

impl std::str::FromStr for LinkState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(LinkState::Pending),
            "linked" => Ok(LinkState::Linked),
            other => Err(format!("unknown link state `{other}`")),
        }
    }
}

/// A link to create or replace (upsert on kind + source_system + source_id + target_system).
#[derive(Debug, Clone)]
pub struct NewLink {
    pub kind: String,
    pub source_system: String,
    pub source_id: String,
    pub target_system: String,
    pub target_id: Option<String>,
    pub state: LinkState,
    pub data: Value,
}

/// A source object ↔ target object mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub id: i64,
    pub kind: String,
    pub source_system: String,
    pub source_id: String,
    pub target_system: String,
    pub target_id: Option<String>,
    pub state: LinkState,
    pub data: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which links [`crate::Store::links`] lists (newest first). Empty fields match all.
#[derive(Debug, Clone, Default)]
pub struct LinkFilter {
    pub kind: Option<String>,
    pub source_system: Option<String>,
    pub target_system: Option<String>,
    pub state: Option<LinkState>,
    /// At most this many rows; `None` means 100.
    pub limit: Option<i64>,
}

/// An audit line to record: what was written where, by which job.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub job_id: Option<i64>,
    pub system: String,
    pub action: String,
    pub object_key: String,
    pub detail: Value,
}

/// A recorded audit line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub job_id: Option<i64>,
    pub system: String,
    pub action: String,
    pub object_key: String,
    pub detail: Value,
    pub at: i64,
}
