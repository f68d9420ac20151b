//! The jobs table: enqueue (with debounce), ordered claiming with leases, fenced state
//! changes, dead letters.

use crate::model::{Completion, Job, JobFilter, JobStatus, NewJob};
use crate::rows::{JobRow, convert_all, to_json_text};
use crate::{DEFAULT_MAX_ATTEMPTS, Pool, Store, StoreError, now_ms};

/// PostgreSQL advisory lock (one-bigint key space) held for the duration of a claim
/// statement, so two claimers never evaluate the per-key ordering rule at once.
const CLAIM_LOCK_KEY: i64 = 0x7462_6a6f_6273; // "tbjobs"
/// PostgreSQL advisory lock namespace (two-int key space) for debounce keys.
pub(crate) const UNIQUE_KEY_LOCK_NAMESPACE: i32 = 7301;

/// The ordering rule, shared by `claim` and `outstanding`: `j` may run when no other
/// job of its ordering key is running, and no earlier job of its key is pending and
/// either waiting on a retry (attempts > 0) or due. `$now` is the placeholder for now.
macro_rules! claimable_predicate {
    ($now:literal) => {
        concat!(
            "j.status = 'pending' AND j.run_at <= ",
            $now,
            " AND NOT EXISTS ( \
                SELECT 1 FROM jobs e \
                WHERE e.ordering_key = j.ordering_key AND e.id <> j.id \
                  AND e.status IN ('pending', 'running') \
                  AND (e.status = 'running' \
                       OR (e.id < j.id AND e.status = 'pending' \
                           AND (e.attempts > 0 OR e.run_at <= ",
            $now,
            "))))"
        )
    };
}

macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT j.id FROM jobs j WHERE j.queue = $4 AND ",
            claimable_predicate!("$3"),
            " ORDER BY j.id LIMIT $5 ",
            $lock,
            ") RETURNING ",
            job_columns!()
        )
    };
}

pub(crate) const CLAIM_SQLITE: &str = claim_sql!("");

/// Claims job `$4` in the transaction that stored it (`NewJob::claim_now`),
/// under the same rule as every claim.
pub(crate) const CLAIM_STORED: &str = concat!(
    "UPDATE jobs AS j SET status = 'running', locked_by = $1, locked_until = $2, \
     attempts = attempts + 1, updated_at = $3 \
     WHERE j.id = $4 AND ",
    claimable_predicate!("$3"),
    " RETURNING ",
    job_columns!()
);
const CLAIM_POSTGRES: &str = claim_sql!("FOR UPDATE OF j SKIP LOCKED");

/// `now` for [`Store::outstanding`]: the later of the caller's clock and the
/// database's clock as the statement reads. The caller's `now` is taken before
/// a pooled connection is free; a job committed in between with a `run_at`
/// after it would otherwise be neither due nor running, and a busy machine
/// read "idle" while a job a handler had just enqueued was about to run.
macro_rules! outstanding_sql {
    ($now:literal) => {
        concat!(
            "SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' OR (",
            claimable_predicate!($now),
            ")"
        )
    };
}
const OUTSTANDING_SQLITE: &str =
    outstanding_sql!("MAX($1, CAST(unixepoch('subsec') * 1000 AS INTEGER))");
const OUTSTANDING_POSTGRES: &str =
    outstanding_sql!("GREATEST($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)");

macro_rules! insert_job {
    () => {
        "INSERT INTO jobs (queue, kind, ordering_key, payload, status, attempts, \
         max_attempts, run_at, unique_key, inbox_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $8, $9, $9)"
    };
}
pub(crate) const INSERT_JOB: &str = concat!(insert_job!(), " RETURNING id");
/// [`INSERT_JOB`] for the writer thread, which reads the new id from the
/// connection: SQLite buffers a statement's `RETURNING` rows in a temporary
/// table, work the single writer does for every job it stores.
pub(crate) const INSERT_JOB_PLAIN: &str = insert_job!();

/// Debounce onto the newest pending job of unique key `$4`: new payload and
/// `run_at`, except that a job waiting on a retry (backoff, `Retry-After`) is not
/// moved earlier. The outer `status` condition matters on PostgreSQL: when the
/// row was being claimed while this statement waited for its lock, only the
/// outer conditions are checked again on the claimed row, and a running job's
/// handler has already read its payload.
pub(crate) const DEBOUNCE_JOB: &str = "UPDATE jobs SET \
     run_at = CASE WHEN attempts > 0 AND run_at > $1 THEN run_at ELSE $1 END, \
     payload = $2, updated_at = $3 \
     WHERE id = (SELECT MAX(id) FROM jobs WHERE unique_key = $4 AND status = 'pending') \
     AND status = 'pending' \
     RETURNING id";
