//! The engine: one runner per queue claiming jobs, a sweeper for expired leases, and
//! graceful shutdown.

use crate::execute::execute;
use crate::{EngineConfig, EngineError, Handler};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use store::{ClaimNow, Job, NewJob, Store, now_ms};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shortest time between two looks for queues with work (new queues get a
/// runner; runners of known queues are woken directly).
const DISCOVERY_GAP: Duration = Duration::from_millis(20);
/// Succeeded jobs deleted per transaction by the retention sweep.
const PURGE_BATCH: i64 = 500;
/// Inbox rows looked at per write by the body-retention sweep (fewer: each
/// may carry attachments).
const BODIES_BATCH: i64 = 100;
/// Pause between two retention writes.
const PURGE_PAUSE: Duration = Duration::from_millis(10);

/// Runs jobs from a [`Store`]. Cheap to clone; clones share handlers and wake-ups.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    pub(crate) handlers: RwLock<HashMap<String, Arc<dyn Handler>>>,
    pub(crate) wake: watch::Sender<u64>,
    /// Bumped whenever a job run ends (whatever the outcome); runners are not
    /// woken for a job that succeeded with nothing behind it, but whoever waits
    /// for the engine to be idle is.
    pub(crate) finished: watch::Sender<u64>,
    /// Jobs finished (any outcome except release) since the engine was created.
    pub(crate) processed: AtomicUsize,
    /// Each queue's slots (its concurrency), shared by its runner and by
    /// [`Reservation`]s.
    slots: parking_lot::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// While [`Engine::run`] runs: where jobs started outside a runner go.
    running: parking_lot::Mutex<Option<Running>>,
}

/// What [`Engine::run`] tracks its jobs with.
#[derive(Clone)]
struct Running {
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    in_flight: TaskTracker,
}

impl Inner {
    fn slots_of(&self, queue: &str) -> Arc<Semaphore> {
        self.slots
            .lock()
            .entry(queue.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.concurrency_of(queue))))
            .clone()
    }

    fn reserve(self: &Arc<Self>, queue: &str) -> Option<Reservation> {
        let running = self.running.lock().clone()?;
        if running.shutdown.is_cancelled() {
            return None;
        }
        let permit = self.slots_of(queue).try_acquire_owned().ok()?;
        Some(Reservation {
            inner: self.clone(),
            permit,
            running,
        })
    }
}

/// A free slot of a queue of a running engine, held for one job that is being
/// stored claimed ([`store::NewJob::claim_now`] with [`Reservation::claim`]) so
/// that it starts at once, with no claim of its own and no wait for a runner:
/// pass the job the store returns claimed to [`Reservation::start`]. Dropping
/// the reservation gives the slot back.
pub struct Reservation {
    inner: Arc<Inner>,
    permit: OwnedSemaphorePermit,
    running: Running,
}

impl Reservation {
    /// The claim to store the job with: this engine's worker id and lease.
    pub fn claim(&self) -> ClaimNow {
        ClaimNow {
            worker: self.inner.config.worker_id.clone(),
            lease_ms: duration_ms(self.inner.config.lease),
        }
    }

    /// Run `job`, which the store returned claimed with [`Reservation::claim`],
    /// in the reserved slot, as if a runner had claimed it. Should the engine be
    /// stopping, the job is released instead, for whichever worker runs next.
    pub fn start(self, job: Job) {
        let Reservation {
            inner,
            permit,
            running,
        } = self;
        if running.shutdown.is_cancelled() {
            running.in_flight.spawn(async move {
                if let Err(error) = inner.store.release(&job).await {
                    tracing::warn!(job = job.id, %error, "releasing a job failed; its lease will expire");
                }
                drop(permit);
            });
            return;
        }
        running.in_flight.spawn(async move {
            execute(&inner, job, running.hard_stop, permit).await;
        });
    }
}

/// Reserves slots of an engine (see [`Reservation`]) without keeping the
/// engine alive: handlers that reserve hold one without a reference cycle.
#[derive(Clone)]
pub struct Starter {
    inner: Weak<Inner>,
}

