//! Running one claimed job: heartbeat, handler in its own task (a panic is a
//! transient failure), then record the outcome under the lease fence.

use crate::engine::{Inner, duration_ms};
use crate::{JobError, retry_delay};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use store::{Job, StoreError, now_ms};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The running job's concurrency slot, until it is given back.
type SlotCell = Arc<parking_lot::Mutex<Option<OwnedSemaphorePermit>>>;

tokio::task_local! {
    /// The slot of the job whose handler runs in this task.
    static SLOT: SlotCell;
}

/// Gives the running job's concurrency slot back before its handler returns.
/// A handler calls it once its work against the target is done and only store
/// writes remain (a link, say): the next job, for which a caller may be
/// waiting, need not wait for them. The job itself still holds its ordering
/// key until it has finished. Outside a job handler it does nothing.
pub fn release_slot() {
    let _ = SLOT.try_with(|slot| slot.lock().take());
}

/// What happened to one execution, for metrics.
#[derive(Clone, Copy)]
enum Outcome {
    /// `successor_pending`: a job of the same ordering key may be waiting
    /// behind it (true unless the store said otherwise).
    Succeeded {
        successor_pending: bool,
    },
    Retried,
    Dead,
    Released,
    /// The lease was lost (reclaimed by the sweeper); another worker owns the job now.
    Lost,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Retried => "retried",
            Outcome::Dead => "dead",
            Outcome::Released => "released",
            Outcome::Lost => "lost",
        }
    }
}

/// How the handler's run ended.
enum Run {
    Finished(Result<(), JobError>),
    LeaseLost,
    Stopped,
}

/// Run `job` in `slot` (one of its queue's concurrency slots). The slot is
/// given back as soon as the handler is done, before the outcome is written:
/// the slot bounds the work against the target, and the bookkeeping write would
/// otherwise keep the next job (a caller may be waiting for it) out of it.
pub(crate) async fn execute(
    inner: &Arc<Inner>,
    job: Job,
    hard_stop: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let enqueued_before = inner.store.enqueued_count();
    let span = tracing::info_span!("job", id = job.id, kind = %job.kind, key = %job.ordering_key, attempt = job.attempts);
    let outcome = run_and_record(inner, &job, hard_stop, slot)
        .instrument(span)
        .await;
    let kind = job.kind.clone();
    metrics::counter!("ticketbridge_jobs_total", "kind" => kind.clone(), "outcome" => outcome.label())
        .increment(1);
    metrics::histogram!("ticketbridge_job_duration_seconds", "kind" => kind.clone())
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Outcome::Succeeded { .. } | Outcome::Dead => {
            metrics::histogram!("ticketbridge_job_attempts", "kind" => kind.clone())
                .record(f64::from(job.attempts));
            if matches!(outcome, Outcome::Dead) {
                metrics::counter!("ticketbridge_dead_letters_total", "kind" => kind).increment(1);
            }
        }
        Outcome::Retried | Outcome::Released | Outcome::Lost => {}
    }
    if !matches!(outcome, Outcome::Released) {
        inner.processed.fetch_add(1, Ordering::Relaxed);
    }
    // A finished job may unblock the next one of its ordering key, a retried one
    // has a new run time, and a handler may have enqueued jobs with
    // `Store::enqueue`, which wakes nobody. A job that succeeded with none of
    // that changes nothing the runners could claim (they wait for free slots on
    // their own), so they are not sent to claim nothing.
    let enqueued_meanwhile = inner.store.enqueued_count() != enqueued_before;
    let nothing_behind = matches!(
        outcome,
        Outcome::Succeeded {
            successor_pending: false
        }
    );
    if !nothing_behind || enqueued_meanwhile {
        inner
            .wake
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
    inner
        .finished
        .send_modify(|generation| *generation = generation.wrapping_add(1));
}

/// Run the job's handler and record how it ended.
async fn run_and_record(
    inner: &Arc<Inner>,
    job: &Job,
    hard_stop: CancellationToken,
    slot: OwnedSemaphorePermit,
) -> Outcome {
    let store = &inner.store;
    if job.attempts > job.max_attempts {
        // Claimed again after its worker died on the last allowed attempt.
        let error = format!(
            "attempts exhausted ({} of {}): {}",
            job.attempts - 1,
            job.max_attempts,
            job.last_error.as_deref().unwrap_or("worker lost the job")
        );
        return record(store.bury(job, &error).await, Outcome::Dead, job);
    }
    let handler = inner.handlers.read().get(&job.kind).cloned();
    let Some(handler) = handler else {
        let error = format!("no handler registered for job kind `{}`", job.kind);
        tracing::error!(job = job.id, "{error}");
        return record(store.bury(job, &error).await, Outcome::Dead, job);
    };

    let slot = Arc::new(parking_lot::Mutex::new(Some(slot)));
    let run = run_handler(inner, job, handler, hard_stop, slot.clone()).await;
    slot.lock().take();
    match run {
        Run::Stopped => record(store.release(job).await, Outcome::Released, job),
        Run::LeaseLost => Outcome::Lost,
        Run::Finished(Ok(())) => match persist(|| store.complete_job(job)).await {
            Ok(completion) => record(
                Ok(completion.recorded),
                Outcome::Succeeded {
                    successor_pending: completion.successor_pending,
                },
                job,
            ),
            Err(error) => record(Err(error), Outcome::Lost, job),
        },
        Run::Finished(Err(JobError::Permanent { reason })) => {
            tracing::warn!(job = job.id, kind = %job.kind, %reason, "job failed permanently");
            record(
                persist(|| store.bury(job, &reason)).await,
                Outcome::Dead,
                job,
            )
        }
        Run::Finished(Err(JobError::Transient {
            reason,
            retry_after,
        })) => {
            if job.attempts >= job.max_attempts {
                let error = format!(
                    "attempts exhausted ({} of {}): {reason}",
                    job.attempts, job.max_attempts
                );
                tracing::warn!(job = job.id, kind = %job.kind, %error, "job dead");
                return record(
                    persist(|| store.bury(job, &error)).await,
                    Outcome::Dead,
                    job,
                );
            }
            let delay = retry_delay(&inner.config, job.attempts, retry_after);
            let run_at = now_ms().saturating_add(duration_ms(delay));
            tracing::info!(job = job.id, kind = %job.kind, %reason, ?delay, "job will be retried");
            record(
                persist(|| store.retry_later(job, run_at, &reason)).await,
                Outcome::Retried,
                job,
            )
        }
    }
}