/// [`DEBOUNCE_JOB`] for [`NewJob::keep_earlier`]: `run_at` never moves later,
/// and a job waiting on a retry does not move at all.
pub(crate) const DEBOUNCE_JOB_KEEP_EARLIER: &str = "UPDATE jobs SET \
     run_at = CASE WHEN attempts > 0 OR run_at < $1 THEN run_at ELSE $1 END, \
     payload = $2, updated_at = $3 \
     WHERE id = (SELECT MAX(id) FROM jobs WHERE unique_key = $4 AND status = 'pending') \
     AND status = 'pending' \
     RETURNING id";

/// The debounce statement for `job`.
pub(crate) fn debounce_statement(job: &NewJob) -> &'static str {
    if job.keep_earlier {
        DEBOUNCE_JOB_KEEP_EARLIER
    } else {
        DEBOUNCE_JOB
    }
}

/// Fence shared by every state change of a claimed job: the row is still running
/// under this worker's lease for this attempt.
macro_rules! fenced {
    ($set:literal) => {
        concat!(
            "UPDATE jobs SET ",
            $set,
            " WHERE id = $1 AND status = 'running' AND locked_by = $2 AND attempts = $3"
        )
    };
}

const EXTEND_LEASE: &str = fenced!("locked_until = $4, updated_at = $5");
pub(crate) const COMPLETE: &str =
    fenced!("status = 'succeeded', locked_until = NULL, finished_at = $4, updated_at = $4");
/// Whether a job of ordering key `$1` is pending (after a completion). The
/// `IN` term lets the planner use the index of unfinished jobs.
pub(crate) const SUCCESSOR_PENDING: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE ordering_key = $1 \
     AND status IN ('pending', 'running') AND status = 'pending')";
const RETRY_LATER: &str = fenced!(
    "status = 'pending', run_at = $4, last_error = $5, locked_by = NULL, locked_until = NULL, \
     updated_at = $6"
);
const BURY: &str = fenced!(
    "status = 'dead', last_error = $4, locked_until = NULL, finished_at = $5, updated_at = $5"
);
const RELEASE: &str = fenced!(
    "status = 'pending', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, \
     last_error = 'released unfinished at shutdown', updated_at = $4"
);
/// A job a runner claimed with no free slot to start it in (one was taken
/// for a job claimed at accept while the claim ran).
const RELEASE_NO_SLOT: &str = fenced!(
    "status = 'pending', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, \
     last_error = 'claimed when no slot was free; given back before starting', updated_at = $4"
);
/// Succeeded jobs finished before `$1` with an id below `$2`, oldest first, at
/// most `$3`. A finished job has no lease (`locked_until IS NULL`): with both
/// columns of `jobs_status` fixed, that index lists them in id order, so the
/// scan needs no sort, stops after `$3` matches and never passes `$2`.
const PURGE_SUCCEEDED: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
     WHERE status = 'succeeded' AND locked_until IS NULL AND finished_at < $1 AND id < $2 \
     ORDER BY id LIMIT $3)";
/// A job claimed at accept whose caller went away before starting it.
pub(crate) const RELEASE_UNSTARTED: &str = fenced!(
    "status = 'pending', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, \
     last_error = 'claimed at accept, but the caller went away before starting it', \
     updated_at = $4"
);

/// Insert one job (or debounce onto a pending job with the same unique key) inside
/// the caller's transaction. Compiled once per backend.
macro_rules! insert_job_fn {
    ($name:ident, $conn:ty, $postgres:expr) => {
        pub(crate) async fn $name(
            conn: &mut $conn,
            job: &NewJob,
            inbox_id: Option<i64>,
            now: i64,
        ) -> Result<i64, StoreError> {
            let payload = to_json_text("job payload", &job.payload)?;
            let run_at = job.run_at.unwrap_or(now);
            if let Some(key) = &job.unique_key {
                if $postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                        .bind(UNIQUE_KEY_LOCK_NAMESPACE)
                        .bind(key)
                        .execute(&mut *conn)
                        .await?;
                }
                let updated: Option<i64> = sqlx::query_scalar(debounce_statement(job))
                    .bind(run_at)
                    .bind(&payload)
                    .bind(now)
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(id) = updated {
                    return Ok(id);
                }
            }
            let id: i64 = sqlx::query_scalar(INSERT_JOB)
                .bind(&job.queue)
                .bind(&job.kind)
                .bind(&job.ordering_key)
                .bind(&payload)
                .bind(job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
                .bind(run_at)
                .bind(&job.unique_key)
                .bind(inbox_id)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
            Ok(id)
        }
    };
}