impl Starter {
    /// A slot of `queue` when the engine runs and one is free; `None` means:
    /// store the job unclaimed, a runner will take it.
    pub fn reserve(&self, queue: &str) -> Option<Reservation> {
        self.inner.upgrade()?.reserve(queue)
    }
}

impl std::fmt::Debug for Starter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Starter")
    }
}

/// Tells a running engine that work may be waiting (call after enqueueing), so it
/// need not wait for its next poll. Cheap to clone.
#[derive(Clone)]
pub struct Waker {
    wake: watch::Sender<u64>,
}

impl Waker {
    pub fn wake(&self) {
        self.wake
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker_id", &self.inner.config.worker_id)
            .field(
                "kinds",
                &self.inner.handlers.read().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Engine {
    pub fn new(store: Store, config: EngineConfig) -> Self {
        let (wake, _) = watch::channel(0);
        let (finished, _) = watch::channel(0);
        Engine {
            inner: Arc::new(Inner {
                store,
                config,
                handlers: RwLock::new(HashMap::new()),
                wake,
                finished,
                processed: AtomicUsize::new(0),
                slots: parking_lot::Mutex::new(HashMap::new()),
                running: parking_lot::Mutex::new(None),
            }),
        }
    }

    /// Run jobs of `kind` with `handler` (replaces an earlier registration).
    /// Jobs of a kind nobody registered become dead letters.
    pub fn register(&mut self, kind: &str, handler: Arc<dyn Handler>) {
        self.inner
            .handlers
            .write()
            .insert(kind.to_string(), handler);
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// A slot of `queue` for a job stored claimed (see [`Reservation`]).
    pub fn reserve(&self, queue: &str) -> Option<Reservation> {
        self.inner.reserve(queue)
    }

    /// A handle that reserves slots of this engine without keeping it alive.
    pub fn starter(&self) -> Starter {
        Starter {
            inner: Arc::downgrade(&self.inner),
        }
    }

    pub fn waker(&self) -> Waker {
        Waker {
            wake: self.inner.wake.clone(),
        }
    }

    /// Fill in what the job leaves to the engine (the attempt limit).
    pub fn apply_defaults(&self, job: &mut NewJob) {
        if job.max_attempts.is_none() {
            job.max_attempts = Some(self.inner.config.default_max_attempts);
        }
    }

    /// Enqueue with the engine's defaults and wake the workers.
    pub async fn enqueue(&self, mut job: NewJob) -> Result<i64, EngineError> {
        self.apply_defaults(&mut job);
        let id = self.inner.store.enqueue(job).await?;
        self.waker().wake();
        Ok(id)
    }

    /// Jobs finished by this engine (succeeded, retried, dead) since it was created.
    pub fn processed(&self) -> usize {
        self.inner.processed.load(Ordering::Relaxed)
    }

    /// Run until `shutdown` is cancelled: one runner per queue with work, bounded by
    /// the queue's concurrency; leases kept alive by heartbeats; expired leases swept.
    /// On shutdown: stop claiming, give in-flight jobs `shutdown_grace` to finish,
    /// then stop them and release their jobs (the attempt is not counted).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let config = &self.inner.config;
        let hard_stop = CancellationToken::new();
        let in_flight = TaskTracker::new();
        let mut runners: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut wake = self.inner.wake.subscribe();
        let mut last_sweep: Option<Instant> = None;
        let mut last_discovery: Option<Instant> = None;
        *self.inner.running.lock() = Some(Running {
            shutdown: shutdown.clone(),
            hard_stop: hard_stop.clone(),
            in_flight: in_flight.clone(),
        });
        tracing::info!(worker = %config.worker_id, "job engine started");

        for queue in config.concurrency.keys() {
            self.start_runner(queue, &mut runners, &shutdown, &hard_stop, &in_flight);
        }
        let retention = (config.keep_succeeded.is_some()
            || config.keep_request_bodies.is_some()
            || config.keep_audit.is_some())
        .then(|| {
            tokio::spawn(apply_retention(
                self.inner.store.clone(),
                Retention {
                    succeeded: config.keep_succeeded,
                    bodies: config.keep_request_bodies,
                    audit: config.keep_audit,
                },
                config.retention_interval,
                shutdown.clone(),
            ))
        });
        loop {
            if last_sweep.is_none_or(|at| at.elapsed() >= config.sweep_interval) {
                match self.inner.store.reclaim_expired().await {
                    Ok(count) if count > 0 => self.waker().wake(),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "sweeping expired leases failed"),
                }
                last_sweep = Some(Instant::now());
            }
            // Wake-ups come with every enqueue and every finished job; runners of
            // known queues get them too, so looking for new queues can wait a bit.
            if let Some(at) = last_discovery {
                let since = at.elapsed();
                if since < DISCOVERY_GAP {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(DISCOVERY_GAP - since) => {}
                    }
                }
            }
            last_discovery = Some(Instant::now());
            match self.inner.store.queues_with_work().await {
                Ok(queues) => {
                    for queue in queues {
                        self.start_runner(&queue, &mut runners, &shutdown, &hard_stop, &in_flight);
                    }
                }
                Err(error) => tracing::warn!(%error, "listing queues failed"),
            }
            let wait = config.poll_interval.min(config.sweep_interval);
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = wake.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }

        tracing::info!(worker = %config.worker_id, "job engine stopping");
        self.inner.running.lock().take();
        if let Some(retention) = retention
            && let Err(error) = retention.await
        {
            tracing::error!(%error, "retention sweep ended abnormally");
        }
        for (queue, runner) in runners {
            if let Err(error) = runner.await {
                tracing::error!(%queue, %error, "queue runner ended abnormally");
            }
        }
        in_flight.close();
        if tokio::time::timeout(config.shutdown_grace, in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace passed; releasing in-flight jobs");
            hard_stop.cancel();
            in_flight.wait().await;
        }
        tracing::info!(worker = %config.worker_id, "job engine stopped");
        Ok(())
    }

    /// Run until no job is running or claimable (scheduled and backed-off jobs not
    /// yet due do not count), then stop. Returns the number of jobs processed.
    /// For tests and the demo; fails with [`EngineError::NotIdle`] after `deadline`.
    pub async fn run_until_idle(&self, deadline: Duration) -> Result<usize, EngineError> {
        let before = self.processed();
        let started = Instant::now();
        let shutdown = CancellationToken::new();
        let engine = self.clone();
        let token = shutdown.clone();
        let run = tokio::spawn(async move { engine.run(token).await });
        let mut wake = self.inner.wake.subscribe();
        let mut finished = self.inner.finished.subscribe();
        let check_every = self
            .inner
            .config
            .poll_interval
            .min(Duration::from_millis(50));
        let outcome = loop {
            match self.inner.store.outstanding().await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(error) => break Err(EngineError::from(error)),
            }
            if started.elapsed() >= deadline {
                break Err(EngineError::NotIdle {
                    deadline,
                    processed: self.processed().saturating_sub(before),
                });
            }
            tokio::select! {
                _ = wake.changed() => {}
                _ = finished.changed() => {}
                () = tokio::time::sleep(check_every) => {}
            }
        };
        shutdown.cancel();
        match run.await {
            Ok(result) => result?,
            Err(error) => return Err(EngineError::Task(error.to_string())),
        }
        outcome.map(|()| self.processed().saturating_sub(before))
    }