/// Run the handler while extending the lease beside it; stop it when the lease
/// is lost or at a hard stop.
async fn run_handler(
    inner: &Arc<Inner>,
    job: &Job,
    handler: Arc<dyn crate::Handler>,
    hard_stop: CancellationToken,
    slot: SlotCell,
) -> Run {
    // The handler runs in this task (no task of its own to spawn and wake),
    // its panics caught like a spawned task's would be.
    let handled = SLOT.scope(slot, AssertUnwindSafe(handler.handle(job)).catch_unwind());
    let heartbeats = keep_leased(inner, job);
    tokio::select! {
        joined = handled => Run::Finished(match joined {
            Ok(result) => result,
            Err(panic) => {
                tracing::error!(job = job.id, kind = %job.kind, "handler panicked");
                Err(JobError::transient(format!("handler panicked: {}", panic_text(panic))))
            }
        }),
        () = heartbeats => {
            tracing::warn!(job = job.id, "lease lost; stopping the handler");
            Run::LeaseLost
        }
        () = hard_stop.cancelled() => Run::Stopped,
    }
}

/// Extends the job's lease every third of it; returns when the lease is lost:
/// the store says another worker has the job, or the lease could not be
/// extended (store unreachable) and is about to run out. Another process may
/// take the job from then on, so the handler must have stopped by then; the
/// last tenth of the lease is the margin for the clocks of the two processes.
async fn keep_leased(inner: &Arc<Inner>, job: &Job) {
    let lease = inner.config.lease;
    let lease_ms = duration_ms(lease);
    let margin = lease / 10;
    let beat = (lease / 3).max(Duration::from_millis(10));
    let now = tokio::time::Instant::now();
    // Until the claim's own lease ends (it was taken a moment ago).
    let left = match job.locked_until {
        Some(until) => {
            Duration::from_millis(u64::try_from(until.saturating_sub(now_ms())).unwrap_or(0))
        }
        None => lease,
    };
    let mut held_until = now + left.saturating_sub(margin);
    let mut heartbeat = tokio::time::interval_at(now + beat, beat);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {}
            () = tokio::time::sleep_until(held_until) => {
                tracing::warn!(job = job.id, "lease not extended in time (store unreachable)");
                return;
            }
        }
        let sent = tokio::time::Instant::now();
        match tokio::time::timeout_at(held_until, inner.store.extend_lease(job, lease_ms)).await {
            Ok(Ok(true)) => held_until = sent + lease.saturating_sub(margin),
            Ok(Ok(false)) => return,
            Ok(Err(error)) => tracing::warn!(job = job.id, %error, "extending lease failed"),
            Err(_) => {
                tracing::warn!(job = job.id, "lease not extended in time (store too slow)");
                return;
            }
        }
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".into()
    }
}

/// Pauses before the second and third try of recording a job's end.
const RECORD_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];

/// Record a job's end, trying again after a short pause when the store fails
/// (a dropped connection, a lock timeout). The work is done; left to lease
/// expiry, a successful job on its last attempt would end as a dead letter.
async fn persist<T, F, Fut>(write: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pauses = RECORD_RETRY_PAUSES.iter();
    loop {
        match write().await {
            Ok(done) => return Ok(done),
            Err(error) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(%error, "recording a job's end failed; trying again");
                    tokio::time::sleep(*pause).await;
                }
                None => return Err(error),
            },
        }
    }
}

/// Log a failed or fenced-off state change. A change the store refused leaves the
/// job to lease expiry, so nothing is lost.
fn record(result: Result<bool, StoreError>, outcome: Outcome, job: &Job) -> Outcome {
    match result {
        Ok(true) => outcome,
        Ok(false) => {
            tracing::warn!(
                job = job.id,
                "job no longer leased to this worker; outcome dropped"
            );
            Outcome::Lost
        }
        Err(error) => {
            tracing::error!(job = job.id, %error, "recording job outcome failed; lease expiry will retry it");
            Outcome::Lost
        }
    }
}