insert_job_fn!(insert_job_sqlite, sqlx::SqliteConnection, false);
insert_job_fn!(insert_job_postgres, sqlx::PgConnection, true);

/// The database server's clock, unix ms.
async fn database_now<'c, E>(conn: E) -> Result<i64, StoreError>
where
    E: sqlx::PgExecutor<'c>,
{
    Ok(
        sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
            .fetch_one(conn)
            .await?,
    )
}

impl Store {
    /// The clock leases are timed by: on PostgreSQL, shared by several
    /// instances, the database's (hosts' clocks drift apart, and one running
    /// ahead by a tenth of a lease would reclaim live jobs of the others); on
    /// SQLite, one host's, this process's.
    pub(crate) async fn lease_clock(&self) -> Result<i64, StoreError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(now_ms().saturating_add(self.clock_skew_ms)),
            Pool::Postgres(pool) => database_now(pool).await,
        }
    }

    /// A handle on the same store whose own clock reads `skew_ms` off, as a
    /// host's clock may. For tests of what is timed by which clock.
    #[cfg(feature = "testing")]
    pub fn with_clock_skew(&self, skew_ms: i64) -> Store {
        Store {
            clock_skew_ms: skew_ms,
            ..self.clone()
        }
    }

    /// Add a job. With a `unique_key`, a pending job with the same key is updated
    /// (new `run_at` and `payload`) instead, and its id returned: a debounce.
    pub async fn enqueue(&self, job: NewJob) -> Result<i64, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let id = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let id = insert_job_sqlite(&mut tx, &job, None, now).await?;
                tx.commit().await?;
                id
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let id = insert_job_postgres(&mut tx, &job, None, now).await?;
                tx.commit().await?;
                id
            }
        };
        self.enqueued
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(id)
    }

    /// How many jobs [`Store::enqueue`] has added through this store and its
    /// clones, in this process (accepts are not counted: their callers wake
    /// the engine).
    pub fn enqueued_count(&self) -> u64 {
        self.enqueued.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Take up to `limit` due jobs of `queue` for `worker`, oldest first, leasing
    /// them for `lease_ms`. A job is skipped while another job of its ordering key
    /// runs, or while an earlier job of its key is due or waiting on a retry. Each
    /// claim counts one attempt.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        if let Some(group) = &self.group {
            let mut jobs = group.claim(queue, worker, lease_ms, limit).await?;
            jobs.sort_by_key(|job| job.id);
            return Ok(jobs);
        }
        let rows: Vec<JobRow> = match &self.pool {
            Pool::Sqlite(pool) => {
                let now = now_ms();
                // One statement: SQLite takes the write lock before reading, so the
                // ordering check and the update see the same state.
                sqlx::query_as(CLAIM_SQLITE)
                    .bind(worker)
                    .bind(now.saturating_add(lease_ms))
                    .bind(now)
                    .bind(queue)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool) => {
                // Under READ COMMITTED two concurrent claims could both miss the other's
                // uncommitted `running` row and start two jobs of one key. Claims are
                // therefore serialised by a transaction advisory lock; the claim
                // statement's snapshot is taken after the lock, so it sees every
                // earlier claim. The lock is held for this one statement only.
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CLAIM_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                // Read after the lock: the lease is not shortened by the wait.
                // The database's clock: every instance times and reclaims
                // leases by the same clock, whatever its host's says.
                let now = database_now(&mut *tx).await?;
                let rows = sqlx::query_as(CLAIM_POSTGRES)
                    .bind(worker)
                    .bind(now.saturating_add(lease_ms))
                    .bind(now)
                    .bind(queue)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows
            }
        };
        let mut jobs: Vec<Job> = convert_all(rows)?;
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Push the lease of a claimed job `lease_ms` into the future. False when the
    /// lease was lost (reclaimed, or the job already finished).
    pub async fn extend_lease(&self, job: &Job, lease_ms: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = self.lease_clock().await?;
        let done = on_pool!(self, pool => self.fenced(EXTEND_LEASE, job)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Mark a claimed job succeeded. False when this worker no longer holds it.
    /// On a SQLite file it is written by the writer thread, in the group commit
    /// of whatever else is being written at the time.
    pub async fn complete(&self, job: &Job) -> Result<bool, StoreError> {
        Ok(self.complete_job(job).await?.recorded)
    }

    /// [`Store::complete`], also telling whether a job of the same ordering key
    /// is pending, which the job's end may have let run (when the store cannot
    /// tell cheaply, it says yes).
    pub async fn complete_job(&self, job: &Job) -> Result<Completion, StoreError> {
        if let Some(group) = &self.group {
            return group.complete(job).await;
        }
        Ok(Completion {
            recorded: self.complete_alone(job).await?,
            successor_pending: true,
        })
    }

    async fn complete_alone(&self, job: &Job) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = on_pool!(self, pool => self.fenced(COMPLETE, job)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Put a claimed job back to pending, to run at `run_at`, recording `error`.
    /// The attempt stays counted, and the job keeps blocking later jobs of its key.
    pub async fn retry_later(
        &self,
        job: &Job,
        run_at: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let done = on_pool!(self, pool => self.fenced(RETRY_LATER, job)
            .bind(run_at)
            .bind(error)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Make a claimed job a dead letter with `error` as its last error.
    pub async fn bury(&self, job: &Job, error: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let done = on_pool!(self, pool => self.fenced(BURY, job)
            .bind(error)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Give a claimed job back untouched (graceful shutdown): pending again, the
    /// attempt not counted.
    pub async fn release(&self, job: &Job) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let done = on_pool!(self, pool => self.fenced(RELEASE, job)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Give back a claimed job that was never started because no slot was free
    /// for it: pending again, the attempt not counted.
    pub async fn release_unstarted(&self, job: &Job) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let done = on_pool!(self, pool => self.fenced(RELEASE_NO_SLOT, job)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Running jobs whose lease has passed go back to pending (their worker died).
    /// The attempt stays counted. Returns how many were reclaimed.
    pub async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let now = self.lease_clock().await?;
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = 'pending', \
             last_error = 'lease expired: worker ' || COALESCE(locked_by, '?') || ' lost the job', \
             locked_by = NULL, locked_until = NULL, updated_at = $1 \
             WHERE status = 'running' AND locked_until < $1",
        )
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        if done > 0 {
            tracing::warn!(count = done, "reclaimed jobs whose lease expired");
        }
        Ok(done)
    }

    /// One job by id.
    pub async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = on_pool!(self, pool => sqlx::query_as(
            concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(Job::try_from).transpose()
    }

    /// Jobs matching `filter`, newest first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let status = filter.status.map(JobStatus::as_str);
        let rows: Vec<JobRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", job_columns!(), " FROM jobs \
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR kind = $2) \
               AND ($3 IS NULL OR queue = $3) AND ($4 IS NULL OR ordering_key = $4) \
             ORDER BY id DESC LIMIT $5"))
            .bind(status)
            .bind(filter.kind.as_deref())
            .bind(filter.queue.as_deref())
            .bind(filter.ordering_key.as_deref())
            .bind(filter.limit.unwrap_or(100))
            .fetch_all(pool)
            .await?);
        convert_all(rows)
    }

    /// Number of jobs in each status (every status listed, zero included).
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT status, COUNT(*) FROM jobs GROUP BY status")
            .fetch_all(pool)
            .await?);
        let mut counts: Vec<(JobStatus, i64)> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, count) in rows {
            let status: JobStatus = status
                .parse()
                .map_err(|e| StoreError::decode("job status", e))?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = count;
            }
        }
        Ok(counts)
    }

    /// Dead letters back to pending with attempts reset, due now: the one with `id`,
    /// or all when `None`. Returns how many were revived.
    pub async fn revive_dead(&self, id: Option<i64>) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $1, locked_by = NULL, \
             locked_until = NULL, finished_at = NULL, updated_at = $1 \
             WHERE status = 'dead' AND ($2 IS NULL OR id = $2)")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done)
    }

    /// Delete all dead letters. Returns how many were deleted.
    pub async fn purge_dead(&self) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM jobs WHERE status = 'dead'")
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done)
    }

    /// The id of the first job created at or after `at` (unix ms), if any. No job
    /// from there on can have finished before `at`: the bound of a retention
    /// sweep ([`Store::purge_succeeded`]). Reads in id order and stops at the
    /// first match, so it costs the jobs older than `at`, not the whole table.
    pub async fn first_job_created_since(&self, at: i64) -> Result<Option<i64>, StoreError> {
        let id: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM jobs WHERE created_at >= $1 ORDER BY id LIMIT 1")
            .bind(at)
            .fetch_optional(pool)
            .await?);
        Ok(id)
    }

    /// Retention: delete up to `limit` succeeded jobs that finished before
    /// `before` (unix ms) and have an id below `below_id`, oldest first; returns
    /// how many. Call it again while it returns `limit`: each call holds the
    /// store's write lock for one batch only.
    pub async fn purge_succeeded(
        &self,
        before: i64,
        below_id: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => sqlx::query(PURGE_SUCCEEDED)
            .bind(before)
            .bind(below_id)
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done)
    }

    /// Earliest `run_at` of a pending job of `queue` (may be in the past when that
    /// job is held back by its ordering key).
    pub async fn next_run_at(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        let next: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MIN(run_at) FROM jobs WHERE queue = $1 AND status = 'pending'")
            .bind(queue)
            .fetch_one(pool)
            .await?);
        Ok(next)
    }

    /// Queues that have pending or running jobs.
    pub async fn queues_with_work(&self) -> Result<Vec<String>, StoreError> {
        let queues: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT queue FROM jobs WHERE status IN ('pending', 'running') ORDER BY queue")
            .fetch_all(pool)
            .await?);
        Ok(queues)
    }

    /// Jobs running now plus jobs a claim could take now. Zero means idle: nothing
    /// left to do until a scheduled or backed-off job falls due.
    pub async fn outstanding(&self) -> Result<i64, StoreError> {
        let now = now_ms();
        let count: i64 = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(OUTSTANDING_SQLITE)
                    .bind(now)
                    .fetch_one(pool)
                    .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar(OUTSTANDING_POSTGRES)
                    .bind(now)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(count)
    }

    fn fenced<'q, DB: sqlx::Database>(
        &self,
        sql: &'q str,
        job: &'q Job,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        sqlx::query(sql)
            .bind(job.id)
            .bind(job.locked_by.as_deref())
            .bind(job.attempts)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{
        CLAIM_SQLITE, CLAIM_STORED, OUTSTANDING_SQLITE, PURGE_SUCCEEDED, SUCCESSOR_PENDING,
    };

    /// The SQLite schema as the migrations leave it.
    fn migrated() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        for migration in [
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_audit_once.sql"),
            include_str!("../migrations/sqlite/0003_unfinished_ordering_index.sql"),
        ] {
            conn.execute_batch(migration).expect("migration runs");
        }
        conn
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("statement prepares");
        let nulls = std::iter::repeat_n(rusqlite::types::Null, statement.parameter_count());
        let details = statement
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .expect("plan runs")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan rows");
        details.join("\n")
    }

    /// The ordering rule's lookups go through the index of unfinished jobs: a
    /// query that loses its `status IN ('pending', 'running')` term would scan
    /// every job ever stored instead.
    #[test]
    fn ordering_lookups_use_the_index_of_unfinished_jobs() {
        let conn = migrated();
        for (name, sql) in [
            ("claim", CLAIM_SQLITE),
            ("claim at accept", CLAIM_STORED),
            ("successor check", SUCCESSOR_PENDING),
        ] {
            let plan = plan(&conn, sql);
            assert!(
                plan.contains("USING INDEX jobs_ordering (ordering_key=?)"),
                "{name} does not use jobs_ordering:\n{plan}"
            );
        }
    }

    /// Retention walks `jobs_status` in id order below its bound: a query that
    /// loses its `locked_until IS NULL` term would read and sort every
    /// succeeded job for each batch.
    #[test]
    fn retention_batches_walk_the_status_index_in_id_order() {
        let plan = plan(&migrated(), PURGE_SUCCEEDED);
        assert!(
            plan.contains("USING INDEX jobs_status (status=? AND locked_until=? AND rowid<?)"),
            "retention does not walk jobs_status:\n{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "retention sorts:\n{plan}");
    }

    /// A job that fell due after the caller read its clock, but before the
    /// database answered, still counts: the caller's `now` stands in for a
    /// reading that waited for a pooled connection.
    #[test]
    fn outstanding_counts_jobs_due_by_the_time_the_database_reads() {
        let conn = migrated();
        let now = crate::now_ms();
        conn.execute(
            "INSERT INTO jobs (queue, kind, ordering_key, payload, status, attempts, \
             max_attempts, run_at, created_at, updated_at) \
             VALUES ('q', 'k', 'key', '{}', 'pending', 0, 5, ?1, ?1, ?1)",
            [now - 1],
        )
        .expect("job inserted");
        let count = |caller_now: i64| -> i64 {
            conn.query_row(
                &OUTSTANDING_SQLITE.replace("$1", "?1"),
                [caller_now],
                |row| row.get(0),
            )
            .expect("outstanding runs")
        };
        assert_eq!(count(now), 1);
        assert_eq!(count(now - 10_000), 1, "a late reading missed a due job");
    }
}