    fn start_runner(
        &self,
        queue: &str,
        runners: &mut HashMap<String, JoinHandle<()>>,
        shutdown: &CancellationToken,
        hard_stop: &CancellationToken,
        in_flight: &TaskTracker,
    ) {
        if runners.contains_key(queue) {
            return;
        }
        let runner = QueueRunner {
            inner: self.inner.clone(),
            queue: queue.to_string(),
            shutdown: shutdown.clone(),
            hard_stop: hard_stop.clone(),
            in_flight: in_flight.clone(),
        };
        tracing::debug!(queue, "queue runner started");
        runners.insert(queue.to_string(), tokio::spawn(runner.run()));
    }
}

/// Claims and starts the jobs of one queue, at most its concurrency at a time.
struct QueueRunner {
    inner: Arc<Inner>,
    queue: String,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    in_flight: TaskTracker,
}

impl QueueRunner {
    async fn run(self) {
        let config = &self.inner.config;
        let slots = self.inner.slots_of(&self.queue);
        let lease_ms = duration_ms(config.lease);
        let mut wake = self.inner.wake.subscribe();
        loop {
            let first = tokio::select! {
                () = self.shutdown.cancelled() => return,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            if self.shutdown.is_cancelled() {
                return;
            }
            let free = 1 + slots.available_permits();
            let claimed = match self
                .inner
                .store
                .claim(&self.queue, &config.worker_id, lease_ms, free as i64)
                .await
            {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::warn!(queue = %self.queue, %error, "claiming jobs failed");
                    Vec::new()
                }
            };
            // Fewer jobs than free slots: the queue is drained for now, so wait
            // for a wake-up instead of claiming again at once.
            let drained = claimed.len() < free;
            if claimed.is_empty() {
                drop(first);
                if !self.woken_meanwhile(&mut wake) {
                    let wait = self.idle_wait().await;
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        _ = wake.changed() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                continue;
            }
            let mut permit = Some(first);
            for job in claimed {
                let slot = match permit.take() {
                    Some(p) => p,
                    // The claim asked for the slots free before it; one may have been
                    // reserved meanwhile (`Engine::reserve`, a job claimed at accept).
                    None => match slots.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => {
                            // Never hold a claimed job without a slot: it would wait
                            // `running` with no heartbeat, and be taken again
                            // elsewhere once its lease ran out.
                            self.give_back(&job).await;
                            continue;
                        }
                    },
                };
                let inner = self.inner.clone();
                let hard_stop = self.hard_stop.clone();
                self.in_flight.spawn(async move {
                    execute(&inner, job, hard_stop, slot).await;
                });
            }
            if drained && !self.woken_meanwhile(&mut wake) {
                let wait = self.idle_wait().await;
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    _ = wake.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Returns a job claimed without a free slot to pending (the attempt not
    /// counted). If that fails, its lease runs out and the sweeper returns it.
    async fn give_back(&self, job: &Job) {
        match self.inner.store.release_unstarted(job).await {
            Ok(_) => {
                tracing::debug!(queue = %self.queue, job = job.id, "claimed job given back: no free slot")
            }
            Err(error) => {
                tracing::warn!(queue = %self.queue, job = job.id, %error, "could not give back a claimed job; it is taken again after its lease");
            }
        }
    }

    /// True (and the wake-up taken) when a job was enqueued or finished since
    /// the last look: claim again at once rather than reading when the next
    /// scheduled job falls due, which would delay the new job by a store read.
    fn woken_meanwhile(&self, wake: &mut tokio::sync::watch::Receiver<u64>) -> bool {
        if wake.has_changed().unwrap_or(false) {
            wake.borrow_and_update();
            true
        } else {
            false
        }
    }

    /// How long to sleep when nothing could be claimed: until the next scheduled job
    /// of this queue falls due, at most the poll interval.
    async fn idle_wait(&self) -> Duration {
        let poll = self.inner.config.poll_interval;
        match self.inner.store.next_run_at(&self.queue).await {
            Ok(Some(at)) => {
                let until = at.saturating_sub(now_ms());
                if until > 0 {
                    poll.min(Duration::from_millis(u64::try_from(until).unwrap_or(0)))
                } else {
                    poll
                }
            }
            Ok(None) => poll,
            Err(error) => {
                tracing::warn!(queue = %self.queue, %error, "reading next run time failed");
                poll
            }
        }
    }
}

pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What the retention sweep keeps, and for how long (`None`: for ever).
struct Retention {
    succeeded: Option<Duration>,
    bodies: Option<Duration>,
    audit: Option<Duration>,
}

/// Cursor of the body-retention sweep: the first inbox id it has not looked at.
const BODIES_CURSOR: &str = "retention:inbox-bodies";

/// Retention: every `every`, delete the succeeded jobs that finished more than
/// `keep.succeeded` ago, empty the bodies of finished requests received more
/// than `keep.bodies` ago and delete audit lines older than `keep.audit`,
/// until `shutdown`.
async fn apply_retention(
    store: Store,
    keep: Retention,
    every: Duration,
    shutdown: CancellationToken,
) {
    let cutoff = |keep: Duration| {
        now_ms().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
    };
    loop {
        if let Some(kept) = keep.succeeded {
            match purge_finished_before(&store, cutoff(kept), &shutdown).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, kept_for = ?kept,
                    "deleted succeeded jobs past retention"),
                Err(error) => tracing::warn!(%error,
                    "deleting old succeeded jobs failed; will try again"),
            }
        }
        if let Some(kept) = keep.bodies {
            match clear_bodies_before(&store, cutoff(kept), &shutdown).await {
                Ok(0) => {}
                Ok(cleared) => tracing::info!(cleared, kept_for = ?kept,
                    "emptied request bodies past retention"),
                Err(error) => tracing::warn!(%error,
                    "emptying old request bodies failed; will try again"),
            }
        }
        if let Some(kept) = keep.audit {
            match purge_audit_before(&store, cutoff(kept), &shutdown).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, kept_for = ?kept,
                    "deleted audit lines past retention"),
                Err(error) => tracing::warn!(%error,
                    "deleting old audit lines failed; will try again"),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One body-retention sweep: from where the last one stopped up to the first
/// request received at or after `before`, a batch per write. Returns how many
/// bodies were emptied. A request whose jobs were unfinished or dead when the
/// sweep passed keeps its body.
async fn clear_bodies_before(
    store: &Store,
    before: i64,
    shutdown: &CancellationToken,
) -> Result<u64, store::StoreError> {
    let mut from_id = store
        .cursor(BODIES_CURSOR)
        .await?
        .and_then(|value| value.parse::<i64>().ok())
        .unwrap_or(0);
    let below_id = store.inbox_retention_end(from_id, before).await?;
    let mut cleared = 0;
    while from_id < below_id && !shutdown.is_cancelled() {
        let Some((count, last)) = store
            .clear_finished_bodies(from_id, below_id, BODIES_BATCH)
            .await?
        else {
            break;
        };
        cleared += count;
        from_id = last.saturating_add(1);
        store
            .set_cursor(BODIES_CURSOR, &from_id.to_string())
            .await?;
        metrics::counter!("ticketbridge_request_bodies_cleared_total").increment(count);
        if from_id < below_id {
            tokio::time::sleep(PURGE_PAUSE).await;
        }
    }
    Ok(cleared)
}

/// One audit-retention sweep: the lines written before `before`, a batch per
/// transaction, until none is left or `shutdown`.
async fn purge_audit_before(
    store: &Store,
    before: i64,
    shutdown: &CancellationToken,
) -> Result<u64, store::StoreError> {
    let mut deleted = 0;
    while !shutdown.is_cancelled() {
        let count = store.purge_audit(before, PURGE_BATCH).await?;
        deleted += count;
        if count < PURGE_BATCH.unsigned_abs() {
            break;
        }
        tokio::time::sleep(PURGE_PAUSE).await;
    }
    Ok(deleted)
}

/// One retention sweep: the succeeded jobs finished before `before`, a batch per
/// transaction, until none is left or `shutdown`. Returns how many were deleted.
async fn purge_finished_before(
    store: &Store,
    before: i64,
    shutdown: &CancellationToken,
) -> Result<u64, store::StoreError> {
    // Jobs are stored in id order, so none from the first one created after the
    // cutoff on can be due (one stored out of step with its id, by another
    // instance's clock, waits for a later sweep).
    let below_id = store
        .first_job_created_since(before)
        .await?
        .unwrap_or(i64::MAX);
    let mut deleted = 0;
    while !shutdown.is_cancelled() {
        let count = store.purge_succeeded(before, below_id, PURGE_BATCH).await?;
        deleted += count;
        metrics::counter!("ticketbridge_jobs_purged_total").increment(count);
        if count < PURGE_BATCH.unsigned_abs() {
            break;
        }
        // A long backlog (the first sweep after an upgrade) goes in short bites,
        // so live writes keep getting the write lock.
        tokio::time::sleep(PURGE_PAUSE).await;
    }
    Ok(deleted)
}
